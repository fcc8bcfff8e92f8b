import type { BroadcastResult, DeliveryResult, DisconnectResult, InternalDisconnect, Position } from '@switchboard/protocol'

/**
 * Router -> edge calls. Each rejects on timeout, refusal, a non-200 answer or a malformed one.
 * `requestId` travels to the edge for its logs (a coalesced call lists its pushes' ids).
 * LinkEdgeClient (edge-link.ts) implements it over one websocket per edge; tests use fakes.
 */
export interface EdgeClient {
  /** `at`: a kept push's inbox position of each recipient, in `to`'s order. */
  deliver(edgeUrl: string, frame: string, to: readonly string[], requestId?: string, at?: readonly Position[]): Promise<DeliveryResult>
  broadcast(edgeUrl: string, frame: string, requestId?: string): Promise<BroadcastResult>
  disconnect(edgeUrl: string, request: InternalDisconnect, requestId?: string): Promise<DisconnectResult>
  close(): Promise<void>
}

export class EdgeCallError extends Error {
  override readonly name = 'EdgeCallError'
}

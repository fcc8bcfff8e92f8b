import type {
  AckedDelivery,
  AckedDeliveryResult,
  BroadcastResult,
  DeliveryResult,
  DisconnectResult,
  InternalDisconnect,
  InternalRoomJoin,
  InternalRoomLeave,
  InternalRoomMembers,
  Position,
  RoomDelivery,
  RoomDeliveryResult,
  RoomMembershipResult,
  RoomMembersResult,
} from '@switchboard/protocol'

/**
 * Router -> edge calls. Each rejects on timeout, refusal, a non-200 answer or a malformed one.
 * `requestId` travels to the edge for its logs (a coalesced call lists its pushes' ids).
 * LinkEdgeClient (edge-link.ts) implements it over one websocket per edge; tests use fakes.
 */
export interface EdgeClient {
  /** `at`: a kept push's inbox position of each recipient, in `to`'s order. */
  deliver(edgeUrl: string, frame: string, to: readonly string[], requestId?: string, at?: readonly Position[]): Promise<DeliveryResult>
  /**
   * A push with `wait: "routed"`: resolves once its frame is queued on the edge's link (the edge
   * sends no answer); rejects as `deliver` does when the link cannot open within the timeout or
   * the circuit is open, and with `backpressure` when the link's backlog is full.
   */
  route(edgeUrl: string, frame: string, to: readonly string[], requestId?: string, at?: readonly Position[]): Promise<void>
  /**
   * A push asking for receipts: the edge writes it at once and answers once its recipients
   * there acknowledged it, their sockets closed or its `timeoutMs` passed, so the call may take
   * up to the forward timeout plus `timeoutMs`.
   */
  deliverAcked(edgeUrl: string, delivery: AckedDelivery, requestId?: string): Promise<AckedDeliveryResult>
  broadcast(edgeUrl: string, frame: string, requestId?: string): Promise<BroadcastResult>
  disconnect(edgeUrl: string, request: InternalDisconnect, requestId?: string): Promise<DisconnectResult>
  /** A room push: the edge writes it to its local members of the room. */
  room(edgeUrl: string, delivery: RoomDelivery, requestId?: string): Promise<RoomDeliveryResult>
  /** Membership changes; answered once the edge's field of the room's edge index is written. */
  roomJoin(edgeUrl: string, request: InternalRoomJoin, requestId?: string): Promise<RoomMembershipResult>
  roomLeave(edgeUrl: string, request: InternalRoomLeave, requestId?: string): Promise<RoomMembershipResult>
  /** Room presence: the edge's users in the room now. */
  roomMembers(edgeUrl: string, request: InternalRoomMembers, requestId?: string): Promise<RoomMembersResult>
  close(): Promise<void>
  /**
   * Fails every call still waiting for receipts (`closed`), so that their pushes are answered
   * before a stopping router closes its connections. Other calls are left to finish.
   */
  endWaits?(): void
}

/**
 * Why an edge call failed, one of a closed list:
 * - `timeout`: no answer within the forward timeout (the link is dropped);
 * - `refused`: the edge answered the link's upgrade with an HTTP status (401: a wrong internal token);
 * - `link_down`: the link could not be opened, or was lost with the call on it (edge restarted, missed pong);
 * - `circuit_open`: not sent, the edge keeps failing and is skipped for a while (Circuits);
 * - `bad_answer`: an answer that is not the op's (malformed frame, not JSON, wrong shape or count);
 * - `edge_error`: the edge answered an error status (400: a call it found malformed);
 * - `closed`: the router is shutting down, or closed an idle link with the call still waiting;
 * - `backpressure`: a routed push not sent, the link's backlog is past MAX_LINK_BACKLOG_BYTES (the edge does not read).
 */
export const EDGE_CALL_ERROR_CODES = ['timeout', 'refused', 'link_down', 'circuit_open', 'bad_answer', 'edge_error', 'closed', 'backpressure'] as const
export type EdgeCallErrorCode = (typeof EDGE_CALL_ERROR_CODES)[number]

export class EdgeCallError extends Error {
  override readonly name = 'EdgeCallError'

  constructor(
    readonly code: EdgeCallErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

import { Agent, request } from 'undici'
import { Circuits } from './circuit.js'
import type { z } from 'zod'
import {
  BroadcastResult,
  DeliveryResult,
  DisconnectResult,
  encodeDelivery,
  internalRoutes,
  type InternalDisconnect,
} from '@switchboard/protocol'

/** Router -> edge calls. Each rejects on timeout, refusal, a non-200 answer or a malformed one. */
export interface EdgeClient {
  deliver(edgeUrl: string, frame: string, to: readonly string[]): Promise<DeliveryResult>
  broadcast(edgeUrl: string, frame: string): Promise<BroadcastResult>
  disconnect(edgeUrl: string, request: InternalDisconnect): Promise<DisconnectResult>
  close(): Promise<void>
}

export interface HttpEdgeClientOptions {
  internalToken: string
  /** Whole-call bound: connect, send, answer. */
  timeoutMs: number
  /** Keep-alive connections per edge. */
  connectionsPerEdge?: number
}

export class EdgeCallError extends Error {
  override readonly name = 'EdgeCallError'
}

/**
 * Keep-alive pools per edge (one undici Agent), every call bounded by `timeoutMs`; an edge
 * that keeps failing is skipped for a while (see Circuits) rather than waited on.
 */
export class HttpEdgeClient implements EdgeClient {
  readonly #agent: Agent
  readonly #headers: Record<string, string>
  readonly #circuits = new Circuits({ threshold: 3, baseCooldownMs: 250, maxCooldownMs: 5_000 })

  constructor(private readonly options: HttpEdgeClientOptions) {
    this.#agent = new Agent({
      connections: options.connectionsPerEdge ?? 32,
      keepAliveTimeout: 30_000,
      connectTimeout: options.timeoutMs,
    })
    this.#headers = { authorization: `Bearer ${options.internalToken}`, 'content-type': 'text/plain' }
  }

  deliver(edgeUrl: string, frame: string, to: readonly string[]): Promise<DeliveryResult> {
    return this.#post(edgeUrl, internalRoutes.deliver, encodeDelivery(frame, to), DeliveryResult)
  }

  broadcast(edgeUrl: string, frame: string): Promise<BroadcastResult> {
    return this.#post(edgeUrl, internalRoutes.broadcast, frame, BroadcastResult)
  }

  disconnect(edgeUrl: string, body: InternalDisconnect): Promise<DisconnectResult> {
    return this.#post(edgeUrl, internalRoutes.disconnect, JSON.stringify(body), DisconnectResult)
  }

  close(): Promise<void> {
    return this.#agent.close()
  }

  /** One call to one edge, through that edge's circuit (keyed by its URL). */
  async #post<S extends z.ZodType>(edge: string, route: string, body: string, schema: S): Promise<z.output<S>> {
    if (!this.#circuits.allow(edge)) throw new EdgeCallError('edge skipped: it keeps failing')
    try {
      const answer = await this.#send(edge + route, body, schema)
      this.#circuits.succeeded(edge)
      return answer
    } catch (err) {
      this.#circuits.failed(edge)
      throw err
    }
  }

  async #send<S extends z.ZodType>(url: string, body: string, schema: S): Promise<z.output<S>> {
    const res = await request(url, {
      method: 'POST',
      body,
      headers: this.#headers,
      dispatcher: this.#agent,
      signal: AbortSignal.timeout(this.options.timeoutMs),
    })
    const text = await res.body.text()
    if (res.statusCode !== 200) throw new EdgeCallError(`edge answered ${res.statusCode}: ${text.slice(0, 200)}`)
    const parsed = schema.safeParse(JSON.parse(text))
    if (!parsed.success) throw new EdgeCallError('edge answered a malformed body')
    return parsed.data
  }
}

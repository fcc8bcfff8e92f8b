import { Agent, request } from 'undici'
import { Circuits } from './circuit.js'
import type { z } from 'zod'
import {
  REQUEST_IDS,
  BroadcastResult,
  DeliveriesResult,
  DisconnectResult,
  encodeDelivery,
  internalRoutes,
  type DeliveryResult,
  type InternalDisconnect,
} from '@switchboard/protocol'

/** Router -> edge calls. Each rejects on timeout, refusal, a non-200 answer or a malformed one. */
/** `requestId` travels to the edge (X-Request-Id, or X-Request-Ids for a coalesced call) for its logs. */
export interface EdgeClient {
  deliver(edgeUrl: string, frame: string, to: readonly string[], requestId?: string): Promise<DeliveryResult>
  broadcast(edgeUrl: string, frame: string, requestId?: string): Promise<BroadcastResult>
  disconnect(edgeUrl: string, request: InternalDisconnect, requestId?: string): Promise<DisconnectResult>
  close(): Promise<void>
}

export interface HttpEdgeClientOptions {
  internalToken: string
  /** Whole-call bound: connect, send, answer. */
  timeoutMs: number
  /** Keep-alive connections per edge. */
  connectionsPerEdge?: number
  /** Delivery calls in flight per edge before further pushes wait and go together in one call. */
  callsPerEdge?: number
}

/** A push waiting for its edge's next delivery call. */
interface Pending {
  body: string
  requestId: string
  resolve(result: DeliveryResult): void
  reject(err: unknown): void
}

/** One edge's delivery calls: how many are in flight and the pushes waiting to go together. */
interface Lane {
  inFlight: number
  waiting: Pending[]
}

/** A coalesced call stops growing at this body size (edges accept 16 MiB). */
const MAX_CALL_BYTES = 4 << 20
/**
 * ...or when its pushes' request ids (the X-Request-Ids header) reach this size: uWS refuses
 * a request whose headers pass 4 KB, and every id must reach the edge's log. 55 UUIDs fit.
 */
const MAX_IDS_BYTES = 2_048

export class EdgeCallError extends Error {
  override readonly name = 'EdgeCallError'
}

/**
 * Keep-alive pools per edge (one undici Agent), every call bounded by `timeoutMs`; an edge
 * that keeps failing is skipped for a while (see Circuits) rather than waited on.
 *
 * Deliveries coalesce: while `callsPerEdge` calls to an edge are in flight, further pushes
 * for it wait, and the next call carries all of them. At low load every push goes at once
 * (no added latency); under load the number of calls, and the syscalls and wakeups on both
 * sides, grow far slower than the number of pushes.
 */
export class HttpEdgeClient implements EdgeClient {
  readonly #agent: Agent
  readonly #headers: Record<string, string>
  readonly #circuits = new Circuits({ threshold: 3, baseCooldownMs: 250, maxCooldownMs: 5_000 })
  readonly #lanes = new Map<string, Lane>()
  readonly #callsPerEdge: number

  constructor(private readonly options: HttpEdgeClientOptions) {
    this.#agent = new Agent({
      connections: options.connectionsPerEdge ?? 32,
      keepAliveTimeout: 30_000,
      connectTimeout: options.timeoutMs,
    })
    this.#headers = { authorization: `Bearer ${options.internalToken}`, 'content-type': 'text/plain' }
    this.#callsPerEdge = options.callsPerEdge ?? 2
  }

  deliver(edgeUrl: string, frame: string, to: readonly string[], requestId = '-'): Promise<DeliveryResult> {
    let lane = this.#lanes.get(edgeUrl)
    if (!lane) this.#lanes.set(edgeUrl, (lane = { inFlight: 0, waiting: [] }))
    const result = new Promise<DeliveryResult>((resolve, reject) => lane.waiting.push({ body: encodeDelivery(frame, to), requestId, resolve, reject }))
    if (lane.inFlight < this.#callsPerEdge) this.#call(edgeUrl, lane)
    return result
  }

  /** Sends what waits in `lane` (within MAX_CALL_BYTES and MAX_IDS_BYTES) as one call, then the next batch if any. */
  #call(edgeUrl: string, lane: Lane): void {
    let bytes = 0
    let idBytes = 0
    let count = 0
    for (const p of lane.waiting) {
      if (count > 0 && (bytes + p.body.length > MAX_CALL_BYTES || idBytes + p.requestId.length + 1 > MAX_IDS_BYTES)) break
      bytes += p.body.length
      idBytes += p.requestId.length + 1
      count++
    }
    const batch = lane.waiting.splice(0, count)
    lane.inFlight++
    const requestIds = { [REQUEST_IDS]: batch.map((p) => p.requestId).join(',') }
    void this.#post(edgeUrl, internalRoutes.deliveries, batch.map((p) => p.body).join('\n'), DeliveriesResult, requestIds)
      .then(({ results }) => {
        if (results.length !== batch.length) throw new EdgeCallError(`edge answered ${results.length} results for ${batch.length} deliveries`)
        batch.forEach((p, i) => p.resolve(results[i]!))
      })
      .catch((err: unknown) => batch.forEach((p) => p.reject(err)))
      .finally(() => {
        lane.inFlight--
        if (lane.waiting.length > 0) this.#call(edgeUrl, lane)
        else if (lane.inFlight === 0) this.#lanes.delete(edgeUrl)
      })
  }

  broadcast(edgeUrl: string, frame: string, requestId = '-'): Promise<BroadcastResult> {
    return this.#post(edgeUrl, internalRoutes.broadcast, frame, BroadcastResult, { [REQUEST_IDS]: requestId })
  }

  disconnect(edgeUrl: string, body: InternalDisconnect, requestId = '-'): Promise<DisconnectResult> {
    return this.#post(edgeUrl, internalRoutes.disconnect, JSON.stringify(body), DisconnectResult, { [REQUEST_IDS]: requestId })
  }

  close(): Promise<void> {
    return this.#agent.close()
  }

  /** One call to one edge, through that edge's circuit (keyed by its URL). */
  async #post<S extends z.ZodType>(edge: string, route: string, body: string, schema: S, headers: Record<string, string>): Promise<z.output<S>> {
    if (!this.#circuits.allow(edge)) throw new EdgeCallError('edge skipped: it keeps failing')
    try {
      const answer = await this.#send(edge + route, body, schema, headers)
      this.#circuits.succeeded(edge)
      return answer
    } catch (err) {
      this.#circuits.failed(edge)
      throw err
    }
  }

  async #send<S extends z.ZodType>(url: string, body: string, schema: S, headers: Record<string, string>): Promise<z.output<S>> {
    const res = await request(url, {
      method: 'POST',
      body,
      headers: { ...this.#headers, ...headers },
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

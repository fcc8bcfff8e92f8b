import type { AckedDeliveryResult } from '@switchboard/protocol'
import type { Clock } from './clock.js'
import type { Count } from './delivery.js'
import { Expiries } from './expiries.js'

/** A push waiting for acknowledgements on this edge. */
interface Pending<S> {
  readonly id: string
  /** ms epoch past which its users still waiting are `unacked`; 0 once settled. */
  deadline: number
  /** Users written to who have not acknowledged, each with how many of the sockets it was written to are still open. */
  readonly waiting: Map<string, number>
  readonly acked: string[]
  readonly unacked: string[]
  readonly missing: readonly string[]
  /** The sockets it was written to (to unlink it from them once settled). */
  readonly sockets: S[]
  readonly settle: (result: AckedDeliveryResult) => void
}

export interface ReceiptsDeps<S> {
  clock: Clock
  userOf(socket: S): string
  metrics: {
    /** Ids in clients' `ack` frames: `ok` (a waiting push of that user), or `unknown` (not waited for here: unknown, settled or timed out). */
    acks: { ok: Count; unknown: Count }
    /** Recipients settled, by outcome. */
    settled: { acked: Count; unacked: Count }
  }
}

/**
 * Pushes waiting for their recipients' acknowledgements: one map by push id, one by socket, and
 * one deadline heap and timer for the edge (never a timer per push or per recipient).
 *
 * A recipient is `acked` once any of its connections acknowledges the push's id (any device:
 * the app has it somewhere), and `unacked` when the deadline passes first or every socket the
 * push was written to closed. A push settles, and its promise resolves, once no recipient is
 * left waiting. Ids are the backends' (`id` in a push): two waiting pushes with one id to one
 * user are both acknowledged by one ack.
 */
export class Receipts<S> {
  readonly #deps: ReceiptsDeps<S>
  readonly #byId = new Map<string, Pending<S>[]>()
  readonly #bySocket = new Map<S, Pending<S>[]>()
  readonly #deadlines: Expiries<Pending<S>>

  constructor(deps: ReceiptsDeps<S>) {
    this.#deps = deps
    this.#deadlines = new Expiries<Pending<S>>({
      clock: deps.clock,
      deadlineOf: (p) => (p.deadline === 0 ? undefined : p.deadline),
      expire: (p) => {
        for (const userId of p.waiting.keys()) p.unacked.push(userId)
        p.waiting.clear()
        this.#finish(p, false)
      },
    })
  }

  /** Pushes waiting. */
  get size(): number {
    return this.#deadlines.size
  }

  /**
   * Waits for the acknowledgements of push `id`, written to `written` (each user with the
   * sockets it was written to), for `timeoutMs`. Resolves at once when nothing was written.
   */
  wait(id: string, written: ReadonlyMap<string, readonly S[]>, missing: readonly string[], timeoutMs: number): Promise<AckedDeliveryResult> {
    return new Promise((settle) => {
      if (written.size === 0) return settle({ acked: [], unacked: [], missing: [...missing] })
      const p: Pending<S> = { id, deadline: this.#deps.clock.now() + timeoutMs, waiting: new Map(), acked: [], unacked: [], missing, sockets: [], settle }
      for (const [userId, sockets] of written) {
        p.waiting.set(userId, sockets.length)
        for (const socket of sockets) {
          p.sockets.push(socket)
          push(this.#bySocket, socket, p)
        }
      }
      push(this.#byId, id, p)
      this.#deadlines.add(p, p.deadline)
    })
  }

  /** A client's `ack` of `ids`: each waiting push of that id to the socket's user counts it acknowledged. */
  acked(socket: S, ids: readonly string[]): void {
    const userId = this.#deps.userOf(socket)
    const { acks } = this.#deps.metrics
    for (const id of ids) {
      let isWaited = false
      // A copy: a push that settles leaves the list.
      for (const p of [...(this.#byId.get(id) ?? [])]) {
        if (!p.waiting.delete(userId)) continue
        isWaited = true
        p.acked.push(userId)
        if (p.waiting.size === 0) this.#finish(p, true)
      }
      ;(isWaited ? acks.ok : acks.unknown).inc()
    }
  }

  /** A socket closed: a user none of whose sockets a push was written to is open any more is `unacked` for it at once. */
  closed(socket: S): void {
    const pending = this.#bySocket.get(socket)
    if (!pending) return
    this.#bySocket.delete(socket)
    const userId = this.#deps.userOf(socket)
    for (const p of pending) {
      const open = p.waiting.get(userId)
      if (open === undefined) continue // acknowledged already
      if (open > 1) {
        p.waiting.set(userId, open - 1)
        continue
      }
      p.waiting.delete(userId)
      p.unacked.push(userId)
      if (p.waiting.size === 0) this.#finish(p, true)
    }
  }

  /** Answers the push and forgets it; `early`: before its deadline (its heap entry goes stale). */
  #finish(p: Pending<S>, early: boolean): void {
    p.deadline = 0
    if (early) this.#deadlines.forget()
    remove(this.#byId, p.id, p)
    for (const socket of p.sockets) remove(this.#bySocket, socket, p)
    const { settled } = this.#deps.metrics
    if (p.acked.length > 0) settled.acked.inc(p.acked.length)
    if (p.unacked.length > 0) settled.unacked.inc(p.unacked.length)
    p.settle({ acked: p.acked, unacked: p.unacked, missing: [...p.missing] })
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key)
  if (list) list.push(value)
  else map.set(key, [value])
}

function remove<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key)
  if (!list) return
  const i = list.indexOf(value)
  if (i >= 0) list.splice(i, 1)
  if (list.length === 0) map.delete(key)
}

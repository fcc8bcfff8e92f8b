import { CloseCode, type CloseCause, type DeliveryResult } from '@switchboard/protocol'

/** What delivery needs of a socket: uWS's WebSocket has it, and tests pass fakes. */
export interface PushSocket {
  getBufferedAmount(): number
  cork(cb: () => void): unknown
  send(message: string, isBinary?: boolean): unknown
}

/** A prom-client Counter, or a fake. */
export interface Count {
  inc(value?: number): void
}

export interface UserSocketsDeps<S> {
  /** A socket whose unsent backlog is past this is closed with 4008 instead of written to. */
  maxBackpressureBytes: number
  metrics: {
    /** Push frames written (edge_push_frames_total and edge_frames_sent_total{type="push"}). */
    pushesWritten: Count
    /** edge_backpressure_closes_total */
    backpressureCloses: Count
  }
  /** Any open socket of this edge by connId, welcomed or not (closes by connId). */
  findConn(connId: string): S | undefined
  userOf(socket: S): string
  /**
   * Records `cause` for the socket's unregistration, then closes it with a close frame. uWS
   * runs the close handler, which calls `remove`, before this returns; the socket must not be
   * touched afterwards (uWS throws).
   */
  close(socket: S, code: number, reason: string, cause: CloseCause): void
}

/**
 * The welcomed sockets of this edge by user, and the writes to them: deliveries, broadcasts
 * and closes. A user with one socket (the usual case) maps to the socket itself; a `Set` is
 * made only for a second one, and undone when the user is back to one.
 *
 * Closing a socket runs `remove` synchronously (uWS), also in the middle of the loops here:
 * removal deletes from the `Set` being iterated (JS iterators allow that) and, when one socket
 * is left, puts that socket in the map while the old `Set` still holds it, so the loop still
 * reaches it. No loop copies a user's sockets.
 */
export class UserSockets<S extends PushSocket> {
  readonly #byUser = new Map<string, S | Set<S>>()
  readonly #deps: UserSocketsDeps<S>
  #size = 0
  // cork() takes a callback: one bound function and two slots instead of a closure per write.
  #corked: S | undefined
  #corkedFrame = ''
  readonly #sendCorked = () => this.#corked!.send(this.#corkedFrame, false)

  constructor(deps: UserSocketsDeps<S>) {
    this.#deps = deps
  }

  /** Sockets in the index (welcomed and open). */
  get size(): number {
    return this.#size
  }

  /** Adds a welcomed socket; each socket is added once. */
  add(userId: string, socket: S): void {
    const entry = this.#byUser.get(userId)
    if (entry === undefined) this.#byUser.set(userId, socket)
    else if (entry instanceof Set) entry.add(socket)
    else this.#byUser.set(userId, new Set([entry, socket]))
    this.#size++
  }

  /** From the close handler; false if the socket was not in the index (closed before its welcome). */
  remove(userId: string, socket: S): boolean {
    const entry = this.#byUser.get(userId)
    if (entry === socket) {
      this.#byUser.delete(userId)
    } else {
      if (!(entry instanceof Set) || !entry.delete(socket)) return false
      if (entry.size === 1) this.#byUser.set(userId, entry.values().next().value!)
    }
    this.#size--
    return true
  }

  /** Number of indexed sockets of `userId`. */
  countOf(userId: string): number {
    const entry = this.#byUser.get(userId)
    return entry === undefined ? 0 : entry instanceof Set ? entry.size : 1
  }

  /** Writes `frame` to every socket of each recipient; delivered = written to at least one open socket. */
  deliver(frame: string, to: readonly string[]): DeliveryResult {
    const delivered: string[] = []
    const missing: string[] = []
    let written = 0
    for (const userId of to) {
      const n = this.#writeEntry(this.#byUser.get(userId), frame)
      if (n > 0) delivered.push(userId)
      else missing.push(userId)
      written += n
    }
    this.#counted(written)
    return { delivered, missing }
  }

  /** Writes `frame` to every indexed socket; returns how many were written to. */
  broadcast(frame: string): number {
    let written = 0
    for (const entry of this.#byUser.values()) written += this.#writeEntry(entry, frame)
    this.#counted(written)
    return written
  }

  /**
   * The internal disconnect call: closes the sockets of `userId`, all of its welcomed ones, or
   * only `connIds` (welcomed or not; a connId of another user is ignored), with cause
   * `disconnect_api` whatever the code (also for another edge's evictions: their entries are
   * already gone, so no offline event carries it). Returns how many were closed.
   */
  disconnect(userId: string, code: number, reason: string, connIds?: readonly string[]): number {
    const { close } = this.#deps
    let closed = 0
    if (connIds) {
      for (const connId of connIds) {
        const socket = this.#deps.findConn(connId)
        if (socket === undefined || this.#deps.userOf(socket) !== userId) continue
        close(socket, code, reason, 'disconnect_api')
        closed++
      }
      return closed
    }
    const entry = this.#byUser.get(userId)
    if (entry instanceof Set) {
      for (const socket of entry) {
        close(socket, code, reason, 'disconnect_api')
        closed++
      }
    } else if (entry !== undefined) {
      close(entry, code, reason, 'disconnect_api')
      closed++
    }
    return closed
  }

  /** A copy of every indexed socket: the drain closes them over time. */
  all(): S[] {
    const out: S[] = []
    for (const entry of this.#byUser.values()) {
      if (entry instanceof Set) out.push(...entry)
      else out.push(entry)
    }
    return out
  }

  #writeEntry(entry: S | Set<S> | undefined, frame: string): number {
    if (entry === undefined) return 0
    if (!(entry instanceof Set)) return this.#write(entry, frame) ? 1 : 0
    let written = 0
    for (const socket of entry) if (this.#write(socket, frame)) written++
    return written
  }

  /**
   * A socket whose unsent backlog is past `maxBackpressureBytes` is closed with 4008 instead
   * (cause `evicted`: the edge drops a slow consumer); the frame that crosses the bound is
   * still queued, so a backlog never exceeds the bound plus one frame.
   */
  #write(socket: S, frame: string): boolean {
    if (socket.getBufferedAmount() > this.#deps.maxBackpressureBytes) {
      this.#deps.metrics.backpressureCloses.inc()
      this.#deps.close(socket, CloseCode.tooSlow, 'too slow', 'evicted')
      return false
    }
    this.#corked = socket
    this.#corkedFrame = frame
    socket.cork(this.#sendCorked)
    this.#corked = undefined
    this.#corkedFrame = '' // the frame must not outlive the call
    return true
  }

  #counted(written: number): void {
    if (written > 0) this.#deps.metrics.pushesWritten.inc(written)
  }
}

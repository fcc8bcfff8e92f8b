import { closeReasonOf, framedAt, type CloseCause, type CloseReason, type DeliveryResult, type Position } from '@switchboard/protocol'

/** What delivery needs of a socket: uWS's WebSocket has it, and tests pass fakes. */
export interface PushSocket {
  getBufferedAmount(): number
  cork(cb: () => void): unknown
  send(message: string, isBinary?: boolean): unknown
}

/** Kept frames that reached a resuming socket's user while its inbox was being read, in arrival order. */
export type HeldFrames = (Position & { frame: string })[]

/** Recipients a delivery could not write, by why (a routed push's edge_routed_unwritten_total). */
export interface Unwritten {
  notHere: number
  closed: number
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
   * Records the reason's cause (or `options.cause`) for the socket's unregistration, then closes
   * it with the reason's code and text (or `options.text`). uWS runs the close handler, which
   * calls `remove`, before this returns; the socket must not be touched afterwards (uWS throws).
   */
  close(socket: S, reason: CloseReason, options?: CloseOptions): void
}

/** What a close site may say beyond its reason's row of CloseReasons. */
export interface CloseOptions {
  /** The close frame's reason text, instead of the row's. */
  text?: string
  /** The cause its removal records, instead of the row's. */
  cause?: CloseCause
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
  /** Sockets of a user resuming (reading its inbox): the kept frames that came meanwhile. */
  readonly #resuming = new Map<string, Set<HeldFrames>>()
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

  userOf(socket: S): string {
    return this.#deps.userOf(socket)
  }

  /** Number of indexed sockets of `userId`. */
  countOf(userId: string): number {
    const entry = this.#byUser.get(userId)
    return entry === undefined ? 0 : entry instanceof Set ? entry.size : 1
  }

  /** The indexed sockets of `userId` (a copy). */
  socketsOf(userId: string): S[] {
    const entry = this.#byUser.get(userId)
    return entry === undefined ? [] : entry instanceof Set ? [...entry] : [entry]
  }

  /**
   * Writes `frame` to every socket of each recipient; delivered = written to at least one open
   * socket. A kept push (`at`: each recipient's inbox position) gets the position spliced in
   * per user, and is also held for the user's sockets that are resuming (not counted: held is
   * not written). `unwritten`, when given, counts the missing by why: no socket of the user
   * here (`notHere`), or every one closed instead as too slow (`closed`).
   */
  deliver(frame: string, to: readonly string[], at?: readonly (Position | undefined)[], unwritten?: Unwritten): DeliveryResult {
    const delivered: string[] = []
    const missing: string[] = []
    let written = 0
    for (let i = 0; i < to.length; i++) {
      const userId = to[i]!
      const position = at?.[i]
      const f = position ? framedAt(frame, position.epoch, position.offset) : frame
      const entry = this.#byUser.get(userId)
      const n = this.#writeEntry(entry, f)
      if (n > 0) delivered.push(userId)
      else {
        missing.push(userId)
        if (unwritten) entry === undefined ? unwritten.notHere++ : unwritten.closed++
      }
      written += n
      if (position && this.#resuming.size > 0) this.#resuming.get(userId)?.forEach((held) => held.push({ ...position, frame: f }))
    }
    this.#counted(written)
    return { delivered, missing }
  }

  /**
   * Writes `frame` to each of `sockets` (a room's token members: sockets, not users); returns the
   * users written to, each once.
   */
  writeTo(frame: string, sockets: readonly S[]): string[] {
    const reached = new Set<string>()
    let written = 0
    for (const socket of sockets) {
      if (!this.#write(socket, frame)) continue
      reached.add(this.#deps.userOf(socket))
      written++
    }
    this.#counted(written)
    return [...reached]
  }

  /** A socket of `userId` starts resuming: kept frames for the user are held for it until `endResume`. */
  beginResume(userId: string): HeldFrames {
    const held: HeldFrames = []
    const set = this.#resuming.get(userId)
    if (set) set.add(held)
    else this.#resuming.set(userId, new Set([held]))
    return held
  }

  endResume(userId: string, held: HeldFrames): void {
    const set = this.#resuming.get(userId)
    if (set?.delete(held) && set.size === 0) this.#resuming.delete(userId)
  }

  /**
   * Writes frames, corked together, to a socket about to join the index: its welcome and, when
   * it resumed, its replay. Nothing was written to it before, so no backlog bound applies; the
   * next push checks the bound as usual.
   */
  writeAll(socket: S, frames: readonly string[]): void {
    socket.cork(() => {
      for (const f of frames) socket.send(f, false)
    })
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
  disconnect(userId: string, code: number, text: string, connIds?: readonly string[]): number {
    const close = (socket: S) => this.#deps.close(socket, closeReasonOf(code) ?? 'kicked', { text, cause: 'disconnect_api' })
    let closed = 0
    if (connIds) {
      for (const connId of connIds) {
        const socket = this.#deps.findConn(connId)
        if (socket === undefined || this.#deps.userOf(socket) !== userId) continue
        close(socket)
        closed++
      }
      return closed
    }
    const entry = this.#byUser.get(userId)
    if (entry instanceof Set) {
      for (const socket of entry) {
        close(socket)
        closed++
      }
    } else if (entry !== undefined) {
      close(entry)
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
      this.#deps.close(socket, 'too_slow')
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

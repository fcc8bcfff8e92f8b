import { CloseCode, PONG_FRAME, framedAt, parseClientFrame, welcomeFrame, type CloseCause, type Position } from '@switchboard/protocol'
import type { ConnectionInfo, InboxRead } from '@switchboard/registry'
import { systemClock, type Clock } from './clock.js'
import type { ConnIds } from './conn-ids.js'
import { UserSockets, type Count, type HeldFrames, type PushSocket } from './delivery.js'

export type ResumeResult = 'recovered' | 'not_recovered' | 'started' | 'failed'

/** Where a client socket is in its life: a small integer, not a promise per socket. */
export const Registering = 0
export const Open = 1
export const Closed = 2
export type ConnState = typeof Registering | typeof Open | typeof Closed

/** Per client socket, for its whole life (uWS user data): small integers next to the user id. */
export interface Conn {
  readonly userId: string
  /** Its connId is `connIds.format(seq)`, built when needed. */
  readonly seq: number
  /** Connected at, in ms since the edge started (a small integer). */
  readonly sinceMs: number
  /** Registering until its registry entry is written and the welcome sent; Closed from the close handler on. */
  state: ConnState
  /** Client frames in the current one-second window, and when it started (ms since the edge started). */
  frames: number
  windowStartMs: number
  /**
   * Set by the edge just before it closes the socket; undefined when the client or the network
   * closed it. Never read from the close code: a client may send any code, 4501 included.
   */
  closeCause: CloseCause | undefined
  /** Set when the client offered `resume.`: the position it resumes from, if it has one. */
  readonly resume: { from: Position | undefined } | undefined
  /** Counted among its user's sockets in the edge's rooms (LocalRooms.arrive), so its close departs. */
  arrived: boolean
  /** The rooms its token's `rooms` claim joins, for its life. */
  readonly tokenRooms: readonly string[]
}

/** What the lifecycle needs of a client socket: uWS's WebSocket<Conn> has it, and tests pass fakes. */
export interface ClientSocket extends PushSocket {
  getUserData(): Conn
  /**
   * Closes with a close frame. uWS runs the close handler (`closed`) before `end` returns; the
   * socket must not be touched afterwards (uWS throws).
   */
  end(code: number, reason: string): void
}

/** Where connections are written: Registration, or a fake. */
export interface ConnectionRegistration {
  /** Resolves once the entry is written, or queued for the next resync. */
  register(conn: ConnectionInfo): Promise<void>
  unregister(userId: string, connId: string, cause: CloseCause): Promise<void>
}

export interface ConnectionsDeps {
  nodeId: string
  connIds: ConnIds
  registration: ConnectionRegistration
  /** ms epoch of the edge's start: per-socket times are small integers relative to it. */
  startedAt: number
  maxBackpressureBytes: number
  /** Past either bound a client is closed (cause `evicted`). */
  maxFramesPerS: number
  maxFrameBytes: number
  metrics: {
    /** Push frames written. */
    pushesWritten: Count
    backpressureCloses: Count
    welcomes: Count
    pongs: Count
    framesReceived: Count
    /** By close code, as received by the close handler. */
    closes: { inc(labels: { code: string }): void }
  }
  /** Drain spreading and frame-rate windows; defaults to the real ones. */
  clock?: Clock
  /** Where a resuming client's missed kept pushes are read; without one, a resume is answered as if the read failed. */
  inbox?: { read(userId: string, from: Position | undefined): Promise<InboxRead> }
  /** A resume's outcome: `recovered`, `not_recovered` (the inbox cannot vouch), `started` (no position yet: head only), `failed` (the read failed). */
  resumes?: { inc(labels: { result: ResumeResult }): void }
  /** Why a resume read failed (the socket is welcomed with `recovered: false`). */
  onResumeError?: (err: unknown) => void
  /** The rooms of this edge's users: a registered socket's user arrives (its rooms read) before its welcome, and departs at its close. */
  rooms?: { arrive(userId: string, socket: ClientSocket, tokenRooms: readonly string[]): Promise<void>; depart(userId: string, socket: ClientSocket, tokenRooms: readonly string[]): void }
}

/**
 * The client sockets of one edge from upgrade to close: the registration each one waits for
 * before its welcome, the index of welcomed sockets (`sockets`), frame checks, every close the
 * edge makes with its cause, and the drain. uWS handlers call `opened`, `received` and `closed`.
 *
 * A removal never overtakes its registration: a socket closed while registering is unregistered
 * only once its `register` resolved. Pings that arrive before the welcome are answered right
 * after it, so a pong never overtakes the welcome.
 */
export class Connections<S extends ClientSocket> {
  /** The welcomed sockets by user: what internal calls deliver to and disconnect. */
  readonly sockets: UserSockets<S>
  readonly #deps: ConnectionsDeps
  readonly #clock: Clock
  /** Every open client socket by seq, welcomed or not: evictions by connId and resyncs. */
  readonly #bySeq = new Map<number, S>()
  /** Pings answered before the welcome is out, by socket. */
  readonly #owedPongs = new Map<Conn, number>()
  #draining = false

  constructor(deps: ConnectionsDeps) {
    this.#deps = deps
    this.#clock = deps.clock ?? systemClock
    this.sockets = new UserSockets<S>({
      maxBackpressureBytes: deps.maxBackpressureBytes,
      metrics: deps.metrics,
      findConn: (connId) => this.#find(connId),
      userOf: (ws) => ws.getUserData().userId,
      close: (ws, code, reason, cause) => this.close(ws, code, reason, cause),
    })
  }

  get isDraining(): boolean {
    return this.#draining
  }

  /**
   * The user data of a socket about to be upgraded; `resume`: what its `resume.` subprotocol
   * asked, if any; `tokenRooms`: its token's `rooms` claim.
   */
  accept(userId: string, resume?: { from: Position | undefined }, tokenRooms: readonly string[] = []): Conn {
    const sinceMs = this.#clock.now() - this.#deps.startedAt
    return { userId, seq: this.#deps.connIds.nextSeq(), sinceMs, state: Registering, frames: 0, windowStartMs: -1_000, closeCause: undefined, resume, arrived: false, tokenRooms }
  }

  /** Welcomed and not closed: a room push writes only to such sockets. */
  isOpen(ws: S): boolean {
    return ws.getUserData().state === Open
  }

  /** uWS open: registers the socket; its welcome follows once the entry is written. */
  opened(ws: S): void {
    const conn = ws.getUserData()
    this.#bySeq.set(conn.seq, ws)
    void this.#deps.registration.register(this.#info(conn)).then(() => this.#registered(ws, conn))
  }

  /** uWS message: a client may send pings only, within its rate and size bounds. */
  received(ws: S, message: ArrayBuffer, isBinary: boolean): void {
    const { metrics, maxFramesPerS, maxFrameBytes } = this.#deps
    const conn = ws.getUserData()
    metrics.framesReceived.inc()
    const now = this.#clock.now() - this.#deps.startedAt
    if (now - conn.windowStartMs >= 1_000) {
      conn.windowStartMs = now
      conn.frames = 0
    }
    if (++conn.frames > maxFramesPerS) return this.close(ws, CloseCode.tooSlow, 'rate limited', 'evicted')
    if (message.byteLength > maxFrameBytes) return this.close(ws, CloseCode.messageTooBig, 'frame too big', 'evicted')
    const frame = isBinary ? undefined : parseClientFrame(Buffer.from(message).toString('utf8'))
    if (!frame) return this.close(ws, CloseCode.protocolViolation, 'invalid frame', 'evicted')
    if (conn.state === Registering) {
      this.#owedPongs.set(conn, (this.#owedPongs.get(conn) ?? 0) + 1) // sent right after the welcome
      return
    }
    ws.cork(() => ws.send(PONG_FRAME, false))
    metrics.pongs.inc()
  }

  /**
   * uWS close, whoever closed it: `code` is for the metric only; the cause is what the edge
   * recorded when it closed the socket, else `close` (the client or the network).
   */
  closed(ws: S, code: number): void {
    const conn = ws.getUserData()
    const wasOpen = conn.state === Open
    conn.state = Closed
    this.#bySeq.delete(conn.seq)
    this.#deps.metrics.closes.inc({ code: String(code) })
    if (conn.arrived) this.#deps.rooms!.depart(conn.userId, ws, conn.tokenRooms)
    if (!wasOpen) return // still registering: #registered removes its entry once written
    this.sockets.remove(conn.userId, ws)
    void this.#deps.registration.unregister(conn.userId, this.#deps.connIds.format(conn.seq), conn.closeCause ?? 'close')
  }

  /** Every close the edge makes goes through here, so its cause reaches the registry. */
  close(ws: S, code: number, reason: string, cause: CloseCause): void {
    ws.getUserData().closeCause = cause
    ws.end(code, reason)
  }

  /** Closes an open socket of this edge (welcomed or not) by connId; false if it is not here. */
  closeById(connId: string, code: number, reason: string, cause: CloseCause): boolean {
    const ws = this.#find(connId)
    if (ws) this.close(ws, code, reason, cause)
    return ws !== undefined
  }

  /**
   * Every open socket, welcomed or not, for a resync: one whose registration is in flight under
   * a lease just lost must be re-written too (Redis applies that earlier write first).
   */
  liveConnections(): ConnectionInfo[] {
    return Array.from(this.#bySeq.values(), (ws) => this.#info(ws.getUserData()))
  }

  /** From now on a socket whose registration completes is closed with 1001 instead of welcomed. False if already draining. */
  beginDrain(): boolean {
    if (this.#draining) return false
    this.#draining = true
    return true
  }

  /**
   * Closes every welcomed socket with 1001 (cause `drain`) at a random moment within `drainMs`,
   * so the clients don't all come back at the same moment. Resolves when all are closed.
   */
  closeAll(drainMs: number): Promise<void> {
    const clock = this.#clock
    return Promise.all(
      this.sockets.all().map((ws) => {
        // Read now: a socket the client closes meanwhile must not be touched (uWS throws).
        const conn = ws.getUserData()
        return new Promise<void>((resolve) => {
          clock.setTimeout(() => {
            if (conn.state !== Closed) this.close(ws, CloseCode.draining, 'edge draining', 'drain')
            resolve()
          }, clock.random() * drainMs)
        })
      }),
    ).then(() => undefined)
  }

  /**
   * The socket's entry is written (or queued for resync while Redis is down): welcome means
   * reachable, so only now does it join the index and get its welcome. A push that finds the
   * entry is handled in a later macrotask than this continuation, so it finds the socket. Its
   * user's rooms are read next (after the entry: a membership added meanwhile is either read or
   * sent here by the router, which looks the user up after writing it); then a resuming socket
   * reads its inbox (#resume).
   */
  #registered(ws: S, conn: Conn): void {
    if (conn.state === Registering && this.#draining) this.close(ws, CloseCode.draining, 'edge draining', 'drain') // the close handler marks it Closed
    const rooms = this.#deps.rooms
    if (conn.state === Registering && rooms) {
      conn.arrived = true
      void rooms.arrive(conn.userId, ws, conn.tokenRooms).then(() => this.#inRooms(ws, conn))
      return
    }
    this.#inRooms(ws, conn)
  }

  #inRooms(ws: S, conn: Conn): void {
    if (conn.state === Registering && conn.resume) void this.#resume(ws, conn, conn.resume.from)
    else this.#open(ws, conn, [], undefined)
  }

  /**
   * Replay, then live, with no gap and no duplicate. The entry is already written, so a kept
   * push appended after the read below finds it and is delivered here; while the read is in
   * flight such pushes are held (UserSockets.beginResume). The read returns every kept push
   * appended before it; held ones it already returned (offset at most its last) are dropped, the
   * rest follow the replay in offset order. The socket stays Registering meanwhile: not in the
   * index (a plain push is not written to it, and says so), and a close is handled as for a
   * registering socket.
   */
  async #resume(ws: S, conn: Conn, from: Position | undefined): Promise<void> {
    const { inbox, resumes } = this.#deps
    const held = this.sockets.beginResume(conn.userId)
    let read: InboxRead | undefined
    try {
      if (!inbox) throw new Error('this edge has no inbox')
      read = await inbox.read(conn.userId, from)
      resumes?.inc({ result: read.recovered === undefined ? 'started' : read.recovered ? 'recovered' : 'not_recovered' })
    } catch (err) {
      resumes?.inc({ result: 'failed' })
      this.#deps.onResumeError?.(err)
    } finally {
      this.sockets.endResume(conn.userId, held)
    }
    if (conn.state === Registering && this.#draining) this.close(ws, CloseCode.draining, 'edge draining', 'drain')
    if (!read) {
      // No read: no position to give, and every held frame is news to the client.
      return this.#open(ws, conn, held.map((h) => h.frame), { recovered: from ? false : undefined, head: undefined })
    }
    // Recovered: the replay, then what came after it. Otherwise the client starts over from the head.
    const frames = read.recovered ? replayed(from!, read.entries, held) : replayed(read.head, [], held)
    this.#open(ws, conn, frames, { recovered: read.recovered, head: read.head })
  }

  /** Welcomes the socket (with what its resume found), writes `frames` after the welcome, then lets it join the index. */
  #open(ws: S, conn: Conn, frames: readonly string[], resume: { recovered: boolean | undefined; head: Position | undefined } | undefined): void {
    const pongs = this.#owedPongs.get(conn) ?? 0
    if (pongs > 0) this.#owedPongs.delete(conn)
    const connId = this.#deps.connIds.format(conn.seq)
    if (conn.state === Closed) {
      // Closed while registering: its removal runs only now, so it cannot overtake the write.
      void this.#deps.registration.unregister(conn.userId, connId, conn.closeCause ?? 'close')
      return
    }
    const out = [welcomeFrame(connId, this.#deps.nodeId, resume), ...frames]
    for (let i = 0; i < pongs; i++) out.push(PONG_FRAME)
    this.sockets.writeAll(ws, out)
    conn.state = Open
    this.sockets.add(conn.userId, ws)
    this.#deps.metrics.welcomes.inc()
    if (frames.length > 0) this.#deps.metrics.pushesWritten.inc(frames.length)
    if (pongs > 0) this.#deps.metrics.pongs.inc(pongs)
  }

  #find(connId: string): S | undefined {
    const seq = this.#deps.connIds.parse(connId)
    return seq === undefined ? undefined : this.#bySeq.get(seq)
  }

  #info(conn: Conn): ConnectionInfo {
    return { userId: conn.userId, connId: this.#deps.connIds.format(conn.seq), since: this.#deps.startedAt + conn.sinceMs }
  }
}

/**
 * The frames a resuming socket gets after its welcome: the inbox's entries after `from`, then
 * the held kept frames the read did not return (a later offset, or another life of the inbox),
 * those of the same life in offset order. With no entries and `from` the head, the held
 * frames past the head.
 */
export function replayed(from: Position, entries: readonly { offset: number; frame: string }[], held: HeldFrames): string[] {
  const last = entries.at(-1)?.offset ?? from.offset
  const later = held.filter((h) => h.epoch === from.epoch && h.offset > last).sort((a, b) => a.offset - b.offset)
  const otherLife = held.filter((h) => h.epoch !== from.epoch)
  const seen = new Set<number>()
  const out = entries.map((e) => framedAt(e.frame, from.epoch, e.offset))
  for (const h of later) {
    if (seen.has(h.offset)) continue // the same push held twice (two deliveries to this edge)
    seen.add(h.offset)
    out.push(h.frame)
  }
  for (const h of otherLife) out.push(h.frame)
  return out
}

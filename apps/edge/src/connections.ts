import { CloseReasons, PONG_FRAME, causeOf, closeReasonOf, errorFrame, framedAt, inboxFrame, parseClientFrame, refreshedFrame, welcomeFrame, type CloseCause, type CloseReason, type Position } from '@switchboard/protocol'
import { isRevoked, type ConnectionInfo, type InboxRead } from '@switchboard/registry'
import { systemClock, type Clock } from './clock.js'
import type { ConnIds } from './conn-ids.js'
import { UserSockets, type CloseOptions, type Count, type HeldFrames, type PushSocket } from './delivery.js'
import { Expiries } from './expiries.js'
import { Receipts, type ReceiptsDeps } from './receipts.js'
import { TokenError, type TokenVerifier, type VerifiedToken } from './tokens.js'

const UNCOUNTED = { inc() {} }
const UNCOUNTED_RECEIPTS: ReceiptsDeps<unknown>['metrics'] = { acks: { ok: UNCOUNTED, unknown: UNCOUNTED }, settled: { acked: UNCOUNTED, unacked: UNCOUNTED } }

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
  /** The rooms its token's `rooms` claim joins, until a refresh brings another claim. */
  tokenRooms: readonly string[]
  /** Its token's `exp` (s epoch) while it has an entry in the edge's expiries; 0 once it has none (expired, or no token given). */
  expS: number
  /**
   * Its token's `iat`, in whole ms since the edge started (a small integer, not a boxed double:
   * rounded down, which only makes the revocation check stricter), checked against its user's
   * revocation at every registry write (resyncs too). Undefined when the token has none.
   */
  iatMs: number | undefined
}

/** What `accept` takes of a verified token. */
export type TokenLifetime = Pick<VerifiedToken, 'exp' | 'iat'>

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
  /** Past either bound a client is closed (`rate_limited`, `message_too_big`). */
  maxFramesPerS: number
  maxFrameBytes: number
  metrics: {
    /** Push frames written. */
    pushesWritten: Count
    backpressureCloses: Count
    welcomes: Count
    pongs: Count
    framesReceived: Count
    /** By close code, as received by the close handler, and the edge's reason for it (CloseReasons), `client` when the client or the network closed it. */
    closes: { inc(labels: { code: string; reason: CloseReason | 'client' }): void }
  }
  /** Counts of receipts (acks received, recipients settled); without it they are not counted. */
  receipts?: ReceiptsDeps<unknown>['metrics']
  /** Drain spreading and frame-rate windows; defaults to the real ones. */
  clock?: Clock
  /** Where a resuming client's missed kept pushes are read; without one, a resume is answered as if the read failed. */
  inbox?: { read(userId: string, from: Position | undefined): Promise<InboxRead>; heads?(userIds: readonly string[]): Promise<(Position | undefined)[]> }
  /** A resume's outcome: `recovered`, `not_recovered` (the inbox cannot vouch), `started` (no position yet: head only), `failed` (the read failed). */
  resumes?: { inc(labels: { result: ResumeResult }): void }
  /** Why a resume read failed (the socket is welcomed with `recovered: false`). */
  onResumeError?: (err: unknown) => void
  /** The rooms of this edge's users: a registered socket's user arrives (its rooms read) before its welcome, and departs at its close. */
  rooms?: {
    arrive(userId: string, socket: ClientSocket, tokenRooms: readonly string[]): Promise<void>
    depart(userId: string, socket: ClientSocket, tokenRooms: readonly string[]): void
    /** A refresh changed an arrived socket's `rooms` claim: it leaves and joins the difference; resolves once indexed. */
    retoken(socket: ClientSocket, userId: string, before: readonly string[], after: readonly string[]): Promise<void>
  }
  /** Token expiry and refresh (README, "Token lifetime"). Without it, connections never expire and a refresh is answered `invalid_token`. */
  tokens?: {
    /** The same verifier as the handshake's. */
    verify: TokenVerifier
    /** EDGE_JWT_CLOCK_TOLERANCE_S: a connection closes this long after its token's `exp`. */
    clockToleranceS: number
    /** The user's revocation cutoff (ms epoch, registry clock), if any: a refresh token issued at or before it is refused. */
    cutoffOf(userId: string): Promise<number | undefined>
    /** A refresh's outcome. */
    refreshes: { inc(labels: { result: RefreshResult }): void }
    /** Connections closed because their token expired. */
    expired: Count
    /** Why a refresh could not be checked against revocations. */
    onCutoffError?: (err: unknown) => void
  }
}

/**
 * `ok`; `invalid` (the token does not verify: an error frame, the socket stays); `other_user`
 * (its `sub` is not the connection's: closed 1008); `revoked` (closed 4503); `unavailable` (the
 * revocation could not be read: an error frame, the client retries).
 */
export type RefreshResult = 'ok' | 'invalid' | 'other_user' | 'revoked' | 'unavailable'

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
  /** Pushes waiting for their recipients' acknowledgements (`ack` frames). */
  readonly receipts: Receipts<S>
  readonly #deps: ConnectionsDeps
  readonly #clock: Clock
  /** Every open client socket by seq, welcomed or not: evictions by connId and resyncs. */
  readonly #bySeq = new Map<number, S>()
  /** Frames answering client frames (pongs, refreshes) that arrived before the welcome, sent right after it. */
  readonly #owed = new Map<Conn, string[]>()
  #announcing: Promise<void> | undefined
  #announceAgain = false
  /** When each token expires: one heap and one timer for the edge. */
  readonly #expiries: Expiries<Conn> | undefined
  #draining = false

  constructor(deps: ConnectionsDeps) {
    this.#deps = deps
    this.#clock = deps.clock ?? systemClock
    const userOf = (ws: S) => ws.getUserData().userId
    this.sockets = new UserSockets<S>({
      maxBackpressureBytes: deps.maxBackpressureBytes,
      metrics: deps.metrics,
      findConn: (connId) => this.#find(connId),
      userOf,
      close: (ws, reason, options) => this.close(ws, reason, options),
    })
    this.receipts = new Receipts<S>({ clock: this.#clock, userOf, metrics: deps.receipts ?? UNCOUNTED_RECEIPTS })
    const tokens = deps.tokens
    if (tokens) {
      this.#expiries = new Expiries<Conn>({
        clock: this.#clock,
        deadlineOf: (conn) => (conn.expS === 0 || conn.state === Closed ? undefined : this.#deadlineOf(conn)),
        expire: (conn) => {
          conn.expS = 0 // its entry is gone: the close must not count it stale
          const ws = this.#bySeq.get(conn.seq)
          if (!ws) return
          tokens.expired.inc()
          this.close(ws, 'token_expired')
        },
      })
    }
  }

  /** Connections waiting for their token's expiry. */
  get expiring(): number {
    return this.#expiries?.size ?? 0
  }

  get isDraining(): boolean {
    return this.#draining
  }

  /**
   * The user data of a socket about to be upgraded; `resume`: what its `resume.` subprotocol
   * asked, if any; `tokenRooms`: its token's `rooms` claim; `token`: its `exp` and `iat` (without
   * it, the connection never expires).
   */
  accept(userId: string, resume?: { from: Position | undefined }, tokenRooms: readonly string[] = [], token?: TokenLifetime): Conn {
    const sinceMs = this.#sinceStart(this.#clock.now())
    return {
      userId,
      seq: this.#deps.connIds.nextSeq(),
      sinceMs,
      state: Registering,
      frames: 0,
      windowStartMs: -1_000,
      closeCause: undefined,
      resume,
      arrived: false,
      tokenRooms,
      expS: this.#expiries && token ? token.exp : 0,
      iatMs: this.#relativeMs(token?.iat),
    }
  }

  /** Welcomed and not closed: a room push writes only to such sockets. */
  isOpen(ws: S): boolean {
    return ws.getUserData().state === Open
  }

  /** uWS open: registers the socket; its welcome follows once the entry is written. */
  opened(ws: S): void {
    const conn = ws.getUserData()
    this.#bySeq.set(conn.seq, ws)
    if (conn.expS !== 0) this.#expiries!.add(conn, this.#deadlineOf(conn))
    void this.#deps.registration.register(this.#info(conn)).then(() => this.#registered(ws, conn))
  }

  /** uWS message: a client may send pings, refreshes and acks, within its rate and size bounds. */
  received(ws: S, message: ArrayBuffer, isBinary: boolean): void {
    const { metrics, maxFramesPerS, maxFrameBytes } = this.#deps
    const conn = ws.getUserData()
    metrics.framesReceived.inc()
    const now = this.#sinceStart(this.#clock.now())
    if (now - conn.windowStartMs >= 1_000) {
      conn.windowStartMs = now
      conn.frames = 0
    }
    if (++conn.frames > maxFramesPerS) return this.close(ws, 'rate_limited')
    if (message.byteLength > maxFrameBytes) return this.close(ws, 'message_too_big')
    const frame = isBinary ? undefined : parseClientFrame(Buffer.from(message).toString('utf8'))
    if (!frame) return this.close(ws, 'protocol_violation')
    if (frame.type === 'refresh') return this.#refresh(ws, conn, frame.token)
    if (frame.type === 'ack') return this.receipts.acked(ws, frame.ids)
    this.#answer(ws, conn, PONG_FRAME)
  }

  /** Sends an answer to a client frame now, or right after the welcome if it is not out yet. */
  #answer(ws: S, conn: Conn, frame: string): void {
    if (conn.state === Closed) return
    if (conn.state === Registering) {
      const owed = this.#owed.get(conn)
      if (owed) owed.push(frame)
      else this.#owed.set(conn, [frame])
      return
    }
    ws.cork(() => ws.send(frame, false))
    if (frame === PONG_FRAME) this.#deps.metrics.pongs.inc()
  }

  /**
   * A `refresh`: the token is verified as at the handshake, must name the same user and must
   * postdate the user's revocation, if any (one registry read); then the connection takes its
   * `exp`, `iat` and `rooms`, and is answered `refreshed`. No registry write: the socket and its
   * entry stay as they are. A bad token gets an error frame and changes nothing; another user's
   * token closes the socket (1008), a revoked one too (4503).
   */
  #refresh(ws: S, conn: Conn, token: string): void {
    const tokens = this.#deps.tokens
    let verified: VerifiedToken
    try {
      if (!tokens) throw new TokenError('this edge does not refresh tokens')
      verified = tokens.verify(token)
    } catch (err) {
      tokens?.refreshes.inc({ result: 'invalid' })
      return this.#answer(ws, conn, errorFrame('invalid_token', (err instanceof TokenError && err.publicMessage) || 'invalid or expired token'))
    }
    if (verified.userId !== conn.userId) {
      tokens.refreshes.inc({ result: 'other_user' })
      return this.close(ws, 'protocol_violation', { text: 'refresh token is for another user' })
    }
    tokens.cutoffOf(conn.userId).then(
      (cutoffMs) => {
        if (conn.state === Closed) return
        if (isRevoked(verified.iat, cutoffMs)) {
          tokens.refreshes.inc({ result: 'revoked' })
          return this.close(ws, 'revoked')
        }
        void this.#retoken(ws, conn, verified).then(() => {
          tokens.refreshes.inc({ result: 'ok' })
          this.#answer(ws, conn, refreshedFrame(verified.exp))
        })
      },
      (err: unknown) => {
        tokens.refreshes.inc({ result: 'unavailable' })
        tokens.onCutoffError?.(err)
        this.#answer(ws, conn, errorFrame('refresh_unavailable', 'cannot check the token now; retry'))
      },
    )
  }

  /** Gives the connection the refreshed token's lifetime and rooms; resolves once its rooms are indexed. */
  #retoken(ws: S, conn: Conn, token: VerifiedToken): Promise<void> {
    if (conn.expS !== 0) this.#expiries!.forget()
    conn.expS = token.exp
    conn.iatMs = this.#relativeMs(token.iat)
    this.#expiries!.add(conn, this.#deadlineOf(conn))
    const before = conn.tokenRooms
    const rooms = this.#deps.rooms
    if (!rooms) return Promise.resolve()
    conn.tokenRooms = token.rooms
    // Not arrived yet: its arrival joins the new claim's rooms.
    return conn.arrived ? rooms.retoken(ws, conn.userId, before, token.rooms) : Promise.resolve()
  }

  /** A token time (s epoch) in whole ms since the edge started. */
  #relativeMs(s: number | undefined): number | undefined {
    return s === undefined ? undefined : this.#sinceStart(s * 1_000)
  }

  /**
   * A time (ms epoch) in whole ms since the edge started, rounded down. Math.floor returns a small
   * integer (a Smi) where the value fits, where the difference of two epochs is a boxed double:
   * uWS copies the user data into the socket object, and one double stored in a field makes V8
   * box that field in every socket (16 bytes each).
   */
  #sinceStart(ms: number): number {
    return Math.floor(ms - this.#deps.startedAt)
  }

  /** When the connection's token expires, with the clock tolerance (ms epoch). */
  #deadlineOf(conn: Conn): number {
    return (conn.expS + this.#deps.tokens!.clockToleranceS) * 1_000
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
    this.#owed.delete(conn)
    if (conn.expS !== 0) this.#expiries!.forget()
    // The edge's close codes name one reason each; a code the client chose is the client's.
    this.#deps.metrics.closes.inc({ code: String(code), reason: (conn.closeCause && closeReasonOf(code)) ?? 'client' })
    if (conn.arrived) this.#deps.rooms!.depart(conn.userId, ws, conn.tokenRooms)
    this.receipts.closed(ws)
    if (!wasOpen) return // still registering: #registered removes its entry once written
    this.sockets.remove(conn.userId, ws)
    void this.#deps.registration.unregister(conn.userId, this.#deps.connIds.format(conn.seq), conn.closeCause ?? 'close')
  }

  /**
   * Every close the edge makes goes through here, with a reason of CloseReasons (its code, its
   * text unless `options.text` says more, its cause unless `options.cause` overrides it), so
   * its cause reaches the registry.
   */
  close(ws: S, reason: CloseReason, options?: CloseOptions): void {
    ws.getUserData().closeCause = options?.cause ?? causeOf(reason)
    ws.end(CloseReasons[reason].code, options?.text ?? CloseReasons[reason].text)
  }

  /**
   * A revocation: closes every open socket of the user, welcomed or still registering (one whose
   * entry was written just before the revocation must not be welcomed after it), with 4503.
   * Scans the edge's sockets: revocations are rare. Returns how many were closed.
   */
  revokeUser(userId: string, reason: string): number {
    let closed = 0
    for (const ws of [...this.#bySeq.values()]) {
      if (ws.getUserData().userId !== userId) continue
      this.close(ws, 'revoked', { text: reason })
      closed++
    }
    return closed
  }

  /** Closes an open socket of this edge (welcomed or not) by connId; false if it is not here. */
  closeById(connId: string, reason: CloseReason): boolean {
    const ws = this.#find(connId)
    if (ws) this.close(ws, reason)
    return ws !== undefined
  }

  /**
   * Every open socket, welcomed or not, for a resync: one whose registration is in flight under
   * a lease just lost must be re-written too (Redis applies that earlier write first).
   */
  liveConnections(): ConnectionInfo[] {
    return Array.from(this.#bySeq.values(), (ws) => this.#info(ws.getUserData()))
  }

  /**
   * After the edge was cut off from the registry (a resync, or a renewal gap its lease may not
   * have survived) or lost a router link: kept pushes to its users may have been answered
   * `offline` or `failed` and only kept meanwhile, so every welcomed socket that offered
   * `resume.` gets its inbox's head (one read per partition); a client behind it resumes.
   * Sockets still registering resume anyway.
   */
  announceInboxes(): Promise<void> {
    // One at a time: a request during one runs once more after it (it may have read heads too early).
    if (this.#announcing) {
      this.#announceAgain = true
      return this.#announcing
    }
    this.#announcing = this.#announce().finally(() => {
      this.#announcing = undefined
      if (this.#announceAgain) {
        this.#announceAgain = false
        void this.announceInboxes()
      }
    })
    return this.#announcing
  }

  async #announce(): Promise<void> {
    const heads = this.#deps.inbox?.heads
    if (!heads) return
    const resumable = this.sockets.all().filter((ws) => ws.getUserData().resume !== undefined)
    if (resumable.length === 0) return
    const conns = resumable.map((ws) => ws.getUserData())
    const users = [...new Set(conns.map((c) => c.userId))]
    const found = await heads.call(this.#deps.inbox, users)
    const byUser = new Map(users.map((u, i) => [u, found[i]]))
    resumable.forEach((ws, i) => {
      const head = byUser.get(conns[i]!.userId)
      if (head && head.offset > 0) this.#answer(ws, conns[i]!, inboxFrame(head)) // skipped if it closed meanwhile
    })
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
            if (conn.state !== Closed) this.close(ws, 'going_away')
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
    if (conn.state === Registering && this.#draining) this.close(ws, 'going_away') // the close handler marks it Closed
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
    if (conn.state === Registering && this.#draining) this.close(ws, 'going_away')
    if (!read) {
      // No read: no position to give, and every held frame is news to the client.
      return this.#open(ws, conn, held.map((h) => h.frame), { recovered: from ? false : undefined, head: undefined })
    }
    // Recovered: the replay, then what came after it. Otherwise the client starts over from the
    // head, and gets what follows it (a new life of the inbox, whole: see InboxRead).
    const frames = replayed(read.recovered ? from! : read.head, read.entries, held)
    this.#open(ws, conn, frames, { recovered: read.recovered, head: read.head })
  }

  /** Welcomes the socket (with what its resume found), writes `frames` after the welcome, then lets it join the index. */
  #open(ws: S, conn: Conn, frames: readonly string[], resume: { recovered: boolean | undefined; head: Position | undefined } | undefined): void {
    const owed = this.#owed.get(conn)
    if (owed) this.#owed.delete(conn)
    const connId = this.#deps.connIds.format(conn.seq)
    if (conn.state === Closed) {
      // Closed while registering: its removal runs only now, so it cannot overtake the write.
      void this.#deps.registration.unregister(conn.userId, connId, conn.closeCause ?? 'close')
      return
    }
    const out = [welcomeFrame(connId, this.#deps.nodeId, resume), ...frames]
    if (owed) out.push(...owed)
    const pongs = owed ? owed.filter((f) => f === PONG_FRAME).length : 0
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
    const info: ConnectionInfo = { userId: conn.userId, connId: this.#deps.connIds.format(conn.seq), since: this.#deps.startedAt + conn.sinceMs }
    if (conn.iatMs !== undefined) info.iat = (this.#deps.startedAt + conn.iatMs) / 1_000
    return info
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

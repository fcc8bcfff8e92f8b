import {
  BEARER_PROTOCOL_PREFIX,
  PING_FRAME,
  Reconnect,
  SUBPROTOCOL,
  MAX_ACK_IDS,
  WS_PATH,
  ackFrame,
  backoffDelayMs,
  formatPosition,
  parsePosition,
  reconnectDelayMs,
  refreshFrame,
  resumeProtocol,
  shouldReconnect,
  type Position,
  type PushFrame,
  type ServerFrame,
} from '@switchboard/wire'

/** What the SDK needs of a WebSocket: the standard browser API (Node 22's global, or `ws` on Node 20). */
export interface WebSocketLike {
  readonly readyState: number
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}
export type WebSocketFactory = new (url: string, protocols: string[]) => WebSocketLike

/** Where the client keeps its position across page reloads: `sessionStorage` has this shape. */
export interface PositionStorage {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

/** Timers and clock; tests pass fake ones. */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export interface SwitchboardOptions {
  /** An edge (or the load balancer in front of the edges): `wss://push.example.com`; `/v1/ws` is added when the URL has no path. */
  url: string
  /**
   * Returns a client token (a JWT your backend minted). Called before every connection attempt,
   * and before the connected token expires (at a random point between 75 % and 90 % of its
   * remaining lifetime) to refresh the connection in place (README, "Token lifetime"). When it
   * throws at a connection attempt, the client stops (state `disconnected`, `willRetry: false`)
   * and emits `error`; when it throws at a refresh, the refresh is retried.
   */
  getToken: () => string | Promise<string>
  /** The WebSocket class; default `globalThis.WebSocket` (browsers, Node 22). On Node 20 pass `ws`'s. */
  WebSocket?: WebSocketFactory
  /** With no frame for this long, the client pings; default 25 s. */
  pingIntervalMs?: number
  /** A ping unanswered this long means a dead connection: closed and retried; default 10 s. */
  pongTimeoutMs?: number
  /**
   * Where the position of the last kept push is kept, so a reloaded page resumes: default
   * `sessionStorage` in browsers (per tab), none elsewhere (memory: the client resumes across
   * its own reconnects only). `null`: memory only.
   */
  storage?: PositionStorage | null
  /** The storage key; default `switchboard:<url>`. */
  storageKey?: string
  /**
   * Recovery of kept pushes missed while disconnected (README, "Recovery"); default true. The
   * edge then reads the user's inbox at each connect (one Redis call).
   */
  recover?: boolean
  /**
   * A kept push that arrives ahead of one still missing is held this long for the missing one
   * (pushes from two routers can cross); then the client reconnects and resumes, which fills
   * the gap. Default 5 s: above the routers' forward timeout (ROUTER_FORWARD_TIMEOUT_MS, 2 s).
   */
  gapTimeoutMs?: number
  /** Default: the real clock. */
  clock?: Clock
  /** Default: Math.random. */
  random?: () => number
}

export type ConnectionState = 'connecting' | 'connected' | 'disconnected'

/** What `state` listeners get. */
export type StateChange =
  | { state: 'connecting'; attempt: number }
  | {
      state: 'connected'
      connId: string
      nodeId: string
      /**
       * Only when the client resumed from a position: true when every kept push it missed
       * follows (before any live one), false when they are lost to it (the inbox was trimmed or
       * expired): refetch what the app shows.
       */
      recovered?: boolean
      /**
       * Only on a change of token while connected (same connId): `refreshed` (the connection now
       * lives until `exp`, s epoch), or `refresh_failed` (`error` says why; retried after
       * `retryInMs` while the token has not expired; then the edge closes with 4002 and the
       * client reconnects at once with a fresh token).
       */
      token?: 'refreshed' | 'refresh_failed'
      exp?: number
      error?: string
      retryInMs?: number
    }
  | {
      state: 'disconnected'
      /** The close code: the edge's, 1006 for a lost connection, 4000 for one the client found dead, 1000 after close(). */
      code: number
      reason: string
      /** False after close(), a final close code (4500-4999) or a getToken() failure. */
      willRetry: boolean
      /** When willRetry: the delay before the next attempt. */
      delayMs?: number
    }

/**
 * A push as listeners get it: `event`, `data`, its `id` (unique per push) and `ts` (ms epoch at
 * the router); `ack: true` when the backend asked for a receipt (the SDK acknowledges it once
 * every listener returned).
 */
export type Push = Omit<PushFrame, 'type'>

type Listener = (...args: never[]) => void
interface Events {
  state: (change: StateChange) => void
  push: (push: Push) => void
  error: (error: Error) => void
}

/** Closed by the client because no frame arrived within ping interval + pong timeout. */
export const DEAD_CONNECTION_CODE = 4000
/** Closed by the client to resume: a kept push stayed missing past gapTimeoutMs. */
export const GAP_CODE = 4001
/** Acks leave at most once per this interval (ms): ≤ 10 frames a second. */
export const ACK_EVERY_MS = 100
/** A refresh is due at this share of the token's remaining lifetime, plus up to REFRESH_JITTER more. */
const REFRESH_AT = 0.75
const REFRESH_JITTER = 0.15
/** A failed refresh is retried after up to this (doubling, full jitter), never later than halfway to the token's expiry. */
const REFRESH_RETRY_BASE_MS = 1_000
const REFRESH_RETRY_MIN_MS = 250
/** Push ids remembered to drop duplicates (a backend's retry, a replay of what came live). */
const SEEN_IDS = 1_000
const OPEN = 1
const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/**
 * A connection to Switchboard that stays up: it reconnects with full-jitter backoff (a short
 * random delay after an edge's drain), stops for good on a final close code (4500-4999),
 * fetches a token for every attempt, and closes and retries a connection that went silent.
 *
 * ```js
 * const sb = new Switchboard({ url: 'wss://push.example.com', getToken: () => fetchToken() })
 * sb.on('chat.message', (data) => render(data))
 * sb.on('state', (s) => console.log(s.state))
 * sb.connect()
 * ```
 */
export class Switchboard {
  readonly #url: string
  readonly #getToken: () => string | Promise<string>
  readonly #WebSocket: WebSocketFactory
  readonly #pingIntervalMs: number
  readonly #pongTimeoutMs: number
  readonly #clock: Clock
  readonly #random: () => number
  readonly #listeners = new Map<string, Set<Listener>>()
  #state: ConnectionState = 'disconnected'
  #ws: WebSocketLike | undefined
  /** Bumped by connect() and close(): a stale attempt (an awaited getToken) sees it changed and stops. */
  #generation = 0
  #attempt = 0
  #connectedAt: number | undefined
  #lastFrameAt = 0
  #retryTimer: unknown
  #livenessTimer: unknown
  #gapTimer: unknown
  /** The connected token's `exp` (ms epoch), if it has one. */
  #tokenExpMs: number | undefined
  #refreshTimer: unknown
  /** Consecutive refresh failures, for the retry's backoff. */
  #refreshFailures = 0
  /** A refresh sent and not yet answered: its deadline timer. */
  #refreshPending: unknown
  #connection: { connId: string; nodeId: string } | undefined
  #unwatch: (() => void) | undefined
  readonly #storage: PositionStorage | undefined
  readonly #storageKey: string
  readonly #gapTimeoutMs: number
  readonly #recover: boolean
  /** The last kept push handed to the app with every one before it (in this inbox life). */
  #position: Position | undefined
  /** Kept pushes that came ahead of a missing one, by offset. */
  readonly #ahead = new Map<number, Push>()
  /** Recent push ids, oldest first. */
  readonly #seen = new Set<string>()
  /** Ids of pushes asking for a receipt, handed to the app and not acknowledged yet. */
  #acks: string[] = []
  #ackTimer: unknown
  /** When the last ack frame left (clock ms). */
  #lastAckAt = -Infinity

  constructor(options: SwitchboardOptions) {
    const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket
    if (!WebSocketClass) throw new Error('no WebSocket implementation: pass one as options.WebSocket (e.g. from the ws package on Node 20)')
    this.#url = withPath(options.url)
    this.#getToken = options.getToken
    this.#WebSocket = WebSocketClass
    this.#pingIntervalMs = options.pingIntervalMs ?? 25_000
    this.#pongTimeoutMs = options.pongTimeoutMs ?? 10_000
    this.#clock = options.clock ?? realClock
    this.#random = options.random ?? Math.random
    this.#storage = options.storage === undefined ? sessionStorageIfAny() : (options.storage ?? undefined)
    this.#storageKey = options.storageKey ?? `switchboard:${this.#url}`
    this.#gapTimeoutMs = options.gapTimeoutMs ?? 5_000
    this.#recover = options.recover ?? true
    this.#position = this.#loadPosition()
  }

  /** The position the next connection resumes from: the last kept push handed over in order, if any. */
  get position(): Position | undefined {
    return this.#position
  }

  get state(): ConnectionState {
    return this.#state
  }

  /** Subscribes to `state`, `push` (every push), `error`, or one push event by its name. Returns the unsubscribe function. */
  on<K extends keyof Events>(name: K, listener: Events[K]): () => void
  on(name: string, listener: (data: unknown, push: Push) => void): () => void
  on(name: string, listener: Listener): () => void {
    let set = this.#listeners.get(name)
    if (!set) this.#listeners.set(name, (set = new Set()))
    set.add(listener)
    return () => this.off(name, listener)
  }

  off(name: string, listener: Listener): void {
    this.#listeners.get(name)?.delete(listener)
  }

  /** Starts connecting (and keeps reconnecting); does nothing while already connecting or connected. */
  connect(): void {
    if (this.#state !== 'disconnected' || this.#retryTimer !== undefined) return
    this.#generation++
    this.#attempt = 0
    this.#unwatch ??= watchEnvironment(() => this.#retrySoon())
    void this.#open(this.#generation)
  }

  /** Closes the connection and stops every timer and listener of the environment; connect() starts again. */
  close(): void {
    this.#generation++
    const ws = this.#ws
    this.#ws = undefined
    if (ws) {
      detach(ws)
      ws.close(1000, 'client closed')
    }
    const wasActive = this.#state !== 'disconnected' || ws !== undefined
    this.#ahead.clear() // replayed by the next connect()'s resume
    this.#stop()
    if (wasActive) this.#setState({ state: 'disconnected', code: 1000, reason: 'client closed', willRetry: false })
  }

  /** The one way the client stops for good (close(), a final close code, getToken() failing): no timer, no environment listener. */
  #stop(): void {
    this.#stopTimers()
    this.#unwatch?.()
    this.#unwatch = undefined
  }

  async #open(generation: number): Promise<void> {
    this.#setState({ state: 'connecting', attempt: this.#attempt })
    let token: string
    try {
      token = await this.#getToken()
    } catch (err) {
      if (generation !== this.#generation) return
      this.#emit('error', err instanceof Error ? err : new Error(String(err)))
      this.#stop()
      this.#setState({ state: 'disconnected', code: 1000, reason: 'getToken failed', willRetry: false })
      return
    }
    if (generation !== this.#generation) return // close() or connect() meanwhile
    const protocols = [SUBPROTOCOL, `${BEARER_PROTOCOL_PREFIX}${token}`]
    if (this.#recover) protocols.push(resumeProtocol(this.#position))
    const ws = new this.#WebSocket(this.#url, protocols)
    this.#ws = ws
    this.#tokenExpMs = expiryOf(token)
    this.#lastFrameAt = this.#clock.now()
    this.#armLiveness()
    ws.onmessage = (event) => this.#frame(event.data)
    ws.onclose = (event) => this.#closed(ws, event.code, event.reason)
    ws.onerror = ignore // a close event follows
  }

  #frame(data: unknown): void {
    this.#lastFrameAt = this.#clock.now()
    let frame: ServerFrame
    try {
      frame = JSON.parse(typeof data === 'string' ? data : String(data)) as ServerFrame
    } catch {
      return // not JSON: not from an edge
    }
    if (frame.type === 'welcome') {
      this.#connectedAt = this.#clock.now()
      const { connId, nodeId, recovered, epoch, offset } = frame
      // Not resumed (first connection, or what the position named is gone): start over from
      // the inbox's head. Resumed: the replay that follows moves the position. Not recovered
      // and no head: the edge could not read the inbox (cut off from Redis), so nothing is known
      // gone: the position stays, and the next resume (the edge's inbox head once it is back, or
      // a gap) replays what was missed.
      const hasHead = epoch !== undefined && offset !== undefined
      if (recovered !== true && this.#recover && (hasHead || recovered === undefined)) this.#setPosition(hasHead ? { epoch, offset } : undefined)
      this.#connection = { connId, nodeId }
      this.#refreshFailures = 0
      this.#scheduleRefresh()
      this.#setState(recovered === undefined ? { state: 'connected', connId, nodeId } : { state: 'connected', connId, nodeId, recovered })
    } else if (frame.type === 'refreshed') {
      if (this.#refreshPending === undefined) return
      this.#stopRefreshTimers()
      const renewed = frame.exp * 1_000 > (this.#tokenExpMs ?? 0)
      if (!renewed) return this.#refreshFailed('getToken() returned a token that expires no later than the current one')
      this.#tokenExpMs = frame.exp * 1_000
      this.#refreshFailures = 0
      this.#scheduleRefresh()
      this.#setState({ state: 'connected', ...this.#connection!, token: 'refreshed', exp: frame.exp })
    } else if (frame.type === 'inbox') {
      // The edge was cut off meanwhile: kept pushes may wait in the inbox past our position. Resume now to get them.
      const at = this.#position
      const behind = this.#recover && frame.offset > 0 && (at === undefined || at.epoch !== frame.epoch || at.offset < frame.offset)
      if (behind && this.#ahead.size === 0) this.#resumeNow('resuming: kept pushes wait in the inbox')
    } else if (frame.type === 'error') {
      if (this.#refreshPending !== undefined) this.#refreshFailed(`${frame.code}: ${frame.message}`)
    } else if (frame.type === 'push') {
      const { id, event, data, ts, ack, epoch, offset } = frame
      const push: Push = epoch === undefined || offset === undefined ? { id, event, data, ts } : { id, event, data, ts, epoch, offset }
      if (ack === true) push.ack = true
      this.#ordered(push)
    }
  }

  /**
   * A push in inbox order: a kept push next after the position is handed over and the position
   * advances (with any held ones now next); one ahead of a missing one is held for
   * gapTimeoutMs; one of another inbox life starts over from it. Plain pushes, and kept ones
   * before the position not seen yet, are handed over as they come.
   */
  #ordered(push: Push): void {
    const { epoch, offset } = push
    const at = this.#position
    if (epoch === undefined || offset === undefined) return this.#handOver(push)
    if (at === undefined || epoch !== at.epoch) {
      this.#flushAhead()
      this.#handOver(push)
      return this.#setPosition({ epoch, offset })
    }
    if (offset <= at.offset) return this.#handOver(push)
    if (offset > at.offset + 1) {
      this.#ahead.set(offset, push)
      if (this.#gapTimer === undefined) this.#gapTimer = this.#clock.setTimeout(() => this.#gapTimedOut(), this.#gapTimeoutMs)
      return
    }
    this.#handOver(push)
    let next = offset
    for (let held = this.#ahead.get(next + 1); held; held = this.#ahead.get(next + 1)) {
      this.#ahead.delete(++next)
      this.#handOver(held)
    }
    if (this.#ahead.size === 0) this.#stopGapTimer()
    this.#setPosition({ epoch, offset: next })
  }

  /**
   * To the app, once per push id; a push asking for a receipt is acknowledged once its listeners
   * returned (thrown or not: the app had it), and again if it comes again (a replay after a
   * reconnect: the app has it).
   */
  #handOver(push: Push): void {
    if (!this.#seen.has(push.id)) {
      this.#seen.add(push.id)
      if (this.#seen.size > SEEN_IDS) this.#seen.delete(this.#seen.values().next().value!)
      this.#emit('push', push)
      const { event } = push
      if (event !== 'push' && event !== 'state' && event !== 'error') this.#emit(event, push.data, push)
    }
    if (push.ack) this.#acknowledge(push.id)
  }

  /**
   * Queues an ack. Acks leave together, at most one frame per ACK_EVERY_MS (MAX_ACK_IDS ids
   * each): the first after a quiet spell at the end of the turn, later ones when the interval
   * is up, so receipts use at most half of the edge's default frame rate (20/s) however many
   * pushes arrive. They go on whatever socket is open then: an edge counts an ack for its user.
   */
  #acknowledge(id: string): void {
    this.#acks.push(id)
    if (this.#acks.length > 1) return // a flush is due already
    const waitMs = this.#lastAckAt + ACK_EVERY_MS - this.#clock.now()
    if (waitMs <= 0) queueMicrotask(() => this.#sendAcks())
    else this.#ackTimer = this.#clock.setTimeout(() => this.#sendAcks(), waitMs)
  }

  #sendAcks(): void {
    this.#ackTimer = undefined
    const ids = this.#acks
    this.#acks = []
    this.#lastAckAt = this.#clock.now()
    const ws = this.#ws
    // No socket open: the edges settled these receipts as unacked when their sockets closed.
    if (ws?.readyState !== OPEN) return
    for (let i = 0; i < ids.length; i += MAX_ACK_IDS) ws.send(ackFrame(ids.slice(i, i + MAX_ACK_IDS)))
  }

  /** The missing push did not come: reconnect and resume from the position (the replay brings it, then the held ones, in order). */
  #gapTimedOut(): void {
    this.#gapTimer = undefined
    this.#resumeNow('resuming to fill a gap')
  }

  /** Closes the socket (GAP_CODE) and reconnects at once from the position. */
  #resumeNow(reason: string): void {
    const ws = this.#ws
    if (!ws) return
    detach(ws)
    ws.close(GAP_CODE, reason)
    this.#closed(ws, GAP_CODE, reason)
  }

  /** Held pushes go to the app in offset order, gap or not (no resume will fill it); the position stays before the gap. */
  #flushAhead(): void {
    this.#stopGapTimer()
    const held = [...this.#ahead].sort((a, b) => a[0] - b[0])
    this.#ahead.clear()
    for (const [, push] of held) this.#handOver(push)
  }

  /** Arms the refresh of the connected token at a random point between 75 % and 90 % of its remaining lifetime. */
  #scheduleRefresh(): void {
    this.#clock.clearTimeout(this.#refreshTimer)
    this.#refreshTimer = undefined
    if (this.#tokenExpMs === undefined) return
    const remaining = this.#tokenExpMs - this.#clock.now()
    this.#refreshAfter(Math.max(0, remaining * (REFRESH_AT + this.#random() * REFRESH_JITTER)))
  }

  #refreshAfter(delayMs: number): void {
    const ws = this.#ws
    this.#refreshTimer = this.#clock.setTimeout(() => {
      this.#refreshTimer = undefined
      if (ws === this.#ws) void this.#refresh(ws!)
    }, delayMs)
  }

  /** Sends a fresh token over the open socket; the `refreshed` or `error` frame settles it, or the pong timeout. */
  async #refresh(ws: WebSocketLike): Promise<void> {
    let token: string
    try {
      token = await this.#getToken()
    } catch (err) {
      if (ws === this.#ws) this.#refreshFailed(`getToken() failed: ${err instanceof Error ? err.message : String(err)}`)
      return
    }
    if (ws !== this.#ws || ws.readyState !== OPEN) return
    this.#refreshPending = this.#clock.setTimeout(() => this.#refreshFailed('no answer to the refresh'), this.#pongTimeoutMs)
    ws.send(refreshFrame(token))
  }

  /**
   * Retries with full-jitter backoff, at least REFRESH_RETRY_MIN_MS apart (well within the edge's
   * frame rate) and before the token's expiry; once it has expired, no more: the edge's 4002
   * reconnects with a fresh token.
   */
  #refreshFailed(error: string): void {
    this.#stopRefreshTimers()
    const untilExpiry = (this.#tokenExpMs ?? Infinity) - this.#clock.now()
    const backoff = { baseMs: REFRESH_RETRY_BASE_MS, capMs: untilExpiry / 2 }
    const retryInMs = untilExpiry <= 0 ? undefined : Math.max(REFRESH_RETRY_MIN_MS, backoffDelayMs(this.#refreshFailures++, backoff, this.#random))
    if (retryInMs !== undefined) this.#refreshAfter(retryInMs)
    this.#setState({ state: 'connected', ...this.#connection!, token: 'refresh_failed', error, ...(retryInMs === undefined ? {} : { retryInMs }) })
  }

  #stopRefreshTimers(): void {
    this.#clock.clearTimeout(this.#refreshTimer)
    this.#clock.clearTimeout(this.#refreshPending)
    this.#refreshTimer = this.#refreshPending = undefined
  }

  #stopGapTimer(): void {
    this.#clock.clearTimeout(this.#gapTimer)
    this.#gapTimer = undefined
  }

  #setPosition(position: Position | undefined): void {
    this.#position = position
    try {
      if (position) this.#storage?.setItem(this.#storageKey, formatPosition(position))
      else this.#storage?.removeItem(this.#storageKey)
    } catch {
      // storage full or disabled: the position still lives in memory
    }
  }

  #loadPosition(): Position | undefined {
    try {
      return parsePosition(this.#storage?.getItem(this.#storageKey) ?? '')
    } catch {
      return undefined
    }
  }

  #closed(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.#ws) return
    this.#ws = undefined
    // Held pushes: the resume replays them in order; with no resume coming they go out now.
    if (shouldReconnect(code)) this.#ahead.clear()
    else this.#flushAhead()
    this.#stopTimers()
    const stableFor = this.#connectedAt === undefined ? 0 : this.#clock.now() - this.#connectedAt
    this.#connectedAt = undefined
    if (!shouldReconnect(code)) {
      this.#stop()
      this.#setState({ state: 'disconnected', code, reason, willRetry: false })
      return
    }
    if (stableFor >= Reconnect.stableMs) this.#attempt = 0
    // A gap is filled by resuming at once, not after a backoff.
    const delayMs = code === GAP_CODE ? 0 : reconnectDelayMs(this.#attempt, code, this.#random)
    this.#attempt++
    this.#setState({ state: 'disconnected', code, reason, willRetry: true, delayMs })
    this.#scheduleRetry(delayMs)
  }

  #scheduleRetry(delayMs: number): void {
    const generation = this.#generation
    this.#clock.clearTimeout(this.#retryTimer)
    this.#retryTimer = this.#clock.setTimeout(() => {
      if (generation !== this.#generation) return
      // The browser knows it is offline: wait for its 'online' event instead of failing attempts.
      if (isOffline()) return
      this.#retryTimer = undefined
      void this.#open(generation)
    }, delayMs)
  }

  /** The network came back or the page became visible: a pending retry goes now (after a little jitter). */
  #retrySoon(): void {
    if (this.#retryTimer !== undefined) this.#scheduleRetry(this.#random() * 1_000)
  }

  /** Pings after pingIntervalMs without a frame; closes as dead after pongTimeoutMs more. */
  #armLiveness(): void {
    const check = () => {
      const ws = this.#ws
      if (!ws) return
      const silentFor = this.#clock.now() - this.#lastFrameAt
      if (silentFor >= this.#pingIntervalMs + this.#pongTimeoutMs) {
        detach(ws)
        ws.close(DEAD_CONNECTION_CODE, 'no frame from the edge')
        this.#closed(ws, DEAD_CONNECTION_CODE, 'no frame from the edge')
        return
      }
      if (silentFor >= this.#pingIntervalMs && ws.readyState === OPEN) ws.send(PING_FRAME)
      const next = silentFor >= this.#pingIntervalMs ? this.#pingIntervalMs + this.#pongTimeoutMs - silentFor : this.#pingIntervalMs - silentFor
      this.#livenessTimer = this.#clock.setTimeout(check, next)
    }
    this.#livenessTimer = this.#clock.setTimeout(check, this.#pingIntervalMs)
  }

  #stopTimers(): void {
    this.#stopGapTimer()
    this.#clock.clearTimeout(this.#ackTimer)
    this.#ackTimer = undefined
    this.#acks = []
    this.#stopRefreshTimers()
    this.#clock.clearTimeout(this.#retryTimer)
    this.#clock.clearTimeout(this.#livenessTimer)
    this.#retryTimer = undefined
    this.#livenessTimer = undefined
  }

  #setState(change: StateChange): void {
    this.#state = change.state
    this.#emit('state', change)
  }

  #emit(name: string, ...args: unknown[]): void {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) {
      try {
        ;(listener as (...a: unknown[]) => void)(...args)
      } catch (err) {
        // A throwing listener must not break the connection or the other listeners.
        if (name !== 'error') this.#emit('error', err instanceof Error ? err : new Error(String(err)))
      }
    }
  }
}

/** The token's `exp` in ms epoch, read (not verified: the edge does that) from its payload; undefined without one. */
export function expiryOf(token: string): number | undefined {
  try {
    const payload = token.split('.')[1] ?? ''
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'))
    const exp = (JSON.parse(json) as { exp?: unknown }).exp
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1_000 : undefined
  } catch {
    return undefined
  }
}

function withPath(url: string): string {
  const u = new URL(url)
  if (u.pathname === '/' || u.pathname === '') u.pathname = WS_PATH
  return u.toString()
}

/** Stops listening to a socket being abandoned. Its error handler stays a no-op: `ws` emits an error for a socket closed while connecting, and an unheard one would crash Node. */
function detach(ws: WebSocketLike): void {
  ws.onopen = ws.onmessage = ws.onclose = null
  ws.onerror = ignore
}
const ignore = (): void => undefined

/** The tab's sessionStorage in a browser (it survives reloads, not the tab); undefined elsewhere or when it is blocked. */
function sessionStorageIfAny(): PositionStorage | undefined {
  try {
    return (globalThis as { sessionStorage?: PositionStorage }).sessionStorage
  } catch {
    return undefined // e.g. blocked third-party storage throws on access
  }
}

/** Only browsers say so; elsewhere the network is assumed up. */
function isOffline(): boolean {
  return (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false
}

interface EventSource {
  addEventListener(name: string, fn: () => void): void
  removeEventListener(name: string, fn: () => void): void
}

/** In a browser: calls `onChance` when the network comes back or the page becomes visible. Returns the unsubscribe. */
function watchEnvironment(onChance: () => void): () => void {
  const g = globalThis as { window?: EventSource; document?: EventSource & { visibilityState?: string } }
  const { window, document } = g
  if (!window || !document) return () => undefined // Node: nothing to watch
  const onVisible = () => {
    if (document.visibilityState === 'visible') onChance()
  }
  window.addEventListener('online', onChance)
  document.addEventListener('visibilitychange', onVisible)
  return () => {
    window.removeEventListener('online', onChance)
    document.removeEventListener('visibilitychange', onVisible)
  }
}

/**
 * The websocket wire format between apps and edges (v1): paths, frames, close codes and what
 * a client does after each. Shared by the client SDK (browsers, Node) and the services, so it
 * imports nothing: no Node module, no dependency.
 */
import { backoffDelayMs, type BackoffPolicy } from './backoff.js'

export { Backoff, backoffCeilingMs, backoffDelayMs, type BackoffPolicy } from './backoff.js'

/** Where edges accept client websockets. */
export const WS_PATH = '/v1/ws'

/** The subprotocol of v1: offered by clients, selected by edges (browsers need one selected when they offer any). */
export const SUBPROTOCOL = 'switchboard.v1'

/** A client token travels as the websocket subprotocol `bearer.<token>`, offered next to SUBPROTOCOL and never selected. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.'

/** Frames the edge sends. All are JSON text. */
/**
 * A client that wants recovery (README, "Recovery") offers, next to SUBPROTOCOL (never
 * selected), `resume.<epoch>.<offset>`, the position of its last kept push, so the edge replays
 * what it missed; or `resume.start` while it has none yet, so the welcome tells it the
 * position to resume from next time.
 */
export const RESUME_PROTOCOL_PREFIX = 'resume.'
const RESUME_START = 'resume.start'

/** A kept push's place in its recipient's inbox: `epoch` names the inbox's life, `offset` counts from 1 in it. */
export interface Position {
  epoch: string
  offset: number
}

const EPOCH = /^[0-9a-f]{1,40}$/

/** An epoch as inboxes make them: 1 to 40 lowercase hex digits (safe in a subprotocol and unescaped in JSON). */
export function isEpoch(s: string): boolean {
  return EPOCH.test(s)
}

/** A position as text, `<epoch>.<offset>`: in the resume subprotocol, and where the SDK stores it. */
export function formatPosition(p: Position): string {
  return `${p.epoch}.${p.offset}`
}

/** The position `formatPosition` wrote; undefined for anything else. */
export function parsePosition(text: string): Position | undefined {
  const dot = text.indexOf('.')
  const epoch = text.slice(0, dot)
  const offset = text.slice(dot + 1)
  return dot > 0 && isEpoch(epoch) && /^\d{1,15}$/.test(offset) ? { epoch, offset: Number(offset) } : undefined
}

export function resumeProtocol(from: Position | undefined): string {
  return from ? `${RESUME_PROTOCOL_PREFIX}${formatPosition(from)}` : RESUME_START
}

/** What a `resume.` subprotocol asks: from a position, or from the start (`from` undefined); undefined when malformed (the edge then ignores it). */
export function parseResumeProtocol(protocol: string): { from: Position | undefined } | undefined {
  if (protocol === RESUME_START) return { from: undefined }
  if (!protocol.startsWith(RESUME_PROTOCOL_PREFIX)) return undefined
  const from = parsePosition(protocol.slice(RESUME_PROTOCOL_PREFIX.length))
  return from && { from }
}

export interface WelcomeFrame {
  type: 'welcome'
  connId: string
  nodeId: string
  /**
   * Only when the client offered a resume position: true when every kept push after it follows
   * (then the live stream), false when the inbox no longer holds them all (the app refetches).
   */
  recovered?: boolean
  /** Only when the client offered `resume.`: the inbox's position now, to resume from unless a replay follows. */
  epoch?: string
  offset?: number
}
export interface PushFrame {
  type: 'push'
  id: string
  event: string
  data: unknown
  /** ms epoch at the router. */
  ts: number
  /**
   * The backend asked for a receipt: acknowledge the push with an `ack` frame (ackFrame) once
   * the app handled it. Only there when true.
   */
  ack?: true
  /** Kept pushes only: the push's position in this user's inbox. */
  epoch?: string
  offset?: number
}
export interface PongFrame {
  type: 'pong'
}
/** The answer to a client's `refresh`: the connection now lives until `exp` (s epoch, the new token's). */
export interface RefreshedFrame {
  type: 'refreshed'
  exp: number
}
/**
 * A client frame the edge could not act on, with a stable `code` (ErrorFrameCode); the socket
 * stays open unless a close follows.
 */
export interface ErrorFrame {
  type: 'error'
  code: ErrorFrameCode
  message: string
}
/**
 * `invalid_token`: a refresh token that does not verify (signature, expiry, claims); the
 * connection keeps its current token. `refresh_unavailable`: the edge could not check the
 * token's revocation (registry unreachable); retry with backoff.
 */
export type ErrorFrameCode = 'invalid_token' | 'refresh_unavailable'
/**
 * Sent to a connection that offered `resume.` after its edge was cut off from the registry
 * (its entries invisible, so kept pushes to it were answered `offline` and only kept): its
 * inbox's position now. A client whose position is behind it resumes (reconnects from its
 * position) to get what it missed.
 */
export interface InboxFrame {
  type: 'inbox'
  epoch: string
  offset: number
}
export type ServerFrame = WelcomeFrame | PushFrame | PongFrame | RefreshedFrame | ErrorFrame | InboxFrame

/** A client frame: answered by a pong, in order with pushes. */
export const PING_FRAME = '{"type":"ping"}'

/**
 * A client frame: replaces the connection's token with a fresh one of the same user, before
 * the current one expires. Answered `refreshed` (or `error`); the socket and its connId stay.
 */
export function refreshFrame(token: string): string {
  return JSON.stringify({ type: 'refresh', token })
}

/** Most push ids one `ack` frame may carry. */
export const MAX_ACK_IDS = 100

/**
 * A client frame: the app handled these pushes (each one whose frame had `"ack":true`). One
 * frame may carry up to MAX_ACK_IDS ids, and counts once against the edge's frame rate, so a
 * client acknowledges what arrived together in one frame. An id the edge is not waiting for
 * (unknown, settled, timed out) is ignored and counted, never an error.
 */
export function ackFrame(ids: readonly string[]): string {
  return JSON.stringify({ type: 'ack', ids })
}

/** Close codes an edge sends, by meaning. */
export const CloseCode = {
  /** Edge draining (deploy, scale-down): reconnect after a short random delay. */
  draining: 1001,
  /** The client sent something that is not a v1 frame. */
  protocolViolation: 1008,
  /** A client frame over the edge's limit. */
  messageTooBig: 1009,
  /** The connection's token expired: reconnect at once with a fresh token (no backoff). */
  tokenExpired: 4002,
  /** Too slow to read: the socket's unsent backlog passed the edge's bound (backpressure). */
  tooSlow: 4008,
  /** Rate limited: the client sent frames faster than the edge allows (it used to be 4008 too: any 40xx reconnects). */
  rateLimited: 4009,
  /** Closed by the disconnect API: final. */
  kicked: 4500,
  /** Replaced by a newer session of the same user: final. */
  replaced: 4501,
  /** Evicted: the user opened more connections than allowed: final. */
  tooManyConnections: 4502,
  /** The user's tokens were revoked ("sign out everywhere"), or this token is older than the revocation: final. */
  revoked: 4503,
} as const

/**
 * What a client does after a close: reconnect with backoff (`backoff`), after a short random
 * delay (`soon`, a drain), at once with a fresh token (`now`), or never (`final`).
 */
export type CloseThen = 'backoff' | 'soon' | 'now' | 'final'

/**
 * Every ending a service gives a socket, once: its close code, the close frame's reason text
 * (a site may say more), the cause its removal records (presence events' `cause`), and what
 * the client does next. The key is the ending's name: the edge's `edge_disconnects_total{reason}`
 * label and, for the codes an edge sends, the error catalogue's code.
 */
export const CloseReasons = {
  going_away: { code: CloseCode.draining, text: 'edge draining', cause: 'drain', then: 'soon' },
  protocol_violation: { code: CloseCode.protocolViolation, text: 'invalid frame', cause: 'evicted', then: 'backoff' },
  message_too_big: { code: CloseCode.messageTooBig, text: 'frame too big', cause: 'evicted', then: 'backoff' },
  token_expired: { code: CloseCode.tokenExpired, text: 'token expired', cause: 'token_expired', then: 'now' },
  too_slow: { code: CloseCode.tooSlow, text: 'too slow', cause: 'evicted', then: 'backoff' },
  rate_limited: { code: CloseCode.rateLimited, text: 'rate limited', cause: 'evicted', then: 'backoff' },
  kicked: { code: CloseCode.kicked, text: 'disconnected', cause: 'disconnect_api', then: 'final' },
  replaced: { code: CloseCode.replaced, text: 'replaced by a newer session', cause: 'replaced', then: 'final' },
  too_many_connections: { code: CloseCode.tooManyConnections, text: 'too many connections for this user', cause: 'evicted', then: 'final' },
  revoked: { code: CloseCode.revoked, text: 'token revoked', cause: 'revoked', then: 'final' },
} as const satisfies Record<string, { code: number; text: string; cause: string; then: CloseThen }>

export type CloseReason = keyof typeof CloseReasons

const REASON_OF_CODE = new Map(Object.entries(CloseReasons).map(([reason, r]) => [r.code as number, reason as CloseReason]))

/** The ending a service names with `code`; undefined for a code no service sends (a client's own, 1006). */
export function closeReasonOf(code: number): CloseReason | undefined {
  return REASON_OF_CODE.get(code)
}

/** 4500-4999 are final: the client must not reconnect. Anything else: reconnect. */
export function shouldReconnect(closeCode: number): boolean {
  return !(closeCode >= 4500 && closeCode <= 4999)
}

/** Reconnect timing (README, "Close codes, and what a client should do"). */
export const Reconnect = {
  baseMs: 500,
  capMs: 30_000,
  /** After a 1001 (drain), a short random delay instead of the backoff. */
  drainMaxMs: 2_000,
  /** A connection that stayed up this long resets the backoff. */
  stableMs: 60_000,
} as const

/**
 * The delay before reconnect attempt `attempt` (0 for the first) after a close with `code`, as
 * its row of CloseReasons says (`then`): at once after 4002 (token expired: the client
 * reconnects with a fresh token), `random(0, drainMaxMs)` after 1001, else (any other code too)
 * full jitter, `random(0, min(cap, base × 2^attempt))`.
 */
export function reconnectDelayMs(attempt: number, code: number, random: () => number = Math.random): number {
  const reason = closeReasonOf(code)
  const then = reason === undefined ? 'backoff' : CloseReasons[reason].then
  if (then === 'now') return 0
  if (then === 'soon') return random() * Reconnect.drainMaxMs
  return backoffDelayMs(attempt, RECONNECT_BACKOFF, random)
}
const RECONNECT_BACKOFF: BackoffPolicy = { baseMs: Reconnect.baseMs, capMs: Reconnect.capMs }

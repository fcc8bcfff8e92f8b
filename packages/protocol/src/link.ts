/**
 * The router -> edge link: one persistent websocket per router-edge pair, on the edge's
 * internal port, replacing one HTTP request per call. Calls are pipelined: a router sends
 * calls without waiting and the edge answers each, matched by `callId`.
 *
 * Upgrade: `GET <EDGE_ADVERTISE_URL>/internal/link` (ws:// for http://) with
 * `authorization: Bearer <SWITCHBOARD_INTERNAL_TOKEN>`; anything else is refused with 401
 * before the upgrade.
 *
 * Frames are binary (no UTF-8 validation on either side), holding UTF-8 text:
 * - router -> edge, a call:   `<callId> <op> <requestIds>\n<payload>`
 * - edge -> router, a answer: `<callId> <status>\n<body>`
 *
 * `callId` is a decimal integer the router chose (unique per link); `op` names the internal
 * route (deliveries, broadcast, disconnect, room, room-join, room-leave, room-members) and `payload` is exactly that route's HTTP body
 * (see internal.ts). `requestIds` is the X-Request-Ids value (`-` when none): request ids
 * never hold a space or a newline. `status` is 200 with the route's JSON answer, or 400 with
 * an error body for a malformed call; the link stays open either way. Answers may come in
 * any order: room-join and room-leave are answered once the edge index is written. A frame that is not a
 * call at all closes the link (1008).
 */
export const LINK_PATH = '/internal/link'

/**
 * An edge cuts a router link silent this long (s; routers ping every 5 s): a router that died
 * or became unreachable. uWS checks idle sockets every 4 s, so the cut comes up to 4 s later.
 */
export const LINK_IDLE_TIMEOUT_S = 16

export const LINK_OPS = ['deliveries', 'broadcast', 'disconnect', 'room', 'room-join', 'room-leave', 'room-members'] as const
export type LinkOp = (typeof LINK_OPS)[number]

/** Largest link frame either side accepts: a coalesced call stops growing well below it. */
export const MAX_LINK_FRAME_BYTES = 16 << 20

export interface LinkCall {
  callId: number
  op: LinkOp
  requestIds: string
  payload: string
}

export interface LinkAnswer {
  callId: number
  status: number
  body: string
}

export function encodeLinkCall(callId: number, op: LinkOp, requestIds: string, payload: string): string {
  return `${callId} ${op} ${requestIds || '-'}\n${payload}`
}

/** Undefined when `text` is not a call (the edge closes the link with 1008). */
export function decodeLinkCall(text: string): LinkCall | undefined {
  const eol = text.indexOf('\n')
  if (eol < 0) return undefined
  const head = text.slice(0, eol)
  const a = head.indexOf(' ')
  const b = head.indexOf(' ', a + 1)
  if (a <= 0 || b < 0) return undefined
  const callId = parseCallId(head.slice(0, a))
  const op = head.slice(a + 1, b) as LinkOp
  if (callId === undefined || !LINK_OPS.includes(op)) return undefined
  return { callId, op, requestIds: head.slice(b + 1), payload: text.slice(eol + 1) }
}

export function encodeLinkAnswer(callId: number, status: number, body: string): string {
  return `${callId} ${status}\n${body}`
}

/** Undefined when `text` is not an answer (the router drops the link). */
export function decodeLinkAnswer(text: string): LinkAnswer | undefined {
  const eol = text.indexOf('\n')
  const space = text.indexOf(' ')
  if (space <= 0 || eol < space) return undefined
  const callId = parseCallId(text.slice(0, space))
  const status = Number(text.slice(space + 1, eol))
  if (callId === undefined || !Number.isInteger(status)) return undefined
  return { callId, status, body: text.slice(eol + 1) }
}

function parseCallId(s: string): number | undefined {
  if (!/^\d{1,15}$/.test(s)) return undefined
  return Number(s)
}

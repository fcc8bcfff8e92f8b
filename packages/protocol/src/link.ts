import type { z } from 'zod'
import {
  AckedDeliveryResult,
  BroadcastResult,
  DeliveriesResult,
  DisconnectResult,
  InternalDisconnect,
  InternalRoomJoin,
  InternalRoomLeave,
  InternalRoomMembers,
  RoomDeliveryResult,
  RoomMembershipResult,
  RoomMembersResult,
  RoutedDeliveriesTally,
  decodeAckedDelivery,
  decodeDeliveries,
  decodeRoomDelivery,
  encodeAckedDelivery,
  encodeDeliveries,
  encodeRoomDelivery,
  safeJson,
} from './internal.js'

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
 * `callId` is a decimal integer the router chose (unique per link); `op` is a row of `linkOps`
 * (below) and `payload` its request as that row encodes it (bodies in internal.ts).
 * `requestIds` is the X-Request-Ids value (`-` when none): request ids never hold a space or
 * a newline. `status` is 200 with the row's JSON answer, or 400 with
 * an error body for a malformed call; the link stays open either way. A row marked
 * `isUnanswered` (`deliveries-routed`) is never answered, not even when malformed (the edge
 * logs it): the router counts such a call done once its frame is queued on the link. Answers may come in
 * any order: room-join and room-leave are answered once the edge index is written, a
 * delivery-acked once its receipts are settled (up to its `timeoutMs` later). A frame that is not a
 * call at all closes the link (1008).
 */
export const LINK_PATH = '/internal/link'

/**
 * An edge cuts a router link silent this long (s; routers ping every 5 s): a router that died
 * or became unreachable. uWS checks idle sockets every 4 s, so the cut comes up to 4 s later.
 */
export const LINK_IDLE_TIMEOUT_S = 16

/**
 * One router -> edge call: how its request is written (router) and read back (edge), the JSON
 * schema of its answer (checked by the router), and what the edge's debug line says of an
 * answer. The edge's handler of each op is in its internal-calls.ts, the router's method in its
 * EdgeClient: a new op is one row here, one handler there, one method there.
 */
export interface LinkOpRow<Request, Parsed, Result> {
  encode(request: Request): string
  /** Undefined when the payload is malformed (the edge answers 400 and the link stays open). */
  decode(payload: string): Parsed | undefined
  answer: z.ZodType<Result>
  /** The request's schema when the payload is JSON (a generator of API documents reads it). */
  request?: z.ZodType
  /** Counts, never user ids. */
  summarize(answer: Result): Record<string, number>
  /**
   * The edge sends no answer (`answer` then describes what its handler returns, for its log):
   * the router settles the call once its frame is queued on the link, with no timer per call.
   */
  isUnanswered?: true
  /**
   * The op's HTTP route on the edge's internal port, for the one call that is not a router's:
   * an edge closing the connections the registry evicted on another edge (edges hold no link
   * to each other). Every other op is served on the link only.
   */
  http?: string
}

/** A row whose request is a JSON body checked by `request`. */
function jsonRow<Request, Result>(
  request: z.ZodType<Request, unknown>,
  answer: z.ZodType<Result>,
  summarize: (answer: Result) => Record<string, number>,
): LinkOpRow<z.input<typeof request>, Request, Result> {
  return {
    encode: (body) => JSON.stringify(body),
    decode: (payload) => {
      const r = request.safeParse(safeJson(payload))
      return r.success ? r.data : undefined
    },
    answer,
    request,
    summarize,
  }
}

const counts = (answer: Record<string, number>) => answer

const table = {
  /** Pushes coalesced while a call to the edge was in flight; one result each, in order. */
  deliveries: {
    encode: encodeDeliveries,
    decode: decodeDeliveries,
    answer: DeliveriesResult,
    summarize: ({ results }) => ({ pushes: results.length, delivered: results.reduce((n, r) => n + r.delivered.length, 0) }),
  } satisfies LinkOpRow<Parameters<typeof encodeDeliveries>[0], NonNullable<ReturnType<typeof decodeDeliveries>>, DeliveriesResult>,
  /**
   * Pushes with `wait: "routed"`, encoded as `deliveries`, and written the same way; the edge
   * answers nothing and counts the recipients it could not write (edge_routed_unwritten_total).
   */
  'deliveries-routed': {
    encode: encodeDeliveries,
    decode: decodeDeliveries,
    answer: RoutedDeliveriesTally,
    summarize: (tally) => tally,
    isUnanswered: true,
  } satisfies LinkOpRow<Parameters<typeof encodeDeliveries>[0], NonNullable<ReturnType<typeof decodeDeliveries>>, RoutedDeliveriesTally>,
  /**
   * One push asking for receipts, written at once and answered once its recipients acknowledged
   * it, their sockets closed, or its `timeoutMs` passed: later than other calls, by up to that.
   */
  'delivery-acked': {
    encode: encodeAckedDelivery,
    decode: decodeAckedDelivery,
    answer: AckedDeliveryResult,
    summarize: ({ acked, unacked, missing }) => ({ acked: acked.length, unacked: unacked.length, missing: missing.length }),
  } satisfies LinkOpRow<Parameters<typeof encodeAckedDelivery>[0], NonNullable<ReturnType<typeof decodeAckedDelivery>>, AckedDeliveryResult>,
  /** The payload is the frame itself, written as is to every socket. */
  broadcast: { encode: (frame) => frame, decode: (payload) => payload, answer: BroadcastResult, summarize: counts } satisfies LinkOpRow<string, string, BroadcastResult>,
  disconnect: { ...jsonRow(InternalDisconnect, DisconnectResult, counts), http: '/internal/disconnect' },
  room: {
    encode: encodeRoomDelivery,
    decode: decodeRoomDelivery,
    answer: RoomDeliveryResult,
    summarize: ({ reached, acked }): Record<string, number> => (acked === undefined ? { reached } : { reached, acked }),
  } satisfies LinkOpRow<Parameters<typeof encodeRoomDelivery>[0], NonNullable<ReturnType<typeof decodeRoomDelivery>>, RoomDeliveryResult>,
  'room-join': jsonRow(InternalRoomJoin, RoomMembershipResult, counts),
  'room-leave': jsonRow(InternalRoomLeave, RoomMembershipResult, counts),
  'room-members': jsonRow(InternalRoomMembers, RoomMembersResult, ({ users }) => ({ users: users.length })),
}
type Table = typeof table

export type LinkOp = keyof Table
/** What the router passes for a call of `Op`. */
export type LinkRequest<Op extends LinkOp> = Parameters<Table[Op]['encode']>[0]
/** What the edge's handler of `Op` receives. */
export type LinkParsed<Op extends LinkOp> = NonNullable<ReturnType<Table[Op]['decode']>>
/** What `Op` answers. */
export type LinkResult<Op extends LinkOp> = z.output<Table[Op]['answer']>

/** The link's ops, one row each (typed per op, so `linkOps[op]` stays typed for a generic `op`). */
export const linkOps: { readonly [Op in LinkOp]: LinkOpRow<LinkRequest<Op>, LinkParsed<Op>, LinkResult<Op>> } = table

/** Every link op, in the table's order. */
export const LINK_OPS = Object.keys(linkOps) as LinkOp[]

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
  if (callId === undefined || !Object.hasOwn(linkOps, op)) return undefined
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

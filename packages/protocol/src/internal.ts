import { z } from 'zod'
import { CloseReasons, isEpoch, type Position } from '@switchboard/wire'
import { MessageId, RoomName, UserId, limits } from './push-api.js'

/**
 * The bodies of the router -> edge calls (the link's ops, table in link.ts). Every call carries
 * the internal token (`authorization: Bearer <SWITCHBOARD_INTERNAL_TOKEN>` on the link's upgrade).
 *
 * A delivery is the push frame exactly as clients receive it, a newline, then the JSON array
 * of recipients on that edge. The frame is serialized once at the router and written to every
 * socket without being parsed again; JSON.stringify never emits a raw newline, so newlines
 * split the parts unambiguously. `deliveries` carries several (pushes coalesced while a call
 * to that edge was in flight), joined by newlines, and answers one result each, in order.
 *
 * A kept push lists its recipients with their inbox positions, `[["u1","<epoch>",<offset>],…]`,
 * and the edge splices each user's position into the frame it writes to that user (framedAt).
 */
/**
 * Header of an internal call over HTTP (an eviction's disconnect): the request ids it carries,
 * comma-separated (a link call carries them in its head). For logs only: edges never trust it.
 */
export const REQUEST_IDS = 'x-request-ids'

/** At most this many recipients in one call, all deliveries together. */
export const MAX_RECIPIENTS_PER_CALL = 100_000

export function encodeDelivery(frame: string, to: readonly string[], at?: readonly Position[]): string {
  return `${frame}\n${JSON.stringify(at ? to.map((u, i) => [u, at[i]!.epoch, at[i]!.offset]) : to)}`
}

/**
 * A delivery's recipients line; undefined when it is not a JSON array of at most `max` user ids
 * of 1..256 chars, or of `[userId, epoch, offset]` (a kept push), not mixed (the caller answers
 * 400). Only a bound check: the router validated every id (UserId) before planning the call,
 * and the edge only looks ids up, so a per-id schema and regex here would cost a second full
 * validation on the hot path for nothing.
 */
function parseRecipients(line: string, max: number): { to: string[]; at?: Position[] } | undefined {
  let list: unknown
  try {
    list = JSON.parse(line)
  } catch {
    return undefined
  }
  if (!Array.isArray(list) || list.length > max) return undefined
  if (!Array.isArray(list[0])) {
    for (const id of list) if (!isUserId(id)) return undefined
    return { to: list as string[] }
  }
  const to: string[] = []
  const at: Position[] = []
  for (const r of list as unknown[]) {
    if (!Array.isArray(r) || r.length !== 3) return undefined
    const [userId, epoch, offset] = r as unknown[]
    if (!isUserId(userId) || typeof epoch !== 'string' || !isEpoch(epoch) || !Number.isSafeInteger(offset) || (offset as number) < 1) return undefined
    to.push(userId)
    at.push({ epoch, offset: offset as number })
  }
  return { to, at }
}

function isUserId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= limits.maxUserIdLength
}

export interface Delivery {
  frame: string
  to: readonly string[]
  /** A kept push: each recipient's inbox position, in `to`'s order. */
  at?: readonly Position[]
}

export function encodeDeliveries(deliveries: readonly Delivery[]): string {
  return deliveries.map((d) => encodeDelivery(d.frame, d.to, d.at)).join('\n')
}

export function decodeDeliveries(body: string): Delivery[] | undefined {
  const lines = body.split('\n')
  if (lines.length % 2 !== 0) return undefined
  const deliveries: Delivery[] = []
  let recipients = 0
  for (let i = 0; i < lines.length; i += 2) {
    const frame = lines[i]!
    const parsed = frame ? parseRecipients(lines[i + 1]!, MAX_RECIPIENTS_PER_CALL - recipients) : undefined
    if (!parsed) return undefined
    recipients += parsed.to.length
    deliveries.push({ frame, ...parsed })
  }
  return deliveries
}

/** Edge's answer to a delivery: users written to at least one open socket, and the rest. */
export const DeliveryResult = z.strictObject({
  delivered: z.array(z.string()),
  missing: z.array(z.string()),
})
export type DeliveryResult = z.output<typeof DeliveryResult>

export const DeliveriesResult = z.strictObject({ results: z.array(DeliveryResult) })
export type DeliveriesResult = z.output<typeof DeliveriesResult>

/**
 * A push asking for receipts (`delivery-acked`): the JSON of `AckedDeliveryHead` (the push's id
 * and its timeout), a newline, then one delivery as `deliveries` encodes it. The edge writes it
 * at once and answers when every user written to acknowledged it, or each connection it was
 * written to closed, or `timeoutMs` passed.
 */
export const AckedDeliveryHead = z.strictObject({
  id: MessageId,
  timeoutMs: z.number().int().min(limits.minAckTimeoutMs).max(limits.maxAckTimeoutMs),
})
export type AckedDelivery = Delivery & z.output<typeof AckedDeliveryHead>

export function encodeAckedDelivery({ id, timeoutMs, frame, to, at }: AckedDelivery): string {
  return `${JSON.stringify({ id, timeoutMs })}\n${encodeDelivery(frame, to, at)}`
}

export function decodeAckedDelivery(body: string): AckedDelivery | undefined {
  const eol = body.indexOf('\n')
  const head = AckedDeliveryHead.safeParse(safeJson(body.slice(0, eol)))
  const deliveries = eol > 0 && head.success ? decodeDeliveries(body.slice(eol + 1)) : undefined
  return deliveries?.length === 1 ? { ...deliveries[0]!, ...head.data! } : undefined
}

/**
 * An edge's answer to `delivery-acked`: of the users written to (on at least one open socket),
 * those who acknowledged it and those who did not in time; and those not written to.
 */
export const AckedDeliveryResult = z.strictObject({
  acked: z.array(z.string()),
  unacked: z.array(z.string()),
  missing: z.array(z.string()),
})
export type AckedDeliveryResult = z.output<typeof AckedDeliveryResult>

/**
 * What an edge made of a `deliveries-routed` call, for its own log and metrics only (the call is
 * never answered): recipients written to, and those it could not write, by why (`notHere`: no
 * open socket of the user on this edge; `closed`: their sockets were closed as too slow).
 */
export const RoutedDeliveriesTally = z.strictObject({
  pushes: z.number().int().min(0),
  written: z.number().int().min(0),
  notHere: z.number().int().min(0),
  closed: z.number().int().min(0),
})
export type RoutedDeliveriesTally = z.output<typeof RoutedDeliveriesTally>

export const BroadcastResult = z.strictObject({ connections: z.number().int().min(0) })
export type BroadcastResult = z.output<typeof BroadcastResult>

/** Most connections a user may hold across the cluster (the ceiling of EDGE_MAX_CONNECTIONS_PER_USER); the oldest beyond it are evicted. */
export const MAX_CONNECTIONS_PER_USER = 64

/** The endings a disconnect call may ask for: all final. */
const DISCONNECT_CODES = [CloseReasons.kicked.code, CloseReasons.replaced.code, CloseReasons.too_many_connections.code, CloseReasons.revoked.code] as const

export const InternalDisconnect = z.strictObject({
  userId: UserId,
  reason: z.string().max(512).optional(),
  /** Only these connections of the user (evictions by the per-user limit or single-session policy); default all. */
  connIds: z.array(z.string().min(1).max(128)).max(MAX_CONNECTIONS_PER_USER).optional(),
  /** Default 4500 (kicked: the disconnect API); 4501 and 4502 for evictions, 4503 for a revocation. */
  code: z.literal(DISCONNECT_CODES).optional(),
})
export type InternalDisconnect = z.output<typeof InternalDisconnect>

export const DisconnectResult = z.strictObject({ closed: z.number().int().min(0) })
export type DisconnectResult = z.output<typeof DisconnectResult>

/**
 * A room push to one edge: the frame, a newline, then the JSON of `RoomDeliveryHead`. The edge
 * writes the frame to every socket of its local members of the room in that generation, but
 * those of `except`.
 */
export const RoomDeliveryHead = z.strictObject({
  room: RoomName,
  /** The room's life: memberships of another generation are stale and skipped ('': no durable life, token members only). */
  generation: z.string().max(64),
  except: z.array(UserId).max(limits.maxExcept).optional(),
  /** Answer the users written to, not only their number (small rooms). */
  list: z.boolean().optional(),
  /** A room push asking for receipts: its id, and how long the edge waits for the acks of the members it wrote to. */
  ack: AckedDeliveryHead.optional(),
  /** A kept room push: each member's inbox position, spliced into the frame written to that member. */
  at: z
    .record(UserId, z.tuple([z.string().refine(isEpoch), z.number().int().min(1)]).transform(([epoch, offset]): Position => ({ epoch, offset })))
    .optional(),
})
export type RoomDeliveryHead = z.input<typeof RoomDeliveryHead>
export type RoomDeliveryParsed = z.output<typeof RoomDeliveryHead>

export interface RoomDelivery extends RoomDeliveryHead {
  frame: string
}

export function encodeRoomDelivery({ frame, ...head }: RoomDelivery): string {
  return `${frame}\n${JSON.stringify(head)}`
}

export function decodeRoomDelivery(body: string): (RoomDeliveryParsed & { frame: string }) | undefined {
  const cut = body.lastIndexOf('\n')
  if (cut <= 0) return undefined
  const head = RoomDeliveryHead.safeParse(safeJson(body.slice(cut + 1)))
  return head.success ? { frame: body.slice(0, cut), ...head.data } : undefined
}

/**
 * The users written to (on at least one socket), and their list when asked; with `ack`, how
 * many of them acknowledged it in time (and who, with the list).
 */
export const RoomDeliveryResult = z.strictObject({
  reached: z.number().int().min(0),
  users: z.array(z.string()).optional(),
  acked: z.number().int().min(0).optional(),
  ackedUsers: z.array(z.string()).optional(),
})
export type RoomDeliveryResult = z.output<typeof RoomDeliveryResult>

/**
 * Membership changes, sent to the edges holding a connection of the users after the room store
 * was written: the edge adds (or drops) its local sockets of those users to the room, and has
 * written its field of the room's edge index before it answers.
 */
export const InternalRoomJoin = z.strictObject({
  room: RoomName,
  generation: z.string().min(1).max(64),
  userIds: z.array(UserId).max(MAX_RECIPIENTS_PER_CALL),
})
export type InternalRoomJoin = z.output<typeof InternalRoomJoin>

/** Without `userIds`: every local member (the room was deleted). */
export const InternalRoomLeave = z.strictObject({
  room: RoomName,
  userIds: z.array(UserId).max(MAX_RECIPIENTS_PER_CALL).optional(),
})
export type InternalRoomLeave = z.output<typeof InternalRoomLeave>

/** Room presence: the edge's local members of the room (durable ones of `generation`, and token ones). */
export const InternalRoomMembers = z.strictObject({
  room: RoomName,
  generation: z.string().max(64),
})
export type InternalRoomMembers = z.output<typeof InternalRoomMembers>
export const RoomMembersResult = z.strictObject({ users: z.array(z.string()) })
export type RoomMembersResult = z.output<typeof RoomMembersResult>

/** How many of the users were present on the edge (and so joined or left there). */
export const RoomMembershipResult = z.strictObject({ changed: z.number().int().min(0) })
export type RoomMembershipResult = z.output<typeof RoomMembershipResult>

export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined // the caller's schema rejects it
  }
}

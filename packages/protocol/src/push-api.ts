import { z } from 'zod'

/** Default and hard limits of the HTTP API (SPEC "Router HTTP API"). */
export const limits = {
  maxRecipients: 10_000,
  maxUserIdLength: 256,
  maxEventLength: 256,
  maxMessageIdLength: 128,
  maxPresenceBatch: 10_000,
  maxReasonLength: 512,
  maxDataDepth: 64,
  maxRoomNameLength: 256,
  maxExcept: 1_000,
  maxRoomBatch: 10_000,
  maxRoomPage: 10_000,
  /** A push's `ack.timeoutMs` bounds: how long its edges wait for the recipients' acknowledgements. */
  minAckTimeoutMs: 100,
  maxAckTimeoutMs: 30_000,
} as const

/** No C0 controls or DEL: ids and event names end up in logs, headers and terminals. */
const printable = (s: z.ZodString) => s.regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')

export const UserId = printable(z.string().min(1).max(limits.maxUserIdLength))
export const EventName = printable(z.string().min(1).max(limits.maxEventLength))
export const MessageId = z.string().min(1).max(limits.maxMessageIdLength)
/** A room's name: printable, at most ROOM_NAME_MAX_LENGTH (the router checks the configured bound). */
export const RoomName = printable(z.string().min(1).max(limits.maxRoomNameLength))

/** True if `value` nests arrays/objects at most `maxDepth` deep; iterative, so any input is safe. */
export function isWithinDepth(value: unknown, maxDepth: number): boolean {
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (v === null || typeof v !== 'object') continue
    if (depth >= maxDepth) return false
    for (const child of Object.values(v)) stack.push([child, depth + 1])
  }
  return true
}

/** A push's `wait`: what the router waits for before it answers. */
export const PUSH_WAITS = ['written', 'routed'] as const
export type PushWait = (typeof PUSH_WAITS)[number]

/** Any JSON, omitted means `null`; nesting is bounded so that serializing it can never overflow the stack. */
const PushData = z
  .unknown()
  .optional()
  .refine((d) => isWithinDepth(d, limits.maxDataDepth), `must not nest deeper than ${limits.maxDataDepth} levels`)

/** A push asking for receipts: each recipient's edge waits up to `timeoutMs` for an `ack` from one of the user's connections. */
export const PushAck = z.strictObject({
  timeoutMs: z.number().int().min(limits.minAckTimeoutMs).max(limits.maxAckTimeoutMs),
})

export const PushRequest = z.strictObject({
  to: z.array(UserId).min(1).max(limits.maxRecipients),
  event: EventName,
  data: PushData,
  id: MessageId.optional(),
  /** Keep it in each recipient's inbox for recovery; default PUSH_KEEP_DEFAULT. */
  keep: z.boolean().optional(),
  /**
   * When the router answers (default `written`): once each edge confirmed what it wrote
   * (`delivered`), or `routed`, once each edge was handed its frame (`routed`: edges send no
   * confirmation, so the answer does not wait for them).
   */
  wait: z.enum(PUSH_WAITS).optional(),
  /**
   * Receipts: the frame asks clients to acknowledge it, and the answer says who did (`acked`)
   * and who was written to but did not within `timeoutMs` (`unacked`), instead of `delivered`.
   */
  ack: PushAck.optional(),
}).refine((p) => !(p.ack && p.wait === 'routed'), {
  path: ['ack'],
  message: 'a push with receipts waits for its edges\' answers: leave out "wait" (or say "written")',
})
export type PushRequest = z.output<typeof PushRequest>

export interface PushResponse {
  id: string
  delivered: string[]
  offline: string[]
  failed: string[]
  /**
   * A kept push only: the recipients it was not written to (offline or failed) whose inbox holds
   * it, so their clients get it when they resume within the inbox's bounds.
   */
  kept?: string[]
}

/**
 * The answer to a push with `wait: "routed"`: `routed` instead of `delivered`, so it cannot be
 * read as one. Every recipient is in exactly one list, as in PushResponse.
 */
export interface RoutedPushResponse {
  id: string
  /** Never there: a routed push's answer says nothing of what was written. */
  delivered?: never
  /** Recipients with an edge that was handed the frame (queued on its link): not a confirmation that a socket got it. */
  routed: string[]
  offline: string[]
  /** Recipients none of whose edges could be handed the frame (no link within the forward timeout, its circuit open, its link's backlog full). */
  failed: string[]
  /** A kept push only: `offline` and `failed`, whose inbox holds it. */
  kept?: string[]
}

/**
 * The answer to a push with `ack`: `acked` and `unacked` instead of `delivered`. Every
 * recipient is in exactly one list; the ones to reach another way (an OS notification) are
 * all but `acked`.
 */
export interface AckedPushResponse {
  id: string
  delivered?: never
  /** One of the user's connections acknowledged the push within `ack.timeoutMs`. */
  acked: string[]
  /**
   * Written to at least one of the user's connections, and none acknowledged it in time: the
   * timeout passed, or every connection it was written to closed first.
   */
  unacked: string[]
  offline: string[]
  /**
   * No answer from the user's edges: the push could not be handed to them (link down, circuit
   * open), or the edge was lost while waiting (it may have been written: no one can say).
   */
  failed: string[]
  /** A kept push only: `offline` and `failed`, whose inbox holds it. */
  kept?: string[]
}

/** A push to a room (`room` instead of `to`): every connection of every member, but those of `except`. */
export const RoomPushRequest = z.strictObject({
  room: RoomName,
  event: EventName,
  data: PushData,
  id: MessageId.optional(),
  /** Members not to push to (e.g. the sender). */
  except: z.array(UserId).max(limits.maxExcept).optional(),
  /** Keep it in each durable member's inbox (rooms of at most ROOM_PUSH_LIST_MAX members); PUSH_KEEP_DEFAULT does not apply. */
  keep: z.boolean().optional(),
  /** Receipts, as for a user push: `acknowledged` counts the members who acknowledged it (and, in a small room, `acked` and `unacked` list them). */
  ack: PushAck.optional(),
  /** A room push always waits for its edges' answers (`reached` is their count): only `written` is taken. */
  wait: z.literal('written', { error: 'a room push waits for its edges\' answers: only "written" (the default); "routed" is for pushes to users (`to`)' }).optional(),
})
export type RoomPushRequest = z.output<typeof RoomPushRequest>

export interface RoomPushResponse {
  id: string
  room: string
  /** Members of the room. */
  members: number
  /**
   * Users the push was written to (on at least one open socket). Above ROOM_PUSH_LIST_MAX members
   * it is summed over the edges: a user with sockets on two edges counts twice.
   */
  reached: number
  /**
   * A room push with `ack`: users who acknowledged it within `ack.timeoutMs`, summed over the
   * edges as `reached` is above ROOM_PUSH_LIST_MAX members.
   */
  acknowledged?: number
  /** Edges called: those holding a connection of a member, whatever the room's size. */
  edges: number
  /** Of those, edges whose call failed (their members' sockets may not have it). */
  failedEdges: number
  /**
   * Rooms of at most ROOM_PUSH_LIST_MAX members: each member but `except`, as a user push
   * answers (`acked` and `unacked` instead of `delivered` with `ack`).
   */
  delivered?: string[]
  acked?: string[]
  unacked?: string[]
  offline?: string[]
  failed?: string[]
  /** A kept room push: the members it was not written to whose inbox holds it. */
  kept?: string[]
}

/** GET /v1/rooms/:room/presence: who of the room is connected now, by either kind of membership. */
export interface RoomPresenceResponse {
  room: string
  /** Durable members. */
  members: number
  /** Users connected and in the room now (durable members, and token members). */
  online: number
  /** Those users, when at most ROOM_PUSH_LIST_MAX. */
  users?: string[]
  /** Durable members not connected, when the room has at most ROOM_PUSH_LIST_MAX members. */
  offline?: string[]
}

/** Adds members (POST /v1/rooms/:room/members); `idleTtlS` makes the room expire after that long without a change. */
export const RoomAddRequest = z.strictObject({
  userIds: z.array(UserId).min(1).max(limits.maxRoomBatch),
  idleTtlS: z.number().int().min(1).max(30 * 86_400).optional(),
})
export interface RoomAddResponse {
  room: string
  /** Users that were not members before. */
  added: string[]
  /** Users refused: in ROOMS_MAX_PER_USER rooms already. */
  refused: string[]
  members: number
}

/** Removes members (POST /v1/rooms/:room/members/remove). */
export const RoomRemoveRequest = z.strictObject({
  userIds: z.array(UserId).min(1).max(limits.maxRoomBatch),
})
export interface RoomRemoveResponse {
  room: string
  /** Users that were members. */
  removed: string[]
  members: number
}

/** GET /v1/rooms/:room/members?cursor=&limit= */
export const RoomMembersQuery = z.strictObject({
  cursor: z.string().max(limits.maxUserIdLength).default(''),
  limit: z.coerce.number().int().min(1).max(limits.maxRoomPage).default(1_000),
})
export interface RoomMembersResponse {
  room: string
  userIds: string[]
  /** Pass it back for the next page; absent on the last page. */
  cursor?: string
}

export interface RoomInfoResponse {
  room: string
  exists: boolean
  members: number
}

export interface RoomClearResponse {
  room: string
  /** Durable members removed (token members present were dropped too, for their connection's life). */
  removed: number
}

export interface RoomDeleteResponse {
  room: string
  removed: number
}

export const BroadcastRequest = z.strictObject({
  event: EventName,
  data: PushData,
  id: MessageId.optional(),
})
export type BroadcastRequest = z.output<typeof BroadcastRequest>

export interface BroadcastResponse {
  id: string
  nodes: number
  connections: number
}

export const PresenceParams = z.strictObject({ userId: UserId })

export const PresenceQuery = z.strictObject({
  userIds: z.array(UserId).min(1).max(limits.maxPresenceBatch),
})
export type PresenceQuery = z.output<typeof PresenceQuery>

export interface PresenceConnection {
  connId: string
  nodeId: string
  /** ms epoch of the connection's registration. */
  since: number
}

export interface PresenceResponse {
  userId: string
  online: boolean
  connections: PresenceConnection[]
}

export interface PresenceQueryResponse {
  online: string[]
  offline: string[]
}

export const DisconnectRequest = z.strictObject({
  userId: UserId,
  reason: z.string().max(limits.maxReasonLength).optional(),
})
export type DisconnectRequest = z.output<typeof DisconnectRequest>

export interface DisconnectResponse {
  closed: number
}

/** "Sign out everywhere": a disconnect's fields (`userId` from the path over HTTP, from the body on the pipeline). */
export const RevokeRequest = DisconnectRequest
export type RevokeRequest = z.output<typeof RevokeRequest>

export interface RevokeResponse {
  userId: string
  /** ms epoch (registry clock): tokens of the user issued at or before it are refused from now on. */
  revokedBefore: number
  /** Sockets closed (4503) on the edges that answered. */
  closed: number
}

export interface NodeView {
  nodeId: string
  connections: number
  draining: boolean
  startedAt: number
}

export interface NodesResponse {
  nodes: NodeView[]
}

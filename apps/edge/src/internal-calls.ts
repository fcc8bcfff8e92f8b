import type { Logger } from 'pino'
import {
  CloseCode,
  InternalDisconnect,
  InternalRoomJoin,
  InternalRoomLeave,
  InternalRoomMembers,
  decodeDeliveries,
  decodeDelivery,
  decodeRoomDelivery,
  errorBody,
  internalRoutes,
  safeJson,
  type BroadcastResult,
  type DeliveriesResult,
  type DeliveryResult,
  type DisconnectResult,
  type LinkOp,
  type RoomDeliveryResult,
  type RoomMembershipResult,
  type RoomMembersResult,
} from '@switchboard/protocol'
import type { Count, PushSocket, UserSockets } from './delivery.js'
import type { LocalRooms } from './rooms.js'

/** The router -> edge calls: the link's ops, and `deliver`, which only 0.1 routers send (HTTP). */
export type InternalOp = LinkOp | 'deliver'

/**
 * The HTTP route of each internal call, as a table the server registers: an op without a route
 * (or a route without an op) does not compile.
 */
export const internalHttpRoutes: { readonly [op in InternalOp]: string } = {
  deliveries: internalRoutes.deliveries,
  deliver: internalRoutes.deliver,
  broadcast: internalRoutes.broadcast,
  disconnect: internalRoutes.disconnect,
  room: internalRoutes.room,
  'room-join': internalRoutes['room-join'],
  'room-leave': internalRoutes['room-leave'],
  'room-members': internalRoutes['room-members'],
}

/** Every internal op, in the table's order. */
export const INTERNAL_OPS = Object.keys(internalHttpRoutes) as InternalOp[]

/** An answer as both transports send it: the HTTP status and JSON body, or a link answer's. */
export interface InternalAnswer {
  status: 200 | 400
  body: string
}

export interface InternalCallDeps<S extends PushSocket> {
  sockets: UserSockets<S>
  /** edge_deliver_requests_total: one per well-formed delivery call, whatever its transport. */
  deliveryCalls: Count
  /** The rooms of this edge's users and sockets; without it, room calls reach no one. */
  rooms?: LocalRooms<S>
  /** edge_room_pushes_total: one per well-formed room push call. */
  roomCalls?: Count
  /** Welcomed and not closed (a token member joins its rooms before its welcome). */
  isOpen?: (socket: S) => boolean
  /** A disconnect with 4503 (a revocation): closes every socket of the user, welcomed or registering. */
  revokeUser?: (userId: string, reason: string) => number
  log: Logger
}

/**
 * Answers an internal call from its op and body. `via` and `requestIds` (the routers' request
 * ids, comma-separated) are for logs only. Pushes are answered at once; membership changes once
 * the room index is written.
 */
export type InternalCalls = (op: InternalOp, payload: string, requestIds: string, via: 'http' | 'link') => InternalAnswer | Promise<InternalAnswer>

const MALFORMED: InternalAnswer = { status: 400, body: JSON.stringify(errorBody('invalid_request', 'malformed internal request')) }

/**
 * One implementation of the internal calls for the HTTP routes and the router link, so both
 * answer the same bytes for the same body. Pushes are synchronous: a link answers them in the
 * frame's callback.
 */
export function createInternalCalls<S extends PushSocket>(deps: InternalCallDeps<S>): InternalCalls {
  const { sockets, deliveryCalls, rooms, log } = deps

  type Answer = DeliveriesResult | DeliveryResult | BroadcastResult | DisconnectResult | RoomDeliveryResult | RoomMembershipResult | RoomMembersResult

  function run(op: InternalOp, payload: string): Answer | Promise<Answer> | undefined {
    switch (op) {
      case 'deliveries': {
        const deliveries = decodeDeliveries(payload)
        if (!deliveries) return undefined
        deliveryCalls.inc()
        return { results: deliveries.map((d) => sockets.deliver(d.frame, d.to, d.at)) }
      }
      case 'deliver': {
        const delivery = decodeDelivery(payload)
        if (!delivery) return undefined
        deliveryCalls.inc()
        return sockets.deliver(delivery.frame, delivery.to, delivery.at)
      }
      case 'broadcast':
        // The body is the frame itself, written as is.
        return { connections: sockets.broadcast(payload) }
      case 'disconnect': {
        const r = InternalDisconnect.safeParse(safeJson(payload))
        if (!r.success) return undefined
        const { userId, connIds, code = CloseCode.kicked, reason = 'disconnected' } = r.data
        if (code === CloseCode.revoked && !connIds && deps.revokeUser) return { closed: deps.revokeUser(userId, reason) }
        return { closed: sockets.disconnect(userId, code, reason, connIds) }
      }
      case 'room': {
        const d = decodeRoomDelivery(payload)
        if (!d) return undefined
        deps.roomCalls?.inc()
        const to = rooms?.targets(d.room, d.generation, d.except && new Set(d.except))
        if (!to) return d.list ? { reached: 0, users: [] } : { reached: 0 }
        const { delivered } = sockets.deliver(d.frame, to.users, d.at && to.users.map((u) => d.at![u]))
        const open = deps.isOpen
        const byToken = to.sockets.length === 0 ? [] : sockets.writeTo(d.frame, open ? to.sockets.filter(open) : to.sockets)
        const users = byToken.length === 0 ? delivered : [...new Set([...delivered, ...byToken])]
        return d.list ? { reached: users.length, users } : { reached: users.length }
      }
      case 'room-join': {
        const r = InternalRoomJoin.safeParse(safeJson(payload))
        if (!r.success) return undefined
        return (rooms?.join(r.data.room, r.data.generation, r.data.userIds) ?? Promise.resolve(0)).then((changed) => ({ changed }))
      }
      case 'room-members': {
        const r = InternalRoomMembers.safeParse(safeJson(payload))
        if (!r.success) return undefined
        const to = rooms?.targets(r.data.room, r.data.generation)
        if (!to) return { users: [] }
        const open = deps.isOpen ?? (() => true)
        const users = new Set(to.users.filter((u) => sockets.countOf(u) > 0))
        for (const socket of to.sockets) if (open(socket)) users.add(sockets.userOf(socket))
        return { users: [...users] }
      }
      case 'room-leave': {
        const r = InternalRoomLeave.safeParse(safeJson(payload))
        if (!r.success) return undefined
        return (rooms?.leave(r.data.room, r.data.userIds) ?? Promise.resolve(0)).then((changed) => ({ changed }))
      }
    }
  }

  function answered(op: InternalOp, via: string, requestIds: string, answer: Answer): InternalAnswer {
    if (log.isLevelEnabled('debug')) log.debug({ route: op, via, requestIds, answer: summary(answer) }, 'internal call')
    return { status: 200, body: JSON.stringify(answer) }
  }

  return (op, payload, requestIds, via) => {
    const answer = run(op, payload)
    if (answer === undefined) {
      log.warn({ route: op, via, requestIds }, 'malformed internal request')
      return MALFORMED
    }
    if (answer instanceof Promise) return answer.then((a) => answered(op, via, requestIds, a))
    return answered(op, via, requestIds, answer)
  }
}

/** What an internal call's debug line says about its answer: counts, never user ids. */
function summary(answer: object): unknown {
  if ('results' in answer) {
    const { results } = answer as DeliveriesResult
    return { pushes: results.length, delivered: results.reduce((n, r) => n + r.delivered.length, 0) }
  }
  if ('delivered' in answer) return { pushes: 1, delivered: (answer as DeliveryResult).delivered.length }
  if ('reached' in answer) return { reached: (answer as RoomDeliveryResult).reached }
  if ('users' in answer) return { users: (answer as RoomMembersResult).users.length }
  return answer // broadcast { connections }, disconnect { closed } or a membership change { changed }
}

import type { Logger } from 'pino'
import { CloseCode, errorBody, linkOps, type LinkOp, type LinkParsed, type LinkResult } from '@switchboard/protocol'
import type { Count, PushSocket, Unwritten, UserSockets } from './delivery.js'
import type { Receipts } from './receipts.js'
import type { LocalRooms } from './rooms.js'

/** An answer as both transports send it: the HTTP status and JSON body, or a link answer's. */
export interface InternalAnswer {
  status: 200 | 400
  body: string
}

export interface InternalCallDeps<S extends PushSocket> {
  sockets: UserSockets<S>
  /** Where a push asking for receipts waits for them. */
  receipts: Receipts<S>
  /** edge_deliver_requests_total: one per well-formed delivery call (routed or not), whatever its transport. */
  deliveryCalls: Count
  /** edge_routed_unwritten_total by reason: recipients of routed pushes not written. */
  routedUnwritten?: { notHere: Count; closed: Count }
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
 * Answers an internal call from its op and payload. `via` and `requestIds` (the routers' request
 * ids, comma-separated) are for logs only. Pushes are answered at once; membership changes once
 * the room index is written; an unanswered op (`isUnanswered` in its row) gets undefined.
 */
export type InternalCalls = (op: LinkOp, payload: string, requestIds: string, via: 'http' | 'link') => InternalAnswer | Promise<InternalAnswer> | undefined

/** The edge's handler of each link op (protocol's `linkOps`), given the request its row decoded. */
type Handlers = { readonly [Op in LinkOp]: (request: LinkParsed<Op>) => LinkResult<Op> | Promise<LinkResult<Op>> }

const MALFORMED: InternalAnswer = { status: 400, body: JSON.stringify(errorBody('invalid_request', 'malformed internal request')) }

/**
 * One implementation of the internal calls for the router link and the HTTP route evictions
 * use, so both answer the same bytes for the same payload. Pushes are synchronous: a link
 * answers them in the frame's callback.
 */
export function createInternalCalls<S extends PushSocket>(deps: InternalCallDeps<S>): InternalCalls {
  const { sockets, deliveryCalls, rooms, log } = deps

  const handlers: Handlers = {
    deliveries: (deliveries) => {
      deliveryCalls.inc()
      return { results: deliveries.map((d) => sockets.deliver(d.frame, d.to, d.at)) }
    },
    'deliveries-routed': (deliveries) => {
      deliveryCalls.inc()
      const unwritten: Unwritten = { notHere: 0, closed: 0 }
      let written = 0
      for (const d of deliveries) written += sockets.deliver(d.frame, d.to, d.at, unwritten).delivered.length
      if (unwritten.notHere > 0) deps.routedUnwritten?.notHere.inc(unwritten.notHere)
      if (unwritten.closed > 0) deps.routedUnwritten?.closed.inc(unwritten.closed)
      return { pushes: deliveries.length, written, ...unwritten }
    },
    'delivery-acked': ({ id, frame, to, at, timeoutMs }) => {
      deliveryCalls.inc()
      const { delivered, missing } = sockets.deliver(frame, to, at)
      const written = new Map(delivered.map((u) => [u, sockets.socketsOf(u)]))
      // Written now, so the sockets indexed now are exactly those written to (one closed as too slow left the index).
      return deps.receipts.wait(id, written, missing, timeoutMs)
    },
    broadcast: (frame) => ({ connections: sockets.broadcast(frame) }),
    disconnect: ({ userId, connIds, code = CloseCode.kicked, reason = 'disconnected' }) => {
      if (code === CloseCode.revoked && !connIds && deps.revokeUser) return { closed: deps.revokeUser(userId, reason) }
      return { closed: sockets.disconnect(userId, code, reason, connIds) }
    },
    room: (d) => {
      deps.roomCalls?.inc()
      const to = rooms?.targets(d.room, d.generation, d.except && new Set(d.except))
      if (!to) return d.list ? { reached: 0, users: [], ...(d.ack && { acked: 0, ackedUsers: [] }) } : { reached: 0, ...(d.ack && { acked: 0 }) }
      const { delivered } = sockets.deliver(d.frame, to.users, d.at && to.users.map((u) => d.at![u]))
      const open = deps.isOpen
      const tokenSockets = to.sockets.length === 0 ? [] : open ? to.sockets.filter(open) : to.sockets
      const byToken = tokenSockets.length === 0 ? [] : sockets.writeTo(d.frame, tokenSockets)
      const users = byToken.length === 0 ? delivered : [...new Set([...delivered, ...byToken])]
      const reached = d.list ? { reached: users.length, users } : { reached: users.length }
      if (!d.ack) return reached
      // The sockets written to: every indexed socket of a durable member written, and the token members' sockets still open.
      const written = new Map(delivered.map((u) => [u, sockets.socketsOf(u)]))
      for (const socket of open ? tokenSockets.filter(open) : tokenSockets) {
        const userId = sockets.userOf(socket)
        const mine = written.get(userId)
        if (!mine) written.set(userId, [socket])
        else if (!mine.includes(socket)) mine.push(socket)
      }
      return deps.receipts.wait(d.ack.id, written, [], d.ack.timeoutMs).then(({ acked }) => ({ ...reached, acked: acked.length, ...(d.list && { ackedUsers: acked }) }))
    },
    'room-join': async ({ room, generation, userIds }) => ({ changed: (await rooms?.join(room, generation, userIds)) ?? 0 }),
    'room-leave': async ({ room, userIds }) => ({ changed: (await rooms?.leave(room, userIds)) ?? 0 }),
    'room-members': ({ room, generation }) => {
      const to = rooms?.targets(room, generation)
      if (!to) return { users: [] }
      const open = deps.isOpen ?? (() => true)
      const users = new Set(to.users.filter((u) => sockets.countOf(u) > 0))
      for (const socket of to.sockets) if (open(socket)) users.add(sockets.userOf(socket))
      return { users: [...users] }
    },
  }

  function answered<Op extends LinkOp>(op: Op, via: string, requestIds: string, answer: LinkResult<Op>): InternalAnswer {
    if (log.isLevelEnabled('debug')) log.debug({ route: op, via, requestIds, answer: linkOps[op].summarize(answer) }, 'internal call')
    return { status: 200, body: JSON.stringify(answer) }
  }

  return function call<Op extends LinkOp>(op: Op, payload: string, requestIds: string, via: 'http' | 'link') {
    const row = linkOps[op]
    const request = row.decode(payload)
    if (request === undefined) {
      log.warn({ route: op, via, requestIds }, 'malformed internal request')
      return row.isUnanswered ? undefined : MALFORMED
    }
    const answer = handlers[op](request)
    if (row.isUnanswered) {
      if (log.isLevelEnabled('debug')) log.debug({ route: op, via, requestIds, tally: row.summarize(answer as LinkResult<Op>) }, 'internal call, unanswered')
      return undefined
    }
    if (answer instanceof Promise) return answer.then((a) => answered(op, via, requestIds, a))
    return answered(op, via, requestIds, answer)
  }
}

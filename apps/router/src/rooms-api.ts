import { randomUUID } from 'node:crypto'
import {
  RoomAddRequest,
  RoomMembersQuery,
  RoomName,
  RoomPushRequest,
  RoomRemoveRequest,
  SwitchboardError,
  parseOrThrow,
  pushFrame,
  type Position,
  type RoomAddResponse,
  type RoomClearResponse,
  type RoomPresenceResponse,
  type RoomDeleteResponse,
  type RoomInfoResponse,
  type RoomMembersResponse,
  type RoomPushResponse,
  type RoomRemoveResponse,
} from '@switchboard/protocol'
import type { Inbox, RoomRoute, RoomStore } from '@switchboard/registry'
import type { EdgeClient } from './edge-client.js'
import type { LimitChecks } from './limits.js'
import type { RouterMetrics, TimedRegistry } from './metrics.js'

export interface RoomApiDeps {
  rooms: RoomStore
  /** Where kept room pushes are appended, as user pushes are. */
  inbox: Inbox
  registry: TimedRegistry
  edges: EdgeClient
  metrics: RouterMetrics
  limits: LimitChecks
  /** ROOM_NAME_MAX_LENGTH, and ROOM_PUSH_LIST_MAX: rooms up to this size get per-member lists in a push's answer. */
  roomLimits: { maxNameLength: number; listMax: number }
  /** Calls one edge; a failure is logged and counted, and resolves undefined. */
  forward: <T>(requestId: string, url: string, call: () => Promise<T>) => Promise<T | undefined>
}

/** The room operations (docs/design/rooms.md); `room` is the path's (or the pipeline body's) room name, unparsed. */
export interface RoomApi {
  push(input: unknown, requestId: string): Promise<RoomPushResponse>
  add(room: unknown, input: unknown, requestId: string): Promise<RoomAddResponse>
  remove(room: unknown, input: unknown, requestId: string): Promise<RoomRemoveResponse>
  members(room: unknown, query: unknown): Promise<RoomMembersResponse>
  info(room: unknown): Promise<RoomInfoResponse>
  presence(room: unknown, requestId: string): Promise<RoomPresenceResponse>
  clear(room: unknown, requestId: string): Promise<RoomClearResponse>
  delete(room: unknown, requestId: string): Promise<RoomDeleteResponse>
}

/**
 * Rooms routed like users. A room push reads the room's edge index in one call and calls only
 * the live edges in it, each of which writes to its own local members: no member is resolved
 * through the registry, whatever the room's size. A membership change writes the store, then
 * tells the edges holding the users (looked up after the write), which answer once their index
 * field is written: a room push sent after the change returned sees it.
 */
export function createRoomApi(deps: RoomApiDeps): RoomApi {
  const { rooms, inbox, registry, edges, metrics, limits, roomLimits, forward } = deps

  function roomName(value: unknown): string {
    const room = parseOrThrow(RoomName, value, 'room')
    if (room.length > roomLimits.maxNameLength) throw new SwitchboardError('invalid_request', `room: at most ${roomLimits.maxNameLength} characters`)
    return room
  }

  /** Calls every edge of `calls` (url -> call); every one must answer, else 503 `edge_unavailable` saying `what`. */
  async function allEdges<T>(requestId: string, calls: [string, () => Promise<T>][], what: (missed: number, of: number) => string): Promise<T[]> {
    const answers = await Promise.all(calls.map(([url, call]) => forward(requestId, url, call)))
    const missed = answers.filter((a) => a === undefined).length
    if (missed > 0) throw new SwitchboardError('edge_unavailable', what(missed, calls.length))
    return answers as T[]
  }

  const unconfirmed = (missed: number, of: number) => `the change is stored, but ${missed} of ${of} edges holding these users did not confirm it; retry (changes are idempotent)`

  /** Sends `call` to every edge holding a connection of `userIds`; fails (503) if one of them did not confirm. */
  async function tellEdges(userIds: readonly string[], requestId: string, call: (url: string, users: string[]) => Promise<unknown>): Promise<void> {
    if (userIds.length === 0) return
    const byEdge = new Map<string, string[]>()
    for (const [userId, conns] of await registry.locate(userIds)) {
      for (const url of new Set(conns.map((c) => c.url))) {
        const users = byEdge.get(url)
        if (users) users.push(userId)
        else byEdge.set(url, [userId])
      }
    }
    await allEdges(requestId, [...byEdge].map(([url, users]) => [url, () => call(url, users)]), unconfirmed)
  }

  /** Clear or delete: the store, then every edge in the room's index drops all its members of the room, token members too. */
  async function empty(roomParam: unknown, requestId: string, how: 'clear' | 'delete'): Promise<{ room: string; removed: number }> {
    const room = roomName(roomParam)
    const route = await rooms.route(room, 0)
    const { removed } = await (how === 'clear' ? rooms.clear(room) : rooms.delete(room))
    const urls = await liveEdges(route)
    await allEdges(requestId, urls.map((url) => [url, () => edges.roomLeave(url, { room }, requestId)]), unconfirmed)
    return { room, removed }
  }

  /** The edges in the room's index whose incarnation holds a lease, by URL. */
  async function liveEdges(route: RoomRoute): Promise<string[]> {
    if (route.incIds.length === 0) return [] // no edge holds a member: no liveness to check
    const live = await registry.incarnations(route.incIds)
    return [...new Set([...live.values()].map((n) => n.url))]
  }

  /**
   * A kept room push: appended to each listed member's inbox (but `except`) before the edge index
   * is read again, so a member whose edge joins the index after that read reads the push from
   * its inbox when it connects (as for a user push: append, then look up).
   */
  async function keepFor(room: string, route: RoomRoute, frame: string, except: ReadonlySet<string>): Promise<{ route: RoomRoute; at: Record<string, [string, number]>; recipients: string[] }> {
    if (!route.userIds) {
      throw new SwitchboardError('invalid_request', `keep: a room push can be kept for rooms of at most ${roomLimits.listMax} members (ROOM_PUSH_LIST_MAX); ${room} has ${route.members}`)
    }
    const recipients = route.userIds.filter((u) => !except.has(u))
    const positions: Position[] = recipients.length > 0 ? await inbox.append(recipients, frame) : []
    const at: Record<string, [string, number]> = {}
    recipients.forEach((u, i) => (at[u] = [positions[i]!.epoch, positions[i]!.offset]))
    return { route: await rooms.route(room, roomLimits.listMax), at, recipients }
  }

  return {
    async push(input, requestId) {
      if (typeof input === 'object' && input !== null && Object.hasOwn(input, 'to')) {
        throw new SwitchboardError('invalid_request', 'to: a push goes to users (to) or to a room (room), not both')
      }
      const body = parseOrThrow(RoomPushRequest, input)
      const room = roomName(body.room)
      limits.event(body.event)
      if (body.except) limits.userIds('except', body.except)
      const id = body.id ?? randomUUID()
      const frame = pushFrame(id, body.event, body.data, Date.now(), body.ack !== undefined)
      const except = new Set(body.except)
      let route = await rooms.route(room, roomLimits.listMax)
      const kept = body.keep ? await keepFor(room, route, frame, except) : undefined
      if (kept) route = kept.route
      // A room without a durable life may still have token members: its index is read all the same.
      const urls = await liveEdges(route)
      const list = route.userIds !== undefined
      const ack = body.ack && { id, timeoutMs: body.ack.timeoutMs }
      const delivery = { frame, room, generation: route.generation ?? '', except: body.except, list, at: kept?.at, ack }
      const answers = await Promise.all(urls.map((url) => forward(requestId, url, () => edges.room(url, delivery, requestId))))
      metrics.roomPushes.inc()
      if (urls.length > 0) metrics.roomEdgeCalls.inc(urls.length)
      const failedUrls = new Set(urls.filter((_, i) => answers[i] === undefined))
      const written = list ? new Set(answers.flatMap((a) => a?.users ?? [])) : undefined
      const answer: RoomPushResponse = {
        id,
        room,
        members: route.members,
        // Per edge past listMax: a user with sockets on two edges is counted on each.
        reached: written?.size ?? answers.reduce((n, a) => n + (a?.reached ?? 0), 0),
        edges: urls.length,
        failedEdges: failedUrls.size,
      }
      const acked = ack && (list ? new Set(answers.flatMap((a) => a?.ackedUsers ?? [])) : undefined)
      if (ack) answer.acknowledged = acked?.size ?? answers.reduce((n, a) => n + (a?.acked ?? 0), 0)
      if (!route.userIds || !written) return answer
      // A small room: each member's outcome, as a user push answers (members only; `except` left out).
      const members = route.userIds.filter((u) => !except.has(u))
      const missed = members.filter((u) => !written.has(u))
      // Only an edge that failed can hide a member that is online: look those up then, and only then.
      const located = failedUrls.size > 0 && missed.length > 0 ? await registry.locate(missed) : new Map()
      const isOnFailedEdge = (u: string) => located.get(u)?.some((c: { url: string }) => failedUrls.has(c.url)) ?? false
      const delivered = members.filter((u) => written.has(u))
      const outcome = acked ? { acked: delivered.filter((u) => acked.has(u)), unacked: delivered.filter((u) => !acked.has(u)) } : { delivered }
      const lists = { ...outcome, offline: missed.filter((u) => !isOnFailedEdge(u)), failed: missed.filter(isOnFailedEdge) }
      if (!kept) return { ...answer, ...lists }
      metrics.kept.inc()
      const inInbox = new Set(kept.recipients)
      return { ...answer, ...lists, kept: missed.filter((u) => inInbox.has(u)) }
    },

    async add(roomParam, input, requestId) {
      const room = roomName(roomParam)
      const body = parseOrThrow(RoomAddRequest, input)
      limits.userIds('userIds', body.userIds)
      const result = await rooms.add(room, body.userIds, body.idleTtlS === undefined ? {} : { idleTtlMs: body.idleTtlS * 1_000 })
      const refused = new Set(result.refused)
      const joined = [...new Set(body.userIds)].filter((u) => !refused.has(u))
      await tellEdges(joined, requestId, (url, userIds) => edges.roomJoin(url, { room, generation: result.generation, userIds }, requestId))
      return { room, added: result.added, refused: result.refused, members: result.members }
    },

    async remove(roomParam, input, requestId) {
      const room = roomName(roomParam)
      const body = parseOrThrow(RoomRemoveRequest, input)
      limits.userIds('userIds', body.userIds)
      const result = await rooms.remove(room, body.userIds)
      // Every given user, member or not: a retry after a failed call must still reach the edges.
      await tellEdges([...new Set(body.userIds)], requestId, (url, userIds) => edges.roomLeave(url, { room, userIds }, requestId))
      return { room, removed: result.removed, members: result.members }
    },

    async members(roomParam, query) {
      const room = roomName(roomParam)
      const { cursor, limit } = parseOrThrow(RoomMembersQuery, query, 'query')
      const page = await rooms.members(room, cursor, limit)
      return page.cursor === undefined ? { room, userIds: page.userIds } : { room, userIds: page.userIds, cursor: page.cursor }
    },

    async info(roomParam) {
      const room = roomName(roomParam)
      const { members, generation } = await rooms.info(room)
      return { room, exists: generation !== undefined, members }
    },

    async presence(roomParam, requestId) {
      const room = roomName(roomParam)
      const route = await rooms.route(room, roomLimits.listMax)
      const urls = await liveEdges(route)
      const calls = urls.map((url): [string, () => Promise<{ users: string[] }>] => [url, () => edges.roomMembers(url, { room, generation: route.generation ?? '' }, requestId)])
      const answers = await allEdges(requestId, calls, (missed, of) => `${missed} of ${of} edges holding members of ${room} did not answer; retry`)
      const online = new Set(answers.flatMap((a) => a.users))
      const answer: RoomPresenceResponse = { room, members: route.members, online: online.size }
      if (online.size <= roomLimits.listMax) answer.users = [...online].sort()
      if (route.userIds) answer.offline = route.userIds.filter((u) => !online.has(u))
      return answer
    },

    clear: (roomParam, requestId) => empty(roomParam, requestId, 'clear'),
    delete: (roomParam, requestId) => empty(roomParam, requestId, 'delete'),
  }
}

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
  type RoomAddResponse,
  type RoomDeleteResponse,
  type RoomInfoResponse,
  type RoomMembersResponse,
  type RoomPushResponse,
  type RoomRemoveResponse,
} from '@switchboard/protocol'
import type { RoomStore } from '@switchboard/registry'
import type { EdgeClient } from './edge-client.js'
import type { LimitChecks } from './limits.js'
import type { RouterMetrics, TimedRegistry } from './metrics.js'

export interface RoomApiDeps {
  rooms: RoomStore
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
  const { rooms, registry, edges, metrics, limits, roomLimits, forward } = deps

  function roomName(value: unknown): string {
    const room = parseOrThrow(RoomName, value, 'room')
    if (room.length > roomLimits.maxNameLength) throw new SwitchboardError('invalid_request', `room: at most ${roomLimits.maxNameLength} characters`)
    return room
  }

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
    const answers = await Promise.all([...byEdge].map(([url, users]) => forward(requestId, url, () => call(url, users))))
    const missed = answers.filter((a) => a === undefined).length
    if (missed > 0) {
      throw new SwitchboardError('edge_unavailable', `the change is stored, but ${missed} of ${answers.length} edges holding these users did not confirm it; retry (changes are idempotent)`)
    }
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
      const frame = pushFrame(id, body.event, body.data, Date.now())
      const route = await rooms.route(room, roomLimits.listMax)
      const live = route.generation === undefined ? new Map() : await registry.incarnations(route.incIds)
      const urls = [...new Set([...live.values()].map((n) => n.url))]
      const list = route.userIds !== undefined
      const delivery = { frame, room, generation: route.generation ?? '', except: body.except, list }
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
      if (!route.userIds || !written) return answer
      // A small room: each member's outcome, as a user push answers (members only; `except` left out).
      const except = new Set(body.except)
      const members = route.userIds.filter((u) => !except.has(u))
      const missed = members.filter((u) => !written.has(u))
      // Only an edge that failed can hide a member that is online: look those up then, and only then.
      const located = failedUrls.size > 0 && missed.length > 0 ? await registry.locate(missed) : new Map()
      const isOnFailedEdge = (u: string) => located.get(u)?.some((c: { url: string }) => failedUrls.has(c.url)) ?? false
      return { ...answer, delivered: members.filter((u) => written.has(u)), offline: missed.filter((u) => !isOnFailedEdge(u)), failed: missed.filter(isOnFailedEdge) }
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

    async delete(roomParam, requestId) {
      const room = roomName(roomParam)
      const route = await rooms.route(room, 0)
      const { removed } = await rooms.delete(room)
      // The edges holding members drop them all (their generation is dead anyway: pushes skip them).
      const live = await registry.incarnations(route.incIds)
      await Promise.all([...new Set([...live.values()].map((n) => n.url))].map((url) => forward(requestId, url, () => edges.roomLeave(url, { room }, requestId))))
      return { room, removed }
    },
  }
}

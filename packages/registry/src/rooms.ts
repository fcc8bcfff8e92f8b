import { randomBytes } from 'node:crypto'
import { SwitchboardError } from '@switchboard/protocol'
import { gatewayOf, type RedisClient, type RedisGateway } from './gateway.js'
import { groupBy, partitionOf, roomPartitionOf, PARTITIONS, type Keys } from './keys.js'
import * as lua from './scripts/lua.js'

export interface RoomLimits {
  /** Members per room: an add that would pass it is refused whole. */
  maxMembers: number
  /** Durable rooms per user: a user past it is refused (reported), the others added. */
  maxRoomsPerUser: number
}

/** Default room limits (ROOMS_MAX_MEMBERS, ROOMS_MAX_PER_USER, ROOM_NAME_MAX_LENGTH, ROOM_PUSH_LIST_MAX). */
export const DEFAULT_ROOMS = { maxMembers: 100_000, maxRoomsPerUser: 1_000, maxNameLength: 128, listMax: 1_000 } as const

export interface RoomAdded {
  /** The users that were not members before (the rest already were: adding is idempotent). */
  added: string[]
  /** The users refused because they are in `maxRoomsPerUser` rooms already. */
  refused: string[]
  /** Members now. */
  members: number
  /** The room's life: a new one begins when a room is created (again) after it was deleted or expired. */
  generation: string
}

export interface RoomInfo {
  members: number
  /** Undefined when the room does not exist (never created, deleted or expired). */
  generation: string | undefined
}

/** Whether an edge incarnation holds a connection of a member of `room` (its field in the room's edge index). */
export interface RoomHolding {
  room: string
  holds: boolean
}

/** What a room push needs, read in one call. */
export interface RoomRoute {
  /** Undefined when the room does not exist: nothing to push to. */
  generation: string | undefined
  members: number
  /** The incarnations in the room's edge index, dead ones included: the caller keeps the live. */
  incIds: string[]
  /** Every member, when there are at most `listMax` (none for a room that does not exist). */
  userIds: string[] | undefined
}

/** A user's durable room, with the generation it joined: a reverse entry of another generation is stale. */
export interface UserRoom {
  room: string
  generation: string
}

/**
 * The durable memberships of rooms (docs/design/rooms.md), managed by backends: a room's
 * members, and each user's rooms (the reverse index edges read at connect). Adding writes the
 * room first and the users' reverse entries second; removing the other way round: a failure
 * between the two leaves a member that misses pushes, never a non-member that receives them.
 * Room names and user ids are validated by the caller; `userIds` may repeat.
 */
export interface RoomStore {
  /** Adds members; `idleTtlMs` makes the room expire after that long without an add (kept once set). */
  add(room: string, userIds: readonly string[], options?: { idleTtlMs?: number }): Promise<RoomAdded>
  /** Removes members; resolves with those that were members, and the members left. */
  remove(room: string, userIds: readonly string[]): Promise<{ removed: string[]; members: number }>
  /** Members in name order after `cursor` ('' first), at most `count`; `cursor` for the next page, undefined at the end. */
  members(room: string, cursor: string, count: number): Promise<{ userIds: string[]; cursor: string | undefined }>
  info(room: string): Promise<RoomInfo>
  /** The user's durable rooms, stale entries included (their generation is not the room's). */
  roomsOf(userId: string): Promise<UserRoom[]>
  /** `roomsOf` of many users in few calls (edges: the users arriving in one turn), in `userIds` order. */
  roomsOfMany(userIds: readonly string[]): Promise<UserRoom[][]>
  /** Removes every member, then the room; resolves with how many members it had. */
  delete(room: string): Promise<{ removed: number }>
  /** Removes every member; the room lives on (same generation and idle expiry). */
  clear(room: string): Promise<{ removed: number }>
  /** Edges: sets or clears incarnation `incId`'s field in each room's edge index. */
  setEdgeRooms(incId: string, changes: readonly RoomHolding[]): Promise<void>
  /** Routers: the room's generation, size and edge index, and its members up to `listMax`. */
  route(room: string, listMax: number): Promise<RoomRoute>
  /** The janitor: clears a dead incarnation's fields from every room's edge index. */
  forgetIncarnation(incId: string): Promise<void>
}

const newGeneration = () => randomBytes(8).toString('hex')
/** Members removed per call when a room is deleted. */
const DELETE_BATCH = 1_000
/** Users' rooms read per call. */
const READ_BATCH = 1_000

function tooMany(room: string, limits: RoomLimits): SwitchboardError {
  return new SwitchboardError('invalid_request', `room ${JSON.stringify(room)} would have more than ${limits.maxMembers} members`)
}

/** Rooms in Redis: a ZSET of members and a generation STRING in the room's partition slot, a HASH of rooms in each user's. */
export class RedisRoomStore implements RoomStore {
  readonly #gateway: RedisGateway
  readonly #keys: Keys
  readonly #limits: RoomLimits

  /** `options.prefix`: a client's key prefix (a gateway has its own). */
  constructor(redis: RedisClient | RedisGateway, limits: RoomLimits, options: { prefix?: string } = {}) {
    this.#gateway = gatewayOf(redis, 'room store', options.prefix)
    this.#keys = this.#gateway.keys
    this.#limits = limits
  }

  async add(room: string, userIds: readonly string[], options: { idleTtlMs?: number } = {}): Promise<RoomAdded> {
    const users = [...new Set(userIds)]
    const reply = (await this.#gateway.script(lua.roomAdd, this.#roomKeys(room), [this.#limits.maxMembers, options.idleTtlMs ?? 0, newGeneration(), ...users])) as (string | number)[]
    if (Number(reply[0]) !== 1) throw tooMany(room, this.#limits)
    const generation = String(reply[1])
    let members = Number(reply[2])
    const added = new Set(reply.slice(3).map(String))
    // Every user's reverse entry (also those already members: their generation may be stale).
    const refused = (await Promise.all(
      [...groupBy(users, partitionOf).values()].map(async (group) => {
        const keys = group.map((u) => this.#keys.userRooms(u))
        const indexes = (await this.#gateway.script(lua.userRoomsAdd, keys, [room, generation, this.#limits.maxRoomsPerUser])) as number[]
        return indexes.map((i) => group[Number(i) - 1]!)
      }),
    )).flat()
    if (refused.length > 0) {
      // Undo the room side for the refused users that this call added.
      const undo = refused.filter((u) => added.has(u))
      if (undo.length > 0) members = Number(((await this.#gateway.script(lua.roomRemove, this.#roomKeys(room), undo)) as number[])[0])
      for (const u of undo) added.delete(u)
    }
    return { added: users.filter((u) => added.has(u)), refused, members, generation }
  }

  async remove(room: string, userIds: readonly string[]): Promise<{ removed: string[]; members: number }> {
    const users = [...new Set(userIds)]
    await this.#gateway.call((r) => Promise.all(users.map((u) => r.hdel(this.#keys.userRooms(u), room))))
    const reply = (await this.#gateway.script(lua.roomRemove, this.#roomKeys(room), users)) as (string | number)[]
    return { removed: reply.slice(1).map(String), members: Number(reply[0]) }
  }

  async members(room: string, cursor: string, count: number): Promise<{ userIds: string[]; cursor: string | undefined }> {
    const [key] = this.#keys.room(room)
    const page = await this.#gateway.call((r) => r.zrangebylex(key, cursor === '' ? '-' : `(${cursor}`, '+', 'LIMIT', 0, count))
    return { userIds: page, cursor: page.length === count ? page.at(-1) : undefined }
  }

  async info(room: string): Promise<RoomInfo> {
    const [members, generation] = this.#keys.room(room)
    const [size, g] = await this.#gateway.call((r) => Promise.all([r.zcard(members), r.get(generation)]))
    return { members: size, generation: g?.split(' ')[0] }
  }

  async roomsOf(userId: string): Promise<UserRoom[]> {
    return (await this.roomsOfMany([userId]))[0]!
  }

  async roomsOfMany(userIds: readonly string[]): Promise<UserRoom[][]> {
    // One script for all of them on one server; one per partition (a slot each) on a Cluster.
    const slots = this.#gateway.isCluster ? [...groupBy(userIds.keys(), (i) => partitionOf(userIds[i]!)).values()] : [[...userIds.keys()]]
    // At most READ_BATCH users per call, so one call never blocks Redis for long (a resync reads every user).
    const groups = slots.flatMap((indexes) => Array.from({ length: Math.ceil(indexes.length / READ_BATCH) }, (_, b) => indexes.slice(b * READ_BATCH, (b + 1) * READ_BATCH)))
    const out: UserRoom[][] = new Array(userIds.length)
    await Promise.all(
      groups.map(async (indexes) => {
        const replies = (await this.#gateway.script(lua.userRoomsRead, indexes.map((i) => this.#keys.userRooms(userIds[i]!)), [])) as string[][]
        indexes.forEach((i, k) => {
          const flat = replies[k] ?? []
          const rooms: UserRoom[] = []
          for (let j = 0; j + 1 < flat.length; j += 2) rooms.push({ room: flat[j]!, generation: flat[j + 1]! })
          out[i] = rooms
        })
      }),
    )
    return out
  }

  async delete(room: string): Promise<{ removed: number }> {
    const cleared = await this.clear(room)
    await this.#gateway.call((r) => r.del(this.#keys.room(room)[1]))
    return cleared
  }

  async clear(room: string): Promise<{ removed: number }> {
    let removed = 0
    for (;;) {
      const { userIds } = await this.members(room, '', DELETE_BATCH)
      if (userIds.length === 0) break
      removed += (await this.remove(room, userIds)).removed.length
    }
    return { removed }
  }

  async setEdgeRooms(incId: string, changes: readonly RoomHolding[]): Promise<void> {
    await Promise.all(
      [...groupBy(changes, (c) => roomPartitionOf(c.room))].map(([p, group]) =>
        this.#gateway.script(
          lua.roomIndex,
          [this.#keys.roomsOfIncarnation(p, incId), ...group.map((c) => this.#keys.room(c.room)[2])],
          [incId, ...group.flatMap((c) => [c.room, c.holds ? 1 : 0])],
        ),
      ),
    )
  }

  async route(room: string, listMax: number): Promise<RoomRoute> {
    const [generation, members, incIds, userIds] = (await this.#gateway.script(lua.roomRoute, this.#keys.room(room), [listMax])) as [string, number, string[], string[]]
    return { generation: generation || undefined, members: Number(members), incIds, userIds: Number(members) <= listMax ? userIds : undefined }
  }

  async forgetIncarnation(incId: string): Promise<void> {
    await forgetIncarnation(this.#gateway, incId)
  }

  #roomKeys(room: string): string[] {
    return this.#keys.room(room).slice(0, 2)
  }
}

/**
 * Clears incarnation `incId`'s fields from the edge index of every room it wrote, partition by
 * partition (RedisRegistry's clean-up of a dead incarnation calls it too). Idempotent: a dead
 * incarnation never writes again.
 */
export async function forgetIncarnation(gateway: RedisGateway, incId: string): Promise<void> {
  const keys = gateway.keys
  await gateway.call((redis) =>
    Promise.all(
      Array.from({ length: PARTITIONS }, async (_, p) => {
        const set = keys.roomsOfIncarnation(p, incId)
        const rooms = await redis.smembers(set)
        for (const room of rooms) await redis.hdel(keys.room(room)[2], incId)
        if (rooms.length > 0) await redis.del(set)
      }),
    ),
  )
}

/** The same rules in one process (standalone and tests); expiry is read on access. */
export class MemoryRoomStore implements RoomStore {
  readonly #rooms = new Map<string, { members: Set<string>; generation: string; idleTtlMs: number; expiresAt: number }>()
  /** The edge index: room -> incarnations holding a member's connection (kept when the room goes, as in Redis). */
  readonly #edges = new Map<string, Set<string>>()
  readonly #userRooms = new Map<string, Map<string, string>>()
  readonly #limits: RoomLimits
  readonly #now: () => number

  constructor(limits: RoomLimits, options: { now?: () => number } = {}) {
    this.#limits = limits
    this.#now = options.now ?? Date.now
  }

  async add(room: string, userIds: readonly string[], options: { idleTtlMs?: number } = {}): Promise<RoomAdded> {
    const users = [...new Set(userIds)]
    const existing = this.#live(room)
    const fresh = users.filter((u) => !existing?.members.has(u))
    if ((existing?.members.size ?? 0) + fresh.length > this.#limits.maxMembers) throw tooMany(room, this.#limits)
    const r = existing ?? { members: new Set<string>(), generation: newGeneration(), idleTtlMs: 0, expiresAt: Infinity }
    if (options.idleTtlMs) r.idleTtlMs = options.idleTtlMs
    this.#rooms.set(room, r)
    const refused: string[] = []
    for (const u of users) {
      const rooms = this.#userRooms.get(u) ?? new Map<string, string>()
      if (!rooms.has(room) && rooms.size >= this.#limits.maxRoomsPerUser) {
        refused.push(u)
        continue
      }
      rooms.set(room, r.generation)
      this.#userRooms.set(u, rooms)
      r.members.add(u)
    }
    this.#touch(r)
    return { added: fresh.filter((u) => !refused.includes(u)), refused, members: r.members.size, generation: r.generation }
  }

  async remove(room: string, userIds: readonly string[]): Promise<{ removed: string[]; members: number }> {
    const users = [...new Set(userIds)]
    for (const u of users) this.#userRooms.get(u)?.delete(room)
    const r = this.#live(room)
    const removed = users.filter((u) => r?.members.delete(u))
    return { removed, members: r?.members.size ?? 0 }
  }

  async members(room: string, cursor: string, count: number): Promise<{ userIds: string[]; cursor: string | undefined }> {
    const sorted = [...(this.#live(room)?.members ?? [])].sort(byBytes).filter((u) => cursor === '' || byBytes(u, cursor) > 0)
    const page = sorted.slice(0, count)
    return { userIds: page, cursor: page.length === count ? page.at(-1) : undefined }
  }

  async info(room: string): Promise<RoomInfo> {
    const r = this.#live(room)
    return { members: r?.members.size ?? 0, generation: r?.generation }
  }

  async roomsOf(userId: string): Promise<UserRoom[]> {
    return [...(this.#userRooms.get(userId) ?? [])].map(([room, generation]) => ({ room, generation }))
  }

  async roomsOfMany(userIds: readonly string[]): Promise<UserRoom[][]> {
    return Promise.all(userIds.map((u) => this.roomsOf(u)))
  }

  async delete(room: string): Promise<{ removed: number }> {
    const cleared = await this.clear(room)
    this.#rooms.delete(room)
    return cleared
  }

  async clear(room: string): Promise<{ removed: number }> {
    const { removed } = await this.remove(room, [...(this.#live(room)?.members ?? [])])
    return { removed: removed.length }
  }

  async setEdgeRooms(incId: string, changes: readonly RoomHolding[]): Promise<void> {
    for (const { room, holds } of changes) {
      const edges = this.#edges.get(room) ?? new Set<string>()
      if (holds) edges.add(incId)
      else edges.delete(incId)
      if (edges.size > 0) this.#edges.set(room, edges)
      else this.#edges.delete(room)
    }
  }

  async route(room: string, listMax: number): Promise<RoomRoute> {
    const r = this.#live(room)
    const members = r?.members.size ?? 0
    return {
      generation: r?.generation,
      members,
      incIds: [...(this.#edges.get(room) ?? [])],
      userIds: members <= listMax ? [...(r?.members ?? [])].sort(byBytes) : undefined,
    }
  }

  async forgetIncarnation(incId: string): Promise<void> {
    for (const [room, edges] of this.#edges) if (edges.delete(incId) && edges.size === 0) this.#edges.delete(room)
  }

  #touch(r: { idleTtlMs: number; expiresAt: number }): void {
    r.expiresAt = r.idleTtlMs > 0 ? this.#now() + r.idleTtlMs : Infinity
  }

  #live(room: string) {
    const r = this.#rooms.get(room)
    if (r && r.expiresAt <= this.#now()) this.#rooms.delete(room)
    return r && r.expiresAt > this.#now() ? r : undefined
  }
}

/** Redis orders the members of one score by their bytes: so does this, for the same pages. */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

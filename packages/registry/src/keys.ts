/**
 * Every Redis key of the registry is built here.
 *
 * Control keys share the hash tag `{ctl}`; a user's entry and its clean-up index share the
 * tag of the user's partition `{pN}`. Every script touches a single slot, so the registry
 * runs unchanged on Redis Cluster.
 */

/** Fixed per deployment: changing it strands existing entries until every edge resyncs. */
export const PARTITIONS = 256

/** FNV-1a over UTF-16 code units; only this process computes it, so any stable hash works. */
export function partitionOf(userId: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % PARTITIONS
}

/** Items by partition (or any number key): a script per partition's slot. */
export function groupBy<T>(items: Iterable<T>, keyOf: (item: T) => number): Map<number, T[]> {
  const groups = new Map<number, T[]>()
  for (const item of items) {
    const key = keyOf(item)
    const group = groups.get(key)
    if (group) group.push(item)
    else groups.set(key, [item])
  }
  return groups
}

export interface Keys {
  /** ZSET incId -> lease expiry (ms, Redis clock). */
  readonly nodes: string
  /** HASH incId -> node info JSON, for incarnations not yet reaped. */
  readonly inc: string
  /** HASH nodeId -> current incId. */
  readonly names: string
  /** ZSET incId -> due ms: incarnations whose entries must be cleaned up. */
  readonly gcq: string
  /**
   * HASH: the registry's epoch. `since`: ms (Redis clock) since when its data has been
   * continuous (the first lease opened after it was lost, or a router's reaper noticing a new
   * server); `id`: the server identity holding it then (serverIdentity()).
   */
  readonly epoch: string
  /** HASH userId -> "connId:incId:since connId:incId:since ..." (oldest first). */
  users(partition: number): string
  /** SET of userIds in this partition with an entry of incarnation `incId`. */
  index(partition: number, incId: string): string
  /** The partition's keys in the order every partition script takes them (KEYS[1..6]). */
  partition(partition: number, incId?: string): string[]
  /** HASH sinkId -> id of the partition's last event that sink acknowledged. */
  cursors(partition: number): string
  /** HASH partition -> "workerId expiryMs": who delivers each partition's events. */
  readonly owners: string
  /** ZSET workerId -> expiry: the routers delivering events. */
  readonly workers: string
  /** STRING counter, incremented whenever a worker joins or leaves `workers`. */
  readonly membership: string
  /** STREAM of every partition's events, in each partition's order: the pull API's feed. */
  readonly feed: string
  /** STRING: the newest feed id trimmed away. */
  readonly feedTrimmed: string
  /** A user's inbox of kept pushes: meta STRING "<epoch> <last offset>", then the LIST of frames (inbox.ts). */
  inbox(partition: number, userId: string): [string, string]
  /**
   * A room's members ZSET, generation STRING and edge index (HASH incId -> 1: the incarnations
   * holding a connection of a member), in the room's partition (roomPartitionOf; rooms.ts).
   */
  room(room: string): [string, string, string]
  /** SET of the rooms of one partition whose edge index has a field of incarnation `incId`. */
  roomsOfIncarnation(partition: number, incId: string): string
  /** HASH room -> generation: the durable rooms of a user, in the user's partition. */
  userRooms(userId: string): string
  /** HASH userId -> "<cutoff ms> <expiry ms>": the partition's revocations (Redis clock), each dropped once expired (revoke.lua). */
  revoked(partition: number): string
  /** STRING "p <fingerprint>" (pending) or "d <fingerprint> <answer>" (done): an idempotency key (idempotency.ts), one slot each. */
  idempotency(key: string): string
}

/** A room's partition: rooms spread over the partitions like users, under another name space. */
export function roomPartitionOf(room: string): number {
  return partitionOf(`room:${room}`)
}

export function buildKeys(prefix: string): Keys {
  const ctl = `${prefix}{ctl}`
  return {
    nodes: `${ctl}:nodes`,
    inc: `${ctl}:inc`,
    names: `${ctl}:names`,
    gcq: `${ctl}:gcq`,
    epoch: `${ctl}:epoch`,
    users: (p) => `${prefix}{p${p}}:u`,
    index: (p, incId) => `${prefix}{p${p}}:i:${incId}`,
    // users, index, events (STREAM), holds (ZSET userId -> due ms), hold causes (HASH), last version (STRING)
    partition: (p, incId = '-') => {
      const tag = `${prefix}{p${p}}`
      return [`${tag}:u`, `${tag}:i:${incId}`, `${tag}:ev`, `${tag}:h`, `${tag}:hc`, `${tag}:v`]
    },
    cursors: (p) => `${prefix}{p${p}}:cur`,
    owners: `${ctl}:own`,
    workers: `${ctl}:workers`,
    membership: `${ctl}:membership`,
    feed: `${prefix}{feed}:ev`,
    feedTrimmed: `${prefix}{feed}:trimmed`,
    inbox: (p, userId) => [`${prefix}{p${p}}:im:${userId}`, `${prefix}{p${p}}:in:${userId}`],
    room: (room) => {
      const tag = `${prefix}{p${roomPartitionOf(room)}}`
      return [`${tag}:rm:${room}`, `${tag}:rg:${room}`, `${tag}:re:${room}`]
    },
    roomsOfIncarnation: (p, incId) => `${prefix}{p${p}}:ri:${incId}`,
    userRooms: (userId) => `${prefix}{p${partitionOf(userId)}}:ur:${userId}`,
    revoked: (p) => `${prefix}{p${p}}:rv`,
    idempotency: (key) => `${prefix}idem:${key}`,
  }
}

import { randomBytes } from 'node:crypto'
import { Cluster } from 'ioredis'
import { SwitchboardError } from '@switchboard/protocol'
import { buildKeys, groupBy, partitionOf, PARTITIONS, type Keys } from './keys.js'
import type { CloseCause, PresenceCause, PresenceEvent } from '@switchboard/protocol'
import { LiveView } from './live-view.js'
import { forgetIncarnation } from './rooms.js'
import * as lua from './scripts/lua.js'
import { storeCall, type LuaScript, type RedisClient } from './scripts/lua.js'
import {
  DEFAULT_PRESENCE,
  MAX_CONNECTIONS_PER_USER,
  type ConnectionInfo,
  type Evicted,
  type FeedPage,
  type Lease,
  type LiveNode,
  type Located,
  type NodeInfo,
  type NodeStatus,
  type PartitionClaim,
  type PresenceSettings,
  type PresenceWorker,
  type ReapGuard,
  type Registry,
  type SnapshotPage,
  type StoredEvent,
} from './registry.js'

export interface RedisRegistryOptions {
  /** Key prefix, so several deployments (or tests) share one Redis. */
  prefix?: string
  /** How stale the routers' view of live incarnations may get; keep it well under two thirds of the lease TTL. */
  liveRefreshMs?: number
  /** Held offlines and event retention; every process writing the registry must use the same. */
  presence?: Partial<PresenceSettings>
}

/** Pairs per script call, so one call never blocks Redis for long. */
const BATCH = 500
/** A claimed clean-up job becomes due again after this if its claimer died. */
const GC_VISIBILITY_MS = 60_000

/**
 * The registry on Redis (standalone, Sentinel or Cluster): one lease per incarnation,
 * renewed in O(1); per-connection entries fenced by connId and tagged with their
 * incarnation, so entries of a dead or superseded incarnation are invisible at once and
 * cleaned up later through a per-incarnation index. Design: shared/design/registry.md.
 */
export class RedisRegistry implements Registry {
  readonly #redis: RedisClient
  readonly #keys: Keys
  readonly #live: LiveView
  readonly #presence: PresenceSettings
  readonly partitions = PARTITIONS
  /**
   * Per lease this process holds: until when (Redis clock, ms) it is surely alive, from its last
   * open or renewal. A registration that reaches Redis later is refused (add.lua), so a write
   * delayed by a partition never lands under a lease that may have lapsed.
   */
  readonly #validUntil = new Map<string, number>()

  constructor(redis: RedisClient, options: RedisRegistryOptions = {}) {
    this.#redis = redis
    this.#keys = buildKeys(options.prefix ?? 'sb:')
    this.#presence = { ...DEFAULT_PRESENCE, ...options.presence }
    this.#live = new LiveView((script, args) => this.#run(script, [this.#keys.nodes, this.#keys.inc], args), options.liveRefreshMs ?? 1_000)
  }

  async openLease(node: NodeInfo, ttlMs: number): Promise<Lease> {
    const incId = newIncId()
    const lease: Lease = { ...node, incId, ttlMs }
    const now = await this.#run(lua.join, this.#ctl(), [incId, node.nodeId, nodeInfoJson(lease, { connections: 0, draining: false }), ttlMs])
    this.#validUntil.set(incId, Number(now) + ttlMs)
    return lease
  }

  async renew(lease: Lease, status: NodeStatus): Promise<boolean> {
    const k = this.#keys
    const now = Number(await this.#run(lua.renew, [k.nodes, k.inc], [lease.incId, nodeInfoJson(lease, status), lease.ttlMs]))
    if (now > 0) this.#validUntil.set(lease.incId, now + lease.ttlMs)
    else this.#validUntil.delete(lease.incId)
    return now > 0
  }

  async closeLease(lease: Lease): Promise<void> {
    this.#validUntil.delete(lease.incId)
    await this.#run(lua.leave, this.#ctl(), [lease.incId, lease.nodeId])
    await this.#collect(lease.incId, 'drain')
    await this.#run(zrem, [this.#keys.gcq], [lease.incId])
  }

  addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    return this.#add(lease, conns, maxPerUser, 'connect')
  }

  async removeConnection(lease: Lease, userId: string, connId: string, cause: CloseCause = 'close'): Promise<boolean> {
    const keys = this.#keys.partition(partitionOf(userId), lease.incId)
    const removed = await this.#run(lua.remove, keys, [userId, connId, lease.incId, cause, ...this.#settings()])
    return Number(removed) === 1
  }

  resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    // Adding is an upsert that moves existing connIds to this incarnation.
    return this.#add(lease, conns, maxPerUser, 'resync')
  }

  async #add(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser: number, cause: PresenceCause): Promise<Evicted[]> {
    const max = Math.min(Math.max(1, maxPerUser), MAX_CONNECTIONS_PER_USER)
    const byPartition = groupBy(conns, (c) => partitionOf(c.userId))
    const calls: Promise<unknown>[] = []
    for (const [p, group] of byPartition) {
      for (let i = 0; i < group.length; i += BATCH) {
        const batch = group.slice(i, i + BATCH)
        const args: (string | number)[] = [lease.incId, max, cause, ...this.#settings(), this.#validUntil.get(lease.incId) ?? 0]
        for (const c of batch) args.push(c.userId, c.connId, c.since, c.iat ?? '')
        calls.push(this.#run(lua.add, [...this.#keys.partition(p, lease.incId), this.#keys.revoked(p)], args))
      }
    }
    const evicted: Evicted[] = []
    const replies = (await Promise.all(calls)) as [string[], string[], number?][]
    if (replies.some((r) => r[2] === 1)) throw new SwitchboardError('registry_unavailable', 'registration refused: it came after the lease could have lapsed')
    for (const [gone, revoked] of replies) {
      for (let i = 0; i + 1 < gone.length; i += 2) {
        const [connId = '', incId = ''] = gone[i + 1]!.split(':')
        evicted.push({ userId: gone[i]!, connId, incId })
      }
      for (const connId of revoked) {
        const conn = conns.find((c) => c.connId === connId)! // a refused write is rare: no index for it
        evicted.push({ userId: conn.userId, connId, incId: lease.incId, revoked: true })
      }
    }
    return evicted
  }

  async revoke(userId: string, ttlMs: number): Promise<number> {
    return Number(await this.#run(lua.revoke, [this.#keys.revoked(partitionOf(userId))], [userId, ttlMs]))
  }

  async revokedBefore(userId: string): Promise<number | undefined> {
    const cutoff = (await this.#run(lua.revokedBefore, [this.#keys.revoked(partitionOf(userId))], [userId])) as string | null
    return cutoff === null ? undefined : Number(cutoff)
  }

  async locate(userIds: readonly string[]): Promise<Map<string, Located[]>> {
    const byPartition = groupBy(new Set(userIds), partitionOf)
    const reads = [...byPartition].map(([p, ids]) =>
      this.#run(hmget, [this.#keys.users(p)], ids).then((values) => ({ ids, values: values as (string | null)[] })),
    )
    const [, results] = await Promise.all([this.#live.ensureFresh(), Promise.all(reads)])

    const entries: Entry[] = []
    for (const { ids, values } of results) {
      for (let i = 0; i < ids.length; i++) {
        const value = values[i]
        if (value) parseEntries(ids[i]!, value, entries)
      }
    }
    // Entries name few incarnations (one per edge): each is looked up once, not once per entry.
    const nodes = new Map<string, LiveNode | undefined>()
    for (const e of entries) if (!nodes.has(e.incId)) nodes.set(e.incId, undefined)
    await this.#live.resolve(nodes.keys())
    for (const incId of nodes.keys()) nodes.set(incId, this.#live.get(incId))

    const found = new Map<string, Located[]>()
    for (const { userId, connId, incId, since } of entries) {
      const node = nodes.get(incId)
      if (!node) continue
      const located: Located = { connId, since, incId, nodeId: node.nodeId, url: node.url }
      const list = found.get(userId)
      if (list) list.push(located)
      else found.set(userId, [located])
    }
    return found
  }

  liveNodes(): Promise<LiveNode[]> {
    return this.#live.refresh()
  }

  async incarnations(incIds: readonly string[]): Promise<Map<string, LiveNode>> {
    await this.#live.ensureFresh()
    await this.#live.resolve(incIds)
    const live = new Map<string, LiveNode>()
    for (const incId of incIds) {
      const node = this.#live.get(incId)
      if (node) live.set(incId, node)
    }
    return live
  }

  async serverIdentity(): Promise<string> {
    const redis = this.#redis
    const masters = redis instanceof Cluster ? redis.nodes('master') : [redis]
    try {
      const ids = await Promise.all(masters.map(async (m) => /^run_id:(\w+)/m.exec(await m.info('server'))?.[1] ?? '?'))
      return ids.sort().join(',')
    } catch (err) {
      throw new SwitchboardError('registry_unavailable', 'registry call failed', { cause: err })
    }
  }

  async reap(graceMs: number, guard?: ReapGuard): Promise<number> {
    const identity = guard ? await this.serverIdentity() : ''
    const reaped = Number(await this.#run(lua.reap, this.#ctl(), [graceMs, 100, guard?.settleMs ?? -1, guard?.accessMs ?? -1, identity]))
    // Clean up every due incarnation: reaped just now, superseded by a restart, or left over by a dead claimer.
    for (;;) {
      const incId = String(await this.#run(lua.claimGc, [this.#keys.gcq], [GC_VISIBILITY_MS]))
      if (!incId) break
      await this.#collect(incId, 'edge_lost')
      await this.#run(zrem, [this.#keys.gcq], [incId])
    }
    return reaped
  }

  async close(): Promise<void> {
    // Nothing to stop: the live view refreshes on demand, and the client belongs to the caller.
  }

  async claimPartitions(workerId: string, ttlMs: number, release: readonly number[] = []): Promise<PartitionClaim> {
    const k = this.#keys
    const [owned, giving, waiting, membership] = (await this.#run(lua.own, [k.owners, k.workers, k.membership], [workerId, ttlMs, PARTITIONS, ...release])) as [number[], number[], number, string]
    return { owned: owned.map(Number), giving: giving.map(Number), isWaiting: Number(waiting) === 1, membership: String(membership) }
  }

  async leavePartitions(workerId: string, release: readonly number[]): Promise<void> {
    const k = this.#keys
    await this.#run(lua.disown, [k.owners, k.workers, k.membership], [workerId, ...release])
  }

  async membership(): Promise<string> {
    return String(((await this.#run(get, [this.#keys.membership], [])) as string | null) ?? '0')
  }

  async workers(): Promise<PresenceWorker[]> {
    const k = this.#keys
    const flat = (await this.#run(lua.workers, [k.owners, k.workers], [])) as (string | number)[]
    const workers: PresenceWorker[] = []
    for (let i = 0; i + 2 < flat.length; i += 3) workers.push({ workerId: String(flat[i]), partitions: Number(flat[i + 1]), expiresInMs: Number(flat[i + 2]) })
    return workers.sort((a, b) => a.workerId.localeCompare(b.workerId))
  }

  async pump(partition: number, after: string, count: number): Promise<{ events: StoredEvent[]; nextHoldInMs: number | undefined }> {
    const reply = (await this.#run(lua.pump, this.#keys.partition(partition), [HOLDS_PER_PUMP, ...this.#settings(), after, count])) as unknown[]
    const next = Number(reply[0])
    const events: StoredEvent[] = []
    for (let i = 1; i + 1 < reply.length; i += 2) {
      const event = parseEvent(partition, String(reply[i]), reply[i + 1] as string[])
      if (event) events.push(event)
    }
    return { events, nextHoldInMs: next < 0 ? undefined : next }
  }

  versions(partitions: readonly number[]): Promise<(string | undefined)[]> {
    // Plain GETs: autopipelined, one round trip per master, no script.
    return Promise.all(partitions.map(async (p) => ((await this.#run(get, [this.#keys.partition(p)[5]!], [])) as string | null) ?? undefined))
  }

  async acknowledged(partition: number, sinkIds: readonly string[]): Promise<(string | undefined)[]> {
    if (sinkIds.length === 0) return []
    const values = (await this.#run(hmget, [this.#keys.cursors(partition)], sinkIds)) as (string | null)[]
    return values.map((v) => v ?? undefined)
  }

  async acknowledge(partition: number, sinkId: string, position: string): Promise<void> {
    await this.#run(hset, [this.#keys.cursors(partition)], [sinkId, position])
  }

  async backlog(partition: number): Promise<{ length: number; oldestTs: number | undefined; newest: string }> {
    const [length, first, last] = (await this.#run(streamEnds, [this.#keys.partition(partition)[2]!], [])) as [number, string | undefined, string | undefined]
    return { length, oldestTs: first ? streamMs(first) : undefined, newest: last ?? '0-0' }
  }

  async appendFeed(events: readonly PresenceEvent[]): Promise<void> {
    if (events.length === 0) return
    const oldest = Math.max(0, Math.min(...events.map((e) => e.ts)) - this.#presence.retentionMs)
    await this.#run(lua.feed, [this.#keys.feed, this.#keys.feedTrimmed], [Math.floor(oldest), ...events.map((e) => JSON.stringify(e))])
  }

  async readFeed(after: string, count: number): Promise<FeedPage> {
    const [page, first, last, trimmed] = (await this.#run(xrange, [this.#keys.feed, this.#keys.feedTrimmed], [after, count])) as [[string, string[]][], string, string, string]
    return { events: feedEvents(page), oldest: first, newest: last || '0-0', trimmed }
  }

  async recentFeed(count: number): Promise<FeedPage['events']> {
    return feedEvents((await this.#run(xrevrange, [this.#keys.feed], [count])) as [string, string[]][])
  }

  async snapshot(partition: number, cursor: string, count: number): Promise<SnapshotPage> {
    const reply = (await this.#run(lua.snapshot, this.#keys.partition(partition), [cursor, count])) as unknown[]
    const users: SnapshotPage['users'] = []
    for (let i = 1; i + 1 < reply.length; i += 2) users.push({ userId: String(reply[i]), connections: Number(reply[i + 1]) })
    return { users, cursor: String(reply[0]) }
  }

  /** Strips an incarnation's entries from every partition, through its index. */
  async #collect(incId: string, cause: 'drain' | 'edge_lost'): Promise<void> {
    await Promise.all(
      Array.from({ length: PARTITIONS }, async (_, p) => {
        const keys = this.#keys.partition(p, incId)
        while (Number(await this.#run(lua.collect, keys, [incId, BATCH, cause, ...this.#settings()])) > 0);
      }),
    )
    // Its fields in room edge indexes: routers already skip them (no lease); this frees them.
    await this.#run(this.#forgetRooms, [], [incId])
  }

  #settings(): [number, number] {
    return [this.#presence.offlineGraceMs, this.#presence.retentionMs]
  }

  readonly #forgetRooms: PlainCommand = (redis, _keys, [incId]) => forgetIncarnation(redis, this.#keys, String(incId))

  #ctl(): string[] {
    const k = this.#keys
    return [k.nodes, k.inc, k.names, k.gcq, k.epoch]
  }

  /** Runs a script, or a plain command given as a one-line "script"; any Redis failure is `registry_unavailable`. */
  async #run(script: LuaScript | PlainCommand, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const status = this.#redis.status
    if (status === 'reconnecting' || status === 'end' || status === 'close') {
      throw new SwitchboardError('registry_unavailable', `redis is ${status}`)
    }
    return storeCall(this.#redis, 'registry', () => ('source' in script ? script.run(this.#redis, keys, args) : script(this.#redis, keys, args)))
  }
}

type PlainCommand = (redis: RedisClient, keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>
const hmget: PlainCommand = (redis, [key], fields) => redis.hmget(key!, ...(fields as string[]))
const zrem: PlainCommand = (redis, [key], members) => redis.zrem(key!, ...members.map(String))
const get: PlainCommand = (redis, [key]) => redis.get(key!)
const hset: PlainCommand = (redis, [key], [field, value]) => redis.hset(key!, String(field), String(value))
const streamEnds: PlainCommand = async (redis, [key]) => {
  const [length, first, last] = await Promise.all([redis.xlen(key!), redis.xrange(key!, '-', '+', 'COUNT', 1), redis.xrevrange(key!, '+', '-', 'COUNT', 1)])
  return [length, first[0]?.[0], last[0]?.[0]]
}
/** KEYS feed. Returns the newest ARGV[0] entries, newest first. */
const xrevrange: PlainCommand = (redis, [key], [count]) => redis.xrevrange(key!, '+', '-', 'COUNT', Number(count))

/** Stream entries of the feed as events; written only by appendFeed, a corrupt entry is skipped rather than blocking the feed. */
function feedEvents(entries: [string, string[]][]): FeedPage['events'] {
  const events: FeedPage['events'] = []
  for (const [position, fields] of entries) {
    try {
      events.push({ position, event: JSON.parse(fields[1] ?? '') as PresenceEvent })
    } catch {
      // corrupt: skipped
    }
  }
  return events
}

/** KEYS feed, trimmed. Returns [entries after ARGV[0] (up to ARGV[1]), oldest id, newest id, newest id trimmed]. */
const xrange: PlainCommand = async (redis, [key, trimmedKey], [after, count]) => {
  const [page, first, last, trimmed] = await Promise.all([
    redis.xrange(key!, `(${String(after)}`, '+', 'COUNT', Number(count)),
    redis.xrange(key!, '-', '+', 'COUNT', 1),
    redis.xrevrange(key!, '+', '-', 'COUNT', 1),
    redis.get(trimmedKey!),
  ])
  return [page, first[0]?.[0] ?? '', last[0]?.[0] ?? '', trimmed ?? '0-0']
}

/** Holds settled per pump call, so one call never blocks Redis for long. */
const HOLDS_PER_PUMP = 500

/** ms part of a stream id "ms-seq". */
function streamMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')))
}

/** A partition stream entry: fields u (userId) t (1 online, 0 offline) v (ver) c (cause) n (connections). */
function parseEvent(partition: number, position: string, fields: string[]): StoredEvent | undefined {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!
  if (f.u === undefined || f.v === undefined) return undefined
  return {
    id: `${position}.${partition}`,
    type: f.t === '1' ? 'user.online' : 'user.offline',
    userId: f.u,
    ver: Number(f.v),
    cause: f.c as PresenceCause,
    connections: Number(f.n ?? 0),
    ts: streamMs(position),
    partition,
    position,
  }
}

/** What renew and join keep with a lease; its TTL tells the reaper when a lapsed lease was last renewed (reap.lua). */
function nodeInfoJson(lease: Lease, status: NodeStatus): string {
  const { nodeId, url, startedAt, ttlMs } = lease
  return JSON.stringify({ nodeId, url, startedAt, ttlMs, connections: status.connections, draining: status.draining })
}

/** Time-sortable and unique per start: base36 ms (8 chars) and 6 random base36 chars. */
function newIncId(): string {
  const random = [...randomBytes(6)].map((b) => (b % 36).toString(36)).join('')
  return Date.now().toString(36).padStart(8, '0') + random
}

interface Entry {
  userId: string
  connId: string
  incId: string
  since: number
}

/**
 * Appends the entries of one user's value, "connId:incId:since connId:incId:since ...", to
 * `out`. Scans with indexOf: a 10,000-user lookup parses 10,000 values, and split() per entry
 * made that the lookup's largest cost. Malformed entries are skipped.
 */
function parseEntries(userId: string, value: string, out: Entry[]): void {
  for (let start = 0; start < value.length; ) {
    let end = value.indexOf(' ', start)
    if (end < 0) end = value.length
    const c1 = value.indexOf(':', start)
    const c2 = c1 < 0 ? -1 : value.indexOf(':', c1 + 1)
    if (c1 > start && c2 > c1 + 1 && c2 < end) {
      out.push({ userId, connId: value.slice(start, c1), incId: value.slice(c1 + 1, c2), since: Number(value.slice(c2 + 1, end)) })
    }
    start = end + 1
  }
}

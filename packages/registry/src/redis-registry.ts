import { SwitchboardError } from '@switchboard/protocol'
import { gatewayOf, newIncarnationId, type RedisClient, type RedisGateway } from './gateway.js'
import { groupBy, partitionOf, PARTITIONS, type Keys } from './keys.js'
import type { CloseCause, PresenceCause, PresenceEvent } from '@switchboard/protocol'
import { LiveView } from './live-view.js'
import { forgetIncarnation } from './rooms.js'
import * as lua from './scripts/lua.js'
import { TurnBatch } from './turn-batch.js'
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
  /** Key prefix, so several deployments (or tests) share one Redis (a client's; a gateway has its own). */
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
  readonly #gateway: RedisGateway
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
  /**
   * A turn's pumps (a delivery worker pumps every changed partition at each poll: in a connect
   * storm, all of them) in one script per PUMP_PARTITIONS partitions on one server; on a
   * Cluster one per partition, a slot each.
   */
  readonly #pumps: TurnBatch<PumpRead, PumpReply>
  /** A turn's acknowledgements (one per partition of a delivered batch), the same way. */
  readonly #acks: TurnBatch<Ack, void>

  constructor(redis: RedisClient | RedisGateway, options: RedisRegistryOptions = {}) {
    this.#gateway = gatewayOf(redis, 'registry', options.prefix)
    this.#keys = this.#gateway.keys
    this.#presence = { ...DEFAULT_PRESENCE, ...options.presence }
    const perCall = (n: number) => (this.#gateway.isCluster ? 1 : n)
    this.#pumps = new TurnBatch((reads) => this.#pumpMany(reads), perCall(PUMP_PARTITIONS))
    this.#acks = new TurnBatch((acks) => this.#acknowledgeMany(acks), perCall(PARTITIONS))
    this.#live = new LiveView((script, args) => this.#gateway.script(script, [this.#keys.nodes, this.#keys.inc], args), options.liveRefreshMs ?? 1_000)
  }

  async openLease(node: NodeInfo, ttlMs: number): Promise<Lease> {
    const incId = newIncarnationId()
    const lease: Lease = { ...node, incId, ttlMs }
    const now = await this.#gateway.script(lua.join, this.#ctl(), [incId, node.nodeId, nodeInfoJson(lease, { connections: 0, draining: false }), ttlMs])
    this.#validUntil.set(incId, Number(now) + ttlMs)
    return lease
  }

  async renew(lease: Lease, status: NodeStatus): Promise<boolean> {
    const k = this.#keys
    const now = Number(await this.#gateway.script(lua.renew, [k.nodes, k.inc], [lease.incId, nodeInfoJson(lease, status), lease.ttlMs]))
    if (now > 0) this.#validUntil.set(lease.incId, now + lease.ttlMs)
    else this.#validUntil.delete(lease.incId)
    return now > 0
  }

  async closeLease(lease: Lease): Promise<void> {
    this.#validUntil.delete(lease.incId)
    await this.#gateway.script(lua.leave, this.#ctl(), [lease.incId, lease.nodeId])
    await this.#collect(lease.incId, 'drain')
    await this.#gateway.call((r) => r.zrem(this.#keys.gcq, lease.incId))
  }

  addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    return this.#add(lease, conns, maxPerUser, 'connect')
  }

  async removeConnection(lease: Lease, userId: string, connId: string, cause: CloseCause = 'close'): Promise<boolean> {
    const keys = this.#keys.partition(partitionOf(userId), lease.incId)
    const removed = await this.#gateway.script(lua.remove, keys, [userId, connId, lease.incId, cause, ...this.#settings()])
    return Number(removed) === 1
  }

  resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    // Adding is an upsert that moves existing connIds to this incarnation.
    return this.#add(lease, conns, maxPerUser, 'resync')
  }

  async #add(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser: number, cause: PresenceCause): Promise<Evicted[]> {
    const max = Math.min(Math.max(1, maxPerUser), MAX_CONNECTIONS_PER_USER)
    const header = [lease.incId, max, cause, ...this.#settings(), this.#validUntil.get(lease.incId) ?? 0]
    // One script for every partition on one server (a connect storm spreads a turn's
    // registrations over all of them), one per partition (a slot each) on a Cluster; at most
    // BATCH connections per call.
    const calls: Promise<unknown>[] = []
    let keys: string[] = []
    let args: (string | number)[] = []
    let size = 0
    const send = () => {
      if (size > 0) calls.push(this.#gateway.script(lua.add, keys, [...header, ...args]))
      keys = []
      args = []
      size = 0
    }
    for (const [p, group] of groupBy(conns, (c) => partitionOf(c.userId))) {
      for (let i = 0; i < group.length; i += BATCH) {
        const batch = group.slice(i, i + BATCH)
        if (size + batch.length > BATCH || (size > 0 && this.#gateway.isCluster)) send()
        keys.push(...this.#keys.partition(p, lease.incId), this.#keys.revoked(p))
        args.push(batch.length)
        for (const c of batch) args.push(c.userId, c.connId, c.since, c.iat ?? '')
        size += batch.length
      }
    }
    send()
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
    return Number(await this.#gateway.script(lua.revoke, [this.#keys.revoked(partitionOf(userId))], [userId, ttlMs]))
  }

  async revokedBefore(userId: string): Promise<number | undefined> {
    const cutoff = (await this.#gateway.script(lua.revokedBefore, [this.#keys.revoked(partitionOf(userId))], [userId])) as string | null
    return cutoff === null ? undefined : Number(cutoff)
  }

  async locate(userIds: readonly string[]): Promise<Map<string, Located[]>> {
    const byPartition = groupBy(new Set(userIds), partitionOf)
    const reads = [...byPartition].map(([p, ids]) =>
      this.#gateway.call((r) => r.hmget(this.#keys.users(p), ...ids)).then((values) => ({ ids, values })),
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

  serverIdentity(): Promise<string> {
    return this.#gateway.serverIdentity()
  }

  async reap(graceMs: number, guard?: ReapGuard): Promise<number> {
    const identity = guard ? await this.serverIdentity() : ''
    const reaped = Number(await this.#gateway.script(lua.reap, this.#ctl(), [graceMs, 100, guard?.settleMs ?? -1, guard?.accessMs ?? -1, identity]))
    // Clean up every due incarnation: reaped just now, superseded by a restart, or left over by a dead claimer.
    for (;;) {
      const incId = String(await this.#gateway.script(lua.claimGc, [this.#keys.gcq], [GC_VISIBILITY_MS]))
      if (!incId) break
      await this.#collect(incId, 'edge_lost')
      await this.#gateway.call((r) => r.zrem(this.#keys.gcq, incId))
    }
    return reaped
  }

  async close(): Promise<void> {
    // Nothing to stop: the live view refreshes on demand, and the client belongs to the caller.
  }

  async claimPartitions(workerId: string, ttlMs: number, release: readonly number[] = []): Promise<PartitionClaim> {
    const k = this.#keys
    const [owned, giving, waiting, membership] = (await this.#gateway.script(lua.own, [k.owners, k.workers, k.membership], [workerId, ttlMs, PARTITIONS, ...release])) as [number[], number[], number, string]
    return { owned: owned.map(Number), giving: giving.map(Number), isWaiting: Number(waiting) === 1, membership: String(membership) }
  }

  async leavePartitions(workerId: string, release: readonly number[]): Promise<void> {
    const k = this.#keys
    await this.#gateway.script(lua.disown, [k.owners, k.workers, k.membership], [workerId, ...release])
  }

  async membership(): Promise<string> {
    return (await this.#gateway.call((r) => r.get(this.#keys.membership))) ?? '0'
  }

  async workers(): Promise<PresenceWorker[]> {
    const k = this.#keys
    const flat = (await this.#gateway.script(lua.workers, [k.owners, k.workers], [])) as (string | number)[]
    const workers: PresenceWorker[] = []
    for (let i = 0; i + 2 < flat.length; i += 3) workers.push({ workerId: String(flat[i]), partitions: Number(flat[i + 1]), expiresInMs: Number(flat[i + 2]) })
    return workers.sort((a, b) => a.workerId.localeCompare(b.workerId))
  }

  pump(partition: number, after: string, count: number): Promise<PumpReply> {
    return this.#pumps.ask({ partition, after, count })
  }

  async #pumpMany(reads: readonly PumpRead[]): Promise<PumpReply[]> {
    const keys = reads.flatMap((r) => this.#keys.partition(r.partition))
    const args = [HOLDS_PER_PUMP, ...this.#settings(), ...reads.flatMap((r) => [r.after, r.count])]
    const replies = (await this.#gateway.script(lua.pump, keys, args)) as unknown[][]
    return replies.map((reply, i) => {
      const partition = reads[i]!.partition
      const next = Number(reply[0])
      const events: StoredEvent[] = []
      for (let j = 1; j + 1 < reply.length; j += 2) {
        const event = parseEvent(partition, String(reply[j]), reply[j + 1] as string[])
        if (event) events.push(event)
      }
      return { events, nextHoldInMs: next < 0 ? undefined : next }
    })
  }

  async versions(partitions: readonly number[]): Promise<(string | undefined)[]> {
    const keys = partitions.map((p) => this.#keys.partition(p)[5]!)
    // One MGET on one server; on a Cluster plain GETs (a slot each), autopipelined: one round trip per master.
    const values = this.#gateway.isCluster ? await Promise.all(keys.map((key) => this.#gateway.call((r) => r.get(key)))) : keys.length > 0 ? await this.#gateway.call((r) => r.mget(keys)) : []
    return values.map((v) => v ?? undefined)
  }

  async acknowledged(partition: number, sinkIds: readonly string[]): Promise<(string | undefined)[]> {
    if (sinkIds.length === 0) return []
    const values = await this.#gateway.call((r) => r.hmget(this.#keys.cursors(partition), ...sinkIds))
    return values.map((v) => v ?? undefined)
  }

  acknowledge(partition: number, sinkId: string, position: string): Promise<void> {
    return this.#acks.ask({ partition, sinkId, position })
  }

  async #acknowledgeMany(acks: readonly Ack[]): Promise<void[]> {
    await this.#gateway.script(
      lua.ack,
      acks.map((a) => this.#keys.cursors(a.partition)),
      acks.flatMap((a) => [a.sinkId, a.position]),
    )
    return acks.map(() => undefined)
  }

  async backlog(partition: number): Promise<{ length: number; oldestTs: number | undefined; newest: string }> {
    const [length, first, last] = await this.#gateway.call((r) => streamEnds(r, this.#keys.partition(partition)[2]!))
    return { length, oldestTs: first ? streamMs(first) : undefined, newest: last ?? '0-0' }
  }

  async appendFeed(events: readonly PresenceEvent[]): Promise<void> {
    if (events.length === 0) return
    const oldest = Math.max(0, Math.min(...events.map((e) => e.ts)) - this.#presence.retentionMs)
    await this.#gateway.script(lua.feed, [this.#keys.feed, this.#keys.feedTrimmed], [Math.floor(oldest), ...events.map((e) => JSON.stringify(e))])
  }

  async readFeed(after: string, count: number): Promise<FeedPage> {
    const [page, first, last, trimmed] = await this.#gateway.call((r) => feedPage(r, this.#keys.feed, this.#keys.feedTrimmed, after, count))
    return { events: feedEvents(page), oldest: first, newest: last || '0-0', trimmed }
  }

  async recentFeed(count: number): Promise<FeedPage['events']> {
    return feedEvents(await this.#gateway.call((r) => r.xrevrange(this.#keys.feed, '+', '-', 'COUNT', count)))
  }

  async snapshot(partition: number, cursor: string, count: number): Promise<SnapshotPage> {
    const reply = (await this.#gateway.script(lua.snapshot, this.#keys.partition(partition), [cursor, count])) as unknown[]
    const users: SnapshotPage['users'] = []
    for (let i = 1; i + 1 < reply.length; i += 2) users.push({ userId: String(reply[i]), connections: Number(reply[i + 1]) })
    return { users, cursor: String(reply[0]) }
  }

  /** Strips an incarnation's entries from every partition, through its index. */
  async #collect(incId: string, cause: 'drain' | 'edge_lost'): Promise<void> {
    await Promise.all(
      Array.from({ length: PARTITIONS }, async (_, p) => {
        const keys = this.#keys.partition(p, incId)
        while (Number(await this.#gateway.script(lua.collect, keys, [incId, BATCH, cause, ...this.#settings()])) > 0);
      }),
    )
    // Its fields in room edge indexes: routers already skip them (no lease); this frees them.
    await forgetIncarnation(this.#gateway, incId)
  }

  #settings(): [number, number] {
    return [this.#presence.offlineGraceMs, this.#presence.retentionMs]
  }

  #ctl(): string[] {
    const k = this.#keys
    return [k.nodes, k.inc, k.names, k.gcq, k.epoch]
  }
}

/** A stream's length, first and last ids. */
async function streamEnds(redis: RedisClient, key: string): Promise<[number, string | undefined, string | undefined]> {
  const [length, first, last] = await Promise.all([redis.xlen(key), redis.xrange(key, '-', '+', 'COUNT', 1), redis.xrevrange(key, '+', '-', 'COUNT', 1)])
  return [length, first[0]?.[0], last[0]?.[0]]
}

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

/** The feed's entries after `after` (up to `count`), oldest id, newest id, newest id trimmed. */
async function feedPage(redis: RedisClient, key: string, trimmedKey: string, after: string, count: number): Promise<[[string, string[]][], string, string, string]> {
  const [page, first, last, trimmed] = await Promise.all([
    redis.xrange(key, `(${after}`, '+', 'COUNT', count),
    redis.xrange(key, '-', '+', 'COUNT', 1),
    redis.xrevrange(key, '+', '-', 'COUNT', 1),
    redis.get(trimmedKey),
  ])
  return [page, first[0]?.[0] ?? '', last[0]?.[0] ?? '', trimmed ?? '0-0']
}

/** Holds settled per partition per pump, so one call never blocks Redis for long. */
const HOLDS_PER_PUMP = 500
/** Partitions per pump call on one server: even with a full page of events each (the relay reads 1,000), a short call. */
const PUMP_PARTITIONS = 16

interface PumpRead {
  partition: number
  after: string
  count: number
}
interface Ack {
  partition: number
  sinkId: string
  position: string
}
interface PumpReply {
  events: StoredEvent[]
  nextHoldInMs: number | undefined
}

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

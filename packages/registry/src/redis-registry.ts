import { randomBytes } from 'node:crypto'
import { Cluster } from 'ioredis'
import { SwitchboardError } from '@switchboard/protocol'
import { buildKeys, partitionOf, PARTITIONS, type Keys } from './keys.js'
import * as lua from './scripts/lua.js'
import type { LuaScript, RedisClient } from './scripts/lua.js'
import { MAX_CONNECTIONS_PER_USER, type ConnectionInfo, type Evicted, type Lease, type LiveNode, type Located, type NodeInfo, type NodeStatus, type Registry } from './registry.js'

export interface RedisRegistryOptions {
  /** Key prefix, so several deployments (or tests) share one Redis. */
  prefix?: string
  /** How stale the routers' view of live incarnations may get; keep it well under two thirds of the lease TTL. */
  liveRefreshMs?: number
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

  constructor(redis: RedisClient, options: RedisRegistryOptions = {}) {
    this.#redis = redis
    this.#keys = buildKeys(options.prefix ?? 'sb:')
    this.#live = new LiveView((script, args) => this.#run(script, [this.#keys.nodes, this.#keys.inc], args), options.liveRefreshMs ?? 1_000)
  }

  async openLease(node: NodeInfo, ttlMs: number): Promise<Lease> {
    const incId = newIncId()
    const lease: Lease = { ...node, incId, ttlMs }
    await this.#run(lua.join, this.#ctl(), [incId, node.nodeId, nodeInfoJson(lease, { connections: 0, draining: false }), ttlMs])
    return lease
  }

  async renew(lease: Lease, status: NodeStatus): Promise<boolean> {
    const k = this.#keys
    const now = await this.#run(lua.renew, [k.nodes, k.inc], [lease.incId, nodeInfoJson(lease, status), lease.ttlMs])
    return Number(now) > 0
  }

  async closeLease(lease: Lease): Promise<void> {
    await this.#run(lua.leave, this.#ctl(), [lease.incId, lease.nodeId])
    await this.#collect(lease.incId)
    await this.#run(zrem, [this.#keys.gcq], [lease.incId])
  }

  async addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    const max = Math.min(Math.max(1, maxPerUser), MAX_CONNECTIONS_PER_USER)
    const byPartition = groupBy(conns, (c) => partitionOf(c.userId))
    const calls: Promise<unknown>[] = []
    for (const [p, group] of byPartition) {
      for (let i = 0; i < group.length; i += BATCH) {
        const args: (string | number)[] = [lease.incId, max]
        for (const c of group.slice(i, i + BATCH)) args.push(c.userId, c.connId, c.since)
        calls.push(this.#run(lua.add, [this.#keys.users(p), this.#keys.index(p, lease.incId)], args))
      }
    }
    const evicted: Evicted[] = []
    for (const reply of (await Promise.all(calls)) as string[][]) {
      for (let i = 0; i + 1 < reply.length; i += 2) {
        const [connId = '', incId = ''] = reply[i + 1]!.split(':')
        evicted.push({ userId: reply[i]!, connId, incId })
      }
    }
    return evicted
  }

  async removeConnection(lease: Lease, userId: string, connId: string): Promise<boolean> {
    const p = partitionOf(userId)
    const removed = await this.#run(lua.remove, [this.#keys.users(p), this.#keys.index(p, lease.incId)], [userId, connId, lease.incId])
    return Number(removed) === 1
  }

  resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number): Promise<Evicted[]> {
    // Adding is an upsert that moves existing connIds to this incarnation.
    return this.addConnections(lease, conns, maxPerUser)
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

  async reap(graceMs: number): Promise<number> {
    const reaped = Number(await this.#run(lua.reap, this.#ctl(), [graceMs, 100]))
    // Clean up every due incarnation: reaped just now, superseded by a restart, or left over by a dead claimer.
    for (;;) {
      const incId = String(await this.#run(lua.claim, [this.#keys.gcq], [GC_VISIBILITY_MS]))
      if (!incId) break
      await this.#collect(incId)
      await this.#run(zrem, [this.#keys.gcq], [incId])
    }
    return reaped
  }

  async close(): Promise<void> {
    // Nothing to stop: the live view refreshes on demand, and the client belongs to the caller.
  }

  /** Strips an incarnation's entries from every partition, through its index. */
  async #collect(incId: string): Promise<void> {
    await Promise.all(
      Array.from({ length: PARTITIONS }, async (_, p) => {
        const keys = [this.#keys.users(p), this.#keys.index(p, incId)]
        while (Number(await this.#run(lua.collect, keys, [incId, BATCH])) > 0);
      }),
    )
  }

  #ctl(): string[] {
    const k = this.#keys
    return [k.nodes, k.inc, k.names, k.gcq]
  }

  /** Runs a script, or a plain command given as a one-line "script"; any Redis failure is `registry_unavailable`. */
  async #run(script: LuaScript | PlainCommand, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const status = this.#redis.status
    if (status === 'reconnecting' || status === 'end' || status === 'close') {
      throw new SwitchboardError('registry_unavailable', `redis is ${status}`)
    }
    try {
      return 'source' in script ? await script.run(this.#redis, keys, args) : await script(this.#redis, keys, args)
    } catch (err) {
      throw new SwitchboardError('registry_unavailable', 'registry call failed', { cause: err })
    }
  }
}

type PlainCommand = (redis: RedisClient, keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>
const hmget: PlainCommand = (redis, [key], fields) => redis.hmget(key!, ...(fields as string[]))
const zrem: PlainCommand = (redis, [key], members) => redis.zrem(key!, ...members.map(String))

/**
 * The routers' view of which incarnations hold a lease. Refreshed in full at most every
 * `refreshMs`; an incarnation met in an entry but unknown here, or whose cached lease has
 * passed its expiry, is checked against Redis before the entry is used, so a new node is
 * seen at once and a dead one never past its expiry.
 */
class LiveView {
  #nodes = new Map<string, LiveNode>()
  /** Checked and found without a lease since the last full refresh. */
  #dead = new Set<string>()
  /** Redis clock minus local clock, ms. */
  #offsetMs = 0
  #refreshedAt = 0
  #refreshing: Promise<LiveNode[]> | undefined

  constructor(
    private readonly run: (script: LuaScript, args: readonly (string | number)[]) => Promise<unknown>,
    private readonly refreshMs: number,
  ) {}

  async ensureFresh(): Promise<void> {
    if (Date.now() - this.#refreshedAt >= this.refreshMs) await this.refresh()
  }

  refresh(): Promise<LiveNode[]> {
    this.#refreshing ??= this.#fetchAll().finally(() => (this.#refreshing = undefined))
    return this.#refreshing
  }

  async resolve(incIds: Iterable<string>): Promise<void> {
    const unknown = [...incIds].filter((id) => !this.get(id) && !this.#dead.has(id))
    if (unknown.length === 0) return
    const reply = (await this.run(lua.check, unknown)) as string[]
    this.#setClock(Number(reply[0]))
    unknown.forEach((incId, i) => {
      const node = parseNode(incId, reply[1 + 2 * i], reply[2 + 2 * i])
      if (node && node.expiresAt > this.#redisNow()) this.#nodes.set(incId, node)
      else this.#dead.add(incId)
    })
  }

  /** The incarnation if its lease is unexpired by Redis' clock as of now. */
  get(incId: string): LiveNode | undefined {
    const node = this.#nodes.get(incId)
    return node && node.expiresAt > this.#redisNow() ? node : undefined
  }

  async #fetchAll(): Promise<LiveNode[]> {
    const reply = (await this.run(lua.live, [])) as string[]
    this.#setClock(Number(reply[0]))
    const nodes = new Map<string, LiveNode>()
    for (let i = 1; i + 2 < reply.length; i += 3) {
      const node = parseNode(reply[i]!, reply[i + 1], reply[i + 2])
      if (node) nodes.set(node.incId, node)
    }
    this.#nodes = nodes
    this.#dead.clear()
    this.#refreshedAt = Date.now()
    return [...nodes.values()]
  }

  #setClock(redisNowMs: number): void {
    this.#offsetMs = redisNowMs - Date.now()
  }

  #redisNow(): number {
    return Date.now() + this.#offsetMs
  }
}

function parseNode(incId: string, expiry: string | undefined, info: string | undefined): LiveNode | undefined {
  if (!expiry || !info) return undefined
  try {
    const n = JSON.parse(info) as Omit<LiveNode, 'incId' | 'expiresAt'>
    return { incId, expiresAt: Number(expiry), nodeId: n.nodeId, url: n.url, startedAt: n.startedAt, connections: n.connections, draining: n.draining }
  } catch {
    return undefined // written only by openLease/renew; a corrupt value hides one node rather than failing every lookup
  }
}

function nodeInfoJson(node: NodeInfo, status: NodeStatus): string {
  const { nodeId, url, startedAt } = node
  return JSON.stringify({ nodeId, url, startedAt, connections: status.connections, draining: status.draining })
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

function groupBy<T>(items: Iterable<T>, keyOf: (item: T) => number): Map<number, T[]> {
  const groups = new Map<number, T[]>()
  for (const item of items) {
    const key = keyOf(item)
    const group = groups.get(key)
    if (group) group.push(item)
    else groups.set(key, [item])
  }
  return groups
}

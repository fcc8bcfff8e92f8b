import { newIncarnationId } from './gateway.js'
import type { CloseCause, PresenceCause, PresenceEvent } from '@switchboard/protocol'
import { partitionOf, PARTITIONS } from './keys.js'
import {
  DEFAULT_PRESENCE,
  MAX_CONNECTIONS_PER_USER,
  type FeedPage,
  type PresenceSettings,
  type PresenceWorker,
  type SnapshotPage,
  type StoredEvent,
  type ConnectionInfo,
  type Evicted,
  type Lease,
  type LiveNode,
  type Located,
  type NodeInfo,
  type NodeStatus,
  isRevoked,
  type PartitionClaim,
  type ReapGuard,
  type Registry,
} from './registry.js'

export interface MemoryRegistryOptions {
  /** ms epoch clock; tests inject their own. Defaults to `Date.now`. */
  now?: () => number
  presence?: Partial<PresenceSettings>
}

interface Incarnation {
  readonly lease: Lease
  /** ms epoch; live while `expiresAt > now`. */
  expiresAt: number
  status: NodeStatus
  /** userId -> connIds held by this incarnation: clean-up visits only its own entries. */
  readonly conns: Map<string, Set<string>>
}

interface Entry {
  incId: string
  since: number
}

/**
 * The registry for a single process. Entries belong to an incarnation and are visible only
 * while its lease holds, as in RedisRegistry; superseded and closed incarnations are dropped
 * at once, lapsed ones by `reap`. No timers.
 */
export class MemoryRegistry implements Registry {
  readonly #now: () => number
  /** ms: when its data began (ReapGuard's epoch). */
  readonly #bornAt: number
  readonly #incs = new Map<string, Incarnation>()
  /** nodeId -> incId of its newest incarnation. */
  readonly #current = new Map<string, string>()
  /** userId -> connId -> entry, oldest first (insertion order). */
  readonly #users = new Map<string, Map<string, Entry>>()
  /** userId -> revocation cutoff (ms) and when it lapses. */
  readonly #revoked = new Map<string, { cutoff: number; expiresAt: number }>()
  readonly #presence: PresenceSettings
  readonly #events = new EventStreams()
  /** userId -> held offline. */
  readonly #holds = new Map<string, { due: number; cause: CloseCause | 'edge_lost' }>()
  /** `${partition} ${sinkId}` -> acknowledged position. */
  readonly #acks = new Map<string, string>()
  /** partition -> owner and expiry. */
  readonly #owners = new Map<number, { workerId: string; expiresAt: number }>()
  readonly #workers = new Map<string, number>()
  /** Incremented whenever a worker joins or leaves #workers (PresenceLog.membership). */
  #membership = 0
  readonly #feed = new EventStreams()
  readonly partitions = PARTITIONS

  constructor(options: MemoryRegistryOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#bornAt = this.#now()
    this.#presence = { ...DEFAULT_PRESENCE, ...options.presence }
  }

  async openLease(node: NodeInfo, ttlMs: number): Promise<Lease> {
    const now = this.#now()
    const previous = this.#current.get(node.nodeId)
    if (previous !== undefined) this.#forget(previous, 'edge_lost')
    const lease: Lease = Object.freeze({
      nodeId: node.nodeId,
      url: node.url,
      startedAt: node.startedAt,
      incId: newIncarnationId(now),
      ttlMs,
    })
    this.#incs.set(lease.incId, {
      lease,
      expiresAt: now + ttlMs,
      status: { connections: 0, draining: false },
      conns: new Map(),
    })
    this.#current.set(node.nodeId, lease.incId)
    return lease
  }

  async renew(lease: Lease, status: NodeStatus): Promise<boolean> {
    const inc = this.#incs.get(lease.incId)
    if (!inc) return false
    // A lapsed but not yet reaped lease revives here, entries included.
    inc.expiresAt = this.#now() + inc.lease.ttlMs
    inc.status = { connections: status.connections, draining: status.draining }
    return true
  }

  async closeLease(lease: Lease): Promise<void> {
    this.#forget(lease.incId, 'drain')
  }

  async addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    return this.#addAll(lease, conns, maxPerUser, 'connect')
  }

  async removeConnection(_lease: Lease, userId: string, connId: string, cause: CloseCause = 'close'): Promise<boolean> {
    // The connId is the fencing token: whoever asks, only that exact entry goes.
    const entries = this.#users.get(userId)
    const entry = entries?.get(connId)
    if (!entries || !entry) return false
    this.#deleteEntry(userId, entries, connId, entry)
    if (entries.size === 0) this.#wentEmpty(userId, cause)
    return true
  }

  async resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    return this.#addAll(lease, conns, maxPerUser, 'resync')
  }

  #addAll(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser: number, cause: PresenceCause): Evicted[] {
    const inc = this.#incs.get(lease.incId)
    // An unknown incarnation (superseded, closed, reaped) must never show entries again.
    if (!inc) return []
    const max = Math.min(Math.max(1, maxPerUser), MAX_CONNECTIONS_PER_USER)
    return conns.flatMap((conn) => {
      if (isRevoked(conn.iat, this.#cutoffOf(conn.userId))) {
        return [{ userId: conn.userId, connId: conn.connId, incId: inc.lease.incId, revoked: true as const }]
      }
      return this.#add(inc, conn, max, cause)
    })
  }

  async revoke(userId: string, ttlMs: number): Promise<number> {
    const cutoff = Math.max(this.#now(), this.#cutoffOf(userId) ?? 0)
    this.#revoked.set(userId, { cutoff, expiresAt: this.#now() + ttlMs })
    return cutoff
  }

  async revokedBefore(userId: string): Promise<number | undefined> {
    return this.#cutoffOf(userId)
  }

  #cutoffOf(userId: string): number | undefined {
    const r = this.#revoked.get(userId)
    if (r && r.expiresAt <= this.#now()) this.#revoked.delete(userId)
    return r && r.expiresAt > this.#now() ? r.cutoff : undefined
  }

  async locate(userIds: readonly string[]): Promise<Map<string, Located[]>> {
    const now = this.#now()
    const found = new Map<string, Located[]>()
    for (const userId of userIds) {
      if (found.has(userId)) continue
      const entries = this.#users.get(userId)
      if (!entries) continue
      const located: Located[] = []
      for (const [connId, entry] of entries) {
        const inc = this.#incs.get(entry.incId)
        if (!inc || inc.expiresAt <= now) continue
        const { nodeId, incId, url } = inc.lease
        located.push({ connId, since: entry.since, nodeId, incId, url })
      }
      if (located.length > 0) found.set(userId, located)
    }
    return found
  }

  /** One process, no failover: always the same. */
  async serverIdentity(): Promise<string> {
    return 'memory'
  }

  async liveNodes(): Promise<LiveNode[]> {
    const now = this.#now()
    const nodes: LiveNode[] = []
    for (const { lease, expiresAt, status } of this.#incs.values()) {
      if (expiresAt <= now) continue
      const { nodeId, url, startedAt, incId } = lease
      nodes.push({ nodeId, url, startedAt, incId, expiresAt, ...status })
    }
    return nodes
  }

  async incarnations(incIds: readonly string[]): Promise<Map<string, LiveNode>> {
    const live = new Map<string, LiveNode>()
    for (const node of await this.liveNodes()) if (incIds.includes(node.incId)) live.set(node.incId, node)
    return live
  }

  async reap(graceMs: number, guard?: ReapGuard): Promise<number> {
    const now = this.#now()
    // Its data lives as long as the object: the epoch starts at its construction, or when the caller's access returned.
    const epoch = guard?.accessMs === undefined ? this.#bornAt : Math.max(this.#bornAt, now - guard.accessMs)
    const isSettled = guard === undefined || now - epoch >= guard.settleMs
    let cleaned = 0
    for (const [incId, inc] of this.#incs) {
      if (now - inc.expiresAt <= graceMs) continue
      if (!isSettled && inc.expiresAt - inc.lease.ttlMs < epoch) continue
      this.#forget(incId, 'edge_lost')
      cleaned += 1
    }
    return cleaned
  }

  async claimPartitions(workerId: string, ttlMs: number, release: readonly number[] = []): Promise<PartitionClaim> {
    const now = this.#now()
    const isNew = !this.#workers.has(workerId)
    this.#workers.set(workerId, now + ttlMs)
    let changed = isNew
    for (const [id, expiresAt] of this.#workers) {
      if (expiresAt > now) continue
      this.#workers.delete(id)
      changed = true
    }
    if (changed) this.#membership++
    for (const p of release) if (this.#owners.get(p)?.workerId === workerId) this.#owners.delete(p)
    const share = Math.ceil(PARTITIONS / this.#workers.size)
    const mine: number[] = []
    const free: number[] = []
    const held = new Map<string, number>()
    for (let p = 0; p < PARTITIONS; p++) {
      const owner = this.#owners.get(p)
      if (owner?.workerId === workerId) mine.push(p)
      else if (!owner || owner.expiresAt <= now) free.push(p)
      else held.set(owner.workerId, (held.get(owner.workerId) ?? 0) + 1)
    }
    const giving = mine.slice(share)
    for (const p of free) {
      if (mine.length >= share) break
      mine.push(p)
    }
    for (const p of mine) this.#owners.set(p, { workerId, expiresAt: now + ttlMs })
    const isWaiting = mine.length < share && [...held.values()].some((n) => n > share)
    return { owned: mine, giving, isWaiting, membership: String(this.#membership) }
  }

  async leavePartitions(workerId: string, release: readonly number[]): Promise<void> {
    for (const p of release) if (this.#owners.get(p)?.workerId === workerId) this.#owners.delete(p)
    if (this.#workers.delete(workerId)) this.#membership++
  }

  async membership(): Promise<string> {
    return String(this.#membership)
  }

  async workers(): Promise<PresenceWorker[]> {
    const now = this.#now()
    const owned = new Map<string, number>()
    for (const { workerId, expiresAt } of this.#owners.values()) if (expiresAt > now) owned.set(workerId, (owned.get(workerId) ?? 0) + 1)
    return [...this.#workers]
      .filter(([, expiresAt]) => expiresAt > now)
      .map(([workerId, expiresAt]) => ({ workerId, partitions: owned.get(workerId) ?? 0, expiresInMs: expiresAt - now }))
      .sort((a, b) => a.workerId.localeCompare(b.workerId))
  }

  async pump(partition: number, after: string, count: number): Promise<{ events: StoredEvent[]; nextHoldInMs: number | undefined }> {
    const now = this.#now()
    let next: number | undefined
    for (const [userId, hold] of this.#holds) {
      if (partitionOf(userId) !== partition) continue
      if (hold.due > now) {
        next = Math.min(next ?? Infinity, hold.due - now)
        continue
      }
      this.#holds.delete(userId)
      if (!this.#users.has(userId)) this.#emit(userId, false, hold.cause, 0)
    }
    const events = this.#events.after(partition, after, count).map(({ position, event }) => ({ ...event, id: `${position}.${partition}`, partition, position }))
    return { events, nextHoldInMs: next }
  }

  async versions(partitions: readonly number[]): Promise<(string | undefined)[]> {
    return partitions.map((p) => this.#events.version(p))
  }

  async acknowledged(partition: number, sinkIds: readonly string[]): Promise<(string | undefined)[]> {
    return sinkIds.map((id) => this.#acks.get(`${partition} ${id}`))
  }

  async acknowledge(partition: number, sinkId: string, position: string): Promise<void> {
    this.#acks.set(`${partition} ${sinkId}`, position)
  }

  async backlog(partition: number): Promise<{ length: number; oldestTs: number | undefined; newest: string }> {
    this.#events.trim(partition, this.#now() - this.#presence.retentionMs)
    const list = this.#events.list(partition)
    return { length: list.length, oldestTs: list[0]?.event.ts, newest: list.at(-1)?.position ?? '0-0' }
  }

  async appendFeed(events: readonly PresenceEvent[]): Promise<void> {
    for (const e of events) this.#feed.append(0, this.#now(), e)
    this.#feed.trim(0, this.#now() - this.#presence.retentionMs)
  }

  async readFeed(after: string, count: number): Promise<FeedPage> {
    const list = this.#feed.list(0)
    return { events: this.#feed.after(0, after, count), oldest: list[0]?.position ?? '', newest: list.at(-1)?.position ?? '0-0', trimmed: this.#feed.trimmed(0) }
  }

  async recentFeed(count: number): Promise<FeedPage['events']> {
    return this.#feed.list(0).slice(-count).reverse()
  }

  async snapshot(partition: number, _cursor: string, _count: number): Promise<SnapshotPage> {
    // One page per partition: a process's users fit in memory anyway.
    const users: SnapshotPage['users'] = []
    for (const [userId, entries] of this.#users) if (partitionOf(userId) === partition) users.push({ userId, connections: entries.size })
    for (const userId of this.#holds.keys()) if (partitionOf(userId) === partition) users.push({ userId, connections: 0 })
    return { users, cursor: '0' }
  }

  async close(): Promise<void> {
    // Nothing to stop: expiry is computed on read.
  }

  /** Records a transition, as the Redis scripts do: ver strictly increasing per partition, following the clock in µs. */
  #emit(userId: string, online: boolean, cause: PresenceCause, connections: number): void {
    const now = this.#now()
    const p = partitionOf(userId)
    const ver = this.#events.nextVersion(p, now * 1000)
    this.#events.append(p, now, { id: '', type: online ? 'user.online' : 'user.offline', userId, ver, cause, connections, ts: now })
    this.#events.trim(p, now - this.#presence.retentionMs)
  }

  #wentEmpty(userId: string, cause: CloseCause | 'edge_lost'): void {
    if (this.#presence.offlineGraceMs > 0) {
      this.#holds.set(userId, { due: this.#now() + this.#presence.offlineGraceMs, cause })
      this.#events.nextVersion(partitionOf(userId), this.#now() * 1000)
    } else this.#emit(userId, false, cause, 0)
  }

  /** Adds or moves one entry; returns the user's oldest entries evicted beyond `max`. */
  #add(inc: Incarnation, conn: ConnectionInfo, max: number, cause: PresenceCause): Evicted[] {
    const { userId, connId, since } = conn
    let entries = this.#users.get(userId)
    if (!entries) {
      entries = new Map()
      this.#users.set(userId, entries)
      if (!this.#holds.delete(userId)) this.#emit(userId, true, cause, 1)
    }
    const existing = entries.get(connId)
    if (existing) {
      // Same socket written again (resync under a new lease): move it, keep its place.
      this.#unindex(existing.incId, userId, connId)
      existing.incId = inc.lease.incId
      existing.since = since
    } else {
      entries.set(connId, { incId: inc.lease.incId, since })
    }
    let held = inc.conns.get(userId)
    if (!held) {
      held = new Set()
      inc.conns.set(userId, held)
    }
    held.add(connId)
    const evicted: Evicted[] = []
    while (entries.size > max) {
      // The one that connected first goes, wherever it was written (a resync never wins by writing last).
      let first: [string, Entry] | undefined
      for (const e of entries) if (!first || e[1].since < first[1].since) first = e
      const [oldId, entry] = first!
      evicted.push({ userId, connId: oldId, incId: entry.incId })
      this.#deleteEntry(userId, entries, oldId, entry)
    }
    return evicted
  }

  #deleteEntry(userId: string, entries: Map<string, Entry>, connId: string, entry: Entry): void {
    entries.delete(connId)
    if (entries.size === 0) this.#users.delete(userId)
    this.#unindex(entry.incId, userId, connId)
  }

  #unindex(incId: string, userId: string, connId: string): void {
    const held = this.#incs.get(incId)?.conns
    const ids = held?.get(userId)
    if (!held || !ids) return
    ids.delete(connId)
    if (ids.size === 0) held.delete(userId)
  }

  /** Drops an incarnation and every entry it still holds; users left without one go offline with `cause`. */
  #forget(incId: string, cause: 'drain' | 'edge_lost'): void {
    const inc = this.#incs.get(incId)
    if (!inc) return
    this.#incs.delete(incId)
    if (this.#current.get(inc.lease.nodeId) === incId) this.#current.delete(inc.lease.nodeId)
    for (const [userId, connIds] of inc.conns) {
      const entries = this.#users.get(userId)
      if (!entries) continue
      for (const connId of connIds) {
        if (entries.get(connId)?.incId === incId) entries.delete(connId)
      }
      if (entries.size === 0) {
        this.#users.delete(userId)
        this.#wentEmpty(userId, cause)
      }
    }
  }
}

/** Streams of events by partition, with Redis-like positions "ms-seq". */
class EventStreams {
  readonly #lists = new Map<number, { position: string; event: PresenceEvent }[]>()
  readonly #last = new Map<number, { ms: number; seq: number; ver: number }>()
  readonly #trimmed = new Map<number, string>()

  list(partition: number): { position: string; event: PresenceEvent }[] {
    let list = this.#lists.get(partition)
    if (!list) this.#lists.set(partition, (list = []))
    return list
  }

  version(partition: number): string | undefined {
    const ver = this.#last.get(partition)?.ver
    return ver ? String(ver) : undefined
  }

  nextVersion(partition: number, floor: number): number {
    const last = this.#lastOf(partition)
    last.ver = Math.max(last.ver + 1, floor)
    return last.ver
  }

  append(partition: number, now: number, event: PresenceEvent): string {
    const last = this.#lastOf(partition)
    if (now > last.ms) Object.assign(last, { ms: now, seq: 0 })
    else last.seq += 1
    const position = `${last.ms}-${last.seq}`
    this.list(partition).push({ position, event })
    return position
  }

  after(partition: number, after: string, count: number): { position: string; event: PresenceEvent }[] {
    const list = this.list(partition)
    const from = list.findIndex((e) => comparePositions(e.position, after) > 0)
    return from < 0 ? [] : list.slice(from, from + count)
  }

  trim(partition: number, oldestMs: number): void {
    const list = this.list(partition)
    const keep = list.findIndex((e) => Number(e.position.split('-')[0]) >= oldestMs)
    const removed = list.splice(0, keep < 0 ? list.length : keep)
    if (removed.length > 0) this.#trimmed.set(partition, removed.at(-1)!.position)
  }

  /** The newest position trimmed away ('0-0' if none). */
  trimmed(partition: number): string {
    return this.#trimmed.get(partition) ?? '0-0'
  }

  #lastOf(partition: number): { ms: number; seq: number; ver: number } {
    let last = this.#last.get(partition)
    if (!last) this.#last.set(partition, (last = { ms: 0, seq: 0, ver: 0 }))
    return last
  }
}

/** Orders stream positions "ms-seq". Without allocating: delivery workers call it per buffered event. */
export function comparePositions(a: string, b: string): number {
  const ad = a.indexOf('-')
  const bd = b.indexOf('-')
  return Number(a.slice(0, ad)) - Number(b.slice(0, bd)) || Number(a.slice(ad + 1)) - Number(b.slice(bd + 1))
}

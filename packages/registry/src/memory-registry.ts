import { randomInt } from 'node:crypto'
import {
  MAX_CONNECTIONS_PER_USER,
  type ConnectionInfo,
  type Evicted,
  type Lease,
  type LiveNode,
  type Located,
  type NodeInfo,
  type NodeStatus,
  type Registry,
} from './registry.js'

export interface MemoryRegistryOptions {
  /** ms epoch clock; tests inject their own. Defaults to `Date.now`. */
  now?: () => number
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
  readonly #incs = new Map<string, Incarnation>()
  /** nodeId -> incId of its newest incarnation. */
  readonly #current = new Map<string, string>()
  /** userId -> connId -> entry, oldest first (insertion order). */
  readonly #users = new Map<string, Map<string, Entry>>()

  constructor(options: MemoryRegistryOptions = {}) {
    this.#now = options.now ?? Date.now
  }

  async openLease(node: NodeInfo, ttlMs: number): Promise<Lease> {
    const now = this.#now()
    const previous = this.#current.get(node.nodeId)
    if (previous !== undefined) this.#forget(previous)
    const lease: Lease = Object.freeze({
      nodeId: node.nodeId,
      url: node.url,
      startedAt: node.startedAt,
      incId: this.#newIncId(now),
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
    this.#forget(lease.incId)
  }

  async addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser = MAX_CONNECTIONS_PER_USER): Promise<Evicted[]> {
    const inc = this.#incs.get(lease.incId)
    // An unknown incarnation (superseded, closed, reaped) must never show entries again.
    if (!inc) return []
    const max = Math.min(Math.max(1, maxPerUser), MAX_CONNECTIONS_PER_USER)
    return conns.flatMap((conn) => this.#add(inc, conn, max))
  }

  async removeConnection(_lease: Lease, userId: string, connId: string): Promise<boolean> {
    // The connId is the fencing token: whoever asks, only that exact entry goes.
    const entries = this.#users.get(userId)
    const entry = entries?.get(connId)
    if (!entries || !entry) return false
    this.#deleteEntry(userId, entries, connId, entry)
    return true
  }

  resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number): Promise<Evicted[]> {
    return this.addConnections(lease, conns, maxPerUser)
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

  async reap(graceMs: number): Promise<number> {
    const now = this.#now()
    let cleaned = 0
    for (const [incId, inc] of this.#incs) {
      if (now - inc.expiresAt <= graceMs) continue
      this.#forget(incId)
      cleaned += 1
    }
    return cleaned
  }

  async close(): Promise<void> {
    // Nothing to stop: expiry is computed on read.
  }

  /** Adds or moves one entry; returns the user's oldest entries evicted beyond `max`. */
  #add(inc: Incarnation, conn: ConnectionInfo, max: number): Evicted[] {
    const { userId, connId, since } = conn
    let entries = this.#users.get(userId)
    if (!entries) {
      entries = new Map()
      this.#users.set(userId, entries)
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
    for (const [oldId, entry] of entries) {
      if (entries.size <= max) break
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

  /** Drops an incarnation and every entry it still holds. */
  #forget(incId: string): void {
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
      if (entries.size === 0) this.#users.delete(userId)
    }
  }

  /** Time-sortable and unique per start: base36 ms epoch plus 8 random base36 characters. */
  #newIncId(now: number): string {
    for (;;) {
      const random = randomInt(36 ** 8).toString(36).padStart(8, '0')
      const incId = `${now.toString(36).padStart(9, '0')}${random}`
      if (!this.#incs.has(incId)) return incId
    }
  }
}

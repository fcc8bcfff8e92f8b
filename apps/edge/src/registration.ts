import type { Logger } from 'pino'
import { backoffDelayMs, timeCall, type CloseCause } from '@switchboard/protocol'
import type { ConnectionInfo, EdgeRegistry, Evicted, Lease, NodeInfo, NodeStatus } from '@switchboard/registry'
import { systemClock, type Clock, type Timer } from './clock.js'
import type { EdgeMetrics } from './metrics.js'

export interface RegistrationDeps {
  registry: EdgeRegistry
  node: NodeInfo
  leaseTtlMs: number
  log: Logger
  metrics: EdgeMetrics
  /** Per user, cluster-wide; beyond it the registry evicts the oldest connections. */
  maxConnectionsPerUser: number
  /** Renewals, backoffs and their jitter; defaults to the real ones. */
  clock?: Clock
  /**
   * A renewal failed: the registry's connection may be dead while TCP still holds it (a
   * partition: its retransmissions back off to seconds apart, so the first request after the
   * heal would wait for the next one). The edge's main drops it and connects afresh.
   */
  onRenewFailed?: () => void
}

/** What the edge holds, as the registration loop asks it: given at `start`, once the sockets' side exists. */
export interface Holder {
  /** Every connection open on this edge now, for resync. */
  liveConnections: () => ConnectionInfo[]
  status: () => NodeStatus
  /** Closes the sockets of evicted connections (wherever they are). */
  onEvicted: (evicted: readonly Evicted[]) => Promise<void>
  /**
   * Runs after each resync, under the new lease: after a lost lease, a new registry server, a
   * failed write, or a renewal more than two renewal intervals after the last one (the lease
   * may have lapsed and revived: its entries were invisible meanwhile). The room index is
   * written again, and resuming clients are told their inbox heads.
   */
  afterResync?: () => Promise<void>
}

/** Registry retries: the n-th failure in a row waits up to min(MAX_BACKOFF_MS, a renewal interval, RETRY_BASE_MS × 2^n), full jitter. */
const RETRY_BASE_MS = 100
const MAX_BACKOFF_MS = 5_000

/**
 * Keeps this edge's lease and its connections' entries in the registry.
 *
 * Writes are batched per event-loop turn (a reconnect storm becomes a few scripts per
 * partition, not a round trip per socket). A failed write marks the registry as needing a
 * resync, which runs after the next successful renewal; a lost lease (superseded, reaped,
 * or Redis restarted empty), or a new registry server (a failover, which can lose writes
 * while the lease survives), opens a new lease and re-writes every live connection,
 * without closing a socket. A removal waits for the connection's own registration and for any
 * resync under way, so it can never be overtaken and leave a ghost entry.
 */
export class Registration {
  #lease: Lease | undefined
  #pending: { conn: ConnectionInfo; done: () => void }[] = []
  /** Replayed after the next resync, each with the cause its offline event (if any) carries. */
  #failedRemovals: { userId: string; connId: string; cause: CloseCause }[] = []
  #needsResync = false
  /** The registry server(s) this edge's entries were written to (see Registry.serverIdentity). */
  #server: string | undefined
  #resyncing: Promise<void> = Promise.resolve()
  #timer: Timer | undefined
  #failures = 0
  /** When the last successful renewal was sent (clock ms). */
  #renewedAt = 0
  #stopped = false
  #healthy = false

  readonly #clock: Clock
  /** Until `start`, nothing is held. */
  #holder: Holder = { liveConnections: () => [], status: () => ({ connections: 0, draining: false }), onEvicted: async () => undefined }

  constructor(private readonly deps: RegistrationDeps) {
    this.#clock = deps.clock ?? systemClock
  }

  get lease(): Lease | undefined {
    return this.#lease
  }

  /** True while the lease is held and the last registry call succeeded. */
  get isHealthy(): boolean {
    return this.#healthy && this.#lease !== undefined
  }

  /** Opens the lease, retrying with backoff until Redis answers; from then on `holder`'s connections are kept registered. */
  async start(holder: Holder): Promise<void> {
    this.#holder = holder
    for (;;) {
      try {
        this.#server = await this.deps.registry.serverIdentity()
        this.#lease = await this.#timed('open', this.deps.registry.openLease(this.deps.node, this.deps.leaseTtlMs))
        this.#succeeded()
        this.#renewedAt = this.#clock.now()
        this.deps.log.info({ incId: this.#lease.incId }, 'lease opened')
        break
      } catch (err) {
        const backoffMs = this.#failed(err, 'opening the lease failed')
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, backoffMs))
      }
    }
    this.#schedule(this.#intervalMs())
  }

  /** Registers a connection; resolves once written (or once marked for resync if the write failed). */
  register(conn: ConnectionInfo): Promise<void> {
    return new Promise((done) => {
      this.#pending.push({ conn, done })
      if (this.#pending.length === 1) setImmediate(() => void this.#flush())
    })
  }

  /**
   * Removes a connection's entry once any resync has finished. Call it only after the
   * connection's `register` resolved, so the removal cannot overtake the write. `cause` is
   * why the socket closed: the registry puts it on the user's offline event.
   */
  async unregister(userId: string, connId: string, cause: CloseCause): Promise<void> {
    await this.#resyncing
    const lease = this.#lease
    if (!lease) return
    try {
      await this.#timed('remove', this.deps.registry.removeConnection(lease, userId, connId, cause))
    } catch (err) {
      this.#failedRemovals.push({ userId, connId, cause })
      this.#failed(err, 'removing a connection failed; will retry')
    }
  }

  /** Another write for this edge failed (the room index): resync after the next renewal. */
  requestResync(): void {
    this.#needsResync = true
  }

  /** Reports the current status at once (e.g. draining) instead of at the next renewal. */
  async renewNow(): Promise<void> {
    this.#clock.clearTimeout(this.#timer)
    await this.#renew()
  }

  /** Stops renewing and removes the lease and every entry of this incarnation. */
  async stop(): Promise<void> {
    this.#stopped = true
    this.#clock.clearTimeout(this.#timer)
    await this.#resyncing
    if (this.#lease) await this.#timed('close', this.deps.registry.closeLease(this.#lease))
    this.#lease = undefined
  }

  async #flush(): Promise<void> {
    const batch = this.#pending
    this.#pending = []
    const lease = this.#lease
    try {
      if (!lease) throw new Error('no lease yet')
      const evicted = await this.#timed('add', this.deps.registry.addConnections(lease, batch.map((b) => b.conn), this.deps.maxConnectionsPerUser))
      if (evicted.length > 0) void this.#holder.onEvicted(evicted)
    } catch (err) {
      this.#needsResync = true
      this.#failed(err, 'registering connections failed; will resync')
    }
    for (const b of batch) b.done()
  }

  async #renew(): Promise<void> {
    if (this.#stopped || !this.#lease) return
    const { registry, log, metrics } = this.deps
    let next = this.#intervalMs()
    const sentAt = this.#clock.now()
    try {
      const [held, server] = await this.#timed('renew', Promise.all([registry.renew(this.#lease, this.#holder.status()), registry.serverIdentity()]))
      // A failover or restart can lose acknowledged writes (entries added, or removed) while
      // the lease survives: a new incarnation hides whatever the old one left, then the
      // resync writes back every live connection.
      const moved = server !== this.#server
      metrics.leaseRenewals.inc({ result: !held ? 'lost' : moved ? 'server_changed' : 'ok' })
      if (!held || moved) {
        const why = held ? `registry server changed (${this.#server} -> ${server}): failover or restart` : 'lease lost'
        log.warn({ incId: this.#lease.incId }, `${why}; rejoining and resyncing`)
        this.#lease = await this.#timed('open', registry.openLease(this.deps.node, this.deps.leaseTtlMs))
        this.#server = server
        this.#needsResync = true
      }
      // Renewed more than two intervals after the last renewal: the lease may have lapsed and
      // revived (not reaped yet). Meanwhile routers did not see its entries, and another edge's
      // registration may have evicted one of them (single session): its socket, still open here,
      // is registered again by the resync, which keeps the newer session and evicts the other.
      const lapsed = sentAt - this.#renewedAt > 2 * this.#intervalMs()
      if (lapsed) this.#needsResync = true
      if (this.#needsResync || this.#failedRemovals.length > 0) await this.#resync()
      this.#succeeded()
      this.#renewedAt = sentAt
    } catch (err) {
      metrics.leaseRenewals.inc({ result: 'error' })
      next = Math.min(next, this.#failed(err, 'lease renewal failed'))
      this.deps.onRenewFailed?.()
    }
    this.#schedule(next)
  }

  async #resync(): Promise<void> {
    const lease = this.#lease!
    const started = this.#clock.now()
    this.#needsResync = false
    const removals = this.#failedRemovals
    this.#failedRemovals = []
    const run = (async () => {
      const conns = this.#holder.liveConnections()
      const evicted = await this.#timed('resync', this.deps.registry.resync(lease, conns, this.deps.maxConnectionsPerUser))
      if (evicted.length > 0) void this.#holder.onEvicted(evicted)
      for (const r of removals) await this.#timed('remove', this.deps.registry.removeConnection(lease, r.userId, r.connId, r.cause))
      await this.#holder.afterResync?.()
      this.deps.log.info({ incId: lease.incId, connections: conns.length, ms: this.#clock.now() - started }, 'registry resynced')
    })()
    this.#resyncing = run.catch(() => undefined)
    try {
      await run
    } catch (err) {
      this.#needsResync = true
      this.#failedRemovals.push(...removals)
      throw err
    }
  }

  /** Records how long a registry call took, and whether it failed, in edge_registry_seconds. */
  #timed<T>(op: 'open' | 'renew' | 'add' | 'remove' | 'resync' | 'close', call: Promise<T>): Promise<T> {
    return timeCall(this.deps.metrics.registrySeconds.startTimer({ op }), call)
  }

  #schedule(ms: number): void {
    if (this.#stopped) return
    this.#timer = this.#clock.setTimeout(() => void this.#renew(), ms)
    this.#timer.unref()
  }

  #intervalMs(): number {
    return Math.max(50, Math.floor(this.deps.leaseTtlMs / 3))
  }

  #succeeded(): void {
    if (!this.#healthy) this.deps.log.info('registry reachable')
    this.#healthy = true
    this.#failures = 0
  }

  /**
   * Logs once per outage and returns the backoff before the next attempt: never longer than a
   * renewal interval (a renewal is one O(1) command, so retrying at its own pace costs Redis
   * nothing more), so an edge renews within one interval of Redis being reachable again.
   */
  #failed(err: unknown, msg: string): number {
    this.deps.metrics.registryErrors.inc()
    if (this.#healthy || this.#failures === 0) this.deps.log.warn({ err }, msg)
    this.#healthy = false
    this.#failures++
    return backoffDelayMs(this.#failures, { baseMs: RETRY_BASE_MS, capMs: Math.min(MAX_BACKOFF_MS, this.#intervalMs()) }, () => this.#clock.random())
  }
}

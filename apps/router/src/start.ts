import type { Logger } from 'pino'
import { Registry as PromRegistry } from 'prom-client'
import type { IdempotencyStore, Inbox, PresenceLog, RegistryJanitor, Revocations, RoomStore, RouterRegistry } from '@switchboard/registry'
import { startAdmin, type RunningAdmin } from './admin/start.js'
import { buildApp } from './app.js'
import type { Api } from './api.js'
import type { RouterConfig } from './config.js'
import { LinkEdgeClient } from './edge-link.js'
import { startPresenceDelivery } from './presence/start.js'
import { startReaper } from './reaper.js'

/** Where a router keeps its state: Redis in production (main.ts), memory in one process (apps/local). */
export interface RouterStores {
  /** Routing and presence reads, revocations, clean-up after dead edges, and the presence log's both sides. */
  registry: RouterRegistry & Revocations & RegistryJanitor & PresenceLog
  inbox: Inbox
  rooms: RoomStore
  idempotency: IdempotencyStore
}

export interface StartRouterDeps {
  config: RouterConfig
  stores: RouterStores
  log: Logger
  promRegistry?: PromRegistry
}

export interface RunningRouter {
  readonly port: number
  readonly api: Api
  /** The admin web when configured; the error when it could not listen (the router runs on without it). */
  readonly admin: RunningAdmin | Error | undefined
  /**
   * Stops in one order: the reaper; the presence worker releases its partitions (after its
   * attempts in flight) while the API drains, so other routers take them at once; the admin;
   * the API (requests in flight answered within `graceMs`); the edge links.
   */
  stop(graceMs?: number): Promise<void>
}

/**
 * An edge retries a failed renewal within min(5 s, a renewal interval) (its registration's
 * backoff cap), then renews a lease it kept: the reaper lets leases that lapsed in an outage
 * wait this much longer than a lease.
 */
const EDGE_MAX_BACKOFF_MS = 5_000

/** A router: its API on `config.port`, its link to every edge, its reaper, its presence delivery worker, and the admin web when configured. */
export async function startRouter({ config, stores, log, promRegistry = new PromRegistry() }: StartRouterDeps): Promise<RunningRouter> {
  const { registry } = stores
  const edges = new LinkEdgeClient({ internalToken: config.internalToken, timeoutMs: config.forwardTimeoutMs })
  const app = buildApp({
    config,
    registry,
    edges,
    log,
    promRegistry,
    inbox: stores.inbox,
    rooms: stores.rooms,
    idempotency: {
      store: stores.idempotency,
      retentionMs: config.idempotencyRetentionMs,
      // A router that dies mid-push leaves its key in flight this long: past any push's own bounds.
      pendingTtlMs: 2 * (config.forwardTimeoutMs + config.redisCommandTimeoutMs) + 5_000,
    },
  })
  const stopReaper = startReaper({
    registry,
    log,
    graceMs: config.reapGraceMs,
    settleMs: config.leaseTtlMs + EDGE_MAX_BACKOFF_MS,
    intervalMs: Math.min(1_000, Math.floor(config.leaseTtlMs / 3)),
  })
  const presence = startPresenceDelivery({ config, registry, log, promRegistry })
  const stopWorkers = () => {
    stopReaper()
    return presence.stop()
  }
  let port: number
  try {
    port = await app.listen(config.host, config.port)
  } catch (err) {
    await stopWorkers()
    await edges.close()
    throw err
  }
  log.info({ port }, 'router listening')
  const admin = config.admin
    ? await startAdmin({ admin: config.admin, leaseTtlMs: config.leaseTtlMs, registry, api: app.api, presence, promRegistry, log }).catch((err: unknown) =>
        err instanceof Error ? err : new Error(String(err)),
      )
    : undefined

  return {
    port,
    api: app.api,
    admin,
    async stop(graceMs = config.forwardTimeoutMs + config.redisCommandTimeoutMs + 1_000) {
      const workersStopped = stopWorkers()
      if (admin && !(admin instanceof Error)) await admin.close()
      await app.close(graceMs)
      await edges.close()
      await workersStopped
    },
  }
}

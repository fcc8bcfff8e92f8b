import { loadRouterConfig, type RouterConfig } from './config.js'

let config: RouterConfig
try {
  config = loadRouterConfig(process.env)
} catch (err) {
  process.stderr.write(`router: ${(err as Error).message}\n`)
  process.exit(1)
}
// The rest loads only once the configuration is valid, so a bad value stops the process at once.
const { default: pino } = await import('pino')
const { Registry: PromRegistry } = await import('prom-client')
const { RedisIdempotencyStore, RedisInbox, RedisRegistry, RedisRoomStore, createRedisClient } = await import('@switchboard/registry')
const { buildApp } = await import('./app.js')
const { LinkEdgeClient } = await import('./edge-link.js')
const { startReaper } = await import('./reaper.js')
const { startPresenceDelivery } = await import('./presence/start.js')
const log = pino({ level: config.logLevel, base: { service: 'router' }, redact: ['req.headers.authorization'] })
if (!config.redis) {
  log.fatal('a registry is required: set REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS (for a single-process Switchboard without Redis, run `npm start` with none of them)')
  process.exit(1)
}
const redis = createRedisClient(config.redis, { commandTimeoutMs: config.redisCommandTimeoutMs })
redis.on('error', (err) => log.debug({ err }, 'redis connection error')) // surfaced as 503s and by the reaper
const registry = new RedisRegistry(redis, {
  prefix: config.registryPrefix,
  liveRefreshMs: Math.min(1_000, Math.floor(config.leaseTtlMs / 4)),
  presence: config.presence,
})
const edges = new LinkEdgeClient({ internalToken: config.internalToken, timeoutMs: config.forwardTimeoutMs })
const promRegistry = new PromRegistry()
const idempotency = {
  store: new RedisIdempotencyStore(redis, { prefix: config.registryPrefix }),
  retentionMs: config.idempotencyRetentionMs,
  // A router that dies mid-push leaves its key in flight this long: past any push's own bounds.
  pendingTtlMs: 2 * (config.forwardTimeoutMs + config.redisCommandTimeoutMs) + 5_000,
}
const inbox = new RedisInbox(redis, config.inbox, { prefix: config.registryPrefix })
const rooms = new RedisRoomStore(redis, config.rooms, { prefix: config.registryPrefix })
const app = buildApp({ config, registry, edges, log, promRegistry, idempotency, inbox, rooms })
// An edge retries a failed renewal within min(5 s, a renewal interval) (its registration's backoff cap), then renews a lease it kept.
const EDGE_MAX_BACKOFF_MS = 5_000
const stopReaper = startReaper({ registry, log, graceMs: config.reapGraceMs, settleMs: config.leaseTtlMs + EDGE_MAX_BACKOFF_MS, intervalMs: Math.min(1_000, Math.floor(config.leaseTtlMs / 3)) })
const presence = startPresenceDelivery({ config, registry, log, promRegistry })

let port: number
try {
  port = await app.listen(config.host, config.port)
} catch (err) {
  log.fatal({ err }, `cannot listen on ${config.host}:${config.port}`)
  process.exit(1)
}
log.info({ port }, 'router listening')

// The admin web, on its own port, only when configured (ROUTER_ADMIN_PORT and ROUTER_ADMIN_PASSWORD).
let admin: { close(): Promise<void> } | undefined
if (config.admin) {
  const { startAdmin } = await import('./admin/start.js')
  admin = await startAdmin({ admin: config.admin, leaseTtlMs: config.leaseTtlMs, registry, api: app.api, presence, promRegistry, log }).catch((err: unknown) => {
    log.fatal({ err }, `cannot listen on ${config.admin!.host}:${config.admin!.port} (ROUTER_ADMIN_PORT)`)
    process.exit(1)
  })
}

process.once('SIGTERM', () => {
  stopReaper()
  // Releases this router's presence partitions (after its attempts in flight) while the API
  // drains, so the other routers take them at once rather than when its claim lapses.
  const presenceStopped = presence.stop()
  void admin?.close()
  // close() stops accepting and waits for the requests in flight on both ingresses.
  app
    .close(config.forwardTimeoutMs + config.redisCommandTimeoutMs + 1_000)
    .then(() => edges.close())
    .then(() => presenceStopped)
    .then(
      () => {
        redis.disconnect()
        process.exit(0)
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
})
process.once('SIGINT', () => process.kill(process.pid, 'SIGTERM'))

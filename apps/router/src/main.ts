import { configOrExit, exitOnSignal } from '@switchboard/config'
import { loadRouterConfig } from './config.js'

const config = configOrExit('router', () => loadRouterConfig(process.env))
// The rest loads only once the configuration is valid, so a bad value stops the process at once.
const { default: pino } = await import('pino')
const { Registry: PromRegistry } = await import('prom-client')
const { RedisGateway, RedisIdempotencyStore, RedisInbox, RedisRegistry, RedisRoomStore, createRedisClient } = await import('@switchboard/registry')
const { startRouter } = await import('./start.js')
const log = pino({ level: config.logLevel, base: { service: 'router' }, redact: ['req.headers.authorization'] })
if (!config.redis) {
  log.fatal('a registry is required: set REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS (for a single-process Switchboard without Redis, run `npm start` with none of them)')
  process.exit(1)
}
const redis = createRedisClient(config.redis, { commandTimeoutMs: config.redisCommandTimeoutMs })
redis.on('error', (err) => log.debug({ err }, 'redis connection error')) // surfaced as 503s and by the reaper
const gateway = new RedisGateway(redis, { prefix: config.registryPrefix })
const stores = {
  registry: new RedisRegistry(gateway, { liveRefreshMs: Math.min(1_000, Math.floor(config.leaseTtlMs / 4)), presence: config.presence }),
  inbox: new RedisInbox(gateway, config.inbox),
  rooms: new RedisRoomStore(gateway, config.rooms),
  idempotency: new RedisIdempotencyStore(gateway),
}

const router = await startRouter({ config, stores, log, promRegistry: new PromRegistry() }).catch((err: unknown) => {
  log.fatal({ err }, `cannot listen on ${config.host}:${config.port}`)
  process.exit(1)
})
if (router.admin instanceof Error) {
  log.fatal({ err: router.admin }, `cannot listen on ${config.admin!.host}:${config.admin!.port} (ROUTER_ADMIN_PORT)`)
  process.exit(1)
}

exitOnSignal(() => router.stop(), () => redis.disconnect(), log)

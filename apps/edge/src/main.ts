import { configOrExit, exitOnSignal } from '@switchboard/config'
import { loadEdgeConfig } from './config.js'

const config = configOrExit('edge', () => loadEdgeConfig(process.env))
// The rest loads only once the configuration is valid, so a bad value stops the process at once.
const { default: pino } = await import('pino')
const { Registry: PromRegistry } = await import('prom-client')
const { RedisGateway, RedisInbox, RedisRegistry, RedisRoomStore, createRedisClient, dropIfStalled } = await import('@switchboard/registry')
const { startEdge } = await import('./server.js')
const log = pino({ level: config.logLevel, base: { service: 'edge', nodeId: config.nodeId } })
if (!config.redis) {
  log.fatal('a registry is required: set REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS (for a single-process Switchboard without Redis, run `npm start` with none of them)')
  process.exit(1)
}
const redis = createRedisClient(config.redis, { commandTimeoutMs: config.redisCommandTimeoutMs })
redis.on('error', (err) => log.debug({ err }, 'redis connection error')) // outages are logged by the registration loop
const gateway = new RedisGateway(redis, { prefix: config.registryPrefix })
const edge = await startEdge({
  config,
  log,
  registry: new RedisRegistry(gateway, { presence: config.presence }),
  inbox: new RedisInbox(gateway, config.inbox),
  // Edges only read users' rooms and write their own index fields: the membership limits are the routers'.
  rooms: new RedisRoomStore(gateway, config.rooms),
  promRegistry: new PromRegistry(),
  // A connection cut by a partition stays "open" while TCP backs off its retransmissions: a fresh one is back within a renewal of the heal.
  onRegistryStalled: () => dropIfStalled(redis),
})

exitOnSignal(() => edge.drain(), () => redis.disconnect(), log)

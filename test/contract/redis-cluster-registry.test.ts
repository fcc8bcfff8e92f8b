// The registry contract on a real 3-master Redis Cluster started by the test: every script
// touches one hash slot, so the same code runs unchanged. Configured as REDIS_CLUSTER_NODES.
import t from 'tap'
import { Cluster } from 'ioredis'
import { RedisRegistry } from '@switchboard/registry'
import { loadConfig } from '@switchboard/config'
import { RouterEnv } from '@switchboard/router'
import { startRedisCluster, uniquePrefix } from '../helpers/redis.js'
import { redisClients, redisStores, storeContracts } from './store-contracts.js'

const redisCluster = await startRedisCluster(t, 3)
// The client is built from the same variable the services read.
const { redis: target } = loadConfig(RouterEnv, {
  REDIS_CLUSTER_NODES: redisCluster.nodes,
  SWITCHBOARD_INTERNAL_TOKEN: 'internal-token-0123456789',
  ROUTER_API_KEYS: 'api-key-0123456789abcdef',
})

const client = redisClients(target!)

t.test('REDIS_CLUSTER_NODES makes a Cluster client', async (t) => {
  t.same(target, { kind: 'cluster', nodes: redisCluster.ports.map((port) => ({ host: '127.0.0.1', port })), username: undefined, password: undefined })
  t.ok(client(t) instanceof Cluster)
})

storeContracts(t, redisStores(client))

t.test('users spread over every master, and a 10,000-user lookup spans them all', async (t) => {
  const c = client(t) as Cluster
  const prefix = uniquePrefix()
  const registry = new RedisRegistry(c, { prefix })
  const lease = await registry.openLease({ nodeId: 'big', url: 'http://big:8081', startedAt: Date.now() }, 60_000)
  const users = Array.from({ length: 10_000 }, (_, i) => `user-${i}`)
  await registry.addConnections(lease, users.map((userId, i) => ({ userId, connId: `c${i}`, since: i })))
  const found = await registry.locate([...users, 'nobody'])
  t.equal(found.size, 10_000)
  t.notOk(found.has('nobody'))
  t.same(found.get('user-7'), [{ connId: 'c7', since: 7, incId: lease.incId, nodeId: 'big', url: 'http://big:8081' }])
  const perMaster = await Promise.all(c.nodes('master').map(async (m) => (await m.keys(`${prefix}*`)).length))
  t.equal(perMaster.length, 3)
  t.ok(perMaster.every((n) => n > 0), `registry keys on every master: ${perMaster.join(', ')}`)
})

// Redis under Sentinel (REDIS_SENTINELS), and a failover that loses acknowledged registry
// writes: the replica is frozen while a user connects and another leaves, then the master is
// killed and Sentinel promotes the replica, which never saw either change. The lease
// survived, so only the new master's run_id tells the edge; it must re-register what it holds.
import t from 'tap'
import { Redis } from 'ioredis'
import { api, connectUser, eventually } from '../helpers/clients.js'
import { startEdge, startRouter, testSecrets } from '../helpers/processes.js'
import { startRedisSentinel, uniquePrefix } from '../helpers/redis.js'

const LEASE_TTL_MS = 1_500
const sentinel = await startRedisSentinel(t)
const viaSentinel = {
  redisUrl: '', // unset: Sentinel names the master
  prefix: uniquePrefix(),
  leaseTtlMs: LEASE_TTL_MS,
  env: { REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_NAME: sentinel.name },
}
const [router, edge] = await Promise.all([startRouter(t, viaSentinel), startEdge(t, viaSentinel)])
const { jwtSecret, apiKeys } = testSecrets()
const sb = api(router.url, apiKeys[0])
const online = async (userId: string) => (await sb.get(`/v1/presence/${userId}`)).body?.online as boolean | undefined

t.test('after a failover that lost writes, presence is exact again within a few renewals', async (t) => {
  const kept = await connectUser(t, edge.wsUrl, jwtSecret, 'fo-kept')
  const leaver = await connectUser(t, edge.wsUrl, jwtSecret, 'fo-leaver')
  await eventually(async () => (await online('fo-kept')) === true && (await online('fo-leaver')) === true)
  const master = new Redis({ port: sentinel.master.port, maxRetriesPerRequest: 0, retryStrategy: () => null })
  t.equal(await master.call('WAIT', '1', '5000'), 1, 'the replica has both entries')

  // From here the master acknowledges writes the replica never gets: the replica is frozen
  // and its link cut, so nothing more even reaches its socket buffer.
  sentinel.replica.kill('SIGSTOP')
  t.ok(Number(await master.call('CLIENT', 'KILL', 'TYPE', 'replica')) >= 1, 'replication link cut')
  master.disconnect()
  const late = await connectUser(t, edge.wsUrl, jwtSecret, 'fo-late')
  await leaver.client.close()
  await eventually(async () => (await online('fo-late')) === true && (await online('fo-leaver')) === false)
  sentinel.master.kill('SIGKILL')
  sentinel.replica.kill('SIGCONT')
  await eventually(async () => (await sentinel.masterPort()) === sentinel.replica.port, { timeoutMs: 30_000 })
  const promotedAt = Date.now()

  await eventually(async () => (await online('fo-late')) === true && (await online('fo-leaver')) === false && (await online('fo-kept')) === true, {
    timeoutMs: 4 * LEASE_TTL_MS + 5_000,
  })
  t.pass(`presence exact ${Date.now() - promotedAt} ms after the promotion`)
  t.ok(edge.logs().some((line) => line.includes('registry server changed')), 'the edge saw the new master')
  t.ok(kept.client.isClosed() === false && late.client.isClosed() === false, 'no socket was closed')

  const push = await sb.post('/v1/push', { to: ['fo-kept', 'fo-late', 'fo-leaver'], event: 'after', data: 1 })
  t.equal(push.status, 200)
  t.same([...push.body.delivered].sort(), ['fo-kept', 'fo-late'])
  t.same(push.body.offline, ['fo-leaver'])
  t.match(await kept.client.nextFrame(), { type: 'push', event: 'after' })
  t.match(await late.client.nextFrame(), { type: 'push', event: 'after' })
})

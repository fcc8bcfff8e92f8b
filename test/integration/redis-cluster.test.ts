// End to end on a real 3-master Redis Cluster (REDIS_CLUSTER_NODES): a router and two edges,
// real sockets, pushes, presence, nodes, and an edge SIGKILLed mid-run.
import t from 'tap'
import { api, connectUser, eventually } from '../helpers/clients.js'
import { startEdge, startRouter, testSecrets, type Edge } from '../helpers/processes.js'
import { startRedisCluster, uniquePrefix } from '../helpers/redis.js'

const LEASE_TTL_MS = 1_500
const redisCluster = await startRedisCluster(t, 3)
const prefix = uniquePrefix()
// No REDIS_URL: the cluster's nodes instead ('' is "unset" to the services).
const onCluster = { redisUrl: '', prefix, leaseTtlMs: LEASE_TTL_MS, env: { REDIS_CLUSTER_NODES: redisCluster.nodes } }
const [router, edge1, edge2] = await Promise.all([startRouter(t, onCluster), startEdge(t, onCluster), startEdge(t, onCluster)])
const { jwtSecret, apiKeys } = testSecrets()
const sb = api(router.url, apiKeys[0])

t.test('pushes reach users on either edge; presence and nodes are exact', async (t) => {
  const ann = await connectUser(t, edge1.wsUrl, jwtSecret, 'rc-ann')
  const ben = await connectUser(t, (edge2 as Edge).wsUrl, jwtSecret, 'rc-ben')
  const res = await sb.post('/v1/push', { to: ['rc-ann', 'rc-ben', 'rc-nobody'], event: 'hello', data: { n: 1 } })
  t.equal(res.status, 200)
  t.same([...res.body.delivered].sort(), ['rc-ann', 'rc-ben'])
  t.same(res.body.offline, ['rc-nobody'])
  t.match(await ann.client.nextFrame(), { type: 'push', event: 'hello', data: { n: 1 } })
  t.match(await ben.client.nextFrame(), { type: 'push', event: 'hello', data: { n: 1 } })

  const query = await sb.post('/v1/presence/query', { userIds: ['rc-ann', 'rc-ben', 'rc-nobody'] })
  t.equal(query.status, 200)
  t.same([...query.body.online].sort(), ['rc-ann', 'rc-ben'])
  const nodes = await sb.get('/v1/nodes')
  t.same((nodes.body.nodes as { nodeId: string }[]).map((n) => n.nodeId).sort(), [edge1.nodeId, edge2.nodeId].sort())
})

t.test('a SIGKILLed edge and its users are gone within the lease', async (t) => {
  const doomed = await startEdge(t, onCluster)
  await connectUser(t, doomed.wsUrl, jwtSecret, 'rc-doomed')
  await eventually(async () => (await sb.get('/v1/presence/rc-doomed')).body?.online === true, { timeoutMs: 2_000 })
  doomed.kill('SIGKILL')
  const killedAt = Date.now()
  await eventually(async () => (await sb.get('/v1/presence/rc-doomed')).body?.online === false, { timeoutMs: LEASE_TTL_MS * 2 + 2_000 })
  const push = await sb.post('/v1/push', { to: ['rc-doomed'], event: 'e', data: null })
  t.same(push.body.offline, ['rc-doomed'], `offline ${Date.now() - killedAt} ms after SIGKILL`)
  const nodes = await sb.get('/v1/nodes')
  t.notOk((nodes.body.nodes as { nodeId: string }[]).some((n) => n.nodeId === doomed.nodeId), 'left /v1/nodes')
})

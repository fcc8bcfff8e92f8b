// Process lifecycle guarantees: an edge killed with SIGKILL, a node restarted under the same
// id, an edge draining on SIGTERM (1001), a router's SIGTERM, and Redis restarting empty.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { api, connectClient, connectUser, eventually, mintToken } from '../helpers/clients.js'
import { startCluster, startRouter, testSecrets, type Edge } from '../helpers/processes.js'

const LEASE_TTL_MS = 1_500
// SPEC: gone "within LEASE_TTL_MS plus one renewal interval" (renewal every LEASE_TTL_MS/3).
const GONE_BOUND_MS = LEASE_TTL_MS + LEASE_TTL_MS / 3
// Polling every 50 ms plus an HTTP round trip on a loaded machine.
const POLL_SLACK_MS = 500
const cluster = await startCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS })
const [edge1, edge2] = cluster.edges as [Edge, Edge]
const { jwtSecret } = testSecrets()
const presence = (userId: string) => cluster.api.get(`/v1/presence/${encodeURIComponent(userId)}`)
const isOnline = (userId: string) => async () => (await presence(userId)).body?.online === true
const isOffline = (userId: string) => async () => (await presence(userId)).body?.online === false
/** A check for `eventually` that reports what the router answered. */
const allOnline = (userIds: string[]) => async () => {
  const res = await cluster.api.post('/v1/presence/query', { userIds })
  if (res.body?.online?.length !== userIds.length) throw new Error(`presence query answered ${res.status} ${res.text}`)
  return res
}
const nodeIds = async (): Promise<string[]> => {
  const res = await cluster.api.get('/v1/nodes')
  if (res.status !== 200) throw new Error(`GET /v1/nodes answered ${res.status}`)
  return (res.body.nodes as { nodeId: string }[]).map((n) => n.nodeId).sort()
}

t.test('an edge killed with SIGKILL is gone within the lease plus one renewal', async (t) => {
  const doomed = await cluster.addEdge(t)
  const { client } = await connectUser(t, doomed.wsUrl, jwtSecret, 'l-doomed')
  await eventually(isOnline('l-doomed'), { timeoutMs: 2_000 })
  await eventually(async () => (await nodeIds()).includes(doomed.nodeId), { timeoutMs: 2_000 })

  doomed.kill('SIGKILL')
  const killedAt = Date.now()
  t.equal(await doomed.exited, null, 'killed by the signal')
  await eventually(isOffline('l-doomed'), { timeoutMs: GONE_BOUND_MS + 2_000 })
  const offlineMs = Date.now() - killedAt
  t.ok(offlineMs <= GONE_BOUND_MS + POLL_SLACK_MS, `its user was offline after ${offlineMs} ms (bound ${GONE_BOUND_MS} ms)`)
  await eventually(async () => !(await nodeIds()).includes(doomed.nodeId), { timeoutMs: GONE_BOUND_MS + 2_000 })
  const goneMs = Date.now() - killedAt
  t.ok(goneMs <= GONE_BOUND_MS + POLL_SLACK_MS, `it left /v1/nodes after ${goneMs} ms (bound ${GONE_BOUND_MS} ms)`)

  const push = await cluster.api.post('/v1/push', { to: ['l-doomed'], event: 'e', data: 1 })
  t.equal(push.status, 200)
  t.same(push.body.offline, ['l-doomed'], 'no routing to a dead edge: offline, not failed')
  t.same(push.body.failed, [])
  t.equal((await client.closed).code, 1006, 'the client saw the connection drop')
})

t.test('a node restarted under the same id keeps only its new connections', async (t) => {
  const nodeId = `l-same-${randomBytes(3).toString('hex')}`
  const first = await cluster.addEdge(t, { nodeId })
  const oldU = await connectUser(t, first.wsUrl, jwtSecret, 'l-restart-u')
  await connectUser(t, first.wsUrl, jwtSecret, 'l-restart-v')
  await eventually(isOnline('l-restart-u'), { timeoutMs: 2_000 })
  await eventually(isOnline('l-restart-v'), { timeoutMs: 2_000 })

  first.kill('SIGKILL')
  await first.exited
  const killedAt = Date.now()
  // V was connected to the old incarnation only. Watched from the kill on, so the bound does
  // not include how long the replacement takes to start on a busy machine.
  const vOfflineAt = eventually(isOffline('l-restart-v'), { timeoutMs: GONE_BOUND_MS + 2_000 }).then(() => Date.now())
  const second = await cluster.addEdge(t, { nodeId })
  t.equal(second.nodeId, nodeId)
  const newU = await connectUser(t, second.wsUrl, jwtSecret, 'l-restart-u')
  t.not(newU.welcome.connId, oldU.welcome.connId, 'the new connection has a new id')

  const offlineMs = (await vOfflineAt) - killedAt
  t.ok(offlineMs <= GONE_BOUND_MS + 1_000 + POLL_SLACK_MS, `the old incarnation's users went offline ${offlineMs} ms after the kill`)
  const res = await eventually(async () => {
    const r = await presence('l-restart-u')
    const ids = (r.body?.connections ?? []).map((c: { connId: string }) => c.connId)
    return ids.length === 1 && ids[0] === newU.welcome.connId ? r : undefined
  }, { timeoutMs: GONE_BOUND_MS + 2_000 })
  t.match(res.body, { userId: 'l-restart-u', online: true, connections: [{ connId: newU.welcome.connId, nodeId }] })

  const push = await cluster.api.post('/v1/push', { to: ['l-restart-u', 'l-restart-v'], event: 'after.restart', data: 1 })
  t.same(push.body.delivered, ['l-restart-u'])
  t.same(push.body.offline, ['l-restart-v'])
  t.match(await newU.client.nextFrame(), { type: 'push', id: push.body.id, event: 'after.restart' })
})

t.test('a draining edge closes its sockets with 1001, refuses new ones, leaves the registry and exits 0', async (t) => {
  const DRAIN_MS = 1_000
  const draining = await cluster.addEdge(t, { env: { EDGE_DRAIN_MS: String(DRAIN_MS) } })
  const names = ['l-drain-1', 'l-drain-2', 'l-drain-3']
  const users = await Promise.all(names.map((u) => connectUser(t, draining.wsUrl, jwtSecret, u)))
  const bystander = await connectUser(t, edge1.wsUrl, jwtSecret, 'l-drain-bystander')
  await eventually(allOnline(names), { timeoutMs: 2_000 })

  const termAt = Date.now()
  draining.kill('SIGTERM')
  const first = await Promise.race(users.map((u) => u.client.closed))
  t.equal(first.code, 1001)
  await t.rejects(
    connectClient(draining.wsUrl, await mintToken(jwtSecret, 'l-drain-late')),
    'a draining edge accepts no new socket',
  )
  const closes = await Promise.all(users.map((u) => u.client.closed))
  t.same(closes.map((c) => c.code), [1001, 1001, 1001])
  const closedMs = Date.now() - termAt
  t.ok(closedMs <= DRAIN_MS + 1_500, `all sockets closed after ${closedMs} ms (drain window ${DRAIN_MS} ms)`)

  t.equal(await draining.exited, 0, 'exit code 0')
  t.ok(Date.now() - termAt <= DRAIN_MS + 5_000, 'exited soon after the drain window')
  // It removed itself before exiting: no need to wait for its lease to lapse.
  t.notOk((await nodeIds()).includes(draining.nodeId), 'no longer listed in /v1/nodes')
  const query = await cluster.api.post('/v1/presence/query', { userIds: names })
  t.same([...query.body.offline].sort(), names, 'its users are offline')
  t.same(await bystander.client.ping(), { type: 'pong' }, 'other edges keep their sockets')
})

t.test('a router exits 0 on SIGTERM', async (t) => {
  // Its defaults, named: a router's close waits for requests in flight at most forward + command timeout + 1 s.
  const [FORWARD_TIMEOUT_MS, REDIS_COMMAND_TIMEOUT_MS] = [2_000, 1_000]
  const DRAIN_BOUND_MS = FORWARD_TIMEOUT_MS + REDIS_COMMAND_TIMEOUT_MS + 1_000
  const env = { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS), REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS) }
  const spare = await startRouter(t, { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: LEASE_TTL_MS, env })
  t.equal((await api(spare.url).get('/healthz')).status, 200)
  const termAt = Date.now()
  spare.kill('SIGTERM')
  t.equal(await spare.exited, 0)
  t.ok(Date.now() - termAt < DRAIN_BOUND_MS + POLL_SLACK_MS, 'exited within its drain bound')
  t.equal((await api(cluster.router.url).get('/healthz')).status, 200, 'the other router is unaffected')
})

// Last: it restarts this file's Redis.
t.test('when Redis restarts empty, edges re-register live connections without dropping them', async (t) => {
  const a = await connectUser(t, edge1.wsUrl, jwtSecret, 'l-redis-a')
  const b = await connectUser(t, edge2.wsUrl, jwtSecret, 'l-redis-b')
  const names = ['l-redis-a', 'l-redis-b']
  await eventually(allOnline(names), { timeoutMs: 2_000 })

  await cluster.redis.stop()
  t.teardown(() => cluster.redis.start())
  // The edges notice (readyz) and still keep their sockets.
  for (const edge of [edge1, edge2]) {
    await eventually(async () => (await api(edge.internalUrl).get('/readyz')).status === 503, { timeoutMs: 5_000 })
  }
  t.pass('both edges report the registry unreachable')
  const down = await cluster.api.post('/v1/push', { to: names, event: 'while.down', data: 1 })
  t.equal(down.status, 503)
  t.equal(down.body?.error?.code, 'registry_unavailable')
  t.same(await a.client.ping(), { type: 'pong' }, 'socket on edge 1 stays open')
  t.same(await b.client.ping(), { type: 'pong' }, 'socket on edge 2 stays open')

  await cluster.redis.start()
  const restartedAt = Date.now()
  const back = await eventually(async () => {
    const r = await cluster.api.post('/v1/presence/query', { userIds: names })
    return r.body?.online?.length === 2 ? r : undefined
  }, { timeoutMs: 15_000 })
  const resyncMs = Date.now() - restartedAt
  // The next renewal attempt (the edge's backoff is capped at 5 s) finds the lease gone, rejoins and resyncs.
  const RENEWAL_BACKOFF_CAP_MS = 5_000
  t.ok(resyncMs <= RENEWAL_BACKOFF_CAP_MS + LEASE_TTL_MS, `re-registered ${resyncMs} ms after Redis came back empty`)
  t.same(back.body.offline, [])
  const one = await presence('l-redis-a')
  t.match(one.body.connections, [{ connId: a.welcome.connId, nodeId: edge1.nodeId }], 'the same connection, re-registered')
  t.equal(one.body.connections.length, 1)
  await eventually(async () => JSON.stringify(await nodeIds()) === JSON.stringify([edge1.nodeId, edge2.nodeId].sort()), { timeoutMs: 5_000 })
  t.pass('both edges are listed again')

  const push = await cluster.api.post('/v1/push', { to: names, event: 'after.restart', data: 2 })
  t.equal(push.status, 200)
  t.same([...push.body.delivered].sort(), names)
  t.match(await a.client.nextFrame(), { type: 'push', event: 'after.restart' })
  t.match(await b.client.nextFrame(), { type: 'push', event: 'after.restart' })
  t.equal(a.client.isClosed() || b.client.isClosed(), false, 'no socket was dropped')
})

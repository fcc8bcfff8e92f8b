// Per-user connection limit and single-session policy, enforced across edges: a new
// connection evicts the user's oldest (4502), or under EDGE_SESSION_POLICY=single replaces
// every other session of the user (4501); two sessions racing on two edges leave one.
import t from 'tap'
import { connectClient, connectUser, eventually, mintToken } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const { jwtSecret } = testSecrets()

t.test('beyond EDGE_MAX_CONNECTIONS_PER_USER the oldest connection, on any edge, closes with 4502', async (t) => {
  const cluster = await startCluster(t, { edges: 2, edgeEnv: { EDGE_MAX_CONNECTIONS_PER_USER: '2' } })
  const [a, b] = cluster.edges as [Edge, Edge]
  const first = await connectUser(t, a.wsUrl, jwtSecret, 'limited')
  const second = await connectUser(t, b.wsUrl, jwtSecret, 'limited')
  const third = await connectUser(t, a.wsUrl, jwtSecret, 'limited')
  t.equal((await first.client.closed).code, 4502, 'the oldest is evicted')
  const res = await cluster.api.get('/v1/presence/limited')
  t.same(res.body.connections.map((c: { connId: string }) => c.connId).sort(), [second.welcome.connId, third.welcome.connId].sort())
  t.equal(second.client.isClosed() || third.client.isClosed(), false, 'the two newest stay open')
})

t.test('single-session policy', async (t) => {
  const cluster = await startCluster(t, { edges: 2, edgeEnv: { EDGE_SESSION_POLICY: 'single' } })
  const [a, b] = cluster.edges as [Edge, Edge]

  t.test('a new session on another edge replaces the old one with 4501', async (t) => {
    const old = await connectUser(t, a.wsUrl, jwtSecret, 'solo')
    const fresh = await connectUser(t, b.wsUrl, jwtSecret, 'solo')
    t.equal((await old.client.closed).code, 4501)
    const res = await cluster.api.get('/v1/presence/solo')
    t.same(res.body.connections, [{ connId: fresh.welcome.connId, nodeId: b.nodeId, since: res.body.connections[0].since }])
    const push = await cluster.api.post('/v1/push', { to: ['solo'], event: 'only.newest', data: 1 })
    t.same(push.body.delivered, ['solo'])
    t.match(await fresh.client.nextFrame(), { type: 'push', event: 'only.newest' })
  })

  t.test('two sessions racing on two edges end with exactly one survivor', async (t) => {
    const users = Array.from({ length: 10 }, (_, i) => `racer-${i}`)
    for (const userId of users) {
      const token = await mintToken(jwtSecret, userId)
      const [x, y] = await Promise.all([connectClient(a.wsUrl, token, { t }), connectClient(b.wsUrl, token, { t })])
      // Exactly one closes with 4501; the other stays and is the one the registry knows.
      const loser = await Promise.race([x.closed.then(() => x), y.closed.then(() => y)])
      const winner = loser === x ? y : x
      t.equal((await loser.closed).code, 4501, `${userId}: the loser was replaced`)
      const welcome = await winner.nextFrame()
      t.equal(welcome.type, 'welcome')
      const res = await eventually(async () => {
        const r = await cluster.api.get(`/v1/presence/${userId}`)
        return r.body.connections.length === 1 ? r : undefined
      })
      t.equal(res.body.connections[0].connId, welcome.connId, `${userId}: presence shows the survivor`)
      t.equal(winner.isClosed(), false, `${userId}: the survivor stays open`)
    }
  })
})

t.test('single session: an edge stalled past its lease (revived, not reaped) closes its stale session when it returns, never the newer one', async (t) => {
  const LEASE_TTL_MS = 1_000
  // No reaping: the stalled edge's lease lapses and revives at its next renewal, entries included.
  const cluster = await startCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS, edgeEnv: { EDGE_SESSION_POLICY: 'single' }, routerEnv: { REGISTRY_REAP_GRACE_MS: '600000' } })
  const [a, b] = cluster.edges as [Edge, Edge]
  const stale = await connectUser(t, a.wsUrl, jwtSecret, 'stalled-solo')
  a.kill('SIGSTOP')
  t.teardown(() => a.kill('SIGCONT'))
  await eventually(async () => (await cluster.api.get('/v1/presence/stalled-solo')).body.online === false, { timeoutMs: 3 * LEASE_TTL_MS })
  const fresh = await connectUser(t, b.wsUrl, jwtSecret, 'stalled-solo') // evicts a's lapsed entry; a cannot be told
  a.kill('SIGCONT')
  // a's first renewal after the stall comes more than two intervals late: it resyncs, and the registry keeps the session that connected last.
  t.equal((await stale.client.closed).code, 4501, 'the stale session is closed when its edge returns')
  const res = await cluster.api.get('/v1/presence/stalled-solo')
  t.same(res.body.connections.map((c: { connId: string }) => c.connId), [fresh.welcome.connId], 'the newer session is the one left')
  t.equal(fresh.client.isClosed(), false)
})

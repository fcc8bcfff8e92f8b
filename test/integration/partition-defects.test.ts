// Two defects issue 20 found with an edge partitioned from Redis, proven here in network
// namespaces (test/helpers/netns.ts) and being fixed on main separately. Each subtest states
// the behaviour the issue requires, so it fails until the fix lands:
// - after the heal, the edge's resync must not count as a newer session (single-session
//   policy): the session that connected last wins, the stale one is closed with 4501;
// - kept pushes sent during the cut must reach the SDK connected to that edge, once and in
//   order, after the heal, without a further kept push to expose the gap.
import t from 'tap'
import WebSocket from 'ws'
import { Switchboard, type WebSocketFactory } from '@switchboard/client'
import { connectUser, eventually, mintToken } from '../helpers/clients.js'
import { netnsSkip } from '../helpers/netns.js'
import { startNetCluster, untilReaperArmed } from '../helpers/netns-cluster.js'
import { testSecrets } from '../helpers/processes.js'
import { LEASE_TTL_MS, MARGIN_MS, REDIS_COMMAND_TIMEOUT_MS, RENEWAL_MS, online } from '../helpers/partitions.js'

const skip = netnsSkip()
const { jwtSecret } = testSecrets()
const CUT_MS = 2 * LEASE_TTL_MS
// Back after the heal, with room: the cut's length + a renewal + a command timeout, looser than
// the reconnect bound (BACK_BOUND_MS) because these checks wait for the resync and a resume too.
const RESYNC_BOUND_MS = CUT_MS + RENEWAL_MS + REDIS_COMMAND_TIMEOUT_MS + MARGIN_MS
const env = { PRESENCE_OFFLINE_GRACE_MS: '0', REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS) }

t.test('single session: a user who signed in on another edge during the cut keeps the newer session after the heal', { skip }, async (t) => {
  const c = await startNetCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS, edgeEnv: { ...env, EDGE_SESSION_POLICY: 'single' }, routerEnv: env })
  const [{ api }] = c.routers as [(typeof c.routers)[0]]
  const [cutEdge, otherEdge] = c.edges as [(typeof c.edges)[0], (typeof c.edges)[0]]
  const stale = await connectUser(t, cutEdge.edge.wsUrl, jwtSecret, 'px-single')
  await eventually(async () => (await online(api, ['px-single'])).length === 1, { timeoutMs: LEASE_TTL_MS * 2 })
  // As in the issue: the lapsed lease is reaped during the cut, so the heal brings a resync.
  await untilReaperArmed(c)

  await c.net.cut(cutEdge.host, c.redisHost)
  const cutAt = Date.now()
  await eventually(async () => (await online(api, ['px-single'])).length === 0, { timeoutMs: LEASE_TTL_MS + RENEWAL_MS + MARGIN_MS })
  const fresh = await connectUser(t, otherEdge.edge.wsUrl, jwtSecret, 'px-single')
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, cutAt + CUT_MS - Date.now()))) // the fault's length
  await c.net.heal()
  const healedAt = Date.now()

  // The edge rejoins (its lease was lost) and re-writes its connections: 'registry resynced'.
  // Not the bound under test here: twice it, so a loaded host fails on the defect, not on this wait.
  const isResynced = () => cutEdge.edge.logRecords().some((r) => r.msg === 'registry resynced' && Number(r.time) >= healedAt)
  await eventually(isResynced, { timeoutMs: 2 * RESYNC_BOUND_MS }).catch(() => undefined)
  const since = cutEdge.edge.logRecords().filter((r) => Number(r.time) >= cutAt).map((r) => `${Number(r.time) - healedAt} ms: ${String(r.msg)}${r.err ? ` (${(r.err as { message?: string }).message})` : ''}`)
  if (!t.ok(isResynced(), 'the cut edge resynced after the heal')) t.comment(`the cut edge's log since the cut (ms from the heal):\n${since.join('\n')}`)
  t.comment(`single session: the cut edge resynced ${Date.now() - healedAt} ms after the heal`)
  // The single-session rule acts within the resync's own write; the closes follow at once.
  const closed = await Promise.race([stale.client.closed, fresh.client.closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), RENEWAL_MS + MARGIN_MS))])
  t.comment(`single session after the heal: stale socket ${stale.client.isClosed() ? `closed ${JSON.stringify(closed)}` : 'open'}, newer socket ${fresh.client.isClosed() ? `closed ${JSON.stringify(await fresh.client.closed)}` : 'open'}`)
  t.notOk(fresh.client.isClosed(), 'the newer session (connected during the cut) is still open')
  t.equal(stale.client.isClosed() ? (await stale.client.closed).code : undefined, 4501, 'the stale session is closed with 4501 replaced')
  const presence = (await api.get('/v1/presence/px-single')).body
  t.same(presence.connections?.map((cn: { connId: string }) => cn.connId), [fresh.welcome.connId], 'one session left: the newer one')
})

t.test('kept pushes sent during the cut reach the SDK on the cut edge once, in order, after the heal', { skip }, async (t) => {
  const c = await startNetCluster(t, { edges: 1, leaseTtlMs: LEASE_TTL_MS, edgeEnv: env, routerEnv: env })
  const [{ api }] = c.routers as [(typeof c.routers)[0]]
  const [cutEdge] = c.edges as [(typeof c.edges)[0]]
  const token = await mintToken(jwtSecret, 'px-kept')
  const sb = new Switchboard({ url: cutEdge.edge.wsUrl, getToken: () => token, WebSocket: WebSocket as unknown as WebSocketFactory, storage: null })
  t.teardown(() => sb.close())
  const received: string[] = []
  const states: string[] = []
  sb.on('push', (p) => received.push(p.id))
  sb.on('state', (s) => states.push(s.state))
  sb.connect()
  await eventually(() => sb.state === 'connected', { timeoutMs: 5_000 })
  const first = await api.post('/v1/push', { to: ['px-kept'], event: 'e', id: 'k0', keep: true })
  t.same(first.body.delivered, ['px-kept'])
  await eventually(() => received.includes('k0'))
  await untilReaperArmed(c)

  await c.net.cut(cutEdge.host, c.redisHost)
  const cutAt = Date.now()
  await eventually(async () => (await online(api, ['px-kept'])).length === 0, { timeoutMs: LEASE_TTL_MS + RENEWAL_MS + MARGIN_MS })
  for (const id of ['k1', 'k2', 'k3']) {
    const res = await api.post('/v1/push', { to: ['px-kept'], event: 'e', id, keep: true })
    t.same([res.body.offline, res.body.kept], [['px-kept'], ['px-kept']], `${id}: offline and kept`)
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, cutAt + CUT_MS - Date.now()))) // the fault's length
  await c.net.heal()
  const healedAt = Date.now()

  // The issue leaves the bound to the fix; the edge's return plus the SDK's gap hold (5 s) is generous.
  const GAP_HOLD_MS = 5_000
  const bound = Math.round(RESYNC_BOUND_MS + GAP_HOLD_MS)
  const arrived = await eventually(() => ['k1', 'k2', 'k3'].every((id) => received.includes(id)), { timeoutMs: bound }).then(() => true, () => false)
  t.comment(`kept pushes during the cut: ${arrived ? `all arrived ${Date.now() - healedAt} ms after the heal` : `not arrived ${bound} ms after the heal`}; received ${JSON.stringify(received)}; states ${states.join(' ')}`)
  t.ok(arrived, `k1-k3 arrived within ${bound} ms of the heal, with no further kept push`)
  t.same(received, ['k0', 'k1', 'k2', 'k3'], 'each once, in order')
})

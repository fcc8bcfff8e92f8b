// Network partitions, made for real: Redis, routers and edges each in a Linux network
// namespace of their own (test/helpers/netns.ts), links cut with iptables DROP rules (TCP
// retransmits what was dropped once healed, as across a real partition), a client's link
// pulled without a FIN. Every bound is derived from the configured values.
import t from 'tap'
import { SwitchboardBackend, type SwitchboardApiError } from '@switchboard/backend'
import { EDGE_CIRCUIT } from '@switchboard/router'
import { connectUser, eventually, mintToken } from '../helpers/clients.js'
import { netnsSkip } from '../helpers/netns.js'
import { startNetCluster, startSdkClient } from '../helpers/netns-cluster.js'
import { testSecrets } from '../helpers/processes.js'
import { sdkClient } from '../helpers/sdk.js'
import { LINK_IDLE_TIMEOUT_S } from '@switchboard/protocol'
import { FORWARD_TIMEOUT_MS, LEASE_TTL_MS, MARGIN_MS, REDIS_COMMAND_TIMEOUT_MS, pushIds } from '../helpers/partitions.js'

const skip = netnsSkip()
const { jwtSecret, apiKeys } = testSecrets()


async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now()
  const value = await fn()
  return { value, ms: Date.now() - started }
}

/** How often a router pings its edge links (apps/router/src/edge-link.ts's default). */
const ROUTER_LINK_PING_MS = 5_000

const countOf = (ids: readonly string[]) => ids.reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>())

t.test('a kept push answered failed across a router <-> edge cut reaches the SDK on that edge after the heal, once, in order', { skip }, async (t) => {
  const c = await startNetCluster(t, { edges: 1, leaseTtlMs: LEASE_TTL_MS, routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) } })
  const [{ host: routerHost, api }] = c.routers as [(typeof c.routers)[0]]
  const [edge] = c.edges as [(typeof c.edges)[0]]
  const client = sdkClient(t, { url: edge.edge.wsUrl, getToken: () => mintToken(jwtSecret, 'pk-a') })
  await eventually(() => client.welcomes().length === 1)
  const kept = (data: number) => api.post('/v1/push', { to: ['pk-a'], event: 'kept', data, keep: true })
  t.same((await kept(0)).body.delivered, ['pk-a'])
  await c.net.cut(routerHost, edge.host)
  const cutAt = Date.now()
  const during = await kept(1)
  t.same([during.body.failed, during.body.kept], [['pk-a'], ['pk-a']], 'failed, and kept')
  // Held until the router drops the link (a missed pong: two of its 5 s pings), discarding the
  // delivery it held; a shorter cut lets TCP retransmit it after the heal, delivered late.
  await eventually(() => c.routers[0]!.router.logs().some((l) => l.includes('missed a pong')) || undefined, { timeoutMs: 2 * ROUTER_LINK_PING_MS + MARGIN_MS }).catch(() => undefined)
  await c.net.heal()
  // Bound: the router's reset was lost in the cut, so the edge sees the link lost once it has been
  // silent past its idle timeout (uWS checks every 4 s), then tells the client its inbox head and
  // the client resumes. (Seen so far: the router's link delivered the held push on its own after
  // the heal, sooner, with no resume; either way it arrives once, in order.)
  const boundMs = (LINK_IDLE_TIMEOUT_S + 4) * 1_000 + MARGIN_MS
  await eventually(() => client.pushes.length === 2, { timeoutMs: boundMs })
  t.comment(`the kept push answered failed arrived ${Date.now() - cutAt} ms after the cut began`)
  t.same(client.pushes.map((p) => p.data), [0, 1], 'once, in order')
  t.ok(client.welcomes().length <= 2, `at most one resume (${client.welcomes().length - 1})`)
})

t.test('router <-> one edge cut: its users failed within the forward timeout, the circuit opens, the others unaffected; healed without a restart', { skip }, async (t) => {
  const c = await startNetCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS, routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) } })
  const [{ host: routerHost, api }] = c.routers as [(typeof c.routers)[0]]
  const [cutEdge, otherEdge] = c.edges as [(typeof c.edges)[0], (typeof c.edges)[0]]
  const a = await connectUser(t, cutEdge.edge.wsUrl, jwtSecret, 'pa-a')
  const b = await connectUser(t, otherEdge.edge.wsUrl, jwtSecret, 'pa-b')
  const push = (id: string) => timed(() => api.post('/v1/push', { to: ['pa-a', 'pa-b'], event: 'e', id }))
  await eventually(async () => (await push('warm')).value.body.delivered?.length === 2, { timeoutMs: LEASE_TTL_MS * 2 })

  await c.net.cut(routerHost, cutEdge.host)
  const first = await push('during-1')
  t.same([first.value.body.failed, first.value.body.delivered], [['pa-a'], ['pa-b']], 'the cut edge\'s user failed, the other delivered')
  t.ok(first.ms <= FORWARD_TIMEOUT_MS + MARGIN_MS, `answered in ${first.ms} ms (bound: forward timeout ${FORWARD_TIMEOUT_MS} + ${MARGIN_MS} ms)`)
  t.ok(first.ms >= FORWARD_TIMEOUT_MS - 50, `the link was held open until the timeout (${first.ms} ms), not refused`)
  // The timed-out link trips the circuit: the next pushes skip that edge at once.
  const skipped = await push('during-2')
  t.same([skipped.value.body.failed, skipped.value.body.delivered], [['pa-a'], ['pa-b']])
  t.ok(skipped.ms < FORWARD_TIMEOUT_MS / 4, `circuit open: answered in ${skipped.ms} ms (bound ${FORWARD_TIMEOUT_MS / 4} ms)`)
  t.comment(`router <-> edge cut: first push ${first.ms} ms, next (circuit open) ${skipped.ms} ms`)

  await c.net.heal()
  const healedAt = Date.now()
  // The circuit's cooldown is at most EDGE_CIRCUIT.maxCooldownMs; then a probe reconnects.
  const CIRCUIT_MAX_COOLDOWN_MS = EDGE_CIRCUIT.maxCooldownMs
  const back = await eventually(async () => {
    const res = await push(`after-${Date.now()}`)
    return res.value.body.delivered?.length === 2 && res.value.body
  }, { timeoutMs: CIRCUIT_MAX_COOLDOWN_MS + FORWARD_TIMEOUT_MS + MARGIN_MS, intervalMs: 100 })
  const healMs = Date.now() - healedAt
  t.comment(`pushes to the cut edge delivered again ${healMs} ms after the heal`)
  t.ok(cutEdge.edge.isRunning() && otherEdge.edge.isRunning() && c.routers[0]!.router.isRunning(), 'no restart, no crash')

  // Quiescence: b got every push once; a got the push after the heal once, and no push twice
  // (one reported failed may still arrive late: its bytes were retransmitted after the heal).
  const aIds = countOf(await pushIds(a.client))
  const bIds = countOf(await pushIds(b.client))
  t.equal(aIds.get(back.id), 1, 'the cut edge\'s user got the push after the heal')
  t.ok([...aIds.values(), ...bIds.values()].every((n) => n === 1), 'no push received twice')
  for (const id of ['warm', 'during-1', 'during-2', back.id]) t.equal(bIds.get(id), 1, `the other edge's user got ${id}`)
})

t.test('a client vanishes without a FIN: the edge closes it within the idle timeout, presence goes offline; the SDK comes back after the heal', { skip }, async (t) => {
  const IDLE_TIMEOUT_S = 8 // the least EDGE_IDLE_TIMEOUT_S allows
  // uWS checks timeouts on a 4 s tick: a socket is closed up to one tick after its idle timeout.
  const UWS_TIMER_TICK_MS = 4_000
  const presenceEnv = { PRESENCE_OFFLINE_GRACE_MS: '0' }
  const c = await startNetCluster(t, { edges: 1, leaseTtlMs: LEASE_TTL_MS, edgeEnv: { ...presenceEnv, EDGE_IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S) }, routerEnv: presenceEnv })
  const [{ api }] = c.routers as [(typeof c.routers)[0]]
  const [{ edge }] = c.edges as [(typeof c.edges)[0]]
  const phone = await c.net.addHost('phone')
  // The SDK notices a dead link itself within ping + pong (2 s) and keeps retrying with backoff.
  const sdk = await startSdkClient(t, phone, edge.wsUrl, 'pb-phone', { pingMs: 1_000, pongMs: 1_000 })
  await sdk.waitFor((l) => l.state === 'connected', 5_000)
  t.same((await api.post('/v1/push', { to: ['pb-phone'], event: 'e', id: 'before' })).body.delivered, ['pb-phone'])
  await sdk.waitFor((l) => l.kind === 'push' && l.id === 'before', 3_000)

  await c.net.dropLink(phone)
  const droppedAt = Date.now()
  const isOnline = async () => (await api.get('/v1/presence/pb-phone')).body.online as boolean
  const closeBoundMs = IDLE_TIMEOUT_S * 1_000 + UWS_TIMER_TICK_MS + MARGIN_MS
  await eventually(async () => !(await isOnline()), { timeoutMs: closeBoundMs, intervalMs: 100 })
  const offlineMs = Date.now() - droppedAt
  t.ok(offlineMs <= closeBoundMs, `offline ${offlineMs} ms after the link dropped (bound: idle ${IDLE_TIMEOUT_S} s + a ${UWS_TIMER_TICK_MS} ms tick + ${MARGIN_MS} ms)`)
  t.ok(offlineMs >= IDLE_TIMEOUT_S * 1_000 / 2, `not before the edge's ping went unanswered (${offlineMs} ms)`)
  t.same((await api.post('/v1/push', { to: ['pb-phone'], event: 'e', id: 'while-gone' })).body.offline, ['pb-phone'], 'a push to the vanished client answers offline')

  await c.net.heal()
  const healedAt = Date.now()
  const retries = sdk.lines().filter((l) => l.state === 'disconnected' && l.at <= healedAt)
  t.ok(retries.length >= 1, `the SDK saw its socket die and retried (${retries.length} times)`)
  // The next attempt is due at the last backoff's end; it then connects within the margin.
  const last = retries.at(-1)!
  const dueMs = Math.max(0, last.at + Number(last.delayMs) - healedAt)
  const back = await sdk.waitFor((l) => l.state === 'connected' && l.at > healedAt, dueMs + 30_000)
  const backMs = back.at - healedAt
  t.ok(backMs <= dueMs + MARGIN_MS * 2, `reconnected ${backMs} ms after the heal (its backoff was due in ${dueMs} ms)`)
  t.comment(`vanished client: offline ${offlineMs} ms after the link dropped (idle timeout ${IDLE_TIMEOUT_S} s); SDK back ${backMs} ms after the heal`)
  const res = await api.post('/v1/push', { to: ['pb-phone'], event: 'e', id: 'after' })
  t.same(res.body.delivered, ['pb-phone'], 'pushes reach it again')
  await sdk.waitFor((l) => l.kind === 'push' && l.id === 'after', 3_000)
  t.notOk(sdk.lines().some((l) => l.id === 'while-gone'), 'the push answered offline never arrived')
  t.ok(await isOnline(), 'online again')
})

t.test('router <-> Redis cut on one of two routers: it answers 503 within the command timeout, the other serves; nothing delivered twice', { skip }, async (t) => {
  const redisEnv = { REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS), PRESENCE_OFFLINE_GRACE_MS: '0' }
  const c = await startNetCluster(t, { edges: 1, routers: 2, leaseTtlMs: LEASE_TTL_MS, edgeEnv: redisEnv, routerEnv: { ...redisEnv, PRESENCE_POLL_MS: '50' } })
  const [cutRouter, otherRouter] = c.routers as [(typeof c.routers)[0], (typeof c.routers)[0]]
  const [{ edge }] = c.edges as [(typeof c.edges)[0]]
  const user = await connectUser(t, edge.wsUrl, jwtSecret, 'pd-user')
  const body = (id: string) => ({ to: ['pd-user'], event: 'e', id })
  const keyed = (key: string) => ({ headers: { 'idempotency-key': key } })
  await eventually(async () => (await cutRouter.api.post('/v1/push', body('warm'))).body.delivered?.length === 1, { timeoutMs: LEASE_TTL_MS * 2 })
  // Both routers deliver a share of the 256 presence partitions before the cut.
  const owned = async (r: (typeof c.routers)[0]) => Number(/^presence_partitions_owned (\d+)/m.exec((await r.api.get('/metrics')).text)?.[1] ?? 0)
  await eventually(async () => (await owned(cutRouter)) > 0 && (await owned(otherRouter)) > 0, { timeoutMs: 20_000, intervalMs: 200 })

  await c.net.cut(cutRouter.host, c.redisHost)
  const cutAt = Date.now()
  // README: "503 within REDIS_COMMAND_TIMEOUT_MS" (each store call is bounded from its start,
  // not from when ioredis writes it behind the auto-pipeline ahead of it: that took 2x).
  const bound = REDIS_COMMAND_TIMEOUT_MS + MARGIN_MS
  for (const [what, call] of [
    ['push', () => cutRouter.api.post('/v1/push', body('cut-plain'))],
    ['idempotent push', () => cutRouter.api.post('/v1/push', body('cut-keyed'), keyed('pd-key'))],
    ['presence', () => cutRouter.api.get('/v1/presence/pd-user')],
  ] as const) {
    const { value: res, ms } = await timed(call)
    t.same([res.status, res.body.error?.code], [503, 'registry_unavailable'], `${what}: 503 registry_unavailable`)
    t.ok(ms <= bound, `${what} answered in ${ms} ms (bound: REDIS_COMMAND_TIMEOUT_MS ${REDIS_COMMAND_TIMEOUT_MS} + ${MARGIN_MS} ms)`)
    t.comment(`router <-> Redis cut: ${what} answered 503 in ${ms} ms`)
  }
  // The other router serves everything meanwhile, the same idempotent push included.
  const served = await otherRouter.api.post('/v1/push', body('cut-keyed'), keyed('pd-key'))
  t.same(served.body.delivered, ['pd-user'], 'the other router delivers')
  t.equal((await otherRouter.api.get('/v1/presence/pd-user')).body.online, true, 'the other router answers presence')
  // Presence events of the cut router's partitions: the other takes them over once its claims
  // lapse (CLAIM_TTL_MS, 5 s in apps/router/src/presence/relay.ts; claims renewed every second).
  const CLAIM_TTL_MS = 5_000
  const arrivals = Array.from({ length: 16 }, (_, i) => `pd-arrival-${i}`)
  await Promise.all(arrivals.map((u) => connectUser(t, edge.wsUrl, jwtSecret, u)))
  const handOverBoundMs = CLAIM_TTL_MS + 1_000 + MARGIN_MS
  await eventually(async () => {
    const events = (await otherRouter.api.get('/v1/presence/events?limit=1000')).body.events as { userId: string; type: string }[]
    return arrivals.every((u) => events.some((e) => e.userId === u && e.type === 'user.online'))
  }, { timeoutMs: handOverBoundMs, intervalMs: 100 })
  const handOverMs = Date.now() - cutAt
  t.ok(handOverMs <= handOverBoundMs, `every arrival's online event in the feed ${handOverMs} ms into the cut (bound: claim TTL ${CLAIM_TTL_MS} + 1 s + ${MARGIN_MS} ms)`)
  t.comment(`router <-> Redis cut: the other router delivered the cut router's presence partitions ${handOverMs} ms into the cut`)

  await c.net.heal()
  const healedAt = Date.now()
  // ioredis keeps its connection; the dropped bytes go again on TCP's retransmission backoff.
  const back = await eventually(async () => {
    const res = await cutRouter.api.post('/v1/push', body(`after-${Date.now()}`))
    return res.status === 200 && res.body
  }, { timeoutMs: 10_000, intervalMs: 100 })
  t.comment(`router <-> Redis cut: the cut router serves again ${Date.now() - healedAt} ms after the heal`)
  const replay = await cutRouter.api.post('/v1/push', body('cut-keyed'), keyed('pd-key'))
  t.equal(replay.status, 200)
  t.equal(replay.headers.get('idempotent-replayed'), 'true', 'the idempotent retry on the healed router is replayed, not sent again')
  const ids = countOf(await pushIds(user.client))
  t.equal(ids.get('cut-keyed'), 1, 'the idempotent push was delivered once')
  t.notOk(ids.has('cut-plain'), 'the push answered 503 was sent nowhere')
  t.equal(ids.get(back.id), 1)
  t.ok([...ids.values()].every((n) => n === 1), 'nothing delivered twice')
})

t.test('backend <-> router cut with pipelined requests in flight: unknown outcome within the timeout, reconnect after the heal, an idempotent retry delivers once', { skip }, async (t) => {
  const c = await startNetCluster(t, { edges: 1, leaseTtlMs: LEASE_TTL_MS })
  const [{ host: routerHost, router }] = c.routers as [(typeof c.routers)[0]]
  const [{ edge }] = c.edges as [(typeof c.edges)[0]]
  const user = await connectUser(t, edge.wsUrl, jwtSecret, 'pe-user')
  const TIMEOUT_MS = 2_000
  const PING_MS = 250 // a pipeline that heard nothing for two pings is dropped
  const backend = new SwitchboardBackend({ url: router.url, apiKey: apiKeys[0], timeoutMs: TIMEOUT_MS, pingIntervalMs: PING_MS, reconnectBaseDelayMs: 100, reconnectMaxDelayMs: 1_000 })
  t.teardown(() => backend.close())
  await backend.connect()
  await eventually(async () => (await backend.push({ to: ['pe-user'], event: 'e', id: 'warm' })).delivered.length === 1, { timeoutMs: LEASE_TTL_MS * 2 })
  t.equal(backend.state, 'connected')

  // The requests reach the router and are carried out; only the answers are lost.
  await c.net.cutOneWay(routerHost, c.net.root)
  const sentAt = Date.now()
  const requests = Array.from({ length: 10 }, (_, i) => ({ id: `pe-${i}`, key: i % 2 === 0 ? `pe-key-${i}` : undefined }))
  const outcomes = await Promise.all(
    requests.map((r) =>
      backend.push({ to: ['pe-user'], event: 'e', id: r.id }, r.key ? { idempotencyKey: r.key } : {}).then(
        () => ({ code: 'answered', ms: Date.now() - sentAt }),
        (err: SwitchboardApiError) => ({ code: String(err.code), ms: Date.now() - sentAt }),
      ),
    ),
  )
  t.ok(outcomes.every((o) => o.code === 'timeout' || o.code === 'connection_lost'), `every call failed with an unknown outcome: ${[...new Set(outcomes.map((o) => o.code))].join(', ')}`)
  const slowest = Math.max(...outcomes.map((o) => o.ms))
  t.ok(slowest <= TIMEOUT_MS + MARGIN_MS, `all failed within ${slowest} ms (bound: timeoutMs ${TIMEOUT_MS} + ${MARGIN_MS} ms)`)

  await c.net.heal()
  const healedAt = Date.now()
  await eventually(() => backend.state === 'connected', { timeoutMs: 1_000 + TIMEOUT_MS + MARGIN_MS, intervalMs: 20 })
  t.comment(`backend <-> router cut: calls failed within ${slowest} ms; pipeline back ${Date.now() - healedAt} ms after the heal`)
  // The keyed ones are retried with their keys: replayed, not sent again.
  for (const r of requests.filter((r) => r.key)) {
    const res = await backend.push({ to: ['pe-user'], event: 'e', id: r.id }, { idempotencyKey: r.key })
    t.same(res.delivered, ['pe-user'], `retry of ${r.id}: the first answer`)
  }
  const ids = countOf(await pushIds(user.client))
  for (const r of requests) t.equal(ids.get(r.id), 1, `${r.id} (${r.key ? 'idempotent, retried' : 'not retried'}) reached the user exactly once`)
})

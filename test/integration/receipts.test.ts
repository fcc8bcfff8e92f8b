// Push receipts end to end: real router, real edges, real Redis, the SDK (Node, the ws library)
// and raw websocket clients, over both ingresses. A push with `ack` is answered with `acked`
// (an app acknowledged it), `unacked` (written, not acknowledged in time), `offline` and `failed`.
import t, { type Test } from 'tap'
import { backendClient } from '../helpers/backend.js'
import { ackFrame } from '@switchboard/wire'
import { api, connectUser, eventually, mintToken } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'
import { sdkClient } from '../helpers/sdk.js'

const FORWARD_TIMEOUT_MS = 1_000
/** Long enough that an answer well before it was not the timeout's; short enough to wait out once per test. */
const ACK_TIMEOUT_MS = 1_500
/** Rooms above this many members get counts, not lists, in a push's answer. */
const LIST_MAX = 3
const cluster = await startCluster(t, { edges: 2, routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS), ROOM_PUSH_LIST_MAX: String(LIST_MAX) } })
const [edge1, edge2] = cluster.edges as [Edge, Edge]
const { apiKeys, jwtSecret } = testSecrets()

const backend = (t: Test, transport: 'pipeline' | 'http') => backendClient(t, cluster.router.url, { transport })

/** An app on the SDK, connected: it acknowledges every push asking for one by itself. */
async function app(t: Test, edge: Edge, userId: string) {
  const client = sdkClient(t, { url: edge.wsUrl, getToken: () => mintToken(jwtSecret, userId) })
  await eventually(() => client.welcomes().length > 0, { timeoutMs: 5_000 })
  return client
}

const elapsed = async <T>(run: () => Promise<T>): Promise<[T, number]> => {
  const started = Date.now()
  const value = await run()
  return [value, Date.now() - started]
}

for (const transport of ['pipeline', 'http'] as const) {
  t.test(`${transport}: an SDK app acknowledges by itself (acked); a raw client that never does is unacked at the timeout; offline is offline`, async (t) => {
    const sb = backend(t, transport)
    const [ann, bob, zed] = ['ann', 'bob', 'zed'].map((u) => `rc-${u}-${transport}`) as [string, string, string]
    const annApp = await app(t, edge1, ann)
    const bobRaw = await connectUser(t, edge2.wsUrl, jwtSecret, bob)
    const [answer, ms] = await elapsed(() => sb.push({ to: [ann, bob, zed], event: 'chat', data: { n: 1 }, id: `rc-1-${transport}`, ack: { timeoutMs: ACK_TIMEOUT_MS } }))
    t.same(answer, { id: `rc-1-${transport}`, acked: [ann], unacked: [bob], offline: [zed], failed: [] })
    t.ok(ms >= ACK_TIMEOUT_MS - 50, `bob's edge waited out the timeout (${ms} ms, timeout ${ACK_TIMEOUT_MS} ms)`)
    t.ok(ms < ACK_TIMEOUT_MS + FORWARD_TIMEOUT_MS, 'and not longer than the timeout and a forward')
    t.match(annApp.pushes, [{ id: `rc-1-${transport}`, event: 'chat', data: { n: 1 }, ack: true }], 'the app got it, marked as asking for a receipt')
    t.match(await bobRaw.client.nextFrame(), { type: 'push', id: `rc-1-${transport}`, ack: true }, 'the frame carries "ack":true')
  })

  t.test(`${transport}: answered as soon as everyone acknowledged; a raw client's ack frame counts; any device counts`, async (t) => {
    const sb = backend(t, transport)
    const [cy, dee] = [`rc-cy-${transport}`, `rc-dee-${transport}`]
    const cyRaw = await connectUser(t, edge1.wsUrl, jwtSecret, cy)
    await app(t, edge1, dee) // dee's phone acknowledges
    const deeLaptop = await connectUser(t, edge2.wsUrl, jwtSecret, dee) // her laptop never does
    const id = `rc-2-${transport}`
    const pushed = elapsed(() => sb.push({ to: [cy, dee], event: 'e', id, ack: { timeoutMs: 30_000 } }))
    t.match(await cyRaw.client.nextFrame(), { id, ack: true })
    cyRaw.client.send(ackFrame(['not-waited-for', id]))
    const [answer, ms] = await pushed
    t.same(answer, { id, acked: [cy, dee], unacked: [], offline: [], failed: [] })
    t.ok(ms < 30_000 / 2, `answered in ${ms} ms, long before the 30 s timeout`)
    t.match(await deeLaptop.client.nextFrame(), { id }, 'both of dee\'s devices got it')
    t.same(await cyRaw.client.ping(), { type: 'pong' }, 'an ack of an unknown id is no error: the socket stays')
  })
}

t.test('a socket that closes without acknowledging ends the wait at once: unacked, not at the timeout', async (t) => {
  const erin = await connectUser(t, edge1.wsUrl, jwtSecret, 'rc-erin')
  const pushed = elapsed(() => cluster.api.post('/v1/push', { to: ['rc-erin'], event: 'e', id: 'rc-close', ack: { timeoutMs: 30_000 } }))
  t.match(await erin.client.nextFrame(), { id: 'rc-close' })
  await erin.client.close()
  const [res, ms] = await pushed
  t.same(res.body, { id: 'rc-close', acked: [], unacked: ['rc-erin'], offline: [], failed: [] })
  t.ok(ms < 30_000 / 2, `answered in ${ms} ms`)
})

t.test('an edge SIGKILLed while waiting: its users are failed at once (the link is lost), other edges\' answers stand', async (t) => {
  const doomed = await cluster.addEdge(t)
  const fay = await connectUser(t, doomed.wsUrl, jwtSecret, 'rc-fay')
  await app(t, edge2, 'rc-gus')
  const pushed = elapsed(() => cluster.api.post('/v1/push', { to: ['rc-fay', 'rc-gus'], event: 'e', id: 'rc-kill', ack: { timeoutMs: 30_000 } }))
  t.match(await fay.client.nextFrame(), { id: 'rc-kill' }, 'written before the kill')
  doomed.kill('SIGKILL')
  const [res, ms] = await pushed
  t.same(res.body, { id: 'rc-kill', acked: ['rc-gus'], unacked: [], offline: [], failed: ['rc-fay'] })
  t.ok(ms < 30_000 / 2, `answered in ${ms} ms, not at the ack timeout`)
})

t.test('a router stopped (SIGTERM) while a push waits for receipts answers it before it exits: edges not yet answered are failed', async (t) => {
  const spare = await cluster.addRouter(t)
  const kim = await connectUser(t, edge1.wsUrl, jwtSecret, 'rc-kim') // never acknowledges
  await app(t, edge2, 'rc-lee')
  const pushed = elapsed(() => api(spare.url, apiKeys[0]).post('/v1/push', { to: ['rc-kim', 'rc-lee'], event: 'e', id: 'rc-term', ack: { timeoutMs: 30_000 } }, { timeoutMs: 30_000 }))
  t.match(await kim.client.nextFrame(), { id: 'rc-term' }, 'written: the push is waiting for receipts')
  spare.kill('SIGTERM')
  const [res, ms] = await pushed
  t.equal(res.status, 200)
  t.same(res.body, { id: 'rc-term', acked: ['rc-lee'], unacked: [], offline: [], failed: ['rc-kim'] }, 'lee acknowledged in time; kim\'s wait was ended by the stop')
  // The stop's grace (start.ts): forward timeout + Redis command timeout (1 s, its default) + 1 s; then the waits end.
  const graceMs = FORWARD_TIMEOUT_MS + 1_000 + 1_000
  t.ok(ms >= graceMs - 100 && ms < graceMs + 2_000, `answered in ${ms} ms: after the stop's ${graceMs} ms grace, not at the 30 s ack timeout`)
  t.equal(await spare.exited, 0, 'then it exits 0')
})

t.test('1,000 recipients in one request, each an SDK app on one of two edges: all acked', async (t) => {
  const users = Array.from({ length: 1_000 }, (_, i) => `rc-many-${i}`)
  const apps: ReturnType<typeof sdkClient>[] = []
  for (let i = 0; i < users.length; i += 100) apps.push(...(await Promise.all(users.slice(i, i + 100).map((u, k) => app(t, (i + k) % 2 ? edge1 : edge2, u)))))
  const sb = backend(t, 'pipeline')
  const [answer, ms] = await elapsed(() => sb.push({ to: users, event: 'many', id: 'rc-many', ack: { timeoutMs: 20_000 } }))
  t.equal(answer.acked.length, users.length, `all acked, in ${ms} ms`)
  t.same([answer.unacked, answer.offline, answer.failed], [[], [], []])
  t.ok(apps.every((a) => a.pushes.some((p) => p.id === 'rc-many')), 'every app got it')
})

t.test('room pushes with ack: a small room lists acked and unacked, a big one counts them (acknowledged)', async (t) => {
  const sb = backend(t, 'pipeline')
  const small = ['rc-ra', 'rc-rb', 'rc-rc']
  await sb.roomAdd('rc-small', small)
  await app(t, edge1, 'rc-ra')
  const rb = await connectUser(t, edge2.wsUrl, jwtSecret, 'rc-rb') // never acknowledges; rc-rc is offline
  const [answer, ms] = await elapsed(() => sb.push({ room: 'rc-small', event: 'e', id: 'rc-room-1', ack: { timeoutMs: ACK_TIMEOUT_MS } }))
  t.same(answer, { id: 'rc-room-1', room: 'rc-small', members: 3, reached: 2, acknowledged: 1, edges: 2, failedEdges: 0, acked: ['rc-ra'], unacked: ['rc-rb'], offline: ['rc-rc'], failed: [] })
  t.ok(ms >= ACK_TIMEOUT_MS - 50, `rb's edge waited out the timeout (${ms} ms)`)
  t.match(await rb.client.nextFrame(), { type: 'push', id: 'rc-room-1', ack: true })

  const big = Array.from({ length: LIST_MAX + 2 }, (_, i) => `rc-big-${i}`)
  await sb.roomAdd('rc-big', big)
  for (const [i, u] of big.entries()) await app(t, i % 2 ? edge1 : edge2, u)
  const counted = await sb.push({ room: 'rc-big', event: 'e', id: 'rc-room-2', ack: { timeoutMs: 30_000 } })
  t.same(counted, { id: 'rc-room-2', room: 'rc-big', members: big.length, reached: big.length, acknowledged: big.length, edges: 2, failedEdges: 0 }, 'counts only, answered once every member acknowledged')
})

t.test('an idempotent push with receipts replays its answer, receipts included', async (t) => {
  const sb = backend(t, 'pipeline')
  const hal = await app(t, edge1, 'rc-hal')
  const body = { to: ['rc-hal', 'rc-ivy'], event: 'once', id: 'rc-idem', ack: { timeoutMs: 5_000 } }
  const key = `rc-key-${Date.now()}`
  const first = await sb.push(body, { idempotencyKey: key })
  t.same(first, { id: 'rc-idem', acked: ['rc-hal'], unacked: [], offline: ['rc-ivy'], failed: [] })
  hal.sb.close()
  t.same(await sb.push(body, { idempotencyKey: key }), first, 'the stored answer, sent nowhere again')
  t.equal(hal.pushes.length, 1)
})

t.test('bad ack requests are refused with the documented message; bad ack frames close as documented', async (t) => {
  for (const ack of [{ timeoutMs: 99 }, { timeoutMs: 30_001 }, { timeoutMs: 1.5 }, true, {}]) {
    const res = await cluster.api.post('/v1/push', { to: ['rc-x'], event: 'e', ack })
    t.equal(res.status, 400, JSON.stringify(ack))
    t.match(res.body, { error: { code: 'invalid_request', message: /^ack/ } })
  }
  const res = await cluster.api.post('/v1/push', { to: ['rc-x'], event: 'e', ack: { timeoutMs: 500 }, wait: 'routed' })
  t.match(res.body, { error: { code: 'invalid_request', message: /^ack: a push with receipts waits for its edges' answers/ } })
  const jo = await connectUser(t, edge1.wsUrl, jwtSecret, 'rc-jo')
  jo.client.send({ type: 'ack', ids: Array.from({ length: 101 }, (_, i) => `x${i}`) })
  t.equal((await jo.client.closed).code, 1008, 'over 100 ids: a protocol violation')
})


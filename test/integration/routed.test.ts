// Pushes with `wait: "routed"` end to end: real router, real edges, real Redis, over both
// ingresses (the backend client's pipeline and HTTP transports). The answer lists `routed`
// instead of `delivered`, and comes once each edge's link took the frame, not after the edges.
import t, { type Test } from 'tap'
import { backendClient } from '../helpers/backend.js'
import { connectUser, eventually } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'
import { EDGE_CIRCUIT } from '@switchboard/router'

const FORWARD_TIMEOUT_MS = 800
// A long lease, so an edge stopped with SIGSTOP still looks alive while a test runs.
const cluster = await startCluster(t, { edges: 2, leaseTtlMs: 6_000, routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) } })
const [edge1, edge2] = cluster.edges as [Edge, Edge]
const { jwtSecret } = testSecrets()

const backend = (t: Test, transport: 'pipeline' | 'http') => backendClient(t, cluster.router.url, { transport })

for (const transport of ['pipeline', 'http'] as const) {
  t.test(`${transport}: a routed push reaches the online user; the answer lists routed and offline, never delivered`, async (t) => {
    const sb = backend(t, transport)
    const ann = await connectUser(t, edge1.wsUrl, jwtSecret, `rt-ann-${transport}`)
    const bob = await connectUser(t, edge2.wsUrl, jwtSecret, `rt-bob-${transport}`)
    const to = [`rt-ann-${transport}`, `rt-bob-${transport}`, `rt-nobody-${transport}`]
    const answer = await sb.push({ to, event: 'chat', data: { n: 1 }, id: `rt-${transport}`, wait: 'routed' })
    t.same(answer, { id: `rt-${transport}`, routed: to.slice(0, 2), offline: to.slice(2), failed: [] })
    t.match(await ann.client.nextFrame(), { type: 'push', id: `rt-${transport}`, event: 'chat', data: { n: 1 } })
    t.match(await bob.client.nextFrame(), { type: 'push', id: `rt-${transport}` }, 'through each user\'s edge')
    t.same(await ann.client.ping(), { type: 'pong' }, 'once')
    const written = await sb.push({ to: to.slice(0, 1), event: 'chat', id: `wr-${transport}`, wait: 'written' })
    t.same(written, { id: `wr-${transport}`, delivered: to.slice(0, 1), offline: [], failed: [] }, 'wait: written is the usual answer')
    t.match(await ann.client.nextFrame(), { id: `wr-${transport}` })
  })

  t.test(`${transport}: an idempotent routed push replays its answer as is; a kept one lists kept`, async (t) => {
    const sb = backend(t, transport)
    const user = `rt-idem-${transport}`
    const carol = await connectUser(t, edge1.wsUrl, jwtSecret, user)
    const body = { to: [user], event: 'once', id: `idem-${transport}`, wait: 'routed' as const }
    const key = `rt-key-${transport}-${Date.now()}`
    const first = await sb.push(body, { idempotencyKey: key })
    t.same(first, { id: body.id, routed: [user], offline: [], failed: [] })
    t.match(await carol.client.nextFrame(), { id: body.id })
    carol.client.terminate()
    await eventually(async () => (await sb.presence(user)).online === false, { timeoutMs: cluster.leaseTtlMs })
    t.same(await sb.push(body, { idempotencyKey: key }), first, 'the stored answer, although the user is offline now')
    const kept = await sb.push({ to: [user], event: 'kept', id: `kept-${transport}`, keep: true, wait: 'routed' })
    t.same(kept, { id: `kept-${transport}`, routed: [], offline: [user], failed: [], kept: [user] }, 'kept: in the inbox, as a written push')
  })
}

t.test('a room push with wait: routed is refused with a clear message', async (t) => {
  const res = await cluster.api.post('/v1/push', { room: 'rt-room', event: 'e', wait: 'routed' })
  t.equal(res.status, 400)
  t.match(res.body, { error: { code: 'invalid_request', message: /^wait: a room push waits for its edges' answers/ } })
})

t.test('a stopped edge: routed pushes are answered within the forward timeout; failed while its link cannot open, routed while it takes bytes', async (t) => {
  const stuck = await cluster.addEdge(t)
  const erin = await connectUser(t, stuck.wsUrl, jwtSecret, 'rt-erin')
  const frank = await connectUser(t, edge1.wsUrl, jwtSecret, 'rt-frank')
  const push = (id: string) => cluster.api.post('/v1/push', { to: ['rt-erin', 'rt-frank'], event: 'e', id, wait: 'routed' })
  t.teardown(() => {
    stuck.kill('SIGCONT')
    erin.client.terminate()
  })

  // No link yet: it cannot open (the upgrade is never answered), so erin is failed once the forward timeout passed.
  stuck.kill('SIGSTOP')
  let started = Date.now()
  const before = await push('rt-s1')
  let elapsedMs = Date.now() - started
  t.same(before.body, { id: 'rt-s1', routed: ['rt-frank'], offline: [], failed: ['rt-erin'] })
  t.ok(elapsedMs >= FORWARD_TIMEOUT_MS - 50 && elapsedMs < FORWARD_TIMEOUT_MS + 1_000, `answered in ${elapsedMs} ms (forward timeout ${FORWARD_TIMEOUT_MS} ms)`)
  t.match(await frank.client.nextFrame(), { id: 'rt-s1' })

  // The edge back: once its circuit lets a call through, the link opens and erin is routed.
  stuck.kill('SIGCONT')
  const opened = await eventually(async () => {
    const res = await push(`rt-probe-${Date.now()}`)
    return res.body.routed?.includes('rt-erin') ? res : undefined
  }, { timeoutMs: EDGE_CIRCUIT.maxCooldownMs + FORWARD_TIMEOUT_MS })
  t.match(await erin.client.nextFrame(), { id: opened.body.id }, 'erin gets the push that was routed')

  // Stopped again with its link open: the socket still takes bytes (the kernel's buffers) and
  // nothing waits for an answer, so erin is routed at once; the edge writes it when it resumes.
  stuck.kill('SIGSTOP')
  started = Date.now()
  const during = await push('rt-s2')
  elapsedMs = Date.now() - started
  t.same(during.body, { id: 'rt-s2', routed: ['rt-erin', 'rt-frank'], offline: [], failed: [] })
  t.ok(elapsedMs < FORWARD_TIMEOUT_MS / 2, `answered in ${elapsedMs} ms, not after the forward timeout (${FORWARD_TIMEOUT_MS} ms)`)
  stuck.kill('SIGCONT')
  const frames = [await erin.client.nextFrame()]
  while (frames.at(-1)!.id !== 'rt-s2') frames.push(await erin.client.nextFrame())
  t.pass('erin gets it once the edge runs again')
})

// POST /v1/push end to end: real router, two real edges, real Redis, real sockets.
import t from 'tap'
import { connectUser, type Frame } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const FORWARD_TIMEOUT_MS = 800
// A long lease, so an edge stopped with SIGSTOP still looks alive while the failed-delivery test runs.
const cluster = await startCluster(t, {
  edges: 2,
  leaseTtlMs: 6_000,
  routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) },
})
const [edge1, edge2] = cluster.edges as [Edge, Edge]
const { jwtSecret } = testSecrets()
const push = (body: unknown) => cluster.api.post('/v1/push', body)
const sorted = (xs: readonly string[]) => [...xs].sort()

t.test('a connected user receives the push with the caller id echoed', async (t) => {
  const { client } = await connectUser(t, edge1.wsUrl, jwtSecret, 'alice')
  const data = { text: 'hi', n: 3, nested: { list: [1, 'two', null, true] } }
  const before = Date.now()
  const res = await push({ to: ['alice'], event: 'chat.message', data, id: 'msg-caller-1' })
  const after = Date.now()
  t.equal(res.status, 200)
  t.same(res.body, { id: 'msg-caller-1', delivered: ['alice'], offline: [], failed: [] })
  const frame = await client.nextFrame()
  t.same(Object.keys(frame).sort(), ['data', 'event', 'id', 'ts', 'type'])
  t.match(frame, { type: 'push', id: 'msg-caller-1', event: 'chat.message' })
  t.same(frame.data, data)
  t.type(frame.ts, 'number')
  t.ok((frame.ts as number) >= before - 1_000 && (frame.ts as number) <= after + 1_000, 'ts is the router clock at push time')
})

t.test('without a caller id the router generates one and sends it to the client', async (t) => {
  const { client } = await connectUser(t, edge1.wsUrl, jwtSecret, 'gen-id')
  const first = await push({ to: ['gen-id'], event: 'e1', data: 1 })
  const second = await push({ to: ['gen-id'], event: 'e2', data: 'two' })
  t.equal(first.status, 200)
  t.equal(second.status, 200)
  t.type(first.body.id, 'string')
  t.ok(first.body.id.length > 0, 'id is not empty')
  t.not(first.body.id, second.body.id, 'each push gets its own id')
  t.same(first.body.delivered, ['gen-id'])
  t.match(await client.nextFrame(), { type: 'push', id: first.body.id, event: 'e1', data: 1 })
  t.match(await client.nextFrame(), { type: 'push', id: second.body.id, event: 'e2', data: 'two' })
})

t.test('a user with no connection is listed offline', async (t) => {
  const res = await push({ to: ['nobody-here'], event: 'e', data: {} })
  t.equal(res.status, 200)
  t.same(res.body.delivered, [])
  t.same(res.body.offline, ['nobody-here'])
  t.same(res.body.failed, [])
})

t.test('a user on edge 2 is delivered through edge 2 only', async (t) => {
  const bob = await connectUser(t, edge2.wsUrl, jwtSecret, 'bob')
  const bystander = await connectUser(t, edge1.wsUrl, jwtSecret, 'bystander')
  t.equal(bob.welcome.nodeId, edge2.nodeId)
  const res = await push({ to: ['bob'], event: 'only.bob', data: 42 })
  t.equal(res.status, 200)
  t.same(res.body.delivered, ['bob'])
  t.match(await bob.client.nextFrame(), { type: 'push', id: res.body.id, event: 'only.bob', data: 42 })
  // A ping answered by a pong proves no other frame was queued before it.
  t.same(await bob.client.ping(), { type: 'pong' }, 'bob got the push once')
  t.same(await bystander.client.ping(), { type: 'pong' }, 'the other edge wrote nothing')
})

t.test('every device of a user gets the push, the user is listed once', async (t) => {
  const phone = await connectUser(t, edge1.wsUrl, jwtSecret, 'carol')
  const laptop = await connectUser(t, edge2.wsUrl, jwtSecret, 'carol')
  const tablet = await connectUser(t, edge2.wsUrl, jwtSecret, 'carol')
  const res = await push({ to: ['carol'], event: 'multi', data: { x: 1 } })
  t.equal(res.status, 200)
  t.same(res.body.delivered, ['carol'])
  t.same(res.body.offline, [])
  for (const device of [phone, laptop, tablet]) {
    t.match(await device.client.nextFrame(), { type: 'push', id: res.body.id, event: 'multi', data: { x: 1 } })
    t.same(await device.client.ping(), { type: 'pong' }, 'exactly one copy per socket')
  }
})

t.test('duplicate recipients count once', async (t) => {
  const dave = await connectUser(t, edge1.wsUrl, jwtSecret, 'dave')
  const res = await push({ to: ['dave', 'ghost', 'dave', 'ghost', 'dave'], event: 'dup', data: null })
  t.equal(res.status, 200)
  t.same(res.body.delivered, ['dave'])
  t.same(res.body.offline, ['ghost'])
  t.same(res.body.failed, [])
  t.match(await dave.client.nextFrame(), { type: 'push', id: res.body.id, event: 'dup', data: null })
  t.same(await dave.client.ping(), { type: 'pong' }, 'one frame, not three')
})

t.test('every recipient is in exactly one list', async (t) => {
  const online = ['m1', 'm2', 'm3', 'm4']
  const offline = ['o1', 'o2', 'o3']
  const sockets: Frame[] = []
  const clients = await Promise.all(
    online.map((u, i) => connectUser(t, (i % 2 === 0 ? edge1 : edge2).wsUrl, jwtSecret, u)),
  )
  const to = ['o1', 'm1', 'o2', 'm2', 'm3', 'o3', 'm4', 'm1']
  const res = await push({ to, event: 'mix', data: 'x' })
  t.equal(res.status, 200)
  t.same(sorted(res.body.delivered), online)
  t.same(sorted(res.body.offline), offline)
  t.same(res.body.failed, [])
  const all = [...res.body.delivered, ...res.body.offline, ...res.body.failed]
  t.equal(all.length, new Set(to).size, 'no recipient is listed twice')
  t.same(sorted(all), sorted([...new Set(to)]))
  for (const { client } of clients) sockets.push(await client.nextFrame())
  t.ok(sockets.every((f) => f.type === 'push' && f.id === res.body.id), 'each online user got it')
})

t.test('users of an edge that cannot answer are failed, the others delivered, in bounded time', async (t) => {
  const stuck = await cluster.addEdge(t)
  const erin = await connectUser(t, stuck.wsUrl, jwtSecret, 'erin')
  const frank = await connectUser(t, edge1.wsUrl, jwtSecret, 'frank')
  t.equal(erin.welcome.nodeId, stuck.nodeId)

  // Its lease stays live (6 s) but it cannot answer.
  stuck.kill('SIGSTOP')
  t.teardown(() => {
    stuck.kill('SIGCONT')
    erin.client.terminate() // its edge will not answer a close handshake quickly
  })

  const started = Date.now()
  const res = await push({ to: ['erin', 'frank', 'nobody-f'], event: 'partial', data: 1 })
  const elapsedMs = Date.now() - started
  t.equal(res.status, 200)
  t.same(res.body.delivered, ['frank'])
  t.same(res.body.failed, ['erin'])
  t.same(res.body.offline, ['nobody-f'])
  t.ok(elapsedMs < FORWARD_TIMEOUT_MS + 1_500, `answered in ${elapsedMs} ms (forward timeout ${FORWARD_TIMEOUT_MS} ms)`)
  t.match(await frank.client.nextFrame(), { type: 'push', id: res.body.id, event: 'partial' })

  // Routing touches only the recipients' edges: a push for frank does not wait on the stuck edge.
  const quickStart = Date.now()
  const quick = await push({ to: ['frank'], event: 'quick', data: 2 })
  const quickMs = Date.now() - quickStart
  t.same(quick.body, { id: quick.body.id, delivered: ['frank'], offline: [], failed: [] })
  t.ok(quickMs < FORWARD_TIMEOUT_MS * 0.75, `a push to another edge answered in ${quickMs} ms`)
  t.match(await frank.client.nextFrame(), { type: 'push', id: quick.body.id, event: 'quick' })
})

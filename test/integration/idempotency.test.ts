// Idempotent pushes: an Idempotency-Key makes a push or broadcast run once per API key, on any
// router, across a router restart; 409 while the first is in flight, 422 for another body.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import WebSocket from 'ws'
import { api, connectUser, eventually } from '../helpers/clients.js'
import { startCluster, startRouter, testSecrets } from '../helpers/processes.js'

const RETENTION_MS = 3_000
const cluster = await startCluster(t, { edges: 1, routerEnv: { ROUTER_IDEMPOTENCY_RETENTION_MS: String(RETENTION_MS) } })
const { jwtSecret, apiKeys } = testSecrets()
// The first router keeps answers RETENTION_MS (the expiry test); the second, the default 24 h.
const second = await startRouter(t, { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs })
const routers = [cluster.api, api(second.url, apiKeys[0])]
const key = () => `idem-${randomBytes(4).toString('hex')}`
const framesOf = async (client: { ping(): Promise<unknown> }, received: unknown[]) => (await client.ping(), received.length)

t.test('a repeat gets the stored answer with Idempotent-Replayed, on any router, and the push goes out once', async (t) => {
  const u = `idem-u-${randomBytes(3).toString('hex')}`
  const { client } = await connectUser(t, cluster.edges[0]!.wsUrl, jwtSecret, u)
  const received: unknown[] = []
  client.ws.on('message', (d: WebSocket.RawData) => JSON.parse(String(d)).type === 'push' && received.push(d))
  const k = key()
  const body = { to: [u], event: 'e', data: { n: 1 } }
  const first = await routers[0]!.post('/v1/push', body, { headers: { 'idempotency-key': k } })
  t.equal(first.status, 200)
  t.equal(first.headers.get('idempotent-replayed'), null)
  for (const router of routers) {
    const again = await router.post('/v1/push', body, { headers: { 'idempotency-key': k } })
    t.equal(again.status, 200)
    t.equal(again.headers.get('idempotent-replayed'), 'true')
    t.same(again.body, first.body, 'the stored answer, not a new push')
  }
  t.equal(await framesOf(client, received), 1, 'one frame reached the user')
  const other = await routers[1]!.post('/v1/push', body, { headers: { 'idempotency-key': key() } })
  t.not(other.body.id, first.body.id, 'another key is another push')
})

t.test('the same key with another body is 422; concurrent duplicates on two routers run once', async (t) => {
  const k = key()
  await routers[0]!.post('/v1/push', { to: ['nobody'], event: 'e', data: 1 }, { headers: { 'idempotency-key': k } })
  const mismatch = await routers[1]!.post('/v1/push', { to: ['nobody'], event: 'e', data: 2 }, { headers: { 'idempotency-key': k } })
  t.equal(mismatch.status, 422)
  t.equal(mismatch.body.error.code, 'idempotency_mismatch')

  const u = `idem-c-${randomBytes(3).toString('hex')}`
  const { client } = await connectUser(t, cluster.edges[0]!.wsUrl, jwtSecret, u)
  const received: unknown[] = []
  client.ws.on('message', (d: WebSocket.RawData) => JSON.parse(String(d)).type === 'push' && received.push(d))
  const c = key()
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => routers[i % 2]!.post('/v1/push', { to: [u], event: 'e', data: 1 }, { headers: { 'idempotency-key': c } })))
  const statuses = answers.map((a) => a.status)
  t.ok(statuses.every((s) => s === 200 || s === 409), `each answered 200 or 409: ${statuses.join(',')}`)
  t.ok(answers.filter((a) => a.status === 409).every((a) => a.body.error.code === 'idempotency_in_flight'))
  t.equal(new Set(answers.filter((a) => a.status === 200).map((a) => a.body.id)).size, 1, 'every 200 is the same push')
  t.equal(await framesOf(client, received), 1, 'which went out once')
})

t.test('scoped per API key; pipelined requests share the rules; a bad key is 400; answers expire', async (t) => {
  const k = key()
  const body = { to: ['nobody'], event: 'e', data: 1 }
  const a = await cluster.api.post('/v1/push', body, { headers: { 'idempotency-key': k } })
  const b = await api(cluster.router.url, apiKeys[1]).post('/v1/push', body, { headers: { 'idempotency-key': k } })
  t.not(b.body.id, a.body.id, 'another API key does not see the first key\'s answer')

  const ws = new WebSocket(`${second.url.replace('http', 'ws')}/v1/pipeline`, ['switchboard.pipeline.v1'], { headers: { authorization: `Bearer ${apiKeys[0]}` } })
  t.teardown(() => ws.terminate())
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  const answers: Record<string, unknown>[] = []
  ws.on('message', (d) => answers.push(JSON.parse(String(d))))
  ws.send(JSON.stringify({ id: 'r1', op: 'push', body, idempotencyKey: k }))
  ws.send(JSON.stringify({ id: 'r2', op: 'broadcast', body: { event: 'b', data: 1 }, idempotencyKey: k }))
  await eventually(() => answers.length === 2)
  const r1 = answers.find((x) => x.id === 'r1')!
  t.match(r1, { status: 200, replayed: true })
  t.same(r1.body, a.body, 'the pipeline replays what HTTP stored')
  t.notOk('replayed' in answers.find((x) => x.id === 'r2')!, 'the same key for another operation is another request')

  const bad = await cluster.api.post('/v1/push', body, { headers: { 'idempotency-key': 'has space' } })
  t.equal(bad.status, 400)
  // Nothing to await: the key's retention is a moment on Redis's clock, past it by this wait.
  await new Promise((r) => setTimeout(r, RETENTION_MS + 100))
  const later = await cluster.api.post('/v1/push', body, { headers: { 'idempotency-key': k } })
  t.not(later.body.id, a.body.id, 'past the retention the key runs again')
})

t.test('a router restart keeps the stored answers (they are in Redis)', async (t) => {
  const k = key()
  const body = { to: ['nobody'], event: 'e', data: 1 }
  const before = await routers[1]!.post('/v1/push', body, { headers: { 'idempotency-key': k } })
  second.kill('SIGKILL')
  await second.exited
  const third = await startRouter(t, { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs })
  const after = await api(third.url, apiKeys[0]).post('/v1/push', body, { headers: { 'idempotency-key': k } })
  t.equal(after.headers.get('idempotent-replayed'), 'true')
  t.same(after.body, before.body)
})

t.test('the backend client sends the key on both transports', async (t) => {
  const { SwitchboardBackend } = await import('@switchboard/backend')
  for (const transport of ['pipeline', 'http'] as const) {
    const sb = new SwitchboardBackend({ url: cluster.router.url, apiKey: apiKeys[0], transport })
    t.teardown(() => sb.close())
    const k = key()
    const first = await sb.push({ to: ['nobody'], event: 'e', data: 1 }, { idempotencyKey: k })
    const again = await sb.push({ to: ['nobody'], event: 'e', data: 1 }, { idempotencyKey: k })
    t.equal(again.id, first.id, `${transport}: the same push`)
  }
})

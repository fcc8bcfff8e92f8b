// The pipelined ingress against a real router, edge and Redis: one websocket, many requests
// in flight, each answered once by id with the HTTP API's status and body.
import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { connectUser } from '../helpers/clients.js'
import { startCluster, testSecrets } from '../helpers/processes.js'

const MAX_IN_FLIGHT = 8
const cluster = await startCluster(t, { edges: 1, routerEnv: { ROUTER_PIPELINE_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT), ROUTER_BODY_LIMIT_BYTES: '4096' } })
const edge = cluster.edges[0]!
const { apiKeys, jwtSecret } = testSecrets()
const pipelineUrl = cluster.router.url.replace('http', 'ws') + '/v1/pipeline'

interface Answer {
  id: string | null
  status: number
  body: any
}

/** A backend connection: `send` a raw frame, `request` one and await its answer by id. */
async function backend(t: Test, headers: Record<string, string> = { authorization: `Bearer ${apiKeys[0]}` }) {
  const ws = new WebSocket(pipelineUrl, { headers })
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  const answers: Answer[] = []
  const waiters = new Map<string | null, (a: Answer) => void>()
  ws.on('message', (data: Buffer) => {
    const a = JSON.parse(data.toString()) as Answer
    answers.push(a)
    waiters.get(a.id)?.(a)
  })
  const answerOf = (id: string | null) => new Promise<Answer>((resolve) => waiters.set(id, resolve))
  return {
    ws,
    answers,
    answerOf,
    send: (frame: string) => ws.send(frame),
    request: (id: string, op: string, body?: unknown) => {
      const answer = answerOf(id)
      ws.send(JSON.stringify({ id, op, body }))
      return answer
    },
  }
}

t.test('a push over the pipeline reaches the user; the answer is the HTTP one', async (t) => {
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'pl-ann')
  const b = await backend(t)
  const a = await b.request('r1', 'push', { to: ['pl-ann', 'pl-nobody'], event: 'chat', data: { n: 1 }, id: 'm1' })
  t.same(a, { id: 'r1', status: 200, body: { id: 'm1', delivered: ['pl-ann'], offline: ['pl-nobody'], failed: [] } })
  t.match(await client.nextFrame(), { type: 'push', id: 'm1', event: 'chat', data: { n: 1 } })
  const presence = await b.request('r2', 'presence', { userId: 'pl-ann' })
  t.match(presence, { id: 'r2', status: 200, body: { userId: 'pl-ann', online: true, connections: [{ nodeId: edge.nodeId }] } })
  t.same(await b.request('r3', 'presence.query', { userIds: ['pl-ann', 'pl-x'] }), { id: 'r3', status: 200, body: { online: ['pl-ann'], offline: ['pl-x'] } })
  t.match(await b.request('r4', 'nodes'), { status: 200, body: { nodes: [{ nodeId: edge.nodeId }] } })
  t.match(await b.request('r5', 'broadcast', { event: 'all', id: 'b1' }), { status: 200, body: { id: 'b1', nodes: 1, connections: 1 } })
  t.match(await client.nextFrame(), { id: 'b1' })
  t.same(await b.request('r6', 'disconnect', { userId: 'pl-ann', reason: 'bye' }), { id: 'r6', status: 200, body: { closed: 1 } })
  t.equal((await client.closed).code, 4500)
})

t.test('rooms over the pipeline: the room ops and a room push answer as their HTTP calls', async (t) => {
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'pl-room-ann')
  const b = await backend(t)
  t.same(await b.request('k1', 'room.add', { room: 'pl-room', userIds: ['pl-room-ann', 'pl-room-bob'] }), { id: 'k1', status: 200, body: { room: 'pl-room', added: ['pl-room-ann', 'pl-room-bob'], refused: [], members: 2 } })
  t.same(await b.request('k2', 'push', { room: 'pl-room', event: 'e', id: 'pm1' }), {
    id: 'k2',
    status: 200,
    body: { id: 'pm1', room: 'pl-room', members: 2, reached: 1, edges: 1, failedEdges: 0, delivered: ['pl-room-ann'], offline: ['pl-room-bob'], failed: [] },
  })
  t.match(await client.nextFrame(), { type: 'push', id: 'pm1' })
  t.same(await b.request('k3', 'room.members', { room: 'pl-room', limit: 1 }), { id: 'k3', status: 200, body: { room: 'pl-room', userIds: ['pl-room-ann'], cursor: 'pl-room-ann' } })
  t.same(await b.request('k4', 'room.remove', { room: 'pl-room', userIds: ['pl-room-ann'] }), { id: 'k4', status: 200, body: { room: 'pl-room', removed: ['pl-room-ann'], members: 1 } })
  t.same(await b.request('k5', 'room.info', { room: 'pl-room' }), { id: 'k5', status: 200, body: { room: 'pl-room', exists: true, members: 1 } })
  t.same(await b.request('k6', 'room.delete', { room: 'pl-room' }), { id: 'k6', status: 200, body: { room: 'pl-room', removed: 1 } })
  t.match(await b.request('k7', 'room.add', 'not an object'), { id: 'k7', status: 400, body: { error: { code: 'invalid_request', message: 'body: must be a JSON object with "room"' } } })
  t.match(await b.request('k8', 'room.info', { room: '' }), { id: 'k8', status: 400, body: { error: { code: 'invalid_request' } } })
})

t.test('many requests in flight on one connection: every one answered once, by id', async (t) => {
  const users = ['pl-1', 'pl-2', 'pl-3']
  const clients = await Promise.all(users.map((u) => connectUser(t, edge.wsUrl, jwtSecret, u)))
  const b = await backend(t)
  const ids = Array.from({ length: 200 }, (_, i) => `many-${i}`)
  const answers: Answer[] = []
  // In waves within the in-flight bound, each wave sent in one go without waiting.
  for (let i = 0; i < ids.length; i += MAX_IN_FLIGHT) {
    const wave = ids.slice(i, i + MAX_IN_FLIGHT)
    answers.push(...(await Promise.all(wave.map((id, k) => b.request(id, 'push', { to: [users[(i + k) % 3]!], event: 'e', id })))))
  }
  t.same(answers.filter((a) => a.status !== 200 || a.body.delivered.length !== 1).map((a) => a.id), [], 'every push delivered')
  t.equal(b.answers.length, 200, 'exactly one answer each')
  for (const [n, { client }] of clients.entries()) {
    const got: string[] = []
    for (let k = 0; k < ids.filter((_, i) => i % 3 === n).length; k++) got.push(String((await client.nextFrame()).id))
    t.same(got.sort(), ids.filter((_, i) => i % 3 === n).sort(), `${users[n]} got exactly its frames`)
  }
})

t.test('errors keep the HTTP API codes, statuses and field names, and the connection stays up', async (t) => {
  const b = await backend(t)
  const bad = await b.request('e1', 'push', { to: [], event: 'e' })
  t.equal(bad.status, 400)
  t.equal(bad.body.error.code, 'invalid_request')
  t.match(bad.body.error.message, /^to/)
  t.match(await b.request('e2', 'push', { to: ['a'], event: 'e', bogus: 1 }), { status: 400, body: { error: { code: 'invalid_request' } } })
  t.match(await b.request('e3', 'teleport', {}), { id: 'e3', status: 404, body: { error: { code: 'not_found' } } })
  t.match(await b.request('e4', 'presence', {}), { status: 400, body: { error: { code: 'invalid_request', message: /^userId/ } } })
  const notJson = b.answerOf(null)
  b.send('{"id":"x",')
  t.match(await notJson, { id: null, status: 400, body: { error: { code: 'invalid_request', message: /not valid JSON/ } } })
  const noId = b.answerOf(null)
  b.send(JSON.stringify({ id: 'has space', op: 'nodes' }))
  t.match(await noId, { id: null, status: 400, body: { error: { code: 'invalid_request', message: /^id/ } } })
  const proto = await b.request('e5', 'push', JSON.parse('{"to":["a"],"event":"e","__proto__":{"x":1}}'))
  t.equal(proto.status, 400, 'prototype keys are refused as over HTTP')
  t.equal((await b.request('e6', 'nodes')).status, 200, 'the connection still serves')
})

t.test('past the in-flight bound a request is answered 429 at once', async (t) => {
  const b = await backend(t)
  // Presence of 4 users per request, 3 waves worth of requests sent in one go.
  const sent = Array.from({ length: MAX_IN_FLIGHT * 3 }, (_, i) => b.request(`f-${i}`, 'presence.query', { userIds: ['a', 'b', 'c', 'd'] }))
  const answers = await Promise.all(sent)
  const limited = answers.filter((a) => a.status === 429)
  t.ok(limited.length > 0, `${limited.length} of ${answers.length} were over the bound`)
  t.ok(answers.filter((a) => a.status === 200).length >= MAX_IN_FLIGHT, 'at least the bound were served')
  t.ok(limited.every((a) => a.body.error.code === 'rate_limited'))
  const metrics = await (await fetch(`${cluster.router.url}/metrics`)).text()
  t.ok(Number(/^router_pipeline_refusals_total\{reason="in_flight"\} (\d+)/m.exec(metrics)?.[1]) >= limited.length, 'counted in router_pipeline_refusals_total')
  t.match(metrics, /^router_pipeline_connections [1-9]/m, 'open connections are counted')
})

t.test('the upgrade needs an API key; the subprotocol form is accepted', async (t) => {
  for (const headers of [{}, { authorization: 'Bearer nope-nope-nope-nope' }, { authorization: `Basic ${apiKeys[0]}` }]) {
    const ws = new WebSocket(pipelineUrl, { headers })
    ws.on('error', () => undefined) // terminate() below fails the handshake on purpose
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage]
    t.equal(res.statusCode, 401, JSON.stringify(headers))
    ws.terminate()
  }
  const ws = new WebSocket(pipelineUrl, ['switchboard.pipeline.v1', `bearer.${apiKeys[1]}`])
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  t.equal(ws.protocol, 'switchboard.pipeline.v1', 'the key is never echoed')
  ws.send(JSON.stringify({ id: 'sp', op: 'nodes' }))
  const [data] = (await once(ws, 'message')) as [Buffer]
  t.match(JSON.parse(data.toString()), { id: 'sp', status: 200 })
})

t.test('a frame over the body limit closes the connection; the router serves on', async (t) => {
  const b = await backend(t)
  const closed = once(b.ws, 'close')
  b.send(JSON.stringify({ id: 'big', op: 'push', body: { to: ['a'], event: 'e', data: 'x'.repeat(8_000) } }))
  const [code] = (await closed) as [number]
  t.ok(code === 1009 || code === 1006, `closed with ${code}`)
  const again = await backend(t)
  t.equal((await again.request('after', 'nodes')).status, 200)
})

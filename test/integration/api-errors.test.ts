// Router HTTP API errors: authentication, validation, size limits, unknown routes and an
// unreachable registry, against a real router and Redis.
import { once } from 'node:events'
import { connect } from 'node:net'
import { setTimeout } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { api, eventually, type ApiResponse } from '../helpers/clients.js'
import { startRouter, testSecrets } from '../helpers/processes.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'

const redis = await startRedis(t)
const REDIS_COMMAND_TIMEOUT_MS = 1_000 // the default, named: the bound below derives from it
const router = await startRouter(t, { redisUrl: redis.url, prefix: uniquePrefix(), env: { REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS) } })
const { apiKeys } = testSecrets()
const authed = api(router.url, apiKeys[0])

/** Asserts the error shape `{"error":{"code","message"}}` with this status and code. */
function isError(t: Test, res: ApiResponse, status: number, code: string, label = `${status} ${code}`) {
  t.equal(res.status, status, `${label}: status`)
  t.match(res.headers.get('content-type') ?? '', /application\/json/, `${label}: JSON answer`)
  t.same(Object.keys(res.body ?? {}), ['error'], `${label}: only an error member`)
  t.same(Object.keys(res.body?.error ?? {}).sort(), ['code', 'message'], `${label}: error has code and message`)
  t.equal(res.body?.error?.code, code, `${label}: code`)
  t.ok(typeof res.body?.error?.message === 'string' && res.body.error.message.length > 0, `${label}: message is text`)
}

const calls: [string, string, unknown][] = [
  ['POST', '/v1/push', { to: ['u1'], event: 'e', data: 1 }],
  ['POST', '/v1/broadcast', { event: 'e', data: 1 }],
  ['GET', '/v1/presence/u1', undefined],
  ['POST', '/v1/presence/query', { userIds: ['u1'] }],
  ['POST', '/v1/disconnect', { userId: 'u1' }],
  ['GET', '/v1/nodes', undefined],
]

t.test('every /v1 call without a key is 401 unauthorized', async (t) => {
  const anonymous = api(router.url)
  for (const [method, path, body] of calls) {
    isError(t, await anonymous.request(method, path, { body }), 401, 'unauthorized', `${method} ${path}`)
  }
})

t.test('every /v1 call with a wrong key or scheme is 401 unauthorized', async (t) => {
  const wrong = api(router.url, 'z'.repeat(32))
  for (const [method, path, body] of calls) {
    isError(t, await wrong.request(method, path, { body }), 401, 'unauthorized', `${method} ${path} wrong key`)
  }
  const basic = await api(router.url).get('/v1/nodes', { headers: { authorization: `Basic ${apiKeys[0]}` } })
  isError(t, basic, 401, 'unauthorized', 'Basic scheme')
  const bare = await api(router.url).get('/v1/nodes', { headers: { authorization: apiKeys[0] } })
  isError(t, bare, 401, 'unauthorized', 'key without scheme')
  const prefix = await api(router.url, apiKeys[0].slice(0, -1)).get('/v1/nodes')
  isError(t, prefix, 401, 'unauthorized', 'a prefix of a key')
})

t.test('authentication comes before validation', async (t) => {
  const res = await api(router.url).post('/v1/push', { to: [] })
  isError(t, res, 401, 'unauthorized')
})

t.test('every configured key is accepted', async (t) => {
  for (const key of apiKeys) {
    const res = await api(router.url, key).get('/v1/nodes')
    t.equal(res.status, 200)
    t.same(res.body, { nodes: [] })
  }
})

const tooMany = Array.from({ length: 10_001 }, (_, i) => `user-${i}`)
const badBodies: [string, string, unknown, string | undefined][] = [
  ['push: empty to', '/v1/push', { to: [], event: 'e' }, 'to'],
  ['push: missing to', '/v1/push', { event: 'e' }, 'to'],
  ['push: to is a string', '/v1/push', { to: 'u1', event: 'e' }, 'to'],
  ['push: non-string id in to', '/v1/push', { to: ['u1', 7], event: 'e' }, 'to'],
  ['push: empty id in to', '/v1/push', { to: [''], event: 'e' }, 'to'],
  ['push: id over 256 chars in to', '/v1/push', { to: ['u'.repeat(257)], event: 'e' }, 'to'],
  ['push: more than 10000 recipients', '/v1/push', { to: tooMany, event: 'e' }, 'to'],
  ['push: missing event', '/v1/push', { to: ['u1'], data: 1 }, 'event'],
  ['push: non-string event', '/v1/push', { to: ['u1'], event: 5 }, 'event'],
  ['push: non-string caller id', '/v1/push', { to: ['u1'], event: 'e', id: 12 }, 'id'],
  ['push: unknown field', '/v1/push', { to: ['u1'], event: 'e', bogus: true }, 'bogus'],
  ['push: not JSON', '/v1/push', '{"to":["u1"],', undefined],
  ['push: a JSON array', '/v1/push', '[]', undefined],
  ['push: JSON null', '/v1/push', 'null', undefined],
  ['broadcast: missing event', '/v1/broadcast', { data: 1 }, 'event'],
  ['broadcast: unknown field', '/v1/broadcast', { event: 'e', to: ['u1'] }, 'to'],
  ['presence query: empty userIds', '/v1/presence/query', { userIds: [] }, 'userIds'],
  ['presence query: missing userIds', '/v1/presence/query', {}, 'userIds'],
  ['presence query: non-string id', '/v1/presence/query', { userIds: [null] }, 'userIds'],
  ['presence query: more than 10000 ids', '/v1/presence/query', { userIds: tooMany }, 'userIds'],
  ['disconnect: missing userId', '/v1/disconnect', { reason: 'x' }, 'userId'],
  ['disconnect: non-string userId', '/v1/disconnect', { userId: 1 }, 'userId'],
  ['disconnect: not JSON', '/v1/disconnect', 'userId=u1', undefined],
]

t.test('bad bodies are 400 invalid_request naming the field', async (t) => {
  for (const [label, path, body, field] of badBodies) {
    const res = await authed.post(path, body)
    isError(t, res, 400, 'invalid_request', label)
    if (field !== undefined) t.match(res.body?.error?.message ?? '', field, `${label}: message names ${field}`)
  }
  // No request body ever crashes a process.
  t.equal(router.isRunning(), true, 'the router is still running')
  t.equal((await api(router.url).get('/healthz')).status, 200)
})

t.test('limits are inclusive: 10000 recipients and 256-char ids are accepted', async (t) => {
  const to = Array.from({ length: 10_000 }, (_, i) => `edge-case-${i}`)
  const res = await authed.post('/v1/push', { to, event: 'e', data: 1 })
  t.equal(res.status, 200)
  t.equal(res.body.offline.length, 10_000)
  const long = 'u'.repeat(256)
  const one = await authed.post('/v1/push', { to: [long], event: 'e' })
  t.equal(one.status, 200)
  t.same(one.body.offline, [long])
  const query = await authed.post('/v1/presence/query', { userIds: to })
  t.equal(query.status, 200)
  t.equal(query.body.offline.length, 10_000)
})

t.test('a body over 1 MiB is 413 payload_too_large', async (t) => {
  const big = JSON.stringify({ to: ['u1'], event: 'e', data: 'x'.repeat(1_100_000) })
  const res = await authed.post('/v1/push', big)
  isError(t, res, 413, 'payload_too_large')
  t.equal((await api(router.url).get('/healthz')).status, 200, 'the router survives')
})

t.test('a client still sending an over-limit body gets its 413, not a reset', async (t) => {
  // The router refuses at once on Content-Length; the body keeps coming in 64 KiB pieces.
  // Closing before it is read would reset the connection under the client's writes.
  const length = 3 * 1024 * 1024
  // Half-open, as an HTTP client mid-upload: it keeps sending after the router's FIN.
  const socket = connect({ host: '127.0.0.1', port: router.port, allowHalfOpen: true })
  socket.on('end', () => socket.end())
  const closed = once(socket, 'close')
  await once(socket, 'connect')
  let received = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]) })
  const errors: string[] = []
  socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message))
  socket.write(`POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKeys[0]}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`)
  const piece = Buffer.alloc(64 * 1024, 'x')
  let sent = 0
  for (; sent < length && !socket.destroyed; sent += piece.length) {
    if (!socket.write(piece)) await Promise.race([once(socket, 'drain'), closed])
    await setTimeout(2)
  }
  await closed
  t.same(errors, [], 'no reset while sending')
  t.equal(sent, length, 'the whole body was sent')
  const answer = received.toString('latin1')
  t.match(answer, /^HTTP\/1\.1 413 /, '413 received')
  t.match(answer, /"code":"payload_too_large"/, 'with the error body')
})

t.test('a wanted body may arrive slowly: only a refused one being drained is on a clock', async (t) => {
  const body = JSON.stringify({ to: ['slow-u'], event: 'e', data: 1 })
  const socket = connect({ host: '127.0.0.1', port: router.port })
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
  const closed = once(socket, 'close')
  socket.write(`POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKeys[0]}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`)
  // Past the router's 5 s drain clock for refused bodies (DRAIN_MAX_MS), within uWS's idle timeout.
  await setTimeout(5_500)
  socket.write(body.slice(10))
  await closed
  t.match(received, /^HTTP\/1\.1 200 /, 'served')
  t.match(received, /"offline":\["slow-u"\]/)
})

t.test('an unknown route is 404 not_found', async (t) => {
  isError(t, await authed.get('/v1/nothing-here'), 404, 'not_found', 'GET /v1/nothing-here')
  isError(t, await authed.post('/v1/pushes', { to: ['u1'], event: 'e' }), 404, 'not_found', 'POST /v1/pushes')
  isError(t, await authed.get('/nothing-here'), 404, 'not_found', 'GET /nothing-here')
  // Deny by default: without a key, only the probes answer; unknown paths reveal nothing.
  isError(t, await api(router.url).get('/nothing-here'), 401, 'unauthorized', 'GET /nothing-here without a key')
})

t.test('configured limits: recipients, presence batch and body size', async (t) => {
  const strict = await startRouter(t, {
    redisUrl: redis.url,
    prefix: uniquePrefix(),
    env: { ROUTER_MAX_RECIPIENTS: '3', ROUTER_MAX_PRESENCE_BATCH: '2', ROUTER_BODY_LIMIT_BYTES: '2048', ROUTER_MAX_USER_ID_LENGTH: '8', ROUTER_MAX_EVENT_LENGTH: '5' },
  })
  const call = api(strict.url, apiKeys[0])
  t.equal((await call.post('/v1/push', { to: ['a', 'b', 'c'], event: 'e' })).status, 200, 'at the limit')
  const tooMany = await call.post('/v1/push', { to: ['a', 'b', 'c', 'd'], event: 'e' })
  isError(t, tooMany, 400, 'invalid_request', 'four recipients')
  t.match(tooMany.body.error.message, /^to: /)
  t.equal((await call.post('/v1/presence/query', { userIds: ['a', 'b'] })).status, 200)
  const batch = await call.post('/v1/presence/query', { userIds: ['a', 'b', 'c'] })
  isError(t, batch, 400, 'invalid_request', 'three presence ids')
  t.match(batch.body.error.message, /^userIds: /)
  isError(t, await call.post('/v1/push', { to: ['a'], event: 'e', data: 'x'.repeat(2_100) }), 413, 'payload_too_large')
  const longId = await call.post('/v1/push', { to: ['a', '123456789'], event: 'e' })
  isError(t, longId, 400, 'invalid_request', 'a 9-character id')
  t.match(longId.body.error.message, /^to\.1: /)
  const longEvent = await call.post('/v1/push', { to: ['a'], event: 'sixsix' })
  isError(t, longEvent, 400, 'invalid_request', 'a 6-character event')
  t.match(longEvent.body.error.message, /^event: /)
  isError(t, await call.get('/v1/presence/123456789'), 400, 'invalid_request', 'a long id in the path')
})

t.test('regressions: an empty Content-Type and deeply nested data are 400, not 500', async (t) => {
  const { request } = await import('node:http')
  const raw = (body: string, headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${router.url}/v1/push`, { method: 'POST', headers: { authorization: `Bearer ${apiKeys[0]}`, ...headers } }, (res) => {
        let text = ''
        res.on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      })
      req.on('error', reject)
      req.end(body)
    })
  const empty = await raw('{"to":["a"],"event":"e"}', { 'content-type': '' })
  t.equal(empty.status, 400)
  t.equal(JSON.parse(empty.body).error.code, 'invalid_request')
  const deep = await raw(`{"to":["a"],"event":"e","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, { 'content-type': 'application/json' })
  t.equal(deep.status, 400)
  t.match(JSON.parse(deep.body).error, { code: 'invalid_request', message: /^data: / })
})

// Last: it takes this file's Redis away.
t.test('with Redis down, push and presence answer 503 registry_unavailable in bounded time', async (t) => {
  await redis.stop()
  t.teardown(() => redis.start())
  // A request makes a few store calls, each bounded by the command timeout.
  const BOUND_MS = 5 * REDIS_COMMAND_TIMEOUT_MS
  const timed = async (call: () => Promise<ApiResponse>) => {
    const started = Date.now()
    const res = await call()
    return { res, ms: Date.now() - started }
  }
  const push = await timed(() => authed.post('/v1/push', { to: ['u1'], event: 'e', data: 1 }))
  isError(t, push.res, 503, 'registry_unavailable', 'push')
  t.ok(push.ms < BOUND_MS, `push answered in ${push.ms} ms`)
  const presence = await timed(() => authed.get('/v1/presence/u1'))
  isError(t, presence.res, 503, 'registry_unavailable', 'presence')
  t.ok(presence.ms < BOUND_MS, `presence answered in ${presence.ms} ms`)
  const query = await timed(() => authed.post('/v1/presence/query', { userIds: ['u1'] }))
  isError(t, query.res, 503, 'registry_unavailable', 'presence query')
  t.ok(query.ms < BOUND_MS, `presence query answered in ${query.ms} ms`)

  const ready = await eventually(async () => {
    const r = await api(router.url).get('/readyz')
    return r.status === 503 ? r : undefined
  }, { timeoutMs: 5_000 })
  t.equal(ready.status, 503, 'readyz reports the registry down')
  t.equal((await api(router.url).get('/healthz')).status, 200, 'healthz: the process is up')

  await redis.start()
  const back = await eventually(async () => {
    const r = await authed.post('/v1/push', { to: ['u1'], event: 'e', data: 1 })
    return r.status === 200 ? r : undefined
  }, { timeoutMs: 10_000 })
  t.same(back.body.offline, ['u1'], 'push works again once Redis is back')
  await eventually(async () => (await api(router.url).get('/readyz')).status === 200, { timeoutMs: 10_000 })
  t.pass('readyz is 200 again')
})

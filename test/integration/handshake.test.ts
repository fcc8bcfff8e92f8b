// Websocket handshake: token checks answer 401 and Origin checks 403, with no upgrade.
import t from 'tap'
import { connectClient, expectRefusal, mintToken, withToken } from '../helpers/clients.js'
import { startEdge, testSecrets } from '../helpers/processes.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'

const redis = await startRedis(t)
const edge = await startEdge(t, {
  redisUrl: redis.url,
  prefix: uniquePrefix(),
  env: { EDGE_ALLOWED_ORIGINS: 'https://app.example,https://admin.example' },
})
const { jwtSecret } = testSecrets()
const refusal = (token: string | undefined, headers?: Record<string, string>) =>
  expectRefusal(withToken(edge.wsUrl, token), headers)
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const nowS = () => Math.floor(Date.now() / 1000)

t.test('a valid token without Origin is upgraded and welcomed', async (t) => {
  const client = await connectClient(edge.wsUrl, await mintToken(jwtSecret, 'hs-ok'), { t })
  t.match(await client.nextFrame(), { type: 'welcome', nodeId: edge.nodeId })
})

t.test('an allowed Origin is upgraded', async (t) => {
  for (const origin of ['https://app.example', 'https://admin.example']) {
    const client = await connectClient(edge.wsUrl, await mintToken(jwtSecret, 'hs-origin'), { t, origin })
    t.match(await client.nextFrame(), { type: 'welcome' }, origin)
  }
})

t.test('a disallowed Origin is refused with 403', async (t) => {
  const token = await mintToken(jwtSecret, 'hs-evil')
  t.equal(await refusal(token, { Origin: 'https://evil.example' }), 403)
  t.equal(await refusal(token, { Origin: 'https://app.example.evil.example' }), 403, 'no prefix matching')
  t.equal(await refusal(token, { Origin: 'http://app.example' }), 403, 'scheme matters')
})

t.test('no token is refused with 401', async (t) => {
  t.equal(await refusal(undefined), 401)
  t.equal(await refusal(''), 401, 'empty token')
})

t.test('a token signed with another secret is refused with 401', async (t) => {
  const forged = await mintToken('x'.repeat(64), 'hs-forged')
  t.equal(await refusal(forged), 401)
})

t.test('a token whose payload was altered after signing is refused with 401', async (t) => {
  const [header, , signature] = (await mintToken(jwtSecret, 'hs-user')).split('.')
  const altered = `${header}.${b64url({ sub: 'hs-admin', iat: nowS(), exp: nowS() + 3600 })}.${signature}`
  t.equal(await refusal(altered), 401)
})

t.test('an unsigned (alg none) token is refused with 401', async (t) => {
  const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'hs-none', exp: nowS() + 3600 })}.`
  t.equal(await refusal(unsigned), 401)
})

t.test('an expired token is refused with 401', async (t) => {
  const expired = await mintToken(jwtSecret, 'hs-expired', { expiresIn: nowS() - 3600 })
  t.equal(await refusal(expired), 401)
})

t.test('a token without exp is refused with 401', async (t) => {
  const forever = await mintToken(jwtSecret, 'hs-forever', { expiresIn: null })
  t.equal(await refusal(forever), 401)
})

t.test('a token without sub is refused with 401', async (t) => {
  const anonymous = await mintToken(jwtSecret, undefined)
  t.equal(await refusal(anonymous), 401)
})

t.test('a malformed token is refused with 401', async (t) => {
  for (const token of ['not-a-jwt', 'a.b.c', `${b64url({ alg: 'HS256' })}.not-base64!.xyz`]) {
    t.equal(await refusal(token), 401, token)
  }
})

t.test('the edge keeps serving after refusals', async (t) => {
  const client = await connectClient(edge.wsUrl, await mintToken(jwtSecret, 'hs-after'), { t })
  t.match(await client.nextFrame(), { type: 'welcome' })
  t.same(await client.ping(), { type: 'pong' })
})

t.test('with EDGE_MAX_HANDSHAKES_PER_IP_PER_S, an address over its rate gets 429; others do not', async (t) => {
  const limited = await startEdge(t, { redisUrl: redis.url, prefix: uniquePrefix(), env: { EDGE_MAX_HANDSHAKES_PER_IP_PER_S: '2' } })
  const token = await mintToken(testSecrets().jwtSecret, 'rate-limited')
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) {
    const status = await expectRefusal(withToken(limited.wsUrl, 'not-a-token'))
    statuses.push(status)
  }
  t.same(statuses, [401, 401, 401, 401, 429, 429], 'a burst of twice the rate, then 429')
  const { default: WebSocket } = await import('ws')
  const other = new WebSocket(withToken(limited.wsUrl, token), { localAddress: '127.0.0.2' })
  t.teardown(() => other.terminate())
  const first = await new Promise<{ type: string }>((resolve, reject) => {
    other.once('message', (data) => resolve(JSON.parse(String(data))))
    other.once('error', reject)
  })
  t.equal(first.type, 'welcome', 'another address connects')
})

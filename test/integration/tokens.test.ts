// Client tokens on a real edge configured with a JWKS URL (RS256/ES256 by kid), an
// audience and an issuer, and tokens offered as a Sec-WebSocket-Protocol value.
import { createServer } from 'node:http'
import t from 'tap'
import WebSocket from 'ws'
import { SignJWT, exportJWK, generateKeyPair, type KeyInput } from 'jose'
import { connectClient, expectRefusal, mintToken } from '../helpers/clients.js'
import { startEdge, testSecrets } from '../helpers/processes.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'

const rsa = await generateKeyPair('RS256', { extractable: true })
const ec = await generateKeyPair('ES256', { extractable: true })
const jwks = { keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' }, { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' }] }
let jwksRequests = 0
const server = createServer((_req, res) => {
  jwksRequests++
  res.setHeader('content-type', 'application/json').end(JSON.stringify(jwks))
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
t.teardown(() => server.close())
const { port } = server.address() as { port: number }

const redis = await startRedis(t)
const edge = await startEdge(t, {
  redisUrl: redis.url,
  prefix: uniquePrefix(),
  env: {
    EDGE_JWT_SECRET: undefined,
    EDGE_JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    EDGE_JWT_ISSUER: 'https://auth.example',
    EDGE_JWT_AUDIENCE: 'switchboard',
  },
})

const claims = { iss: 'https://auth.example', aud: 'switchboard' }
/** Every token this file signs, good or bad: none may ever show up in the edge's logs. */
const signedTokens: string[] = []
const sign = async (key: KeyInput, alg: string, kid: string | undefined, sub: string, extra: object = {}) => {
  const token = await new SignJWT({ ...claims, ...extra }).setProtectedHeader(kid ? { alg, kid } : { alg }).setSubject(sub).setExpirationTime('5m').sign(key)
  signedTokens.push(token)
  return token
}
const withToken = (token: string) => `${edge.wsUrl}?token=${token}`

t.test('tokens signed by JWKS keys are accepted, chosen by kid', async (t) => {
  t.ok(jwksRequests >= 1, 'the edge fetched the JWKS')
  for (const [key, alg, kid] of [[rsa.privateKey, 'RS256', 'rsa-1'], [ec.privateKey, 'ES256', 'ec-1']] as const) {
    const client = await connectClient(edge.wsUrl, await sign(key, alg, kid, `jwks-${alg}`), { t })
    t.match(await client.nextFrame(), { type: 'welcome' }, alg)
  }
})

t.test('everything else is refused with 401 before the upgrade', async (t) => {
  const refused: Record<string, string> = {
    'unknown kid': await sign(rsa.privateKey, 'RS256', 'rsa-9', 'u'),
    'kid of another key type': await sign(ec.privateKey, 'ES256', 'rsa-1', 'u'),
    'another audience': await sign(rsa.privateKey, 'RS256', 'rsa-1', 'u', { aud: 'billing' }),
    'another issuer': await sign(rsa.privateKey, 'RS256', 'rsa-1', 'u', { iss: 'https://evil.example' }),
    'HS256 (no secret configured)': await mintToken(testSecrets().jwtSecret, 'u'),
  }
  for (const [name, token] of Object.entries(refused)) t.equal(await expectRefusal(withToken(token)), 401, name)
})

t.test('a token offered as a subprotocol works and is not echoed back', async (t) => {
  const token = await sign(rsa.privateKey, 'RS256', 'rsa-1', 'via-protocol')
  const ws = new WebSocket(edge.wsUrl, ['switchboard.v1', `bearer.${token}`])
  t.teardown(() => ws.terminate())
  const frame = await new Promise<{ type: string }>((resolve, reject) => {
    ws.once('message', (data) => resolve(JSON.parse(String(data))))
    ws.once('error', reject)
  })
  t.equal(frame.type, 'welcome')
  t.equal(ws.protocol, 'switchboard.v1')
})

t.test('no token, accepted or refused, appears in the edge logs', async (t) => {
  t.equal(signedTokens.length, 7, 'every token signed above')
  const logs = edge.logs().join('\n')
  t.ok(logs.includes('edge listening'), 'the logs were captured')
  for (const token of signedTokens) t.notOk(logs.includes(token.split('.')[2]!), 'signature absent')
})

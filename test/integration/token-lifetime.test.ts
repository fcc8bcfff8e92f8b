// Token lifetime on live connections, on real edges, a router and Redis: a connection closes
// with 4002 when its token expires, a refresh frame keeps it (same connId) past the old expiry,
// and a revocation closes every socket of the user with 4503 and refuses every older token at
// the handshake's registration and at a refresh, over HTTP, the pipeline and the backend client.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { CloseCode } from '@switchboard/protocol'
import { SwitchboardBackend } from '@switchboard/backend'
import { Switchboard, type StateChange, type WebSocketFactory } from '@switchboard/client'
import { connectClient, eventually, mintToken, type Client } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const { jwtSecret, apiKeys } = testSecrets()
const TOLERANCE_S = 1
const MAX_LIFETIME_S = 3_600
const cluster = await startCluster(t, {
  edges: 2,
  edgeEnv: { EDGE_JWT_CLOCK_TOLERANCE_S: String(TOLERANCE_S), TOKEN_MAX_LIFETIME_S: String(MAX_LIFETIME_S) },
  routerEnv: { TOKEN_MAX_LIFETIME_S: String(MAX_LIFETIME_S) },
})
const [a, b] = cluster.edges as [Edge, Edge]
/** How late a close may come after its deadline on 2 shared cores: the edge's timer is armed for the exact ms. */
const LATE_MS = 1_000
const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`
const nowS = () => Date.now() / 1_000

/** A token valid `lifeS` from now (exp in whole seconds, as most issuers write it). */
const tokenFor = (userId: string, lifeS: number, claims: Record<string, unknown> = {}) => mintToken(jwtSecret, userId, { expiresIn: Math.ceil(nowS()) + lifeS, claims })

async function welcomed(t: Test, edge: Edge, token: string): Promise<{ client: Client; connId: string }> {
  const client = await connectClient(edge.wsUrl, token, { t })
  const welcome = await client.nextFrame()
  t.equal(welcome.type, 'welcome')
  return { client, connId: welcome.connId as string }
}

t.test('a connection closes with 4002 at its token\'s exp + tolerance, and its user goes offline', async (t) => {
  const u = unique('exp')
  const exp = Math.ceil(nowS()) + 2
  const { client } = await welcomed(t, a, await mintToken(jwtSecret, u, { expiresIn: exp }))
  const { code } = await client.closed
  const closedAt = Date.now()
  t.equal(code, CloseCode.tokenExpired)
  const deadline = (exp + TOLERANCE_S) * 1_000
  t.ok(closedAt >= deadline - 50, `not before exp + tolerance (${closedAt - deadline} ms)`)
  t.ok(closedAt <= deadline + LATE_MS, `within ${LATE_MS} ms of it (${closedAt - deadline} ms)`)
  const res = await cluster.api.post('/v1/push', { to: [u], event: 'after.expiry' })
  t.same(res.body.offline, [u])
})

t.test('a refresh keeps the socket and its connId past the old expiry; bad ones get an error frame or a close', async (t) => {
  const u = unique('refresh')
  const bad = await welcomed(t, a, await tokenFor(u, 600))
  bad.client.ws.send(JSON.stringify({ type: 'refresh', token: 'not.a.token' }))
  t.match(await bad.client.nextFrame(), { type: 'error', code: 'invalid_token' })
  bad.client.ws.send(JSON.stringify({ type: 'refresh', token: await tokenFor(`${u}-other`, 600) }))
  t.equal((await bad.client.closed).code, CloseCode.protocolViolation, "another user's token closes the socket (1008)")

  const kept = await welcomed(t, a, await tokenFor(u, 2, { rooms: ['before'] }))
  // A socket with the same expiry and no refresh: its close marks the old deadline, no sleep needed.
  const witness = await welcomed(t, b, await tokenFor(u, 2))
  kept.client.ws.send(JSON.stringify({ type: 'refresh', token: await tokenFor(u, 600, { rooms: ['after'] }) }))
  const refreshed = await kept.client.nextFrame()
  t.equal(refreshed.type, 'refreshed')
  t.ok((refreshed.exp as number) >= nowS() + 590, 'the new exp')
  t.equal((await witness.client.closed).code, CloseCode.tokenExpired, 'the old deadline passed')
  const push = await cluster.api.post('/v1/push', { to: [u], event: 'after.refresh', data: 1 })
  t.same(push.body.delivered, [u])
  t.match(await kept.client.nextFrame(), { type: 'push', event: 'after.refresh' })
  const presence = await cluster.api.get(`/v1/presence/${u}`)
  t.same(presence.body.connections.map((c: { connId: string }) => c.connId), [kept.connId], 'the same connection: no new registration')
  // The rooms claim followed the refresh: in "after", no longer in "before".
  const inAfter = await cluster.api.post('/v1/push', { room: 'after', event: 'room.after' })
  const inBefore = await cluster.api.post('/v1/push', { room: 'before', event: 'room.before' })
  t.equal(inAfter.body.reached, 1)
  t.equal(inBefore.body.reached, 0)
  t.match(await kept.client.nextFrame(), { type: 'push', event: 'room.after' })
})

t.test('a token valid longer than TOKEN_MAX_LIFETIME_S is refused at the handshake, saying so', async (t) => {
  const client = await connectClient(a.wsUrl, await tokenFor(unique('long'), MAX_LIFETIME_S + 60), { t }).catch((err: Error) => err)
  t.match(String(client), /401/)
})

t.test('revocation: every socket closes with 4503; older tokens are refused at the handshake and at a refresh, newer ones work', async (t) => {
  const u = unique('revoke')
  const oldToken = await tokenFor(u, 600)
  const onA = await welcomed(t, a, oldToken)
  const onB = await welcomed(t, b, oldToken)
  const res = await cluster.api.post(`/v1/users/${u}/revoke`, { reason: 'signed out everywhere' })
  t.equal(res.status, 200)
  t.equal(res.body.userId, u)
  t.equal(res.body.closed, 2)
  t.ok(Math.abs(res.body.revokedBefore - Date.now()) < 5_000, 'the cutoff is now')
  for (const s of [onA, onB]) t.same(await s.client.closed, { code: CloseCode.revoked, reason: 'signed out everywhere' })
  await eventually(async () => (await cluster.api.get(`/v1/presence/${u}`)).body.online === false)

  // The old token still verifies, so the upgrade happens; its registration is refused in the same script.
  const again = await connectClient(a.wsUrl, oldToken, { t })
  t.equal((await again.closed).code, CloseCode.revoked, 'the old token: closed 4503 before any welcome')
  const noIat = await connectClient(b.wsUrl, await mintToken(jwtSecret, u, { expiresIn: '5m', issuedAt: null }), { t })
  t.equal((await noIat.closed).code, CloseCode.revoked, 'a token without iat while a revocation is in force')

  const fresh = await welcomed(t, a, await tokenFor(u, 600))
  const push = await cluster.api.post('/v1/push', { to: [u], event: 'after.revoke' })
  t.same(push.body.delivered, [u], 'a token minted after the revocation connects')
  t.match(await fresh.client.nextFrame(), { type: 'push', event: 'after.revoke' })
  fresh.client.ws.send(JSON.stringify({ type: 'refresh', token: oldToken }))
  t.equal((await fresh.client.closed).code, CloseCode.revoked, 'refreshing with a revoked token closes the socket')
})

t.test('revocation over the pipeline and the backend client, and bad requests', async (t) => {
  const backend = new SwitchboardBackend({ url: cluster.router.url, apiKey: apiKeys[0] })
  t.teardown(() => backend.close())
  await backend.connect()
  const u = unique('pipe')
  const s = await welcomed(t, b, await tokenFor(u, 600))
  const answer = await backend.revoke(u, { reason: 'banned' })
  t.equal(answer.closed, 1)
  t.equal((await s.client.closed).code, CloseCode.revoked)
  t.equal(backend.state, 'connected', 'it went over the pipeline')
  const bad = await cluster.api.post(`/v1/users/${u}/revoke`, { reason: 'x'.repeat(10_000) })
  t.equal(bad.status, 400)
  t.equal(bad.body.error.code, 'invalid_request')
  t.equal((await cluster.api.post(`/v1/users/${'u'.repeat(300)}/revoke`, {})).body.error.code, 'invalid_request')
  t.equal((await cluster.api.get(`/v1/users/${u}/revoke`)).status, 404)
  const noBody = await cluster.api.post(`/v1/users/${unique('nobody')}/revoke`, undefined)
  t.equal(noBody.status, 200, 'the body is optional')
  t.equal(noBody.body.closed, 0)
})

t.test('the SDK refreshes before exp by itself (same connId), and after a 4002 reconnects at once', async (t) => {
  const u = unique('sdk')
  let issued = 0
  let stale = false
  const sb = new Switchboard({
    url: a.wsUrl,
    WebSocket: WebSocket as unknown as WebSocketFactory,
    getToken: async () => {
      issued++
      return stale ? (staleToken ??= await tokenFor(u, 3)) : tokenFor(u, 3)
    },
  })
  let staleToken: string | undefined
  const states: StateChange[] = []
  sb.on('state', (s) => states.push(s))
  t.teardown(() => sb.close())
  sb.connect()
  const refreshes = () => states.filter((s) => s.state === 'connected' && s.token === 'refreshed')
  const connects = () => states.filter((s) => s.state === 'connected' && s.token === undefined)
  await eventually(() => refreshes().length >= 2, { timeoutMs: 15_000 })
  t.equal(connects().length, 1, 'two refreshes, one connection')
  const res = await cluster.api.post('/v1/push', { to: [u], event: 'e' })
  t.same(res.body.delivered, [u])
  // From now on getToken returns a token that is no newer: refreshes fail, the edge closes 4002,
  // and the SDK reconnects at once, with a fresh token again.
  stale = true
  sb.on('state', (s) => {
    if (s.state === 'disconnected') stale = false
  })
  const dropped = await eventually(() => states.find((s) => s.state === 'disconnected'), { timeoutMs: 15_000 })
  t.ok(states.some((s) => s.state === 'connected' && s.token === 'refresh_failed'), 'the failed refreshes were told')
  t.match(dropped, { code: CloseCode.tokenExpired, willRetry: true, delayMs: 0 })
  await eventually(() => connects().length === 2)
  t.ok(issued >= 4)
})

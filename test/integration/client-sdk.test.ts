// The client SDK (built package, on Node with the ws library) against real edges behind a
// load balancer: connect, receive, an edge's drain moves it to the other edge, a token refused
// at the handshake is replaced, and the disconnect API ends it for good.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { Switchboard, type StateChange, type WebSocketFactory } from '@switchboard/client'
import { eventually, mintToken } from '../helpers/clients.js'
import { sdkClient } from '../helpers/sdk.js'
import { startBalancer } from '../helpers/balancer.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const cluster = await startCluster(t, { edges: 2, edgeEnv: { EDGE_DRAIN_MS: '200' } })
const live = new Set<Edge>(cluster.edges)
const balancer = await startBalancer(t, () => [...live].filter((e) => e.isRunning()).map((e) => e.port))
const { jwtSecret } = testSecrets()

/** The SDK behind the balancer; `pushes`: the data of its `greeting` pushes. */
function client(t: Test, userId: string, getToken?: () => Promise<string>) {
  const c = sdkClient(t, { url: balancer.url, getToken: getToken ?? (() => mintToken(jwtSecret, userId)) })
  const pushes: unknown[] = []
  c.sb.on('greeting', (data) => pushes.push(data))
  return { ...c, pushes }
}
const connected = (states: StateChange[]) => states.filter((s): s is Extract<StateChange, { state: 'connected' }> => s.state === 'connected')

t.test('connects, receives pushes by event name, and follows an edge\'s drain to the other edge', async (t) => {
  const u = `sdk-${randomBytes(3).toString('hex')}`
  const { states, pushes } = client(t, u)
  await eventually(() => connected(states).length === 1)
  const first = connected(states)[0]!
  const res = await cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n: 1 } })
  t.same(res.body.delivered, [u])
  await eventually(() => pushes.length === 1)
  t.same(pushes, [{ n: 1 }])

  const drained = cluster.edges.find((e) => e.nodeId === first.nodeId)!
  live.delete(drained)
  drained.kill('SIGTERM')
  await eventually(() => connected(states).length === 2, { timeoutMs: 10_000 })
  t.match(states.find((s) => s.state === 'disconnected'), { code: 1001, willRetry: true }, 'the drain closed it with 1001, and it retried')
  t.ok((states.find((s) => s.state === 'disconnected') as { delayMs: number }).delayMs <= 2_000, 'after a short delay')
  t.not(connected(states)[1]!.nodeId, first.nodeId, 'now on the other edge')
  await cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n: 2 } })
  await eventually(() => pushes.length === 2)
  t.same(pushes, [{ n: 1 }, { n: 2 }])
})

t.test('a token refused at the handshake is replaced by the next getToken()', async (t) => {
  const u = `sdk-exp-${randomBytes(3).toString('hex')}`
  let calls = 0
  const { states } = client(t, u, async () => (++calls === 1 ? mintToken(jwtSecret, u, { expiresIn: Math.floor(Date.now() / 1000) - 60 }) : mintToken(jwtSecret, u)))
  await eventually(() => connected(states).length === 1, { timeoutMs: 10_000 })
  t.equal(calls, 2, 'an expired token first, refused; a fresh one on the retry')
  t.match(states.find((s) => s.state === 'disconnected'), { willRetry: true })
})

t.test('the disconnect API (4500) ends the connection for good', async (t) => {
  const u = `sdk-bye-${randomBytes(3).toString('hex')}`
  const { sb, states } = client(t, u)
  await eventually(() => connected(states).length === 1)
  await cluster.api.post('/v1/disconnect', { userId: u, reason: 'signed out' })
  await eventually(() => sb.state === 'disconnected')
  t.same(states.at(-1), { state: 'disconnected', code: 4500, reason: 'signed out', willRetry: false })
  const presence = await cluster.api.get(`/v1/presence/${u}`)
  t.equal(presence.body.online, false, 'and it did not come back')
})

t.test('close() while the socket is still connecting (ws emits an error then) neither throws nor crashes', async (t) => {
  // A server that accepts the TCP connection and never answers the upgrade.
  const { createServer } = await import('node:net')
  const held: import('node:net').Socket[] = []
  const silent = createServer((s) => void held.push(s))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => (held.forEach((s) => s.destroy()), silent.close()))
  const sb = new Switchboard({ url: `ws://127.0.0.1:${(silent.address() as { port: number }).port}`, getToken: () => 'token', WebSocket: WebSocket as unknown as WebSocketFactory })
  sb.connect()
  await eventually(() => held.length === 1)
  sb.close()
  await new Promise((r) => setTimeout(r, 50)) // the error event fires on the next ticks
  t.equal(sb.state, 'disconnected', 'closed, and the process is still here')
})

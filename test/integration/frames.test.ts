// Client websocket protocol v1 on a real edge: welcome, ping/pong, protocol violations
// (1008), frame size limit (1009), backpressure (4008) and the frame rate (4009).
import type { Socket } from 'node:net'
import t from 'tap'
import { connectUser, eventually, type Client, type CloseInfo } from '../helpers/clients.js'
import { startCluster, testSecrets } from '../helpers/processes.js'

const MAX_FRAME_BYTES = 1_024
const cluster = await startCluster(t, {
  edges: 0,
  edgeEnv: { EDGE_MAX_FRAME_BYTES: String(MAX_FRAME_BYTES), EDGE_MAX_BACKPRESSURE_BYTES: String(64 * 1024) },
})
const NODE_ID = 'frames-edge-1'
const edge = await cluster.addEdge(t, { nodeId: NODE_ID })
const { jwtSecret } = testSecrets()

/** A valid ping padded with JSON whitespace to exactly `bytes` bytes. */
const paddedPing = (bytes: number) => {
  const ping = '{"type":"ping"}'
  return ping.slice(0, -1) + ' '.repeat(bytes - ping.length) + '}'
}

/** Resolves with the close the client saw, or rejects if the edge keeps the socket open. */
function closeOf(client: Client, timeoutMs = 3_000): Promise<CloseInfo> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs)
    void client.closed.then((info) => {
      clearTimeout(timer)
      resolve(info)
    })
  })
}

t.test('the first frame is a welcome with the connection id and EDGE_NODE_ID', async (t) => {
  const a = await connectUser(t, edge.wsUrl, jwtSecret, 'f-welcome')
  const b = await connectUser(t, edge.wsUrl, jwtSecret, 'f-welcome')
  t.same(Object.keys(a.welcome).sort(), ['connId', 'nodeId', 'type'])
  t.equal(a.welcome.type, 'welcome')
  t.equal(a.welcome.nodeId, NODE_ID)
  t.equal(edge.nodeId, NODE_ID, 'the edge logs the same node id')
  t.ok(a.welcome.connId.length > 0, 'connId is not empty')
  t.not(a.welcome.connId, b.welcome.connId, 'each connection gets its own id')
})

t.test('each ping is answered by a pong, in order', async (t) => {
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'f-ping')
  for (let i = 0; i < 3; i++) client.send('{"type":"ping"}')
  for (let i = 0; i < 3; i++) t.same(await client.nextFrame(), { type: 'pong' }, `pong ${i + 1}`)
  t.equal(client.isClosed(), false)
})

t.test('a frame of exactly the size limit is accepted', async (t) => {
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'f-limit')
  const frame = paddedPing(MAX_FRAME_BYTES)
  t.equal(Buffer.byteLength(frame), MAX_FRAME_BYTES)
  client.send(frame)
  t.same(await client.nextFrame(), { type: 'pong' })
})

t.test('a frame above the size limit closes the socket with 1009', async (t) => {
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'f-big')
  client.send(paddedPing(MAX_FRAME_BYTES + 1)) // valid JSON: only its size is wrong
  t.equal((await closeOf(client)).code, 1009)
})

const violations: [string, string | Buffer][] = [
  ['invalid JSON', '{"type":"ping"'],
  ['plain text', 'hello'],
  ['a JSON number', '42'],
  ['JSON null', 'null'],
  ['a JSON string', '"ping"'],
  ['a JSON array', '[{"type":"ping"}]'],
  ['an object without type', '{}'],
  ['an unknown type', '{"type":"subscribe","channel":"all"}'],
  ['a server frame type', '{"type":"pong"}'],
  ['a binary frame', Buffer.from('{"type":"ping"}')],
]
for (const [label, payload] of violations) {
  t.test(`${label} closes the socket with 1008`, async (t) => {
    const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'f-bad')
    client.send(payload)
    t.equal((await closeOf(client)).code, 1008)
  })
}

t.test('a violation closes only the offending socket', async (t) => {
  const bad = await connectUser(t, edge.wsUrl, jwtSecret, 'f-peer')
  const good = await connectUser(t, edge.wsUrl, jwtSecret, 'f-peer')
  bad.client.send('nope')
  t.equal((await closeOf(bad.client)).code, 1008)
  t.same(await good.client.ping(), { type: 'pong' })
  const res = await eventually(async () => {
    const r = await cluster.api.get('/v1/presence/f-peer')
    return r.body?.connections?.length === 1 ? r : undefined
  }, { timeoutMs: 2_000 })
  t.match(res.body.connections, [{ connId: good.welcome.connId }], 'the closed socket left presence')
})

t.test('a client too slow to read is closed with 4008 and not reported delivered', async (t) => {
  const slow = await connectUser(t, edge.wsUrl, jwtSecret, 'f-slow')
  // Stop reading: the kernel buffers fill, then the edge's send buffer passes EDGE_MAX_BACKPRESSURE_BYTES.
  const socket = (slow.client.ws as unknown as { _socket: Socket })._socket
  socket.pause()
  const data = 'x'.repeat(900_000)
  let lastDelivered: string[] = ['f-slow']
  let pushes = 0
  while (lastDelivered.includes('f-slow') && pushes < 80) {
    const res = await cluster.api.post('/v1/push', { to: ['f-slow'], event: 'bulk', data })
    t.equal(res.status, 200, `push ${pushes + 1}`)
    lastDelivered = res.body.delivered as string[]
    pushes++
  }
  t.notOk(lastDelivered.includes('f-slow'), `after ${pushes} pushes the edge stopped reporting the slow socket delivered`)
  socket.resume()
  const close = await closeOf(slow.client, 20_000)
  t.equal(close.code, 4008)
})

t.test('a client sending frames faster than EDGE_MAX_FRAMES_PER_S is closed with 4009 (rate limited, not 4008 too slow)', async (t) => {
  const calm = await connectUser(t, edge.wsUrl, jwtSecret, 'f-calm')
  const flooder = await connectUser(t, edge.wsUrl, jwtSecret, 'f-flood')
  for (let i = 0; i < 50; i++) flooder.client.send({ type: 'ping' })
  t.equal((await closeOf(flooder.client)).code, 4009)
  t.same(await calm.client.ping(), { type: 'pong' }, 'another socket is unaffected')
})

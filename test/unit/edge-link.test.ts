// The router's link to edges against a fake edge (a `ws` server speaking the link protocol):
// pipelining, one frame per edge per turn, timeouts on a link that stops answering, an edge
// that goes away, and a refused upgrade. Timing bounds derive from TIMEOUT_MS.
import { once } from 'node:events'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { decodeDeliveries, decodeLinkCall, encodeLinkAnswer } from '@switchboard/protocol'
import { EDGE_CIRCUIT, LinkEdgeClient, MAX_LINK_BACKLOG_BYTES } from '@switchboard/router'
import { eventually } from '../helpers/eventually.js'

const TOKEN = 'internal-token-0123456789'
const TIMEOUT_MS = 400

interface FakeEdge {
  url: string
  frames: string[]
  sockets: WebSocket[]
  /** When false, calls are read but never answered (a stuck edge or a half-open link). */
  answering: boolean
}

async function fakeEdge(t: Test, opts: { refuse?: number } = {}): Promise<FakeEdge> {
  const wss = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    verifyClient: (info, done) => (opts.refuse ? done(false, opts.refuse) : done(info.req.headers.authorization === `Bearer ${TOKEN}`, 401)),
  })
  await once(wss, 'listening')
  t.teardown(() => {
    for (const ws of wss.clients) ws.terminate()
    wss.close()
  })
  const edge: FakeEdge = { url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, frames: [], sockets: [], answering: true }
  wss.on('connection', (ws) => {
    edge.sockets.push(ws)
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8')
      edge.frames.push(text)
      const call = decodeLinkCall(text)!
      if (!edge.answering) return
      if (call.op === 'deliveries') {
        const results = decodeDeliveries(call.payload)!.map((d) => ({ delivered: d.to.filter((u) => u.startsWith('on')), missing: d.to.filter((u) => !u.startsWith('on')) }))
        ws.send(encodeLinkAnswer(call.callId, 200, JSON.stringify({ results })))
      } else if (call.op === 'broadcast') ws.send(encodeLinkAnswer(call.callId, 200, '{"connections":3}'))
      else if (call.op === 'room-members') ws.send(encodeLinkAnswer(call.callId, 200, '{"users":"not a list"}'))
      else ws.send(encodeLinkAnswer(call.callId, 400, '{"error":{"code":"invalid_request","message":"malformed internal request"}}'))
    })
  })
  return edge
}

function client(t: Test) {
  const c = new LinkEdgeClient({ internalToken: TOKEN, timeoutMs: TIMEOUT_MS, pingEveryMs: 60_000 })
  t.teardown(() => c.close())
  return c
}

const frame = (n: number) => JSON.stringify({ type: 'push', id: `m${n}`, event: 'e', data: n, ts: 0 })

t.test('pushes for one edge in one turn go as one call; each gets its own answer', async (t) => {
  const edge = await fakeEdge(t)
  const c = client(t)
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.deliver(edge.url, frame(i), [`on-${i}`, `off-${i}`], `req-${i}`)))
  answers.forEach((a, i) => t.same(a, { delivered: [`on-${i}`], missing: [`off-${i}`] }, `push ${i}`))
  t.equal(edge.frames.length, 1, 'one frame')
  t.equal(decodeLinkCall(edge.frames[0]!)!.requestIds, Array.from({ length: 50 }, (_, i) => `req-${i}`).join(','), 'every request id, in order')
  t.same(await c.broadcast(edge.url, frame(0), 'b'), { connections: 3 }, 'another call on the same link')
  t.equal(edge.sockets.length, 1, 'one connection for all of it')
  await t.rejects(c.disconnect(edge.url, { userId: 'x' }), { code: 'edge_error', message: /edge answered 400/ }, 'a non-200 answer rejects that call')
  await t.rejects(c.roomMembers(edge.url, { room: 'r', generation: 'g' }), { code: 'bad_answer' }, 'an answer not of the op\'s shape rejects that call')
  await c.close()
  t.throws(() => c.broadcast(edge.url, frame(0)), { code: 'closed' }, 'a closed client calls no edge')
})

t.test('routed pushes for one edge in one turn go as one unanswered call, settled once queued', async (t) => {
  const edge = await fakeEdge(t)
  edge.answering = false // it would answer nothing anyway: the routed op has no answer
  const c = client(t)
  const started = Date.now()
  await Promise.all(Array.from({ length: 20 }, (_, i) => c.route(edge.url, frame(i), [`on-${i}`], `req-${i}`, i === 0 ? [{ epoch: 'e0', offset: 4 }] : undefined)))
  t.ok(Date.now() - started < TIMEOUT_MS / 2, 'settled without waiting for an answer (none comes)')
  await eventually(() => edge.frames.length === 1 || undefined)
  const call = decodeLinkCall(edge.frames[0]!)!
  t.equal(call.op, 'deliveries-routed')
  t.equal(call.requestIds, Array.from({ length: 20 }, (_, i) => `req-${i}`).join(','), 'every request id, in order')
  const deliveries = decodeDeliveries(call.payload)!
  t.equal(deliveries.length, 20, 'one delivery per push, encoded as deliveries')
  t.same(deliveries[0]!.at, [{ epoch: 'e0', offset: 4 }], 'a kept push carries its positions')
  // Nothing waits on the link: a routed push leaves no call behind to time out and drop the link.
  await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS + 100))
  t.equal(edge.sockets[0]!.readyState, edge.sockets[0]!.OPEN, 'the link is still open past the timeout')
  await c.route(edge.url, frame(99), ['on-x'])
  t.equal(edge.sockets.length, 1, 'on the same link')
})

t.test('a routed push to an edge that cannot be reached fails within the timeout; then the circuit skips it', async (t) => {
  const c = client(t)
  const started = Date.now()
  await t.rejects(c.route('http://127.0.0.1:1', frame(1), ['on-a']), { code: 'link_down' })
  t.ok(Date.now() - started <= TIMEOUT_MS + 100, 'no hang')
  for (let i = 0; i < 2; i++) await c.route('http://127.0.0.1:1', frame(i), ['on-a']).catch(() => undefined)
  await t.rejects(c.route('http://127.0.0.1:1', frame(9), ['on-a']), { code: 'circuit_open' })
  const silent = net.createServer(() => undefined) // accepts, never upgrades: a stopped edge
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => silent.close())
  const at = Date.now()
  await t.rejects(c.route(`http://127.0.0.1:${(silent.address() as AddressInfo).port}`, frame(2), ['on-a']), { code: /timeout|link_down/ })
  const elapsed = Date.now() - at
  t.ok(elapsed >= TIMEOUT_MS - 20 && elapsed < TIMEOUT_MS + 300, `a link that does not open fails it after ${elapsed} ms (timeout ${TIMEOUT_MS})`)
})

t.test('a routed push to an edge that does not read fails (backpressure) once the link\'s backlog is full', async (t) => {
  const edge = await fakeEdge(t)
  const c = client(t)
  await c.route(edge.url, frame(0), ['on-a'])
  await eventually(() => edge.sockets[0])
  ;(edge.sockets[0] as unknown as { _socket: net.Socket })._socket.pause() // the edge stops reading
  const big = JSON.stringify({ type: 'push', id: 'big', event: 'e', data: 'x'.repeat(1 << 20), ts: 0 })
  const limit = Math.ceil((MAX_LINK_BACKLOG_BYTES + (64 << 20)) / big.length) // the backlog bound, and room for the kernel's buffers
  let handed = 0
  let error: unknown
  while (handed < limit && !error) await c.route(edge.url, big, ['on-a']).then(() => handed++, (err: unknown) => (error = err))
  t.match(error, { code: 'backpressure', message: /backlog past/ }, `refused after ${handed} frames of 1 MiB`)
  t.ok(handed * big.length >= MAX_LINK_BACKLOG_BYTES, 'not before the backlog bound')
})

t.test('an edge that stops answering: calls fail within the timeout, the link is dropped and reopened', async (t) => {
  const edge = await fakeEdge(t)
  const c = client(t)
  await c.deliver(edge.url, frame(1), ['on-a'])
  edge.answering = false
  const started = Date.now()
  const closed = once(edge.sockets[0]!, 'close')
  await t.rejects(c.deliver(edge.url, frame(2), ['on-a']), { code: 'timeout', message: /did not answer within/ })
  const elapsed = Date.now() - started
  t.ok(elapsed >= TIMEOUT_MS - 20 && elapsed < TIMEOUT_MS + 300, `failed after ${elapsed} ms (timeout ${TIMEOUT_MS})`)
  await closed
  t.pass('the stuck link was closed')
  edge.answering = true
  const skippedAt = Date.now()
  await t.rejects(c.deliver(edge.url, frame(3), ['on-a']), { code: 'circuit_open' }, 'the edge is skipped at once for a cooldown (circuit)')
  t.ok(Date.now() - skippedAt < TIMEOUT_MS / 2, 'skipped, not waited on')
  // After the cooldown one probe goes through, on a new connection.
  const answer = await eventually(() => c.deliver(edge.url, frame(4), ['on-a']), { timeoutMs: EDGE_CIRCUIT.maxCooldownMs + TIMEOUT_MS })
  t.same(answer, { delivered: ['on-a'], missing: [] }, 'the probe reconnects')
  t.equal(edge.sockets.length, 2)
})

t.test('an edge that goes away fails its calls at once, not after the timeout', async (t) => {
  const edge = await fakeEdge(t)
  const c = client(t)
  await c.deliver(edge.url, frame(1), ['on-a'])
  edge.answering = false
  const onWire = once(edge.sockets[0]!, 'message')
  const pending = c.deliver(edge.url, frame(2), ['on-a'])
  await onWire
  const started = Date.now()
  edge.sockets[0]!.terminate()
  await t.rejects(pending, { code: 'link_down', message: /link closed|link failed/ })
  t.ok(Date.now() - started < TIMEOUT_MS / 2, `failed ${Date.now() - started} ms after the edge left`)
})

t.test('a refused link and an unreachable edge fail the call within the timeout', async (t) => {
  const edge = await fakeEdge(t, { refuse: 401 })
  const c = client(t)
  await t.rejects(c.deliver(edge.url, frame(1), ['on-a']), { code: 'refused', message: /refused the link: 401/ })
  const started = Date.now()
  await t.rejects(c.deliver('http://127.0.0.1:1', frame(1), ['on-a']), { code: 'link_down', message: /link failed|link closed/ })
  t.ok(Date.now() - started <= TIMEOUT_MS + 100, 'no hang')
})

t.test('after repeated failures an edge is skipped at once (circuit)', async (t) => {
  const c = client(t)
  for (let i = 0; i < 3; i++) await c.deliver('http://127.0.0.1:1', frame(i), ['on-a']).catch(() => undefined)
  const started = Date.now()
  await t.rejects(c.deliver('http://127.0.0.1:1', frame(9), ['on-a']), { code: 'circuit_open', message: /skipped/ })
  t.ok(Date.now() - started < TIMEOUT_MS / 2, 'skipped, not waited on')
})

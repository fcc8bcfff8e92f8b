// The router's link to edges against a fake edge (a `ws` server speaking the link protocol):
// pipelining, one frame per edge per turn, timeouts on a link that stops answering, an edge
// that goes away, and a refused upgrade. Timing bounds derive from TIMEOUT_MS.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { decodeDeliveries, decodeLinkCall, encodeLinkAnswer } from '@switchboard/protocol'
import { EDGE_CIRCUIT, LinkEdgeClient } from '@switchboard/router'
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

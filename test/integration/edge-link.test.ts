// The router -> edge link, edge side: one websocket on the internal port carrying pipelined
// internal calls, against a real edge and Redis with a `ws` client playing the router.
import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import {
  LINK_PATH,
  decodeLinkAnswer,
  encodeDeliveries,
  encodeLinkCall,
  pushFrame,
  type LinkAnswer,
  type LinkOp,
} from '@switchboard/protocol'
import { api, connectUser, eventually, expectRefusal } from '../helpers/clients.js'
import { startEdge, testSecrets } from '../helpers/processes.js'
import { startRedis, uniquePrefix, type TestScope } from '../helpers/redis.js'

const { jwtSecret, internalToken, apiKeys } = testSecrets()
const redis = await startRedis(t)
// Debug: the edge's 'internal call' lines show each call's route and request ids.
const edge = await startEdge(t, { redisUrl: redis.url, prefix: uniquePrefix(), env: { LOG_LEVEL: 'debug' } })
const linkUrl = `ws://127.0.0.1:${edge.internalPort}${LINK_PATH}`
const edgeApi = api(edge.internalUrl)
const MALFORMED = JSON.stringify({ error: { code: 'invalid_request', message: 'malformed internal request' } })

interface Link {
  /** Sends a call and resolves with its answer (matched by callId). */
  call(op: LinkOp, payload: string, requestIds?: string): Promise<LinkAnswer>
  /** Sends a frame as is (binary for a Buffer, text for a string). */
  sendRaw(data: Buffer | string): void
  readonly closed: Promise<{ code: number; reason: string }>
  /** Frames that were not a binary answer to a pending call. */
  readonly strays: string[]
}

async function openLink(t: TestScope): Promise<Link> {
  const ws = new WebSocket(linkUrl, { headers: { authorization: `Bearer ${internalToken}` } })
  const pending = new Map<number, { resolve: (a: LinkAnswer) => void; reject: (e: Error) => void }>()
  const strays: string[] = []
  let nextCallId = 1
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      for (const p of pending.values()) p.reject(new Error(`link closed (${code}) before the answer`))
      pending.clear()
      resolve({ code, reason: reason.toString('utf8') })
    })
  })
  ws.on('message', (data, isBinary) => {
    const text = Buffer.from(data as Buffer).toString('utf8')
    const answer = decodeLinkAnswer(text)
    const waiter = answer && isBinary ? pending.get(answer.callId) : undefined
    if (!answer || !waiter) return void strays.push(`${isBinary ? 'binary' : 'text'}: ${text.slice(0, 200)}`)
    pending.delete(answer.callId)
    waiter.resolve(answer)
  })
  ws.on('error', () => undefined) // surfaces as the close code
  await once(ws, 'open')
  t.teardown(async () => {
    if (ws.readyState === WebSocket.OPEN) ws.close()
    await closed
  })
  return {
    call: (op, payload, requestIds = '') =>
      new Promise<LinkAnswer>((resolve, reject) => {
        const callId = nextCallId++
        pending.set(callId, { resolve, reject })
        ws.send(Buffer.from(encodeLinkCall(callId, op, requestIds, payload)), { binary: true })
      }),
    sendRaw: (data) => ws.send(data, { binary: Buffer.isBuffer(data) }),
    closed,
    strays,
  }
}

async function metric(name: string): Promise<number> {
  const text = (await edgeApi.get('/metrics')).text
  const value = new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1]
  if (value === undefined) throw new Error(`no ${name} in /metrics`)
  return Number(value)
}

t.test('the upgrade is refused with 401 without the internal token', async (t) => {
  t.equal(await expectRefusal(linkUrl), 401, 'no token')
  t.equal(await expectRefusal(linkUrl, { authorization: `Bearer ${'w'.repeat(48)}` }), 401, 'a wrong token')
  t.equal(await expectRefusal(linkUrl, { authorization: `Bearer ${apiKeys[0]}` }), 401, 'an API key')
  await eventually(() => edge.logRecords().some((r) => r.msg === 'internal call refused: bad token' && r.route === 'link'))
  t.pass('the refusal is logged')
})

t.test('a broadcast over the link reaches every socket; the link itself is no connection', async (t) => {
  const link = await openLink(t)
  const users = await Promise.all(['lb-a', 'lb-b'].map((u) => connectUser(t, edge.wsUrl, jwtSecret, u)))
  t.equal(await metric('edge_connections'), 2, 'two client sockets; the link does not count')
  const frame = pushFrame('lb-1', 'room.note', { n: 1 }, Date.now())
  const answer = await link.call('broadcast', frame, 'req-b')
  t.same(answer, { callId: answer.callId, status: 200, body: JSON.stringify({ connections: 2 }) })
  for (const { client } of users) t.same(await client.nextFrame(), JSON.parse(frame))
  t.same(link.strays, [])
})

t.test('a deliveries call delivers to a connected user and lists the offline one', async (t) => {
  const link = await openLink(t)
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'ld-alice')
  const callsBefore = await metric('edge_deliver_requests_total')
  const frame = pushFrame('ld-1', 'chat.message', { text: 'hi\nthere' }, Date.now())

  const answer = await link.call('deliveries', encodeDeliveries([{ frame, to: ['ld-alice', 'ld-offline'] }]), 'req-ld-1')

  t.equal(answer.status, 200)
  t.same(JSON.parse(answer.body), { results: [{ delivered: ['ld-alice'], missing: ['ld-offline'] }] })
  t.same(await client.nextFrame(), JSON.parse(frame), 'the frame as the router serialized it')
  t.equal((await metric('edge_deliver_requests_total')) - callsBefore, 1, 'counted like an HTTP delivery call')
  const line = await eventually(() => edge.logRecords().find((r) => r.msg === 'internal call' && r.requestIds === 'req-ld-1'))
  t.match(line, { route: 'deliveries', via: 'link', answer: { pushes: 1, delivered: 1 } })
  t.same(link.strays, [])
})

t.test('pipelined calls each get their answer by callId, and frames arrive in call order', async (t) => {
  const link = await openLink(t)
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'lp-user')
  const frames = Array.from({ length: 50 }, (_, i) => pushFrame(`lp-${i}`, 'e', i, Date.now()))
  // All sent before any answer can arrive; recipients vary so each answer is recognizably its own.
  const calls = frames.map((frame, i) => link.call('deliveries', encodeDeliveries([{ frame, to: i % 2 ? ['lp-user'] : ['lp-user', `lp-off-${i}`] }]), `req-lp-${i}`))
  const answers = await Promise.all(calls)
  const wrong = answers.filter((a, i) => a.status !== 200 || a.body !== JSON.stringify({ results: [{ delivered: ['lp-user'], missing: i % 2 ? [] : [`lp-off-${i}`] }] }))
  t.same(wrong, [], 'every call answered with its own result')
  t.equal(new Set(answers.map((a) => a.callId)).size, 50, 'one answer per callId')
  const ids: unknown[] = []
  for (let i = 0; i < 50; i++) ids.push((await client.nextFrame()).id)
  t.same(ids, frames.map((_, i) => `lp-${i}`))
  t.same(link.strays, [])
})

t.test('a malformed payload is answered 400 and the link stays usable', async (t) => {
  const link = await openLink(t)
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'lm-user')
  for (const [op, payload] of [
    ['deliveries', 'not a delivery'],
    ['deliveries', '{}\n[1,2]'],
    ['deliveries', ''],
    ['disconnect', '{"nope":true}'],
  ] as const) {
    const answer = await link.call(op, payload)
    t.same({ status: answer.status, body: answer.body }, { status: 400, body: MALFORMED }, `${op}: ${JSON.stringify(payload)}`)
  }
  const frame = pushFrame('lm-1', 'e', 1, Date.now())
  const ok = await link.call('deliveries', encodeDeliveries([{ frame, to: ['lm-user'] }]))
  t.same(JSON.parse(ok.body), { results: [{ delivered: ['lm-user'], missing: [] }] }, 'the same link still delivers')
  t.same(await client.nextFrame(), JSON.parse(frame))
  t.same(link.strays, [])
})

t.test('a frame that is not a call closes the link with 1008', async (t) => {
  for (const [label, data] of [
    ['binary garbage', Buffer.from('garbage without a header')],
    ['an unknown op', Buffer.from('1 explode -\n{}')],
    ['a non-numeric callId', Buffer.from('x deliveries -\n{}')],
    ['a text frame', encodeLinkCall(1, 'broadcast', '-', '{}')],
  ] as const) {
    const link = await openLink(t)
    link.sendRaw(data)
    t.equal((await link.closed).code, 1008, label)
  }
  t.equal((await edgeApi.get('/healthz')).status, 200, 'the edge is unaffected')
})

t.test('a disconnect over the link closes the user\'s sockets with 4500, or only the given connIds', async (t) => {
  const link = await openLink(t)
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => connectUser(t, edge.wsUrl, jwtSecret, 'lx-user')))
  const other = await connectUser(t, edge.wsUrl, jwtSecret, 'lx-other')

  const one = await link.call('disconnect', JSON.stringify({ userId: 'lx-user', connIds: [a!.welcome.connId, other.welcome.connId], code: 4501, reason: 'replaced' }))
  t.same({ status: one.status, body: one.body }, { status: 200, body: '{"closed":1}' }, 'a connId of another user is ignored')
  t.match(await a!.client.closed, { code: 4501, reason: 'replaced' })

  const all = await link.call('disconnect', JSON.stringify({ userId: 'lx-user', reason: 'bye' }))
  t.same({ status: all.status, body: all.body }, { status: 200, body: '{"closed":2}' })
  for (const { client } of [b!, c!]) t.match(await client.closed, { code: 4500, reason: 'bye' })
  t.same(await other.client.ping(), { type: 'pong' }, 'another user keeps their socket')
  t.same(link.strays, [])
})

// Last: it drains the edge.
t.test('a draining edge closes its client sockets first and its links last, with 1001', async (t) => {
  const link = await openLink(t)
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'ldr-user')
  const order: string[] = []
  void client.closed.then((c) => order.push(`client ${c.code}`))
  void link.closed.then((c) => order.push(`link ${c.code}`))
  const answer = await link.call('broadcast', pushFrame('ldr-0', 'e', 0, Date.now()))
  t.equal(answer.status, 200, 'the link works before the drain')
  edge.kill('SIGTERM')
  await Promise.all([client.closed, link.closed])
  t.same(order, ['client 1001', 'link 1001'])
  t.equal(await edge.exited, 0)
})

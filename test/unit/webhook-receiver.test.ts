// The webhook test receiver itself: what integration tests rely on it to record and do.
import { once } from 'node:events'
import { connect } from 'node:net'
import { performance } from 'node:perf_hooks'
import t from 'tap'
import { postBatch } from '../../apps/router/src/presence/webhook-endpoint.js'
import { startReceiver } from '../helpers/webhook-receiver.js'

const SECRET = `whsec_${Buffer.alloc(32, 's').toString('base64')}`

t.test('a batch of a few MB arrives whole and verified', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET })
  const events = Array.from({ length: 20_000 }, (_, i) => ({ id: `e${i}`, type: 'user.online', userId: `user-${i}-${'x'.repeat(150)}`, ver: i, cause: 'connect', connections: 1, ts: i }))
  const body = JSON.stringify({ events })
  t.ok(body.length > 3 * 1024 * 1024, `${body.length} bytes`)
  t.same(await postBatch({ url: receiver.url, secrets: [SECRET], msgId: 'msg_big', body, timeoutMs: 10_000 }), { outcome: 'ack', status: 204 })
  const [got] = await receiver.waitFor((r) => r.length === 1)
  t.ok(got!.verified)
  t.ok(got!.isValid)
  t.equal(got!.events.length, 20_000)
})

t.test('malformed bodies are recorded as invalid and answered; the receiver keeps working', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET })
  const bodies: [string | Buffer, string][] = [
    ['not json', 'the body is not JSON'],
    ['{"events": {"a": 1}}', 'the body holds no events array'],
    ['null', 'the body holds no events array'],
    [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'the body is not JSON'],
  ]
  for (const [body] of bodies) {
    const res = await fetch(receiver.url, { method: 'POST', body })
    t.equal(res.status, 204)
  }
  const got = await receiver.waitFor((r) => r.length === bodies.length)
  t.same(got.map((b) => b.problem), bodies.map(([, problem]) => problem))
  t.ok(got.every((b) => !b.isValid && !b.verified && b.events.length === 0), 'invalid, unverified (no signature), no events')
  const res = await fetch(receiver.url, { method: 'POST', body: '[{"id":"e1"}]' })
  t.equal(res.status, 204)
  const [, , , , bare] = await receiver.waitFor((r) => r.length === 5)
  t.ok(bare!.isValid, 'a bare array is a batch')
  t.same(bare!.events, [{ id: 'e1' }])
})

t.test('a body over maxBodyBytes is recorded as invalid, without its bytes', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET, maxBodyBytes: 1024 })
  const res = await fetch(receiver.url, { method: 'POST', body: JSON.stringify({ events: ['x'.repeat(2048)] }) })
  t.equal(res.status, 204)
  const [got] = await receiver.waitFor((r) => r.length === 1)
  t.equal(got!.body, '')
  t.notOk(got!.isValid)
  t.match(got!.problem, /over 1024 bytes/)
})

t.test('a request cut off mid-body is recorded as cut off', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET })
  const socket = connect(receiver.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('POST /hooks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"events":')
  const arrived = receiver.waitFor((r) => r.length === 1)
  socket.destroy()
  const [got] = await arrived
  t.match(got!.problem, /cut off/)
  t.notOk(got!.isValid)
})

t.test('answers: status and headers as told, after delayMs', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET })
  const DELAY_MS = 100
  receiver.answerWith((n) => ({ status: n === 1 ? 503 : 200, headers: { 'x-n': String(n) }, delayMs: DELAY_MS }))
  const first = await fetch(receiver.url, { method: 'POST', body: '[]' })
  t.equal(first.status, 503)
  t.equal(first.headers.get('x-n'), '1')
  const started = performance.now()
  const second = await fetch(receiver.url, { method: 'POST', body: '[]' })
  t.ok(performance.now() - started >= DELAY_MS - 1, 'not before delayMs (timers may fire up to 1 ms early)')
  t.equal(second.status, 200)
  t.equal(second.headers.get('x-n'), '2')
})

t.test('stop() drops a hung request and refuses new ones; start() listens on the same port', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET })
  receiver.answerWith(() => 'hang')
  const timeoutMs = 30_000
  const hung = postBatch({ url: receiver.url, secrets: [SECRET], msgId: 'msg_1', body: '[]', timeoutMs })
  await receiver.waitFor((r) => r.length === 1)
  await receiver.stop()
  t.match(await hung, { outcome: 'retry', reason: 'network' }, 'the connection was closed, long before the timeout')
  await t.rejects(fetch(receiver.url, { method: 'POST', body: '[]' }), 'refused while stopped')
  await receiver.start()
  receiver.answerWith(() => ({ status: 200 }))
  t.equal((await fetch(receiver.url, { method: 'POST', body: '[]' })).status, 200)
  t.same(receiver.received.map((b) => b.n), [1, 2], 'numbering goes on across the restart')
})

t.test('waitFor resolves at once when already true, and rejects on time saying what arrived', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET })
  t.same(await receiver.waitFor((r) => r.length === 0, 10), [])
  await t.rejects(receiver.waitFor((r) => r.length === 1, 50), /not met within 50 ms; received 0/)
})

t.test('close() is final', async (t) => {
  const receiver = await startReceiver(t, { secret: SECRET })
  await receiver.close()
  await t.rejects(receiver.start(), /closed/)
  await t.rejects(fetch(receiver.url, { method: 'POST', body: '[]' }))
})

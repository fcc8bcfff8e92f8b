import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { MAX_ANSWER_BYTES, MAX_RETRY_AFTER_MS, USER_AGENT, parseRetryAfter, postBatch, retryDelayMs, type PostBatchOptions } from '../../apps/router/src/presence/webhook-endpoint.js'
import { parseSecret, signatureHeaders } from '../../apps/router/src/presence/webhook-signature.js'
import { startReceiver, verifyWebhook } from '../helpers/webhook-receiver.js'

// Keys of 32 random-looking bytes, as `whsec_` secrets.
const SECRET_A = `whsec_${Buffer.alloc(32, 'a').toString('base64')}`
const SECRET_B = `whsec_${Buffer.alloc(32, 'b').toString('base64')}`
const SECRET_C = `whsec_${Buffer.alloc(32, 'c').toString('base64')}`
const BODY = JSON.stringify({ events: [{ id: 'e1', type: 'user.online', userId: 'alice', ver: 1, cause: 'connect', connections: 1, ts: 1 }] })
/** A whole second, so an HTTP-date (second precision) is an exact offset from it. */
const NOW_MS = Date.UTC(2026, 0, 1, 12, 0, 0)
/** Slack over a deadline for the event loop of a loaded shared machine; the deadline itself is asserted exactly. */
const SCHEDULING_GRACE_MS = 1_000

function batch(url: string, extra: Partial<PostBatchOptions> = {}): PostBatchOptions {
  return { url, secrets: [SECRET_A], msgId: 'msg_1', body: BODY, timeoutMs: 5_000, ...extra }
}

/** A TCP server that answers each connection's first bytes with `answer`, for answers node:http will not give. */
async function startRawServer(t: Test, answer: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.once('data', () => answer(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`
}

t.test('signing', async (t) => {
  t.test('matches the Standard Webhooks published test vector, which the independent verifier also accepts', async (t) => {
    // The vector the spec's reference libraries test against (libraries/*/ in standard-webhooks/standard-webhooks).
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const body = '{"test": 2432232314}'
    const headers = signatureHeaders([secret], 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)
    t.same(headers, { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330', 'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' })
    t.ok(verifyWebhook(secret, headers, body, { nowS: 1614265330 }))
    t.notOk(verifyWebhook(secret, headers, body, { nowS: 1614265330 + 301 }), 'a stale timestamp is refused')
  })

  t.test('rotation: with two secrets, a receiver knowing either one verifies; others do not', async (t) => {
    const headers = signatureHeaders([SECRET_A, SECRET_B], 'msg_2', 1_700_000_000, BODY)
    t.equal(headers['webhook-signature'].split(' ').length, 2)
    t.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=* v1,[A-Za-z0-9+/]+=*$/)
    const nowS = 1_700_000_000
    t.ok(verifyWebhook(SECRET_A, headers, BODY, { nowS }), 'old secret only')
    t.ok(verifyWebhook(SECRET_B, headers, BODY, { nowS }), 'new secret only')
    t.notOk(verifyWebhook(SECRET_C, headers, BODY, { nowS }), 'an unrelated secret')
  })

  t.test('a tampered body, id or timestamp fails verification', async (t) => {
    const nowS = 1_700_000_000
    const headers = signatureHeaders([SECRET_A], 'msg_3', nowS, BODY)
    t.ok(verifyWebhook(SECRET_A, headers, BODY, { nowS }), 'the untampered control verifies')
    t.notOk(verifyWebhook(SECRET_A, headers, BODY.replace('alice', 'mallory'), { nowS }))
    t.notOk(verifyWebhook(SECRET_A, headers, `${BODY} `, { nowS }), 'one added space')
    t.notOk(verifyWebhook(SECRET_A, { ...headers, 'webhook-id': 'msg_4' }, BODY, { nowS }))
    t.notOk(verifyWebhook(SECRET_A, { ...headers, 'webhook-timestamp': String(nowS + 1) }, BODY, { nowS }))
  })

  t.test('the body is signed as UTF-8, as it is sent', async (t) => {
    const body = JSON.stringify({ events: [{ userId: 'zoë 🚀' }] })
    const headers = signatureHeaders([SECRET_A], 'msg_5', 1_700_000_000, body)
    t.ok(verifyWebhook(SECRET_A, headers, Buffer.from(body, 'utf8'), { nowS: 1_700_000_000 }))
  })

  t.test('refuses what would make a signature receivers cannot check', async (t) => {
    t.throws(() => signatureHeaders([], 'msg_1', 1, BODY), /at least one secret/)
    t.throws(() => signatureHeaders([SECRET_A], 'msg.1', 1, BODY), /webhook id/, 'a dot would shift the signed fields')
    t.throws(() => signatureHeaders([SECRET_A], '', 1, BODY), /webhook id/)
    t.throws(() => signatureHeaders([SECRET_A], 'msg 1', 1, BODY), /webhook id/)
    t.throws(() => signatureHeaders([SECRET_A], 'msg_1', 1.5, BODY), /timestamp/)
    t.throws(() => signatureHeaders([SECRET_A], 'msg_1', -1, BODY), /timestamp/)
  })
})

t.test('parseSecret', async (t) => {
  t.test('accepts keys of 24 to 64 bytes, padded or not', async (t) => {
    t.equal(parseSecret(`whsec_${Buffer.alloc(24, 1).toString('base64')}`).length, 24)
    t.equal(parseSecret(`whsec_${Buffer.alloc(64, 1).toString('base64')}`).length, 64)
    t.same(parseSecret(`whsec_${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`), Buffer.alloc(32, 7))
  })

  const refusals: [string, string, RegExp][] = [
    ['no prefix', Buffer.alloc(32, 9).toString('base64'), /must start with whsec_/],
    ['another prefix', `whsk_${Buffer.alloc(32, 9).toString('base64')}`, /must start with whsec_/],
    ['base64url characters', `whsec_${Buffer.alloc(32, 0xfb).toString('base64url')}`, /standard base64/],
    ['a trailing newline', `whsec_${Buffer.alloc(32, 9).toString('base64')}\n`, /standard base64/],
    ['a space inside', `whsec_${Buffer.alloc(32, 9).toString('base64').replace(/^(.{8})/, '$1 ')}`, /standard base64/],
    ['an impossible length', `whsec_${'A'.repeat(33)}`, /standard base64/],
    ['23 bytes', `whsec_${Buffer.alloc(23, 9).toString('base64')}`, /24 to 64 bytes/],
    ['65 bytes', `whsec_${Buffer.alloc(65, 9).toString('base64')}`, /24 to 64 bytes/],
    ['empty', 'whsec_', /24 to 64 bytes/],
  ]
  for (const [name, secret, why] of refusals) {
    t.test(`refuses ${name}, without echoing the secret`, async (t) => {
      const err = t.throws(() => parseSecret(secret), why) as Error
      const key = secret.replace(/^whsec_/, '').trim()
      if (key.length >= 8) t.notOk(err.message.includes(key.slice(0, 8)), 'the message does not contain the key')
    })
  }
})

t.test('postBatch against a real receiver', async (t) => {
  t.test('a 2xx acks; the request is a signed JSON POST', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    for (const status of [200, 202, 204]) {
      receiver.answerWith(() => ({ status, body: status === 204 ? undefined : '{"ok":true}' }))
      t.same(await postBatch(batch(receiver.url)), { outcome: 'ack', status })
    }
    const [first] = await receiver.waitFor((r) => r.length === 3)
    t.equal(first!.method, 'POST')
    t.equal(first!.path, '/hooks')
    t.equal(first!.headers['content-type'], 'application/json')
    t.equal(first!.headers['user-agent'], USER_AGENT)
    t.equal(first!.headers['webhook-id'], 'msg_1')
    t.match(first!.headers['webhook-timestamp'], /^\d+$/)
    t.match(first!.headers['webhook-signature'], /^v1,/)
    t.equal(first!.body, BODY, 'the body is sent byte for byte')
    t.same(first!.events, JSON.parse(BODY).events)
    t.ok(first!.verified, 'the independent verifier accepts it with the real clock')
  })

  t.test('webhook-timestamp is the attempt time from `now`, in whole seconds', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    await postBatch(batch(receiver.url, { now: () => NOW_MS + 999 }))
    const [got] = await receiver.waitFor((r) => r.length === 1)
    t.equal(got!.headers['webhook-timestamp'], String(NOW_MS / 1000))
    t.ok(verifyWebhook(SECRET_A, got!.headers, got!.body, { nowS: NOW_MS / 1000 }))
    t.notOk(got!.verified, 'a timestamp from 2026-01-01 is stale for a receiver on the real clock')
  })

  t.test('rotation end to end: receivers knowing either secret verify the same delivery', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_B })
    t.same(await postBatch(batch(receiver.url, { secrets: [SECRET_A, SECRET_B] })), { outcome: 'ack', status: 204 })
    const [got] = await receiver.waitFor((r) => r.length === 1)
    t.ok(got!.verified, 'the receiver knowing only the new secret')
    t.ok(verifyWebhook(SECRET_A, got!.headers, got!.body), 'a receiver knowing only the old secret')
    t.notOk(verifyWebhook(SECRET_C, got!.headers, got!.body))
  })

  t.test('a 500 is retried, with its status', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 500, body: 'oops' }))
    const attempt = await postBatch(batch(receiver.url))
    t.match(attempt, { outcome: 'retry', reason: 'status', status: 500 })
    t.notOk('retryAfterMs' in attempt, 'no Retry-After, no retryAfterMs')
  })

  t.test('a redirect is not followed: retried', async (t) => {
    const target = await startReceiver(t, { secret: SECRET_A })
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 307, headers: { location: target.url } }))
    t.match(await postBatch(batch(receiver.url)), { outcome: 'retry', reason: 'status', status: 307 })
    t.equal(target.received.length, 0)
  })

  t.test('a 410 is gone', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 410, body: 'unsubscribed' }))
    t.same(await postBatch(batch(receiver.url)), { outcome: 'gone', status: 410 })
  })

  t.test('429 with Retry-After in seconds', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 429, headers: { 'retry-after': '7' } }))
    t.match(await postBatch(batch(receiver.url)), { outcome: 'retry', reason: 'status', status: 429, retryAfterMs: 7_000 })
  })

  t.test('429 with Retry-After as an HTTP-date, measured from `now`', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 429, headers: { 'retry-after': new Date(NOW_MS + 90_000).toUTCString() } }))
    t.match(await postBatch(batch(receiver.url, { now: () => NOW_MS })), { outcome: 'retry', status: 429, retryAfterMs: 90_000 })
  })

  t.test('503 with a Retry-After past a day is clamped to a day', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 503, headers: { 'retry-after': String(30 * 24 * 3600) } }))
    t.match(await postBatch(batch(receiver.url)), { outcome: 'retry', status: 503, retryAfterMs: MAX_RETRY_AFTER_MS })
  })

  t.test('a receiver that never answers times out at timeoutMs', async (t) => {
    const timeoutMs = 300
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => 'hang')
    const started = performance.now()
    const attempt = await postBatch(batch(receiver.url, { timeoutMs }))
    const elapsedMs = performance.now() - started
    t.match(attempt, { outcome: 'retry', reason: 'timeout' })
    t.notOk('status' in attempt)
    t.ok(elapsedMs >= timeoutMs - 1, `not before the deadline (${elapsedMs.toFixed(0)} ms)`)
    t.ok(elapsedMs < timeoutMs + SCHEDULING_GRACE_MS, `at the deadline (${elapsedMs.toFixed(0)} ms)`)
    t.equal(receiver.received.length, 1, 'the request had arrived: it was the answer that never came')
  })

  t.test('a 200 whose body trickles in forever times out at timeoutMs: the bound is on the whole exchange', async (t) => {
    const timeoutMs = 300
    const url = await startRawServer(t, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n')
      const drip = setInterval(() => socket.write('1\r\nx\r\n'), 20)
      socket.on('close', () => clearInterval(drip))
    })
    const started = performance.now()
    const attempt = await postBatch(batch(url, { timeoutMs }))
    const elapsedMs = performance.now() - started
    t.match(attempt, { outcome: 'retry', reason: 'timeout', status: 200 })
    t.ok(elapsedMs >= timeoutMs - 1 && elapsedMs < timeoutMs + SCHEDULING_GRACE_MS, `${elapsedMs.toFixed(0)} ms`)
  })

  t.test('connection refused is retried; the receiver started again acks', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    await receiver.stop()
    t.match(await postBatch(batch(receiver.url)), { outcome: 'retry', reason: 'connect', error: /ECONNREFUSED/ })
    await receiver.start()
    t.same(await postBatch(batch(receiver.url)), { outcome: 'ack', status: 204 })
    t.equal(receiver.received.length, 1)
  })

  t.test('a huge answer with a length is refused unread: a 200 is not an ack', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 200, body: Buffer.alloc(32 * 1024 * 1024, 'x') }))
    t.match(await postBatch(batch(receiver.url)), { outcome: 'retry', reason: 'too_large', status: 200 })
    receiver.answerWith(() => ({ status: 200, body: Buffer.alloc(MAX_ANSWER_BYTES, 'x') }))
    t.same(await postBatch(batch(receiver.url)), { outcome: 'ack', status: 200 }, 'an answer of exactly the bound is read')
  })

  t.test('an endless answer body is cut at the bound, long before the timeout', async (t) => {
    const chunk = `10000\r\n${'x'.repeat(0x10000)}\r\n`
    const url = await startRawServer(t, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n')
      const pump = () => {
        while (!socket.destroyed && socket.write(chunk));
      }
      socket.on('drain', pump)
      pump()
    })
    t.match(await postBatch(batch(url, { timeoutMs: 60_000 })), { outcome: 'retry', reason: 'too_large', status: 200 })
  })

  t.test('a huge error answer keeps its status and Retry-After', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    receiver.answerWith(() => ({ status: 503, headers: { 'retry-after': '3' }, body: Buffer.alloc(8 * 1024 * 1024, 'x') }))
    t.match(await postBatch(batch(receiver.url)), { outcome: 'retry', reason: 'status', status: 503, retryAfterMs: 3_000 })
  })

  t.test('an answer that is not HTTP is retried', async (t) => {
    const url = await startRawServer(t, (socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'))
    t.match(await postBatch(batch(url)), { outcome: 'retry', reason: 'network' })
  })

  t.test('what cannot be sent is a retry with reason invalid, never a throw, and nothing is sent', async (t) => {
    const receiver = await startReceiver(t, { secret: SECRET_A })
    t.match(await postBatch(batch(receiver.url, { secrets: ['whsec_short'] })), { outcome: 'retry', reason: 'invalid' })
    t.match(await postBatch(batch(receiver.url, { msgId: 'a.b' })), { outcome: 'retry', reason: 'invalid' })
    t.match(await postBatch(batch('not a url')), { outcome: 'retry', reason: 'invalid' })
    t.equal(receiver.received.length, 0)
  })
})

t.test('the dispatcher is the seam: postBatch sends through the one given', async (t) => {
  const seen: { method: string; path: string; headers: unknown; body: unknown }[] = []
  const answering: NonNullable<PostBatchOptions['dispatcher']> = {
    dispatch(opts, handler) {
      seen.push({ method: opts.method, path: opts.path, headers: opts.headers, body: opts.body })
      handler.onConnect?.(() => undefined)
      handler.onHeaders?.(202, [], () => undefined, 'Accepted')
      handler.onComplete?.([])
      return true
    },
  }
  t.same(await postBatch(batch('http://webhooks.invalid/in', { dispatcher: answering })), { outcome: 'ack', status: 202 }, 'no DNS lookup or socket: the dispatcher answered')
  t.equal(seen.length, 1)
  t.match(seen[0], { method: 'POST', path: '/in', body: BODY, headers: { 'webhook-id': 'msg_1', 'content-type': 'application/json' } })

  const throwing: NonNullable<PostBatchOptions['dispatcher']> = {
    dispatch() {
      throw new Error('dispatcher broke')
    },
  }
  t.match(await postBatch(batch('http://webhooks.invalid/in', { dispatcher: throwing })), { outcome: 'retry', reason: 'network', error: /dispatcher broke/ })
})

t.test('parseRetryAfter', async (t) => {
  t.equal(parseRetryAfter('0', NOW_MS), 0)
  t.equal(parseRetryAfter(' 120 ', NOW_MS), 120_000)
  t.equal(parseRetryAfter(['5', '9'], NOW_MS), 5_000, 'a repeated header: the first')
  t.equal(parseRetryAfter('99999999999999999999', NOW_MS), MAX_RETRY_AFTER_MS)
  t.equal(parseRetryAfter(new Date(NOW_MS + 30_000).toUTCString(), NOW_MS), 30_000, 'IMF-fixdate')
  t.equal(parseRetryAfter('Thursday, 01-Jan-26 12:00:45 GMT', NOW_MS), 45_000, 'the obsolete RFC 850 form')
  t.equal(parseRetryAfter(new Date(NOW_MS - 30_000).toUTCString(), NOW_MS), 0, 'a date in the past')
  t.equal(parseRetryAfter(new Date(NOW_MS + 10 * MAX_RETRY_AFTER_MS).toUTCString(), NOW_MS), MAX_RETRY_AFTER_MS)
  for (const garbage of [undefined, '', '-5', '1.5', 'soon', '1 May', 'Fri, 99 Foo 2026 99:99:99 GMT']) {
    t.equal(parseRetryAfter(garbage, NOW_MS), undefined, `ignores ${JSON.stringify(garbage)}`)
  }
})

t.test('retryDelayMs', async (t) => {
  const holds = <T>(name: string, property: fc.IProperty<T>) => {
    try {
      fc.assert(property, { numRuns: 2_000 })
      t.pass(name)
    } catch (err) {
      t.fail(`${name}\n${(err as Error).message}`)
    }
  }
  const attempt = fc.integer({ min: 0, max: 200 })
  const random = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
  const baseMs = fc.integer({ min: 1, max: 10_000 })
  const capMs = fc.integer({ min: 1, max: 60 * 60_000 })
  const ceilingOf = (a: number, base: number, cap: number) => Math.min(cap, base * 2 ** a)

  holds(
    'full jitter: a whole number of ms in [0, min(cap, base * 2^attempt))',
    fc.property(attempt, random, baseMs, capMs, (a, r, base, cap) => {
      const d = retryDelayMs(a, undefined, () => r, base, cap)
      return Number.isInteger(d) && d >= 0 && d < ceilingOf(a, base, cap)
    }),
  )
  holds(
    'the ceiling grows with the attempt until the cap, and never passes it',
    fc.property(attempt, random, baseMs, capMs, (a, r, base, cap) => {
      const d = retryDelayMs(a, undefined, () => r, base, cap)
      const next = retryDelayMs(a + 1, undefined, () => r, base, cap)
      return d <= next && next < cap
    }),
  )
  holds(
    'Retry-After (up to a day) is a floor, even above the cap; the jitter stays under the cap',
    fc.property(attempt, random, baseMs, capMs, fc.integer({ min: 0, max: MAX_RETRY_AFTER_MS }), (a, r, base, cap, retryAfter) => {
      const d = retryDelayMs(a, retryAfter, () => r, base, cap)
      return d >= retryAfter && d <= Math.max(retryAfter, cap - 1)
    }),
  )
  holds(
    'a Retry-After past a day waits a day; a negative one is no floor',
    fc.property(attempt, random, fc.integer({ min: MAX_RETRY_AFTER_MS + 1, max: 2 ** 40 }), (a, r, retryAfter) => {
      return retryDelayMs(a, retryAfter, () => r) === MAX_RETRY_AFTER_MS && retryDelayMs(a, -retryAfter, () => r) === retryDelayMs(a, undefined, () => r)
    }),
  )

  t.equal(retryDelayMs(0, undefined, () => 0), 0, 'full jitter reaches 0')
  t.equal(retryDelayMs(0, undefined, () => 0.5), 250, 'default base 500 ms')
  t.equal(retryDelayMs(3, undefined, () => 0.5), 2_000)
  t.equal(retryDelayMs(1_000, undefined, () => 0.5), 150_000, 'default cap 5 min, however many attempts')
  t.equal(retryDelayMs(-3, undefined, () => 0.5), 250, 'a negative attempt counts as the first')
  t.equal(retryDelayMs(2.7, undefined, () => 0.5), 1_000, 'a fractional attempt is floored')
  t.equal(retryDelayMs(0, 60_000, () => 0.5), 60_000, 'Retry-After over the backoff wins')
  t.equal(retryDelayMs(20, 1_000, () => 0.5), 150_000, 'the backoff over Retry-After wins')
})

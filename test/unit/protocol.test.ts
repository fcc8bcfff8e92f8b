import t from 'tap'
import {
  Backoff,
  CLOSE_CAUSES,
  CloseCode,
  CloseReasons,
  PushRequest,
  SwitchboardError,
  backoffCeilingMs,
  backoffDelayMs,
  causeOf,
  closeReasonOf,
  decodeDeliveries,
  encodeDeliveries,
  encodeDelivery,
  errorTable,
  framedAt,
  parseResumeProtocol,
  resumeProtocol,
  parseClientFrame,
  parseOrThrow,
  pushFrame,
  reconnectDelayMs,
  shouldReconnect,
  type CloseReason,
} from '@switchboard/protocol'
import { loadConfig } from '@switchboard/config'
import { EdgeEnv } from '@switchboard/edge'
import { RouterEnv } from '@switchboard/router'

/** One delivery read back as the edge reads a `deliveries` call. */
const decodeDelivery = (body: string) => decodeDeliveries(body)?.[0]

t.test('a delivery body round-trips, whatever the frame contains', async (t) => {
  const frame = pushFrame('m1', 'e', { text: 'line\nbreak', nested: ['\n'] }, 1)
  const decoded = decodeDelivery(encodeDelivery(frame, ['u1', 'ünï côdé']))
  t.same(decoded, { frame, to: ['u1', 'ünï côdé'] })
  t.same(JSON.parse(decoded!.frame), { type: 'push', id: 'm1', event: 'e', data: { text: 'line\nbreak', nested: ['\n'] }, ts: 1 })
  t.equal(decodeDelivery('no newline'), undefined)
  t.equal(decodeDelivery('{}\n[1,2]'), undefined, 'recipients must be user ids')
})

t.test('a kept delivery carries each recipient\'s position; a malformed or mixed one is refused', async (t) => {
  const frame = pushFrame('m1', 'e', { a: 1 }, 1)
  const at = [{ epoch: '17abc', offset: 3 }, { epoch: 'ff', offset: 1 }]
  t.same(decodeDelivery(encodeDelivery(frame, ['u1', 'u2'], at)), { frame, to: ['u1', 'u2'], at })
  t.same(decodeDeliveries(encodeDeliveries([{ frame, to: ['u1'], at: [at[0]!] }, { frame, to: ['u2'] }])), [{ frame, to: ['u1'], at: [at[0]!] }, { frame, to: ['u2'] }], 'kept and plain in one call')
  for (const bad of ['[["u1","17abc",0]]', '[["u1","NOT-HEX",1]]', '[["u1","ab",1.5]]', '[["u1","ab"]]', '[["u1","ab",1],"u2"]', '[["","ab",1]]', '[["u1","ab","1"]]']) {
    t.equal(decodeDelivery(`${frame}\n${bad}`), undefined, bad)
  }
  const spliced = framedAt(frame, '17abc', 3)
  t.same(JSON.parse(spliced), { type: 'push', id: 'm1', event: 'e', data: { a: 1 }, ts: 1, epoch: '17abc', offset: 3 }, 'the position spliced into the frame is JSON')
})

t.test('resume positions travel as a subprotocol and parse back exactly; anything else is no position', async (t) => {
  const p = { epoch: '19a3b2c1d0e5f60718', offset: 42 }
  t.equal(resumeProtocol(p), 'resume.19a3b2c1d0e5f60718.42')
  t.same(parseResumeProtocol(resumeProtocol(p)), { from: p })
  t.equal(resumeProtocol(undefined), 'resume.start')
  t.same(parseResumeProtocol('resume.start'), { from: undefined })
  for (const bad of ['resume.', 'resume.xyz.1', 'resume.ab.-1', 'resume.ab.1.2', 'resume.ab.1e3', 'resume.AB.1', `resume.${'a'.repeat(41)}.1`, 'resume.ab.9999999999999999']) {
    t.equal(parseResumeProtocol(bad), undefined, bad)
  }
})

t.test('an absent data becomes null in the frame', async (t) => {
  t.same(JSON.parse(pushFrame('m', 'e', undefined, 5)), { type: 'push', id: 'm', event: 'e', data: null, ts: 5 })
})

t.test('client frames: only ping is valid', async (t) => {
  t.same(parseClientFrame('{"type":"ping"}'), { type: 'ping' })
  for (const bad of ['', 'ping', '{"type":"pong"}', '{"type":"ping","x":1}', '[]', 'null', '{"type":"ping"']) {
    t.equal(parseClientFrame(bad), undefined, JSON.stringify(bad))
  }
})

t.test('a bad body is invalid_request naming the field', async (t) => {
  const err = t.throws(() => parseOrThrow(PushRequest, { to: ['ok', 7], event: 'e' })) as SwitchboardError
  t.equal(err.code, 'invalid_request')
  t.match(err.message, /^to\.1: /)
  const whole = t.throws(() => parseOrThrow(PushRequest, 'text')) as SwitchboardError
  t.match(whole.message, /^body: /)
})

t.test('close codes: 45xx means do not reconnect', async (t) => {
  t.equal(errorTable.kicked.close, 4500)
  t.equal(errorTable.replaced.close, 4501)
  t.notOk(shouldReconnect(4500))
  t.notOk(shouldReconnect(4501))
  t.ok(shouldReconnect(4008))
  t.ok(shouldReconnect(1001))
})

t.test('close reasons: one code each, a presence cause, and what the client does agrees with the SDK\'s rules', async (t) => {
  const reasons = Object.keys(CloseReasons) as CloseReason[]
  t.equal(new Set(reasons.map((r) => CloseReasons[r].code)).size, reasons.length, 'no code names two reasons')
  t.same(new Set(reasons.map((r) => CloseReasons[r].code)), new Set(Object.values(CloseCode)), 'every CloseCode is an ending of the table')
  for (const reason of reasons) {
    const { code, then } = CloseReasons[reason]
    t.equal(closeReasonOf(code), reason, `${code} reads back as ${reason}`)
    t.ok(CLOSE_CAUSES.includes(causeOf(reason)), `${reason} records a presence cause`)
    t.equal(errorTable[reason].close, code, `${reason} is in the error catalogue with ${code}`)
    t.equal(shouldReconnect(code), then !== 'final', `${reason}: ${then}`)
    const delay = reconnectDelayMs(8, code, () => 0.999)
    if (then === 'now') t.equal(delay, 0, `${reason}: at once`)
    if (then === 'soon') t.ok(delay > 0 && delay < 2_000, `${reason}: a short random delay`)
    if (then === 'backoff') t.ok(delay > 2_000, `${reason}: the backoff's`)
  }
  t.equal(closeReasonOf(1006), undefined, 'a code no service sends names no reason')
})

t.test('4008 and 4009 tell "too slow to read" from "rate limited", both reconnectable', async (t) => {
  t.equal(CloseReasons.too_slow.code, 4008)
  t.equal(CloseReasons.rate_limited.code, 4009)
  t.ok(shouldReconnect(4009))
  t.same(errorTable.rate_limited, { http: 429, close: 4009 }, 'rate_limited: 429 from the router, 4009 from an edge')
})

t.test('backoff: full jitter under a doubling ceiling, capped, from attempt 0 again after a reset', async (t) => {
  const policy = { baseMs: 100, capMs: 1_000 }
  t.same([0, 1, 2, 3, 4, 5].map((a) => backoffCeilingMs(a, policy)), [100, 200, 400, 800, 1_000, 1_000])
  t.equal(backoffCeilingMs(-3, policy), 100, 'a negative attempt is the first')
  t.equal(backoffCeilingMs(1e9, { baseMs: 1, capMs: Infinity }), 2 ** 60, 'the exponent is bounded: never Infinity')
  t.equal(backoffCeilingMs(1e9, { baseMs: 0, capMs: Infinity }), 0, 'no NaN from 0 × Infinity')
  t.equal(backoffDelayMs(2, policy, () => 0), 0, 'full jitter reaches 0')
  t.equal(backoffDelayMs(2, policy, () => 0.5), 200)
  t.ok(backoffDelayMs(9, policy, () => 0.999_999) < 1_000, 'below the cap')
  const randoms = [0.5, 0.5, 0.5, 0.5]
  const backoff = new Backoff(policy, () => randoms.shift()!)
  t.same([backoff.next(), backoff.next(), backoff.next()], [50, 100, 200])
  t.equal(backoff.attempt, 3)
  backoff.reset()
  t.equal(backoff.next(), 50, 'after a reset, the first step again')
})

t.test('configuration: defaults, and every bad variable named at once', async (t) => {
  const edge = loadConfig(EdgeEnv, { SWITCHBOARD_INTERNAL_TOKEN: 'x'.repeat(16), EDGE_JWT_SECRET: 's'.repeat(32), EDGE_ALLOWED_ORIGINS: 'https://a, https://b' })
  t.equal(edge.port, 8080)
  t.equal(edge.internalPort, 8081)
  t.equal(edge.leaseTtlMs, 10_000)
  t.equal(edge.drainMs, 10_000)
  t.same(edge.allowedOrigins, ['https://a', 'https://b'])
  t.ok(edge.nodeId.length > 0)
  t.ok(Object.isFrozen(edge))

  const err = t.throws(() => loadConfig(RouterEnv, { ROUTER_PORT: 'eighty', REDIS_URL: 'http://nope', ROUTER_API_KEYS: 'short' })) as Error
  for (const name of ['ROUTER_PORT', 'REDIS_URL', 'ROUTER_API_KEYS', 'SWITCHBOARD_INTERNAL_TOKEN']) t.match(err.message, name)
})

t.test('configuration: one Redis target, by URL, Cluster nodes or Sentinels', async (t) => {
  const base = { SWITCHBOARD_INTERNAL_TOKEN: 'x'.repeat(16), ROUTER_API_KEYS: 'k'.repeat(16) }
  t.equal(loadConfig(RouterEnv, base).redis, undefined, 'none: only npm start runs without one')
  t.same(loadConfig(RouterEnv, { ...base, REDIS_URL: 'redis://r:6379' }).redis, { kind: 'url', url: 'redis://r:6379' })
  t.same(loadConfig(RouterEnv, { ...base, REDIS_CLUSTER_NODES: 'a:7000, b.example:7001', REDIS_PASSWORD: 'pw' }).redis, {
    kind: 'cluster',
    nodes: [{ host: 'a', port: 7000 }, { host: 'b.example', port: 7001 }],
    username: undefined,
    password: 'pw',
  })
  t.same(loadConfig(EdgeEnv, { ...base, EDGE_JWT_SECRET: 's'.repeat(32), REDIS_SENTINELS: 's1:26379,s2:26379' }).redis, {
    kind: 'sentinel',
    sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }],
    name: 'mymaster',
    username: undefined,
    password: undefined,
  })
  const both = t.throws(() => loadConfig(RouterEnv, { ...base, REDIS_URL: 'redis://r', REDIS_CLUSTER_NODES: 'a:7000' })) as Error
  t.match(both.message, /REDIS_URL: set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS/)
  for (const bad of ['a', 'a:', ':7000', 'redis://a:7000', 'a:7000,b']) {
    const err = t.throws(() => loadConfig(RouterEnv, { ...base, REDIS_CLUSTER_NODES: bad }), bad) as Error
    t.match(err.message, /REDIS_CLUSTER_NODES/, bad)
  }
})

t.test('user ids and event names: 1-256 printable characters', async (t) => {
  const ok = (to: string[], event = 'e') => PushRequest.safeParse({ to, event }).success
  t.ok(ok(['alice', 'with space', 'ünïcödé 🎉', 'x'.repeat(256)]))
  for (const bad of ['', 'x'.repeat(257), 'new\nline', 'nul\u0000', 'tab\t', 'del\u007f']) t.notOk(ok([bad]), JSON.stringify(bad))
  t.notOk(ok(['u'], 'bell\u0007'))
})

t.test('push data may nest 64 levels, not more, and checking never overflows', async (t) => {
  const nested = (depth: number) => JSON.parse('['.repeat(depth) + ']'.repeat(depth))
  t.ok(PushRequest.safeParse({ to: ['u'], event: 'e', data: nested(64) }).success)
  const err = t.throws(() => parseOrThrow(PushRequest, { to: ['u'], event: 'e', data: nested(65) })) as SwitchboardError
  t.match(err.message, /^data: /)
  t.notOk(PushRequest.safeParse({ to: ['u'], event: 'e', data: nested(200_000) }).success)
})

t.test('bearer check: any configured secret, exact header only', async (t) => {
  const { createBearerCheck } = await import('@switchboard/protocol')
  const check = createBearerCheck(['first-key-0123456', 'second-key-012345'])
  t.ok(check('Bearer first-key-0123456'))
  t.ok(check('Bearer second-key-012345'), 'rotation: both keys valid at once')
  const lookalikes = ['Bearer first-key-0123456\0', 'Bearer first-key-01234567', 'Bearer second-key-01234', 'Bearer first-key-0123456'.repeat(3)]
  for (const bad of ['', 'first-key-0123456', 'bearer first-key-0123456', 'Bearer first-key-012345', 'Bearer first-key-0123456 ', 'Basic x', ...lookalikes]) {
    t.notOk(check(bad), JSON.stringify(bad))
  }
  const mixed = createBearerCheck(['short-key-0123456', 'a-much-longer-key-0123456789'])
  t.ok(mixed('Bearer short-key-0123456'), 'a key shorter than the longest one')
  t.ok(mixed('Bearer a-much-longer-key-0123456789'))
  t.notOk(mixed('Bearer short-key-0123456\0\0'), 'zero padding is not part of a key')
  t.notOk(mixed('Bearer short-key-01234ü'), 'multi-byte input')
})

t.test('several deliveries travel in one body and come back in order', (t) => {
  const deliveries = [
    { frame: pushFrame('a', 'e', { text: 'line\nbreak' }, 1), to: ['u1', 'u2'] },
    { frame: pushFrame('b', 'e', null, 2), to: ['ü'] },
  ]
  t.same(decodeDeliveries(encodeDeliveries(deliveries)), deliveries)
  t.equal(decodeDeliveries(`${deliveries[0]!.frame}\n["u1"]\n${deliveries[1]!.frame}`), undefined, 'a frame without recipients')
  t.equal(decodeDeliveries('{}\n[1]'), undefined, 'recipients must be user ids')
  const many = Array.from({ length: 50_001 }, (_, i) => `u${i}`)
  t.equal(decodeDeliveries(encodeDeliveries([{ frame: '{}', to: many }, { frame: '{}', to: many }])), undefined, 'over 100,000 recipients in one call')
  t.end()
})

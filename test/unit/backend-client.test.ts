// The backend client (@switchboard/backend) against a fake router: the pipelined ingress and
// the HTTP API on one port, with scripted answers (test/helpers/fake-router.ts).
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { once } from 'node:events'
import { createServer, Socket, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { OPERATION_NAMES, REQUEST_ID, type PipelineOp } from '@switchboard/protocol'
import { createTokenVerifier } from '@switchboard/edge'
import { SwitchboardBackend, mintClientToken, type BackendLogger, type BackendOptions } from '@switchboard/backend'
import { defaultAnswer, startFakeRouter, type FakeAnswer, type FakeRequest, type FakeRouter } from '../helpers/fake-router.js'

type Scope = { teardown(fn: () => unknown): void }

function client(t: Scope, fake: FakeRouter, options: Partial<BackendOptions> = {}): SwitchboardBackend {
  const sb = new SwitchboardBackend({ url: fake.url, apiKey: fake.apiKey, ...options })
  t.teardown(() => sb.close())
  return sb
}

/** Captures the client's log lines; `next` resolves at the next line whose message contains `text`. */
function testLog() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = []
  const waiters: { text: string; resolve(fields: Record<string, unknown>): void }[] = []
  const write = (level: string) => (fields: object, message: string) => {
    lines.push({ level, fields: fields as Record<string, unknown>, message })
    for (const w of waiters.filter((w) => message.includes(w.text))) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(fields as Record<string, unknown>)
    }
  }
  const log: BackendLogger = { debug: write('debug'), info: write('info'), warn: write('warn') }
  // The timer also keeps this process alive: the client's own reconnect timers do not.
  const next = (text: string, timeoutMs = 5_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no log line "${text}" within ${timeoutMs} ms`)), timeoutMs)
      waiters.push({ text, resolve: (fields) => (clearTimeout(timer), resolve(fields)) })
    })
  return { log, lines, next }
}

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

const dropSockets = (fake: FakeRouter) => fake.sockets.forEach((ws) => ws.terminate())
const vias = (fake: FakeRouter) => fake.requests.map((r) => r.via)

t.test('answers are matched by id, whatever their order', async (t) => {
  const held: { req: FakeRequest; release(a: FakeAnswer): void }[] = []
  const fake = await startFakeRouter(t, {
    answer: (req) =>
      new Promise((release) => {
        held.push({ req, release })
        if (held.length === 3) for (const h of [...held].reverse()) h.release(defaultAnswer(h.req))
      }),
  })
  const sb = client(t, fake)
  await sb.connect()
  t.equal(sb.state, 'connected')
  const answers = await Promise.all([sb.push({ to: ['u0'], event: 'e' }), sb.presence('u1'), sb.push({ to: ['u2'], event: 'e', id: 'm2' })])
  t.same(answers[0].delivered, ['u0'])
  t.same(answers[1], { userId: 'u1', online: false, connections: [] })
  t.same(answers[2], { id: 'm2', delivered: ['u2'], offline: [], failed: [] })
  t.same(vias(fake), ['pipeline', 'pipeline', 'pipeline'])
})

t.test('at most maxInFlight calls are outstanding; the rest wait in order', async (t) => {
  const fake = await startFakeRouter(t, { answer: (req) => new Promise((r) => setTimeout(() => r(defaultAnswer(req)), 2)) })
  const sb = client(t, fake, { maxInFlight: 4 })
  await sb.connect()
  const calls = Array.from({ length: 40 }, (_, i) => sb.push({ to: [`u${i}`], event: 'e' }))
  t.equal(sb.inFlight, 4)
  t.equal(sb.waiting, 36)
  const answers = await Promise.all(calls)
  t.same(answers.map((a) => a.delivered[0]), calls.map((_, i) => `u${i}`))
  t.equal(fake.maxConcurrent.value, 4, 'the router never saw more than 4 at once')
  t.same(fake.requests.map((r) => (r.body as { to: string[] }).to[0]), calls.map((_, i) => `u${i}`), 'sent in call order')
  t.equal(sb.inFlight + sb.waiting, 0)
})

t.test('a router bound lower than the client\'s: its 429s are absorbed, every push is carried out once', async (t) => {
  const fake = await startFakeRouter(t, { maxInFlight: 3, answer: (req) => new Promise((r) => setTimeout(() => r(defaultAnswer(req)), 1)) })
  const sb = client(t, fake, { maxInFlight: 10 })
  await sb.connect()
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => sb.push({ to: [`u${i}`], event: 'e' })))
  t.equal(answers.length, 30)
  t.ok(fake.refused.count > 0, 'the router did refuse some')
  t.ok(fake.maxConcurrent.value <= 3)
  t.equal(fake.requests.length, 30, 'each push was carried out exactly once')
})

t.test('calls the router refused (429) and never carried out go over HTTP when the pipeline is lost, writes included', async (t) => {
  const fake = await startFakeRouter(t, { maxInFlight: 1, answer: (req) => (req.via === 'pipeline' ? new Promise<never>(() => undefined) : defaultAnswer(req)) })
  const sb = client(t, fake)
  await sb.connect()
  const pushes = [0, 1, 2].map((i) => sb.push({ to: [`u${i}`], event: 'e' }))
  const first = t.rejects(pushes[0]!, { code: 'connection_lost' })
  await fake.received(1)
  const [ws] = [...fake.sockets]
  // The client reads frames in order: its pong comes after it has read the two 429s sent before the ping.
  ws!.ping()
  await once(ws!, 'pong')
  t.equal(fake.refused.count, 2)
  ws!.terminate()
  await first
  t.same((await pushes[1]!).delivered, ['u1'])
  t.same((await pushes[2]!).delivered, ['u2'])
  t.same(fake.requests.map((r) => `${r.via} ${(r.body as { to: string[] }).to[0]}`), ['pipeline u0', 'http u1', 'http u2'], 'each carried out once')
})

t.test('a call times out; its late answer is dropped and its id can be used again', async (t) => {
  const late = deferred()
  const fake = await startFakeRouter(t, { answer: (req) => (req.id === 'slow' && fake.requests.length === 1 ? late.promise.then(() => defaultAnswer(req)) : defaultAnswer(req)) })
  const sb = client(t, fake)
  await sb.connect()
  const TIMEOUT_MS = 50
  const started = Date.now()
  await t.rejects(sb.push({ to: ['a'], event: 'e' }, { requestId: 'slow', timeoutMs: TIMEOUT_MS }), { name: 'SwitchboardApiError', code: 'timeout', requestId: 'slow' })
  t.ok(Date.now() - started >= TIMEOUT_MS - 5, 'not before its timeout (timers may fire a few ms early)')
  t.equal(sb.inFlight, 0, 'its slot is free')
  late.resolve()
  // The late answer went out before this one, on the same socket: it has been read (and dropped) when this resolves.
  t.same((await sb.push({ to: ['b'], event: 'e' })).delivered, ['b'])
  t.same((await sb.push({ to: ['c'], event: 'e' }, { requestId: 'slow' })).delivered, ['c'], 'the late answer did not settle the new call with the same id')
  t.same(vias(fake), ['pipeline', 'pipeline', 'pipeline'])
})

t.test('the timeout runs while a call waits for a slot', async (t) => {
  const fake = await startFakeRouter(t, { answer: () => new Promise<never>(() => undefined) })
  const sb = client(t, fake, { maxInFlight: 1 })
  await sb.connect()
  const first = sb.nodes({ timeoutMs: 60_000 })
  first.catch(() => undefined) // settled by close() at the teardown
  await t.rejects(sb.nodes({ timeoutMs: 30 }), { code: 'timeout', message: /in-flight slots/ })
  t.equal(fake.requests.length, 1, 'the waiting call was never sent')
  t.equal(sb.waiting, 0)
})

t.test('after a loss it reconnects with backoff, and calls go over HTTP meanwhile', async (t) => {
  const fake = await startFakeRouter(t)
  const { log, next, lines } = testLog()
  const BASE_DELAY_MS = 20
  const sb = client(t, fake, { log, reconnectBaseDelayMs: BASE_DELAY_MS })
  await sb.connect()
  const lost = next('pipeline lost')
  dropSockets(fake)
  const fields = await lost
  t.equal(sb.state, 'disconnected')
  t.ok((fields.retryInMs as number) < BASE_DELAY_MS, 'the first retry comes within the base delay')
  t.same((await sb.push({ to: ['a'], event: 'e' })).delivered, ['a'], 'a call does not wait for the reconnect')
  t.equal(fake.requests.at(-1)?.via, 'http')
  await sb.connect()
  t.equal(sb.state, 'connected')
  await sb.push({ to: ['b'], event: 'e' })
  t.equal(fake.requests.at(-1)?.via, 'pipeline')
  t.equal(fake.upgrades.count, 2)

  const shuttingDown = next('shutting down')
  fake.sockets.forEach((ws) => ws.close(1001, 'router shutting down'))
  await shuttingDown
  await sb.connect()
  t.equal(fake.upgrades.count, 3, 'a router shutting down (1001) is reconnected to as well')
  t.same(lines.filter((l) => l.level === 'info').map((l) => l.message).filter((m) => m === 'pipeline connected').length, 3)
})

t.test('while the router is down, the reconnect delay grows (capped, jittered) and calls fail fast as unavailable', async (t) => {
  const fake = await startFakeRouter(t)
  const { log, next } = testLog()
  const sb = client(t, fake, { log, reconnectBaseDelayMs: 10, reconnectMaxDelayMs: 40 })
  await sb.connect()
  const lost = next('pipeline lost')
  await fake.close()
  const delays = [(await lost).retryInMs as number]
  for (let i = 1; i < 4; i++) delays.push((await next('cannot open the pipeline')).retryInMs as number)
  t.ok(delays.every((d, i) => d >= 0 && d < Math.min(40, 10 * 2 ** i)), `delays ${delays.join(', ')} stay under their caps`)
  await t.rejects(sb.push({ to: ['a'], event: 'e' }), { code: 'unavailable' })
})

t.test('a lost connection: writes are not resent (connection_lost), reads are retried once over HTTP', async (t) => {
  const fake = await startFakeRouter(t, { answer: (req) => (req.via === 'pipeline' ? new Promise<never>(() => undefined) : defaultAnswer(req)) })
  const sb = client(t, fake)
  await sb.connect()
  const writes: Promise<unknown>[] = [sb.push({ to: ['a'], event: 'e' }), sb.broadcast({ event: 'e' }), sb.disconnect({ userId: 'a' })]
  const reads = [sb.presence('a'), sb.presenceQuery(['a', 'b']), sb.nodes()] as const
  await fake.received(6)
  dropSockets(fake)
  for (const write of writes) await t.rejects(write, { code: 'connection_lost', status: undefined })
  t.same(await reads[0], { userId: 'a', online: false, connections: [] })
  t.same(await reads[1], { online: [], offline: ['a', 'b'] })
  t.same(await reads[2], { nodes: [] })
  const byOp = (op: string) => fake.requests.filter((r) => r.op === op).map((r) => r.via)
  for (const op of ['push', 'broadcast', 'disconnect']) t.same(byOp(op), ['pipeline'], `${op} was sent once`)
  for (const op of ['presence', 'presence.query', 'nodes']) t.same(byOp(op), ['pipeline', 'http'], `${op} was retried over HTTP`)
  const presence = fake.requests.filter((r) => r.op === 'presence')
  t.equal(presence[0]!.id, presence[1]!.id, 'the retry keeps its request id')
})

t.test('writes with an idempotencyKey are resent once over HTTP with the same key when the pipeline is lost', async (t) => {
  const fake = await startFakeRouter(t, { answer: (req) => (req.via === 'pipeline' ? new Promise<never>(() => undefined) : defaultAnswer(req)) })
  const sb = client(t, fake)
  await sb.connect()
  const push = sb.push({ to: ['a'], event: 'e' }, { idempotencyKey: 'key-1' })
  const broadcast = sb.broadcast({ event: 'e' }, { idempotencyKey: 'key-2' })
  await fake.received(2)
  dropSockets(fake)
  await push
  await broadcast
  const sent = (op: string) => fake.requests.filter((r) => r.op === op).map((r) => `${r.via} ${r.idempotencyKey}`)
  t.same(sent('push'), ['pipeline key-1', 'http key-1'])
  t.same(sent('broadcast'), ['pipeline key-2', 'http key-2'])
  await t.rejects(sb.presence('a', { idempotencyKey: 'k' }), { code: 'invalid_argument' }, 'only writes take a key')
  await t.rejects(sb.push({ to: ['a'], event: 'e' }, { idempotencyKey: 'has space' }), { code: 'invalid_argument' })
})

t.test('a router without the pipeline (404 at the upgrade): HTTP from then on, no retries', async (t) => {
  const fake = await startFakeRouter(t, { refuseUpgrade: 404 })
  const sb = client(t, fake)
  await sb.connect()
  t.equal(sb.state, 'http')
  await Promise.all([sb.push({ to: ['a'], event: 'e' }), sb.presence('a'), sb.nodes()])
  await sb.push({ to: ['b'], event: 'e' })
  t.same(vias(fake), ['http', 'http', 'http', 'http'])
  t.equal(fake.upgrades.count, 1)
})

t.test('a refused API key (401 at the upgrade) rejects calls as unauthorized, without a retry loop', async (t) => {
  const fake = await startFakeRouter(t)
  const sb = client(t, fake, { apiKey: 'not-the-key-0123456789' })
  await t.rejects(sb.connect(), { code: 'unauthorized', status: 401 })
  t.equal(sb.state, 'unauthorized')
  for (let i = 0; i < 5; i++) await t.rejects(sb.push({ to: ['a'], event: 'e' }), { code: 'unauthorized', status: 401 })
  await t.rejects(sb.nodes(), { code: 'unauthorized', message: 'the router refused the API key: refused with 401' })
  t.equal(fake.requests.length, 0, 'nothing was sent over HTTP either')
  t.equal(fake.upgrades.count, 1)

  const lazy = client(t, fake, { apiKey: 'not-the-key-0123456789' })
  await t.rejects(lazy.presence('a'), { code: 'unauthorized', status: 401 }, 'a first call, before the pipeline is open, gets the HTTP 401')
})

t.test('the router\'s error codes and statuses are kept, on both transports', async (t) => {
  const fake = await startFakeRouter(t, {
    answer: (req) =>
      req.op === 'push'
        ? { status: 400, body: { error: { code: 'invalid_request', message: 'event: Too small: expected string to have >=1 characters' } } }
        : { status: 503, body: { error: { code: 'registry_unavailable', message: 'the registry is unavailable; retry later' } } },
  })
  for (const transport of ['pipeline', 'http'] as const) {
    const sb = client(t, fake, { transport })
    await sb.connect()
    await t.rejects(sb.push({ to: ['a'], event: '' }), { code: 'invalid_request', status: 400, message: /^event: / }, transport)
    await t.rejects(sb.presence('a'), { code: 'registry_unavailable', status: 503 }, transport)
  }
  t.same(vias(fake), ['pipeline', 'pipeline', 'http', 'http'])
})

t.test('HTTP failures: an answer that is not JSON, and a router that cannot be reached', async (t) => {
  const fake = await startFakeRouter(t, { answer: () => ({ status: 502, body: '<html>bad gateway</html>' }) })
  const sb = client(t, fake, { transport: 'http' })
  await t.rejects(sb.nodes(), { code: 'bad_answer', status: 502, message: /not JSON: <html>bad gateway/ })
  const port = fake.port
  await fake.close()
  const gone = client(t, { ...fake, url: `http://127.0.0.1:${port}` }, { transport: 'http' })
  await t.rejects(gone.nodes(), { code: 'unavailable', message: /cannot reach the router: .*ECONNREFUSED/ })
})

t.test('request ids: generated ones are unique and valid; the caller\'s own travel on both transports', async (t) => {
  const fake = await startFakeRouter(t)
  const sb = client(t, fake)
  await sb.connect()
  await Promise.all(Array.from({ length: 50 }, () => sb.nodes()))
  const ids = fake.requests.map((r) => r.id)
  t.equal(new Set(ids).size, 50)
  t.ok(ids.every((id) => REQUEST_ID.test(id) && id.length <= 16), `e.g. ${ids[0]}`)

  await sb.nodes({ requestId: 'order-42:push/1' })
  t.equal(fake.requests.at(-1)?.id, 'order-42:push/1')
  const http = client(t, fake, { transport: 'http' })
  await http.nodes({ requestId: 'order-43' })
  t.equal(fake.httpHeaders.at(-1)?.['x-request-id'], 'order-43')
  await t.rejects(sb.nodes({ requestId: 'has space' }), { code: 'invalid_argument' })
  await t.rejects(sb.nodes({ requestId: '' }), { code: 'invalid_argument' })
  t.equal(fake.requests.length, 52, 'a bad id is never sent')
})

t.test('an id already in flight on the pipeline, and a frame too large for it, go over HTTP', async (t) => {
  const release = deferred()
  const fake = await startFakeRouter(t, { answer: (req) => (req.id === 'dup' && req.via === 'pipeline' ? release.promise.then(() => defaultAnswer(req)) : defaultAnswer(req)) })
  const sb = client(t, fake, { maxPipelineFrameBytes: 1_024 })
  await sb.connect()
  const first = sb.nodes({ requestId: 'dup' })
  await fake.received(1)
  await sb.nodes({ requestId: 'dup' })
  release.resolve()
  await first
  await sb.push({ to: ['a'], event: 'e', data: 'x'.repeat(2_000) })
  t.same(vias(fake), ['pipeline', 'http', 'http'])
})

t.test('a user id is percent-encoded in the HTTP path', async (t) => {
  const fake = await startFakeRouter(t)
  const sb = client(t, fake, { transport: 'http' })
  t.same(await sb.presence('a/b c?d#é'), { userId: 'a/b c?d#é', online: false, connections: [] })
})

t.test('call(op): every operation of the table by its name, the same request on both transports', async (t) => {
  const room = 'm/42 x'
  const bodies: Record<PipelineOp, unknown> = {
    push: { to: ['a'], event: 'e', data: 1 },
    broadcast: { event: 'e', data: 1 },
    presence: { userId: 'a/b c' },
    'presence.query': { userIds: ['a'] },
    disconnect: { userId: 'a' },
    'user.revoke': { userId: 'a/b c', reason: 'bye' },
    nodes: undefined,
    'room.add': { room, userIds: ['a'] },
    'room.remove': { room, userIds: ['a'] },
    'room.members': { room, cursor: 'a', limit: '10' },
    'room.info': { room },
    'room.presence': { room },
    'room.clear': { room },
    'room.delete': { room },
  }
  for (const transport of ['pipeline', 'http'] as const) {
    const fake = await startFakeRouter(t)
    const sb = client(t, fake, { transport })
    if (transport === 'pipeline') await sb.connect()
    for (const op of OPERATION_NAMES) await sb.call(op, bodies[op])
    t.same(fake.requests.map((r) => [r.op, r.body, r.via]), OPERATION_NAMES.map((op) => [op, bodies[op], transport]), transport)
  }
  const sb = client(t, await startFakeRouter(t))
  await t.rejects(sb.call('room.rename' as PipelineOp, { room }), { code: 'invalid_argument', message: 'op: no operation "room.rename"' })
})

t.test('calls made in one event-loop turn leave in one socket write', async (t) => {
  const fake = await startFakeRouter(t)
  const sb = client(t, fake)
  await sb.connect()
  let writes = 0
  const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (this: Socket, ...args: unknown[]) => unknown>
  const { _write, _writev } = proto
  proto._write = function (...args) {
    if (this.remotePort === fake.port) writes++
    return _write.apply(this, args)
  }
  proto._writev = function (...args) {
    if (this.remotePort === fake.port) writes++
    return _writev.apply(this, args)
  }
  t.teardown(() => Object.assign(proto, { _write, _writev }))
  await Promise.all(Array.from({ length: 100 }, (_, i) => sb.push({ to: [`u${i}`], event: 'e' })))
  t.equal(fake.requests.length, 100)
  t.equal(writes, 1, '100 frames, one write')
})

t.test('close() rejects what is pending, and later calls', async (t) => {
  const fake = await startFakeRouter(t, { answer: () => new Promise<never>(() => undefined) })
  const sb = client(t, fake, { maxInFlight: 1 })
  await sb.connect()
  const sent = sb.push({ to: ['a'], event: 'e' })
  const waiting = sb.nodes()
  await fake.received(1)
  const outcomes = [t.rejects(sent, { code: 'closed' }), t.rejects(waiting, { code: 'closed' })]
  await sb.close()
  await Promise.all(outcomes)
  await t.rejects(sb.nodes(), { code: 'closed' })
  await t.rejects(sb.connect(), { code: 'closed' })
  t.equal(sb.state, 'closed')
})

t.test('close() while the pipeline is still opening cuts the attempt', async (t) => {
  // A server that takes the connection and never answers the upgrade.
  const sockets: Socket[] = []
  const server = createServer((socket) => sockets.push(socket))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiKey: 'k'.repeat(16) })
  const connecting = sb.connect()
  const outcome = t.rejects(connecting, { code: 'closed' })
  while (sockets.length === 0) await once(server, 'connection')
  t.equal(sb.state, 'connecting')
  const ended = once(sockets[0]!, 'close')
  await sb.close()
  await outcome
  await ended
  t.pass('the half-open socket was closed')
})

t.test('a body that is not JSON rejects as invalid_argument, and is not sent', async (t) => {
  const fake = await startFakeRouter(t)
  const sb = client(t, fake, { maxInFlight: 1 })
  await sb.connect()
  await t.rejects(sb.push({ to: ['a'], event: 'e', data: { n: 1n } }), { code: 'invalid_argument', message: /not JSON/ })
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  await t.rejects(sb.broadcast({ event: 'e', data: cyclic }), { code: 'invalid_argument' })
  t.same((await sb.push({ to: ['b'], event: 'e' })).delivered, ['b'], 'no slot was lost')
  t.equal(fake.requests.length, 1)
})

const BACKEND = fileURLToPath(new URL('../../packages/backend/dist/index.js', import.meta.url))

/** Runs `body` in a child process with `sb` connected to the fake; resolves with its exit code (null if killed at the deadline) and output. */
function inChild(fake: FakeRouter, body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `
    const { SwitchboardBackend } = await import(${JSON.stringify(BACKEND)})
    const sb = new SwitchboardBackend({ url: ${JSON.stringify(fake.url)}, apiKey: ${JSON.stringify(fake.apiKey)} })
    ${body}`
  return new Promise((resolve) =>
    // Not the test runner's environment: its NODE_OPTIONS (TS loader, coverage) would slow the child down.
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env.PATH ?? '' }, timeout: 10_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    ),
  )
}

t.test('after close() nothing is left: no socket, no timer; the process exits', async (t) => {
  const fake = await startFakeRouter(t, { answer: (req) => (req.op === 'nodes' ? new Promise<never>(() => undefined) : defaultAnswer(req)) })
  const run = await inChild(
    fake,
    `await sb.connect()
    await sb.push({ to: ['a'], event: 'e' })
    await sb.presence('a', { timeoutMs: 60000 })
    const pending = sb.nodes({ timeoutMs: 60000 }).catch((e) => e.code)
    await new Promise((r) => setTimeout(r, 20))
    await sb.close()
    console.log(await pending)
    console.log(JSON.stringify(process.getActiveResourcesInfo().filter((r) => !['TTYWrap', 'PipeWrap'].includes(r))))`,
  )
  t.equal(run.code, 0, run.stderr)
  t.same(run.stdout.trim().split('\n'), ['closed', '[]'])
})

t.test('an idle client does not keep the process alive, even without close()', async (t) => {
  const fake = await startFakeRouter(t)
  const run = await inChild(
    fake,
    `await sb.connect()
    await sb.push({ to: ['a'], event: 'e' })
    console.log(sb.state)`,
  )
  t.equal(run.code, 0, run.stderr)
  t.equal(run.stdout.trim(), 'connected')
})

t.test('options are checked at construction', async (t) => {
  const base = { url: 'http://127.0.0.1:3000', apiKey: 'k'.repeat(16) }
  const bad: Partial<BackendOptions>[] = [{ url: 'nope' }, { url: 'ftp://x' }, { apiKey: '' }, { maxInFlight: 0 }, { timeoutMs: 1.5 }, { transport: 'smoke' as 'http' }]
  for (const options of bad) t.throws(() => new SwitchboardBackend({ ...base, ...options }), { code: 'invalid_argument' }, JSON.stringify(options))
  const sb = new SwitchboardBackend(base)
  t.equal(sb.state, 'idle', 'nothing is opened before the first call')
  await sb.close()
})


t.test('client tokens verify on the edge: HS256 with the secret, ES256 and RS256 with a private key', async (t) => {
  const secret = 's'.repeat(32)
  const rules = { algorithms: ['HS256', 'RS256', 'ES256'] as ('HS256' | 'RS256' | 'ES256')[], clockToleranceS: 5, issuer: 'https://auth.example', audience: 'switchboard' }
  const hs = createTokenVerifier({ secret }, rules)
  t.equal(hs(await mintClientToken({ secret, userId: 'alice', issuer: rules.issuer, audience: rules.audience })).userId, 'alice')
  const token = await mintClientToken({ secret, userId: 'bob', expiresIn: 60 })
  const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number
  t.ok(Math.abs(exp - (Date.now() / 1000 + 60)) < 5, 'a number is a span in seconds')
  for (const type of ['ec', 'rsa'] as const) {
    const pair = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })
    const verify = createTokenVerifier({ publicKey: pair.publicKey }, rules)
    const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    t.equal(verify(await mintClientToken({ privateKey: pem, userId: `carol-${type}`, issuer: rules.issuer, audience: rules.audience })).userId, `carol-${type}`, type)
  }
  await t.rejects(mintClientToken({ secret: 'short', userId: 'a' }), { code: 'invalid_argument' })
  await t.rejects(mintClientToken({ secret, userId: '' }), { code: 'invalid_argument' })
  await t.rejects(mintClientToken({ userId: 'a' }), { code: 'invalid_argument' })
  await t.rejects(mintClientToken({ secret, userId: 'a', algorithm: 'ES256' }), { code: 'invalid_argument' })
})

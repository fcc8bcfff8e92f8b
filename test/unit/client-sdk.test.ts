// The client SDK with a fake WebSocket and a fake clock: connection states, backoff bounds and
// spread, the close-code rules, token fetching, dead-connection detection, and close() leaving
// nothing behind.
import t from 'tap'
import { ACK_EVERY_MS, CloseCode, DEAD_CONNECTION_CODE, Switchboard, type Clock, type StateChange, type SwitchboardOptions, type WebSocketLike } from '@switchboard/client'

class FakeClock implements Clock {
  #now = 1_000_000
  #timers = new Map<number, { at: number; fn: () => void }>()
  #seq = 0
  now = () => this.#now
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.#seq
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn })
    return id
  }
  clearTimeout = (id: unknown) => {
    this.#timers.delete(id as number)
  }
  get pending(): number {
    return this.#timers.size
  }
  /** The delay until the next timer, or undefined. */
  get nextInMs(): number | undefined {
    const ats = [...this.#timers.values()].map((x) => x.at)
    return ats.length > 0 ? Math.min(...ats) - this.#now : undefined
  }
  /** Moves time forward, running every timer due on the way, in order. */
  advance(ms: number): void {
    const until = this.#now + ms
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, x]) => x.at <= until).sort((a, b) => a[1].at - b[1].at)[0]
      if (!due) break
      this.#timers.delete(due[0])
      this.#now = due[1].at
      due[1].fn()
    }
    this.#now = until
  }
}

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = []
  readyState = 0
  onopen: WebSocketLike['onopen'] = null
  onmessage: WebSocketLike['onmessage'] = null
  onclose: WebSocketLike['onclose'] = null
  onerror: WebSocketLike['onerror'] = null
  readonly sent: string[] = []
  closedWith: { code?: number; reason?: string } | undefined
  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeSocket.all.push(this)
  }
  send(data: string): void {
    this.sent.push(data)
  }
  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason }
  }
  // What the edge does:
  welcome(connId = 'c1', nodeId = 'edge-1'): void {
    this.readyState = 1
    this.onmessage?.({ data: JSON.stringify({ type: 'welcome', connId, nodeId }) })
  }
  frame(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3
    this.onclose?.({ code, reason })
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve))

function setup(over: Partial<SwitchboardOptions> = {}) {
  FakeSocket.all = []
  const clock = new FakeClock()
  const tokens: string[] = []
  let n = 0
  const sb = new Switchboard({
    url: 'wss://push.example.com',
    getToken: () => {
      const token = `tok${++n}`
      tokens.push(token)
      return token
    },
    WebSocket: FakeSocket,
    clock,
    random: () => 0.5,
    ...over,
  })
  const states: StateChange[] = []
  sb.on('state', (s) => states.push(s))
  const last = () => FakeSocket.all.at(-1)!
  return { sb, clock, tokens, states, last }
}

t.test('connects to /v1/ws with the token as the bearer subprotocol, never in the URL; connected at the welcome', async (t) => {
  const { sb, states, last } = setup()
  sb.connect()
  await flush()
  t.equal(last().url, 'wss://push.example.com/v1/ws')
  t.same(last().protocols, ['switchboard.v1', 'bearer.tok1', 'resume.start'], 'no position yet: resume.start asks where to resume from')
  t.notMatch(last().url, /tok1/)
  t.equal(sb.state, 'connecting')
  last().welcome('c9', 'edge-7')
  t.same(states, [{ state: 'connecting', attempt: 0 }, { state: 'connected', connId: 'c9', nodeId: 'edge-7' }])
  const custom = setup({ url: 'ws://127.0.0.1:8080/custom/path' })
  custom.sb.connect()
  await flush()
  t.equal(custom.last().url, 'ws://127.0.0.1:8080/custom/path', 'an explicit path is kept')
})

t.test('pushes reach push listeners and listeners of their event name; reserved names only through push', async (t) => {
  const { sb, last } = setup()
  const all: unknown[] = []
  const chat: unknown[] = []
  const states: unknown[] = []
  sb.on('push', (p) => all.push(p))
  sb.on('chat.message', (data, push) => chat.push([data, push.id]))
  const off = sb.on('state', (s) => states.push(s))
  sb.connect()
  await flush()
  last().welcome()
  off()
  const seen = states.length
  last().frame({ type: 'push', id: 'p1', event: 'chat.message', data: { text: 'hi' }, ts: 5 })
  last().frame({ type: 'push', id: 'p2', event: 'state', data: 1, ts: 6 })
  last().frame({ type: 'pong' })
  last().onmessage?.({ data: 'not json' })
  t.same(all, [{ id: 'p1', event: 'chat.message', data: { text: 'hi' }, ts: 5 }, { id: 'p2', event: 'state', data: 1, ts: 6 }])
  t.same(chat, [[{ text: 'hi' }, 'p1']])
  t.equal(seen, 2, 'connecting, connected')
  t.equal(states.length, seen, 'a push named "state" is not a state change; an unsubscribed listener hears nothing more')
})

t.test('a push asking for a receipt is acknowledged after its listeners returned (a throwing one too), in one frame per turn', async (t) => {
  const { sb, last } = setup()
  const order: string[] = []
  sb.on('push', (p) => order.push(`listener ${p.id} sent ${last().sent.length}`))
  sb.on('boom', () => {
    throw new Error('app bug')
  })
  sb.on('error', () => undefined)
  sb.connect()
  await flush()
  last().welcome()
  last().frame({ type: 'push', id: 'a1', event: 'x', data: 1, ts: 1, ack: true })
  last().frame({ type: 'push', id: 'p2', event: 'x', data: 2, ts: 2 })
  last().frame({ type: 'push', id: 'a3', event: 'boom', data: 3, ts: 3, ack: true })
  t.same(order, ['listener a1 sent 0', 'listener p2 sent 0', 'listener a3 sent 0'], 'nothing sent while listeners run')
  await flush()
  t.same(last().sent.map((f) => JSON.parse(f)), [{ type: 'ack', ids: ['a1', 'a3'] }], 'one frame for the turn; the push without ack is not acknowledged')
})

t.test('acks leave at most one frame per ACK_EVERY_MS, on the socket open then; a replay of a handled push is acknowledged again', async (t) => {
  const { sb, clock, last } = setup()
  const pushes: string[] = []
  sb.on('push', (p) => pushes.push(p.id))
  sb.connect()
  await flush()
  last().welcome()
  last().frame({ type: 'push', id: 'b1', event: 'x', data: 1, ts: 1, ack: true })
  await flush()
  last().frame({ type: 'push', id: 'b2', event: 'x', data: 2, ts: 2, ack: true })
  await flush()
  last().frame({ type: 'push', id: 'b2', event: 'x', data: 2, ts: 2, ack: true })
  await flush()
  t.equal(last().sent.length, 1, 'the second turn waits for the interval')
  clock.advance(ACK_EVERY_MS - 1)
  t.equal(last().sent.length, 1)
  clock.advance(1)
  t.same(last().sent.map((f) => JSON.parse(f).ids), [['b1'], ['b2', 'b2']], 'the replayed b2 is acknowledged again (the app has it)')
  t.same(pushes, ['b1', 'b2'], 'and handed to the app once')
  last().frame({ type: 'push', id: 'b3', event: 'x', data: 3, ts: 3, ack: true })
  last().serverClose(1006)
  clock.advance(ACK_EVERY_MS)
  t.equal(FakeSocket.all[0]!.sent.length, 2, 'no socket open: the ack is dropped (the edge answered unacked at the close)')
  sb.close()
  t.equal(clock.pending, 0, 'close() leaves no ack timer')
})

t.test('lost connections are retried with full-jitter backoff, capped, with a fresh token each time', async (t) => {
  for (const r of [0, 0.5, 0.999]) {
    const { sb, clock, tokens, states, last } = setup({ random: () => r })
    sb.connect()
    await flush()
    const delays: number[] = []
    for (let i = 0; i < 10; i++) {
      last().serverClose(1006)
      const s = states.at(-1) as Extract<StateChange, { state: 'disconnected' }>
      t.equal(s.willRetry, true)
      delays.push(s.delayMs!)
      t.equal(clock.nextInMs, s.delayMs, 'the retry is scheduled at the announced delay')
      clock.advance(s.delayMs!)
      await flush()
    }
    delays.forEach((d, i) => t.ok(d >= 0 && d <= Math.min(30_000, 500 * 2 ** i) * r + 1e-9 && d >= Math.min(30_000, 500 * 2 ** i) * r - 1e-9, `random ${r}, attempt ${i}: ${d} ms = ${r} × min(30 s, 0.5 s × 2^${i})`))
    t.equal(tokens.length, 11, 'getToken called for every attempt')
    t.same(FakeSocket.all.map((s) => s.protocols[1]), tokens.map((tok) => `bearer.${tok}`), 'each attempt with its own token')
    sb.close()
  }
})

t.test('the jitter spreads reconnects over the whole window', async (t) => {
  const delays: number[] = []
  for (let i = 0; i < 400; i++) {
    const { sb, states, last } = setup({ random: Math.random })
    sb.connect()
    await flush()
    last().serverClose(1006)
    delays.push((states.at(-1) as { delayMs: number }).delayMs)
    sb.close()
  }
  const bins = [0, 0, 0, 0]
  for (const d of delays) bins[Math.min(3, Math.floor(d / 125))]!++
  t.ok(delays.every((d) => d >= 0 && d < 500), 'first retry within [0, 500) ms')
  t.ok(bins.every((b) => b > 50), `spread over the window in quarters: ${bins.join(', ')}`)
})

t.test('close codes: 1001 a short random delay, 45xx final, 4008 and 4009 backoff', async (t) => {
  const drain = setup({ random: () => 0.999 })
  drain.sb.connect()
  await flush()
  for (let i = 0; i < 5; i++) {
    drain.last().serverClose(1006)
    drain.clock.advance(60_000)
    await flush()
  }
  drain.last().serverClose(CloseCode.draining)
  t.ok((drain.states.at(-1) as { delayMs: number }).delayMs <= 2_000, 'after a drain, at most 2 s whatever the backoff reached')

  for (const code of [4500, 4501, 4502, 4999]) {
    const { sb, clock, states, last } = setup()
    sb.connect()
    await flush()
    last().welcome()
    last().serverClose(code, 'bye')
    t.same(states.at(-1), { state: 'disconnected', code, reason: 'bye', willRetry: false }, `${code} is final`)
    t.equal(clock.pending, 0, `${code}: no timer left`)
  }

  for (const code of [CloseCode.tooSlow, CloseCode.rateLimited]) {
    const slow = setup({ random: () => 0.999 })
    slow.sb.connect()
    await flush()
    slow.last().serverClose(code)
    slow.clock.advance(1_000)
    await flush()
    slow.last().serverClose(code)
    const after = slow.states.at(-1) as { willRetry: boolean; delayMs: number }
    t.ok(after.willRetry && after.delayMs > 500, `${code} backs off like a lost connection`)
  }
})

t.test('a connection up for a minute resets the backoff', async (t) => {
  const { sb, clock, states, last } = setup({ random: () => 0.999 })
  sb.connect()
  await flush()
  for (let i = 0; i < 6; i++) {
    last().serverClose(1006)
    clock.advance(60_000)
    await flush()
  }
  last().welcome()
  clock.advance(59_000)
  last().frame({ type: 'pong' })
  last().serverClose(1006)
  t.ok((states.at(-1) as { delayMs: number }).delayMs > 16_000, 'up 59 s: the backoff goes on')
  clock.advance(60_000)
  await flush()
  last().welcome()
  clock.advance(20_000)
  last().frame({ type: 'pong' })
  clock.advance(20_000)
  last().frame({ type: 'pong' })
  clock.advance(20_000)
  last().serverClose(1006)
  t.ok((states.at(-1) as { delayMs: number }).delayMs < 500, 'up 60 s: back to the first delay')
})

t.test('a getToken that throws stops the client and says why; a slow one is abandoned by close()', async (t) => {
  const failing = setup({ getToken: () => Promise.reject(new Error('signed out')) })
  const errors: Error[] = []
  failing.sb.on('error', (e) => errors.push(e))
  failing.sb.connect()
  await flush()
  t.same(errors.map((e) => e.message), ['signed out'])
  t.match(failing.states.at(-1), { state: 'disconnected', willRetry: false })
  t.equal(failing.clock.pending, 0, 'no timer')
  t.equal(FakeSocket.all.length, 0, 'no socket')

  let release: (token: string) => void = () => undefined
  const slow = setup({ getToken: () => new Promise<string>((resolve) => (release = resolve)) })
  slow.sb.connect()
  slow.sb.close()
  release('late')
  await flush()
  t.equal(FakeSocket.all.length, 0, 'no socket opened after close()')
})

t.test('a refused handshake (e.g. 401, seen as 1006 without a welcome) is retried with a new token', async (t) => {
  const { sb, clock, last, tokens } = setup()
  sb.connect()
  await flush()
  last().serverClose(1006)
  clock.advance(1_000)
  await flush()
  t.same(tokens, ['tok1', 'tok2'])
  t.same(last().protocols, ['switchboard.v1', 'bearer.tok2', 'resume.start'])
})

t.test('a silent connection is pinged, then closed as dead and retried', async (t) => {
  const { sb, clock, states, last } = setup({ pingIntervalMs: 25_000, pongTimeoutMs: 10_000 })
  sb.connect()
  await flush()
  last().welcome()
  clock.advance(24_999)
  t.same(last().sent, [], 'no ping while frames are recent')
  clock.advance(1)
  t.same(last().sent, ['{"type":"ping"}'], 'a ping after the interval')
  last().frame({ type: 'pong' })
  clock.advance(25_000)
  t.equal(last().sent.length, 2, 'the pong reset the clock: next ping one interval later')
  const socket = last()
  clock.advance(10_000)
  t.same(socket.closedWith, { code: DEAD_CONNECTION_CODE, reason: 'no frame from the edge' }, 'closed as dead after the pong timeout')
  t.match(states.at(-1), { state: 'disconnected', code: DEAD_CONNECTION_CODE, willRetry: true })
  clock.advance(1_000)
  await flush()
  t.not(last(), socket, 'and retried')
})

t.test('close() stops everything: socket closed with 1000, no timer left, connect() starts again', async (t) => {
  const { sb, clock, states, last } = setup()
  sb.connect()
  await flush()
  last().welcome()
  const socket = last()
  sb.close()
  t.same(socket.closedWith, { code: 1000, reason: 'client closed' })
  t.equal(clock.pending, 0, 'no timer left')
  t.same(states.at(-1), { state: 'disconnected', code: 1000, reason: 'client closed', willRetry: false })
  socket.serverClose(1000)
  t.equal(states.filter((s) => s.state === 'disconnected').length, 1, 'the socket\'s own close event is ignored')
  sb.connect()
  await flush()
  t.equal(FakeSocket.all.length, 2)

  const waiting = setup()
  waiting.sb.connect()
  await flush()
  waiting.last().serverClose(1006)
  t.equal(waiting.clock.pending, 1, 'a retry pending')
  waiting.sb.close()
  t.equal(waiting.clock.pending, 0, 'close() cancels the pending retry')
})

t.test('a listener that throws does not break the client or the other listeners', async (t) => {
  const { sb, last } = setup()
  const got: string[] = []
  const errors: string[] = []
  sb.on('push', () => {
    throw new Error('app bug')
  })
  sb.on('push', (p) => got.push(p.id))
  sb.on('error', (e) => errors.push(e.message))
  sb.connect()
  await flush()
  last().welcome()
  last().frame({ type: 'push', id: 'p1', event: 'e', data: null, ts: 1 })
  t.same(got, ['p1'])
  t.same(errors, ['app bug'])
})

t.test('without a WebSocket implementation the constructor says what to pass', async (t) => {
  const saved = (globalThis as { WebSocket?: unknown }).WebSocket
  ;(globalThis as { WebSocket?: unknown }).WebSocket = undefined
  t.throws(() => new Switchboard({ url: 'ws://x', getToken: () => 't' }), /options\.WebSocket/)
  ;(globalThis as { WebSocket?: unknown }).WebSocket = saved
})

t.test('in a browser: no attempts while offline, a retry at once when back online or visible; close() removes the listeners', async (t) => {
  const listeners = new Map<string, Set<() => void>>()
  const target = () => ({
    addEventListener: (name: string, fn: () => void) => (listeners.get(name) ?? listeners.set(name, new Set()).get(name)!).add(fn),
    removeEventListener: (name: string, fn: () => void) => listeners.get(name)?.delete(fn),
  })
  const doc = { ...target(), visibilityState: 'hidden' }
  const nav = { onLine: false }
  const g = globalThis as Record<string, unknown>
  const saved = ['window', 'document', 'navigator'].map((k) => [k, Object.getOwnPropertyDescriptor(g, k)] as const)
  for (const [k, v] of [['window', target()], ['document', doc], ['navigator', nav]] as const) Object.defineProperty(g, k, { value: v, configurable: true, writable: true })
  t.teardown(() => {
    for (const [k, d] of saved) d ? Object.defineProperty(g, k, d) : delete g[k]
  })
  const fire = (name: string) => [...(listeners.get(name) ?? [])].forEach((fn) => fn())

  const { sb, clock, last } = setup({ random: () => 0.5 })
  sb.connect()
  await flush()
  last().welcome()
  last().serverClose(1006)
  clock.advance(60_000)
  await flush()
  t.equal(FakeSocket.all.length, 1, 'offline: the retry waits instead of failing')
  nav.onLine = true
  fire('online')
  clock.advance(1_000)
  await flush()
  t.equal(FakeSocket.all.length, 2, 'online again: retried within a second')
  // Fail until the backoff is long, then make the page visible.
  for (let i = 0; i < 5; i++) {
    last().serverClose(1006)
    clock.advance(clock.nextInMs!)
    await flush()
  }
  const before = FakeSocket.all.length
  last().serverClose(1006)
  t.ok(clock.nextInMs! > 5_000, `the backoff is now ${clock.nextInMs} ms`)
  doc.visibilityState = 'visible'
  fire('visibilitychange')
  clock.advance(1_000)
  await flush()
  t.equal(FakeSocket.all.length, before + 1, 'the page became visible: retried within a second, not after the backoff')
  t.ok([...listeners.values()].some((set) => set.size > 0), 'listening while active')
  sb.close()
  t.ok([...listeners.values()].every((set) => set.size === 0), 'close() removed its listeners')
})

/** sessionStorage's shape, in memory. */
class MemoryStorage {
  readonly items = new Map<string, string>()
  getItem = (k: string) => this.items.get(k) ?? null
  setItem = (k: string, v: string) => void this.items.set(k, v)
  removeItem = (k: string) => void this.items.delete(k)
}

const keptPush = (offset: number, epoch = 'ab1') => ({ type: 'push', id: `k${offset}`, event: 'e', data: offset, ts: 1, epoch, offset })

/** A client with storage, connected, and the offsets its app saw. */
async function recovering(over: Partial<SwitchboardOptions> = {}) {
  const storage = new MemoryStorage()
  const s = setup({ storage, gapTimeoutMs: 5_000, ...over })
  const seen: (number | undefined)[] = []
  s.sb.on('push', (p) => seen.push(p.offset))
  s.sb.connect()
  await flush()
  s.last().welcome()
  return { ...s, storage, seen }
}

t.test('kept pushes move the position, kept in storage; the next connection offers it as resume.<epoch>.<offset>', async (t) => {
  const { sb, last, storage, seen, states } = await recovering()
  last().frame(keptPush(1))
  last().frame(keptPush(2))
  last().frame({ type: 'push', id: 'plain', event: 'e', data: 0, ts: 1 })
  t.same(seen, [1, 2, undefined])
  t.same(sb.position, { epoch: 'ab1', offset: 2 })
  t.same([...storage.items.values()], ['ab1.2'], 'in storage, under one key')
  last().serverClose(1006)
  await flush()
  t.equal(sb.state, 'disconnected')
  t.same(states.at(-1), { state: 'disconnected', code: 1006, reason: '', willRetry: true, delayMs: 250 })
})

t.test('a reloaded page resumes from storage; recovered: true comes with the welcome, then the replay in order', async (t) => {
  const storage = new MemoryStorage()
  storage.setItem('switchboard:wss://push.example.com/v1/ws', 'ab1.7')
  const { sb, last, states } = setup({ storage })
  const seen: number[] = []
  sb.on('push', (p) => seen.push(p.offset!))
  sb.connect()
  await flush()
  t.same(last().protocols, ['switchboard.v1', 'bearer.tok1', 'resume.ab1.7'])
  last().onmessage?.({ data: JSON.stringify({ type: 'welcome', connId: 'c2', nodeId: 'e2', recovered: true }) })
  t.same(states.at(-1), { state: 'connected', connId: 'c2', nodeId: 'e2', recovered: true })
  for (const n of [8, 9]) last().frame(keptPush(n))
  t.same(seen, [8, 9])
  t.equal(storage.getItem('switchboard:wss://push.example.com/v1/ws'), 'ab1.9')
  t.same(setup({ storage: new MemoryStorage() }).sb.position, undefined, 'nothing stored: no position')
  storage.setItem('switchboard:wss://push.example.com/v1/ws', 'garbage')
  t.same(setup({ storage }).sb.position, undefined, 'a malformed stored value is ignored')
})

t.test('recovered: false is surfaced and starts over from the welcome\'s head; the next kept push moves it', async (t) => {
  const storage = new MemoryStorage()
  storage.setItem('switchboard:wss://push.example.com/v1/ws', 'ab1.3')
  const { sb, last, states } = setup({ storage })
  sb.connect()
  await flush()
  last().onmessage?.({ data: JSON.stringify({ type: 'welcome', connId: 'c', nodeId: 'e', recovered: false, epoch: 'cd2', offset: 0 }) })
  t.match(states.at(-1), { state: 'connected', recovered: false })
  t.same(sb.position, { epoch: 'cd2', offset: 0 })
  last().frame(keptPush(1, 'cd2'))
  t.same(sb.position, { epoch: 'cd2', offset: 1 })
  t.equal(storage.getItem('switchboard:wss://push.example.com/v1/ws'), 'cd2.1')
})

t.test('recovered: false with no head (the edge could not read the inbox) keeps the position: the edge\'s inbox head, once it is back, resumes from it', async (t) => {
  const storage = new MemoryStorage()
  storage.setItem('switchboard:wss://push.example.com/v1/ws', 'ab1.3')
  const { sb, last, states, clock } = setup({ storage })
  const seen: number[] = []
  sb.on('push', (p) => seen.push(p.offset!))
  sb.connect()
  await flush()
  last().onmessage?.({ data: JSON.stringify({ type: 'welcome', connId: 'c', nodeId: 'e', recovered: false }) })
  t.match(states.at(-1), { state: 'connected', recovered: false }, 'surfaced')
  t.same(sb.position, { epoch: 'ab1', offset: 3 }, 'nothing is known gone: the position stays')
  t.equal(storage.getItem('switchboard:wss://push.example.com/v1/ws'), 'ab1.3')
  last().frame({ type: 'inbox', epoch: 'ab1', offset: 5 })
  t.same(last().closedWith, { code: 4001, reason: 'resuming: kept pushes wait in the inbox' })
  clock.advance(0)
  await flush()
  t.equal(FakeSocket.all.length, 2, 'reconnected at once')
  t.same(last().protocols.at(-1), 'resume.ab1.3', 'resumed from the position kept')
  last().onmessage?.({ data: JSON.stringify({ type: 'welcome', connId: 'c2', nodeId: 'e', recovered: true }) })
  last().frame(keptPush(4))
  last().frame(keptPush(5))
  t.same(seen, [4, 5], 'what was missed, once, in order')
})

t.test('the welcome\'s head is the position until a kept push moves it; recover: false offers no resume', async (t) => {
  const { sb, last } = setup({ storage: null })
  sb.connect()
  await flush()
  last().onmessage?.({ data: JSON.stringify({ type: 'welcome', connId: 'c', nodeId: 'e', epoch: 'ab1', offset: 4 }) })
  t.same(sb.position, { epoch: 'ab1', offset: 4 }, 'from the head: a push kept while disconnected will be replayed')
  last().frame(keptPush(5))
  t.same(sb.position, { epoch: 'ab1', offset: 5 })
  const off = setup({ storage: null, recover: false })
  off.sb.connect()
  await flush()
  t.same(off.last().protocols, ['switchboard.v1', 'bearer.tok1'])
  off.last().onmessage?.({ data: JSON.stringify({ type: 'welcome', connId: 'c', nodeId: 'e' }) })
  t.equal(off.sb.position, undefined)
})

t.test('the same push id is handed over once: a replay of what came live, a backend retry', async (t) => {
  const { last, seen } = await recovering()
  last().frame(keptPush(1))
  last().frame(keptPush(1))
  last().frame({ ...keptPush(2), id: 'k1' })
  t.same(seen, [1], 'k1 once, whatever its offset')
})

t.test('a kept push ahead of a missing one waits for it; the app gets them in offset order', async (t) => {
  const { clock, last, seen, sb } = await recovering()
  last().frame(keptPush(1))
  last().frame(keptPush(3))
  last().frame(keptPush(4))
  t.same(seen, [1], '3 and 4 held')
  last().frame(keptPush(2))
  t.same(seen, [1, 2, 3, 4])
  t.same(sb.position, { epoch: 'ab1', offset: 4 })
  clock.advance(10_000)
  t.equal(FakeSocket.all.length, 1, 'no resume: the gap was filled')
})

t.test('a gap unfilled past gapTimeoutMs resumes at once from the position, and the replay fills it', async (t) => {
  const { clock, last, seen, states } = await recovering()
  last().frame(keptPush(1))
  last().frame(keptPush(3))
  clock.advance(4_999)
  t.equal(FakeSocket.all.length, 1)
  clock.advance(1)
  t.same(last().closedWith, { code: 4001, reason: 'resuming to fill a gap' })
  t.match(states.at(-2), { state: 'disconnected', code: 4001, willRetry: true, delayMs: 0 })
  t.match(states.at(-1), { state: 'connecting' }, 'at once, no backoff')
  await flush()
  t.equal(FakeSocket.all.length, 2)
  t.same(last().protocols.at(-1), 'resume.ab1.1')
  last().onmessage?.({ data: JSON.stringify({ type: 'welcome', connId: 'c', nodeId: 'e', recovered: true }) })
  last().frame(keptPush(2))
  last().frame(keptPush(3))
  t.same(seen, [1, 2, 3], 'each once, in order')
})

t.test('another inbox life (epoch) starts over from its push; a final close hands held pushes over; close() leaves no gap timer', async (t) => {
  const a = await recovering()
  a.last().frame(keptPush(5))
  a.last().frame(keptPush(2, 'ef9'))
  t.same(a.sb.position, { epoch: 'ef9', offset: 2 })
  a.last().frame(keptPush(4, 'ef9'))
  a.last().serverClose(CloseCode.kicked)
  t.same(a.seen, [5, 2, 4], 'held 4 handed over: no resume will come')

  const b = await recovering()
  b.last().frame(keptPush(1))
  b.last().frame(keptPush(3))
  b.sb.close()
  t.equal(b.clock.pending, 0, 'no timer left')
  t.same(b.seen, [1])
})

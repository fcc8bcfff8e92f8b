// The edge's connection lifecycle without sockets: fake sockets that behave like uWS's, a
// registration whose writes complete when the test says, and a fake clock for the drain.
import t from 'tap'
import pino from 'pino'
import { CloseCode, PONG_FRAME, framedAt, pushFrame, welcomeFrame, type CloseCause, type CloseReason, type Position } from '@switchboard/protocol'
import { MemoryRegistry, type ConnectionInfo, type InboxRead } from '@switchboard/registry'
import { ConnIds } from '../../apps/edge/src/conn-ids.js'
import { replayed } from '../../apps/edge/src/connections.js'
import { createEvictor } from '../../apps/edge/src/evictions.js'
import { FakeClock, settle } from '../helpers/fake-clock.js'
import { ControlledInbox, ControlledRooms, FakeRegistration, FakeSocket, MAX_BACKLOG, MAX_FRAMES_PER_S, MAX_FRAME_BYTES, PING, setup } from '../helpers/fake-connections.js'


t.test("the user's rooms are joined after its registration and before its welcome; every socket that arrived departs once", async (t) => {
  const rooms = new ControlledRooms()
  const { registration, connect, connIdOf } = setup(undefined, undefined, rooms)
  const ws = connect('alice')
  t.same(rooms.calls, [], 'not before the entry is written')
  registration.written(connIdOf(ws))
  await settle()
  t.same(rooms.calls, ['arrive alice'])
  t.same(ws.sent, [], 'no welcome while its rooms are read')
  rooms.joined()
  await settle()
  t.equal(ws.sent.length, 1, 'welcomed once in its rooms')
  ws.clientCloses(1000)
  const early = connect('bob')
  const earlyId = connIdOf(early)
  early.clientCloses(1000)
  registration.written(earlyId)
  await settle()
  const late = connect('cy')
  const lateId = connIdOf(late)
  registration.written(lateId)
  await settle()
  late.clientCloses(1000) // closed while its rooms are read
  rooms.joined()
  await settle()
  t.same(rooms.calls, ['arrive alice', 'depart alice', 'arrive cy', 'depart cy'], 'bob closed before registering: never arrived')
  t.same(late.sent, [], 'a socket closed while joining is not welcomed')
  t.ok(registration.calls.includes(`unregister ${lateId} close`), 'and is unregistered')
})

t.test('the welcome follows the registration, and pings received before it are answered after it', async (t) => {
  const { registration, metrics, connections, connect, send } = setup()
  const ws = connect('alice')
  t.same(registration.calls, ['register p.0'])
  send(ws, PING)
  send(ws, PING)
  t.same(ws.sent, [], 'nothing before the entry is written')
  t.same(connections.sockets.deliver('F', ['alice']), { delivered: [], missing: ['alice'] }, 'not in the index yet')
  registration.written('p.0')
  await settle()
  t.same(ws.sent, [welcomeFrame('p.0', 'edge-1'), PONG_FRAME, PONG_FRAME], 'the welcome, then the owed pongs')
  send(ws, PING)
  t.same(ws.sent.slice(3), [PONG_FRAME], 'a ping after the welcome is answered at once')
  t.same(connections.sockets.deliver('F', ['alice']), { delivered: ['alice'], missing: [] })
  t.equal(metrics.welcomes.total, 1)
  t.equal(metrics.pongs.total, 3)
  t.equal(metrics.framesReceived.total, 3)
})

t.test('a socket closed while registering is unregistered only once its registration resolved', async (t) => {
  const { registration, metrics, connections, connect } = setup()
  const ws = connect('bob')
  ws.clientCloses(1000)
  await settle()
  t.same(registration.calls, ['register p.0'], 'no removal that could overtake the write')
  t.same(connections.liveConnections(), [], 'no longer live')
  registration.written('p.0')
  await settle()
  t.same(registration.calls, ['register p.0', 'unregister p.0 close'])
  t.same(ws.sent, [], 'no welcome')
  t.equal(connections.sockets.size, 0)
  t.same(metrics.closes.byCode, ['1000'])
})

t.test('every open socket, welcomed or not, is live for a resync', async (t) => {
  const { clock, connections, connect, welcomed } = setup()
  const startedAt = clock.now()
  await welcomed('a')
  await clock.advance(250)
  connect('b')
  const gone = await welcomed('c')
  gone.clientCloses(1000)
  t.same(connections.liveConnections(), [
    { userId: 'a', connId: 'p.0', since: startedAt },
    { userId: 'b', connId: 'p.1', since: startedAt + 250 },
  ])
})

/** Each way a welcomed socket closes, and the cause its removal must carry. */
const closePaths: { path: string; close: (ws: FakeSocket, ctx: ReturnType<typeof setup>) => void | Promise<void>; code: number; cause: CloseCause; reason: CloseReason | 'client' }[] = [
  { path: 'the client closes', close: (ws) => ws.clientCloses(1000), code: 1000, cause: 'close', reason: 'client' },
  { path: 'the client sends 4501 itself', close: (ws) => ws.clientCloses(CloseCode.replaced), code: 4501, cause: 'close', reason: 'client' },
  {
    path: 'the disconnect call, whatever code it asks for',
    close: (_ws, { connections }) => void connections.sockets.disconnect('u', CloseCode.replaced, 'replaced'),
    code: 4501,
    cause: 'disconnect_api',
    reason: 'replaced',
  },
  {
    path: 'an eviction under the single-session policy',
    close: (ws, ctx) => evictor(ctx, 'single')([{ userId: 'u', connId: ctx.connIdOf(ws), incId: 'i' }]),
    code: CloseCode.replaced,
    cause: 'replaced',
    reason: 'replaced',
  },
  {
    path: 'an eviction by the per-user limit',
    close: (ws, ctx) => evictor(ctx, 'multi')([{ userId: 'u', connId: ctx.connIdOf(ws), incId: 'i' }]),
    code: CloseCode.tooManyConnections,
    cause: 'evicted',
    reason: 'too_many_connections',
  },
  {
    path: 'a slow consumer',
    close: (ws, { connections }) => {
      ws.backlog = MAX_BACKLOG + 1
      connections.sockets.deliver('F', ['u'])
    },
    code: CloseCode.tooSlow,
    cause: 'evicted',
    reason: 'too_slow',
  },
  {
    path: 'too many frames in a second',
    close: (ws, { send }) => {
      for (let i = 0; i <= MAX_FRAMES_PER_S; i++) send(ws, PING)
    },
    code: CloseCode.rateLimited,
    cause: 'evicted',
    reason: 'rate_limited',
  },
  { path: 'a frame too big', close: (ws, { send }) => send(ws, ' '.repeat(MAX_FRAME_BYTES + 1)), code: CloseCode.messageTooBig, cause: 'evicted', reason: 'message_too_big' },
  { path: 'an invalid frame', close: (ws, { send }) => send(ws, '{"type":"nonsense"}'), code: CloseCode.protocolViolation, cause: 'evicted', reason: 'protocol_violation' },
  {
    path: 'a binary frame',
    close: (ws, { connections }) => connections.received(ws, new ArrayBuffer(1), true),
    code: CloseCode.protocolViolation,
    cause: 'evicted',
    reason: 'protocol_violation',
  },
  {
    path: 'the drain',
    close: async (_ws, { connections, clock }) => {
      connections.beginDrain()
      const done = connections.closeAll(1_000)
      await clock.advance(1_000)
      await done
    },
    code: CloseCode.draining,
    cause: 'drain',
    reason: 'going_away',
  },
]

function evictor({ connections }: ReturnType<typeof setup>, policy: 'single' | 'multi') {
  return createEvictor({
    registry: new MemoryRegistry(), // asked only about connections not on this edge
    internalToken: 't',
    log: pino({ level: 'silent' }),
    policy,
    closeLocal: (connId, reason) => connections.closeById(connId, reason),
  })
}

for (const { path, close, code, cause, reason } of closePaths) {
  t.test(`${path}: closed with ${code}, unregistered with cause ${cause}, counted as ${reason}`, async (t) => {
    const ctx = setup()
    const ws = await ctx.welcomed('u')
    const other = await ctx.welcomed('v')
    await close(ws, ctx)
    await settle()
    t.equal(ws.closedWith?.code, code)
    t.equal(ctx.metrics.closes.labels[0], `${code} ${reason}`, 'edge_disconnects_total{code,reason}')
    t.same(ctx.registration.calls.filter((c) => c.startsWith('unregister')).slice(0, 1), [`unregister p.0 ${cause}`])
    t.equal(ctx.connections.sockets.countOf('u'), 0, 'out of the index')
    if (cause !== 'drain') t.equal(other.closedWith, undefined, 'the other socket stays open')
  })
}

t.test('a socket closed by the edge while registering keeps its cause until the removal', async (t) => {
  const { registration, connect, send } = setup()
  const ws = connect('u')
  send(ws, '{"type":"nonsense"}')
  t.equal(ws.closedWith?.code, CloseCode.protocolViolation)
  registration.written('p.0')
  await settle()
  t.same(registration.calls, ['register p.0', 'unregister p.0 evicted'])
})

t.test('the frame rate is counted per one-second window', async (t) => {
  const { clock, welcomed, send } = setup()
  const ws = await welcomed('u')
  for (let i = 0; i < MAX_FRAMES_PER_S; i++) send(ws, PING)
  await clock.advance(1_000)
  for (let i = 0; i < MAX_FRAMES_PER_S; i++) send(ws, PING)
  t.equal(ws.closedWith, undefined, 'the limit, twice, in two windows')
  send(ws, PING)
  t.equal(ws.closedWith?.code, CloseCode.rateLimited, 'one over the limit in a window')
})

t.test('the drain closes every socket with 1001 spread over drainMs, and registering ones once written', async (t) => {
  const randoms = [0.1, 0.6, 0.9]
  const { clock, registration, connections, connect, welcomed } = setup(new FakeClock(0, () => randoms.shift()!))
  const [a, b, c] = [await welcomed('a'), await welcomed('b'), await welcomed('c')]
  const registering = connect('d')
  t.ok(connections.beginDrain())
  t.notOk(connections.beginDrain(), 'once')
  t.ok(connections.isDraining)
  let done = false
  const drained = connections.closeAll(1_000).then(() => (done = true))
  t.same(clock.pending, [100, 600, 900], 'each at a random moment within drainMs')
  await clock.advance(100)
  t.equal(a.closedWith?.code, CloseCode.draining)
  t.same([b.closedWith, c.closedWith], [undefined, undefined], 'not all at once')
  await settle()
  t.notOk(done, 'not done before the last close')
  c.clientCloses(1000) // before its turn: its timer must not touch it
  registration.written('p.3')
  await settle()
  t.same(registering.closedWith, { code: CloseCode.draining, reason: 'edge draining' }, 'registered while draining: closed, not welcomed')
  t.same(registering.sent, [])
  await clock.advance(900)
  await drained
  t.equal(b.closedWith?.code, CloseCode.draining)
  t.same(
    registration.calls.filter((x) => x.startsWith('unregister')).sort(),
    ['unregister p.0 drain', 'unregister p.1 drain', 'unregister p.2 close', 'unregister p.3 drain'],
  )
  t.equal(connections.sockets.size, 0)
})

const E = 'e1'
const kept = (n: number, epoch = E) => ({ epoch, offset: n, frame: framedAt(pushFrame(`m${n}`, 'e', n, 1), epoch, n) })
const stored = (n: number) => ({ offset: n, frame: pushFrame(`m${n}`, 'e', n, 1) })
const head = (offset: number, epoch = E) => ({ epoch, offset })

t.test('a resume replays what the inbox holds, then the kept pushes that came during the read, with no gap and no duplicate', async (t) => {
  const { registration, connections, connect, inbox, resumes, metrics } = setup()
  const ws = connect('ann', { from: { epoch: E, offset: 2 } })
  registration.written('p.0')
  await settle()
  t.same(ws.sent, [], 'no welcome while the inbox is read')
  t.same(inbox.reads.map((r) => [r.userId, r.from]), [['ann', { epoch: E, offset: 2 }]], 'read after the entry is written')
  const plain = connections.sockets.deliver(pushFrame('p', 'e', 0, 1), ['ann'])
  t.same(plain, { delivered: [], missing: ['ann'] }, 'a plain push during the read is not written, and says so')
  // Kept pushes reach the edge during the read, out of order: 5 (after the replay) and 4 (also in it).
  for (const n of [5, 4]) {
    const k = kept(n)
    t.same(connections.sockets.deliver(pushFrame(`m${n}`, 'e', n, 1), ['ann'], [k]), { delivered: [], missing: ['ann'] }, `kept ${n} held, not written`)
  }
  inbox.reads[0]!.answer({ head: head(4), recovered: true, entries: [stored(3), stored(4)] })
  await settle()
  t.same(ws.sent, [welcomeFrame('p.0', 'edge-1', { recovered: true, head: head(4) }), kept(3).frame, kept(4).frame, kept(5).frame], 'welcome, replay 3 and 4, then held 5; held 4 dropped')
  t.same(resumes, ['recovered'])
  t.equal(metrics.pushesWritten.total, 3)
  t.same(connections.sockets.deliver(pushFrame('m6', 'e', 6, 1), ['ann'], [kept(6)]).delivered, ['ann'], 'then live')
  t.same(ws.sent.at(-1), kept(6).frame, 'with its position')
})

t.test('a client with no position yet (resume.start) is told the head, and gets the held pushes past it', async (t) => {
  const { registration, connections, connect, inbox, resumes } = setup()
  const ws = connect('abe', { from: undefined })
  registration.written('p.0')
  await settle()
  t.same(inbox.reads.map((r) => r.from), [undefined])
  for (const n of [3, 2]) connections.sockets.deliver(pushFrame(`m${n}`, 'e', n, 1), ['abe'], [kept(n)])
  inbox.reads[0]!.answer({ head: head(2), entries: [] })
  await settle()
  t.same(ws.sent, [welcomeFrame('p.0', 'edge-1', { recovered: undefined, head: head(2) }), kept(3).frame], '2 was appended before the read: before this client\'s start')
  t.same(resumes, ['started'])
})

t.test('a resume the inbox cannot vouch for is welcomed with recovered: false and the head, and the held pushes past it follow', async (t) => {
  const { registration, connections, connect, inbox, resumes } = setup()
  const ws = connect('bob', { from: { epoch: 'old', offset: 9 } })
  registration.written('p.0')
  await settle()
  connections.sockets.deliver(pushFrame('m1', 'e', 1, 1), ['bob'], [kept(1)])
  inbox.reads[0]!.answer({ head: head(0), recovered: false, entries: [] })
  await settle()
  t.same(ws.sent, [welcomeFrame('p.0', 'edge-1', { recovered: false, head: head(0) }), kept(1).frame])
  t.same(resumes, ['not_recovered'])
})

t.test('a resume from another life of the inbox is welcomed with recovered: false before that life, then its whole replay and the held pushes past it', async (t) => {
  const { registration, connections, connect, inbox, resumes } = setup()
  const ws = connect('bea', { from: { epoch: 'old', offset: 9 } })
  registration.written('p.0')
  await settle()
  for (const n of [3, 2]) connections.sockets.deliver(pushFrame(`m${n}`, 'e', n, 1), ['bea'], [kept(n)])
  inbox.reads[0]!.answer({ head: head(0), recovered: false, entries: [stored(1), stored(2)] })
  await settle()
  t.same(ws.sent, [welcomeFrame('p.0', 'edge-1', { recovered: false, head: head(0) }), kept(1).frame, kept(2).frame, kept(3).frame], 'the new life from its first push (a push kept while the client was away is not lost), then held 3; held 2 dropped')
  t.same(resumes, ['not_recovered'])
})

t.test('a failed inbox read is recovered: false without a head (counted and reported), never a hang', async (t) => {
  const { registration, connect, inbox, resumes, resumeErrors } = setup()
  const ws = connect('cy', { from: { epoch: E, offset: 1 } })
  registration.written('p.0')
  await settle()
  inbox.reads[0]!.fail(new Error('redis down'))
  await settle()
  t.same(ws.sent, [welcomeFrame('p.0', 'edge-1', { recovered: false, head: undefined })])
  t.same(JSON.parse(ws.sent[0]!), { type: 'welcome', connId: 'p.0', nodeId: 'edge-1', recovered: false })
  t.same(resumes, ['failed'])
  t.match(resumeErrors, [{ message: 'redis down' }])
})

t.test('a socket closed during its resume is unregistered after the read, and holds nothing afterwards', async (t) => {
  const { registration, connections, connect, inbox } = setup()
  const ws = connect('dee', { from: { epoch: E, offset: 0 } })
  registration.written('p.0')
  await settle()
  ws.clientCloses(1000)
  t.same(registration.calls, ['register p.0'], 'not before the read is done')
  inbox.reads[0]!.answer({ head: head(1), recovered: true, entries: [stored(1)] })
  await settle()
  t.same(registration.calls, ['register p.0', 'unregister p.0 close'])
  t.same(ws.sent, [], 'nothing written to a closed socket')
  const again = connect('dee', { from: { epoch: E, offset: 1 } })
  registration.written('p.1')
  await settle()
  connections.sockets.deliver(pushFrame('m2', 'e', 2, 1), ['dee'], [kept(2)])
  inbox.reads[1]!.answer({ head: head(1), recovered: true, entries: [] })
  await settle()
  t.same(again.sent, [welcomeFrame('p.1', 'edge-1', { recovered: true, head: head(1) }), kept(2).frame], 'only the new socket held it')
})

t.test('a client that offers no resume is a plain connect: no read, no recovery fields', async (t) => {
  const { welcomed, inbox } = setup()
  const ws = await welcomed('eve')
  t.same(ws.sent, [welcomeFrame('p.0', 'edge-1')])
  t.same(JSON.parse(ws.sent[0]!), { type: 'welcome', connId: 'p.0', nodeId: 'edge-1' })
  t.equal(inbox.reads.length, 0)
})

t.test('replayed(): the replay, then held pushes past it in offset order once each, then those of another inbox life', async (t) => {
  const held = [kept(7), kept(5), kept(3), kept(5), kept(1, 'e2')]
  t.same(replayed({ epoch: E, offset: 2 }, [stored(3), stored(4)], held), [kept(3).frame, kept(4).frame, kept(5).frame, kept(7).frame, kept(1, 'e2').frame])
  t.same(replayed({ epoch: E, offset: 4 }, [], [kept(4), kept(6)]), [kept(6).frame], 'nothing to replay: held past the position only')
})

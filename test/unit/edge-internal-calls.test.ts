// The internal calls both transports share (the router link, and the HTTP route evictions use),
// the link's op table, and the edge's connection ids, with fake sockets.
import t from 'tap'
import pino from 'pino'
import { z } from 'zod'
import { CloseReasons, LINK_OPS, causeOf, linkOps, type CloseCause, type LinkOp, type LinkRequest, encodeDeliveries, encodeRoomDelivery, framedAt, pushFrame } from '@switchboard/protocol'
import { ConnIds } from '../../apps/edge/src/conn-ids.js'
import { UserSockets, type PushSocket } from '../../apps/edge/src/delivery.js'
import { createInternalCalls, type InternalAnswer } from '../../apps/edge/src/internal-calls.js'
import { LocalRooms } from '../../apps/edge/src/rooms.js'
import { Receipts } from '../../apps/edge/src/receipts.js'
import { systemClock } from '../../apps/edge/src/clock.js'

const noCount = { inc: () => undefined }

interface Fake extends PushSocket {
  userId: string
  connId: string
  sent: string[]
  closedWith?: number
  cause?: CloseCause
}

function setup() {
  const open = new Map<string, Fake>()
  const reverse = new Map<string, { room: string; generation: string }[]>()
  const rooms = new LocalRooms<Fake>({
    store: { roomsOfMany: async (users) => users.map((u) => reverse.get(u) ?? []), setEdgeRooms: async () => undefined },
    incId: () => 'inc',
    onFailure: (err) => {
      throw err
    },
  })
  const sockets = new UserSockets<Fake>({
    maxBackpressureBytes: 1_000,
    metrics: { pushesWritten: { inc: () => undefined }, backpressureCloses: { inc: () => undefined } },
    findConn: (connId) => open.get(connId),
    userOf: (s) => s.userId,
    // As uWS: the close handler runs before the close returns.
    close: (s, reason, options) => {
      s.closedWith = CloseReasons[reason].code
      s.cause = options?.cause ?? causeOf(reason)
      open.delete(s.connId)
      sockets.remove(s.userId, s)
    },
  })
  const connect = (userId: string, connId: string, backlog = 0): Fake => {
    const s: Fake = {
      userId,
      connId,
      sent: [],
      getBufferedAmount: () => backlog,
      cork: (cb) => cb(),
      send: (m) => s.sent.push(m),
    }
    open.set(connId, s)
    sockets.add(userId, s)
    return s
  }
  const deliveryCalls = { n: 0, inc: () => void deliveryCalls.n++ }
  const roomCalls = { n: 0, inc: () => void roomCalls.n++ }
  const unwritten = { notHere: 0, closed: 0 }
  const routedUnwritten = { notHere: { inc: (n = 1) => void (unwritten.notHere += n) }, closed: { inc: (n = 1) => void (unwritten.closed += n) } }
  const receipts = new Receipts<Fake>({ clock: systemClock, userOf: (s) => s.userId, metrics: { acks: { ok: noCount, unknown: noCount }, settled: { acked: noCount, unacked: noCount } } })
  const calls = createInternalCalls({ sockets, receipts, deliveryCalls, routedUnwritten, rooms, roomCalls, log: pino({ level: 'silent' }) })
  return { calls, connect, deliveryCalls, rooms, reverse, roomCalls, unwritten }
}

const MALFORMED = { status: 400, body: JSON.stringify({ error: { code: 'invalid_request', message: 'malformed internal request' } }) }

t.test('deliveries answer one result per delivery, in order, and are counted', async (t) => {
  const { calls, connect, deliveryCalls } = setup()
  const a = connect('a', 'c1')
  const f1 = pushFrame('m1', 'e', 1, 1)
  const f2 = pushFrame('m2', 'e', 2, 2)
  const answer = calls('deliveries', encodeDeliveries([{ frame: f1, to: ['a', 'b'] }, { frame: f2, to: ['b'] }]), 'r1,r2', 'link')
  t.same(answer, { status: 200, body: JSON.stringify({ results: [{ delivered: ['a'], missing: ['b'] }, { delivered: [], missing: ['b'] }] }) })
  t.same(a.sent, [f1])
  t.equal(deliveryCalls.n, 1)
})

t.test('routed deliveries are written as deliveries are, answered with nothing, and what was not written is counted by why', async (t) => {
  const { calls, connect, deliveryCalls, unwritten } = setup()
  const a = connect('a', 'c1')
  const a2 = connect('a', 'c2')
  const slow = connect('s', 'c3', 5_000) // past maxBackpressureBytes (1,000): closed instead
  const f1 = pushFrame('m1', 'e', 1, 1)
  const f2 = pushFrame('m2', 'e', 2, 2)
  const deliveries = [{ frame: f1, to: ['a', 'b', 's'] }, { frame: f2, to: ['a', 'b'], at: [{ epoch: 'e0', offset: 7 }, { epoch: 'e0', offset: 2 }] }]
  t.equal(calls('deliveries-routed', encodeDeliveries(deliveries), 'r1,r2', 'link'), undefined, 'no answer')
  t.same(a.sent, [f1, framedAt(f2, 'e0', 7)], 'each socket of the user gets each push, a kept one with its position')
  t.same(a2.sent, a.sent)
  t.same(slow.sent, [], 'the slow socket is not written to')
  t.equal(slow.closedWith, CloseReasons.too_slow.code, 'it is closed as too slow, as for deliveries')
  t.same(unwritten, { notHere: 2, closed: 1 }, 'b twice not here; s closed')
  t.equal(deliveryCalls.n, 1, 'a delivery call')
  t.equal(calls('deliveries-routed', 'not a delivery', 'r3', 'link'), undefined, 'a malformed one is not answered either')
  t.equal(deliveryCalls.n, 1, 'and not counted')
})

t.test('malformed bodies answer 400 and are not counted', async (t) => {
  const { calls, deliveryCalls } = setup()
  const bad: [Parameters<typeof calls>[0], string][] = [
    ['deliveries', ''],
    ['deliveries', 'no newline'],
    ['deliveries', '{}\n[1]'],
    ['deliveries', '{}\n[""]'],
    ['deliveries', `{}\n${JSON.stringify(['x'.repeat(257)])}`],
    ['deliveries', '{}\n{"0":"a"}'],
    ['deliveries', '{}\n["a"]\n{}'],
    ['deliveries', '\n["a"]'],
    ['deliveries', '{}\n[not json'],
    ['disconnect', 'not json'],
    ['disconnect', '{"userId":""}'],
    ['disconnect', '{"userId":"a","code":1000}'],
  ]
  for (const [op, body] of bad) t.same(calls(op, body, '', 'http'), MALFORMED, `${op} ${JSON.stringify(body).slice(0, 40)}`)
  t.equal(deliveryCalls.n, 0)
})

t.test('a delivery call holds at most 100,000 recipients in all', async (t) => {
  const { calls } = setup()
  const half = Array.from({ length: 50_000 }, (_, i) => `u${i}`)
  t.equal((calls('deliveries', encodeDeliveries([{ frame: '{}', to: half }, { frame: '{}', to: half }]), '', 'http') as InternalAnswer).status, 200)
  t.same(calls('deliveries', encodeDeliveries([{ frame: '{}', to: half }, { frame: '{}', to: [...half, 'one more'] }]), '', 'http'), MALFORMED)
})

t.test('broadcast writes its body as the frame; disconnect closes with 4500 by default', async (t) => {
  const { calls, connect } = setup()
  const [a1, a2, b] = [connect('a', 'c1'), connect('a', 'c2'), connect('b', 'c3')]
  t.same(calls('broadcast', '{"type":"push"}', '', 'link'), { status: 200, body: '{"connections":3}' })
  t.same(b.sent, ['{"type":"push"}'])
  t.same(calls('disconnect', '{"userId":"a","connIds":["c2","c3"],"code":4501}', '', 'link'), { status: 200, body: '{"closed":1}' })
  t.equal(a2.closedWith, 4501)
  t.equal(a2.cause, 'disconnect_api', 'an eviction asked by another edge is a disconnect call here')
  t.same(calls('disconnect', '{"userId":"a"}', '', 'http'), { status: 200, body: '{"closed":1}' })
  t.equal(a1.closedWith, 4500)
  t.equal(a1.cause, 'disconnect_api')
  t.equal(b.closedWith, undefined)
})

t.test('a room push writes once to every socket of each durable member of its generation and to token members; positions per member', async (t) => {
  const { calls, connect, rooms, reverse, roomCalls } = setup()
  reverse.set('ann', [{ room: 'r', generation: 'g1' }])
  reverse.set('old', [{ room: 'r', generation: 'g0' }])
  const [ann1, ann2, bob, old, eve] = [connect('ann', 'c1'), connect('ann', 'c2'), connect('bob', 'c3'), connect('old', 'c4'), connect('eve', 'c5')]
  await rooms.arrive('ann', ann1, [])
  await rooms.arrive('ann', ann2, ['r'])
  await rooms.arrive('bob', bob, ['r'])
  await rooms.arrive('old', old, [])
  await rooms.arrive('eve', eve, [])
  const frame = pushFrame('m1', 'e', 1, 1)
  const answer = (await calls('room', encodeRoomDelivery({ frame, room: 'r', generation: 'g1', list: true, at: { ann: ['e0', 7] } }), 'q', 'link')) as InternalAnswer
  t.same(JSON.parse(answer.body), { reached: 2, users: ['ann', 'bob'] })
  t.same([ann1.sent, ann2.sent], [[framedAt(frame, 'e0', 7)], [framedAt(frame, 'e0', 7)]], "ann's two sockets, once each (one is also a token member), at her position")
  t.same(bob.sent, [frame], 'a token member gets the plain frame')
  t.same([old.sent, eve.sent], [[], []], 'a member of an earlier life and a non-member: nothing')
  const excepted = (await calls('room', encodeRoomDelivery({ frame, room: 'r', generation: 'g1', except: ['ann'] }), 'q', 'http')) as InternalAnswer
  t.same(JSON.parse(excepted.body), { reached: 1 }, 'without list: the count only')
  t.equal(roomCalls.n, 2)
  const members = (await calls('room-members', JSON.stringify({ room: 'r', generation: 'g1' }), 'q', 'link')) as InternalAnswer
  t.same(JSON.parse(members.body).users.sort(), ['ann', 'bob'])
  t.same(await calls('room-leave', JSON.stringify({ room: 'r', userIds: ['bob'] }), 'q', 'link'), { status: 200, body: '{"changed":1}' })
  t.same(await calls('room-join', JSON.stringify({ room: 'r', generation: 'g1', userIds: ['eve', 'nobody'] }), 'q', 'link'), { status: 200, body: '{"changed":1}' })
  const after = (await calls('room-members', JSON.stringify({ room: 'r', generation: 'g1' }), 'q', 'link')) as InternalAnswer
  t.same(JSON.parse(after.body).users.sort(), ['ann', 'eve'], 'bob kicked (his token membership too), eve joined')
})

t.test('malformed room calls are 400 and change nothing', async (t) => {
  const { calls, roomCalls } = setup()
  const frame = pushFrame('m1', 'e', 1, 1)
  const bad: [LinkOp, string][] = [
    ['room', frame],
    ['room', `${frame}\n{}`],
    ['room', `${frame}\n{"room":"r","generation":"g","extra":1}`],
    ['room', `${frame}\n{"room":"","generation":"g"}`],
    ['room', `${frame}\n{"room":"r","generation":"g","at":{"u":["not hex",1]}}`],
    ['room', `\n{"room":"r","generation":"g"}`],
    ['room-join', '{"room":"r","userIds":["u"]}'],
    ['room-join', 'not json'],
    ['room-leave', '{"userIds":["u"]}'],
    ['room-members', '{"room":"r"}'],
  ]
  for (const [op, body] of bad) t.same(await calls(op, body, '', 'link'), MALFORMED, `${op} ${body.slice(-40)}`)
  t.equal(roomCalls.n, 0)
})

t.test('connection ids: only the exact ids this incarnation issued parse back', async (t) => {
  const ids = new ConnIds('lz0p1abc')
  const seqs = [ids.nextSeq(), ids.nextSeq(), ids.nextSeq()]
  t.same(seqs, [0, 1, 2])
  t.equal(ids.format(71), 'lz0p1abc.1z')
  t.equal(ids.parse('lz0p1abc.1z'), 71)
  t.equal(ids.parse(ids.format(0)), 0)
  for (const other of ['lz0p1abc.', 'lz0p1abc.1z!', 'lz0p1abc.01z', 'lz0p1abc.-1', 'lz0p1abcd.1', 'other.1', 'lz0p1abc', '', 'lz0p1abc.zzzzzzzzzzzzzzzzzz']) {
    t.equal(ids.parse(other), undefined, JSON.stringify(other))
  }
  t.not(new ConnIds().prefix, new ConnIds().prefix, 'a random prefix per incarnation')
})

t.test('the link table: every op round-trips its request, is answered by the edge (but the unanswered one), and only evictions have an HTTP route', async (t) => {
  const frame = pushFrame('m1', 'e', 1, 1)
  const requests: { [Op in LinkOp]: LinkRequest<Op> } = {
    deliveries: [{ frame, to: ['a', 'b'] }, { frame, to: ['b'], at: [{ epoch: 'e0', offset: 3 }] }],
    'deliveries-routed': [{ frame, to: ['a'] }],
    'delivery-acked': { id: 'm1', timeoutMs: 100, frame: pushFrame('m1', 'e', 1, 1, true), to: ['a', 'b'], at: [{ epoch: 'e0', offset: 3 }, { epoch: 'e0', offset: 4 }] },
    broadcast: frame,
    disconnect: { userId: 'a', connIds: ['c9'], code: 4501, reason: 'replaced' },
    room: { frame, room: 'r', generation: 'g1', except: ['b'], list: true },
    'room-join': { room: 'r', generation: 'g1', userIds: ['a'] },
    'room-leave': { room: 'r', userIds: ['a'] },
    'room-members': { room: 'r', generation: 'g1' },
  }
  t.same(LINK_OPS, Object.keys(requests), 'every op, in the table\'s order')
  const { calls } = setup()
  for (const op of LINK_OPS) {
    const row = linkOps[op]
    const payload = row.encode(requests[op] as never)
    t.ok(row.decode(payload), `${op}: its encoding decodes`)
    const answer = await calls(op, payload, '', 'link')
    if (row.isUnanswered) {
      t.equal(answer, undefined, `${op}: the edge does not answer it`)
      t.ok(Object.keys(row.summarize({ pushes: 1, written: 0, notHere: 1, closed: 0 } as never)).length > 0, `${op}: its log line has counts`)
      continue
    }
    if (!answer) throw new Error(`${op}: no answer`)
    t.equal(answer.status, 200, `${op}: the edge answers it`)
    const parsed = row.answer.safeParse(JSON.parse(answer.body))
    t.ok(parsed.success, `${op}: its answer is the row's schema`)
    t.ok(Object.keys(row.summarize(parsed.data as never)).length > 0, `${op}: its log line has counts`)
  }
  for (const op of LINK_OPS.filter((op) => linkOps[op].request)) {
    t.equal(z.toJSONSchema(linkOps[op].request!, { io: 'input' }).type, 'object', `${op}: its JSON request has a JSON Schema`)
  }
  t.same(LINK_OPS.filter((op) => linkOps[op].request), ['disconnect', 'room-join', 'room-leave', 'room-members'], 'every JSON request has its schema in the row')
  t.same(LINK_OPS.filter((op) => linkOps[op].http), ['disconnect'], 'only an eviction\'s disconnect is served over HTTP')
  t.same(LINK_OPS.filter((op) => linkOps[op].isUnanswered), ['deliveries-routed'], 'only routed pushes go unanswered')
  t.equal(linkOps.disconnect.http, '/internal/disconnect')
})

t.test('an answer\'s log summary is counts, never user ids', async (t) => {
  t.same(linkOps.deliveries.summarize({ results: [{ delivered: ['a', 'b'], missing: ['c'] }, { delivered: [], missing: ['d'] }] }), { pushes: 2, delivered: 2 })
  t.same(linkOps.room.summarize({ reached: 2, users: ['a', 'b'] }), { reached: 2 })
  t.same(linkOps['room-members'].summarize({ users: ['a', 'b', 'c'] }), { users: 3 })
  t.same(linkOps.broadcast.summarize({ connections: 4 }), { connections: 4 })
  t.same(linkOps.disconnect.summarize({ closed: 1 }), { closed: 1 })
})

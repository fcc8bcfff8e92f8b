// Receipts on the edge, through its seams: fake sockets, a fake clock, the `delivery-acked`
// internal call and clients' `ack` frames. One deadline heap and timer for the edge.
import t from 'tap'
import pino from 'pino'
import { ackFrame } from '@switchboard/wire'
import { encodeAckedDelivery, pushFrame, type AckedDeliveryResult } from '@switchboard/protocol'
import { createInternalCalls } from '../../apps/edge/src/internal-calls.js'
import { FakeClock, settle } from '../helpers/fake-clock.js'
import { counter, setup as setupConnections, type FakeSocket } from '../helpers/fake-connections.js'

function setup() {
  const clock = new FakeClock()
  const edge = setupConnections(clock)
  const calls = createInternalCalls({ sockets: edge.connections.sockets, receipts: edge.connections.receipts, deliveryCalls: counter(), log: pino({ level: 'silent' }) })
  /** A push asking for receipts to `to`: resolves with the edge's answer. */
  const push = async (id: string, to: string[], timeoutMs = 1_000) => {
    const answer = await calls('delivery-acked', encodeAckedDelivery({ id, timeoutMs, frame: pushFrame(id, 'e', { n: 1 }, 1, true), to }), 'req', 'link')
    return JSON.parse(answer!.body) as AckedDeliveryResult
  }
  /** Starts the push; `settled` says whether the edge answered yet. */
  const start = (id: string, to: string[], timeoutMs = 1_000) => {
    const state: { answer?: AckedDeliveryResult } = {}
    const done = push(id, to, timeoutMs).then((a) => (state.answer = a))
    return { state, done }
  }
  const ack = (ws: FakeSocket, ...ids: string[]) => edge.send(ws, ackFrame(ids))
  return { ...edge, clock, push, start, ack }
}

t.test('the frame carries "ack":true; a recipient that acknowledges is acked, one that does not by the timeout is unacked, one not here is missing', async (t) => {
  const { welcomed, start, ack, clock, connections } = setup()
  const ann = await welcomed('ann')
  await welcomed('bob')
  const p = start('p1', ['ann', 'bob', 'zed'], 500)
  await settle()
  t.match(JSON.parse(ann.sent.at(-1)!), { type: 'push', id: 'p1', ack: true }, 'written at once, asking for a receipt')
  t.equal(connections.receipts.size, 1, 'one push waiting')
  ack(ann, 'p1')
  await settle()
  t.equal(p.state.answer, undefined, 'still waiting for bob')
  await clock.advance(499)
  t.equal(p.state.answer, undefined, 'not before the timeout')
  await clock.advance(1)
  await p.done
  t.same(p.state.answer, { acked: ['ann'], unacked: ['bob'], missing: ['zed'] })
  t.equal(connections.receipts.size, 0, 'forgotten once settled')
  t.same(clock.pending, [], 'no timer left behind')
})

t.test('the answer comes as soon as every recipient acknowledged, not at the timeout', async (t) => {
  const { welcomed, start, ack, clock } = setup()
  const ann = await welcomed('ann')
  const bob = await welcomed('bob')
  const p = start('p2', ['ann', 'bob'], 30_000)
  await settle()
  ack(bob, 'p2')
  ack(ann, 'other', 'p2') // an id nothing waits for beside it: ignored
  await p.done
  t.same(p.state.answer, { acked: ['bob', 'ann'], unacked: [], missing: [] })
  t.equal(clock.now() - 1_700_000_000_000, 0, 'no time passed')
})

t.test('any device: one acknowledging connection of a user with two is enough; a second ack is ignored and counted', async (t) => {
  const { welcomed, start, ack, connections } = setup()
  const phone = await welcomed('ann')
  const laptop = await welcomed('ann')
  const p = start('p3', ['ann'])
  await settle()
  t.match(JSON.parse(phone.sent.at(-1)!), { id: 'p3' })
  t.match(JSON.parse(laptop.sent.at(-1)!), { id: 'p3' }, 'written to both devices')
  ack(laptop, 'p3')
  await p.done
  t.same(p.state.answer, { acked: ['ann'], unacked: [], missing: [] })
  ack(phone, 'p3')
  t.equal(phone.closedWith, undefined, 'an ack for a settled push is never a close')
  t.equal(connections.receipts.size, 0)
})

t.test('a closed socket ends the wait at once for its user, unless another socket it was written to is still open', async (t) => {
  const { welcomed, start, connections } = setup()
  const phone = await welcomed('ann')
  const laptop = await welcomed('ann')
  const bob = await welcomed('bob')
  const p = start('p4', ['ann', 'bob'], 30_000)
  await settle()
  const later = await welcomed('ann') // connected after the write: it did not get the push, its close changes nothing
  later.clientCloses(1000)
  phone.clientCloses(1006)
  await settle()
  t.equal(p.state.answer, undefined, 'the laptop still has it')
  laptop.clientCloses(1001)
  bob.clientCloses(1000)
  await p.done
  t.same(p.state.answer, { acked: [], unacked: ['ann', 'bob'], missing: [] }, 'answered at the last close, not at the timeout')
  t.equal(connections.receipts.size, 0)
})

t.test('an ack names the acknowledging socket\'s user only: another user\'s ack of the same id does not count', async (t) => {
  const { welcomed, start, ack, clock } = setup()
  await welcomed('ann')
  const mallory = await welcomed('mallory')
  const p = start('p5', ['ann'], 200)
  await settle()
  ack(mallory, 'p5')
  await clock.advance(200)
  await p.done
  t.same(p.state.answer, { acked: [], unacked: ['ann'], missing: [] })
})

t.test('two waiting pushes with one id to one user: one ack acknowledges both', async (t) => {
  const { welcomed, start, ack } = setup()
  const ann = await welcomed('ann')
  const a = start('dup', ['ann'])
  const b = start('dup', ['ann'])
  await settle()
  ack(ann, 'dup')
  await Promise.all([a.done, b.done])
  t.same([a.state.answer, b.state.answer], [{ acked: ['ann'], unacked: [], missing: [] }, { acked: ['ann'], unacked: [], missing: [] }])
})

t.test('nobody here: answered at once, nothing waits', async (t) => {
  const { push, connections, clock } = setup()
  t.same(await push('p6', ['zed', 'yan']), { acked: [], unacked: [], missing: ['zed', 'yan'] })
  t.equal(connections.receipts.size, 0)
  t.same(clock.pending, [])
})

t.test('bad ack frames: malformed ones close as any protocol violation; unknown ids are ignored', async (t) => {
  const { welcomed, send } = setup()
  const ann = await welcomed('ann')
  send(ann, JSON.stringify({ type: 'ack', ids: ['nothing-waits'] }))
  t.equal(ann.closedWith, undefined, 'an unknown id: ignored')
  const bob = await welcomed('bob')
  send(bob, JSON.stringify({ type: 'ack', ids: [] }))
  t.equal(bob.closedWith?.code, 1008, 'no ids: a protocol violation')
  const cy = await welcomed('cy')
  send(cy, JSON.stringify({ type: 'ack', id: 'x' }))
  t.equal(cy.closedWith?.code, 1008, 'not the documented shape')
})

t.test('many pushes waiting with different timeouts share one timer, and each settles at its own deadline', async (t) => {
  const { welcomed, start, clock } = setup()
  await welcomed('ann')
  const pushes = [300, 100, 200].map((ms, i) => ({ ms, ...start(`t${i}`, ['ann'], ms) }))
  await settle()
  t.equal(clock.pending.length, 1, 'one timer for the edge')
  await clock.advance(100)
  t.same(pushes.map((p) => p.state.answer !== undefined), [false, true, false])
  await clock.advance(100)
  t.same(pushes.map((p) => p.state.answer !== undefined), [false, true, true])
  await clock.advance(100)
  t.same(pushes.map((p) => p.state.answer !== undefined), [true, true, true])
})

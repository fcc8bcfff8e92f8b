// The edge's delivery path through its seam: fake sockets that behave like uWS's, no network.
import t from 'tap'
import { CloseReasons, causeOf, type CloseCause, type CloseReason } from '@switchboard/protocol'
import { FakeUwsSocket } from '../helpers/fake-socket.js'
import { UserSockets, type CloseOptions, type PushSocket } from '../../apps/edge/src/delivery.js'

const MAX_BACKLOG = 1_000

class FakeSocket extends FakeUwsSocket implements PushSocket {
  /** Why the edge closed it. */
  cause: CloseCause | undefined

  constructor(
    readonly userId: string,
    readonly connId: string,
    private readonly closeHandler: (socket: FakeSocket) => void,
  ) {
    super()
  }

  /** The code, reason and cause it was closed with. */
  get closed() {
    return this.closedWith && { ...this.closedWith, cause: this.cause }
  }

  /** As the edge closes a socket: the cause recorded, then uWS's end() with the reason's code. */
  close(reason: CloseReason, options?: CloseOptions): void {
    this.ensureOpen()
    this.cause = options?.cause ?? causeOf(reason)
    this.end(CloseReasons[reason].code, options?.text ?? CloseReasons[reason].text)
  }

  protected onClose(): void {
    this.closeHandler(this)
  }
}

function counter() {
  return {
    total: 0,
    inc(value = 1) {
      this.total += value
    },
  }
}

/** An index plus every open socket by connId, wired the way the edge wires them. */
function edge() {
  const open = new Map<string, FakeSocket>()
  const metrics = { pushesWritten: counter(), backpressureCloses: counter() }
  const sockets = new UserSockets<FakeSocket>({
    maxBackpressureBytes: MAX_BACKLOG,
    metrics,
    findConn: (connId) => open.get(connId),
    userOf: (socket) => socket.userId,
    close: (socket, reason, options) => socket.close(reason, options),
  })
  let seq = 0
  /** An open socket; welcomed (in the index) unless `welcomed` is false. */
  const connect = (userId: string, { welcomed = true } = {}) => {
    const socket = new FakeSocket(userId, `c${seq++}`, (s) => {
      open.delete(s.connId)
      sockets.remove(s.userId, s)
    })
    open.set(socket.connId, socket)
    if (welcomed) sockets.add(userId, socket)
    return socket
  }
  return { sockets, metrics, connect, open }
}

t.test('a delivery reaches every socket of each recipient and lists the missing users', async (t) => {
  const { sockets, metrics, connect } = edge()
  const alice = connect('alice')
  const bob = [connect('bob'), connect('bob'), connect('bob')]
  const carol = connect('carol')

  const result = sockets.deliver('F1', ['alice', 'bob', 'nobody', 'ghost'])

  t.same(result, { delivered: ['alice', 'bob'], missing: ['nobody', 'ghost'] })
  t.same(alice.sent, ['F1'])
  t.same(bob.map((s) => s.sent), [['F1'], ['F1'], ['F1']], 'each of the user\'s sockets')
  t.same(carol.sent, [], 'a user who is not a recipient')
  t.equal(metrics.pushesWritten.total, 4, 'one per socket written')
  t.same(sockets.deliver('F2', []), { delivered: [], missing: [] })
  t.equal(metrics.pushesWritten.total, 4)
})

t.test('a socket not yet welcomed gets no push', async (t) => {
  const { sockets, connect } = edge()
  const pending = connect('dave', { welcomed: false })
  t.same(sockets.deliver('F', ['dave']), { delivered: [], missing: ['dave'] })
  t.same(pending.sent, [])
})

t.test('a socket whose backlog is past the bound is closed with 4008 instead of written', async (t) => {
  const { sockets, metrics, connect } = edge()
  const [fast, slow, atBound] = [connect('erin'), connect('erin'), connect('erin')]
  slow.backlog = MAX_BACKLOG + 1
  atBound.backlog = MAX_BACKLOG

  t.same(sockets.deliver('F', ['erin']), { delivered: ['erin'], missing: [] }, 'delivered: written to at least one socket')
  t.same(slow.closed, { code: 4008, reason: 'too slow', cause: 'evicted' }, 'the edge dropped a slow consumer')
  t.same(slow.sent, [], 'the slow socket is not written to')
  t.same(fast.sent, ['F'])
  t.same(atBound.sent, ['F'], 'a backlog exactly at the bound is still written to')
  t.equal(atBound.closed, undefined)
  t.equal(metrics.backpressureCloses.total, 1)
  t.equal(metrics.pushesWritten.total, 2)
  t.equal(sockets.countOf('erin'), 2, 'the closed socket left the index')
  t.equal(sockets.size, 2)
})

t.test('a user whose every socket is too slow is missing, and all of them close', async (t) => {
  const { sockets, metrics, connect } = edge()
  const all = [connect('fred'), connect('fred')]
  const one = connect('gina')
  for (const s of [...all, one]) s.backlog = MAX_BACKLOG + 1

  t.same(sockets.deliver('F', ['fred', 'gina']), { delivered: [], missing: ['fred', 'gina'] })
  t.same(all.map((s) => s.closed?.code), [4008, 4008], 'the loop reaches the second socket after the first closed')
  t.equal(one.closed?.code, 4008)
  t.equal(metrics.backpressureCloses.total, 3)
  t.equal(metrics.pushesWritten.total, 0)
  t.equal(sockets.size, 0)
  t.same(sockets.deliver('F', ['fred']), { delivered: [], missing: ['fred'] }, 'gone from the index')
})

t.test('a broadcast writes every welcomed socket once and closes the slow ones', async (t) => {
  const { sockets, metrics, connect } = edge()
  const written = [connect('a'), connect('b'), connect('b'), connect('c')]
  const slow = connect('b')
  slow.backlog = MAX_BACKLOG + 1
  const pending = connect('d', { welcomed: false })

  t.equal(sockets.broadcast('B'), 4)
  t.same(written.map((s) => s.sent), [['B'], ['B'], ['B'], ['B']])
  t.equal(slow.closed?.code, 4008)
  t.same(pending.sent, [], 'not before its welcome')
  t.equal(metrics.pushesWritten.total, 4)
  t.equal(metrics.backpressureCloses.total, 1)
  t.equal(sockets.size, 4)
})

t.test('disconnect by user closes all of that user\'s sockets and no other', async (t) => {
  const { sockets, connect } = edge()
  const hers = [connect('hana'), connect('hana'), connect('hana')]
  const other = connect('ivan')

  t.equal(sockets.disconnect('hana', 4500, 'bye'), 3)
  t.same(hers.map((s) => s.closed), [1, 2, 3].map(() => ({ code: 4500, reason: 'bye', cause: 'disconnect_api' })))
  t.equal(other.closed, undefined)
  t.equal(sockets.countOf('hana'), 0)
  t.equal(sockets.size, 1)
  t.equal(sockets.disconnect('hana', 4500, 'bye'), 0, 'nothing left to close')
  t.equal(sockets.disconnect('nobody', 4500, 'bye'), 0)
  const single = connect('jo')
  t.equal(sockets.disconnect('jo', 4500, 'bye'), 1, 'a user with one socket')
  t.equal(single.closed?.code, 4500)
})

t.test('disconnect by connIds closes only those connections of that user', async (t) => {
  const { sockets, connect } = edge()
  const [k1, k2, k3] = [connect('kim'), connect('kim'), connect('kim')]
  const registering = connect('kim', { welcomed: false })
  const other = connect('lee')

  const closed = sockets.disconnect('kim', 4501, 'replaced', [k1.connId, registering.connId, other.connId, 'unknown', k1.connId])
  t.equal(closed, 2, 'a connId of another user, an unknown one and a repeat are skipped')
  t.same(
    [k1, registering].map((s) => s.closed),
    [1, 2].map(() => ({ code: 4501, reason: 'replaced', cause: 'disconnect_api' })),
    'the disconnect call\'s cause, whatever code it asks for',
  )
  t.same([k2, k3, other].map((s) => s.closed), [undefined, undefined, undefined])
  t.equal(sockets.countOf('kim'), 2)
  t.same(sockets.deliver('F', ['kim']), { delivered: ['kim'], missing: [] })
  t.same([k2.sent, k3.sent], [['F'], ['F']])
})

t.test('the index holds a user\'s sockets through 1 -> 2 -> 1 -> 0', async (t) => {
  const { sockets, connect } = edge()
  const first = new FakeSocket('mia', 'x1', () => undefined)
  const second = new FakeSocket('mia', 'x2', () => undefined)
  const stranger = connect('ned')

  sockets.add('mia', first)
  t.equal(sockets.countOf('mia'), 1)
  sockets.add('mia', second)
  t.equal(sockets.countOf('mia'), 2)
  t.equal(sockets.size, 3)
  t.same(sockets.deliver('A', ['mia']).delivered, ['mia'])
  t.same([first.sent, second.sent], [['A'], ['A']])

  t.notOk(sockets.remove('mia', stranger), 'a socket that is not the user\'s')
  t.ok(sockets.remove('mia', first))
  t.notOk(sockets.remove('mia', first), 'removed once')
  t.equal(sockets.countOf('mia'), 1)
  t.same(sockets.deliver('B', ['mia']).delivered, ['mia'])
  t.same([first.sent, second.sent], [['A'], ['A', 'B']], 'only the remaining socket')

  sockets.add('mia', first)
  t.equal(sockets.countOf('mia'), 2, 'back to two')
  t.ok(sockets.remove('mia', second))
  t.ok(sockets.remove('mia', first))
  t.equal(sockets.countOf('mia'), 0)
  t.notOk(sockets.remove('mia', first), 'an empty user')
  t.equal(sockets.size, 1)
  t.same(sockets.all(), [stranger])
  t.same(sockets.deliver('C', ['mia']), { delivered: [], missing: ['mia'] })
})

t.test('all() lists every welcomed socket once', async (t) => {
  const { sockets, connect } = edge()
  const s = [connect('o'), connect('p'), connect('p'), connect('q')]
  connect('r', { welcomed: false })
  t.same(new Set(sockets.all()), new Set(s))
  t.equal(sockets.all().length, 4)
})

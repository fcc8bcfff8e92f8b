// The edge's rooms without sockets or Redis: a room store whose reads answer when the test says
// and whose index writes are recorded (or fail on demand).
import t from 'tap'
import type { RoomHolding, UserRoom } from '@switchboard/registry'
import { LocalRooms, type RoomIndexStore } from '../../apps/edge/src/rooms.js'

class FakeStore implements RoomIndexStore {
  /** What each user's reverse index holds. */
  readonly reverse = new Map<string, UserRoom[]>()
  /** Reads waiting for `answer`, by user. */
  readonly #reads = new Map<string, ((rooms: UserRoom[]) => void)[]>()
  /** The index writes, in order: `incId room +|-`. */
  readonly writes: string[] = []
  failWrites = false
  failReads = false
  holdReads = false

  /** Calls of roomsOfMany, with their users. */
  readonly readCalls: string[][] = []

  roomsOfMany(userIds: readonly string[]): Promise<UserRoom[][]> {
    this.readCalls.push([...userIds])
    return Promise.all(userIds.map((u) => this.roomsOf(u)))
  }

  roomsOf(userId: string): Promise<UserRoom[]> {
    if (this.failReads) return Promise.reject(new Error('redis down'))
    if (!this.holdReads) return Promise.resolve(this.reverse.get(userId) ?? [])
    return new Promise((resolve) => this.#reads.set(userId, [...(this.#reads.get(userId) ?? []), resolve]))
  }

  /** The held read of `userId` answers with what the reverse index held when it was made (`rooms`). */
  answer(userId: string, rooms: UserRoom[]): void {
    this.#reads.get(userId)!.shift()!(rooms)
  }

  async setEdgeRooms(incId: string, changes: readonly RoomHolding[]): Promise<void> {
    if (this.failWrites) throw new Error('redis down')
    for (const c of changes) this.writes.push(`${incId} ${c.room} ${c.holds ? '+' : '-'}`)
  }
}

/** A socket as LocalRooms sees it: any object, by identity. */
type Sock = { name: string }

function setup(incId: string | undefined) {
  const store = new FakeStore()
  const failures: unknown[] = []
  const local = new LocalRooms<Sock>({ store, incId: () => incId, onFailure: (err) => failures.push(err) })
  // Durable-only helpers: one socket per call, no token rooms.
  const sockets = new Map<string, Sock[]>()
  const rooms = {
    arrive: (userId: string) => {
      const sock = { name: userId }
      sockets.set(userId, [...(sockets.get(userId) ?? []), sock])
      return local.arrive(userId, sock, [])
    },
    depart: (userId: string) => local.depart(userId, sockets.get(userId)!.pop()!, []),
    join: local.join.bind(local),
    leave: local.leave.bind(local),
    rewrite: local.rewrite.bind(local),
    members: (room: string, generation: string, except?: ReadonlySet<string>) => local.targets(room, generation, except).users,
    get size() {
      return local.size
    },
  }
  return { store, rooms, local, failures }
}

const g1 = 'gen1'
const g2 = 'gen2'

t.test('a user arriving joins its durable rooms; the index is written on a room\'s first member and its last', async (t) => {
  const { store, rooms } = setup('inc1')
  store.reverse.set('ann', [{ room: 'a', generation: g1 }, { room: 'b', generation: g1 }])
  store.reverse.set('bob', [{ room: 'a', generation: g1 }])
  await Promise.all([rooms.arrive('ann'), rooms.arrive('bob')])
  t.same(store.readCalls, [['ann', 'bob']], "the turn's arrivals read in one call")
  t.same(store.writes.sort(), ['inc1 a +', 'inc1 b +'], 'one write per room, in one turn')
  t.same(rooms.members('a', g1).sort(), ['ann', 'bob'])
  t.same(rooms.members('a', g1, new Set(['bob'])), ['ann'], 'except')
  t.same(rooms.members('a', g2), [], 'another generation: stale')
  await rooms.arrive('ann') // a second socket
  rooms.depart('ann')
  t.same(rooms.members('b', g1), ['ann'], 'still one socket of ann here')
  rooms.depart('ann')
  rooms.depart('bob')
  await rooms.leave('none') // lets the turn's write go
  t.same(store.writes.slice(2).sort(), ['inc1 a -', 'inc1 b -'])
  t.equal(rooms.size, 0)
})

t.test('join and leave change present users only, and resolve once the index is written', async (t) => {
  const { store, rooms } = setup('inc1')
  await rooms.arrive('ann')
  t.equal(await rooms.join('r', g1, ['ann', 'zed']), 1, 'zed has no socket here')
  t.same(store.writes, ['inc1 r +'], 'written before join resolved')
  t.equal(await rooms.join('r', g1, ['ann']), 1)
  t.same(store.writes, ['inc1 r +', 'inc1 r +'], 'a join writes the field again (the room may have been deleted and created anew)')
  t.equal(await rooms.leave('r', ['ann', 'zed']), 1)
  t.same(store.writes.at(-1), 'inc1 r -', 'its last member left: cleared before leave resolved')
  t.same(rooms.members('r', g1), [])
})

t.test('a leave (or a join) that arrives while the user\'s rooms are read wins over the read', async (t) => {
  const { store, rooms } = setup('inc1')
  store.holdReads = true
  const arrived = rooms.arrive('ann')
  await rooms.leave('old', ['ann'])
  await rooms.join('new', g2, ['ann'])
  // The read was made before both changes: it still has 'old', and 'new' of the earlier life.
  store.answer('ann', [{ room: 'old', generation: g1 }, { room: 'new', generation: g1 }, { room: 'kept', generation: g1 }])
  await arrived
  t.same(rooms.members('old', g1), [], 'left meanwhile: the read does not bring it back')
  t.same(rooms.members('new', g2), ['ann'], 'joined meanwhile in the new life: the read does not turn it stale')
  t.same(rooms.members('kept', g1), ['ann'])
})

t.test('a user gone before its read answers joins nothing', async (t) => {
  const { store, rooms } = setup('inc1')
  store.holdReads = true
  const arrived = rooms.arrive('ann')
  rooms.depart('ann')
  await new Promise((r) => setImmediate(r)) // the turn's reads go out
  store.answer('ann', [{ room: 'r', generation: g1 }])
  await arrived
  t.same(rooms.members('r', g1), [])
  t.same(store.writes, [])
})

t.test('failures are reported; rewrite reads again what it could not and writes every room', async (t) => {
  const { store, rooms, failures } = setup('inc1')
  store.reverse.set('ann', [{ room: 'r', generation: g1 }])
  store.reverse.set('bob', [{ room: 's', generation: g1 }])
  await rooms.arrive('ann')
  store.failReads = true
  await rooms.arrive('bob')
  store.failWrites = true
  store.reverse.set('ann', [{ room: 'r', generation: g1 }, { room: 't', generation: g1 }]) // the router writes it before its join call
  await rooms.join('t', g1, ['ann'])
  t.equal(failures.length, 2, 'the read and the write')
  t.same(rooms.members('s', g1), [], "bob's rooms are unknown for now")
  store.failReads = false
  store.failWrites = false
  await rooms.rewrite()
  t.same(rooms.members('s', g1), ['bob'], 'read again')
  t.same(store.writes.slice(1).sort(), ['inc1 r +', 'inc1 s +', 'inc1 t +'], 'every room with a local member, written again')
})

t.test('rewrite reads every present user again: rooms added while its entries were missing are joined, rooms lost with Redis are left', async (t) => {
  const { store, rooms } = setup('inc1')
  store.reverse.set('ann', [{ room: 'old', generation: g1 }])
  await rooms.arrive('ann')
  // Redis restarted empty; a backend added ann to 'new' before this edge re-registered her.
  store.reverse.set('ann', [{ room: 'new', generation: g2 }])
  await rooms.rewrite()
  t.same(rooms.members('new', g2), ['ann'])
  t.same(rooms.members('old', g1), [])
  t.same(store.writes.slice(1).sort(), ['inc1 new +', 'inc1 old -'])
})

t.test('without a lease the write fails (the resync writes it later)', async (t) => {
  const { store, rooms, failures } = setup(undefined)
  store.reverse.set('ann', [{ room: 'r', generation: g1 }])
  await rooms.arrive('ann')
  t.equal(failures.length, 1)
  t.same(store.writes, [])
})

t.test('token members: a socket joins its token\'s rooms for its life, beside durable members; both are indexed', async (t) => {
  const { store, local } = setup('inc1')
  store.reverse.set('ann', [{ room: 'meet', generation: g1 }])
  const annPhone = { name: 'ann phone' }
  const annLaptop = { name: 'ann laptop' }
  const bobTab = { name: 'bob tab' }
  await local.arrive('ann', annPhone, [])
  await local.arrive('ann', annLaptop, ['meet', 'side'])
  await local.arrive('bob', bobTab, ['meet'])
  t.same(store.writes.sort(), ['inc1 meet +', 'inc1 side +'])
  t.same(local.targets('meet', g1), { users: ['ann'], sockets: [bobTab] }, "ann by durable membership (all her sockets); bob's socket by its token")
  t.same(local.targets('side', g1), { users: [], sockets: [annLaptop] }, 'only the socket whose token has the room')
  t.same(local.targets('side', ''), { users: [], sockets: [annLaptop] }, 'token members are in every life of a room')
  t.same(local.targets('meet', g1, new Set(['bob'])), { users: ['ann'], sockets: [] }, 'except skips token members too')
  local.depart('ann', annLaptop, ['meet', 'side'])
  await local.leave('none')
  t.same(store.writes.at(-1), 'inc1 side -', "the laptop's close empties side")
  t.same(local.targets('meet', g1), { users: ['ann'], sockets: [bobTab] })
  t.equal(await local.leave('meet', ['bob']), 1, 'kicked: his socket leaves the room for its life')
  t.same(local.targets('meet', g1), { users: ['ann'], sockets: [] })
  await local.leave('meet')
  t.same(local.targets('meet', g1), { users: [], sockets: [] }, 'cleared: every member')
  t.same(store.writes.at(-1), 'inc1 meet -')
})

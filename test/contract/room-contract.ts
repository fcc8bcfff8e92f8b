import type { Test } from 'tap'
import { SwitchboardError } from '@switchboard/protocol'
import type { RoomLimits, RoomStore } from '@switchboard/registry'

let seq = 0
const name = (what: string) => `${what}-${process.pid}-${++seq}`

/** The durable room memberships' rules (docs/design/rooms.md), for every implementation. */
export function roomContract(t: Test, make: (t: Test, limits: RoomLimits) => Promise<RoomStore>): void {
  const roomy: RoomLimits = { maxMembers: 100_000, maxRoomsPerUser: 100 }

  t.test('adding is idempotent and says who is new; each member has the room, with its generation', async (t) => {
    const rooms = await make(t, roomy)
    const [room, ann, bob, cy] = [name('meeting'), name('ann'), name('bob'), name('cy')]
    const first = await rooms.add(room, [ann, bob, ann])
    t.same(first.added.sort(), [ann, bob].sort(), 'a repeated id counts once')
    t.same(first.refused, [])
    t.equal(first.members, 2)
    t.match(first.generation, /^[0-9a-f]{16}$/)
    const again = await rooms.add(room, [bob, cy])
    t.same(again, { added: [cy], refused: [], members: 3, generation: first.generation }, 'only cy is new; same life')
    t.same(await rooms.info(room), { members: 3, generation: first.generation })
    t.same(await rooms.roomsOf(ann), [{ room, generation: first.generation }])
    t.same(await rooms.info(name('nowhere')), { members: 0, generation: undefined }, 'a room never created')
  })

  t.test('removing says who was a member and drops the user\'s reverse entry', async (t) => {
    const rooms = await make(t, roomy)
    const [room, other, ann, bob] = [name('group'), name('team'), name('ann'), name('bob')]
    await rooms.add(room, [ann, bob])
    await rooms.add(other, [ann])
    t.same(await rooms.remove(room, [ann, name('stranger'), ann]), { removed: [ann], members: 1 })
    t.same(await rooms.roomsOf(ann), [{ room: other, generation: (await rooms.info(other)).generation }], 'still in the other room')
    t.same((await rooms.members(room, '', 10)).userIds, [bob])
    t.same(await rooms.remove(room, [ann]), { removed: [], members: 1 }, 'removing again changes nothing')
  })

  t.test('members come in pages, in name order, every one once', async (t) => {
    const rooms = await make(t, roomy)
    const room = name('big')
    const users = Array.from({ length: 2_500 }, (_, i) => `m${String(i).padStart(4, '0')}-${seq}`)
    await rooms.add(room, users)
    const seen: string[] = []
    let cursor: string | undefined = ''
    let pages = 0
    while (cursor !== undefined) {
      const page: { userIds: string[]; cursor: string | undefined } = await rooms.members(room, cursor, 1_000)
      seen.push(...page.userIds)
      cursor = page.cursor
      pages++
    }
    t.same(seen, [...users].sort(), 'all of them, sorted')
    t.ok(pages >= 3, `${pages} pages`)
    t.same((await rooms.roomsOf(users[1_234]!)).map((r) => r.room), [room], 'reverse entries in every partition')
  })

  t.test('limits: past maxMembers nothing is added; past maxRoomsPerUser that user is refused, the rest added', async (t) => {
    const rooms = await make(t, { maxMembers: 3, maxRoomsPerUser: 2 })
    const [room, ann, bob, cy, dee] = [name('small'), name('ann'), name('bob'), name('cy'), name('dee')]
    await rooms.add(room, [ann, bob])
    const err = await rooms.add(room, [cy, dee]).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof SwitchboardError && err.code === 'invalid_request', 'refused whole')
    t.match((err as Error).message, /more than 3 members/)
    t.equal((await rooms.info(room)).members, 2, 'nothing added')
    await rooms.add(name('r1'), [cy])
    await rooms.add(name('r2'), [cy])
    const answer = await rooms.add(room, [cy])
    t.same({ added: answer.added, refused: answer.refused, members: answer.members }, { added: [], refused: [cy], members: 2 }, 'cy is in 2 rooms already')
    t.same((await rooms.members(room, '', 10)).userIds.includes(cy), false, 'and not a member')
    t.same((await rooms.add(room, [ann])).refused, [], 'a member already in the room is never refused')
  })

  t.test('delete removes every member and the room; created again, it is a new life', async (t) => {
    const rooms = await make(t, roomy)
    const room = name('gone')
    const users = Array.from({ length: 1_500 }, (_, i) => `d${i}-${seq}`)
    const { generation } = await rooms.add(room, users)
    t.same(await rooms.delete(room), { removed: 1_500 })
    t.same(await rooms.info(room), { members: 0, generation: undefined })
    t.same(await rooms.roomsOf(users[7]!), [], 'reverse entries gone')
    const again = await rooms.add(room, [users[7]!])
    t.not(again.generation, generation, 'a new generation')
    t.same(await rooms.roomsOf(users[7]!), [{ room, generation: again.generation }])
  })

  t.test('clear removes every member and keeps the room\'s life', async (t) => {
    const rooms = await make(t, roomy)
    const room = name('cleared')
    const users = Array.from({ length: 1_200 }, (_, i) => `c${i}-${seq}`)
    const { generation } = await rooms.add(room, users)
    t.same(await rooms.clear(room), { removed: 1_200 })
    t.same(await rooms.info(room), { members: 0, generation }, 'same life, no members')
    t.same(await rooms.roomsOf(users[3]!), [])
    t.same((await rooms.add(room, [users[3]!])).generation, generation)
  })

  t.test('a room with an idle TTL expires; re-created it has a new generation, and reverse entries of the old one are stale', async (t) => {
    const ttl = 150
    const rooms = await make(t, roomy)
    const [room, ann] = [name('ephemeral'), name('ann')]
    const before = await rooms.add(room, [ann], { idleTtlMs: ttl })
    await new Promise((r) => setTimeout(r, ttl + 100))
    t.same(await rooms.info(room), { members: 0, generation: undefined }, 'expired')
    t.same(await rooms.roomsOf(ann), [{ room, generation: before.generation }], 'the reverse entry stays, naming the dead generation')
    const after = await rooms.add(room, [name('bob')])
    t.not(after.generation, before.generation)
    t.equal(after.members, 1, 'ann is not a member of the new life')
    t.same(await rooms.roomsOf(ann), [{ room, generation: before.generation }], 'stale: not this life')
    await rooms.add(room, [ann])
    t.same(await rooms.roomsOf(ann), [{ room, generation: after.generation }], 'joining again refreshes it')
  })

  t.test('roomsOfMany reads many users\' rooms at once, in order, across partitions', async (t) => {
    const rooms = await make(t, roomy)
    const [room, other] = [name('many'), name('other')]
    const users = Array.from({ length: 2_500 }, (_, i) => `rm${i}-${seq}`)
    const { generation } = await rooms.add(room, users.slice(0, 2_000))
    const second = await rooms.add(other, [users[5]!])
    const read = await rooms.roomsOfMany([users[5]!, users[2_400]!, ...users])
    t.equal(read.length, 2_502)
    t.same(read[0]!.sort((a, b) => a.room.localeCompare(b.room)), [{ room, generation }, { room: other, generation: second.generation }].sort((a, b) => a.room.localeCompare(b.room)))
    t.same(read[1], [], 'no rooms')
    t.ok(read.slice(2, 2_002).every((r) => r.length >= 1 && r.some((x) => x.room === room)), 'every member, in order')
    t.same(await rooms.roomsOfMany([]), [])
  })

  t.test('the edge index: a route names the incarnations holding members, and the members of a small room', async (t) => {
    const rooms = await make(t, roomy)
    const [room, ann, bob] = [name('routed'), name('ann'), name('bob')]
    const { generation } = await rooms.add(room, [bob, ann])
    t.same(await rooms.route(room, 10), { generation, members: 2, incIds: [], userIds: [ann, bob].sort() }, 'no edge holds a member yet')
    await rooms.setEdgeRooms('inc-a', [{ room, holds: true }, { room: name('other'), holds: true }])
    await rooms.setEdgeRooms('inc-b', [{ room, holds: true }])
    await rooms.setEdgeRooms('inc-b', [{ room, holds: true }])
    t.same((await rooms.route(room, 10)).incIds.sort(), ['inc-a', 'inc-b'], 'setting twice is setting once')
    await rooms.setEdgeRooms('inc-a', [{ room, holds: false }])
    const big = await rooms.route(room, 1)
    t.same(big, { generation, members: 2, incIds: ['inc-b'], userIds: undefined }, 'cleared; past listMax, no member list')
    t.same(await rooms.route(name('never'), 10), { generation: undefined, members: 0, incIds: [], userIds: [] }, 'a room that does not exist')
  })

  t.test('forgetting a dead incarnation clears its fields in every room, and only its fields', async (t) => {
    const rooms = await make(t, roomy)
    const names = Array.from({ length: 40 }, (_, i) => name(`r${i}`))
    await rooms.setEdgeRooms('inc-dead', names.map((room) => ({ room, holds: true })))
    await rooms.setEdgeRooms('inc-live', [{ room: names[3]!, holds: true }])
    await rooms.forgetIncarnation('inc-dead')
    for (const room of names) t.same((await rooms.route(room, 10)).incIds, room === names[3] ? ['inc-live'] : [], room)
    await rooms.forgetIncarnation('inc-dead')
    t.pass('forgetting again is harmless')
  })
}

import type { Test } from 'tap'
import type { Inbox, InboxLimits, InboxRead } from '@switchboard/registry'

let seq = 0
const user = (name: string) => `${name}-${process.pid}-${++seq}`

/** What a read replays: its entries when recovered, `false` when not. */
const replay = async (read: Promise<InboxRead>) => {
  const r = await read
  return r.recovered === true ? r.entries : r.recovered === false ? false : 'no position'
}

/** The inbox's rules (kept pushes for recovery), for every implementation. */
export function inboxContract(t: Test, make: (t: Test, limits: InboxLimits) => Promise<Inbox>): void {
  const roomy: InboxLimits = { maxLen: 100, ttlMs: 60_000 }

  t.test('offsets count from 1 per user within one epoch; a read returns what follows a position, in order', async (t) => {
    const inbox = await make(t, roomy)
    const [a, b] = [user('a'), user('b')]
    const first = await inbox.append([a, b], 'f1')
    const second = await inbox.append([a], 'f2')
    const third = await inbox.append([a, b], 'f3')
    t.same(first.map((p) => p.offset), [1, 1])
    t.same(second.map((p) => p.offset), [2])
    t.same(third.map((p) => p.offset), [3, 2], 'per user, dense')
    t.match(first[0]!.epoch, /^[0-9a-f]{1,40}$/)
    t.equal(second[0]!.epoch, first[0]!.epoch, 'one epoch per inbox life')
    t.not(first[0]!.epoch, first[1]!.epoch, 'inboxes born in the same call have different epochs')
    t.same(await replay(inbox.read(a, first[0]!)), [{ offset: 2, frame: 'f2' }, { offset: 3, frame: 'f3' }])
    t.same(await replay(inbox.read(a, { epoch: first[0]!.epoch, offset: 0 })), [{ offset: 1, frame: 'f1' }, { offset: 2, frame: 'f2' }, { offset: 3, frame: 'f3' }], 'offset 0: everything')
    t.same(await replay(inbox.read(b, third[1]!)), [], 'at the head: nothing missed')
  })

  t.test('a position the inbox cannot vouch for reads as recovered: false, never a partial replay', async (t) => {
    const inbox = await make(t, { maxLen: 3, ttlMs: 60_000 })
    const u = user('u')
    const positions = []
    for (let i = 1; i <= 5; i++) positions.push((await inbox.append([u], `f${i}`))[0]!)
    const { epoch } = positions[0]!
    t.same(await replay(inbox.read(u, { epoch, offset: 1 })), false, 'offset 2 was trimmed')
    t.same(await replay(inbox.read(u, { epoch, offset: 2 })), [3, 4, 5].map((o) => ({ offset: o, frame: `f${o}` })), 'the 3 kept ones')
    t.same(await replay(inbox.read(u, { epoch, offset: 6 })), false, 'an offset it never reached')
    const otherLife = await inbox.read(u, { epoch: 'abc123', offset: 4 })
    t.same([otherLife.recovered, otherLife.entries], [false, []], 'another epoch, and this life trimmed already: nothing to replay')
    t.same(await replay(inbox.read(user('nobody'), { epoch, offset: 0 })), false, 'no inbox at all')
    t.same(await replay(inbox.read(user('other'), { epoch, offset: 4 })), false, "another user's position")
  })

  t.test('an inbox with nothing kept for its TTL expires whole; the next push starts a new epoch', async (t) => {
    const ttlMs = 150
    const inbox = await make(t, { maxLen: 100, ttlMs })
    const u = user('u')
    const before = (await inbox.append([u], 'old'))[0]!
    await new Promise((r) => setTimeout(r, ttlMs + 100))
    t.same(await replay(inbox.read(u, { epoch: before.epoch, offset: 0 })), false, 'expired')
    const after = (await inbox.append([u], 'new'))[0]!
    t.equal(after.offset, 1)
    t.not(after.epoch, before.epoch, 'a new life')
    const stale = await inbox.read(u, before)
    t.same(stale, { head: { epoch: after.epoch, offset: 0 }, recovered: false, entries: [{ offset: 1, frame: 'new' }] }, 'the old position: not recovered, and all of the new life, which it never saw, from before its first push')
    t.same(await replay(inbox.read(u, { epoch: after.epoch, offset: 0 })), [{ offset: 1, frame: 'new' }])
  })

  t.test('one append to 2,000 users (every partition) answers each in order', async (t) => {
    const inbox = await make(t, roomy)
    const users = Array.from({ length: 2_000 }, (_, i) => user(`m${i}`))
    await inbox.append(users.slice(0, 1_000), 'x')
    const positions = await inbox.append(users, 'y')
    t.same(positions.map((p) => p.offset), users.map((_, i) => (i < 1_000 ? 2 : 1)))
    t.same(await replay(inbox.read(users[1_500]!, { epoch: positions[1_500]!.epoch, offset: 0 })), [{ offset: 1, frame: 'y' }])
  })

  t.test('a read without a position gives the head, creating an empty inbox that the next push continues', async (t) => {
    const inbox = await make(t, roomy)
    const u = user('fresh')
    const first = await inbox.read(u, undefined)
    t.equal(first.head.offset, 0, 'empty')
    t.match(first.head.epoch, /^[0-9a-f]{1,40}$/)
    t.equal(first.recovered, undefined)
    t.same((await inbox.read(u, undefined)).head, first.head, 'read again: the same inbox')
    t.same(await replay(inbox.read(u, first.head)), [], 'resuming from the head of an empty inbox: nothing missed')
    const [p] = await inbox.append([u], 'f1')
    t.same(p, { epoch: first.head.epoch, offset: 1 }, 'the push continues that inbox')
    t.same(await replay(inbox.read(u, first.head)), [{ offset: 1, frame: 'f1' }], 'so a client that connected before it gets it')
    const stale = await inbox.read(u, { epoch: 'abc', offset: 0 })
    t.same(stale, { recovered: false, head: { epoch: p!.epoch, offset: 0 }, entries: [{ offset: 1, frame: 'f1' }] }, 'another life, held whole: recovered: false, from before its first push')
    await inbox.append([u], 'f2')
    t.same((await inbox.read(u, { epoch: 'abc', offset: 0 })).entries.map((e) => e.offset), [1, 2])
  })

  t.test('frames round-trip byte for byte', async (t) => {
    const inbox = await make(t, roomy)
    const u = user('bytes')
    const frame = JSON.stringify({ type: 'push', id: 'é 😀 " \\ \u2028', event: 'e', data: { s: 'x'.repeat(10_000) }, ts: 1 })
    const [p] = await inbox.append([u], frame)
    t.same(await replay(inbox.read(u, { epoch: p!.epoch, offset: 0 })), [{ offset: 1, frame }])
  })
}

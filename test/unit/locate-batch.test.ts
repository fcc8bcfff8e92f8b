import t from 'tap'
import type { Located } from '@switchboard/registry'
import { batchLocates } from '@switchboard/router'

const at = (userId: string): Located => ({ connId: `${userId}-c`, since: 0, nodeId: 'e', incId: 'i', url: 'http://e' })

function fakeLocate() {
  const calls: string[][] = []
  let failing = false
  const locate = async (ids: readonly string[]) => {
    calls.push([...ids])
    if (failing) throw new Error('down')
    return new Map(ids.filter((id) => id.startsWith('on')).map((id) => [id, [at(id)]]))
  }
  return { calls, locate, fail: () => (failing = true) }
}

t.test('lookups made in one turn go to the registry as one call; each caller sees its users', async (t) => {
  const fake = fakeLocate()
  const locate = batchLocates(fake.locate)
  const [a, b, c] = await Promise.all([locate(['on-1', 'off-1']), locate(['on-2']), locate(['off-2'])])
  t.same(fake.calls, [['on-1', 'off-1', 'on-2', 'off-2']])
  t.ok(a.has('on-1') && !a.has('off-1'))
  t.ok(b.has('on-2'))
  t.notOk(c.has('off-2'))
  await locate(['on-3'])
  t.equal(fake.calls.length, 2, 'a later turn makes its own call')
})

t.test('a batch stops growing at maxIds; a failure rejects every caller of its batch', async (t) => {
  const fake = fakeLocate()
  const locate = batchLocates(fake.locate, { maxIds: 3 })
  await Promise.all([locate(['on-1', 'on-2']), locate(['on-3', 'on-4']), locate(['on-5'])])
  t.same(fake.calls, [['on-1', 'on-2'], ['on-3', 'on-4', 'on-5']])
  fake.fail()
  const results = await Promise.allSettled([locate(['on-6']), locate(['on-7'])])
  t.same(results.map((r) => r.status), ['rejected', 'rejected'])
  t.equal(fake.calls.length, 3)
})

t.test('with a coalescing window, slow lookups go within their turn; once they come faster than one per half window, a batch is held for the window and shared', async (t) => {
  const fake = fakeLocate()
  const WINDOW_MS = 50 // long enough that a turn of a loaded host cannot outlast it before the second lookup joins
  let clock = 0
  const locate = batchLocates(fake.locate, { windowMs: WINDOW_MS, now: () => clock })
  const turn = () => new Promise((r) => setImmediate(r))
  for (let i = 0; i < 5; i++) {
    clock += 2 * WINDOW_MS // one lookup per two windows
    const pending = locate([`on-slow-${i}`])
    await turn()
    t.equal(fake.calls.length, i + 1, `slow lookup ${i} went within its turn, not after a window`)
    await pending
  }
  // A lookup every millisecond (a fiftieth of the window): the mean gap falls below half the window.
  let held: { index: number; pending: Promise<Map<string, unknown>>; at: number } | undefined
  for (let i = 0; i < 40 && !held; i++) {
    clock += 1
    const before = fake.calls.length
    const at = performance.now() // no later than its window opened
    const pending = locate([`on-fast-${i}`])
    await turn()
    if (fake.calls.length === before) held = { index: i, pending, at }
    else await pending
  }
  if (!held) return t.fail('never held a batch at five lookups a window')
  t.ok(held.index >= 1, `the first fast lookups went at once (held from the ${held.index + 1}th on: the mean adapts)`)
  clock += 1
  const joined = locate(['on-joined'])
  const [first, second] = await Promise.all([held.pending, joined])
  t.ok(performance.now() - held.at >= WINDOW_MS - 1, 'sent once the window closed (timers may fire up to 1 ms early)')
  t.same(fake.calls.at(-1), [`on-fast-${held.index}`, 'on-joined'], 'a later turn joined the held batch: one call for both')
  t.ok(first.has(`on-fast-${held.index}`) && second.has('on-joined'))
})

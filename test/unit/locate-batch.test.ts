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

t.test('with a coalescing window, a lookup after a quiet spell goes at once; those soon after wait for the window and share one call', async (t) => {
  const fake = fakeLocate()
  const WINDOW_MS = 5
  const locate = batchLocates(fake.locate, { windowMs: WINDOW_MS })
  const sentAt = performance.now() // no later than the first call went
  const zeroth = locate(['on-0'])
  await new Promise((r) => setImmediate(r))
  t.same(fake.calls, [['on-0']], 'the first lookup went within its turn, not after a window')
  await zeroth
  const first = locate(['on-1'])
  await new Promise((r) => setImmediate(r)) // a later turn, inside the window
  t.equal(fake.calls.length, 1, 'nothing more sent while the window is open')
  const second = locate(['on-2'])
  const [a, b] = await Promise.all([first, second])
  t.ok(performance.now() - sentAt >= WINDOW_MS - 1, 'sent no earlier than the window after the last call (timers may fire up to 1 ms early)')
  t.same(fake.calls.slice(1), [['on-1', 'on-2']], 'one call for both turns')
  t.ok(a.has('on-1') && b.has('on-2'))
})

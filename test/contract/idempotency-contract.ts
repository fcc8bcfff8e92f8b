import type { Test } from 'tap'
import type { IdempotencyStore } from '@switchboard/registry'

let seq = 0
const key = () => `k-${process.pid}-${++seq}`

/** The idempotency store's rules, for every implementation. */
export function idempotencyContract(t: Test, make: (t: Test) => Promise<IdempotencyStore>): void {
  t.test('the first begin is new, a repeat in flight, another body a mismatch; the stored answer comes back', async (t) => {
    const store = await make(t)
    const k = key()
    t.same(await store.begin(k, 'fp1', 10_000), { state: 'new' })
    t.same(await store.begin(k, 'fp1', 10_000), { state: 'in_flight' })
    t.same(await store.begin(k, 'fp2', 10_000), { state: 'mismatch' })
    await store.end(k, 'fp1', '{"id":"p1","delivered":["u 1"]}', 10_000)
    t.same(await store.begin(k, 'fp1', 10_000), { state: 'done', answer: '{"id":"p1","delivered":["u 1"]}' }, 'answers with spaces round-trip')
    t.same(await store.begin(k, 'fp2', 10_000), { state: 'mismatch' })
    t.same(await store.begin(key(), 'fp1', 10_000), { state: 'new' }, 'keys are independent')
  })

  t.test('a failed request frees its key; only the request that began it can end it', async (t) => {
    const store = await make(t)
    const k = key()
    await store.begin(k, 'fp1', 10_000)
    await store.end(k, 'other', '{"x":1}', 10_000)
    t.same(await store.begin(k, 'fp1', 10_000), { state: 'in_flight' }, 'an end with another fingerprint changes nothing')
    await store.end(k, 'fp1', undefined, 0)
    t.same(await store.begin(k, 'fp2', 10_000), { state: 'new' }, 'freed: any body may begin again')
  })

  t.test('a pending mark expires (its router died), and so does a stored answer', async (t) => {
    const TTL_MS = 100
    const store = await make(t)
    const pending = key()
    await store.begin(pending, 'fp', TTL_MS)
    const done = key()
    await store.begin(done, 'fp', 10_000)
    await store.end(done, 'fp', '{}', TTL_MS)
    // Nothing to await: expiry is a moment on the store's clock, past it by this wait.
    await new Promise((r) => setTimeout(r, TTL_MS + 150))
    t.same(await store.begin(pending, 'fp', 10_000), { state: 'new' }, 'pending expired')
    t.same(await store.begin(done, 'fp', 10_000), { state: 'new' }, 'answer expired')
  })
}

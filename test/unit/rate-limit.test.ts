import t from 'tap'
import { KeyedRateLimiter } from '../../apps/edge/src/rate-limit.js'

t.test('each key gets its rate with a burst, refilled over time', async (t) => {
  let now = 0
  const limiter = new KeyedRateLimiter(2, 4, 100_000, () => now)
  t.same([1, 2, 3, 4, 5].map(() => limiter.take('a')), [true, true, true, true, false], 'a burst of 4')
  t.ok(limiter.take('b'), 'another key is unaffected')
  now = 500
  t.ok(limiter.take('a'), 'one token back after half a second at 2/s')
  t.notOk(limiter.take('a'))
})

t.test('memory stays bounded: refilled buckets are forgotten past maxKeys', async (t) => {
  let now = 0
  const limiter = new KeyedRateLimiter(10, 10, 100, () => now)
  for (let i = 0; i < 100; i++) limiter.take(`ip-${i}`)
  now = 5_000
  limiter.take('one-more')
  t.equal(limiter.size, 1, 'only the fresh bucket is kept')
})

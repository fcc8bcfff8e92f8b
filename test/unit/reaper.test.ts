import pino from 'pino'
import t from 'tap'
import type { ReapGuard } from '@switchboard/registry'
import { startReaper } from '../../apps/router/src/reaper.js'
import { eventually } from '../helpers/eventually.js'

/** A registry whose reap answers as the test says, recording each call's guard. */
function scriptedRegistry(answers: ('ok' | 'fail' | 'hang')[]) {
  const calls: { at: number; guard: ReapGuard | undefined }[] = []
  let release: () => void = () => undefined
  return {
    calls,
    release: () => release(),
    reap: (_graceMs: number, guard?: ReapGuard) => {
      calls.push({ at: Date.now(), guard })
      const answer = answers[calls.length - 1] ?? 'ok'
      if (answer === 'fail') return Promise.reject(new Error('redis down'))
      if (answer === 'hang') return new Promise<number>((resolve) => (release = () => resolve(0)))
      return Promise.resolve(0)
    },
  }
}

const INTERVAL_MS = 10
const SETTLE_MS = 6_000

function reaper(registry: ReturnType<typeof scriptedRegistry>, t: { teardown(fn: () => void): void }) {
  t.teardown(startReaper({ registry, log: pino({ level: 'silent' }), graceMs: 0, settleMs: SETTLE_MS, intervalMs: INTERVAL_MS }))
}

/** True once `registry` was called `n` times: a call is due every interval; 100 intervals is slack for a loaded machine. */
const called = (registry: ReturnType<typeof scriptedRegistry>, n: number) =>
  eventually(() => registry.calls.length >= n, { timeoutMs: 100 * INTERVAL_MS, intervalMs: INTERVAL_MS / 2 })

t.test('a router that never lost its registry access says so: every lease renewed since the epoch is judged at once', async (t) => {
  const registry = scriptedRegistry([])
  reaper(registry, t)
  await called(registry, 3)
  t.same(registry.calls.map((c) => c.guard), registry.calls.map(() => ({ settleMs: SETTLE_MS, accessMs: undefined })))
})

t.test('after failed calls, each call says how long ago the latest failure was', async (t) => {
  const registry = scriptedRegistry(['ok', 'fail', 'fail', 'ok', 'ok'])
  reaper(registry, t)
  await called(registry, 5)
  const [, , lastFailure, back, next] = registry.calls
  t.equal(registry.calls[0]!.guard?.accessMs, undefined)
  for (const call of [back!, next!]) {
    const accessMs = call.guard?.accessMs ?? -1
    t.ok(accessMs >= 0 && accessMs <= call.at - lastFailure!.at + 1, `accessMs ${accessMs}: since the latest failure (${call.at - lastFailure!.at} ms)`)
  }
  t.ok(next!.guard!.accessMs! > back!.guard!.accessMs!, 'and grows while access lasts')
})

t.test('a call still running is not doubled', async (t) => {
  const registry = scriptedRegistry(['hang'])
  reaper(registry, t)
  await called(registry, 1)
  await new Promise((r) => setTimeout(r, 10 * INTERVAL_MS))
  t.equal(registry.calls.length, 1, 'ten intervals later, still the one call')
  registry.release()
  t.ok(await called(registry, 2), 'the next call once it answered')
})

import pino from 'pino'
import t from 'tap'
import type { ReapGuard } from '@switchboard/registry'
import { startReaper } from '../../apps/router/src/reaper.js'

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

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 5))
}

t.test('a router that never lost its registry access says so: every lease renewed since the epoch is judged at once', async (t) => {
  const registry = scriptedRegistry([])
  const stop = startReaper({ registry, log: pino({ level: 'silent' }), graceMs: 0, settleMs: 6_000, intervalMs: 10 })
  t.teardown(stop)
  await until(() => registry.calls.length >= 3)
  t.same(registry.calls.map((c) => c.guard), registry.calls.map(() => ({ settleMs: 6_000, accessMs: undefined })))
})

t.test('after failed calls, each call says how long ago the latest failure was', async (t) => {
  const registry = scriptedRegistry(['ok', 'fail', 'fail', 'ok', 'ok'])
  const stop = startReaper({ registry, log: pino({ level: 'silent' }), graceMs: 0, settleMs: 6_000, intervalMs: 10 })
  t.teardown(stop)
  await until(() => registry.calls.length >= 5)
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
  const stop = startReaper({ registry, log: pino({ level: 'silent' }), graceMs: 0, settleMs: 6_000, intervalMs: 10 })
  t.teardown(stop)
  await until(() => registry.calls.length >= 1)
  await new Promise((r) => setTimeout(r, 100))
  t.equal(registry.calls.length, 1, 'ten intervals later, still the one call')
  registry.release()
  await until(() => registry.calls.length >= 2)
  t.pass('the next call once it answered')
})

import t from 'tap'
import { Circuits } from '../../apps/router/src/circuit.js'

t.test('an edge is skipped after repeated failures, probed after a cooldown, closed by a success', async (t) => {
  let now = 0
  const c = new Circuits({ threshold: 3, baseCooldownMs: 100, maxCooldownMs: 1_000, now: () => now })
  c.failed('e')
  c.failed('e')
  t.ok(c.allow('e'), 'below the threshold calls go through')
  c.failed('e')
  t.notOk(c.allow('e'), 'skipped once the threshold is reached')
  t.ok(c.allow('other'), 'other edges are unaffected')
  now = 100
  t.ok(c.allow('e'), 'one probe after the cooldown')
  t.notOk(c.allow('e'), 'only one probe at a time')
  c.failed('e')
  now = 250
  t.notOk(c.allow('e'), 'the cooldown doubled after the failed probe')
  now = 300
  t.ok(c.allow('e'))
  c.succeeded('e')
  t.ok(c.allow('e') && c.allow('e'), 'a success closes the circuit')
})

t.test('the cooldown is capped', async (t) => {
  let now = 0
  const c = new Circuits({ threshold: 1, baseCooldownMs: 100, maxCooldownMs: 1_000, now: () => now })
  for (let i = 0; i < 50; i++) c.failed('e')
  now = 999
  t.notOk(c.allow('e'))
  now = 1_000
  t.ok(c.allow('e'))
})

t.test('trip opens the circuit at once, for one cooldown', async (t) => {
  let now = 0
  const c = new Circuits({ threshold: 3, baseCooldownMs: 100, maxCooldownMs: 1_000, now: () => now })
  c.trip('e')
  t.notOk(c.allow('e'), 'skipped after a single trip')
  now = 100
  t.ok(c.allow('e'), 'probed after the base cooldown')
  c.succeeded('e')
  t.ok(c.allow('e'))
})

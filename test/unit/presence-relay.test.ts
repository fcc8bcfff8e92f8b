// The routers' presence delivery worker against a MemoryRegistry and fake sinks: order,
// batching, acknowledgements, retries, a dead sink holding back only itself, 410, takeover.
import t, { type Test } from 'tap'
import pino from 'pino'
import { Registry as PromRegistry } from 'prom-client'
import type { PresenceEvent } from '@switchboard/protocol'
import { MemoryRegistry, partitionOf, type Lease } from '@switchboard/registry'
import { createPresenceMetrics } from '../../apps/router/src/presence/metrics.js'
import { PresenceRelay, type RelayOptions } from '../../apps/router/src/presence/relay.js'
import type { Attempt, Sink } from '../../apps/router/src/presence/sink.js'
import { eventually } from '../helpers/clients.js'

const POLL_MS = 10

/** A sink that records what it acknowledged and answers as told. */
function fakeSink(id: string, answer: (n: number) => Attempt = () => ({ outcome: 'ack' })) {
  const acked: PresenceEvent[] = []
  const batches: { batchId: string; size: number }[] = []
  let n = 0
  const sink: Sink & { acked: PresenceEvent[]; batches: typeof batches; attempts: () => number } = {
    id,
    label: id,
    acked,
    batches,
    attempts: () => n,
    async send(batchId, events) {
      const result = answer(++n)
      batches.push({ batchId, size: events.length })
      if (result.outcome === 'ack') acked.push(...events)
      return result
    },
  }
  return sink
}

function relay(t: Test, registry: MemoryRegistry, sinks: Sink[], over: Partial<RelayOptions> = {}) {
  const r = new PresenceRelay({
    registry,
    sinks,
    workerId: `w-${Math.random()}`,
    log: pino({ level: 'silent' }),
    metrics: createPresenceMetrics(new PromRegistry()),
    pollMs: POLL_MS,
    batchMax: 10,
    batchMs: 20,
    retryForMs: 60_000,
    attemptTimeoutMs: 100,
    retryDelayMs: () => 5,
    ...over,
  })
  r.start()
  t.teardown(() => r.stop())
  return r
}

async function churn(registry: MemoryRegistry, lease: Lease, users: string[], rounds: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    for (const u of users) await registry.addConnections(lease, [{ userId: u, connId: `${u}-${r}`, since: r }])
    for (const u of users) await registry.removeConnection(lease, u, `${u}-${r}`)
  }
}

/** Per user, the ver sequence must be strictly increasing and alternate online/offline. */
function perUserOrder(events: readonly PresenceEvent[]): string[] {
  const last = new Map<string, PresenceEvent>()
  const problems: string[] = []
  for (const e of events) {
    const before = last.get(e.userId)
    if (before && (e.ver <= before.ver || e.type === before.type)) problems.push(`${e.userId}: ${before.type} ${before.ver} then ${e.type} ${e.ver}`)
    last.set(e.userId, e)
  }
  return problems
}

t.test('every event reaches every sink once, in each user\'s order, in batches of at most batchMax', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const a = fakeSink('a')
  const b = fakeSink('b')
  relay(t, registry, [a, b])
  const users = Array.from({ length: 30 }, (_, i) => `u${i}`)
  await churn(registry, lease, users, 3)
  await eventually(() => a.acked.length === 180 && b.acked.length === 180, { timeoutMs: 5_000 })
  for (const sink of [a, b]) {
    t.equal(new Set(sink.acked.map((e) => e.id)).size, 180, `${sink.id}: each event once`)
    t.same(perUserOrder(sink.acked), [], `${sink.id}: per-user order`)
    t.ok(sink.batches.every((x) => x.size <= 10), `${sink.id}: batches of at most 10`)
  }
  // Acknowledgements are stored, so another router would resume after them.
  const last = a.acked.filter((e) => e.userId === 'u7').at(-1)!
  t.equal((await registry.acknowledged(partitionOf('u7'), ['a']))[0], last.id.split('.')[0], 'acknowledged positions stored')
})

t.test('a failing sink is retried with the same batch id and holds back only itself', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  let healthy = false
  const flaky = fakeSink('flaky', () => (healthy ? { outcome: 'ack' } : { outcome: 'retry', error: '500' }))
  const good = fakeSink('good')
  const r = relay(t, registry, [flaky, good])
  await churn(registry, lease, ['x', 'y'], 5)
  await eventually(() => good.acked.length === 20, { timeoutMs: 5_000 })
  t.equal(flaky.acked.length, 0, 'the failing sink got nothing acknowledged meanwhile')
  const status = await eventually(() => {
    const s = r.status()
    return s.sinks[0]!.lastError && s.sinks[1]!.pending === 0 ? s : undefined
  })
  t.equal(status.partitions, registry.partitions)
  t.equal(status.owned, registry.partitions, 'the only worker delivers every partition')
  t.match(status.sinks[0], { label: 'flaky', disabled: false, pending: 20, lastError: { message: '500' } }, 'the failing sink: its backlog and last error')
  t.ok(status.sinks[0]!.oldestPendingMs >= 0 && status.sinks[0]!.lastAckAt === undefined)
  t.match(status.sinks[1], { label: 'good', pending: 0, oldestPendingMs: 0, lastAckAt: Number }, 'the healthy one: caught up')
  t.notOk('lastError' in status.sinks[1]!)
  await eventually(() => flaky.attempts() >= 3)
  const retried = flaky.batches.slice(0, 3).map((x) => x.batchId)
  t.equal(new Set(retried).size, 1, 'retries carry the same batch id')
  healthy = true
  await eventually(() => flaky.acked.length === 20, { timeoutMs: 5_000 })
  t.same(perUserOrder(flaky.acked), [], 'in order once it recovers')
})

t.test('410 disables the sink; others go on', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const gone = fakeSink('gone', () => ({ outcome: 'gone', error: '410' }))
  const good = fakeSink('good')
  const r = relay(t, registry, [gone, good])
  await churn(registry, lease, ['g'], 2)
  await eventually(() => good.acked.length === 4)
  await churn(registry, lease, ['g'], 2)
  await eventually(() => good.acked.length === 8)
  t.equal(gone.attempts(), 1, 'asked once, never again')
  t.match(r.status().sinks[0], { label: 'gone', disabled: true, lastError: { message: '410' } }, 'shown disabled')
})

t.test('a batch failing past the retry window is dropped and the sink moves on', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  // Refuses every batch holding the first event it ever saw.
  let poison: string | undefined
  const acked: PresenceEvent[] = []
  let attempts = 0
  const sink: Sink = {
    id: 's',
    label: 's',
    async send(_id, events) {
      attempts++
      poison ??= events[0]!.id
      if (events.some((e) => e.id === poison)) return { outcome: 'retry', error: '500' }
      acked.push(...events)
      return { outcome: 'ack' }
    },
  }
  let skewMs = 0
  relay(t, registry, [sink], { retryForMs: 1_000, batchMax: 2, now: () => Date.now() + skewMs })
  await churn(registry, lease, ['d'], 1)
  await eventually(() => attempts >= 2)
  t.same(acked, [], 'retried, not acknowledged, within the window')
  skewMs = 2_000 // the retry window passes
  await churn(registry, lease, ['d'], 1)
  await eventually(() => acked.length === 2)
  t.same(acked.map((e) => e.type), ['user.online', 'user.offline'], 'the later events arrive, the poisoned pair was dropped')
  t.notOk(acked.some((e) => e.id === poison))
})

t.test('held offlines come out when due, through the relay', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 50 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const sink = fakeSink('s')
  relay(t, registry, [sink])
  await registry.addConnections(lease, [{ userId: 'h', connId: 'h1', since: 0 }])
  await registry.removeConnection(lease, 'h', 'h1', 'drain')
  await eventually(() => sink.acked.length === 2, { timeoutMs: 5_000 })
  t.same(sink.acked.map((e) => `${e.type} ${e.cause}`), ['user.online connect', 'user.offline drain'])
})

t.test('two workers share the partitions; when one stops, the other delivers its share from its acknowledgements', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const seen: PresenceEvent[] = []
  const sinkFor = () => ({ ...fakeSink('shared'), send: async (_id: string, events: readonly PresenceEvent[]) => (seen.push(...events), { outcome: 'ack' as const }) })
  const claimTtlMs = 300
  const one = relay(t, registry, [sinkFor()], { claimTtlMs, attemptTimeoutMs: 0 })
  const two = relay(t, registry, [sinkFor()], { claimTtlMs, attemptTimeoutMs: 0 })
  await eventually(() => one.owned.length > 0 && two.owned.length > 0 && one.owned.length + two.owned.length === registry.partitions, { timeoutMs: 10_000 })
  t.same(one.owned.filter((p) => two.owned.includes(p)), [], 'disjoint')
  const users = Array.from({ length: 40 }, (_, i) => `s${i}`)
  await churn(registry, lease, users, 1)
  await eventually(() => seen.length === 80)
  await one.stop()
  await churn(registry, lease, users, 1)
  await eventually(() => seen.length === 160, { timeoutMs: 10_000 })
  t.equal(new Set(seen.map((e) => e.id)).size, 160, 'every event once')
  t.equal(two.owned.length, registry.partitions, 'the survivor took every partition')
})

t.test('stream positions order by time, then sequence, as numbers', async (t) => {
  const { comparePositions } = await import('@switchboard/registry')
  const sorted = ['0-0', '9-5', '10-0', '10-2', '10-10', '100-1']
  const shuffled = [...sorted].reverse()
  t.same(shuffled.sort(comparePositions), sorted)
  t.equal(comparePositions('10-2', '10-2'), 0)
})

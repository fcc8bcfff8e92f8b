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

t.test('a backlog over every partition is read a bounded number of events per turn, and all of it delivered', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const users = Array.from({ length: 3_000 }, (_, i) => `b${i}`)
  await churn(registry, lease, users, 1) // 6,000 events waiting before the worker starts
  const counts: number[] = []
  const pump = registry.pump.bind(registry)
  registry.pump = (partition, after, count) => {
    counts.push(count)
    return pump(partition, after, count)
  }
  const sink = fakeSink('a')
  relay(t, registry, [sink], { batchMax: 1_000 })
  await eventually(() => sink.acked.length === 6_000, { timeoutMs: 10_000 })
  const firstTurn = counts.slice(0, registry.partitions)
  t.equal(firstTurn.length, registry.partitions, 'its first turn reads every partition (all stale at the takeover)')
  t.ok(firstTurn.reduce((a, b) => a + b, 0) <= 20 * registry.partitions, `first turn: ${firstTurn.reduce((a, b) => a + b, 0)} events asked for, at most 20 a partition, not 1,000 each`)
  t.equal(new Set(sink.acked.map((e) => e.id)).size, 6_000, 'each event once')
  t.same(perUserOrder(sink.acked), [], 'per-user order')
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

/** A sink shared by several workers (one id, so one acknowledgement per partition) recording every event it acknowledged. */
function sharedSink(seen: PresenceEvent[], hold?: () => Promise<void> | undefined): Sink {
  return {
    id: 'shared',
    label: 'shared',
    async send(_id, events) {
      await hold?.()
      seen.push(...events)
      return { outcome: 'ack' }
    },
  }
}

/** Every id at most once, and the ones given all there. */
function onceEach(t: Test, seen: readonly PresenceEvent[], expected: number) {
  const ids = seen.map((e) => e.id)
  t.same(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'no event twice')
  t.equal(new Set(ids).size, expected, 'none missing')
  t.same(perUserOrder(seen), [], 'each user\'s events in order')
}

// No claim lapses in these tests: a partition can only move by being given and released.
const NO_LAPSE_MS = 60_000
/** A hand-over takes a few polls; this leaves room for a loaded 2-core runner (387 ms seen at a load of 18), far below a regular turn (NO_LAPSE_MS / 5). */
const HANDOVER_MARGIN_MS = 100 * POLL_MS

t.test('a joining worker takes its share within a few polls while events flow, none twice or lost', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const seen: PresenceEvent[] = []
  const one = relay(t, registry, [sharedSink(seen)], { claimTtlMs: NO_LAPSE_MS })
  await eventually(() => one.owned.length === registry.partitions)
  const users = Array.from({ length: 64 }, (_, i) => `j${i}`)
  let rounds = 0
  let isChurning = true
  const churning = (async () => {
    for (; isChurning; rounds++) {
      await churn(registry, lease, users, 1)
      await new Promise((r) => setTimeout(r, 1)) // the memory registry never yields by itself
    }
  })()
  await eventually(() => seen.length > 0)
  const joinedAt = Date.now()
  const two = relay(t, registry, [sharedSink(seen)], { claimTtlMs: NO_LAPSE_MS })
  await eventually(() => one.owned.length === registry.partitions / 2 && two.owned.length === registry.partitions / 2, { timeoutMs: 5_000, intervalMs: 1 })
  const tookMs = Date.now() - joinedAt
  // A few polls (the joiner's turn, the giver's turn woken by the membership change, its
  // releasing turn a poll later, the joiner's claim a poll after that); the margin is for a
  // loaded runner. Without the hand-over the giver's next regular turn would be NO_LAPSE_MS / 5 away.
  t.ok(tookMs < HANDOVER_MARGIN_MS, `half the partitions moved in ${tookMs} ms (poll ${POLL_MS} ms)`)
  t.same(one.owned.filter((p) => two.owned.includes(p)), [], 'disjoint')
  isChurning = false
  await churning
  await eventually(() => seen.length >= 2 * users.length * rounds, { timeoutMs: 5_000 })
  await new Promise((r) => setTimeout(r, 10 * POLL_MS)) // a late duplicate would arrive meanwhile
  onceEach(t, seen, 2 * users.length * rounds)
})

t.test('a given partition with an attempt in flight is released only once the attempt is acknowledged', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const seen: PresenceEvent[] = []
  let gate: Promise<void> | undefined
  let open = () => {}
  let held = 0
  const hold = () => {
    if (!gate) return undefined
    held++
    return gate
  }
  const one = relay(t, registry, [sharedSink(seen, hold)], { claimTtlMs: NO_LAPSE_MS })
  await eventually(() => one.owned.length === registry.partitions)
  // A user in the upper half: the implementations give a worker's highest partitions first.
  const user = Array.from({ length: 100 }, (_, i) => `g${i}`).find((u) => partitionOf(u) >= registry.partitions / 2)!
  const p = partitionOf(user)
  gate = new Promise((resolve) => (open = resolve))
  await registry.addConnections(lease, [{ userId: user, connId: 'c1', since: 0 }])
  await eventually(() => held === 1, { intervalMs: 1 })
  const two = relay(t, registry, [sharedSink(seen)], { claimTtlMs: NO_LAPSE_MS })
  await eventually(() => two.owned.length === registry.partitions / 2 - 1, { timeoutMs: 5_000, intervalMs: 1 })
  await new Promise((r) => setTimeout(r, 10 * POLL_MS))
  t.ok(one.owned.includes(p) && !two.owned.includes(p), 'the busy partition stays with the giver while its attempt is in flight')
  t.equal(two.owned.length, registry.partitions / 2 - 1, 'the others moved')
  gate = undefined
  open()
  await eventually(() => two.owned.length === registry.partitions / 2, { timeoutMs: 5_000, intervalMs: 1 })
  t.ok(two.owned.includes(p), 'released once acknowledged')
  await registry.removeConnection(lease, user, 'c1')
  await eventually(() => seen.length === 2)
  await new Promise((r) => setTimeout(r, 10 * POLL_MS))
  onceEach(t, seen, 2)
  t.same(seen.map((e) => e.type), ['user.online', 'user.offline'], 'the taker went on from the giver\'s acknowledgement')
})

t.test('a sink backing off does not hold a given partition: its batch ends and the taker sends it', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const seen: PresenceEvent[] = []
  let attempts = 0
  const failing: Sink = {
    id: 'shared',
    label: 'shared',
    async send() {
      attempts++
      return { outcome: 'retry', error: '503' }
    },
  }
  const one = relay(t, registry, [failing], { claimTtlMs: NO_LAPSE_MS, retryDelayMs: () => NO_LAPSE_MS })
  await eventually(() => one.owned.length === registry.partitions)
  const user = Array.from({ length: 100 }, (_, i) => `f${i}`).find((u) => partitionOf(u) >= registry.partitions / 2)!
  await registry.addConnections(lease, [{ userId: user, connId: 'c1', since: 0 }])
  await eventually(() => attempts === 1, { intervalMs: 1 })
  const two = relay(t, registry, [sharedSink(seen)], { claimTtlMs: NO_LAPSE_MS })
  await eventually(() => two.owned.length === registry.partitions / 2, { timeoutMs: 5_000, intervalMs: 1 })
  t.ok(two.owned.includes(partitionOf(user)), 'taken over during the backoff')
  await eventually(() => seen.length === 1)
  t.equal(attempts, 1, 'the giver made no further attempt')
  onceEach(t, seen, 1)
})

t.test('a stopping worker releases its partitions: the other delivers them from the acknowledgements without waiting for its claim to lapse', async (t) => {
  const registry = new MemoryRegistry({ presence: { offlineGraceMs: 0 } })
  const lease = await registry.openLease({ nodeId: 'e', url: 'http://e', startedAt: 0 }, 60_000)
  const seen: PresenceEvent[] = []
  const one = relay(t, registry, [sharedSink(seen)], { claimTtlMs: NO_LAPSE_MS })
  const two = relay(t, registry, [sharedSink(seen)], { claimTtlMs: NO_LAPSE_MS })
  await eventually(() => one.owned.length > 0 && two.owned.length > 0 && one.owned.length + two.owned.length === registry.partitions, { timeoutMs: 10_000 })
  t.same(one.owned.filter((p) => two.owned.includes(p)), [], 'disjoint')
  const users = Array.from({ length: 40 }, (_, i) => `s${i}`)
  await churn(registry, lease, users, 1)
  await eventually(() => seen.length === 80)
  const stoppedAt = Date.now()
  await one.stop()
  t.same(one.owned, [], 'the stopped worker holds nothing')
  await churn(registry, lease, users, 1)
  await eventually(() => two.owned.length === registry.partitions, { intervalMs: 1 })
  const tookMs = Date.now() - stoppedAt
  t.ok(tookMs < HANDOVER_MARGIN_MS, `the survivor took every partition ${tookMs} ms after the stop (poll ${POLL_MS} ms)`)
  await eventually(() => seen.length === 160, { timeoutMs: 10_000 })
  onceEach(t, seen, 160)
})

t.test('stream positions order by time, then sequence, as numbers', async (t) => {
  const { comparePositions } = await import('@switchboard/registry')
  const sorted = ['0-0', '9-5', '10-0', '10-2', '10-10', '100-1']
  const shuffled = [...sorted].reverse()
  t.same(shuffled.sort(comparePositions), sorted)
  t.equal(comparePositions('10-2', '10-2'), 0)
})

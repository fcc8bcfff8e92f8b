// The edge's registration loop against a MemoryRegistry that fails on demand, with a fake
// clock: renewals, backoffs and resyncs run when the test moves time, never by waiting.
import t from 'tap'
import pino from 'pino'
import { Registry as PromRegistry } from 'prom-client'
import type { ConnectionInfo, Lease } from '@switchboard/registry'
import { createEdgeMetrics } from '../../apps/edge/src/metrics.js'
import { Registration } from '../../apps/edge/src/registration.js'
import { FakeClock, settle, until } from '../helpers/fake-clock.js'
import { FlakyRegistry } from '../helpers/flaky-registry.js'

const TTL_MS = 3_000
const RENEW_MS = TTL_MS / 3

function setup() {
  const clock = new FakeClock()
  /** When afterResync ran (clock ms). */
  const outages: number[] = []
  // The registry's leases lapse on the same clock: a missed renewal shows.
  const registry = new FlakyRegistry({ now: () => clock.now() })
  /** What the edge holds open, by connId. */
  const live = new Map<string, ConnectionInfo>()
  const promRegistry = new PromRegistry()
  const registration = new Registration({
    registry,
    node: { nodeId: 'edge-1', url: 'http://edge-1.test', startedAt: clock.now() },
    leaseTtlMs: TTL_MS,
    log: pino({ level: 'silent' }),
    metrics: createEdgeMetrics(promRegistry),
    maxConnectionsPerUser: 64,
    clock,
  })
  /** What the edge holds, as the registration loop asks it. */
  const holder = {
    liveConnections: () => [...live.values()],
    status: () => ({ connections: live.size, draining: false }),
    onEvicted: async () => undefined,
    afterResync: async () => void outages.push(clock.now()),
  }
  const start = () => registration.start(holder)
  let n = 0
  /** A connection the edge now holds open. */
  const open = (userId: string): ConnectionInfo => {
    const conn = { userId, connId: `${userId}.${n++}`, since: clock.now() }
    live.set(conn.connId, conn)
    return conn
  }
  /** Opens the lease, then opens and registers a connection for each user. */
  const startWith = async <U extends string[]>(...userIds: U) => {
    await registration.start(holder)
    const conns = userIds.map(open) as { [K in keyof U]: ConnectionInfo }
    await Promise.all(conns.map((c) => registration.register(c)))
    return conns
  }
  /** The user's live entries as routers see them, without a call recorded. */
  const located = async (userId: string) => (await registry.inner.locate([userId])).get(userId) ?? []
  const connIdsOf = async (userId: string) => (await located(userId)).map((l) => l.connId)
  const count = (method: Parameters<FlakyRegistry['argsOf']>[0]) => registry.argsOf(method).length
  /** edge_lease_renewals_total by result. */
  const renewals = async (result: string) => {
    const metric = await promRegistry.getSingleMetric('edge_lease_renewals_total')!.get()
    return metric.values.find((v) => v.labels.result === result)?.value ?? 0
  }
  return { clock, registry, registration, start, live, open, startWith, located, connIdsOf, count, renewals, outages }
}

t.test('the lease is opened with backoff while the registry fails', async (t) => {
  const { clock, registry, registration, start, count } = setup()
  registry.failing.add('openLease')
  const started = start()
  await until(() => clock.pending.length === 1, 'first backoff')
  // random() is 0.5: full jitter waits half of each backoff's ceiling.
  t.same(clock.pending, [100], 'after the first failure: a ceiling of 200 ms, jittered')
  t.equal(registration.isHealthy, false)
  await clock.advance(100)
  t.equal(count('openLease'), 2)
  t.same(clock.pending, [200], 'the ceiling doubles')
  registry.failing.delete('openLease')
  await clock.advance(199)
  t.equal(count('openLease'), 2, 'no attempt before the backoff is over')
  await clock.advance(1)
  await started
  t.equal(count('openLease'), 3)
  t.ok(registration.isHealthy)
  t.equal((await registry.inner.liveNodes()).length, 1, 'the lease is in the registry')
  t.same(clock.pending, [RENEW_MS], 'the first renewal is due a third of the TTL later')
})

t.test('the lease is renewed every TTL/3 and outlives its TTL', async (t) => {
  const { clock, registry, registration, start, open, count, renewals } = setup()
  await start()
  open('a')
  await clock.advance(RENEW_MS - 1)
  t.equal(count('renew'), 0, 'not before a third of the TTL')
  await clock.advance(1)
  t.equal(count('renew'), 1)
  t.same(registry.argsOf('renew')[0]![1], { connections: 1, draining: false }, 'each renewal reports the status')
  for (let i = 0; i < 5; i++) await clock.advance(RENEW_MS)
  t.equal(count('renew'), 6)
  t.same(clock.pending, [RENEW_MS], 'one timer, the next renewal')
  t.equal((await registry.inner.liveNodes()).length, 1, 'alive after twice its TTL')
  t.equal(await renewals('ok'), 6)
  t.equal(count('resync') + count('openLease'), 1, 'nothing failed: no resync, no new lease')
})

t.test('registrations made in one turn are written in one call', async (t) => {
  const { registry, registration, start, open, connIdsOf, count } = setup()
  await start()
  const batch = [open('a'), open('b'), open('a')]
  await Promise.all(batch.map((c) => registration.register(c)))
  await settle() // a stray second flush would show now
  t.same(registry.argsOf('addConnections').map((args) => args[1]), [batch], 'one addConnections with all three')
  t.same(await connIdsOf('a'), ['a.0', 'a.2'])
  t.same(await connIdsOf('b'), ['b.1'])
  await registration.register(open('c'))
  t.equal(count('addConnections'), 2, 'a later turn is a call of its own')
})

t.test('a failed write marks a resync, which re-writes every live connection after the next renewal', async (t) => {
  const { clock, registry, registration, start, open, connIdsOf, count } = setup()
  await start()
  registry.failing.add('addConnections')
  const a = open('a')
  await registration.register(a) // resolves: the connection is queued for the resync
  t.equal(registration.isHealthy, false)
  t.same(await connIdsOf('a'), [], 'not written')
  const b = open('b') // opened meanwhile, its own write not made yet
  registry.failing.delete('addConnections')
  await clock.advance(RENEW_MS)
  const order = registry.calls.map((c) => c.method).filter((m) => m === 'renew' || m === 'resync')
  t.same(order, ['renew', 'resync'], 'the resync follows the renewal')
  t.same(registry.argsOf('resync')[0]![1], [a, b], 'every live connection')
  t.same(await connIdsOf('a'), [a.connId])
  t.same(await connIdsOf('b'), [b.connId])
  t.ok(registration.isHealthy)
  await clock.advance(RENEW_MS)
  t.equal(count('resync'), 1, 'once')
})

t.test('a lost lease is replaced by a new one and every live connection is re-written', async (t) => {
  const { clock, registry, registration, startWith, located, count, renewals } = setup()
  const [a] = await startWith('a')
  const first: Lease = registration.lease!
  await registry.inner.closeLease(first) // as after a Redis restart without its data
  t.same(await located('a'), [])
  await clock.advance(RENEW_MS)
  t.equal(count('openLease'), 2)
  const second = registration.lease!
  t.not(second.incId, first.incId, 'a new incarnation')
  t.same(registry.argsOf('resync').map((args) => [(args[0] as Lease).incId, args[1]]), [[second.incId, [a]]], 'resynced under the new lease')
  t.same((await located('a')).map((l) => [l.connId, l.incId]), [[a.connId, second.incId]])
  t.equal(await renewals('lost'), 1)
  t.ok(registration.isHealthy)
})

t.test('a new registry server (failover) triggers a new lease and a resync', async (t) => {
  const { clock, registry, registration, startWith, located, count, renewals } = setup()
  const [a] = await startWith('a')
  const first = registration.lease!
  registry.identity = 'server-2'
  await clock.advance(RENEW_MS)
  t.equal(count('openLease'), 2, 'a new incarnation hides whatever the old server kept')
  t.same(registry.argsOf('resync').map((args) => args[1]), [[a]])
  t.not(registration.lease!.incId, first.incId)
  t.same((await located('a')).map((l) => l.incId), [registration.lease!.incId])
  t.equal(await renewals('server_changed'), 1)
  await clock.advance(RENEW_MS)
  t.equal(count('resync'), 1, 'the new server is remembered: no second resync')
})

t.test('a removal carries its cause; a failed one is replayed after the resync with it', async (t) => {
  const { clock, registry, registration, live, startWith, connIdsOf } = setup()
  const [a, b, c] = await startWith('a', 'b', 'c')
  live.delete(c.connId)
  await registration.unregister('c', c.connId, 'drain')
  t.same(registry.argsOf('removeConnection').at(-1)!.slice(1), ['c', c.connId, 'drain'])
  t.same(await connIdsOf('c'), [])

  registry.failing.add('removeConnection')
  live.delete(a.connId)
  await registration.unregister('a', a.connId, 'evicted')
  t.same(await connIdsOf('a'), [a.connId], 'still there')
  t.equal(registration.isHealthy, false)
  await clock.advance(RENEW_MS)
  t.same(registry.argsOf('removeConnection').at(-1)!.slice(1), ['a', a.connId, 'evicted'], 'the failed replay kept its cause too')
  t.same(await connIdsOf('a'), [a.connId])

  registry.failing.delete('removeConnection')
  const before = registry.calls.length
  await clock.advance(RENEW_MS)
  const calls = registry.calls.slice(before)
  t.same(
    calls.map((x) => x.method).filter((m) => m !== 'serverIdentity'),
    ['renew', 'resync', 'removeConnection'],
    'after the renewal, the resync, then the replay',
  )
  t.same(calls.find((x) => x.method === 'resync')!.args[1], [b], 'the live connections only')
  t.same(calls.at(-1)!.args.slice(1), ['a', a.connId, 'evicted'], 'with its cause')
  t.same(await connIdsOf('a'), [])
  t.same(await connIdsOf('b'), [b.connId])
  t.ok(registration.isHealthy)
})

t.test('a removal waits for the resync under way', async (t) => {
  const { clock, registry, registration, live, startWith, connIdsOf, count } = setup()
  const [b] = await startWith('b')
  registry.identity = 'server-2'
  const release = registry.hold('resync')
  await clock.advance(RENEW_MS)
  await until(() => count('resync') === 1, 'resync started')
  // b closes while the resync (which read the live connections, b included) is in flight.
  live.delete(b.connId)
  const removal = registration.unregister('b', b.connId, 'close')
  await settle()
  t.equal(count('removeConnection'), 0, 'not while the resync may still write b')
  release()
  await removal
  const methods = registry.calls.map((c) => c.method)
  t.ok(methods.indexOf('removeConnection') > methods.indexOf('resync'), 'removed after the resync')
  t.same(await connIdsOf('b'), [], 'no ghost entry')
})

t.test('stop() closes the lease and leaves no timer', async (t) => {
  const { clock, registry, registration, startWith, connIdsOf, count } = setup()
  await startWith('a')
  await clock.advance(RENEW_MS)
  t.same(clock.pending, [RENEW_MS])
  await registration.stop()
  t.equal(count('closeLease'), 1)
  t.equal(registration.lease, undefined)
  t.same(clock.pending, [], 'the renewal timer is gone')
  t.same(await registry.inner.liveNodes(), [])
  t.same(await connIdsOf('a'), [], 'its entries went with the lease')
  await clock.advance(10 * RENEW_MS)
  t.equal(count('renew'), 1, 'no renewal after stop')
})

t.test('after an outage its lease may not have survived, a resync (and afterResync) runs once; never on a steady renewal or a short hiccup', async (t) => {
  const { clock, registry, startWith, outages } = setup()
  await startWith('ann')
  await clock.advance(5 * RENEW_MS)
  t.same(outages, [], 'steady renewals: nothing to announce')
  // One failed renewal, then success: the gap is two intervals at most, the lease held.
  registry.failing.add('renew')
  await clock.advance(RENEW_MS)
  registry.failing.delete('renew')
  await until(() => clock.pending.length === 1, 'retry armed')
  await clock.advance(clock.pending[0]!)
  t.same(outages, [], 'a short hiccup: the lease did not lapse')
  // Renewals fail for two TTLs: the lease lapses (and revives at the next renewal: not reaped).
  registry.failing.add('renew')
  await clock.advance(2 * TTL_MS)
  registry.failing.delete('renew')
  const back = clock.now()
  await clock.advance(6_000) // past the capped backoff (one renewal interval)
  t.equal(outages.length, 1, 'announced once after the outage')
  t.ok(outages[0]! >= back)
  t.equal(registry.argsOf('resync').length, 1, 'and every live connection re-written: the lease may have lapsed, and another edge evicted one of its entries meanwhile')
  await clock.advance(5 * RENEW_MS)
  t.equal(outages.length, 1, 'and not again')
})

// The admin web's two stateful pieces, without sockets: the bounded session store (expiry and
// cap, injected clock) and the traffic history (rates from the router's own counters).
import t from 'tap'
import type { Session } from 'fastify'
import { Registry as PromRegistry } from 'prom-client'
import { BoundedSessionStore } from '../../apps/router/src/admin/session-store.js'
import { TrafficHistory } from '../../apps/router/src/admin/traffic.js'
import { createRouterMetrics } from '../../apps/router/src/metrics.js'

const session = (n: number) => ({ n }) as unknown as Session
const read = (store: BoundedSessionStore, id: string) =>
  new Promise<unknown>((resolve, reject) => store.get(id, (err, s) => (err ? reject(err as Error) : resolve(s))))
const save = (store: BoundedSessionStore, id: string, s: Session) => new Promise<void>((resolve) => store.set(id, s, () => resolve()))

t.test('sessions: kept until their TTL from the last save, then gone', async (t) => {
  let now = 0
  const store = new BoundedSessionStore(1_000, 100, () => now)
  await save(store, 'a', session(1))
  now = 999
  t.same(await read(store, 'a'), { n: 1 }, 'before its TTL')
  await save(store, 'a', session(2))
  now = 1_500
  t.same(await read(store, 'a'), { n: 2 }, 'saving again restarts it')
  now = 1_999
  t.equal(await read(store, 'a'), null, 'then it is gone')
  t.equal(store.size, 0, 'and dropped, not only hidden')
  await save(store, 'b', session(3))
  await new Promise<void>((resolve) => store.destroy('b', () => resolve()))
  t.equal(await read(store, 'b'), null, 'destroyed at logout')
})

t.test('sessions: expired ones are swept at the next save; past the cap the least recently saved goes', async (t) => {
  let now = 0
  const store = new BoundedSessionStore(1_000, 3, () => now)
  for (const id of ['a', 'b', 'c']) await save(store, id, session(0))
  now = 2_000
  await save(store, 'd', session(0))
  t.equal(store.size, 1, 'the three expired sessions were swept')
  for (const id of ['e', 'f']) await save(store, id, session(0))
  await save(store, 'd', session(1)) // d is now the most recently saved
  await save(store, 'g', session(0))
  t.equal(store.size, 3, 'never more than the cap')
  t.equal(await read(store, 'e'), null, 'the least recently saved went first')
  for (const id of ['f', 'd', 'g']) t.ok(await read(store, id), `${id} kept`)
  // An anonymous flood: 10 x the cap of new sessions.
  for (let i = 0; i < 30; i++) await save(store, `x${i}`, session(i))
  t.equal(store.size, 3)
})

t.test('traffic: recipients per second by result between samples, the cluster\'s connections, a bounded history', async (t) => {
  const promRegistry = new PromRegistry()
  const metrics = createRouterMetrics(promRegistry, () => 0)
  let now = 10_000
  let nodes: { connections: number }[] | Error = [{ connections: 3 }, { connections: 4 }]
  const registry = { liveNodes: async () => (nodes instanceof Error ? Promise.reject(nodes) : nodes) } as never
  const history = new TrafficHistory({ promRegistry, registry, everyMs: 2_000, keep: 2, now: () => now })
  await history.sample()
  t.same(history.samples(), [], 'the first reading only sets the baseline')
  metrics.recipients.labels('delivered').inc(10)
  metrics.recipients.labels('offline').inc(4)
  metrics.recipients.labels('routed').inc(6)
  metrics.recipients.labels('acked').inc(8)
  now += 2_000
  await history.sample()
  t.same(history.samples(), [{ at: 12_000, connections: 7, delivered: 5, routed: 3, acked: 4, unacked: 0, offline: 2, failed: 0 }])
  nodes = new Error('redis down')
  metrics.recipients.labels('failed').inc(1)
  now += 500
  await history.sample()
  t.match(history.samples().at(-1), { connections: null, failed: 2, delivered: 0, routed: 0 }, 'the registry unreadable: connections unknown, rates still there')
  now += 2_000
  await history.sample()
  t.equal(history.samples().length, 2, 'at most `keep` samples')
  t.equal(history.samples()[0]!.at, 12_500, 'the oldest went')
})

import type { Test } from 'tap'
import { partitionOf, type PresenceSettings, type Registry, type StoredEvent } from '@switchboard/registry'
import { eventually } from '../helpers/clients.js'

/** A fresh registry sharing no state with any other, with these presence settings. */
export type MakePresenceRegistry = (t: Test, presence: Partial<PresenceSettings>) => Promise<Registry>

// Short, so held offlines come due quickly; the waits below are derived from it.
const graceMs = 300
const ttlMs = 300
// A worker's claim on its presence partitions, long enough not to lapse within a test.
const CLAIM_TTL_MS = 5_000
// On top of a grace or TTL before a wait fails: a loaded machine's scheduling.
const SLACK_MS = 5_000

let seq = 0
const uid = (name: string) => `${name}-${process.pid}-${++seq}`
const node = (name: string) => ({ nodeId: uid(name), url: `http://${name}.test:8081`, startedAt: Date.now() })
const conn = (userId: string, connId = uid('c')) => ({ userId, connId, since: Date.now() })

/** Every event recorded for these users so far (held offlines that are due settled first), in order. */
async function eventsOf(registry: Registry, ...userIds: string[]): Promise<StoredEvent[]> {
  const out: StoredEvent[] = []
  for (const p of new Set(userIds.map(partitionOf))) {
    const { events } = await registry.pump(p, '0-0', 10_000)
    out.push(...events.filter((e) => userIds.includes(e.userId)))
  }
  return out
}

const summary = (events: readonly StoredEvent[]) => events.map((e) => `${e.userId} ${e.type} ${e.cause} ${e.connections}`)

/** The presence-event rules every Registry implementation must follow. */
export function presenceContract(t: Test, make: MakePresenceRegistry): void {
  t.test('transitions only: first connection online, last one offline, with their causes', async (t) => {
    const registry = await make(t, { offlineGraceMs: 0 })
    const lease = await registry.openLease(node('e'), 60_000)
    const u = uid('u')
    const [a, b] = [conn(u), conn(u)]
    await registry.addConnections(lease, [a])
    await registry.addConnections(lease, [b])
    await registry.removeConnection(lease, u, a.connId)
    t.same(summary(await eventsOf(registry, u)), [`${u} user.online connect 1`], 'a second connection and its close are not events')
    await registry.removeConnection(lease, u, b.connId, 'disconnect_api')
    await registry.removeConnection(lease, u, b.connId, 'close')
    t.same(summary(await eventsOf(registry, u)), [`${u} user.online connect 1`, `${u} user.offline disconnect_api 0`], 'a repeated removal records nothing')
  })

  t.test('versions increase strictly per user, ids are unique, ts is the transition time', async (t) => {
    const registry = await make(t, { offlineGraceMs: 0 })
    const lease = await registry.openLease(node('e'), 60_000)
    const u = uid('u')
    const before = Date.now()
    for (let i = 0; i < 20; i++) {
      const c = conn(u)
      await registry.addConnections(lease, [c])
      await registry.removeConnection(lease, u, c.connId)
    }
    const events = await eventsOf(registry, u)
    t.equal(events.length, 40)
    t.ok(events.every((e, i) => i === 0 || e.ver > events[i - 1]!.ver), 'ver strictly increasing')
    t.equal(new Set(events.map((e) => e.id)).size, 40, 'ids unique')
    t.ok(events.every((e, i) => e.type === (i % 2 === 0 ? 'user.online' : 'user.offline')), 'alternating')
    // The registry's clock (Redis TIME) and ours may differ a little.
    t.ok(events.every((e) => e.ts >= before - 1_000 && e.ts <= Date.now() + 1_000), 'ts near now')
  })

  t.test('eviction and single-session replacement keep the user online: no event', async (t) => {
    const registry = await make(t, { offlineGraceMs: 0 })
    const [l1, l2] = [await registry.openLease(node('e1'), 60_000), await registry.openLease(node('e2'), 60_000)]
    const u = uid('u')
    const old = conn(u)
    await registry.addConnections(l1, [old])
    const evicted = await registry.addConnections(l2, [conn(u)], 1)
    t.same(evicted.map((e) => e.connId), [old.connId])
    t.equal(await registry.removeConnection(l1, u, old.connId, 'replaced'), false, 'the replaced socket\'s removal finds nothing')
    t.same(summary(await eventsOf(registry, u)), [`${u} user.online connect 1`])
  })

  t.test('an offline is held for the grace and cancelled by a return within it', async (t) => {
    const registry = await make(t, { offlineGraceMs: graceMs })
    const lease = await registry.openLease(node('e'), 60_000)
    const [back, gone] = [uid('back'), uid('gone')]
    const [b1, g1] = [conn(back), conn(gone)]
    await registry.addConnections(lease, [b1, g1])
    const closedAt = Date.now()
    await registry.removeConnection(lease, back, b1.connId, 'close')
    await registry.removeConnection(lease, gone, g1.connId, 'drain')
    t.same(summary(await eventsOf(registry, back, gone)).filter((s) => s.includes('offline')), [], 'nothing during the grace')
    const snapshot = await registry.snapshot(partitionOf(gone), '0', 1_000)
    t.ok(snapshot.users.some((u) => u.userId === gone), 'a held user is still online in the snapshot')
    await registry.addConnections(lease, [conn(back)])
    const events = await eventually(async () => {
      const all = await eventsOf(registry, back, gone)
      return all.some((e) => e.type === 'user.offline') && all
    }, { timeoutMs: graceMs + SLACK_MS })
    t.ok(Date.now() - closedAt >= graceMs, 'not before the grace ended')
    t.same(summary(events.filter((e) => e.userId === gone)), [`${gone} user.online connect 1`, `${gone} user.offline drain 0`], 'the held offline came out with its cause')
    t.same(summary(events.filter((e) => e.userId === back)), [`${back} user.online connect 1`], 'the return cancelled the other')
  })

  t.test('pumps asked together read and settle each their own partition; versions of several partitions at once', async (t) => {
    const registry = await make(t, { offlineGraceMs: graceMs })
    const lease = await registry.openLease(node('e'), 60_000)
    const users = Array.from({ length: 20 }, () => uid('many'))
    const conns = users.map((u) => conn(u))
    await registry.addConnections(lease, conns)
    for (const c of conns.slice(0, 10)) await registry.removeConnection(lease, c.userId, c.connId, 'drain')
    const partitions = [...new Set(users.map(partitionOf))]
    t.ok(partitions.length > 1, 'the users span several partitions')
    const versions = await registry.versions(partitions)
    t.same(versions, await Promise.all(partitions.map(async (p) => (await registry.versions([p]))[0])), 'the same versions as asked one by one')
    const pumpAll = () => Promise.all(partitions.map((p) => registry.pump(p, '0-0', 10_000).then(({ events }) => events.map((e) => ({ e, p })))))
    const read = await eventually(async () => {
      const all = (await pumpAll()).flat().filter(({ e }) => users.includes(e.userId))
      return all.filter(({ e }) => e.type === 'user.offline').length === 10 && all
    }, { timeoutMs: graceMs + SLACK_MS })
    t.ok(read.every(({ e, p }) => e.partition === p && partitionOf(e.userId) === p), "each pump answers its own partition's events")
    t.same(
      users.map((u) => summary(read.filter(({ e }) => e.userId === u).map(({ e }) => e))),
      users.map((u, i) => (i < 10 ? [`${u} user.online connect 1`, `${u} user.offline drain 0`] : [`${u} user.online connect 1`])),
      'every online, and each held offline settled in its partition',
    )
  })

  t.test('a crashed edge: its users without another connection go offline edge_lost, the others get nothing', async (t) => {
    const registry = await make(t, { offlineGraceMs: 0 })
    const crashed = await registry.openLease(node('crashed'), ttlMs)
    const other = await registry.openLease(node('other'), 60_000)
    const [alone, both] = [uid('alone'), uid('both')]
    await registry.addConnections(crashed, [conn(alone), conn(both)])
    await registry.addConnections(other, [conn(both)])
    t.ok(await eventually(async () => (await registry.reap(0)) > 0 || undefined, { timeoutMs: ttlMs + SLACK_MS }), 'reaped once lapsed')
    await registry.renew(other, { connections: 1, draining: false })
    const events = await eventsOf(registry, alone, both)
    t.same(summary(events.filter((e) => e.type === 'user.offline')), [`${alone} user.offline edge_lost 0`])
    t.same(summary(events.filter((e) => e.userId === both)), [`${both} user.online connect 1`], 'the user connected elsewhere got nothing')
  })

  t.test('closing a lease takes its remaining users offline with cause drain; a resync brings them back with cause resync', async (t) => {
    const registry = await make(t, { offlineGraceMs: 0 })
    const lease = await registry.openLease(node('e'), 60_000)
    const u = uid('u')
    const c = conn(u)
    await registry.addConnections(lease, [c])
    await registry.closeLease(lease)
    const next = await registry.openLease(node('e'), 60_000)
    await registry.resync(next, [c])
    t.same(summary(await eventsOf(registry, u)), [`${u} user.online connect 1`, `${u} user.offline drain 0`, `${u} user.online resync 1`])
  })

  t.test('a partition\'s version changes with every event and held offline, and only then', async (t) => {
    const registry = await make(t, { offlineGraceMs: 60_000 })
    const lease = await registry.openLease(node('e'), 60_000)
    const u = uid('u')
    const p = partitionOf(u)
    const v0 = (await registry.versions([p]))[0]
    const c = conn(u)
    await registry.addConnections(lease, [c])
    const v1 = (await registry.versions([p]))[0]
    t.not(v1, v0, 'an online changes it')
    await registry.addConnections(lease, [conn(u)])
    t.equal((await registry.versions([p]))[0], v1, 'a second connection does not')
    await registry.removeConnection(lease, u, c.connId)
    t.equal((await registry.versions([p]))[0], v1, 'nor its close')
    await registry.removeConnection(lease, u, (await registry.locate([u])).get(u)![0]!.connId)
    const v2 = (await registry.versions([p]))[0]
    t.not(v2, v1, 'a held offline does')
    t.ok(Number(v2) > Number(v1), 'increasing')
  })

  t.test('acknowledgements are kept per partition and sink', async (t) => {
    const registry = await make(t, {})
    t.same(await registry.acknowledged(7, ['a', 'b']), [undefined, undefined])
    await registry.acknowledge(7, 'a', '123-4')
    t.same(await registry.acknowledged(7, ['a', 'b']), ['123-4', undefined])
    t.same(await registry.acknowledged(8, ['a']), [undefined])
  })

  t.test('partitions change hands with one owner at any moment: the giver is told, releases, and the taker claims at once', async (t) => {
    const registry = await make(t, {})
    const n = registry.partitions
    const sorted = (ps: readonly number[]) => [...ps].sort((a, b) => a - b)
    const lone = await registry.claimPartitions('w1', CLAIM_TTL_MS)
    t.match(lone, { giving: [], isWaiting: false }, 'a lone worker gives nothing and waits for nothing')
    t.equal(lone.owned.length, n, 'it owns every partition')
    const before = await registry.membership()
    const joined = await registry.claimPartitions('w2', CLAIM_TTL_MS)
    t.same(joined.owned, [], 'the second worker takes nothing the first still owns')
    t.equal(joined.isWaiting, true, 'and waits for its share')
    t.not(joined.membership, before, 'its joining changed the membership')
    t.equal(await registry.membership(), joined.membership)
    const told = await registry.claimPartitions('w1', CLAIM_TTL_MS)
    t.equal(told.owned.length, n, 'the first still owns every partition')
    t.equal(told.giving.length, n / 2, 'and is told to give half')
    t.ok(told.giving.every((p) => told.owned.includes(p)), 'of its own')
    t.equal(told.membership, joined.membership, 'a renewal is no membership change')
    t.same((await registry.claimPartitions('w2', CLAIM_TTL_MS)).owned, [], 'nothing is taken before it is released')
    // Three still have a batch in flight: the giver releases the others now, those later.
    const [busy, idle] = [told.giving.slice(0, 3), told.giving.slice(3)]
    const released = await registry.claimPartitions('w1', CLAIM_TTL_MS, idle)
    t.equal(released.owned.length, n / 2 + 3, 'the giver keeps the busy ones')
    t.same(sorted(released.giving), sorted(busy), 'still to give')
    const taken = await registry.claimPartitions('w2', CLAIM_TTL_MS)
    t.same(sorted(taken.owned), sorted(idle), 'the taker claims what was released at its next turn')
    t.equal(taken.isWaiting, true, 'and still waits for the rest')
    t.same((await registry.claimPartitions('w2', CLAIM_TTL_MS, busy)).owned.filter((p) => busy.includes(p)), [], 'a worker cannot release what it does not own')
    await registry.claimPartitions('w1', CLAIM_TTL_MS, busy)
    const w2 = await registry.claimPartitions('w2', CLAIM_TTL_MS)
    t.match(w2, { giving: [], isWaiting: false }, 'the taker has its share')
    const w1 = await registry.claimPartitions('w1', CLAIM_TTL_MS)
    t.match(w1, { giving: [], isWaiting: false }, 'the giver has given')
    t.equal(w1.owned.length + w2.owned.length, n, 'every partition owned')
    t.equal(new Set([...w1.owned, ...w2.owned]).size, n, 'by one worker')
    const workers = await registry.workers()
    t.same(workers.map((w) => [w.workerId, w.partitions]), [['w1', n / 2], ['w2', n / 2]], 'both live, half each')
    t.ok(workers.every((w) => w.expiresInMs > 0 && w.expiresInMs <= CLAIM_TTL_MS), 'each until its claim lapses')
    await registry.leavePartitions('w2', w2.owned)
    t.not(await registry.membership(), w1.membership, 'a worker leaving changes the membership')
    t.same((await registry.workers()).map((w) => [w.workerId, w.partitions]), [['w1', n / 2]], 'the leaver is gone, its partitions unowned')
    t.equal((await registry.claimPartitions('w1', CLAIM_TTL_MS)).owned.length, n, 'the other takes them at its next turn')
  })

  t.test('a worker that stops renewing loses its partitions when its claim lapses', async (t) => {
    const registry = await make(t, {})
    const ttlMs = 300
    await registry.claimPartitions('dead', ttlMs)
    const first = await registry.claimPartitions('live', ttlMs)
    t.same(first.owned, [], 'not while its claim lasts')
    const taken = await eventually(async () => {
      const claim = await registry.claimPartitions('live', ttlMs)
      return claim.owned.length === registry.partitions && claim
    }, { timeoutMs: ttlMs + SLACK_MS })
    t.not(taken.membership, first.membership, 'the lapse changed the membership')
    t.same((await registry.workers()).map((w) => w.workerId), ['live'])
  })

  t.test('the feed keeps events in order and reads from any position', async (t) => {
    const registry = await make(t, {})
    t.same((await registry.readFeed('0-0', 10)).events, [])
    const events = Array.from({ length: 5 }, (_, i) => ({ id: `e${i}`, type: 'user.online' as const, userId: 'u', ver: i + 1, cause: 'connect' as const, connections: 1, ts: Date.now() }))
    await registry.appendFeed(events.slice(0, 3))
    await registry.appendFeed(events.slice(3))
    const first = await registry.readFeed('0-0', 2)
    t.same(first.events.map((e) => e.event.id), ['e0', 'e1'])
    const rest = await registry.readFeed(first.events[1]!.position, 10)
    t.same(rest.events.map((e) => e.event), events.slice(2))
    t.equal(rest.newest, rest.events[2]!.position)
    t.equal(rest.oldest, first.events[0]!.position)
    const recent = await registry.recentFeed(2)
    t.same(recent.map((e) => e.event.id), ['e4', 'e3'], 'the newest first')
    t.same(recent.map((e) => e.position), rest.events.slice(1).reverse().map((e) => e.position), 'at the positions readFeed gives')
    t.equal((await registry.recentFeed(100)).length, 5)
  })
}


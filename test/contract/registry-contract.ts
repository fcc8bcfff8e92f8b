import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import type { ConnectionInfo, Lease, Located, NodeInfo, Registry } from '@switchboard/registry'
import { eventually as eventuallyWithin } from '../helpers/eventually.js'

/** Returns a fresh registry that shares no state with any other, its teardown registered on `t`. */
export type MakeRegistry = (t: Test) => Promise<Registry>

// Short enough to keep the suite quick, long enough that a 100 ms renew cadence never misses.
const shortTtlMs = 400
const longTtlMs = 60_000
// A real-time condition (a lapse, a reap) shows once shortTtlMs has passed; on top of that,
// slack for a loaded machine before the test fails.
const realTimeDeadlineMs = shortTtlMs + 5_000
const graceMs = 100

let seq = 0
/** Unique per call, so suites sharing one Redis never see each other's nodes or users. */
function uniqueId(prefix: string): string {
  seq += 1
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${seq}`
}

function nodeInfo(name: string): NodeInfo {
  const nodeId = uniqueId(name)
  return { nodeId, url: `http://${nodeId}.test:8081`, startedAt: Date.now() }
}

function conn(userId: string, connId = uniqueId('c'), since = Date.now()): ConnectionInfo {
  return { userId, connId, since }
}

function located(lease: Lease, c: ConnectionInfo): Located {
  return { connId: c.connId, since: c.since, nodeId: lease.nodeId, incId: lease.incId, url: lease.url }
}

/** Order within a user is not part of the contract. */
function byConnId(list: readonly Located[] | undefined): Located[] {
  return [...(list ?? [])].sort((a, b) => (a.connId < b.connId ? -1 : a.connId > b.connId ? 1 : 0))
}

/** Map -> plain object with each user's connections sorted, for order-free comparison. */
function normalize(found: ReadonlyMap<string, readonly Located[]>): Record<string, Located[]> {
  return Object.fromEntries([...found].map(([userId, list]) => [userId, byConnId(list)]))
}

/** Polls `check` until it holds (true), or rejects saying so at the real-time deadline. */
const eventually = (check: () => Promise<boolean>) => eventuallyWithin(check, { timeoutMs: realTimeDeadlineMs, intervalMs: 20 })

async function isLocated(registry: Registry, userId: string): Promise<boolean> {
  return (await registry.locate([userId])).has(userId)
}

async function isLive(registry: Registry, lease: Lease): Promise<boolean> {
  return (await registry.liveNodes()).some((n) => n.incId === lease.incId)
}

/** Reaps until at least one incarnation was cleaned; returns the total cleaned. */
async function reapSome(registry: Registry): Promise<number> {
  let cleaned = 0
  await eventually(async () => {
    cleaned += await registry.reap(graceMs)
    return cleaned >= 1
  })
  return cleaned
}

export function registryContract(t: Test, makeRegistry: MakeRegistry): void {
  t.test('the server identity is a stable, non-empty name while nothing fails over', async (t) => {
    const registry = await makeRegistry(t)
    const first = await registry.serverIdentity()
    t.ok(first.length > 0)
    t.equal(await registry.serverIdentity(), first)
  })

  t.test('add then locate returns nodeId, url, connId, since and incId', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    // One format for every registry (newIncarnationId): base36 ms, then 8 random base36 chars.
    t.match(lease.incId, /^[0-9a-z]{17}$/)
    t.equal(lease.ttlMs, longTtlMs)
    const c = conn(uniqueId('u'), uniqueId('c'), 1_700_000_000_123)
    await registry.addConnections(lease, [c])
    const found = await registry.locate([c.userId])
    t.same([...found.keys()], [c.userId])
    t.same(found.get(c.userId), [located(lease, c)])
  })

  t.test('every openLease gets a distinct incId', async (t) => {
    const registry = await makeRegistry(t)
    const a = nodeInfo('a')
    const b = nodeInfo('b')
    const incIds = new Set<string>()
    let last: Lease[] = []
    for (let i = 0; i < 10; i += 1) {
      last = [await registry.openLease(a, longTtlMs), await registry.openLease(b, longTtlMs)]
      for (const lease of last) incIds.add(lease.incId)
    }
    t.equal(incIds.size, 20)
    const live = (await registry.liveNodes()).map((n) => n.incId).sort()
    t.same(live, last.map((l) => l.incId).sort(), 'only the newest incarnation of each node is live')
  })

  t.test('a user with several devices on two nodes is located on all of them', async (t) => {
    const registry = await makeRegistry(t)
    const one = await registry.openLease(nodeInfo('one'), longTtlMs)
    const two = await registry.openLease(nodeInfo('two'), longTtlMs)
    const userId = uniqueId('u')
    const [phone, laptop, tablet] = [conn(userId), conn(userId), conn(userId)]
    await registry.addConnections(one, [phone, tablet])
    await registry.addConnections(two, [laptop])
    const want = [located(one, phone), located(two, laptop), located(one, tablet)]
    t.same(byConnId((await registry.locate([userId])).get(userId)), byConnId(want))

    t.equal(await registry.removeConnection(one, userId, phone.connId), true)
    const rest = [located(two, laptop), located(one, tablet)]
    t.same(byConnId((await registry.locate([userId])).get(userId)), byConnId(rest))
  })

  t.test('locate answers 2,000 users at once and leaves absent ones out', async (t) => {
    const registry = await makeRegistry(t)
    const one = await registry.openLease(nodeInfo('one'), longTtlMs)
    const two = await registry.openLease(nodeInfo('two'), longTtlMs)
    const present = Array.from({ length: 1_500 }, (_, i) => conn(uniqueId(`u${i}`)))
    const absent = Array.from({ length: 500 }, (_, i) => uniqueId(`absent${i}`))
    await registry.addConnections(one, present.filter((_, i) => i % 2 === 0))
    await registry.addConnections(two, present.filter((_, i) => i % 2 === 1))

    const found = await registry.locate([...absent, ...present.map((c) => c.userId)])
    t.equal(found.size, 1_500)
    const want = Object.fromEntries(
      present.map((c, i) => [c.userId, [located(i % 2 === 0 ? one : two, c)]]),
    )
    t.same(normalize(found), want)
    t.notOk(absent.some((userId) => found.has(userId)), 'no absent user is in the map')
    t.equal((await registry.locate([])).size, 0)
  })

  t.test('duplicated user ids in the locate input count once', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    const c = conn(uniqueId('u'))
    const other = uniqueId('absent')
    await registry.addConnections(lease, [c])
    const found = await registry.locate([c.userId, other, c.userId, c.userId, other])
    t.same([...found.keys()], [c.userId])
    t.same(found.get(c.userId), [located(lease, c)])
  })

  t.test('a late removal from the old node never removes the newer connection', async (t) => {
    const registry = await makeRegistry(t)
    const one = await registry.openLease(nodeInfo('one'), longTtlMs)
    const two = await registry.openLease(nodeInfo('two'), longTtlMs)
    const userId = uniqueId('u')
    const a = conn(userId)
    const b = conn(userId)
    await registry.addConnections(one, [a])
    // The user reconnects on node two before node one notices that socket A closed.
    await registry.addConnections(two, [b])
    t.equal(await registry.removeConnection(one, userId, a.connId), true)
    t.same((await registry.locate([userId])).get(userId), [located(two, b)])
    t.equal(await registry.removeConnection(one, userId, a.connId), false, 'a repeat finds nothing')
    t.same((await registry.locate([userId])).get(userId), [located(two, b)])
  })

  t.test('removeConnection reports whether that exact entry was there', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    const userId = uniqueId('u')
    const otherUser = uniqueId('other')
    const [c1, c2] = [conn(userId), conn(userId)]
    t.equal(await registry.removeConnection(lease, userId, c1.connId), false, 'unknown user')
    await registry.addConnections(lease, [c1, c2])
    t.equal(await registry.removeConnection(lease, userId, uniqueId('nope')), false, 'unknown connId')
    t.equal(await registry.removeConnection(lease, otherUser, c1.connId), false, 'connId of another user')
    t.same(byConnId((await registry.locate([userId])).get(userId)), byConnId([located(lease, c1), located(lease, c2)]))
    t.equal(await registry.removeConnection(lease, userId, c1.connId), true)
    t.equal(await registry.removeConnection(lease, userId, c1.connId), false, 'already removed')
    t.same((await registry.locate([userId])).get(userId), [located(lease, c2)])
  })

  t.test('removing the last connection makes the user absent at once', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    const c = conn(uniqueId('u'))
    await registry.addConnections(lease, [c])
    t.ok(await isLocated(registry, c.userId))
    t.equal(await registry.removeConnection(lease, c.userId, c.connId), true)
    const found = await registry.locate([c.userId])
    t.equal(found.size, 0)
    t.notOk(found.has(c.userId))
  })

  t.test('a restart with the same nodeId supersedes the old incarnation at once', async (t) => {
    const registry = await makeRegistry(t)
    const info = nodeInfo('n')
    const old = await registry.openLease(info, longTtlMs)
    const [u1, u2, u3] = [uniqueId('u1'), uniqueId('u2'), uniqueId('u3')]
    const oldConn = conn(u1)
    await registry.addConnections(old, [oldConn, conn(u2)])
    t.equal((await registry.locate([u1, u2])).size, 2)

    const fresh = await registry.openLease({ ...info, startedAt: info.startedAt + 1 }, longTtlMs)
    t.not(fresh.incId, old.incId)
    t.equal(fresh.nodeId, old.nodeId)
    t.equal((await registry.locate([u1, u2])).size, 0, 'old entries are invisible at once')
    t.equal(await registry.renew(old, { connections: 2, draining: false }), false)

    const newConn = conn(u1)
    await registry.addConnections(fresh, [newConn])
    t.same(normalize(await registry.locate([u1, u2])), { [u1]: [located(fresh, newConn)] })

    // The old process, unaware, keeps writing and renewing: nothing of it comes back.
    await registry.addConnections(old, [oldConn, conn(u3)])
    await registry.resync(old, [conn(u2)])
    t.equal(await registry.renew(old, { connections: 3, draining: false }), false)
    t.same(normalize(await registry.locate([u1, u2, u3])), { [u1]: [located(fresh, newConn)] })

    const live = (await registry.liveNodes()).filter((n) => n.nodeId === info.nodeId)
    t.same(live.map((n) => n.incId), [fresh.incId])
  })

  t.test('a lease that is not renewed lapses: entries and node are hidden', async (t) => {
    const registry = await makeRegistry(t)
    const openedAt = Date.now()
    const lease = await registry.openLease(nodeInfo('n'), shortTtlMs)
    const c = conn(uniqueId('u'))
    await registry.addConnections(lease, [c])
    t.ok(await isLocated(registry, c.userId), 'visible while the lease holds')
    t.ok(await isLive(registry, lease), 'live while the lease holds')

    const hidden = await eventually(async () => {
      const [found, live] = [await isLocated(registry, c.userId), await isLive(registry, lease)]
      return !found && !live
    })
    t.ok(hidden, 'entries and node hidden after the ttl')
    t.ok(Date.now() - openedAt >= shortTtlMs - 50, 'not hidden before the ttl')
  })

  t.test('renewing before the ttl keeps entries visible past the ttl', async (t) => {
    const registry = await makeRegistry(t)
    const startedAt = Date.now()
    const lease = await registry.openLease(nodeInfo('n'), shortTtlMs)
    const c = conn(uniqueId('u'))
    await registry.addConnections(lease, [c])
    const seen: boolean[] = []
    while (Date.now() - startedAt < shortTtlMs * 2.5) {
      await sleep(shortTtlMs / 4)
      seen.push((await isLocated(registry, c.userId)) && (await isLive(registry, lease)))
      t.equal(await registry.renew(lease, { connections: 1, draining: false }), true)
    }
    t.ok(seen.length >= 5)
    t.same(seen, seen.map(() => true), 'visible and live at every check')
    t.same((await registry.locate([c.userId])).get(c.userId), [located(lease, c)])
  })

  t.test('renew after the lease lapsed but before reap revives it', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), shortTtlMs)
    const c = conn(uniqueId('u'))
    await registry.addConnections(lease, [c])
    t.ok(await eventually(async () => !(await isLive(registry, lease))), 'lapsed')
    t.notOk(await isLocated(registry, c.userId))
    t.equal(await registry.reap(longTtlMs), 0, 'still within the grace')

    t.equal(await registry.renew(lease, { connections: 1, draining: false }), true)
    // Readers may cache the live set briefly: coming back need not be instant, going away must be.
    // Keep renewing while waiting, as a live edge would, so the short ttl doesn't lapse again.
    const revived = await eventually(async () => {
      await registry.renew(lease, { connections: 1, draining: false })
      return (await isLocated(registry, c.userId)) && (await isLive(registry, lease))
    })
    t.ok(revived, 'entries and node visible again')
    t.same((await registry.locate([c.userId])).get(c.userId), [located(lease, c)])
  })

  t.test('with a guard, a lease lapsed since the caller lost its access waits the settle; one renewed after is judged at once', async (t) => {
    const registry = await makeRegistry(t)
    const before = await registry.openLease(nodeInfo('before'), shortTtlMs)
    const beforeConn = conn(uniqueId('u'))
    await registry.addConnections(before, [beforeConn])
    // The caller's access fails (Redis unreachable to all, say) a moment after this lease's last renewal.
    await sleep(20)
    const failedAt = Date.now()
    await sleep(20)
    const after = await registry.openLease(nodeInfo('after'), shortTtlMs)
    t.ok(await eventually(async () => !(await isLive(registry, before)) && !(await isLive(registry, after))), 'both lapsed')
    await sleep(graceMs + 20)
    const guard = () => ({ settleMs: longTtlMs, accessMs: Date.now() - failedAt })
    t.equal(await registry.reap(graceMs, guard()), 1, 'only the lease renewed after the access returned is judged')
    t.equal(await registry.renew(after, { connections: 0, draining: false }), false, 'that one was reaped')
    t.equal(await registry.reap(graceMs, guard()), 0, 'the older one waits')
    t.equal(await registry.renew(before, { connections: 1, draining: false }), true, 'so its edge renews it once back')
    t.ok(await eventually(async () => isLocated(registry, beforeConn.userId)), 'its entries never left')
  })

  t.test('with a guard, a lapsed lease renewed before the access returned is judged once that return is settleMs old', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), shortTtlMs)
    await sleep(20)
    const failedAt = Date.now()
    t.ok(await eventually(async () => !(await isLive(registry, lease))), 'lapsed')
    await sleep(graceMs + 20)
    t.equal(await registry.reap(graceMs, { settleMs: longTtlMs, accessMs: Date.now() - failedAt }), 0, 'within the settle: kept')
    t.equal(await registry.reap(graceMs, { settleMs: Date.now() - failedAt - 10, accessMs: Date.now() - failedAt }), 1, 'past it: reaped')
    t.equal(await registry.renew(lease, { connections: 0, draining: false }), false)
  })

  t.test('with a guard and no access lost, a lease opened in this registry is judged at once when it lapses', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), shortTtlMs)
    t.ok(await eventually(async () => !(await isLive(registry, lease))), 'lapsed')
    await sleep(graceMs + 20)
    t.equal(await registry.reap(graceMs, { settleMs: longTtlMs }), 1, 'reaped, though the settle is long')
  })

  t.test('reap forgets incarnations lapsed longer than the grace', async (t) => {
    const registry = await makeRegistry(t)
    const info = nodeInfo('dead')
    const dead = await registry.openLease(info, shortTtlMs)
    const deadConn = conn(uniqueId('u'))
    await registry.addConnections(dead, [deadConn])
    t.ok(await eventually(async () => !(await isLocated(registry, deadConn.userId))), 'lapsed')

    const alive = await registry.openLease(nodeInfo('alive'), longTtlMs)
    const aliveConn = conn(uniqueId('u'))
    await registry.addConnections(alive, [aliveConn])

    t.ok((await reapSome(registry)) >= 1, 'reap cleaned the lapsed incarnation')
    t.equal(await registry.renew(dead, { connections: 1, draining: false }), false)
    t.notOk(await isLocated(registry, deadConn.userId))
    t.equal(await registry.renew(alive, { connections: 1, draining: false }), true, 'a live lease is kept')
    t.same((await registry.locate([aliveConn.userId])).get(aliveConn.userId), [located(alive, aliveConn)])

    // A new incarnation of the same node starts empty, and the dead lease can't write.
    const fresh = await registry.openLease(info, longTtlMs)
    await registry.addConnections(dead, [conn(deadConn.userId)])
    t.notOk(await isLocated(registry, deadConn.userId))
    const live = (await registry.liveNodes()).filter((n) => n.nodeId === info.nodeId)
    t.same(live.map((n) => n.incId), [fresh.incId])
  })

  t.test('closeLease removes the node and its entries at once', async (t) => {
    const registry = await makeRegistry(t)
    const leaving = await registry.openLease(nodeInfo('leaving'), longTtlMs)
    const staying = await registry.openLease(nodeInfo('staying'), longTtlMs)
    const userId = uniqueId('u')
    const [gone, kept] = [conn(userId), conn(userId)]
    const solo = conn(uniqueId('solo'))
    await registry.addConnections(leaving, [gone, solo])
    await registry.addConnections(staying, [kept])

    await registry.closeLease(leaving)
    t.notOk(await isLive(registry, leaving))
    t.ok(await isLive(registry, staying))
    t.same(normalize(await registry.locate([userId, solo.userId])), { [userId]: [located(staying, kept)] })
    t.equal(await registry.renew(leaving, { connections: 0, draining: true }), false)
    await registry.addConnections(leaving, [conn(solo.userId)])
    t.notOk(await isLocated(registry, solo.userId))
  })

  t.test('liveNodes reports node info and the last renewed status', async (t) => {
    const registry = await makeRegistry(t)
    const infoA = nodeInfo('a')
    const infoB = nodeInfo('b')
    const before = Date.now()
    const a = await registry.openLease(infoA, longTtlMs)
    const b = await registry.openLease(infoB, longTtlMs)
    const after = Date.now()
    const find = async (lease: Lease) => (await registry.liveNodes()).find((n) => n.incId === lease.incId)

    t.same(
      (await registry.liveNodes()).map((n) => n.incId).sort(),
      [a.incId, b.incId].sort(),
    )
    const first = await find(a)
    t.match(first, { ...infoA, incId: a.incId, connections: 0, draining: false })
    t.ok(first && first.expiresAt >= before + longTtlMs - 1_000 && first.expiresAt <= after + longTtlMs + 1_000)

    t.equal(await registry.renew(a, { connections: 3, draining: true }), true)
    t.match(await find(a), { ...infoA, incId: a.incId, connections: 3, draining: true })
    t.match(await find(b), { ...infoB, incId: b.incId, connections: 0, draining: false })

    t.equal(await registry.renew(a, { connections: 1, draining: false }), true)
    t.match(await find(a), { nodeId: infoA.nodeId, connections: 1, draining: false })
  })

  t.test('resync re-registers connections under a new lease after the old one was reaped', async (t) => {
    const registry = await makeRegistry(t)
    const info = nodeInfo('n')
    const old = await registry.openLease(info, shortTtlMs)
    const [u1, u2] = [uniqueId('u1'), uniqueId('u2')]
    const conns = [conn(u1), conn(u1), conn(u2)]
    await registry.addConnections(old, conns)
    t.ok(await eventually(async () => !(await isLive(registry, old))), 'lapsed')
    t.ok((await reapSome(registry)) >= 1, 'reaped')
    t.equal(await registry.renew(old, { connections: 3, draining: false }), false, 'the edge learns it lost its lease')
    t.equal((await registry.locate([u1, u2])).size, 0)

    const fresh = await registry.openLease(info, longTtlMs)
    await registry.resync(fresh, conns)
    const want = {
      [u1]: byConnId([located(fresh, conns[0]!), located(fresh, conns[1]!)]),
      [u2]: [located(fresh, conns[2]!)],
    }
    t.same(normalize(await registry.locate([u1, u2])), want)
    await registry.resync(fresh, conns)
    t.same(normalize(await registry.locate([u1, u2])), want, 'a second resync changes nothing')
  })

  t.test('resync moves live connections of a lost lease to the new one', async (t) => {
    const registry = await makeRegistry(t)
    const info = nodeInfo('n')
    const old = await registry.openLease(info, longTtlMs)
    const c = conn(uniqueId('u'))
    await registry.addConnections(old, [c])
    const fresh = await registry.openLease(info, longTtlMs)
    await registry.resync(fresh, [c])
    t.same((await registry.locate([c.userId])).get(c.userId), [located(fresh, c)])
    t.equal(await registry.removeConnection(fresh, c.userId, c.connId), true)
    t.notOk(await isLocated(registry, c.userId))
  })

  t.test('addConnections is idempotent per connId', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    const userId = uniqueId('u')
    const [c1, c2] = [conn(userId), conn(userId)]
    await registry.addConnections(lease, [c1])
    await registry.addConnections(lease, [c1, c2])
    await registry.addConnections(lease, [c2, c1, c2])
    const want = byConnId([located(lease, c1), located(lease, c2)])
    t.same(byConnId((await registry.locate([userId])).get(userId)), want)
    t.equal(await registry.removeConnection(lease, userId, c1.connId), true)
    t.same((await registry.locate([userId])).get(userId), [located(lease, c2)], 'one removal removes it')
  })

  t.test('user ids with odd characters round-trip', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    const suffix = uniqueId('')
    const userIds = [
      `with space ${suffix}`,
      `a:b::c:${suffix}`,
      `{tag}*?[x]${suffix}`,
      `quote"'\\\t\n${suffix}`,
      `ünïcødé 🚀 中文 ${suffix}`,
      `${suffix}${'x'.repeat(256 - suffix.length)}`,
      `${suffix}${'é'.repeat(256 - suffix.length)}`,
    ]
    t.ok(userIds.every((u) => u.length <= 256))
    const conns = userIds.map((u) => conn(u))
    await registry.addConnections(lease, conns)
    const found = await registry.locate(userIds)
    t.same(normalize(found), Object.fromEntries(conns.map((c) => [c.userId, [located(lease, c)]])))
    const removed: boolean[] = []
    for (const c of conns) removed.push(await registry.removeConnection(lease, c.userId, c.connId))
    t.same(removed, conns.map(() => true))
    t.equal((await registry.locate(userIds)).size, 0)
  })

  t.test('beyond maxPerUser the oldest connections are evicted and returned, wherever they are', async (t) => {
    const registry = await makeRegistry(t)
    const one = await registry.openLease(nodeInfo('one'), longTtlMs)
    const two = await registry.openLease(nodeInfo('two'), longTtlMs)
    const userId = uniqueId('limited')
    const [c1, c2, c3] = [conn(userId, 'c1', 1), conn(userId, 'c2', 2), conn(userId, 'c3', 3)]
    t.same(await registry.addConnections(one, [c1], 2), [])
    t.same(await registry.addConnections(two, [c2], 2), [])
    t.same(await registry.addConnections(one, [c3], 2), [{ userId, connId: 'c1', incId: one.incId }], 'the oldest goes')
    t.same(byConnId((await registry.locate([userId])).get(userId)), [located(two, c2), located(one, c3)])
    t.same(await registry.addConnections(one, [c3], 2), [], 're-adding a present connection evicts nothing')
    t.equal(await registry.removeConnection(one, userId, 'c1'), false, 'the evicted entry is gone')
  })

  t.test('with maxPerUser 1 the newest session replaces the others, in one step', async (t) => {
    const registry = await makeRegistry(t)
    const one = await registry.openLease(nodeInfo('one'), longTtlMs)
    const two = await registry.openLease(nodeInfo('two'), longTtlMs)
    const userId = uniqueId('single')
    const first = conn(userId, 'first')
    const second = conn(userId, 'second')
    await registry.addConnections(one, [first], 1)
    t.same(await registry.addConnections(two, [second], 1), [{ userId, connId: 'first', incId: one.incId }])
    t.same((await registry.locate([userId])).get(userId), [located(two, second)])
    const batch = [conn(userId, 'a'), conn(userId, 'b')]
    const evicted = await registry.addConnections(one, batch, 1)
    t.same(evicted.map((e) => e.connId), ['second', 'a'], 'within one batch too, only the last survives')
    t.same((await registry.locate([userId])).get(userId), [located(one, batch[1]!)])
  })

  t.test('a resync never counts as a newer session: the one that connected last wins, however they were written', async (t) => {
    const registry = await makeRegistry(t)
    const a = await registry.openLease(nodeInfo('a'), shortTtlMs)
    const b = await registry.openLease(nodeInfo('b'), longTtlMs)
    const [reaped, lapsed] = [uniqueId('reaped'), uniqueId('lapsed')]
    const stale = [conn(reaped, 'stale-1', 1_000), conn(lapsed, 'stale-2', 1_000)]
    await registry.addConnections(a, stale, 1)
    // Edge a is cut off from Redis: its lease lapses. Both users sign in again on b meanwhile.
    t.ok(await eventually(async () => !(await isLive(registry, a))), 'a lapsed')
    const newer = [conn(reaped, 'newer-1', 2_000), conn(lapsed, 'newer-2', 2_000)]
    const evicted = await registry.addConnections(b, newer, 1)
    t.same(evicted.map((e) => e.connId).sort(), ['stale-1', 'stale-2'], "a's lapsed entries are the older sessions")
    // The partition heals: a opens a new lease and resyncs its sockets, still open.
    const a2 = await registry.openLease(nodeInfo('a'), longTtlMs)
    const back = await registry.resync(a2, stale, 1)
    t.same(
      back.map((e) => `${e.connId}@${e.incId === a2.incId ? 'a' : 'b'}`).sort(),
      ['stale-1@a', 'stale-2@a'],
      'the re-written stale sessions are the ones evicted (their own edge closes them 4501)',
    )
    t.same(normalize(await registry.locate([reaped, lapsed])), { [reaped]: [located(b, newer[0]!)], [lapsed]: [located(b, newer[1]!)] }, 'the newer sessions stay')
  })

  t.test('a revocation refuses the registration of every token issued at or before it, in the same write', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    const [u, other] = [uniqueId('revoked'), uniqueId('other')]
    t.equal(await registry.revokedBefore(u), undefined)
    const before = Date.now()
    const cutoff = await registry.revoke(u, longTtlMs)
    t.ok(cutoff >= before - 1_000 && cutoff <= Date.now() + 1_000, 'the cutoff is now, on the registry clock')
    t.equal(await registry.revokedBefore(u), cutoff)
    const old = { ...conn(u, 'old'), iat: cutoff / 1_000 - 60 }
    const atCutoff = { ...conn(u, 'at'), iat: cutoff / 1_000 }
    const noIat = conn(u, 'no-iat')
    const fresh = { ...conn(u, 'fresh'), iat: cutoff / 1_000 + 0.001 }
    const unrelated = conn(other, 'unrelated')
    const evicted = await registry.addConnections(lease, [old, atCutoff, noIat, fresh, unrelated])
    t.same(
      evicted.map((e) => [e.connId, e.revoked, e.incId === lease.incId]).sort(),
      [['at', true, true], ['no-iat', true, true], ['old', true, true]],
      'refused: issued before, at the cutoff, or without iat',
    )
    t.same(normalize(await registry.locate([u, other])), { [u]: [located(lease, fresh)], [other]: [located(lease, unrelated)] }, 'only the fresh token and the unrelated user are written')
    t.same((await registry.resync(lease, [old])).map((e) => e.connId), ['old'], 'a resync is refused too')
    t.notOk((await registry.locate([u])).get(u)?.some((c) => c.connId === 'old'))
    t.equal(await registry.revoke(u, longTtlMs) >= cutoff, true, 'a later revocation never moves the cutoff back')
  })

  t.test("one write over many partitions, past one call's batch, registers, evicts and refuses each user in its own partition", async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    // 1,200 users: every partition several times over, and more than one script call's worth.
    const users = Array.from({ length: 1_200 }, () => uniqueId('many'))
    const [revokedA, revokedB, limited] = [users[10]!, users[700]!, users[1_100]!]
    const cutoffs = [await registry.revoke(revokedA, longTtlMs), await registry.revoke(revokedB, longTtlMs)]
    await registry.addConnections(lease, [conn(limited, 'limited-old', 1)], 1)
    const conns = users.map((u) => ({ ...conn(u, `c-${u}`, 2), iat: Math.max(...cutoffs) / 1_000 - 60 }))
    const evicted = await registry.addConnections(lease, conns, 1)
    t.same(
      evicted.map((e) => `${e.userId}/${e.connId}/${e.revoked === true}`).sort(),
      [`${limited}/limited-old/false`, `${revokedA}/c-${revokedA}/true`, `${revokedB}/c-${revokedB}/true`].sort(),
      'the older session of the limited user, and both revoked users',
    )
    const found = await registry.locate(users)
    t.equal(found.size, users.length - 2, 'every other user is located')
    t.notOk(found.has(revokedA) || found.has(revokedB), 'the revoked users are not')
    t.same(found.get(limited)?.map((c) => c.connId), [`c-${limited}`], 'the limited user keeps its newest session only')
  })

  t.test('a revocation lapses after its TTL', async (t) => {
    const registry = await makeRegistry(t)
    const lease = await registry.openLease(nodeInfo('n'), longTtlMs)
    const u = uniqueId('lapsing')
    await registry.revoke(u, shortTtlMs)
    t.equal((await registry.addConnections(lease, [conn(u, 'early')])).length, 1, 'refused while it lasts')
    t.ok(await eventually(async () => (await registry.revokedBefore(u)) === undefined), 'gone after its TTL')
    t.same(await registry.addConnections(lease, [conn(u, 'late')]), [], 'then a token without iat registers again')
  })
}

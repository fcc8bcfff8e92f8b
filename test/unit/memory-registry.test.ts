import t, { type Test } from 'tap'
import { MemoryRegistry, type NodeInfo } from '@switchboard/registry'

// Behaviour the contract suite can't pin down in real time: exact boundaries and the per-user cap.
function setup(t: Test) {
  const clock = { now: 1_000_000 }
  const registry = new MemoryRegistry({ now: () => clock.now })
  t.teardown(() => registry.close())
  return { clock, registry }
}

const node: NodeInfo = { nodeId: 'n1', url: 'http://n1:8081', startedAt: 1 }

t.test('an entry is hidden exactly when the lease expires', async (t) => {
  const { clock, registry } = setup(t)
  const lease = await registry.openLease(node, 1_000)
  await registry.addConnections(lease, [{ userId: 'u', connId: 'c', since: 5 }])
  clock.now += 999
  t.ok((await registry.locate(['u'])).has('u'))
  t.same((await registry.liveNodes()).map((n) => n.expiresAt), [1_001_000])
  clock.now += 1
  t.equal((await registry.locate(['u'])).size, 0)
  t.same(await registry.liveNodes(), [])
})

t.test('reap waits for the whole grace and counts each incarnation once', async (t) => {
  const { clock, registry } = setup(t)
  const lease = await registry.openLease(node, 1_000)
  await registry.addConnections(lease, [{ userId: 'u', connId: 'c', since: 5 }])
  clock.now += 1_000 + 500
  t.equal(await registry.reap(500), 0, 'lapsed exactly grace ago: kept')
  clock.now += 1
  t.equal(await registry.reap(500), 1)
  t.equal(await registry.reap(500), 0)
  t.equal(await registry.renew(lease, { connections: 1, draining: false }), false)
  t.equal(await registry.removeConnection(lease, 'u', 'c'), false, 'the entry itself is gone')
})

t.test('superseded incarnations are gone at once and not counted by reap', async (t) => {
  const { clock, registry } = setup(t)
  const old = await registry.openLease(node, 1_000)
  await registry.addConnections(old, [{ userId: 'u', connId: 'c1', since: 5 }])
  await registry.openLease(node, 1_000)
  t.equal(await registry.removeConnection(old, 'u', 'c1'), false)
  clock.now += 10_000
  t.equal(await registry.reap(0), 1, 'only the newer incarnation')
})

t.test('a user keeps at most 64 connections, dropping the oldest', async (t) => {
  const { registry } = setup(t)
  const lease = await registry.openLease(node, 1_000)
  const conns = Array.from({ length: 70 }, (_, i) => ({ userId: 'u', connId: `c${i}`, since: i }))
  await registry.addConnections(lease, conns)
  const ids = (await registry.locate(['u'])).get('u')?.map((l) => l.connId)
  t.same(ids, conns.slice(6).map((c) => c.connId))
  await registry.addConnections(lease, [conns[69]!])
  t.equal((await registry.locate(['u'])).get('u')?.length, 64, 're-adding a present connId drops nothing')
})

import t from 'tap'
import { RECONNECT_MAX_MS, RedisRegistry, RedisRoomStore, createRedisClient, type Registry } from '@switchboard/registry'
import { SwitchboardError } from '@switchboard/protocol'
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js'
import { eventually } from '../helpers/clients.js'
import { redisClients, redisStores, storeContracts } from './store-contracts.js'

const redis = await startRedis(t)

const client = redisClients(redis.url)

storeContracts(t, redisStores(client))

const node = (nodeId: string) => ({ nodeId, url: `http://${nodeId}:8081`, startedAt: Date.now() })
// A lease short enough to lapse during a test; a wait past it, with slack for the clocks.
const SHORT_LEASE_MS = 100
const pastShortLease = () => new Promise((r) => setTimeout(r, SHORT_LEASE_MS + 50))
// How long a reap may take to find a lapsed lease after its TTL, on a loaded machine.
const REAP_SLACK_MS = 5_000

t.test("the janitor's clean-up of a dead incarnation clears its fields from room edge indexes", async (t) => {
  const c = client(t)
  const prefix = uniquePrefix()
  const registry = new RedisRegistry(c, { prefix, liveRefreshMs: 0 })
  const rooms = new RedisRoomStore(c, { maxMembers: 10, maxRoomsPerUser: 10 }, { prefix })
  const [dead, live] = [await registry.openLease(node('dies'), SHORT_LEASE_MS), await registry.openLease(node('lives'), 60_000)]
  await rooms.add('meeting', ['ann', 'bob'])
  await rooms.setEdgeRooms(dead.incId, [{ room: 'meeting', holds: true }, { room: 'standup', holds: true }])
  await rooms.setEdgeRooms(live.incId, [{ room: 'meeting', holds: true }])
  await pastShortLease()
  t.ok((await registry.reap(0)) >= 1, 'reaped')
  t.same((await rooms.route('meeting', 10)).incIds, [live.incId], 'only the live edge is left')
  t.same((await rooms.route('standup', 10)).incIds, [])
  t.same(await c.keys(`${prefix}*:ri:${dead.incId}`), [], 'and its per-partition sets are gone')
})

t.test('a new server holding the registry (a restart with its data, a failover) starts a new epoch: leases lapsed before it wait the settle', async (t) => {
  const c = client(t)
  const prefix = uniquePrefix()
  const registry = new RedisRegistry(c, { prefix, liveRefreshMs: 0 })
  const lease = await registry.openLease(node('n'), SHORT_LEASE_MS)
  t.equal(await registry.reap(0, { settleMs: 60_000 }), 0, 'a live lease: nothing to reap (the epoch now names this server)')
  await pastShortLease()
  // As if another server had held the registry until now: its epoch names that one.
  await c.hset(`${prefix}{ctl}:epoch`, 'id', 'another-server')
  t.equal(await registry.reap(0, { settleMs: 60_000 }), 0, 'the lease lapsed before the new epoch: kept for its edge to renew')
  t.equal(await registry.reap(0, { settleMs: 0 }), 1, 'once the epoch is settleMs old: reaped')
  t.equal(await registry.renew(lease, { connections: 0, draining: false }), false)
})

t.test('a registry whose data was lost starts its epoch with the next lease (or the next guarded reap)', async (t) => {
  const c = client(t)
  const prefix = uniquePrefix()
  const registry = new RedisRegistry(c, { prefix, liveRefreshMs: 0 })
  await registry.openLease(node('first'), 60_000)
  const epoch = await c.hget(`${prefix}{ctl}:epoch`, 'since')
  t.ok(Number(epoch) > 0, 'the first lease started it')
  await registry.openLease(node('second'), 60_000)
  t.equal(await c.hget(`${prefix}{ctl}:epoch`, 'since'), epoch, 'later leases leave it')
})

t.test('a cached view drops a superseded incarnation within its refresh interval', async (t) => {
  const LIVE_REFRESH_MS = 300
  const registry = new RedisRegistry(client(t), { prefix: uniquePrefix(), liveRefreshMs: LIVE_REFRESH_MS })
  const old = await registry.openLease(node('e1'), 60_000)
  await registry.addConnections(old, [{ userId: 'u', connId: 'c1', since: 1 }])
  t.ok((await registry.locate(['u'])).has('u'))
  await registry.openLease(node('e1'), 60_000)
  // A refresh under way when the new incarnation opened may miss it; the next one cannot.
  const gone = await eventually(async () => !(await registry.locate(['u'])).has('u'), { timeoutMs: 2 * LIVE_REFRESH_MS, intervalMs: 20 })
  t.ok(gone, 'gone within two refresh intervals')
})

t.test('looks up 10,000 users in a few round trips and returns each with its node', async (t) => {
  const c = client(t)
  const registry = new RedisRegistry(c, { prefix: uniquePrefix() })
  const lease = await registry.openLease(node('big'), 60_000)
  const users = Array.from({ length: 10_000 }, (_, i) => `user-${i}`)
  await registry.addConnections(lease, users.map((userId, i) => ({ userId, connId: `c${i}`, since: i })))
  const before = Number((await c.info('stats')).match(/total_commands_processed:(\d+)/)?.[1])
  const found = await registry.locate([...users, 'nobody'])
  const after = Number((await c.info('stats')).match(/total_commands_processed:(\d+)/)?.[1])
  t.equal(found.size, 10_000)
  t.notOk(found.has('nobody'))
  t.same(found.get('user-42'), [{ connId: 'c42', since: 42, incId: lease.incId, nodeId: 'big', url: 'http://big:8081' }])
  // One HMGET per partition (256), plus the live view's scripts (Redis counts the calls
  // inside them too) and the INFO call: per partition, never per user.
  t.ok(after - before <= 256 + 16, `${after - before} commands for 10,000 users`)
})

t.test('cleaning up a crashed incarnation leaves no keys behind', async (t) => {
  const c = client(t)
  const prefix = uniquePrefix()
  const registry = new RedisRegistry(c, { prefix })
  // The names and the registry's epoch are one key each, whatever comes and goes.
  const keysNow = async () => (await c.keys(`${prefix}*`)).filter((k) => !k.endsWith(':names') && !k.endsWith(':epoch')).sort()
  const baseline = await keysNow()
  const CRASHY_TTL_MS = 300
  const lease = await registry.openLease(node('crashy'), CRASHY_TTL_MS)
  await registry.addConnections(lease, Array.from({ length: 500 }, (_, i) => ({ userId: `u${i}`, connId: `c${i}`, since: i })))
  t.ok((await keysNow()).length > 256, 'entries and indexes written')
  // The lease is never renewed (the edge "crashed"); reap once it lapsed.
  const reaped = await eventually(async () => {
    const n = await registry.reap(0)
    return n > 0 && n
  }, { timeoutMs: CRASHY_TTL_MS + REAP_SLACK_MS })
  t.equal(reaped, 1)
  // Presence keeps its own keys (events, held offlines, the last version): not entries.
  const presence = /:(ev|h|hc|v)$/
  t.same((await keysNow()).filter((k) => !presence.test(k)), baseline.filter((k) => !k.endsWith(':gcq')), 'only the empty control keys remain')
  t.equal(await registry.renew(lease, { connections: 0, draining: false }), false, 'a reaped incarnation cannot come back')
})

t.test('answers registry_unavailable quickly when Redis is down', async (t) => {
  const own: TestRedis = await startRedis(t)
  const COMMAND_TIMEOUT_MS = 500
  const c = createRedisClient(own.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS })
  t.teardown(() => c.disconnect())
  const registry: Registry = new RedisRegistry(c, { prefix: uniquePrefix() })
  await registry.liveNodes()
  await own.stop()
  const started = Date.now()
  const err = await registry.locate(['u']).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof SwitchboardError && err.code === 'registry_unavailable', 'registry_unavailable')
  t.ok(Date.now() - started < COMMAND_TIMEOUT_MS + 1_000, 'within the command timeout (and a second of slack)')
})

t.test('the server identity changes when Redis restarts', async (t) => {
  const own: TestRedis = await startRedis(t)
  const COMMAND_TIMEOUT_MS = 1_000
  const c = createRedisClient(own.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS })
  t.teardown(() => c.disconnect())
  const registry = new RedisRegistry(c, { prefix: uniquePrefix() })
  const before = await registry.serverIdentity()
  t.match(before, /^[0-9a-f]{40}$/, 'the run_id')
  await own.restart()
  const after = await eventually(async () => {
    const now = await registry.serverIdentity()
    return now !== before && now
  }, { timeoutMs: 2 * RECONNECT_MAX_MS + COMMAND_TIMEOUT_MS }) // the client's reconnect delay may be at its cap twice while Redis restarts
  t.match(after, /^[0-9a-f]{40}$/)
})

t.test('a registration that reaches Redis after its lease could have lapsed writes nothing, and says so', async (t) => {
  const registry = new RedisRegistry(client(t), { prefix: uniquePrefix(), liveRefreshMs: 0 })
  t.teardown(() => registry.close())
  const TTL_MS = 300
  const lease = await registry.openLease(node('fenced'), TTL_MS)
  await registry.addConnections(lease, [{ userId: 'in-time', connId: 'c1', since: 1 }])
  // Nothing to await: the lease's validity is a moment on Redis's clock, past it by this wait.
  await new Promise((r) => setTimeout(r, TTL_MS + 100))
  const late = await registry.addConnections(lease, [{ userId: 'late', connId: 'c2', since: 2 }]).catch((err: unknown) => err)
  t.ok(late instanceof SwitchboardError && late.code === 'registry_unavailable', 'refused: the edge resyncs instead')
  t.ok(await registry.renew(lease, { connections: 1, draining: false }), 'the lapsed lease revives (not reaped)')
  t.same([...(await registry.locate(['in-time', 'late'])).keys()], ['in-time'], 'the late write left nothing')
  t.same(await registry.addConnections(lease, [{ userId: 'late', connId: 'c2', since: 2 }]), [], 'once renewed, writes land again')
  t.ok((await registry.locate(['late'])).has('late'))
})


// The crash bound from a router's start: an edge SIGKILLed right after the only router became
// ready (first start, then a restart) gives its users edge_lost within LEASE_TTL_MS + one
// renewal + the grace + 2 s (README), not LEASE_TTL_MS + 5 s after the router's start. The
// registry tells the reaper whether a lapse proves its edge dead (ReapGuard); the waits it keeps
// after an outage are tested in lifecycle.test.ts and the contract suites.
import { randomBytes } from 'node:crypto'
import { startTcpProxy } from '../helpers/tcp-proxy.js'
import t, { type Test } from 'tap'
import type { PresenceEvent } from '@switchboard/protocol'
import { api, connectUser, eventually } from '../helpers/clients.js'
import { startEdge, startRouter, testSecrets, waitForLog, type Router } from '../helpers/processes.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'
import { CLAIM_TTL_MS } from '../../apps/router/src/presence/relay.js'

const LEASE_TTL_MS = 1_000
const REAP_GRACE_MS = 0
// README "Presence events": edge_lost within LEASE_TTL_MS + one renewal (every LEASE_TTL_MS/3) + the grace + 2 s.
const BOUND_MS = Math.round(LEASE_TTL_MS + LEASE_TTL_MS / 3 + REAP_GRACE_MS + 2_000)
const { jwtSecret, apiKeys } = testSecrets()
const redis = await startRedis(t)
const prefix = uniquePrefix()
const noGrace = { PRESENCE_OFFLINE_GRACE_MS: '0' }
const edgeOptions = { redisUrl: redis.url, prefix, leaseTtlMs: LEASE_TTL_MS, env: noGrace }
const routerOptions = { redisUrl: redis.url, prefix, leaseTtlMs: LEASE_TTL_MS, env: { ...noGrace, REGISTRY_REAP_GRACE_MS: String(REAP_GRACE_MS), PRESENCE_POLL_MS: '50' } }
// An edge that lives throughout: the cluster is never empty.
await startEdge(t, edgeOptions)

/** The user's edge_lost offline on the router's pull API (its feed), once there. */
async function edgeLost(router: Router, userId: string, timeoutMs: number): Promise<{ event: PresenceEvent; seenAt: number }> {
  const client = api(router.url, apiKeys[0])
  return eventually(async () => {
    const page = await client.get('/v1/presence/events?limit=1000&wait=0')
    const event = (page.body?.events as PresenceEvent[] | undefined)?.find((e) => e.userId === userId && e.type === 'user.offline')
    return event && { event, seenAt: Date.now() }
  }, { timeoutMs, intervalMs: 25 })
}

/**
 * A user on an edge of their own; the router started; the edge SIGKILLed as soon as the router
 * is ready. Returns when the offline was recorded (the reaper) and seen on the feed, from the kill.
 */
async function killRightAfterStart(t: Test): Promise<{ router: Router; recordedMs: number; seenMs: number; event: PresenceEvent }> {
  const doomed = await startEdge(t, edgeOptions)
  const userId = `rs-${randomBytes(3).toString('hex')}`
  await connectUser(t, doomed.wsUrl, jwtSecret, userId)
  const router = await startRouter(t, routerOptions)
  doomed.kill('SIGKILL')
  const killedAt = Date.now()
  const { event, seenAt } = await edgeLost(router, userId, BOUND_MS + CLAIM_TTL_MS + 10_000)
  t.equal(event.cause, 'edge_lost')
  return { router, recordedMs: event.ts - killedAt, seenMs: seenAt - killedAt, event }
}

let first: Router | undefined

t.test('an edge SIGKILLed right after the only router started: edge_lost within the bound', async (t) => {
  const { router, recordedMs, seenMs } = await killRightAfterStart(t)
  first = router
  t.ok(recordedMs <= BOUND_MS, `recorded ${recordedMs} ms after the kill (bound ${BOUND_MS} ms)`)
  t.ok(seenMs <= BOUND_MS, `on the feed ${seenMs} ms after the kill (bound ${BOUND_MS} ms)`)
})

t.test('and after that router restarted', async (t) => {
  first!.kill('SIGTERM')
  await first!.exited
  const { recordedMs, seenMs } = await killRightAfterStart(t)
  t.ok(recordedMs <= BOUND_MS, `recorded ${recordedMs} ms after the kill (bound ${BOUND_MS} ms)`)
  // Delivery waits for the new router to claim the presence partitions, which the stopped one
  // held for up to CLAIM_TTL_MS (the partition hand-over, a defect of its own in issue 20).
  t.ok(seenMs <= BOUND_MS + CLAIM_TTL_MS, `on the feed ${seenMs} ms after the kill (bound ${BOUND_MS} ms + the claim hand-over ${CLAIM_TTL_MS} ms)`)
})

t.test('Redis unreachable to everyone for 2 leases, then back with its data: the router lets the edges renew first, nobody goes edge_lost', async (t) => {
  // A TCP path to Redis the test can cut (every connection dropped, new ones closed) and heal; Redis keeps its data.
  const link = await startTcpProxy(t, '127.0.0.1', { host: '127.0.0.1', port: redis.port })
  const viaLink = { redisUrl: `redis://127.0.0.1:${link.port}`, prefix: uniquePrefix(), leaseTtlMs: LEASE_TTL_MS }
  const edges = await Promise.all([startEdge(t, { ...viaLink, env: noGrace }), startEdge(t, { ...viaLink, env: noGrace })])
  const users = edges.map(() => `ro-${randomBytes(3).toString('hex')}`)
  await Promise.all(edges.map((edge, i) => connectUser(t, edge.wsUrl, jwtSecret, users[i]!)))
  const router = await startRouter(t, { ...viaLink, env: routerOptions.env })
  const client = api(router.url, apiKeys[0])
  const feed = async () => ((await client.get('/v1/presence/events?limit=1000&wait=0')).body?.events ?? []) as PresenceEvent[]
  await eventually(async () => (await feed()).filter((e) => e.type === 'user.online').length === users.length, { timeoutMs: 10_000 })

  link.cut()
  await waitForLog(router, 'reaping failed')
  // Every lease lapses meanwhile (the edges cannot renew); Redis keeps them, lapsed.
  await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_TTL_MS))
  link.heal()
  await waitForLog(router, 'reaper: registry reachable again; leases that lapsed meanwhile wait for their edges to renew')
  const presence = async () => (await client.post('/v1/presence/query', { userIds: users })).body?.online?.length === users.length
  await eventually(presence, { timeoutMs: 10_000 })
  t.pass('both users online again: their edges renewed the leases they kept')
  t.notOk(router.logs().some((l) => l.includes('reaped dead edges')), 'the router reaped nothing')
  // Their renewals came late (the outage), so they resync to reconcile (registration.ts); none lost its lease.
  t.notOk(edges.some((e) => e.logs().some((l) => l.includes('lease lost'))), 'no edge lost its lease and had to rejoin')
  // A user connecting now marks the feed's progress: once its online is there, an offline recorded before it would be too.
  const marker = `rm-${randomBytes(3).toString('hex')}`
  await connectUser(t, edges[0]!.wsUrl, jwtSecret, marker)
  const events = await eventually(async () => {
    const all = await feed()
    return all.some((e) => e.userId === marker) ? all : undefined
  }, { timeoutMs: 10_000 })
  t.same(events.filter((e) => users.includes(e.userId) && e.type === 'user.offline'), [], 'no offline event for their users')
})

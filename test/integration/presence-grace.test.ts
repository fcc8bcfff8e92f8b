// Presence events with a held offline (the grace), single-session replacement and the
// per-user limit, against real Redis, edges, a router and an HTTP receiver.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { connectUser } from '../helpers/clients.js'
import { eventsIn, startPresenceCluster } from '../helpers/presence.js'
import { testSecrets, type Edge } from '../helpers/processes.js'

const GRACE_MS = 1_500
const POLL_MS = 50
const { cluster, receiver } = await startPresenceCluster(t, { edges: 1, graceMs: GRACE_MS, pollMs: POLL_MS, edgeEnv: { EDGE_MAX_CONNECTIONS_PER_USER: '2' } })
const [multi] = cluster.edges as [Edge]
const single = await cluster.addEdge(t, { env: { PRESENCE_OFFLINE_GRACE_MS: String(GRACE_MS), EDGE_SESSION_POLICY: 'single' } })
const { jwtSecret } = testSecrets()

const eventsOf = (userId: string) => eventsIn(receiver.received).filter((e) => e.userId === userId)
const summary = (userId: string) => eventsOf(userId).map((e) => `${e.type} ${e.cause}`)
const user = (name: string) => `${name}-${randomBytes(3).toString('hex')}`

/** Waits until the router's delivery has certainly passed `ms` more of quiet: nothing else may arrive. */
const quiet = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('a reconnect inside the grace sends nothing; an offline after it waits the grace, with its cause', async (t) => {
  const back = user('back')
  const gone = user('gone')
  const first = await connectUser(t, multi.wsUrl, jwtSecret, back)
  const other = await connectUser(t, multi.wsUrl, jwtSecret, gone)
  await receiver.waitFor(() => eventsOf(back).length === 1 && eventsOf(gone).length === 1, 10_000)
  await first.client.close()
  const closedAt = Date.now()
  await other.client.close()
  await connectUser(t, multi.wsUrl, jwtSecret, back)
  await receiver.waitFor(() => eventsOf(gone).length === 2, GRACE_MS + 10_000)
  const heldMs = Date.now() - closedAt
  t.ok(heldMs >= GRACE_MS, `the offline came ${heldMs} ms after the close, not before the grace (${GRACE_MS} ms)`)
  t.same(summary(gone), ['user.online connect', 'user.offline close'])
  await quiet(GRACE_MS + 4 * POLL_MS)
  t.same(summary(back), ['user.online connect'], 'the user back within the grace never went offline')
})

t.test('single-session replacement keeps the user online: no event', async (t) => {
  const u = user('single')
  const old = await connectUser(t, single.wsUrl, jwtSecret, u)
  await connectUser(t, single.wsUrl, jwtSecret, u)
  const closed = await old.client.closed
  t.equal(closed.code, 4501, 'the old session was replaced')
  await quiet(GRACE_MS + 4 * POLL_MS)
  t.same(summary(u), ['user.online connect'])
})

t.test('eviction past the per-user limit keeps the user online: no event', async (t) => {
  const u = user('evict')
  const oldest = await connectUser(t, multi.wsUrl, jwtSecret, u)
  await connectUser(t, multi.wsUrl, jwtSecret, u)
  await connectUser(t, multi.wsUrl, jwtSecret, u)
  t.equal((await oldest.client.closed).code, 4502, 'the oldest was evicted')
  await quiet(GRACE_MS + 4 * POLL_MS)
  t.same(summary(u), ['user.online connect'])
})

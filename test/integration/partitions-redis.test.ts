// Network partitions between edges and Redis, made for real in network namespaces
// (test/helpers/netns.ts): a two-way cut for two leases, one-way cuts (the answers lost, or
// the requests), and a slow, lossy Redis (200 ± 20 ms on its answers through a proxy, 2 %
// loss by iptables). Bounds are derived from the configured values.
import t, { type Test } from 'tap'
import type { PresenceEvent } from '@switchboard/protocol'
import { connectUser, eventually, type Api, type Client } from '../helpers/clients.js'
import { netnsSkip } from '../helpers/netns.js'
import { startNetCluster, untilReaperArmed, type NetCluster } from '../helpers/netns-cluster.js'
import { testSecrets } from '../helpers/processes.js'
import { BACK_BOUND_MS, BACK_BOUND_TEXT, FORWARD_TIMEOUT_MS, LEASE_TTL_MS, MARGIN_MS, REDIS_COMMAND_TIMEOUT_MS, RENEWAL_MS, online, pushIds } from '../helpers/partitions.js'

const skip = netnsSkip()
const { jwtSecret } = testSecrets()
const presenceEnv = { PRESENCE_OFFLINE_GRACE_MS: '0', REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS) }
const routerEnv = { ...presenceEnv, ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS), REGISTRY_REAP_GRACE_MS: '0', PRESENCE_POLL_MS: '50' }


/** Every presence event of `userIds` in the feed, in each user's order (`ver`). */
async function eventsOf(api: Api, userIds: readonly string[]): Promise<Map<string, PresenceEvent[]>> {
  const all: PresenceEvent[] = []
  let after = ''
  for (;;) {
    const res = await api.get(`/v1/presence/events?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`)
    all.push(...(res.body.events as PresenceEvent[]))
    if (res.body.events.length < 1000) break
    after = res.body.next
  }
  return new Map(userIds.map((u) => [u, all.filter((e) => e.userId === u).sort((a, b) => a.ver - b.ver)]))
}

/** Nothing announced twice: each user's events alternate online/offline and the last one says `last`. */
async function checkEvents(t: Test, api: Api, userIds: readonly string[], last: PresenceEvent['type'], what: string): Promise<void> {
  const settled = (events: Map<string, PresenceEvent[]>) => [...events.values()].every((e) => e.at(-1)?.type === last)
  // The feed trails the registry by a poll or so (README): wait for it, then judge what it holds.
  const byUser = await eventually(async () => {
    const events = await eventsOf(api, userIds)
    return settled(events) && events
  }, { timeoutMs: 5_000 }).catch(() => eventsOf(api, userIds))
  const show = (events: PresenceEvent[]) => events.map((e) => `${e.type.slice(5)}/${e.cause}`).join(' ')
  t.same([...byUser].filter(([, events]) => events.at(-1)?.type !== last).map(([u, events]) => `${u}: ${show(events)}`), [], `${what}: every user's last event is ${last}`)
  const twice = [...byUser].filter(([, events]) => events.some((e, i) => i > 0 && e.type === events[i - 1]!.type))
  t.same(twice.map(([u, events]) => `${u}: ${show(events)}`), [], `${what}: no transition announced twice`)
  t.comment(`${what}: ${userIds[0]}'s events: ${show(byUser.get(userIds[0]!)!)}`)
}

async function usersOn(t: Test, c: NetCluster, edgeIndex: number, names: string[]): Promise<Client[]> {
  const edge = c.edges[edgeIndex]!.edge
  const clients = await Promise.all(names.map(async (u) => (await connectUser(t, edge.wsUrl, jwtSecret, u)).client))
  await eventually(async () => (await online(c.routers[0]!.api, names)).length === names.length, { timeoutMs: LEASE_TTL_MS * 2 })
  return clients
}

t.test('edge <-> Redis cut for two leases: its users offline within the lease, pushes never hang, nothing crashes; back within a renewal, a command timeout and a reconnect of the heal', { skip }, async (t) => {
  const c = await startNetCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS, edgeEnv: presenceEnv, routerEnv })
  const [{ api }] = c.routers as [(typeof c.routers)[0]]
  const cutEdge = c.edges[0]!
  const cutUsers = Array.from({ length: 5 }, (_, i) => `pc-${i}`)
  const cutClients = await usersOn(t, c, 0, cutUsers)
  const [witness] = await usersOn(t, c, 1, ['pc-w'])
  // Cut once the router reaps: the lapsed lease is then reaped (edge_lost) and replaced at the
  // heal. (Before that it would revive: issue 20's start-up defect, fixed elsewhere.)
  await untilReaperArmed(c)

  await c.net.cut(cutEdge.host, c.redisHost)
  const cutAt = Date.now()
  const answers: { at: number; ms: number; status: number; body: { delivered: string[]; offline: string[]; failed: string[] } }[] = []
  let isCut = true
  const publisher = (async () => {
    for (let i = 0; isCut; i++) {
      const started = Date.now()
      const res = await api.post('/v1/push', { to: ['pc-0', 'pc-w'], event: 'e', id: `cut-${i}` })
      answers.push({ at: started, ms: Date.now() - started, status: res.status, body: res.body })
    }
  })()
  // README: a lost lease shows its users offline within LEASE_TTL_MS + one renewal.
  const offlineBoundMs = LEASE_TTL_MS + RENEWAL_MS + MARGIN_MS
  await eventually(async () => (await online(api, cutUsers)).length === 0, { timeoutMs: offlineBoundMs, intervalMs: 50 })
  const offlineMs = Date.now() - cutAt
  t.ok(offlineMs <= offlineBoundMs, `the cut edge's users offline ${offlineMs} ms into the cut (bound: lease ${LEASE_TTL_MS} + renewal ${Math.round(RENEWAL_MS)} + ${MARGIN_MS} ms)`)
  // The cut lasts two leases (a fault's length, not a condition to await).
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, cutAt + 2 * LEASE_TTL_MS - Date.now())))
  isCut = false
  await publisher
  await c.net.heal()
  const healedAt = Date.now()

  const slowest = Math.max(...answers.map((a) => a.ms))
  t.ok(slowest <= FORWARD_TIMEOUT_MS + MARGIN_MS, `${answers.length} pushes during the cut, the slowest answered in ${slowest} ms (bound: forward timeout ${FORWARD_TIMEOUT_MS} + ${MARGIN_MS} ms)`)
  t.same(answers.filter((a) => a.status !== 200).map((a) => `${a.at - cutAt} ms into the cut: ${a.status} ${JSON.stringify(a.body)}`), [], 'every push during the cut answered 200')
  t.ok(answers.every((a) => a.body.delivered?.includes('pc-w')), 'the other edge\'s user: delivered throughout')
  const late = answers.filter((a) => a.at >= cutAt + offlineBoundMs)
  t.ok(late.length > 0 && late.every((a) => a.body.offline?.includes('pc-0') || a.body.failed?.includes('pc-0')), `past the lease bound, the cut edge's user answers offline/failed (${late.length} pushes)`)
  t.ok(c.edges.every((e) => e.edge.isRunning()) && c.routers[0]!.router.isRunning(), 'no process crashed')
  t.ok(cutClients.every((cl) => !cl.isClosed()), 'the cut edge kept its sockets open')

  // After the heal: the next renewal, on a fresh connection, re-registers (BACK_BOUND_MS).
  const backBoundMs = BACK_BOUND_MS
  await eventually(async () => (await online(api, cutUsers)).length === cutUsers.length, { timeoutMs: backBoundMs, intervalMs: 50 })
  const backMs = Date.now() - healedAt
  t.comment(`edge <-> Redis cut (${2 * LEASE_TTL_MS} ms): offline ${offlineMs} ms into it, slowest push ${slowest} ms, online again ${backMs} ms after the heal`)
  t.ok(backMs <= backBoundMs, `online again ${backMs} ms after the heal (bound: ${BACK_BOUND_TEXT})`)
  const res = await api.post('/v1/push', { to: cutUsers, event: 'e', id: 'after' })
  t.same(res.body.delivered.sort(), cutUsers, 'pushes reach every socket the edge kept')
  for (const cl of cutClients) t.ok((await pushIds(cl)).includes('after'))
  t.equal((await pushIds(witness!)).filter((id) => id.startsWith('cut-')).length, answers.length, 'the other edge\'s user got every push once')
  await checkEvents(t, api, [...cutUsers, 'pc-w'], 'user.online', 'two-way cut')
  const events = await eventsOf(api, ['pc-0'])
  t.same(events.get('pc-0')!.map((e) => `${e.type}/${e.cause}`), ['user.online/connect', 'user.offline/edge_lost', 'user.online/resync'], 'the cut edge\'s user: offline edge_lost during the cut, online resync after it')
})

for (const direction of ['answers', 'requests'] as const) {
  t.test(`one-way cut edge <-> Redis, the ${direction} lost: no entry outlives its lease, nothing announced twice`, { skip }, async (t) => {
    const c = await startNetCluster(t, { edges: 1, leaseTtlMs: LEASE_TTL_MS, edgeEnv: presenceEnv, routerEnv })
    const [{ api }] = c.routers as [(typeof c.routers)[0]]
    const cutEdge = c.edges[0]!
    const users = Array.from({ length: 5 }, (_, i) => `pf-${direction}-${i}`)
    const clients = await usersOn(t, c, 0, users)
    await untilReaperArmed(c)

    // Answers lost: the edge's commands reach Redis, but no ACK comes back, so TCP stops
    // sending new ones after its first retransmission timeout and the lease lapses all the same.
    if (direction === 'answers') await c.net.cutOneWay(c.redisHost, cutEdge.host)
    else await c.net.cutOneWay(cutEdge.host, c.redisHost)
    const cutAt = Date.now()
    const offlineBoundMs = LEASE_TTL_MS + RENEWAL_MS + MARGIN_MS
    await eventually(async () => (await online(api, users)).length === 0, { timeoutMs: offlineBoundMs, intervalMs: 50 })
    const offlineMs = Date.now() - cutAt
    t.ok(offlineMs <= offlineBoundMs, `offline ${offlineMs} ms into the cut (bound: lease + renewal + ${MARGIN_MS} ms)`)
    // The lapsed node is gone from the live nodes too.
    const nodes = async () => (await api.get('/v1/nodes')).body.nodes as { nodeId: string }[]
    await eventually(async () => !(await nodes()).some((n) => n.nodeId === cutEdge.edge.nodeId), { timeoutMs: LEASE_TTL_MS })
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, cutAt + 2 * LEASE_TTL_MS - Date.now())))
    t.same(await online(api, users), [], 'still offline at the end of the cut: no entry survived its lease')
    await c.net.heal()
    const healedAt = Date.now()
    await eventually(async () => (await online(api, users)).length === users.length, { timeoutMs: BACK_BOUND_MS, intervalMs: 50 })
    const backMs = Date.now() - healedAt
    t.comment(`one-way cut, ${direction} lost: offline ${offlineMs} ms into it, online again ${backMs} ms after the heal`)
    t.ok(backMs <= BACK_BOUND_MS, `online again ${backMs} ms after the heal (bound: ${BACK_BOUND_TEXT})`)
    t.ok(clients.every((cl) => !cl.isClosed()) && cutEdge.edge.isRunning(), 'sockets kept, no crash')
    await checkEvents(t, api, users, 'user.online', `one-way cut, ${direction} lost`)
    const events = await eventsOf(api, users)
    t.ok(users.every((u) => events.get(u)!.filter((e) => e.type === 'user.offline').length === 1), 'each user announced offline exactly once')
  })
}

// Presence events end to end: real Redis, edges and a router, a real HTTP receiver verifying
// the signatures independently, and the pull API.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { PresenceEvent } from '@switchboard/protocol'
import { connectUser, eventually } from '../helpers/clients.js'
import { eventsIn, startPresenceCluster } from '../helpers/presence.js'
import { testSecrets, type Edge } from '../helpers/processes.js'

const LEASE_TTL_MS = 1_000
const POLL_MS = 50
const { cluster, receiver } = await startPresenceCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS, pollMs: POLL_MS })
const [edgeA, edgeB] = cluster.edges as [Edge, Edge]
const { jwtSecret } = testSecrets()

const eventsOf = (userId: string) => eventsIn(receiver.received).filter((e) => e.userId === userId)
const summary = (events: readonly PresenceEvent[]) => events.map((e) => `${e.type} ${e.cause} ${e.connections}`)

t.test('connect and close: one online, one offline, signed, and the same on the pull API', async (t) => {
  const u = `pe-${randomBytes(3).toString('hex')}`
  const { client } = await connectUser(t, edgeA.wsUrl, jwtSecret, u)
  await connectUser(t, edgeB.wsUrl, jwtSecret, u).then(({ client }) => client.close())
  await client.close()
  await receiver.waitFor(() => eventsOf(u).length >= 2, 10_000)
  const events = eventsOf(u)
  t.same(summary(events), ['user.online connect 1', 'user.offline close 0'], 'a second connection and its close are not events')
  t.ok(events[1]!.ver > events[0]!.ver, 'ver increases')
  t.ok(receiver.received.every((b) => b.verified), 'every batch verified with the secret, by an independent implementation')
  t.ok(receiver.received.every((b) => b.headers['webhook-id'] && b.headers['content-type'] === 'application/json'))
  const page = await cluster.api.get('/v1/presence/events?limit=1000')
  t.equal(page.status, 200)
  t.same(summary((page.body.events as PresenceEvent[]).filter((e) => e.userId === u)), summary(events), 'the feed has the same events')
  t.same((page.body.events as PresenceEvent[]).filter((e) => e.userId === u).map((e) => e.id), events.map((e) => e.id), 'with the same ids')
  const after = await cluster.api.get(`/v1/presence/events?after=${page.body.next}&wait=0`)
  t.same(after.body, { events: [], next: page.body.next }, 'nothing after the last cursor')
})

t.test('the disconnect API and a drain name their causes', async (t) => {
  const u = `pd-${randomBytes(3).toString('hex')}`
  await connectUser(t, edgeA.wsUrl, jwtSecret, u)
  const res = await cluster.api.post('/v1/disconnect', { userId: u })
  t.equal(res.status, 200, res.text)
  await receiver.waitFor(() => eventsOf(u).length >= 2, 10_000)
  t.same(summary(eventsOf(u)), ['user.online connect 1', 'user.offline disconnect_api 0'])
  const drained = await cluster.addEdge(t)
  const v = `pv-${randomBytes(3).toString('hex')}`
  await connectUser(t, drained.wsUrl, jwtSecret, v)
  drained.kill('SIGTERM')
  await receiver.waitFor(() => eventsOf(v).length >= 2, 20_000)
  t.same(summary(eventsOf(v)), ['user.online connect 1', 'user.offline drain 0'])
})

t.test('SIGKILL an edge holding 500 users, 100 of them also elsewhere: exactly the 400 go offline edge_lost, in the bound', async (t) => {
  const doomed = await cluster.addEdge(t)
  const tag = randomBytes(3).toString('hex')
  const users = Array.from({ length: 500 }, (_, i) => `pk-${tag}-${i}`)
  const both = new Set(users.slice(0, 100))
  for (let i = 0; i < users.length; i += 50) {
    await Promise.all(users.slice(i, i + 50).map((u) => connectUser(t, doomed.wsUrl, jwtSecret, u)))
  }
  await Promise.all([...both].map((u) => connectUser(t, edgeA.wsUrl, jwtSecret, u)))
  await receiver.waitFor(() => users.every((u) => eventsOf(u).length >= 1), 20_000)
  // However soon after the router's start (the bound holds from it: reaper-start.test.ts).
  const killedAt = Date.now()
  doomed.kill('SIGKILL')
  // LEASE_TTL_MS + one renewal + the grace (0) + 2 s, as the issue bounds it.
  const boundMs = LEASE_TTL_MS + LEASE_TTL_MS / 3 + 2_000
  await receiver.waitFor(() => users.filter((u) => !both.has(u)).every((u) => eventsOf(u).length >= 2), boundMs + 10_000)
  const tookMs = Date.now() - killedAt
  t.ok(tookMs <= boundMs, `the 400 offlines arrived ${tookMs} ms after the kill (bound ${boundMs} ms)`)
  // Let one more delivery round pass, so a wrong event for the 100 would have arrived too.
  await new Promise((r) => setTimeout(r, 4 * POLL_MS + 500))
  const wrong = users.filter((u) => summary(eventsOf(u)).join() !== (both.has(u) ? 'user.online connect 1' : 'user.online connect 1,user.offline edge_lost 0'))
  t.same(wrong.map((u) => `${u}: ${summary(eventsOf(u)).join()}`), [], 'the 400 got edge_lost, the 100 got nothing')
})

t.test('bad pull API input is a clear 400, an unknown user id named events is still reachable by query', async (t) => {
  for (const q of ['after=nope', 'limit=0', 'limit=100000', 'wait=99', 'after=1-2-3']) {
    const res = await cluster.api.get(`/v1/presence/events?${q}`)
    t.equal(res.status, 400, q)
    t.equal(res.body.error.code, 'invalid_request', q)
  }
  const snap = await cluster.api.get('/v1/presence/snapshot?cursor=999:0')
  t.equal(snap.status, 400)
  const q = await cluster.api.post('/v1/presence/query', { userIds: ['events'] })
  t.same(q.body, { online: [], offline: ['events'] })
})

t.test('a snapshot pages through every online user and gives the cursor to resume events from', async (t) => {
  const u = `ps-${randomBytes(3).toString('hex')}`
  await connectUser(t, edgeB.wsUrl, jwtSecret, u)
  await eventually(async () => (await cluster.api.get(`/v1/presence/${u}`)).body.online === true)
  const seen = new Map<string, number>()
  let res = await cluster.api.get('/v1/presence/snapshot?limit=100')
  t.match(res.body.eventsAfter, /^\d+-\d+$/)
  for (let pages = 0; ; pages++) {
    t.equal(res.status, 200)
    for (const user of res.body.users as { userId: string; connections: number }[]) seen.set(user.userId, user.connections)
    if (res.body.next === null || pages > 1_000) break
    res = await cluster.api.get(`/v1/presence/snapshot?limit=100&cursor=${encodeURIComponent(res.body.next)}`)
  }
  t.equal(seen.get(u), 1, 'the connected user is in it')
})

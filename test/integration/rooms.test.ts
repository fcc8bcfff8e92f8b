// Rooms end to end: a real Redis, four edges and a router. A room push reaches the edges holding
// members and no other (counted on each edge), every connection of every member and no
// non-member; membership changes take effect when their call returns.
import t from 'tap'
import { createRedisClient } from '@switchboard/registry'
import WebSocket from 'ws'
import { SUBPROTOCOL, resumeProtocol } from '@switchboard/protocol'
import { connectUser, eventually, mintToken, withToken, type Client } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const cluster = await startCluster(t, { edges: 4 })
const onCluster = process.env.SWITCHBOARD_TEST_REDIS === 'cluster'
const { jwtSecret } = testSecrets()
const [e0, e1, e2, e3] = cluster.edges as [Edge, Edge, Edge, Edge]

async function metric(edge: Edge, name: string): Promise<number> {
  const text = await (await fetch(`${edge.internalUrl}/metrics`)).text()
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN)
}
const roomCalls = (edge: Edge) => metric(edge, 'edge_room_pushes_total')
const callsOnEach = () => Promise.all(cluster.edges.map(roomCalls))

/** Every push frame queued for `client` now: a ping is the barrier (its pong comes after them). */
async function pushes(client: Client): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  for (let frame = await client.ping(); frame.type !== 'pong'; frame = await client.nextFrame()) out.push(frame)
  return out
}

/** A refused websocket upgrade's status and JSON body. */
function refusedUpgrade(url: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => (text += chunk.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
    })
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the upgrade was accepted'))
    })
    ws.on('error', () => undefined)
  })
}

let seq = 0
const room = () => `room-${process.pid}-${++seq}`

t.test('members on 2 of 4 edges: one call to each of those 2, none to the others; every member socket gets it, no non-member', async (t) => {
  const name = room()
  // ann on e0 (two sockets: e0 and e1), bob on e1, outsiders on e2, e3 and e0.
  const add = await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r1-ann', 'r1-bob', 'r1-offline'] })
  t.same(add.body, { room: name, added: ['r1-ann', 'r1-bob', 'r1-offline'], refused: [], members: 3 }, 'added before they connect')
  const ann0 = await connectUser(t, e0.wsUrl, jwtSecret, 'r1-ann')
  const ann1 = await connectUser(t, e1.wsUrl, jwtSecret, 'r1-ann')
  const bob = await connectUser(t, e1.wsUrl, jwtSecret, 'r1-bob')
  const outsiders = await Promise.all([e2, e3, e0].map((e, i) => connectUser(t, e.wsUrl, jwtSecret, `r1-out${i}`)))
  const before = await callsOnEach()
  const res = await cluster.api.post('/v1/push', { room: name, event: 'standup', data: { n: 1 }, id: 'r1-p1' })
  t.equal(res.status, 200)
  t.same(res.body, { id: 'r1-p1', room: name, members: 3, reached: 2, edges: 2, failedEdges: 0, delivered: ['r1-ann', 'r1-bob'], offline: ['r1-offline'], failed: [] })
  const after = await callsOnEach()
  t.same(after.map((n, i) => n - before[i]!), [1, 1, 0, 0], 'one call to each edge holding a member, none to the others')
  for (const [who, c] of [['ann on e0', ann0], ['ann on e1', ann1], ['bob', bob]] as const) {
    t.match(await pushes(c.client), [{ type: 'push', id: 'r1-p1', event: 'standup', data: { n: 1 } }], who)
  }
  for (const o of outsiders) t.same(await pushes(o.client), [], 'an outsider gets nothing')
})

t.test('except leaves the sender out; a member who joins while connected gets the next push at once', async (t) => {
  const name = room()
  const ann = await connectUser(t, e2.wsUrl, jwtSecret, 'r2-ann')
  const bob = await connectUser(t, e3.wsUrl, jwtSecret, 'r2-bob')
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r2-ann'] })
  const joined = await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r2-bob'] })
  t.same(joined.body, { room: name, added: ['r2-bob'], refused: [], members: 2 })
  const res = await cluster.api.post('/v1/push', { room: name, event: 'msg', except: ['r2-ann'], id: 'r2-p1' })
  t.same(res.body.delivered, ['r2-bob'])
  t.equal(res.body.edges, 2, 'both edges hold a member (ann is skipped on hers)')
  t.same(await pushes(ann.client), [], 'the sender does not get its own message')
  t.match(await pushes(bob.client), [{ id: 'r2-p1' }])
})

t.test('a member who moves edges: the next push goes to the new edge only', async (t) => {
  const name = room()
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r3-ann'] })
  const first = await connectUser(t, e1.wsUrl, jwtSecret, 'r3-ann')
  await first.client.close()
  const moved = await connectUser(t, e2.wsUrl, jwtSecret, 'r3-ann')
  // The old edge clears its field once the close is handled: wait for that, not for a time.
  await eventually(async () => (await cluster.api.post('/v1/push', { room: name, event: 'probe' })).body.edges === 1)
  t.ok((await pushes(moved.client)).every((p) => p.event === 'probe'), 'the probes reached the new edge')
  const before = await callsOnEach()
  const res = await cluster.api.post('/v1/push', { room: name, event: 'after-move', id: 'r3-p' })
  t.same(res.body.delivered, ['r3-ann'])
  const after = await callsOnEach()
  t.same(after.map((n, i) => n - before[i]!), [0, 0, 1, 0], 'only e2 called')
  t.match(await pushes(moved.client), [{ id: 'r3-p' }])
})

t.test('remove (kick) and delete take effect when they return', async (t) => {
  const name = room()
  const ann = await connectUser(t, e0.wsUrl, jwtSecret, 'r4-ann')
  const bob = await connectUser(t, e3.wsUrl, jwtSecret, 'r4-bob')
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r4-ann', 'r4-bob'] })
  const kicked = await cluster.api.post(`/v1/rooms/${name}/members/remove`, { userIds: ['r4-bob'] })
  t.same(kicked.body, { room: name, removed: ['r4-bob'], members: 1 })
  const res = await cluster.api.post('/v1/push', { room: name, event: 'e', id: 'r4-p1' })
  t.same([res.body.delivered, res.body.edges], [['r4-ann'], 1], 'bob\'s edge left the room with him')
  t.same(await pushes(bob.client), [], 'a removed member gets nothing')
  t.match(await pushes(ann.client), [{ id: 'r4-p1' }])
  t.same((await cluster.api.request('DELETE', `/v1/rooms/${name}`)).body, { room: name, removed: 1 })
  t.same((await cluster.api.get(`/v1/rooms/${name}`)).body, { room: name, exists: false, members: 0 })
  const gone = await cluster.api.post('/v1/push', { room: name, event: 'e' })
  t.same([gone.body.members, gone.body.reached, gone.body.edges], [0, 0, 0])
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r4-bob'] })
  const reborn = await cluster.api.post('/v1/push', { room: name, event: 'e', id: 'r4-p2' })
  t.same(reborn.body.delivered, ['r4-bob'], 'created again: only its new member')
  t.same(await pushes(ann.client), [], 'ann was a member of the old life only')
  t.match(await pushes(bob.client), [{ id: 'r4-p2' }])
})

t.test('members list in pages; bad names and bodies get clear errors', async (t) => {
  const name = room()
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['c', 'a', 'b'] })
  t.same((await cluster.api.get(`/v1/rooms/${name}/members?limit=2`)).body, { room: name, userIds: ['a', 'b'], cursor: 'b' })
  t.same((await cluster.api.get(`/v1/rooms/${name}/members?limit=2&cursor=b`)).body, { room: name, userIds: ['c'] })
  const long = await cluster.api.post(`/v1/rooms/${'x'.repeat(129)}/members`, { userIds: ['a'] })
  t.same([long.status, long.body.error.message], [400, 'room: at most 128 characters'])
  const both = await cluster.api.post('/v1/push', { room: name, to: ['a'], event: 'e' })
  t.same([both.status, both.body.error.code], [400, 'invalid_request'])
  const escaped = await cluster.api.post(`/v1/rooms/${encodeURIComponent('a/b c')}/members`, { userIds: ['u'] })
  t.same(escaped.body, { room: 'a/b c', added: ['u'], refused: [], members: 1 }, 'a room name may hold any printable character, escaped in the path')
})

t.test('token rooms: the claim joins that connection only, for its life, with or without a durable room', async (t) => {
  const name = room()
  const claims = { rooms: [name] }
  const laptop = await connectUser(t, e1.wsUrl, jwtSecret, 'r7-ann', { tokenClaims: claims })
  const phone = await connectUser(t, e2.wsUrl, jwtSecret, 'r7-ann')
  const res = await cluster.api.post('/v1/push', { room: name, event: 'e', id: 'r7-p1' })
  t.same(res.body, { id: 'r7-p1', room: name, members: 0, reached: 1, edges: 1, failedEdges: 0, delivered: [], offline: [], failed: [] }, 'no durable member; one token member')
  t.match(await pushes(laptop.client), [{ id: 'r7-p1' }])
  t.same(await pushes(phone.client), [], 'her other connection has no such claim')
  const presence = await cluster.api.get(`/v1/rooms/${name}/presence`)
  t.same(presence.body, { room: name, members: 0, online: 1, users: ['r7-ann'], offline: [] })
  await laptop.client.close()
  await eventually(async () => (await cluster.api.post('/v1/push', { room: name, event: 'probe' })).body.edges === 0)
  t.same(await pushes(phone.client), [])
})

t.test('a token whose rooms claim is out of bounds is refused with a clear message', async (t) => {
  for (const rooms of [['ok', 'x'.repeat(129)], 'not-a-list', [1], Array.from({ length: 101 }, (_, i) => `r${i}`)]) {
    const token = await mintToken(jwtSecret, 'r8-ann', { claims: { rooms } })
    const refusal = await refusedUpgrade(withToken(e0.wsUrl, token))
    t.same(refusal, { status: 401, body: { error: { code: 'unauthorized', message: 'token: rooms must be an array of at most 100 room names of 1 to 128 printable characters' } } }, JSON.stringify(rooms).slice(0, 40))
  }
})

t.test('room presence and clear: both kinds of membership, on several edges', async (t) => {
  const name = room()
  const ann = await connectUser(t, e0.wsUrl, jwtSecret, 'r9-ann')
  const bob = await connectUser(t, e3.wsUrl, jwtSecret, 'r9-bob', { tokenClaims: { rooms: [name] } })
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r9-ann', 'r9-offline'] })
  t.same((await cluster.api.get(`/v1/rooms/${name}/presence`)).body, { room: name, members: 2, online: 2, users: ['r9-ann', 'r9-bob'], offline: ['r9-offline'] })
  t.same((await cluster.api.post(`/v1/rooms/${name}/clear`, {})).body, { room: name, removed: 2 })
  const res = await cluster.api.post('/v1/push', { room: name, event: 'e' })
  t.same([res.body.members, res.body.reached, res.body.edges], [0, 0, 0], 'no member of either kind, no edge called')
  t.same([await pushes(ann.client), await pushes(bob.client)], [[], []])
  t.same((await cluster.api.get(`/v1/rooms/${name}`)).body, { room: name, exists: true, members: 0 }, 'the room lives on')
})

t.test('a kept room push reaches a member who was away when they resume; a room push runs once per Idempotency-Key', async (t) => {
  const name = room()
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r10-ann', 'r10-bob'] })
  const first = await connectUser(t, e1.wsUrl, jwtSecret, 'r10-ann', { protocols: [SUBPROTOCOL, resumeProtocol(undefined)] })
  const head = { epoch: String(first.welcome.epoch), offset: Number(first.welcome.offset) }
  await first.client.close()
  const bob = await connectUser(t, e2.wsUrl, jwtSecret, 'r10-bob')
  const kept = await cluster.api.post('/v1/push', { room: name, event: 'minutes', id: 'r10-k', keep: true }, { headers: { 'idempotency-key': `r10-${process.pid}` } })
  t.same([kept.body.delivered, kept.body.kept], [['r10-bob'], ['r10-ann']])
  const again = await cluster.api.post('/v1/push', { room: name, event: 'minutes', id: 'r10-k', keep: true }, { headers: { 'idempotency-key': `r10-${process.pid}` } })
  t.same([again.status, again.headers.get('idempotent-replayed'), again.body], [200, 'true', kept.body], 'replayed, not sent again')
  t.match(await pushes(bob.client), [{ id: 'r10-k', offset: 1 }], 'once, at its position')
  const back = await connectUser(t, e3.wsUrl, jwtSecret, 'r10-ann', { protocols: [SUBPROTOCOL, resumeProtocol(head)] })
  t.equal(back.welcome.recovered, true)
  t.match(await pushes(back.client), [{ id: 'r10-k', epoch: head.epoch, offset: head.offset + 1 }], 'replayed from her inbox')
})

t.test('membership changes while room pushes stream: exactly what holds at the instant of a change', async (t) => {
  const name = room()
  const ann = await connectUser(t, e0.wsUrl, jwtSecret, 'r12-ann') // added and removed, five times
  const bob = await connectUser(t, e1.wsUrl, jwtSecret, 'r12-bob') // a member throughout
  const eve = await connectUser(t, e2.wsUrl, jwtSecret, 'r12-eve') // never a member
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r12-bob'] })
  const sent: { id: string; sentAt: number; answeredAt: number }[] = []
  let streaming = true
  // Two streams of room pushes, each waiting for its answer: every push is sent before or after a change, or during it.
  const streams = [0, 1].map(async (s) => {
    for (let i = 0; streaming; i++) {
      const id = `r12-${s}-${i}`
      const sentAt = performance.now()
      const res = await cluster.api.post('/v1/push', { room: name, event: 'e', id })
      if (res.status !== 200) throw new Error(`push ${id}: ${res.status}`)
      sent.push({ id, sentAt, answeredAt: performance.now() })
    }
  })
  const morePushes = async (n: number) => {
    const target = sent.length + n
    await eventually(() => sent.length >= target)
  }
  const changes: { addStarted: number; added: number; removeStarted: number; removed: number }[] = []
  for (let k = 0; k < 5; k++) {
    await morePushes(4)
    const addStarted = performance.now()
    t.equal((await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r12-ann'] })).status, 200)
    const added = performance.now()
    await morePushes(4)
    const removeStarted = performance.now()
    t.equal((await cluster.api.post(`/v1/rooms/${name}/members/remove`, { userIds: ['r12-ann'] })).status, 200)
    changes.push({ addStarted, added, removeStarted, removed: performance.now() })
  }
  await morePushes(4)
  streaming = false
  await Promise.all(streams)
  const got = async (c: Client) => new Set((await pushes(c)).map((p) => String(p.id)))
  const [annGot, bobGot, eveGot] = [await got(ann.client), await got(bob.client), await got(eve.client)]
  t.equal(bobGot.size, sent.length, `the member throughout got all ${sent.length} pushes`)
  t.same([...eveGot], [], 'the user never a member got none')
  // A push sent after an add returned and answered before the remove began must reach ann; one
  // sent after a remove returned and answered before the next add began must not.
  const mustHave = sent.filter((p) => changes.some((c) => p.sentAt > c.added && p.answeredAt < c.removeStarted))
  const mustNot = sent.filter((p) => changes.some((c, k) => p.sentAt > c.removed && p.answeredAt < (changes[k + 1]?.addStarted ?? Infinity)) || p.answeredAt < changes[0]!.addStarted)
  t.ok(mustHave.length >= 15 && mustNot.length >= 15, `${mustHave.length} pushes wholly inside a membership, ${mustNot.length} wholly outside`)
  t.same(mustHave.filter((p) => !annGot.has(p.id)).map((p) => p.id), [], 'every push sent while she was a member reached her')
  t.same(mustNot.filter((p) => annGot.has(p.id)).map((p) => p.id), [], 'no push sent while she was not reached her')
  t.ok([...annGot].every((id) => sent.some((p) => p.id === id)), 'and she got nothing else')
})

t.test('an edge SIGKILLed: room pushes stop calling it within the lease bound', async (t) => {
  const name = room()
  const extra = await cluster.addEdge(t)
  await connectUser(t, extra.wsUrl, jwtSecret, 'r6-ann')
  const bob = await connectUser(t, e3.wsUrl, jwtSecret, 'r6-bob')
  await cluster.api.post(`/v1/rooms/${name}/members`, { userIds: ['r6-ann', 'r6-bob'] })
  t.equal((await cluster.api.post('/v1/push', { room: name, event: 'e' })).body.edges, 2)
  extra.kill('SIGKILL')
  const killedAt = Date.now()
  let last: unknown
  await eventually(async () => {
    last = (await cluster.api.post('/v1/push', { room: name, event: 'e' })).body
    return (last as { edges: number }).edges === 1
  }, { timeoutMs: cluster.leaseTtlMs + 3_000 }).catch(() => t.fail(`still ${JSON.stringify(last)}`))
  t.ok(Date.now() - killedAt <= cluster.leaseTtlMs + 3_000, 'within the lease TTL (and the router\'s refresh)')
  await pushes(bob.client)
})

// Runs last among the tests that share this cluster's edges: it restarts their Redis.
t.test('a Redis restarted empty gets the edge index back from the edges: token rooms at once, durable rooms once added again', { skip: onCluster ? 'the test Redis Cluster cannot be restarted empty (helpers/processes.ts)' : false }, async (t) => {
  const [durable, byToken] = [room(), room()]
  const bob = await connectUser(t, e3.wsUrl, jwtSecret, 'r11-bob', { tokenClaims: { rooms: [byToken] } })
  await cluster.api.post(`/v1/rooms/${durable}/members`, { userIds: ['r11-bob'] })
  const resyncs = () => [e0, e1, e2, e3].map((e) => e.logRecords().filter((r) => r.msg === 'registry resynced').length)
  const before = resyncs()
  await cluster.redis.restart()
  const redis = createRedisClient(cluster.redis.url, { commandTimeoutMs: 2_000 })
  t.teardown(() => redis.disconnect())
  const indexOf = async (name: string) => (await redis.keys(`${cluster.prefix}*:re:${name}`)).length
  // Every edge resyncs within a renewal (TTL/3); the token room's field is written back from what e3 holds.
  await eventually(() => resyncs().every((n, i) => n > before[i]!), { timeoutMs: cluster.leaseTtlMs * 2 })
  await eventually(async () => (await indexOf(byToken)) === 1, { timeoutMs: cluster.leaseTtlMs })
  t.equal(await indexOf(durable), 0, 'the durable room went with the data: its membership was dropped on the re-read')
  const token = await cluster.api.post('/v1/push', { room: byToken, event: 'e', id: 'r11-t' })
  t.same([token.body.reached, token.body.edges], [1, 1], 'the token room reaches bob at once')
  const gone = await cluster.api.post('/v1/push', { room: durable, event: 'e' })
  t.same([gone.body.members, gone.body.reached], [0, 0], 'the durable room is empty until added again')
  t.same((await cluster.api.post(`/v1/rooms/${durable}/members`, { userIds: ['r11-bob'] })).status, 200)
  const res = await cluster.api.post('/v1/push', { room: durable, event: 'e', id: 'r11-p' })
  t.same([res.body.delivered, res.body.edges], [['r11-bob'], 1], 'added again: reached on his edge')
  t.match(await pushes(bob.client), [{ id: 'r11-t' }, { id: 'r11-p' }])
})

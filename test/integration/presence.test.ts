// GET /v1/presence/:userId, POST /v1/presence/query and POST /v1/disconnect end to end.
import t from 'tap'
import { connectUser, eventually } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const cluster = await startCluster(t, { edges: 2 })
const [edge1, edge2] = cluster.edges as [Edge, Edge]
const { jwtSecret } = testSecrets()
const presence = (userId: string) => cluster.api.get(`/v1/presence/${encodeURIComponent(userId)}`)
const query = (userIds: string[]) => cluster.api.post('/v1/presence/query', { userIds })
const sorted = (xs: readonly string[]) => [...xs].sort()
// Registry writes follow socket events asynchronously; they land within this bound.
const SETTLE_MS = 2_000

interface Conn {
  connId: string
  nodeId: string
  since: number
}

t.test('a connected user is online with the connection its welcome frame named', async (t) => {
  const before = Date.now()
  const { welcome } = await connectUser(t, edge1.wsUrl, jwtSecret, 'p-one')
  const after = Date.now()
  const res = await eventually(async () => {
    const r = await presence('p-one')
    return r.body?.online === true ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.equal(res.status, 200)
  t.same(Object.keys(res.body).sort(), ['connections', 'online', 'userId'])
  t.equal(res.body.userId, 'p-one')
  t.equal(res.body.connections.length, 1)
  const [conn] = res.body.connections as Conn[]
  t.same(Object.keys(conn!).sort(), ['connId', 'nodeId', 'since'])
  t.equal(conn!.connId, welcome.connId)
  t.equal(conn!.nodeId, welcome.nodeId)
  t.equal(conn!.nodeId, edge1.nodeId)
  t.type(conn!.since, 'number')
  t.ok(conn!.since >= before - 1_000 && conn!.since <= after + 1_000, 'since is the connect time in ms')
})

t.test('every device of a user is listed with its node', async (t) => {
  const a = await connectUser(t, edge1.wsUrl, jwtSecret, 'p-two')
  const b = await connectUser(t, edge2.wsUrl, jwtSecret, 'p-two')
  const res = await eventually(async () => {
    const r = await presence('p-two')
    return r.body?.connections?.length === 2 ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.equal(res.body.online, true)
  const pairs = (conns: readonly { connId: string; nodeId: string }[]) =>
    conns.map(({ connId, nodeId }) => ({ connId, nodeId })).sort((x, y) => x.connId.localeCompare(y.connId))
  t.same(pairs(res.body.connections as Conn[]), pairs([a.welcome, b.welcome]))
  t.same(sorted((res.body.connections as Conn[]).map((c) => c.nodeId)), sorted([edge1.nodeId, edge2.nodeId]))
  t.not(a.welcome.connId, b.welcome.connId, 'each connection has its own id')
})

t.test('a user whose sockets all closed is offline', async (t) => {
  const a = await connectUser(t, edge1.wsUrl, jwtSecret, 'p-three')
  const b = await connectUser(t, edge2.wsUrl, jwtSecret, 'p-three')
  await eventually(async () => (await presence('p-three')).body?.connections?.length === 2, { timeoutMs: SETTLE_MS })
  await a.client.close()
  await b.client.close()
  const res = await eventually(async () => {
    const r = await presence('p-three')
    return r.body?.online === false ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.equal(res.status, 200)
  t.same(res.body, { userId: 'p-three', online: false, connections: [] })
})

t.test('a user never seen is offline', async (t) => {
  const res = await presence('p-never')
  t.equal(res.status, 200)
  t.same(res.body, { userId: 'p-never', online: false, connections: [] })
})

t.test('closing an old connection leaves the newer one on another edge', async (t) => {
  const old = await connectUser(t, edge1.wsUrl, jwtSecret, 'p-moving')
  const moved = await connectUser(t, edge2.wsUrl, jwtSecret, 'p-moving')
  await eventually(async () => (await presence('p-moving')).body?.connections?.length === 2, { timeoutMs: SETTLE_MS })
  await old.client.close()
  const res = await eventually(async () => {
    const r = await presence('p-moving')
    return r.body?.connections?.length === 1 ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.equal(res.body.online, true)
  t.match(res.body.connections, [{ connId: moved.welcome.connId, nodeId: edge2.nodeId }])
  const push = await cluster.api.post('/v1/push', { to: ['p-moving'], event: 'still.here', data: 1 })
  t.same(push.body.delivered, ['p-moving'])
  t.match(await moved.client.nextFrame(), { type: 'push', event: 'still.here' })
})

t.test('user ids with URL-reserved and non-ASCII characters work in every call', async (t) => {
  const userId = 'ann:x@example.com é/ü 1'
  const { client, welcome } = await connectUser(t, edge1.wsUrl, jwtSecret, userId)
  const res = await eventually(async () => {
    const r = await presence(userId)
    return r.body?.online === true ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.equal(res.body.userId, userId)
  t.match(res.body.connections, [{ connId: welcome.connId }])
  const q = await query([userId])
  t.same(q.body, { online: [userId], offline: [] })
  const push = await cluster.api.post('/v1/push', { to: [userId], event: 'odd.id', data: 1 })
  t.same(push.body.delivered, [userId])
  t.match(await client.nextFrame(), { type: 'push', event: 'odd.id' })
})

t.test('presence query splits users into online and offline', async (t) => {
  await connectUser(t, edge1.wsUrl, jwtSecret, 'q-one')
  const two = await connectUser(t, edge2.wsUrl, jwtSecret, 'q-two')
  const ids = ['q-one', 'q-two', 'q-three', 'q-four']
  const res = await eventually(async () => {
    const r = await query(ids)
    return r.body?.online?.length === 2 ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.equal(res.status, 200)
  t.same(Object.keys(res.body).sort(), ['offline', 'online'])
  t.same(sorted(res.body.online), ['q-one', 'q-two'])
  t.same(sorted(res.body.offline), ['q-four', 'q-three'])

  await two.client.close()
  const after = await eventually(async () => {
    const r = await query(ids)
    return r.body?.online?.length === 1 ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.same(after.body.online, ['q-one'])
  t.same(sorted(after.body.offline), ['q-four', 'q-three', 'q-two'])
})

t.test('disconnect closes every socket of the user with 4500 and leaves others open', async (t) => {
  const a = await connectUser(t, edge1.wsUrl, jwtSecret, 'kick-me')
  const b = await connectUser(t, edge2.wsUrl, jwtSecret, 'kick-me')
  const other = await connectUser(t, edge1.wsUrl, jwtSecret, 'keep-me')
  await eventually(async () => (await presence('kick-me')).body?.connections?.length === 2, { timeoutMs: SETTLE_MS })

  const res = await cluster.api.post('/v1/disconnect', { userId: 'kick-me', reason: 'account suspended' })
  t.equal(res.status, 200)
  t.same(res.body, { closed: 2 })
  const [closeA, closeB] = await Promise.all([a.client.closed, b.client.closed])
  t.equal(closeA.code, 4500)
  t.equal(closeB.code, 4500)
  t.same(await other.client.ping(), { type: 'pong' }, 'another user stays connected')

  const after = await eventually(async () => {
    const r = await presence('kick-me')
    return r.body?.online === false ? r : undefined
  }, { timeoutMs: SETTLE_MS })
  t.same(after.body.connections, [])
  const push = await cluster.api.post('/v1/push', { to: ['kick-me'], event: 'gone', data: 1 })
  t.same(push.body.offline, ['kick-me'])
})

t.test('disconnecting a user without connections closes nothing', async (t) => {
  const res = await cluster.api.post('/v1/disconnect', { userId: 'kick-nobody' })
  t.equal(res.status, 200)
  t.same(res.body, { closed: 0 })
})

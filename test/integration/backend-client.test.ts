// The backend client (@switchboard/backend) against a real router, edge and Redis: calls go
// over the router's pipelined ingress, and answers and errors are the HTTP API's.
import t from 'tap'
import { SwitchboardBackend, mintClientToken, type BackendLogger } from '@switchboard/backend'
import { connectClient } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

/** Warnings the client logged (a lost or refused pipeline): none are expected here. */
function warnings(): { log: BackendLogger; lines: string[] } {
  const lines: string[] = []
  const ignore = () => undefined
  return { log: { debug: ignore, info: ignore, warn: (fields, message) => lines.push(`${message} ${JSON.stringify(fields)}`) }, lines }
}

t.test('over the pipeline: pushes reach a connected user, presence, nodes, broadcast, disconnect, and the router\'s error codes', async (t) => {
  const cluster = await startCluster(t, { edges: 1 })
  const edge = cluster.edges[0] as Edge
  const { jwtSecret, apiKeys } = testSecrets()
  const { log, lines } = warnings()
  const sb = new SwitchboardBackend({ url: cluster.router.url, apiKey: apiKeys[0], log })
  t.teardown(() => sb.close())
  await sb.connect()
  t.equal(sb.state, 'connected', 'the router accepts the pipelined ingress')

  const user = await connectClient(edge.wsUrl, await mintClientToken({ secret: jwtSecret, userId: 'bk-alice' }), { t })
  t.match(await user.nextFrame(), { type: 'welcome', nodeId: edge.nodeId }, 'a minted token connects')

  const presence = await sb.presence('bk-alice')
  t.match(presence, { userId: 'bk-alice', online: true, connections: [{ nodeId: edge.nodeId }] })
  t.same(await sb.presenceQuery(['bk-alice', 'bk-nobody']), { online: ['bk-alice'], offline: ['bk-nobody'] })
  t.match(await sb.nodes(), { nodes: [{ nodeId: edge.nodeId, draining: false }] })

  const answer = await sb.push({ to: ['bk-alice', 'bk-nobody'], event: 'chat.message', data: { text: 'hi' }, id: 'bk-1' })
  t.same(answer, { id: 'bk-1', delivered: ['bk-alice'], offline: ['bk-nobody'], failed: [] })
  t.match(await user.nextFrame(), { type: 'push', id: 'bk-1', event: 'chat.message', data: { text: 'hi' } })

  const kept = await sb.push({ to: ['bk-alice', 'bk-nobody'], event: 'chat.message', data: 'k', id: 'bk-k', keep: true })
  t.same(kept, { id: 'bk-k', delivered: ['bk-alice'], offline: ['bk-nobody'], failed: [], kept: ['bk-nobody'] }, 'a kept push over the pipeline')
  t.match(await user.nextFrame(), { type: 'push', id: 'bk-k', offset: 1, epoch: /^[0-9a-f]+$/ }, 'with its position in the inbox')

  const many = await Promise.all(Array.from({ length: 200 }, (_, i) => sb.push({ to: ['bk-alice'], event: 'n', data: i })))
  t.ok(many.every((a) => a.delivered[0] === 'bk-alice'), '200 pushes in one turn, all delivered')
  const seen = new Set<unknown>()
  for (let i = 0; i < 200; i++) seen.add((await user.nextFrame()).data)
  t.equal(seen.size, 200, 'and each reached the socket once')

  await t.rejects(sb.push({ to: ['bk-alice'], event: '' }), { name: 'SwitchboardApiError', code: 'invalid_request', status: 400, message: /^event/ })
  await t.rejects(sb.push({ to: [], event: 'e' }), { code: 'invalid_request', status: 400, message: /^to/ })
  await t.rejects(sb.presenceQuery([]), { code: 'invalid_request', status: 400, message: /^userIds/ })
  await t.rejects(sb.disconnect({ userId: 'x'.repeat(300) }), { code: 'invalid_request', status: 400, message: /^userId/ })

  t.match(await sb.broadcast({ event: 'maintenance', data: { in: 5 } }), { nodes: 1, connections: 1 })
  t.match(await user.nextFrame(), { type: 'push', event: 'maintenance', data: { in: 5 } })
  t.same(await sb.disconnect({ userId: 'bk-alice', reason: 'banned' }), { closed: 1 })
  t.match(await user.closed, { code: 4500, reason: 'banned' })

  t.equal(sb.state, 'connected', 'every call went over the pipeline')
  t.same(lines, [], 'no pipeline warnings')
})

t.test('the HTTP transport gives the same answers and codes', async (t) => {
  const cluster = await startCluster(t, { edges: 1 })
  const sb = new SwitchboardBackend({ url: cluster.router.url, apiKey: testSecrets().apiKeys[0], transport: 'http' })
  t.teardown(() => sb.close())
  t.same(await sb.push({ to: ['bk-nobody'], event: 'e', id: 'h-1' }), { id: 'h-1', delivered: [], offline: ['bk-nobody'], failed: [] })
  t.same(await sb.push({ to: ['bk-nobody'], event: 'e', id: 'h-2', keep: true }), { id: 'h-2', delivered: [], offline: ['bk-nobody'], failed: [], kept: ['bk-nobody'] })
  t.same(await sb.presence('bk/nobody here'), { userId: 'bk/nobody here', online: false, connections: [] })
  await t.rejects(sb.push({ to: ['a'], event: '' }), { code: 'invalid_request', status: 400, message: /^event/ })
  t.equal(sb.state, 'http')
})

t.test('rooms: every room call gives the same answers over the pipeline and over HTTP', async (t) => {
  const cluster = await startCluster(t, { edges: 1 })
  const edge = cluster.edges[0] as Edge
  const { jwtSecret, apiKeys } = testSecrets()
  const user = await connectClient(edge.wsUrl, await mintClientToken({ secret: jwtSecret, userId: 'bk-room-ann' }), { t })
  await user.nextFrame()
  for (const transport of ['pipeline', 'http'] as const) {
    const sb = new SwitchboardBackend({ url: cluster.router.url, apiKey: apiKeys[0], transport })
    t.teardown(() => sb.close())
    const room = `bk room/${transport}`
    t.same(await sb.roomAdd(room, ['bk-room-ann', 'bk-room-bob'], { idleTtlS: 600 }), { room, added: ['bk-room-ann', 'bk-room-bob'], refused: [], members: 2 }, `${transport}: add`)
    const pushed = await sb.push({ room, event: 'e', id: `bk-r-${transport}` })
    t.same(pushed, { id: `bk-r-${transport}`, room, members: 2, reached: 1, edges: 1, failedEdges: 0, delivered: ['bk-room-ann'], offline: ['bk-room-bob'], failed: [] }, `${transport}: push`)
    t.match(await user.nextFrame(), { id: `bk-r-${transport}` })
    t.same(await sb.roomMembers(room, { limit: 1 }), { room, userIds: ['bk-room-ann'], cursor: 'bk-room-ann' }, `${transport}: members`)
    t.same(await sb.roomMembers(room, { cursor: 'bk-room-ann' }), { room, userIds: ['bk-room-bob'] })
    t.same(await sb.roomPresence(room), { room, members: 2, online: 1, users: ['bk-room-ann'], offline: ['bk-room-bob'] }, `${transport}: presence`)
    t.same(await sb.roomRemove(room, ['bk-room-bob']), { room, removed: ['bk-room-bob'], members: 1 })
    t.same(await sb.roomInfo(room), { room, exists: true, members: 1 })
    t.same(await sb.roomClear(room), { room, removed: 1 })
    t.same(await sb.roomDelete(room), { room, removed: 0 })
    t.same(await sb.roomInfo(room), { room, exists: false, members: 0 })
    await t.rejects(sb.roomAdd('x'.repeat(200), ['a']), { code: 'invalid_request', status: 400, message: 'room: at most 128 characters' })
  }
})

t.test('a key the router does not know is refused at the upgrade: unauthorized, with no retry loop', async (t) => {
  const cluster = await startCluster(t, { edges: 1 })
  const sb = new SwitchboardBackend({ url: cluster.router.url, apiKey: 'not-a-router-key-0123456789' })
  t.teardown(() => sb.close())
  await t.rejects(sb.connect(), { code: 'unauthorized', status: 401 })
  await t.rejects(sb.push({ to: ['a'], event: 'e' }), { code: 'unauthorized', status: 401 })
  t.equal(sb.state, 'unauthorized')
})

t.test('a router whose in-flight bound (4) is far below the client\'s (100): every push is answered 200 and delivered exactly once', async (t) => {
  const cluster = await startCluster(t, { edges: 1, routerEnv: { ROUTER_PIPELINE_MAX_IN_FLIGHT: '4' } })
  const { jwtSecret, apiKeys } = testSecrets()
  const sb = new SwitchboardBackend({ url: cluster.router.url, apiKey: apiKeys[0], maxInFlight: 100 })
  t.teardown(() => sb.close())
  await sb.connect()
  const user = await connectClient((cluster.edges[0] as Edge).wsUrl, await mintClientToken({ secret: jwtSecret, userId: 'bk-bob' }), { t })
  await user.nextFrame()
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => sb.push({ to: ['bk-bob'], event: 'n', data: i })))
  t.ok(answers.every((a) => a.delivered[0] === 'bk-bob'), 'every push answered 200 and delivered')
  const seen: unknown[] = []
  for (let i = 0; i < 100; i++) seen.push((await user.nextFrame()).data)
  t.same([...seen].sort((a, b) => (a as number) - (b as number)), answers.map((_, i) => i), 'each reached the socket exactly once')
  t.equal(sb.state, 'connected')
})

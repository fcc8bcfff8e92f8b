// GET /v1/nodes, POST /v1/broadcast, health/readiness/metrics endpoints, internal-call
// authentication and configuration errors, against real processes.
import { linkOps } from '@switchboard/protocol'
import t from 'tap'
import { api, connectUser, eventually } from '../helpers/clients.js'
import {
  EDGE_MAIN,
  ROUTER_MAIN,
  edgeEnv,
  routerEnv,
  spawnService,
  startCluster,
  testSecrets,
  type Edge,
  type EnvOverrides,
  type ServiceProcess,
} from '../helpers/processes.js'
import type { TestScope } from '../helpers/redis.js'

const LEASE_TTL_MS = 1_500
const startedBefore = Date.now()
const cluster = await startCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS })
const startedAfter = Date.now()
const [edge1, edge2] = cluster.edges as [Edge, Edge]
const { jwtSecret, internalToken, apiKeys } = testSecrets()
// Connection counts are reported at lease renewal (every LEASE_TTL_MS/3); allow a few renewals.
const COUNT_SETTLE_MS = LEASE_TTL_MS * 2 + 1_000

interface NodeEntry {
  nodeId: string
  connections: number
  draining: boolean
  startedAt: number
}
const nodes = async (): Promise<NodeEntry[]> => {
  const res = await cluster.api.get('/v1/nodes')
  if (res.status !== 200) throw new Error(`GET /v1/nodes answered ${res.status}: ${res.text}`)
  return res.body.nodes as NodeEntry[]
}
const countsOf = (list: NodeEntry[]) => Object.fromEntries(list.map((n) => [n.nodeId, n.connections]))
/** A check for `eventually`: the live nodes are exactly these, with these counts. */
const countsAre = (want: Record<string, number>) => async () => {
  const list = await nodes()
  const got = countsOf(list)
  if (list.length !== Object.keys(want).length || list.some((n) => want[n.nodeId] !== n.connections)) {
    throw new Error(`nodes report ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
  }
  return list
}

t.test('a broadcast with no sockets reaches every edge and writes nothing', async (t) => {
  const res = await cluster.api.post('/v1/broadcast', { event: 'empty.room', data: 1 })
  t.equal(res.status, 200)
  t.type(res.body.id, 'string')
  t.same({ nodes: res.body.nodes, connections: res.body.connections }, { nodes: 2, connections: 0 })
})

t.test('nodes lists both live edges with their connection counts', async (t) => {
  const a = await connectUser(t, edge1.wsUrl, jwtSecret, 'n-one')
  const b = await connectUser(t, edge1.wsUrl, jwtSecret, 'n-two')
  const c = await connectUser(t, edge2.wsUrl, jwtSecret, 'n-three')
  const list = await eventually(countsAre({ [edge1.nodeId]: 2, [edge2.nodeId]: 1 }), { timeoutMs: COUNT_SETTLE_MS })
  const res = await cluster.api.get('/v1/nodes')
  t.equal(res.status, 200)
  t.same(Object.keys(res.body), ['nodes'])
  t.same(list.map((n) => n.nodeId).sort(), [edge1.nodeId, edge2.nodeId].sort())
  for (const node of list) {
    t.equal(node.draining, false, `${node.nodeId} is not draining`)
    t.type(node.startedAt, 'number')
    t.ok(node.startedAt >= startedBefore - 1_000 && node.startedAt <= startedAfter + 1_000, `${node.nodeId} startedAt is its start time in ms`)
  }

  await Promise.all([a.client.close(), b.client.close(), c.client.close()])
  await eventually(countsAre({ [edge1.nodeId]: 0, [edge2.nodeId]: 0 }), { timeoutMs: COUNT_SETTLE_MS })
  t.pass('counts drop to zero after the sockets close')
})

t.test('a broadcast reaches every socket on every edge', async (t) => {
  const users = [
    await connectUser(t, edge1.wsUrl, jwtSecret, 'b-one'),
    await connectUser(t, edge1.wsUrl, jwtSecret, 'b-two'),
    await connectUser(t, edge2.wsUrl, jwtSecret, 'b-three'),
    await connectUser(t, edge2.wsUrl, jwtSecret, 'b-one'), // a second device
  ]
  const before = Date.now()
  const res = await cluster.api.post('/v1/broadcast', { event: 'announce', data: { v: 1 } })
  t.equal(res.status, 200)
  t.same(Object.keys(res.body).sort(), ['connections', 'id', 'nodes'])
  t.type(res.body.id, 'string')
  t.equal(res.body.nodes, 2)
  t.equal(res.body.connections, 4)
  for (const { client } of users) {
    const frame = await client.nextFrame()
    t.match(frame, { type: 'push', id: res.body.id, event: 'announce', data: { v: 1 } })
    t.ok(typeof frame.ts === 'number' && frame.ts >= before - 1_000, 'ts is set')
    t.same(await client.ping(), { type: 'pong' }, 'one copy per socket')
  }
})

t.test('healthz and readyz answer 200 without a key on the router and both edges', async (t) => {
  for (const [name, base] of [['router', cluster.router.url], ['edge 1', edge1.internalUrl], ['edge 2', edge2.internalUrl]] as const) {
    const open = api(base)
    t.equal((await open.get('/healthz')).status, 200, `${name} /healthz`)
    t.equal((await open.get('/readyz')).status, 200, `${name} /readyz`)
  }
})

t.test('metrics serve Prometheus text on the router and both edges', async (t) => {
  // Some traffic first, so counters have samples.
  await cluster.api.post('/v1/push', { to: ['m-nobody'], event: 'e', data: 1 })
  for (const [name, base] of [['router', cluster.router.url], ['edge 1', edge1.internalUrl], ['edge 2', edge2.internalUrl]] as const) {
    const res = await api(base).get('/metrics')
    t.equal(res.status, 200, `${name} /metrics`)
    t.match(res.headers.get('content-type') ?? '', /^text\/plain/, `${name} content type`)
    t.match(res.text, /^# HELP \w+ /m, `${name} has HELP lines`)
    t.match(res.text, /^# TYPE \w+ (counter|gauge|histogram|summary|untyped)$/m, `${name} has TYPE lines`)
    t.match(res.text, /^\w+(\{[^}]*\})? -?[\d.e+-]+$/m, `${name} has samples`)
  }
})

t.test('an edge refuses internal HTTP calls without the internal token, and serves only the eviction route', async (t) => {
  // Router calls go over the link (its refused upgrade: edge-link.test.ts); over HTTP, only the
  // disconnect an edge sends another edge to close the connections the registry evicted.
  const { client } = await connectUser(t, edge1.wsUrl, jwtSecret, 'i-target')
  const post = (path: string, token: string | undefined, body: string) =>
    fetch(`${edge1.internalUrl}${path}`, {
      method: 'POST',
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      body,
      signal: AbortSignal.timeout(5_000),
    })
  const route = linkOps.disconnect.http!
  const body = linkOps.disconnect.encode({ userId: 'i-target', reason: 'internal test' })

  for (const [label, token] of [['no token', undefined], ['wrong token', 'w'.repeat(48)], ['an API key', apiKeys[0]]] as const) {
    const res = await post(route, token, body)
    await res.body?.cancel()
    t.ok(res.status === 401 || res.status === 403, `${label}: refused with ${res.status}`)
  }
  t.same(await client.ping(), { type: 'pong' }, 'nothing was done without the token')
  for (const path of ['/internal/deliveries', '/internal/deliver', '/internal/broadcast', '/internal/room']) {
    const res = await post(path, internalToken, '{}\n["i-target"]')
    await res.body?.cancel()
    t.equal(res.status, 404, `${path}: a router call, served on the link only`)
  }

  // Last, with the token: the call closes the socket, so the refusals above were not a wrong route.
  const ok = await post(route, internalToken, body)
  t.equal(ok.status, 200)
  t.same(await ok.json(), { closed: 1 })
  t.match(await client.closed, { code: 4500 })
})

/** Spawns a service expected to refuse its configuration; resolves with its exit code and output. */
async function badConfig(t: TestScope, script: string, env: Record<string, string>): Promise<{ code: number | null; output: string; service: ServiceProcess }> {
  const service = spawnService(t, script, env)
  const timeout = new Promise<'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), 10_000)
    void service.exited.then(() => clearTimeout(timer))
  })
  const code = await Promise.race([service.exited, timeout])
  if (code === 'timeout') throw new Error(`still running 10 s after a bad configuration:\n${service.logs().join('\n')}`)
  return { code, output: service.logs().join('\n'), service }
}

const edgeWith = (env: EnvOverrides) => edgeEnv({ redisUrl: cluster.redis.url, prefix: cluster.prefix, env })
const routerWith = (env: EnvOverrides) => routerEnv({ redisUrl: cluster.redis.url, prefix: cluster.prefix, env })

t.test('bad configuration stops a service at once, naming the variable', async (t) => {
  const cases: [string, string, Record<string, string>, string][] = [
    ['edge without EDGE_JWT_SECRET', EDGE_MAIN, edgeWith({ EDGE_JWT_SECRET: undefined }), 'EDGE_JWT_SECRET'],
    ['edge with a short EDGE_JWT_SECRET', EDGE_MAIN, edgeWith({ EDGE_JWT_SECRET: 'short' }), 'EDGE_JWT_SECRET'],
    ['edge with a short SWITCHBOARD_INTERNAL_TOKEN', EDGE_MAIN, edgeWith({ SWITCHBOARD_INTERNAL_TOKEN: 'short' }), 'SWITCHBOARD_INTERNAL_TOKEN'],
    ['edge with a non-numeric EDGE_PORT', EDGE_MAIN, edgeWith({ EDGE_PORT: 'eighty' }), 'EDGE_PORT'],
    ['router without ROUTER_API_KEYS', ROUTER_MAIN, routerWith({ ROUTER_API_KEYS: undefined }), 'ROUTER_API_KEYS'],
    ['router with a short API key', ROUTER_MAIN, routerWith({ ROUTER_API_KEYS: 'tooshort' }), 'ROUTER_API_KEYS'],
    ['router with a non-numeric LEASE_TTL_MS', ROUTER_MAIN, routerWith({ LEASE_TTL_MS: 'soon' }), 'LEASE_TTL_MS'],
  ]
  const results = await Promise.all(cases.map(([, script, env]) => badConfig(t, script, env)))
  cases.forEach(([label, , , variable], i) => {
    const { code, output, service } = results[i]!
    t.ok(code !== 0 && code !== null, `${label}: exits non-zero (${code})`)
    t.match(output, variable, `${label}: output names ${variable}`)
    t.notOk(service.logRecords().some((r) => typeof r.msg === 'string' && r.msg.endsWith('listening')), `${label}: never listened`)
  })
})

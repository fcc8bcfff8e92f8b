// Metrics, logs and request ids (docs/OPERATIONS.md): every documented metric is served with
// its documented type; one push can be followed by its request id through the router's and
// the edge's logs; no secret reaches a log line, even at debug.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { api, connectClient, connectUser, eventually, mintToken } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const debug = { LOG_LEVEL: 'debug' }
const cluster = await startCluster(t, { edges: 1, edgeEnv: debug, routerEnv: debug })
const edge = cluster.edges[0] as Edge
const secrets = testSecrets()

/** Rows of the metrics table in docs/OPERATIONS.md: name, type, service. */
const documented = readFileSync(new URL('../../docs/OPERATIONS.md', import.meta.url), 'utf8')
  .split('\n')
  .map((line) => /^\| `(\w+)` \| (counter|gauge|histogram) \| (edge|router) \|/.exec(line))
  .filter((m) => m !== null)
  .map(([, name, type, service]) => ({ name: name!, type: type!, service: service! }))

t.test('a push is followed by its request id from the router to the edge', async (t) => {
  const { client } = await connectUser(t, edge.wsUrl, secrets.jwtSecret, 'obs-ann')
  const res = await cluster.api.post('/v1/push', { to: ['obs-ann'], event: 'traced', data: 1 }, { headers: { 'x-request-id': 'trace-42.a' } })
  t.equal(res.status, 200)
  t.equal(res.headers.get('x-request-id'), 'trace-42.a', 'echoed to the backend')
  t.match(await client.nextFrame(), { type: 'push', event: 'traced' })

  const routerLine = await eventually(() => cluster.router.logRecords().find((r) => r.reqId === 'trace-42.a' && r.msg === 'push'))
  t.match(routerLine, { level: 20, delivered: 1, offline: 0, failed: 0 })
  const edgeLine = await eventually(() => edge.logRecords().find((r) => r.msg === 'internal call' && String(r.requestIds).split(',').includes('trace-42.a')))
  t.match(edgeLine, { route: 'deliveries', answer: { delivered: 1 } })
})

t.test('a request id that is not short and plain is replaced, not echoed', async (t) => {
  for (const bad of ['has space', 'x'.repeat(129), 'a,b', 'quote"d']) {
    const res = await cluster.api.post('/v1/push', { to: ['obs-nobody'], event: 'e', data: 1 }, { headers: { 'x-request-id': bad } })
    t.equal(res.status, 200)
    t.match(res.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, `${JSON.stringify(bad.slice(0, 20))} replaced by a UUID`)
  }
  const fresh = await cluster.api.get('/v1/nodes')
  t.match(fresh.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'every answer carries one')
})

t.test('every documented metric is served with its documented type', async (t) => {
  t.ok(documented.length >= 19, `${documented.length} metrics documented`)
  // Traffic that gives every labelled series a sample: a welcome, a ping, a push, a presence
  // query of each kind, a close.
  const user = await connectUser(t, edge.wsUrl, secrets.jwtSecret, 'obs-metrics')
  await user.client.ping()
  await cluster.api.post('/v1/push', { to: ['obs-metrics'], event: 'm', data: 1 })
  await cluster.api.get('/v1/presence/obs-metrics')
  await cluster.api.post('/v1/presence/query', { userIds: ['obs-metrics', 'obs-nobody'] })
  await user.client.close()
  await eventually(async () => (await cluster.api.get('/v1/presence/obs-metrics')).body?.online === false)
  // One renewal has happened (edges renew every LEASE_TTL_MS/3 = 1 s here).
  await eventually(async () => /^edge_lease_renewals_total\{result="ok"\} [1-9]/m.test((await api(edge.internalUrl).get('/metrics')).text))

  const served = { router: (await api(cluster.router.url).get('/metrics')).text, edge: (await api(edge.internalUrl).get('/metrics')).text }
  for (const { name, type, service } of documented) {
    const text = served[service as 'router' | 'edge']
    t.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${service}: ${name} is a ${type}`)
    t.match(text, new RegExp(`^${name}(_bucket|_count|_sum)?(\\{[^}]*\\})? `, 'm'), `${service}: ${name} has a sample`)
  }
  t.match(served.router, /^router_forward_seconds_count\{edge="http:\/\/127\.0\.0\.1:\d+",result="ok"\} [1-9]/m, 'forward latency per edge')
  t.match(served.router, /^router_registry_seconds_count\{op="locate",result="ok"\} [1-9]/m)
  t.match(served.router, /^router_presence_queries_total\{kind="batch"\} 1$/m)
  t.match(served.edge, /^edge_frames_sent_total\{type="pong"\} [1-9]/m)
  t.match(served.edge, /^edge_registry_seconds_count\{op="add",result="ok"\} [1-9]/m)
  t.match(served.edge, /^edge_disconnects_total\{code="1000",reason="client"\} [1-9]/m, "a client's close is the client's, by the table's labels")
  for (const text of Object.values(served)) t.match(text, /^process_cpu_seconds_total /m, 'default process metrics')
})

t.test('no secret reaches a log line, even at debug', async (t) => {
  // A refused internal call and a refused key, so the refusal paths log too.
  const token = await mintToken(secrets.jwtSecret, 'obs-secret-user')
  const client = await connectClient(edge.wsUrl, token, { t })
  t.match(await client.nextFrame(), { type: 'welcome' })
  await api(cluster.router.url, 'not-a-valid-key-0000').post('/v1/push', { to: ['x'], event: 'e', data: 1 })
  await fetch(`${edge.internalUrl}/internal/disconnect`, { method: 'POST', headers: { authorization: `Bearer ${secrets.apiKeys[0]}` }, body: 'x' })
  await eventually(() => edge.logs().some((l) => l.includes('internal call refused')))
  const logs = [...cluster.router.logs(), ...edge.logs()].join('\n')
  for (const [name, secret] of Object.entries({ jwtSecret: secrets.jwtSecret, internalToken: secrets.internalToken, apiKey0: secrets.apiKeys[0], apiKey1: secrets.apiKeys[1], clientToken: token })) {
    t.notOk(logs.includes(secret), `${name} not in the logs`)
  }
})

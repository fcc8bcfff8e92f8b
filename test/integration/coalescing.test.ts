// Concurrent pushes bound for one edge share delivery calls, and each push still gets its own
// answer and its own frame, in a real router, edge and Redis.
import t from 'tap'
import { connectUser, eventually } from '../helpers/clients.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

// Debug logs on the edge: its 'internal call' lines list the request ids each call carried.
const cluster = await startCluster(t, { edges: 1, edgeEnv: { LOG_LEVEL: 'debug' } })
const edge = cluster.edges[0] as Edge
const { jwtSecret } = testSecrets()

async function deliveryCalls(): Promise<number> {
  const text = await (await fetch(`${edge.internalUrl}/metrics`)).text()
  return Number(/^edge_deliver_requests_total (\d+)/m.exec(text)?.[1] ?? NaN)
}

t.test('200 concurrent pushes to one edge: fewer calls, every answer and frame right', async (t) => {
  const users = ['co-a', 'co-b', 'co-c', 'co-d']
  const clients = await Promise.all(users.map((u) => connectUser(t, edge.wsUrl, jwtSecret, u)))
  const before = await deliveryCalls()
  const pushes = Array.from({ length: 200 }, (_, i) => ({ id: `co-${i}`, to: [users[i % 4]!, 'co-offline'], event: 'e', data: i }))
  const answers = await Promise.all(pushes.map((p) => cluster.api.post('/v1/push', p)))
  const calls = (await deliveryCalls()) - before
  answers.forEach((res, i) => {
    if (res.status !== 200) t.fail(`push ${i}: ${res.status}`)
    else if (JSON.stringify(res.body) !== JSON.stringify({ id: `co-${i}`, delivered: [users[i % 4]], offline: ['co-offline'], failed: [] })) t.fail(`push ${i}: ${JSON.stringify(res.body)}`)
  })
  t.pass('every push answered with its own recipients')
  t.ok(calls >= 1 && calls < 200, `200 pushes took ${calls} delivery calls`)
  for (const [n, { client }] of clients.entries()) {
    const ids: string[] = []
    for (let k = 0; k < 50; k++) ids.push(String((await client.nextFrame()).id))
    t.same(ids.sort(), pushes.filter((_, i) => i % 4 === n).map((p) => p.id).sort(), `${users[n]} got exactly its 50 frames`)
  }
})

t.test('coalesced calls carry every push\'s request id to the edge, however long the ids', async (t) => {
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, 'co-long')
  // 124-character ids: 200 of them in one header would pass uWS's 4 KB header limit.
  const ids = Array.from({ length: 200 }, (_, i) => `${'r'.repeat(120)}${String(i).padStart(4, '0')}`)
  const answers = await Promise.all(ids.map((id, i) => cluster.api.post('/v1/push', { to: ['co-long'], event: 'e', data: i }, { headers: { 'x-request-id': id } })))
  const undelivered = answers.filter((a) => a.status !== 200 || a.body.delivered?.[0] !== 'co-long')
  t.same(undelivered.map((a) => a.text), [], 'every push delivered')
  // The edge writes its line before it answers, but the line reaches us through its stdout pipe,
  // which may still be in flight when the last answer arrives: wait for the lines, then compare.
  const missing = () => {
    const logged = new Set(edge.logRecords().filter((r) => r.msg === 'internal call').flatMap((r) => String(r.requestIds).split(',')))
    return ids.filter((id) => !logged.has(id))
  }
  await eventually(() => missing().length === 0).catch(() => undefined)
  t.same(missing(), [], 'every request id reached the edge log')
  for (let k = 0; k < 200; k++) await client.nextFrame()
})

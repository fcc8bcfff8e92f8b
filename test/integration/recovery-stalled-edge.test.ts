// An edge that stops answering long enough for its lease to lapse, its sockets open (SIGSTOP,
// as a partition from Redis would hold them): kept pushes to its users meanwhile are answered
// offline/failed and only kept. When it comes back, it tells each resuming client its inbox's
// head, and the SDK resumes at once: every kept push arrives exactly once, in order, with no
// further push needed to expose the gap (issue 20's defect), and no other client reconnects.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { eventually, mintToken } from '../helpers/clients.js'
import { sdkClient } from '../helpers/sdk.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const LEASE_TTL_MS = 1_000
const FORWARD_TIMEOUT_MS = 500
const { jwtSecret } = testSecrets()
const cluster = await startCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS, routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) } })
const [stalled, other] = cluster.edges as [Edge, Edge]

const client = (edge: Edge, userId: string) => sdkClient(t, { url: edge.wsUrl, getToken: () => mintToken(jwtSecret, userId) })

t.test('kept pushes sent while an edge was stalled past its lease arrive once, in order, right after it returns', async (t) => {
  const u = `stall-${randomBytes(3).toString('hex')}`
  const bystander = `calm-${randomBytes(3).toString('hex')}`
  const c = client(stalled, u)
  const calm = client(stalled, bystander)
  const elsewhere = client(other, `${bystander}-b`)
  await eventually(() => c.welcomes().length === 1 && calm.welcomes().length === 1 && elsewhere.welcomes().length === 1)
  t.same((await cluster.api.post('/v1/push', { to: [u], event: 'kept', data: 0, keep: true })).body.delivered, [u])
  await eventually(() => c.pushes.length === 1)

  stalled.kill('SIGSTOP')
  t.teardown(() => stalled.kill('SIGCONT'))
  // Until its lease lapses the edge's users are `failed` (it does not answer), then `offline`.
  await eventually(async () => (await cluster.api.get(`/v1/presence/${u}`)).body.online === false, { timeoutMs: 3 * LEASE_TTL_MS })
  for (const n of [1, 2, 3]) {
    const res = await cluster.api.post('/v1/push', { to: [u], event: 'kept', data: n, keep: true })
    t.same(res.body.kept, [u], `push ${n} is kept, not delivered`)
  }
  const resumedAt = Date.now()
  stalled.kill('SIGCONT')
  // Within one renewal of its return, plus the resume's round trips.
  await eventually(() => c.pushes.length === 4, { timeoutMs: LEASE_TTL_MS / 3 + 5_000 })
  t.comment(`the missed pushes arrived ${Date.now() - resumedAt} ms after the edge came back`)
  t.same(c.pushes.map((p) => p.data), [0, 1, 2, 3], 'each once, in order')
  t.same(c.pushes.map((p) => p.offset), [1, 2, 3, 4])
  t.equal(c.welcomes().length, 2, 'the client resumed once')
  t.equal(calm.welcomes().length, 1, 'a client with nothing missed did not reconnect')
  t.equal(elsewhere.welcomes().length, 1)
  // The router's circuit to the stalled edge opened while it did not answer: plain pushes find it closed again.
  await eventually(async () => (await cluster.api.post('/v1/push', { to: [u], event: 'probe' })).body.delivered.length === 1, { timeoutMs: 10_000 })
  const after = await cluster.api.post('/v1/push', { to: [u], event: 'kept', data: 4, keep: true })
  t.same(after.body.delivered, [u])
  const kept = () => c.pushes.filter((p) => p.event === 'kept')
  await eventually(() => kept().length === 5)
  t.same(kept().map((p) => p.data), [0, 1, 2, 3, 4])
})

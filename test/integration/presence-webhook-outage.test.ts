// A webhook receiver down for 30 s, then answering 500, then hanging, then up: every event
// arrives, in each user's order, duplicates only with the same id, and pushes keep their
// latency meanwhile (a receiver never slows pushes).
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { PresenceEvent } from '@switchboard/protocol'
import { connectUser } from '../helpers/clients.js'
import { eventsIn, startPresenceCluster } from '../helpers/presence.js'
import { testSecrets, type Edge } from '../helpers/processes.js'

const DOWN_MS = 30_000
const FAILING_MS = 5_000
const TIMEOUT_MS = 1_000
/** The retries' ceiling: once the receiver is up, the next attempt comes within it (full jitter). */
const RETRY_MAX_MS = 10_000
const { cluster, receiver } = await startPresenceCluster(t, { edges: 2, routerEnv: { PRESENCE_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS), PRESENCE_WEBHOOK_RETRY_MAX_MS: String(RETRY_MAX_MS) } })
const [edgeA, edgeB] = cluster.edges as [Edge, Edge]
const { jwtSecret } = testSecrets()

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN

t.test('receiver down, failing, hanging, then up: every event arrives in order; pushes unaffected', async (t) => {
  const tag = randomBytes(3).toString('hex')
  const pushee = await connectUser(t, edgeA.wsUrl, jwtSecret, `po-target-${tag}`)
  const latencies: { phase: string; ms: number }[] = []
  let phase = 'healthy'
  let pushing = true
  const pusher = (async () => {
    while (pushing) {
      const started = Date.now()
      const res = await cluster.api.post('/v1/push', { to: [`po-target-${tag}`], event: 'tick', data: 1 })
      if (res.status !== 200 || res.body.delivered.length !== 1) t.fail(`push failed: ${res.text}`)
      latencies.push({ phase, ms: Date.now() - started })
      await pushee.client.nextFrame()
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  /** Connects and closes users on both edges: events for the receiver. */
  let round = 0
  const churn = async () => {
    const users = Array.from({ length: 10 }, (_, i) => `po-${tag}-${i}`)
    const conns = await Promise.all(users.map((u, i) => connectUser(t, (i % 2 ? edgeA : edgeB).wsUrl, jwtSecret, u)))
    await Promise.all(conns.map((c) => c.client.close()))
    round++
    await new Promise((r) => setTimeout(r, 100)) // a steady churn, not a storm: the latencies compare phases
  }
  const healthyUntil = Date.now() + 3_000
  while (Date.now() < healthyUntil) await churn()
  await receiver.waitFor((r) => r.length > 0, 10_000)

  await receiver.stop()
  phase = 'down'
  const downUntil = Date.now() + DOWN_MS
  while (Date.now() < downUntil) await churn()
  await receiver.start()
  receiver.answerWith(() => ({ status: 500 }))
  phase = 'failing'
  const failingUntil = Date.now() + FAILING_MS
  while (Date.now() < failingUntil) await churn()
  receiver.answerWith(() => 'hang')
  phase = 'hanging'
  const hangingUntil = Date.now() + 3 * TIMEOUT_MS
  while (Date.now() < hangingUntil) await churn()
  receiver.answerWith(() => ({ status: 204 }))
  phase = 'recovered'
  await churn()

  // The feed is the reference: every event recorded for these users.
  const expected: PresenceEvent[] = []
  for (let after = '0-0'; ; ) {
    const page = await cluster.api.get(`/v1/presence/events?after=${after}&limit=1000`)
    const events = (page.body.events as PresenceEvent[]).filter((e) => e.userId.startsWith(`po-${tag}-`))
    expected.push(...events)
    if (page.body.events.length === 0) break
    after = page.body.next
  }
  t.equal(expected.length, round * 20, `${round} rounds of 10 users: ${round * 20} events recorded`)
  const acked = () => eventsIn(receiver.received.filter((b) => b.verified)).filter((e) => e.userId.startsWith(`po-${tag}-`))
  // The next attempt comes within RETRY_MAX_MS of the receiver being up; then the backlog drains.
  await receiver.waitFor(() => new Set(acked().map((e) => e.id)).size >= expected.length, 60_000)
  pushing = false
  await pusher

  const got = acked()
  const firstById = new Map<string, PresenceEvent>()
  const problems: string[] = []
  for (const e of got) {
    const seen = firstById.get(e.id)
    if (seen && JSON.stringify(seen) !== JSON.stringify(e)) problems.push(`id ${e.id} reused for another event`)
    if (!seen) firstById.set(e.id, e)
  }
  t.same(problems, [], 'a duplicate is always the same event (same id)')
  t.same([...firstById.keys()].sort(), expected.map((e) => e.id).sort(), 'every event arrived')
  const lastVer = new Map<string, number>()
  for (const e of firstById.values()) {
    if ((lastVer.get(e.userId) ?? 0) >= e.ver) problems.push(`${e.userId}: ver ${e.ver} after ${lastVer.get(e.userId)}`)
    lastVer.set(e.userId, e.ver)
  }
  t.same(problems, [], 'first arrivals are in each user\'s ver order')
  t.comment(`${got.length - firstById.size} events delivered more than once (same id), of ${got.length}`)

  for (const p of ['healthy', 'down', 'failing', 'hanging']) {
    const ms = latencies.filter((l) => l.phase === p).map((l) => l.ms)
    t.comment(`push latency while the receiver is ${p}: p50 ${quantile(ms, 0.5)} ms, p99 ${quantile(ms, 0.99)} ms, max ${Math.max(...ms)} ms over ${ms.length} pushes`)
  }
  const outage = latencies.filter((l) => l.phase !== 'healthy' && l.phase !== 'recovered').map((l) => l.ms)
  t.ok(outage.length > 100, `${outage.length} pushes during the outage`)
  // Were pushes waiting on webhook deliveries, they would take a delivery timeout each.
  t.ok(quantile(outage, 0.99) < TIMEOUT_MS, `p99 ${quantile(outage, 0.99)} ms while the receiver failed, under the ${TIMEOUT_MS} ms delivery timeout`)
})

// Missed-message recovery with real processes: kept pushes are in Redis before they are
// forwarded, so a client whose edge is SIGKILLed mid-push resumes on another edge and gets
// every kept push exactly once, in order; a position the inbox can no longer vouch for is
// answered recovered: false, never a partial replay.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { DEFAULT_INBOX } from '@switchboard/registry'
import { startBalancer } from '../helpers/balancer.js'
import { REQUEST_TIMEOUT_MS, eventually, mintToken } from '../helpers/clients.js'
import { sdkClient } from '../helpers/sdk.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const LEASE_TTL_MS = 1_500
const FORWARD_TIMEOUT_MS = 1_000
/** Above the forward timeout, as the SDK's default is: a push in flight arrives within it. */
const GAP_TIMEOUT_MS = 2 * FORWARD_TIMEOUT_MS
const { jwtSecret } = testSecrets()
const random = (min: number, max: number) => min + Math.random() * (max - min)
const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)]

const cluster = await startCluster(t, { edges: 3, leaseTtlMs: LEASE_TTL_MS, routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) } })
/** The current process of each node id. */
const edges = new Map<string, Edge>(cluster.edges.map((e) => [e.nodeId, e]))
const running = () => [...edges.values()].filter((e) => e.isRunning())
/** While closed, the balancer refuses every connection (the clients retry with backoff). */
let isGateOpen = true
const balancer = await startBalancer(t, () => (isGateOpen ? running().map((e) => e.port) : []))

/** An app's client: the SDK behind the balancer, and what it handed to the app. */
function client(t: Test, userId: string) {
  return { userId, ...sdkClient(t, { url: balancer.url, getToken: () => mintToken(jwtSecret, userId), gapTimeoutMs: GAP_TIMEOUT_MS }) }
}

const keptPush = (to: string[], data: unknown) => cluster.api.post('/v1/push', { to, event: 'kept', data, keep: true })

t.test('an edge SIGKILLed under a connected user: the push is failed and kept, and the SDK gets it on the next edge, once', async (t) => {
  const u = `rec-kill-${randomBytes(3).toString('hex')}`
  const c = client(t, u)
  await eventually(() => c.welcomes().length === 1)
  const first = await keptPush([u], 'before')
  t.same(first.body.delivered, [u])
  await eventually(() => c.pushes.length === 1)

  const victim = edges.get(c.welcomes()[0]!.nodeId)!
  isGateOpen = false // the client stays between two sockets until the pushes are sent
  t.teardown(() => void (isGateOpen = true))
  victim.kill('SIGKILL')
  await victim.exited
  // The registry still names the dead edge (its lease runs LEASE_TTL_MS): the forward fails.
  const kept = await keptPush([u], 'while dead')
  const plain = await cluster.api.post('/v1/push', { to: [u], event: 'plain', data: 'while dead' })
  t.equal(kept.status, 200)
  t.same(kept.body.delivered, [], 'not written anywhere')
  t.same(kept.body.kept, [u], 'the answer says it waits in the inbox')
  t.same(plain.body.delivered, [])
  t.notOk('kept' in plain.body, 'a plain push says nothing of an inbox')

  isGateOpen = true
  await eventually(() => c.welcomes().length === 2, { timeoutMs: 10_000 })
  await eventually(() => c.pushes.length >= 2)
  await keptPush([u], 'after') // anything replayed twice would come before this one
  await eventually(() => c.pushes.at(-1)?.data === 'after')
  t.match(c.welcomes()[1], { recovered: true }, 'resumed')
  t.not(c.welcomes()[1]!.nodeId, victim.nodeId, 'on another edge')
  t.same(c.pushes.map((p) => [p.data, p.offset]), [['before', 1], ['while dead', 2], ['after', 3]], 'the kept one, once, in order; the plain one is lost')
  edges.set(victim.nodeId, await cluster.addEdge(t, { nodeId: victim.nodeId }))
})

t.test('a position older than the inbox holds is answered recovered: false, then the stream goes on from the head', async (t) => {
  const u = `rec-trim-${randomBytes(3).toString('hex')}`
  const c = client(t, u)
  await eventually(() => c.welcomes().length === 1)
  await keptPush([u], 0)
  await eventually(() => c.pushes.length === 1)
  c.sb.close()
  await eventually(async () => (await cluster.api.get(`/v1/presence/${u}`)).body.online === false)
  // More kept pushes than an inbox holds (INBOX_MAX_LEN, default): push 2 is trimmed away.
  for (let i = 1; i <= DEFAULT_INBOX.maxLen + 1; i++) t.same((await keptPush([u], i)).body.kept, [u])
  c.sb.connect()
  await eventually(() => c.welcomes().length === 2)
  t.match(c.welcomes()[1], { recovered: false }, 'never a partial replay')
  t.equal(c.pushes.length, 1, 'nothing replayed')
  await keptPush([u], 'next')
  await eventually(() => c.pushes.length === 2)
  t.same([c.pushes[1]!.data, c.pushes[1]!.offset], ['next', DEFAULT_INBOX.maxLen + 3], 'live again, from the head')
})

t.test('1,000 kept pushes to 100 SDK clients while edges are SIGKILLed and restarted: each gets every one of its pushes once, in order', async (t) => {
  const USERS = 100
  const PUSHES = 1_000
  const users = Array.from({ length: USERS }, (_, i) => `rec-${i}-${randomBytes(2).toString('hex')}`)
  const clients = users.map((u) => client(t, u))
  await eventually(() => clients.every((c) => c.welcomes().length > 0), { timeoutMs: 20_000 })

  // Chaos: every 0.25-0.75 s one running edge (never the last) is SIGKILLed, and restarted
  // under its node id a moment later, as an orchestrator would.
  let pushing = true
  const kills: string[] = []
  const restarts: Promise<void>[] = []
  const chaos = (async () => {
    while (pushing) {
      await new Promise((r) => setTimeout(r, random(250, 750)))
      const up = running()
      const victim = up.length > 1 ? pick(up) : undefined
      if (!pushing || !victim) continue
      kills.push(victim.nodeId)
      victim.kill('SIGKILL')
      restarts.push(
        victim.exited
          .then(() => new Promise((r) => setTimeout(r, random(200, 800))))
          .then(async () => void edges.set(victim.nodeId, await cluster.addEdge(t, { nodeId: victim.nodeId }))),
      )
    }
  })()

  // The pushes: each to 2 users, spread over PUSHING_MS. A user's pushes are sent one after
  // the other (never two in flight for one user), so the order sent is the inbox's order. On
  // a slow host edges restart slowly and fewer are killed meanwhile: pushing then goes on at
  // the same pace until MIN_KILLS edges were killed (at most 3x as long).
  const PUSHING_MS = 10_000
  const MIN_KILLS = 3
  const sent = new Map<string, string[]>(users.map((u) => [u, []]))
  const busy = new Set<string>()
  let waiting = 0
  const statuses: number[] = []
  const started = Date.now()
  const inFlight: Promise<void>[] = []
  for (let n = 0; n < PUSHES || (kills.length < MIN_KILLS && n < 3 * PUSHES); n++) {
    const due = started + (n * PUSHING_MS) / PUSHES
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()))
    const to = [...new Set([pick(users)!, pick(users)!])]
    await eventually(() => !to.some((u) => busy.has(u)), { timeoutMs: REQUEST_TIMEOUT_MS, intervalMs: 2 }) // their pushes in flight are answered by then
    to.forEach((u) => busy.add(u))
    for (const u of to) sent.get(u)!.push(String(n))
    inFlight.push(
      keptPush(to, n).then((res) => {
        statuses.push(res.status)
        if (res.status === 200) waiting += res.body.kept.length
        to.forEach((u) => busy.delete(u))
      }),
    )
  }
  await Promise.all(inFlight)
  pushing = false
  await chaos
  await Promise.all(restarts)

  t.same(new Set(statuses), new Set([200]), 'every kept push was accepted: the inbox is in Redis, up all along')
  t.ok(kills.length >= MIN_KILLS, `${kills.length} edges SIGKILLed during ${inFlight.length} pushes`)
  t.ok(waiting > 0, `${waiting} recipients were between two sockets when their push came (kept, not written)`)
  await eventually(() => clients.every((c) => c.pushes.length >= sent.get(c.userId)!.length), { timeoutMs: 30_000 })
  // A moment for a duplicate, had there been one, to arrive too.
  await new Promise((r) => setTimeout(r, GAP_TIMEOUT_MS))

  let resumed = 0
  for (const c of clients) {
    const got = c.pushes.map((p) => String(p.data))
    const expected = sent.get(c.userId)!
    t.same([...got].sort(), [...expected].sort(), `${c.userId}: every push once (${expected.length})`)
    t.same(c.pushes.map((p) => p.offset), expected.map((_, i) => i + 1), `${c.userId}: in inbox order, no gap`)
    const later = c.welcomes().slice(1)
    t.ok(later.every((w) => w.recovered === true), `${c.userId}: every resume recovered (the inbox was never trimmed: at most ${Math.max(...[...sent.values()].map((s) => s.length))} of ${DEFAULT_INBOX.maxLen} per user)`)
    resumed += later.length
  }
  t.ok(resumed >= 10, `${resumed} resumes across the clients`)
})

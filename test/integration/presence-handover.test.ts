// Presence delivery while routers join and leave: real routers (processes), an edge, Redis, a
// webhook receiver and the pull feed. Users close their connections one after another while a
// second router joins, while one of two stops with SIGTERM, and while one is SIGKILLed; each
// offline must reach the webhook and the feed within the bound the README gives for that
// change, exactly once, and none may be missing.
import { randomBytes } from 'node:crypto'
import tap, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { PresenceEvent } from '@switchboard/protocol'
import { RedisRegistry } from '@switchboard/registry'
import { CLAIM_TTL_MS, handoverBoundMs } from '../../apps/router/src/presence/relay.js'
import { connectUser, eventually, type ConnectedUser } from '../helpers/clients.js'
import { eventsIn, startPresenceCluster } from '../helpers/presence.js'
import { testSecrets, type Router } from '../helpers/processes.js'

const POLL_MS = 50
const GRACE_MS = 0
/** Users closing during each change, one every CLOSE_EVERY_MS, so some fall in every step of it. */
const USERS = 40
const CLOSE_EVERY_MS = 75
// What the bounds leave for the processes themselves on a shared 2-core runner: a router's start
// (module loading), a Redis round trip per step, a webhook POST. Measured: see docs/FAILURES.md.
const RUNNER_MS = 1_000

const t = tap
const { cluster, receiver } = await startPresenceCluster(t, { edges: 1, leaseTtlMs: 1_000, pollMs: POLL_MS, graceMs: GRACE_MS })
const [edge] = cluster.edges
const { jwtSecret } = testSecrets()
const redis = new Redis(cluster.redis.url)
t.teardown(() => redis.disconnect())
const registry = new RedisRegistry(redis, { prefix: cluster.prefix })
t.teardown(() => registry.close())

/** Every event of the pull feed with the local time it was read, by a long poll on the first router (never stopped). */
const feed: { event: PresenceEvent; at: number }[] = []
let isReading = true
t.teardown(() => {
  isReading = false
})
void (async () => {
  let after: string | undefined
  while (isReading) {
    const res = await cluster.api.get(`/v1/presence/events?limit=1000&wait=1${after ? `&after=${after}` : ''}`).catch(() => undefined)
    if (res?.status !== 200) continue
    const at = Date.now()
    for (const event of res.body.events as PresenceEvent[]) feed.push({ event, at })
    after = res.body.next as string
  }
})()

/** Samples who owns the partitions (live claims in Redis) every 10 ms: the longest stretch with some unowned, and the fewest owned. */
function sampleOwnership(t: Test) {
  let isSampling = true
  let unownedSince: number | undefined
  const seen = { longestUnownedMs: 0, fewestOwned: registry.partitions }
  const done = (async () => {
    while (isSampling) {
      const workers = await registry.workers()
      const owned = workers.reduce((sum, w) => sum + w.partitions, 0)
      const now = Date.now()
      seen.fewestOwned = Math.min(seen.fewestOwned, owned)
      if (owned < registry.partitions) unownedSince ??= now
      else unownedSince = undefined
      if (unownedSince !== undefined) seen.longestUnownedMs = Math.max(seen.longestUnownedMs, now - unownedSince)
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  const stop = async () => {
    isSampling = false
    await done
    return seen
  }
  t.teardown(stop)
  return stop
}

async function connectAll(t: Test, tag: string): Promise<{ users: string[]; clients: ConnectedUser[] }> {
  const users = Array.from({ length: USERS }, (_, i) => `ho-${tag}-${randomBytes(2).toString('hex')}-${i}`)
  const clients = await Promise.all(users.map((u) => connectUser(t, edge!.wsUrl, jwtSecret, u)))
  // Quiescent before the change: every online delivered to both sinks.
  await receiver.waitFor(() => users.every((u) => eventsIn(receiver.received).some((e) => e.userId === u)), 10_000)
  await eventually(() => users.every((u) => feed.some((f) => f.event.userId === u)), { timeoutMs: 10_000 })
  return { users, clients }
}

interface Delivered {
  /** ms from each offline's transition (its ts) to its arrival at the webhook, and on the feed. */
  hookMs: number[]
  feedMs: number[]
}

/**
 * Closes the users' connections one every CLOSE_EVERY_MS while `change` runs, waits for every
 * offline on both sinks, and checks each user got exactly its online and its offline, once.
 */
async function closeDuring(t: Test, users: readonly string[], clients: readonly ConnectedUser[], change: () => Promise<unknown>): Promise<Delivered> {
  const changing = change()
  for (const { client } of clients) {
    await client.close()
    // Spread on purpose: the closes must fall in every step of the change.
    await new Promise((r) => setTimeout(r, CLOSE_EVERY_MS))
  }
  await changing
  const set = new Set(users)
  const isDone = (events: readonly PresenceEvent[]) => users.every((u) => events.some((e) => e.userId === u && e.type === 'user.offline'))
  await receiver.waitFor((batches) => isDone(eventsIn(batches)), 3 * CLAIM_TTL_MS)
  await eventually(() => isDone(feed.map((f) => f.event)), { timeoutMs: 3 * CLAIM_TTL_MS })
  // One more delivery round, so a duplicate resent late would be seen too.
  await new Promise((r) => setTimeout(r, 4 * POLL_MS + 500))
  const hook = receiver.received.flatMap((b) => (b.events as PresenceEvent[]).map((event) => ({ event, at: b.at }))).filter((d) => set.has(d.event.userId))
  const fed = feed.filter((d) => set.has(d.event.userId))
  for (const [name, seen] of [['webhook', hook], ['feed', fed]] as const) {
    const ids = seen.map((d) => d.event.id)
    const twice = ids.filter((id, i) => ids.indexOf(id) !== i)
    t.same(twice, [], `${name}: no event twice`)
    if (twice.length > 0) t.comment(JSON.stringify(seen.filter((d) => twice.includes(d.event.id)).map((d) => [d.event.id, d.event.type, d.at])))
    const wrong = users.filter((u) => seen.filter((d) => d.event.userId === u).map((d) => `${d.event.type} ${d.event.cause}`).join() !== 'user.online connect,user.offline close')
    t.same(wrong, [], `${name}: every user exactly its online and its offline`)
  }
  const delays = (seen: typeof hook) => seen.filter((d) => d.event.type === 'user.offline').map((d) => d.at - d.event.ts).sort((a, b) => a - b)
  return { hookMs: delays(hook), feedMs: delays(fed) }
}

function report(t: Test, what: string, d: Delivered, boundMs: number, ownership: { longestUnownedMs: number; fewestOwned: number }) {
  const worst = Math.max(d.hookMs.at(-1)!, d.feedMs.at(-1)!)
  const median = (xs: number[]) => xs[Math.floor(xs.length / 2)]
  t.comment(`${what}: offline delay webhook median ${median(d.hookMs)} ms, max ${d.hookMs.at(-1)} ms; feed median ${median(d.feedMs)} ms, max ${d.feedMs.at(-1)} ms; partitions unowned at most ${ownership.longestUnownedMs} ms in a row, fewest owned ${ownership.fewestOwned}; bound ${boundMs} ms`)
  t.ok(worst <= boundMs, `${what}: every offline delivered within ${boundMs} ms (worst ${worst} ms)`)
}

let second: Router | undefined

t.test('a second router joins: no offline waits for the partitions to move', async (t) => {
  const { users, clients } = await connectAll(t, 'join')
  const stop = sampleOwnership(t)
  const d = await closeDuring(t, users, clients, async () => {
    second = await cluster.addRouter(tap) // it lives on for the next test
  })
  // The join is over once both routers own their half.
  await eventually(async () => (await registry.workers()).every((w) => w.partitions === registry.partitions / 2), { timeoutMs: 3 * CLAIM_TTL_MS })
  const ownership = await stop()
  report(t, 'join', d, GRACE_MS + handoverBoundMs(POLL_MS, POLL_MS) + RUNNER_MS, ownership)
})

t.test('one of two routers stops (SIGTERM): its partitions go on at once', async (t) => {
  t.ok(second, 'the second router from the join')
  const { users, clients } = await connectAll(t, 'term')
  const stop = sampleOwnership(t)
  const d = await closeDuring(t, users, clients, async () => {
    second!.kill('SIGTERM')
    await second!.exited
  })
  const ownership = await stop()
  report(t, 'SIGTERM', d, GRACE_MS + handoverBoundMs(POLL_MS, POLL_MS) + RUNNER_MS, ownership)
  t.same((await registry.workers()).map((w) => w.partitions), [registry.partitions], 'the remaining router owns every partition')
})

t.test('one of two routers is SIGKILLed: its partitions wait out their claim', async (t) => {
  const third = await cluster.addRouter(tap)
  await eventually(async () => {
    const workers = await registry.workers()
    return workers.length === 2 && workers.every((w) => w.partitions === registry.partitions / 2)
  }, { timeoutMs: 3 * CLAIM_TTL_MS })
  const { users, clients } = await connectAll(t, 'kill')
  const stop = sampleOwnership(t)
  const d = await closeDuring(t, users, clients, async () => third.kill('SIGKILL'))
  const ownership = await stop()
  // The dead router's claims lapse CLAIM_TTL_MS after its last renewal; the survivor takes them at its next turn (a fifth of it), then pumps and batches.
  report(t, 'SIGKILL', d, GRACE_MS + CLAIM_TTL_MS + CLAIM_TTL_MS / 5 + 2 * POLL_MS + POLL_MS + RUNNER_MS, ownership)
})

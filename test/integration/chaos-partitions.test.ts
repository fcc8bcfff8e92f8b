// Chaos with network faults: Redis, two routers and three edges each in a Linux network
// namespace of their own (test/helpers/netns.ts), SDK clients behind a balancer in the root
// namespace, and for CHAOS_MS an action every 1-2.5 s among: an edge <-> Redis cut (both ways,
// or one way either direction), a router <-> edge cut, each lasting 0.5-2 leases then healed
// (faults overlap), an edge SIGKILLed and restarted in its host under its node id; and once a
// router <-> Redis cut. Pushes all along, plain ones and kept ones. At quiescence (every link
// healed, every remaining client connected again) the chaos test's invariants must hold
// (test/helpers/chaos.ts), and every kept push must have reached its user's SDK exactly once
// and in order, through the SDK's resume. Every bound is derived from the configured values.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Reconnect } from '@switchboard/client'
import { LINK_IDLE_TIMEOUT_S } from '@switchboard/protocol'
import { startBalancer } from '../helpers/balancer.js'
import { ChaosClient, checkQuiescence, type PushAnswer } from '../helpers/chaos.js'
import { eventually, mintToken, type Api } from '../helpers/clients.js'
import { netnsSkip, type Heal } from '../helpers/netns.js'
import { startNetCluster } from '../helpers/netns-cluster.js'
import { testSecrets } from '../helpers/processes.js'
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js'
import { BACK_BOUND_MS, FORWARD_TIMEOUT_MS, LEASE_TTL_MS, MARGIN_MS, REDIS_COMMAND_TIMEOUT_MS, RENEWAL_MS } from '../helpers/partitions.js'

const skip = netnsSkip()
const { jwtSecret } = testSecrets()
const USERS = 150
const isKeptUser = (i: number) => i % 5 === 0
const isQuitter = (i: number) => i % 10 === 1
const CHAOS_MS = 20_000
/** Presence partitions of a router cut from Redis pass to the other once its claims lapse (apps/router/src/presence/relay.ts), at its next turn. */
const CLAIM_TTL_MS = 5_000
const CLAIM_TURN_MS = 1_000
/** Above the forward timeout, as the SDK's default is: a push in flight arrives within it (recovery.test.ts). */
const GAP_TIMEOUT_MS = 2 * FORWARD_TIMEOUT_MS
/** An edge sees a router link lost in a cut once it has been silent past its idle timeout (uWS checks every 4 s). */
const LINK_IDLE_MS = (LINK_IDLE_TIMEOUT_S + 4) * 1_000
/**
 * Presence, nodes and presence events settle within: a killed edge's entries lapse (a lease and
 * a reaper tick), a cut edge re-registers (BACK_BOUND_MS), and events of a router's partitions
 * that changed hands are delivered (claim TTL and a turn).
 */
const SETTLE_MS = LEASE_TTL_MS + RENEWAL_MS + BACK_BOUND_MS + CLAIM_TTL_MS + CLAIM_TURN_MS
const random = (min: number, max: number) => min + Math.random() * (max - min)
const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)]
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('chaos with network faults: at quiescence presence, nodes and events equal the open sockets, delivered pushes were received, kept pushes arrived once in order', { skip }, async (t) => {
  const secret = `whsec_${randomBytes(32).toString('base64')}`
  const redisEnv = { REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS), PRESENCE_OFFLINE_GRACE_MS: '0' }
  let receiver: WebhookReceiver | undefined
  const c = await startNetCluster(t, {
    edges: 3,
    routers: 2,
    leaseTtlMs: LEASE_TTL_MS,
    edgeEnv: redisEnv,
    // The routers post presence events to a receiver in the test process, on the bridge.
    routerEnv: async (net) => {
      receiver = await startReceiver(t, { secret, host: net.root.address })
      return {
        ...redisEnv,
        ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS),
        PRESENCE_WEBHOOK_URL: receiver.url,
        PRESENCE_WEBHOOK_SECRET: secret,
        PRESENCE_WEBHOOK_BATCH_MS: '50',
        PRESENCE_POLL_MS: '50',
      }
    },
  })
  const slots = c.edges.map(({ host, edge }) => ({ host, edge }))
  const running = () => slots.filter((s) => s.edge.isRunning())
  const balancer = await startBalancer(t, () => running().map((s) => ({ host: s.host.address, port: s.edge.port })))

  const users = Array.from({ length: USERS }, (_, i) => `cp-${i}`)
  const clients = await Promise.all(users.map(async (u) => new ChaosClient(u, balancer.url, await mintToken(jwtSecret, u), { storage: null, gapTimeoutMs: GAP_TIMEOUT_MS })))
  t.teardown(() => clients.forEach((cl) => cl.quit()))
  clients.forEach((cl) => cl.connect())
  await eventually(() => clients.every((cl) => cl.isOpen), { timeoutMs: 10_000 })
  const keptUsers = users.filter((_, i) => isKeptUser(i))
  const plainUsers = users.filter((_, i) => !isKeptUser(i))
  const quitters = clients.filter((_, i) => isQuitter(i))

  // Pushes all along through either router: plain ones to two users, kept ones to one user at
  // a time (one in flight per user, so the order sent is the inbox's order).
  const answers: PushAnswer[] = []
  const failures: { router: number; at: number; what: string }[] = []
  /** Per kept user, the kept pushes in the order sent: confirmed (200, in the inbox) or not (503: refused, or in the inbox with its answer lost). */
  const keptSent = new Map(keptUsers.map((u) => [u, [] as { data: number; isConfirmed: boolean; at: number; answer: string; isFailed: boolean }[]]))
  let pushing = true
  let sent = 0
  const post = async (body: Record<string, unknown>): Promise<{ router: number; res: Awaited<ReturnType<Api['post']>> | undefined; at: number }> => {
    const router = Math.floor(Math.random() * c.routers.length)
    const at = Date.now()
    const res = await c.routers[router]!.api.post('/v1/push', body).catch(() => undefined)
    if (res?.status === 200) answers.push({ id: res.body.id, delivered: res.body.delivered, answeredAt: Date.now() })
    else failures.push({ router, at, what: res ? `${res.status} ${res.body?.error?.code}` : 'no answer' })
    return { router, res, at }
  }
  const plainPublisher = (async () => {
    while (pushing) {
      await post({ to: [pick(plainUsers)!, pick(plainUsers)!], event: 'chaos', data: ++sent })
      await sleep(30)
    }
  })()
  const keptPublisher = (async () => {
    while (pushing) {
      const to = pick(keptUsers)!
      const data = ++sent
      const { router, res, at } = await post({ to: [to], event: 'kept', data, keep: true })
      const outcome = res?.status !== 200 ? '' : res.body.delivered.length ? ' delivered' : res.body.failed.length ? ' failed, kept' : ' offline, kept'
      const answer = `r${router + 1} ${res?.status ?? 'no answer'}${outcome}`
      keptSent.get(to)!.push({ data, isConfirmed: res?.status === 200, at, answer, isFailed: res?.status === 200 && res.body.failed.length > 0 })
      await sleep(30)
    }
  })()

  // Chaos. A cut lasts 0.5-2 leases (a fault's length, not a condition to await) and is healed
  // in the background while the next actions go on.
  const startedAt = Date.now()
  const actions: string[] = []
  const heals: Promise<void>[] = []
  const restarts: Promise<void>[] = []
  const cutFor = async (what: string, cut: () => Promise<Heal>, onHeal?: () => void) => {
    const ms = Math.round(random(0.5, 2) * LEASE_TTL_MS)
    const heal = await cut()
    const at = Date.now()
    actions.push(`${Math.round((at - startedAt) / 100) / 10} s: ${what} ${ms} ms`)
    heals.push(sleep(ms).then(heal).then(() => onHeal?.()))
  }
  /** The router cut from Redis, from the cut until it answers 200 again after the heal: its 503s are expected then. */
  const redisCuts: { router: number; from: number; healedAt: number | undefined }[] = []
  const deadline = startedAt + CHAOS_MS
  while (Date.now() < deadline) {
    await sleep(random(1_000, 2_500))
    quitters.pop()?.quit()
    const slot = pick(slots)!
    const name = (s: (typeof slots)[number]) => s.host.name
    if (redisCuts.length === 0 && Date.now() > deadline - CHAOS_MS / 2) {
      const router = Math.floor(Math.random() * c.routers.length)
      const window = { router, from: Date.now(), healedAt: undefined as number | undefined }
      redisCuts.push(window)
      await cutFor(`router r${router + 1} <-> Redis`, () => c.net.cut(c.routers[router]!.host, c.redisHost), () => void (window.healedAt = Date.now()))
      continue
    }
    const action = pick(['edge-redis', 'edge-redis-requests', 'edge-redis-answers', 'router-edge', 'kill'] as const)!
    if (action === 'edge-redis') await cutFor(`${name(slot)} <-> Redis`, () => c.net.cut(slot.host, c.redisHost))
    else if (action === 'edge-redis-requests') await cutFor(`${name(slot)} -> Redis (requests lost)`, () => c.net.cutOneWay(slot.host, c.redisHost))
    else if (action === 'edge-redis-answers') await cutFor(`Redis -> ${name(slot)} (answers lost)`, () => c.net.cutOneWay(c.redisHost, slot.host))
    else if (action === 'router-edge') {
      const router = pick(c.routers)!
      await cutFor(`${router.host.name} <-> ${name(slot)}`, () => c.net.cut(router.host, slot.host))
    } else {
      const victim = pick(running().length > 1 ? running() : [])
      if (!victim) continue
      actions.push(`${Math.round((Date.now() - startedAt) / 100) / 10} s: SIGKILL ${name(victim)}`)
      const { nodeId } = victim.edge
      victim.edge.kill('SIGKILL')
      // Restarted in its host under its node id after a moment, as an orchestrator would; in
      // the background: an edge cut from Redis meanwhile starts only once healed.
      restarts.push(
        victim.edge.exited
          .then(() => sleep(random(0, 800)))
          .then(async () => void (victim.edge = await c.addEdge(t, victim.host, { nodeId }))),
      )
    }
  }
  quitters.forEach((q) => q.quit())
  await Promise.all(heals)
  await Promise.all(restarts)
  pushing = false
  await Promise.all([plainPublisher, keptPublisher])
  const chaosMs = Date.now() - startedAt
  t.comment(`chaos (${chaosMs} ms): ${actions.join('; ')}`)
  t.ok(redisCuts.length === 1 && actions.length >= 8, `${actions.length} actions, a router <-> Redis cut among them`)
  t.ok(slots.every((s) => s.edge.isRunning()) && c.routers.every((r) => r.router.isRunning()), 'every edge running again, no router crashed')

  // Only a router cut from Redis may refuse a push (503 registry_unavailable), from its cut
  // until it answered 200 again after the heal.
  const [redisCut] = redisCuts as [(typeof redisCuts)[number]]
  const unexpected = failures.filter((f) => !(f.what === '503 registry_unavailable' && f.router === redisCut.router && f.at >= redisCut.from))
  t.ok(answers.length > 200, `${answers.length} pushes answered 200, ${failures.length} refused (${[...new Set(failures.map((f) => f.what))].join(', ') || '-'})`)
  t.same(unexpected.map((f) => `r${f.router + 1} ${f.at - startedAt} ms: ${f.what}`), [], 'the only refusals are 503 registry_unavailable from the router cut from Redis')
  if (failures.length > 0) t.comment(`router <-> Redis cut: the last 503 sent ${Math.max(...failures.map((f) => f.at)) - redisCut.healedAt!} ms from the heal`)

  // Quiescence: every remaining client is connected again. A client that failed often (an edge
  // killed under it, or refusing while cut from Redis) may wait out a backoff cap first.
  const stayers = clients.filter((cl) => !cl.hasQuit)
  const quietFrom = Date.now()
  await eventually(() => stayers.every((cl) => cl.isOpen), { timeoutMs: Reconnect.capMs + BACK_BOUND_MS })
  t.comment(`every client connected again ${Date.now() - quietFrom} ms after the last heal`)

  const concerned = await checkQuiescence(t, {
    api: c.routers[0]!.api,
    clients,
    nodeIds: slots.map((s) => s.edge.nodeId),
    answers,
    receiver: receiver!,
    settleMs: SETTLE_MS,
    inFlightMs: GAP_TIMEOUT_MS,
  })

  // Kept pushes: each user got every one answered 200, none twice, in the order sent, at
  // consecutive inbox offsets; a kept push sent while its user's edge was cut from Redis arrives
  // once the edge is back and the SDK resumes. One answered 503 is "refused and sent nowhere"
  // (docs/FAILURES.md, "Redis down, for kept pushes"): it must never arrive.
  const keptReceived = (u: string) => clients.find((cl) => cl.userId === u)!.pushes.filter((p) => p.event === 'kept')
  const missing = () =>
    keptUsers.flatMap((u) => keptSent.get(u)!.filter((s) => s.isConfirmed && !keptReceived(u).some((p) => p.data === s.data)).map((s) => `${u}: ${s.data} (${s.answer})`))
  // Past the heals and the reconnects: an edge back (BACK_BOUND_MS), then a gap's hold and a
  // resume. A kept push answered `failed` (its edge unreachable from the router, the socket open)
  // waits for the edge to see its router link lost (LINK_IDLE_MS after its last frame: the
  // router's reset was lost in the cut), when it tells its resuming clients their inbox heads.
  const waitMs = Math.max(BACK_BOUND_MS + GAP_TIMEOUT_MS, LINK_IDLE_MS) + Reconnect.baseMs + MARGIN_MS
  await eventually(() => missing().length === 0, { timeoutMs: waitMs }).catch(() => undefined)
  const confirmedCount = [...keptSent.values()].flat().filter((s) => s.isConfirmed).length
  t.same(missing(), [], `every kept push answered 200 arrived (${confirmedCount} to ${keptUsers.length} users)`)
  const disorder = keptUsers.flatMap((u) => {
    const got = keptReceived(u)
    const order = keptSent.get(u)!.filter((s) => s.isConfirmed).map((s) => s.data)
    const positions = got.map((p) => order.indexOf(p.data as number)).filter((pos) => pos >= 0)
    const isInOrder = positions.every((pos, i) => i === 0 || pos > positions[i - 1]!)
    const isOnce = new Set(got.map((p) => p.id)).size === got.length
    const hasNoGap = got.every((p, i) => p.offset === i + 1)
    return isInOrder && isOnce && hasNoGap ? [] : [`${u}: sent ${JSON.stringify(order)}, received ${JSON.stringify(got.map((p) => [p.data, p.offset]))}`]
  })
  t.same(disorder, [], 'every kept push received once, in the order sent, at consecutive inbox offsets')
  const refusedButArrived = keptUsers.flatMap((u) => keptSent.get(u)!.filter((s) => !s.isConfirmed && keptReceived(u).some((p) => p.data === s.data)).map((s) => `${u}: ${s.data} (${s.answer}, ${s.at - startedAt} ms)`))
  t.same(refusedButArrived, [], 'no kept push answered 503 reached its user')
  // A failure's report: what each client concerned went through, from the chaos's start.
  for (const line of [...missing(), ...disorder, ...refusedButArrived]) concerned.add(line.split(':')[0]!)
  for (const u of concerned) {
    const cl = clients.find((x) => x.userId === u)!
    const sentLines = (keptSent.get(u) ?? []).map((s) => `${s.at - startedAt} ms: sent ${s.data} -> ${s.answer}`)
    const seen = cl.history.map((h) => `${h.at - startedAt} ms: ${h.push ? `push ${JSON.stringify(h.push.data)} offset ${h.push.offset}` : JSON.stringify(h.state)}`)
    const events = receiver!.received.flatMap((b) => b.events as { userId: string; type: string; cause: string; ts: number; ver: number }[]).filter((e) => e.userId === u)
    const eventLines = events.map((e) => `${e.ts - startedAt} ms: event ${e.type} ${e.cause} ver ${e.ver}`)
    t.comment(`${u}:\n${[...sentLines, ...seen, ...eventLines].sort((a, b) => parseInt(a) - parseInt(b)).join('\n')}`)
  }
  t.comment(`the chaos started at ${startedAt} (ms epoch, for the services' logs)`)
})

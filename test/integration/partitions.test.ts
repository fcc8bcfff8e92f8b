// Network partitions, made for real: Redis, routers and edges each in a Linux network
// namespace of their own (test/helpers/netns.ts), links cut with iptables DROP rules (TCP
// retransmits what was dropped once healed, as across a real partition), a client's link
// pulled without a FIN. Every bound is derived from the configured values.
import t from 'tap'
import { SwitchboardBackend, type SwitchboardApiError } from '@switchboard/backend'
import { connectUser, eventually, type Client, type Frame } from '../helpers/clients.js'
import { netnsSkip } from '../helpers/netns.js'
import { startNetCluster, startSdkClient } from '../helpers/netns-cluster.js'
import { testSecrets } from '../helpers/processes.js'

const skip = netnsSkip()
const { jwtSecret, apiKeys } = testSecrets()
const LEASE_TTL_MS = 2_000
const FORWARD_TIMEOUT_MS = 1_000
const REDIS_COMMAND_TIMEOUT_MS = 500
// Scheduling on 2 shared cores, process to process: what a bound may be late by.
const MARGIN_MS = 500

/** The ids of every push frame `client` has received so far (waits `ping` as a barrier: nothing queued before it is left). */
async function pushIds(client: Client): Promise<string[]> {
  const ids: string[] = []
  for (;;) {
    const frame: Frame = await client.ping()
    if (frame.type === 'pong') return ids
    if (frame.type === 'push') ids.push(String(frame.id))
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now()
  const value = await fn()
  return { value, ms: Date.now() - started }
}

const countOf = (ids: readonly string[]) => ids.reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>())

t.test('router <-> one edge cut: its users failed within the forward timeout, the circuit opens, the others unaffected; healed without a restart', { skip }, async (t) => {
  const c = await startNetCluster(t, { edges: 2, leaseTtlMs: LEASE_TTL_MS, routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) } })
  const [{ host: routerHost, api }] = c.routers as [(typeof c.routers)[0]]
  const [cutEdge, otherEdge] = c.edges as [(typeof c.edges)[0], (typeof c.edges)[0]]
  const a = await connectUser(t, cutEdge.edge.wsUrl, jwtSecret, 'pa-a')
  const b = await connectUser(t, otherEdge.edge.wsUrl, jwtSecret, 'pa-b')
  const push = (id: string) => timed(() => api.post('/v1/push', { to: ['pa-a', 'pa-b'], event: 'e', id }))
  await eventually(async () => (await push('warm')).value.body.delivered?.length === 2, { timeoutMs: LEASE_TTL_MS * 2 })

  await c.net.cut(routerHost, cutEdge.host)
  const first = await push('during-1')
  t.same([first.value.body.failed, first.value.body.delivered], [['pa-a'], ['pa-b']], 'the cut edge\'s user failed, the other delivered')
  t.ok(first.ms <= FORWARD_TIMEOUT_MS + MARGIN_MS, `answered in ${first.ms} ms (bound: forward timeout ${FORWARD_TIMEOUT_MS} + ${MARGIN_MS} ms)`)
  t.ok(first.ms >= FORWARD_TIMEOUT_MS - 50, `the link was held open until the timeout (${first.ms} ms), not refused`)
  // The timed-out link trips the circuit: the next pushes skip that edge at once.
  const skipped = await push('during-2')
  t.same([skipped.value.body.failed, skipped.value.body.delivered], [['pa-a'], ['pa-b']])
  t.ok(skipped.ms < FORWARD_TIMEOUT_MS / 4, `circuit open: answered in ${skipped.ms} ms (bound ${FORWARD_TIMEOUT_MS / 4} ms)`)
  t.comment(`router <-> edge cut: first push ${first.ms} ms, next (circuit open) ${skipped.ms} ms`)

  await c.net.heal()
  const healedAt = Date.now()
  // The circuit's cooldown is at most 5 s (Circuits in apps/router/src/edge-link.ts); then a probe reconnects.
  const CIRCUIT_MAX_COOLDOWN_MS = 5_000
  const back = await eventually(async () => {
    const res = await push(`after-${Date.now()}`)
    return res.value.body.delivered?.length === 2 && res.value.body
  }, { timeoutMs: CIRCUIT_MAX_COOLDOWN_MS + FORWARD_TIMEOUT_MS + MARGIN_MS, intervalMs: 100 })
  const healMs = Date.now() - healedAt
  t.comment(`pushes to the cut edge delivered again ${healMs} ms after the heal`)
  t.ok(cutEdge.edge.isRunning() && otherEdge.edge.isRunning() && c.routers[0]!.router.isRunning(), 'no restart, no crash')

  // Quiescence: b got every push once; a got the push after the heal once, and no push twice
  // (one reported failed may still arrive late: its bytes were retransmitted after the heal).
  const aIds = countOf(await pushIds(a.client))
  const bIds = countOf(await pushIds(b.client))
  t.equal(aIds.get(back.id), 1, 'the cut edge\'s user got the push after the heal')
  t.ok([...aIds.values(), ...bIds.values()].every((n) => n === 1), 'no push received twice')
  for (const id of ['warm', 'during-1', 'during-2', back.id]) t.equal(bIds.get(id), 1, `the other edge's user got ${id}`)
})

// A slow, lossy Redis, made for real: every Redis link of two edges and a router goes through
// a proxy holding Redis's answers 200 ± 20 ms (test/helpers/tcp-proxy.ts: this kernel has
// no netem) and through 2 % random loss each way on the Redis host (iptables statistic), for
// SLOW_MS. Pushes must still be delivered, idempotent ones once, and no lease lost.
import t from 'tap'
import { connectUser, eventually } from '../helpers/clients.js'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { netnsSkip } from '../helpers/netns.js'
import { startNetCluster } from '../helpers/netns-cluster.js'
import { pushIds } from '../helpers/partitions.js'
import { testSecrets } from '../helpers/processes.js'

const skip = netnsSkip()
const { jwtSecret } = testSecrets()
// The issue asks for 60 s; 20 s keeps this file within CI's time on 2 shared cores and still
// spans 20 renewals per edge and several hundred pushes (each a Redis round trip or three).
const SLOW_MS = 20_000
const DELAY_MS = 200
const JITTER_MS = 20
const LOSS = 0.02
const LEASE_TTL_MS = 3_000 // renewed every second: 20 renewals through the fault
// Each store call is bounded from its start, and may wait for the pipeline ahead of it on the
// connection: at least two round trips of 200 ms and a retransmission (README: raise the default
// 1 s with a Redis this far away).
const REDIS_COMMAND_TIMEOUT_MS = 2_000
const PUBLISHERS = 4

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

t.test(`${DELAY_MS} ± ${JITTER_MS} ms and ${LOSS * 100} % loss on every Redis link for ${SLOW_MS / 1000} s: pushes delivered, idempotent ones once, no lease lost`, { skip }, async (t) => {
  let proxy: TcpProxy | undefined
  const env = { REDIS_COMMAND_TIMEOUT_MS: String(REDIS_COMMAND_TIMEOUT_MS) }
  const c = await startNetCluster(t, {
    edges: 2,
    leaseTtlMs: LEASE_TTL_MS,
    edgeEnv: env,
    routerEnv: env,
    redisUrl: async (redis, net) => {
      proxy = await startTcpProxy(t, net.root.address, { host: new URL(redis.url).hostname, port: redis.port })
      return `redis://${proxy.address}:${proxy.port}`
    },
  })
  const [{ api }] = c.routers as [(typeof c.routers)[0]]
  const users = ['pg-0', 'pg-1']
  const clients = await Promise.all(users.map(async (u, i) => (await connectUser(t, c.edges[i]!.edge.wsUrl, jwtSecret, u)).client))
  await eventually(async () => (await api.post('/v1/presence/query', { userIds: users })).body.online?.length === 2, { timeoutMs: LEASE_TTL_MS * 2 })

  proxy!.setDelay(DELAY_MS, JITTER_MS)
  await c.net.loss(c.redisHost, LOSS)
  const until = Date.now() + SLOW_MS
  const latencies: number[] = []
  const plainLatencies: number[] = []
  const bad: string[] = []
  const sent: string[] = []
  let replays = 0
  await Promise.all(
    Array.from({ length: PUBLISHERS }, async (_, p) => {
      for (let i = 0; Date.now() < until; i++) {
        const id = `pg-${p}-${i}`
        const isKeyed = i % 2 === 0
        const opts = isKeyed ? { headers: { 'idempotency-key': id } } : {}
        const started = Date.now()
        const res = await api.post('/v1/push', { to: users, event: 'e', id }, opts)
        latencies.push(Date.now() - started)
        if (!isKeyed) plainLatencies.push(Date.now() - started)
        sent.push(id)
        if (res.status !== 200 || res.body.delivered?.length !== 2) bad.push(`${id}: ${res.status} ${JSON.stringify(res.body)}`)
        if (!isKeyed) continue
        const again = await api.post('/v1/push', { to: users, event: 'e', id }, opts)
        if (again.status === 200 && again.headers.get('idempotent-replayed') === 'true') replays++
        else bad.push(`${id} again: ${again.status} ${again.headers.get('idempotent-replayed')} ${JSON.stringify(again.body)}`)
      }
    }),
  )
  await c.net.heal()
  proxy!.setDelay(0, 0)

  const sorted = [...latencies].sort((a, b) => a - b)
  t.comment(`slow Redis (${DELAY_MS} ± ${JITTER_MS} ms on its answers, ${LOSS * 100} % loss each way, ${SLOW_MS / 1000} s): ${latencies.length} pushes, p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, max ${sorted.at(-1)} ms; ${replays} idempotent repeats replayed`)
  const plain = [...plainLatencies].sort((a, b) => a - b)
  t.comment(`of which without an Idempotency-Key: ${plain.length}, p50 ${percentile(plain, 50)} ms, p99 ${percentile(plain, 99)} ms`)
  t.same(bad, [], 'every push answered 200 and delivered to both users; every idempotent repeat replayed')
  t.ok(replays > 0)
  for (const [i, client] of clients.entries()) {
    const ids = await pushIds(client)
    const counts = ids.reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>())
    t.ok(sent.every((id) => counts.get(id) === 1), `${users[i]} received each of the ${sent.length} pushes exactly once (${ids.length} frames)`)
  }
  const leaseLines = c.edges.flatMap((e) => e.edge.logRecords().filter((r) => /lease renewal failed|lease lost|rejoining/.test(String(r.msg))).map((r) => `${e.edge.nodeId}: ${String(r.msg)}`))
  t.same(leaseLines, [], 'no lease renewal failed or was lost')
  t.same((await api.post('/v1/presence/query', { userIds: users })).body.online, users, 'presence intact')
})

// A reconnect storm: thousands of clients connecting at once to one edge all end up welcomed
// and registered, with registry writes batched rather than one round trip per connection.
// (The 10,000-client version is a benchmark: bench/storm.)
import t from 'tap'
import WebSocket from 'ws'
import { Redis } from 'ioredis'
import { mintToken } from '../helpers/clients.js'
import { startCluster, testSecrets } from '../helpers/processes.js'

const CLIENTS = 2_000
// The router's presence delivery reads partitions as the storm writes events: a script per
// busy partition per poll. Polled rarely here, so the count below is the registrations'.
const cluster = await startCluster(t, { edges: 1, leaseTtlMs: 10_000, routerEnv: { PRESENCE_POLL_MS: '600000' } })
const [edge] = cluster.edges
const { jwtSecret } = testSecrets()
const redis = new Redis(cluster.redis.url)
t.teardown(() => redis.disconnect())

/** Calls of every script so far (EVALSHA and EVAL), from INFO commandstats. */
async function scriptCalls(): Promise<number> {
  const stats = await redis.info('commandstats')
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0)
}

t.test(`${CLIENTS} clients connecting at once are all welcomed and online`, async (t) => {
  const users = Array.from({ length: CLIENTS }, (_, i) => `storm-${i}`)
  const tokens = await Promise.all(users.map((u) => mintToken(jwtSecret, u)))
  const sockets: WebSocket[] = []
  t.teardown(() => sockets.forEach((ws) => ws.terminate()))
  const callsBefore = await scriptCalls()
  const started = Date.now()

  const welcomes = await Promise.allSettled(
    tokens.map(
      (token, i) =>
        new Promise<string>((resolve, reject) => {
          // Spread over loopback addresses, as a real storm comes from many hosts.
          const ws = new WebSocket(`${edge!.wsUrl}?token=${token}`, { localAddress: `127.0.0.${1 + (i % 8)}` })
          sockets.push(ws)
          ws.once('message', (data) => resolve(JSON.parse(String(data)).type))
          ws.once('close', (code) => reject(new Error(`closed ${code} before welcome`)))
          ws.once('error', reject)
        }),
    ),
  )
  const stormMs = Date.now() - started
  const failures = welcomes.filter((w) => w.status === 'rejected').map((w) => String((w as PromiseRejectedResult).reason))
  t.same(failures, [], 'no connection failed or closed')
  t.equal(welcomes.filter((w) => w.status === 'fulfilled' && w.value === 'welcome').length, CLIENTS, 'every client got its welcome first')
  const calls = (await scriptCalls()) - callsBefore
  // Connections opened in one event-loop turn share one script per partition, and every
  // script of a turn goes out in one autopipelined write.
  t.ok(calls < CLIENTS, `${calls} registry scripts for ${CLIENTS} connections (batched); the storm took ${stormMs} ms`)

  // Welcome means registered: presence already shows everyone.
  const res = await cluster.api.post('/v1/presence/query', { userIds: users })
  t.equal(res.status, 200)
  t.equal(res.body.online.length, CLIENTS, 'none is missing from presence')
  t.same(res.body.offline, [])

  const push = await cluster.api.post('/v1/push', { to: users, event: 'after.storm', data: 1 })
  t.equal(push.body.delivered.length, CLIENTS, 'a push to all of them is delivered to all')
})

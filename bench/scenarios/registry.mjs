// Scenario 5: the registry with `sizes.registryUsers` users registered (1,000,000 in the full
// run): latency of locating 10,000 random users (the router's lookup for a big push), called
// directly on RedisRegistry, and of POST /v1/presence/query for 10,000 users through a router.
import { RedisRegistry, createRedisClient } from '@switchboard/registry'
import { secrets, startRedis, startSwitchboard, stop, stopSystem } from '../lib/harness.mjs'
import { percentiles } from '../lib/stats.mjs'

const BATCH = 10_000

export async function registry(sizes, log) {
  const redis = await startRedis()
  const client = createRedisClient(redis.url, { commandTimeoutMs: 30_000 })
  const reg = new RedisRegistry(client, { prefix: 'bench:' })
  // One long lease holds every bench user, as if they were spread over edges; writes go in the
  // same batches an edge uses after a storm.
  const lease = await reg.openLease({ nodeId: 'bench-holder', url: 'http://127.0.0.1:9', startedAt: Date.now() }, 3_600_000)
  const started = performance.now()
  for (let from = 0; from < sizes.registryUsers; from += BATCH * 4) {
    await Promise.all(
      Array.from({ length: 4 }, (_, b) => {
        const conns = []
        for (let i = from + b * BATCH; i < Math.min(sizes.registryUsers, from + (b + 1) * BATCH); i++) conns.push({ userId: `user-${i}`, connId: `c${i}`, since: Date.now() })
        return conns.length ? reg.addConnections(lease, conns) : undefined
      }),
    )
  }
  const info = await client.info('memory')
  const usedMemoryMiB = Math.round(Number(info.match(/used_memory:(\d+)/)?.[1]) / 2 ** 20)
  log(`registry: ${sizes.registryUsers} users registered in ${Math.round(performance.now() - started)} ms, Redis used_memory ${usedMemoryMiB} MiB`)

  const sample = () => Array.from({ length: BATCH }, () => `user-${Math.floor(Math.random() * sizes.registryUsers * 1.1)}`) // ~9% offline
  const lookups = []
  for (let i = 0; i < sizes.registryRounds; i++) {
    const ids = sample()
    const t0 = performance.now()
    await reg.locate(ids)
    lookups.push(performance.now() - t0)
  }

  const system = await startSwitchboard({ edges: 1, redis })
  const presence = []
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${secrets.apiKey}` }
  // A router that just joined delivers the 1,000,000 online events of the registration: while
  // it does, a query may stall past the command timeout and be answered 503. Counted and
  // reported (presenceQueryErrors), not fatal for the first minute.
  let errors = 0
  const retryUntil = performance.now() + 60_000
  for (let i = 0; presence.length < sizes.registryRounds; i++) {
    const body = JSON.stringify({ userIds: sample() })
    const t0 = performance.now()
    const res = await fetch(`http://127.0.0.1:${system.router.port}/v1/presence/query`, { method: 'POST', headers, body })
    const answer = await res.json()
    if (res.status === 503 && performance.now() < retryUntil && ++errors) continue
    if (res.status !== 200) throw new Error(`presence query answered ${res.status}: ${JSON.stringify(answer)}`)
    if (i >= 3) presence.push(performance.now() - t0) // the first calls warm the router's JIT and live view
  }
  const result = { users: sizes.registryUsers, batch: BATCH, usedMemoryMiB, locateMs: percentiles(lookups), presenceQueryMs: percentiles(presence), presenceQueryErrors: errors }
  log(`registry: locate ${BATCH} p50 ${result.locateMs.p50} p99 ${result.locateMs.p99} ms; presence query p50 ${result.presenceQueryMs.p50} p99 ${result.presenceQueryMs.p99} ms, ${errors} answered 503`)
  await stopSystem(system)
  client.disconnect()
  await stop(redis.proc)
  return result
}

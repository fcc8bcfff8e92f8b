// A/B, side by side in one run: a connect storm of clients that offer no resume (raw
// websockets) against clients offering `resume.start` as the SDK does (the edge reads the
// user's inbox before the welcome), alternating A/B x3 on one edge; server CPU per connection
// (edge, Redis, router) and the connection rate. Medians.
//   node bench/resume-storm-ab.mjs
import { median } from './lib/ab.mjs'
import { closeFleet, connectFleet } from './lib/fleet.mjs'
import { cpuMeter, sleep, startRedis, startSwitchboard, stop, stopSystem } from './lib/harness.mjs'

const CLIENTS = 5_000
const redis = await startRedis()
// Offlines at once, and storms 3 s apart: the previous storm's closes (and their presence
// events) are settled before the next storm's meter starts.
const presence = { PRESENCE_OFFLINE_GRACE_MS: '0' }
const system = await startSwitchboard({ edges: 1, redis, edgeEnv: presence, routerEnv: presence })

async function storm(kind, round) {
  const users = Array.from({ length: CLIENTS }, (_, i) => `st-${kind}-${round}-${i}`)
  const cpu = await cpuMeter(system.servers)
  const fleet = await connectFleet({ system: kind, ports: system.ports, users, processes: 2, concurrency: 500 })
  const used = await cpu()
  if (fleet.failed > 0) throw new Error(`${fleet.failed} connections failed: ${fleet.errors.join('; ')}`)
  await closeFleet(fleet)
  const per = (ms) => Math.round((ms * 1000) / CLIENTS)
  return { kind, edgeUs: per(used['edge-1']), redisUs: per(used.redis), totalUs: per(Object.values(used).reduce((a, b) => a + b, 0)), perS: Math.round(CLIENTS / (fleet.elapsedMs / 1000)) }
}

await storm('switchboard', 'w')
await storm('switchboard-resume', 'w')
await sleep(3_000)
const rows = []
for (let round = 0; round < 3; round++) for (const kind of ['switchboard', 'switchboard-resume']) rows.push(await storm(kind, round)), await sleep(3_000)
for (const kind of ['switchboard', 'switchboard-resume']) {
  const r = rows.filter((x) => x.kind === kind)
  console.log(`${kind.padEnd(18)}: server CPU ${median(r.map((x) => x.totalUs))} µs/connection (edge ${median(r.map((x) => x.edgeUs))}, Redis ${median(r.map((x) => x.redisUs))}), ${median(r.map((x) => x.perS))} connections/s; runs ${r.map((x) => x.totalUs).join(' / ')}`)
}
await stopSystem(system)
await stop(redis.proc)
process.exit(0)

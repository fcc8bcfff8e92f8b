// A/B, side by side in one run: server CPU (router + Redis + edge) per push, plain pushes
// against kept pushes (`keep: true`: appended to the recipient's inbox in Redis before the
// forward), over the pipelined ingress, alternating A/B x3; and Redis memory per kept push.
//   node bench/keep-ab.mjs
import { createRedisClient } from '@switchboard/registry'
import { SwitchboardBackend } from '@switchboard/backend'
import { closeFleet, connectFleet } from './lib/fleet.mjs'
import { cpuMeter, secrets, sleep, startRedis, startSwitchboard, stop, stopSystem, sum } from './lib/harness.mjs'

const USERS = 1_000
const PUSHES = 5_000
const IN_FLIGHT = 64
const redis = await startRedis()
const system = await startSwitchboard({ edges: 1, redis })
const users = Array.from({ length: USERS }, (_, i) => `ab-${i}`)
const fleet = await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: 2 })
const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${system.router.port}`, apiKey: secrets.apiKey, transport: 'pipeline', maxInFlight: 1_000 })
await sb.connect()
const client = createRedisClient(redis.url, { commandTimeoutMs: 30_000 })
const usedMemory = async () => Number((await client.info('memory')).match(/used_memory:(\d+)/)?.[1])

async function run(kept) {
  const cpu = await cpuMeter(system.servers)
  let next = 0
  let notKept = 0
  const worker = async () => {
    while (next < PUSHES) {
      const i = next++
      const answer = await sb.push(kept ? { to: [users[i % USERS]], event: 'e', data: i, keep: true } : { to: [users[i % USERS]], event: 'e', data: i })
      if (kept !== Array.isArray(answer.kept)) notKept++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const ms = performance.now() - started
  const used = await cpu()
  if (notKept > 0) throw new Error(`${notKept} ${kept ? 'kept pushes were answered without' : 'plain pushes were answered with'} a kept list`)
  const edge = used['edge-1']
  return { kept, perPushUs: Math.round((sum(used) * 1000) / PUSHES), routerUs: Math.round((used.router * 1000) / PUSHES), redisUs: Math.round((used.redis * 1000) / PUSHES), edgeUs: Math.round((edge * 1000) / PUSHES), pushesPerS: Math.round(PUSHES / (ms / 1000)) }
}

// Warm-up of both paths, so the first measured kept run does not pay the kept path's JIT.
await run(false)
const memoryBefore = await usedMemory() // plain pushes write nothing to Redis
await run(true)
const rows = []
for (let round = 0; round < 3; round++) for (const kept of [false, true]) rows.push(await run(kept)), await sleep(200)
const memoryAfter = await usedMemory()
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
for (const kept of [false, true]) {
  const r = rows.filter((x) => x.kept === kept)
  console.log(`${kept ? 'kept ' : 'plain'}: server CPU ${median(r.map((x) => x.perPushUs))} µs/push (router ${median(r.map((x) => x.routerUs))}, Redis ${median(r.map((x) => x.redisUs))}, edge ${median(r.map((x) => x.edgeUs))}), ${median(r.map((x) => x.pushesPerS))} pushes/s; runs ${r.map((x) => x.perPushUs).join(' / ')}`)
}
// The growth is the inboxes: 4 x 5,000 kept pushes (warm-up included) over 1,000 users, 20
// entries each (under INBOX_MAX_LEN = 100).
const keptPushes = (rows.filter((x) => x.kept).length + 1) * PUSHES
console.log(`Redis used_memory ${memoryBefore} -> ${memoryAfter} bytes: ${Math.round((memoryAfter - memoryBefore) / keptPushes)} bytes per kept push (${keptPushes} kept, ${keptPushes / USERS} per user)`)
// One inbox as Redis sizes it (a LIST: it grows with its entries; a STREAM would allocate a
// whole 4 KB node at the first one).
const [meta, stream] = (await client.keys(`bench:*:i[mn]:${users[0]}`)).sort()
const usage = (key) => client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
console.log(`one inbox (${await client.llen(stream)} entries): list ${await usage(stream)} bytes + meta ${await usage(meta)} bytes (MEMORY USAGE)`)
client.disconnect()
await sb.close()
await closeFleet(fleet)
await stopSystem(system)
await stop(redis.proc)
process.exit(0)

// A/B, side by side in one run: server CPU (router + Redis + edge) per push, plain pushes
// against pushes with an Idempotency-Key, over the pipelined ingress, alternating A/B x3.
//   node bench/idempotency-ab.mjs
import { randomUUID } from 'node:crypto'
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

async function run(keyed) {
  const cpu = await cpuMeter(system.servers)
  let next = 0
  const worker = async () => {
    while (next < PUSHES) {
      const i = next++
      await sb.push({ to: [users[i % USERS]], event: 'e', data: i }, keyed ? { idempotencyKey: randomUUID() } : {})
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const ms = performance.now() - started
  const used = await cpu()
  return { keyed, perPushUs: Math.round((sum(used) * 1000) / PUSHES), routerUs: Math.round((used.router * 1000) / PUSHES), redisUs: Math.round((used.redis * 1000) / PUSHES), pushesPerS: Math.round(PUSHES / (ms / 1000)) }
}

await run(false) // warm-up
const rows = []
for (let round = 0; round < 3; round++) for (const keyed of [false, true]) rows.push(await run(keyed)), await sleep(200)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
for (const keyed of [false, true]) {
  const r = rows.filter((x) => x.keyed === keyed)
  console.log(`${keyed ? 'with Idempotency-Key' : 'plain            '}: server CPU ${median(r.map((x) => x.perPushUs))} µs/push (router ${median(r.map((x) => x.routerUs))}, Redis ${median(r.map((x) => x.redisUs))}), ${median(r.map((x) => x.pushesPerS))} pushes/s; runs ${r.map((x) => x.perPushUs).join(' / ')}`)
}
await sb.close()
await closeFleet(fleet)
await stopSystem(system)
await stop(redis.proc)
process.exit(0)

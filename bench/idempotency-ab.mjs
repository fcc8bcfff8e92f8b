// A/B, side by side in one run: server CPU (router + Redis + edge) per push, plain pushes
// against pushes with an Idempotency-Key, over the pipelined ingress, alternating A/B x3.
//   node bench/idempotency-ab.mjs
import { randomUUID } from 'node:crypto'
import { median, startPushBench } from './lib/ab.mjs'
import { sleep } from './lib/harness.mjs'

const PUSHES = 5_000
const IN_FLIGHT = 64
const bench = await startPushBench()
const { sb, users } = bench

const run = async (keyed) => ({
  keyed,
  ...(await bench.measure(PUSHES, IN_FLIGHT, (i) => sb.push({ to: [users[i % users.length]], event: 'e', data: i }, keyed ? { idempotencyKey: randomUUID() } : {}))),
})

await run(false) // warm-up
const rows = []
for (let round = 0; round < 3; round++) for (const keyed of [false, true]) rows.push(await run(keyed)), await sleep(200)
for (const keyed of [false, true]) {
  const r = rows.filter((x) => x.keyed === keyed)
  console.log(`${keyed ? 'with Idempotency-Key' : 'plain            '}: server CPU ${median(r.map((x) => x.perPushUs))} µs/push (router ${median(r.map((x) => x.routerUs))}, Redis ${median(r.map((x) => x.redisUs))}), ${median(r.map((x) => x.pushesPerS))} pushes/s; runs ${r.map((x) => x.perPushUs).join(' / ')}`)
}
await bench.close()
process.exit(0)

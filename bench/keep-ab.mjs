// A/B, side by side in one run: server CPU (router + Redis + edge) per push, plain pushes
// against kept pushes (`keep: true`: appended to the recipient's inbox in Redis before the
// forward), over the pipelined ingress, alternating A/B x3; and Redis memory per kept push.
//   node bench/keep-ab.mjs
import { createRedisClient } from '@switchboard/registry'
import { median, startPushBench } from './lib/ab.mjs'
import { sleep } from './lib/harness.mjs'

const PUSHES = 5_000
const IN_FLIGHT = 64
const bench = await startPushBench()
const { sb, users } = bench
const client = createRedisClient(bench.redis.url, { commandTimeoutMs: 30_000 })
const usedMemory = async () => Number((await client.info('memory')).match(/used_memory:(\d+)/)?.[1])

async function run(kept) {
  let wrong = 0
  const row = await bench.measure(PUSHES, IN_FLIGHT, async (i) => {
    const body = { to: [users[i % users.length]], event: 'e', data: i }
    const answer = await sb.push(kept ? { ...body, keep: true } : body)
    if (kept !== Array.isArray(answer.kept)) wrong++
  })
  if (wrong > 0) throw new Error(`${wrong} ${kept ? 'kept pushes were answered without' : 'plain pushes were answered with'} a kept list`)
  return { kept, ...row }
}

// Warm-up of both paths, so the first measured kept run does not pay the kept path's JIT.
await run(false)
const memoryBefore = await usedMemory() // plain pushes write nothing to Redis
await run(true)
const rows = []
for (let round = 0; round < 3; round++) for (const kept of [false, true]) rows.push(await run(kept)), await sleep(200)
const memoryAfter = await usedMemory()
for (const kept of [false, true]) {
  const r = rows.filter((x) => x.kept === kept)
  console.log(`${kept ? 'kept ' : 'plain'}: server CPU ${median(r.map((x) => x.perPushUs))} µs/push (router ${median(r.map((x) => x.routerUs))}, Redis ${median(r.map((x) => x.redisUs))}, edge ${median(r.map((x) => x.edgeUs))}), ${median(r.map((x) => x.pushesPerS))} pushes/s; runs ${r.map((x) => x.perPushUs).join(' / ')}`)
}
// The growth is the inboxes: 4 x 5,000 kept pushes (warm-up included) over 1,000 users, 20
// entries each (under INBOX_MAX_LEN = 100).
const keptPushes = (rows.filter((x) => x.kept).length + 1) * PUSHES
console.log(`Redis used_memory ${memoryBefore} -> ${memoryAfter} bytes: ${Math.round((memoryAfter - memoryBefore) / keptPushes)} bytes per kept push (${keptPushes} kept, ${keptPushes / users.length} per user)`)
// One inbox as Redis sizes it (a LIST: it grows with its entries; a STREAM would allocate a
// whole 4 KB node at the first one).
const [meta, list] = (await client.keys(`bench:*:i[mn]:${users[0]}`)).sort()
const usage = (key) => client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
console.log(`one inbox (${await client.llen(list)} entries): list ${await usage(list)} bytes + meta ${await usage(meta)} bytes (MEMORY USAGE)`)
client.disconnect()
await bench.close()
process.exit(0)

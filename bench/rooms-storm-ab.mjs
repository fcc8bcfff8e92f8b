// A/B, side by side in one run: what rooms cost a connect storm. Since rooms, an edge reads each
// arriving user's rooms (one HGETALL of its reverse index) before the welcome, and writes its
// field of a room's edge index when the room gets its first local member. Storms of raw clients
// alternate between this checkout and a baseline checkout (built, without rooms), each with its
// own Redis and one edge, x3: server CPU per connection (edge, Redis, router) and the rate.
// With --members, every user of this checkout's storms is first made a member of 3 rooms.
//   node bench/rooms-storm-ab.mjs --baseline /path/to/other/checkout [--members]
import { SwitchboardBackend } from '@switchboard/backend'
import { median } from './lib/ab.mjs'
import { closeFleet, connectFleet } from './lib/fleet.mjs'
import { cpuMeter, secrets, sleep, startRedis, startSwitchboard, stop, stopSystem } from './lib/harness.mjs'

const args = process.argv.slice(2)
const baselineRoot = args[args.indexOf('--baseline') + 1]
if (!args.includes('--baseline') || !baselineRoot) throw new Error('usage: node bench/rooms-storm-ab.mjs --baseline <checkout root> [--members]')
const withMembers = args.includes('--members')
const CLIENTS = 5_000
// Offlines at once, and storms 3 s apart: the previous storm's closes are settled before the next storm's meter starts.
const presence = { PRESENCE_OFFLINE_GRACE_MS: '0' }
const systems = {}
for (const [name, from] of [['baseline', `${baselineRoot.replace(/\/$/, '')}/`], ['rooms', undefined]]) {
  const redis = await startRedis()
  systems[name] = { redis, system: await startSwitchboard({ edges: 1, redis, edgeEnv: presence, routerEnv: presence, ...(from && { from }) }) }
}
const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${systems.rooms.system.router.port}`, apiKey: secrets.apiKey, transport: 'pipeline' })

async function storm(name, round) {
  const { system } = systems[name]
  const users = Array.from({ length: CLIENTS }, (_, i) => `st-${name}-${round}-${i}`)
  if (withMembers && name === 'rooms') {
    for (const room of ['a', 'b', 'c']) for (let i = 0; i < CLIENTS; i += 5_000) await sb.roomAdd(`${room}-${round}-${i % 50}`, users.slice(i, i + 5_000))
  }
  const cpu = await cpuMeter(system.servers)
  const fleet = await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: 2, concurrency: 500 })
  const used = await cpu()
  if (fleet.failed > 0) throw new Error(`${fleet.failed} connections failed: ${fleet.errors.join('; ')}`)
  await closeFleet(fleet)
  const per = (ms) => Math.round((ms * 1000) / CLIENTS)
  return { name, edgeUs: per(used['edge-1']), redisUs: per(used.redis), routerUs: per(used.router), totalUs: per(Object.values(used).reduce((a, b) => a + b, 0)), perS: Math.round(CLIENTS / (fleet.elapsedMs / 1000)) }
}

await storm('rooms', 'w')
await storm('baseline', 'w')
await sleep(3_000)
const rows = []
for (let round = 0; round < 3; round++) {
  for (const name of round % 2 === 0 ? ['rooms', 'baseline'] : ['baseline', 'rooms']) rows.push(await storm(name, round)), await sleep(3_000)
}
for (const name of ['baseline', 'rooms']) {
  const r = rows.filter((x) => x.name === name)
  console.log(
    `${name.padEnd(8)}${name === 'rooms' && withMembers ? ' (each user in 3 rooms)' : ''}: server CPU ${median(r.map((x) => x.totalUs))} µs/connection (edge ${median(r.map((x) => x.edgeUs))}, Redis ${median(r.map((x) => x.redisUs))}, router ${median(r.map((x) => x.routerUs))}), ${median(r.map((x) => x.perS))} connections/s; runs ${r.map((x) => x.totalUs).join(' / ')}`,
  )
}
await sb.close()
for (const { redis, system } of Object.values(systems)) {
  await stopSystem(system)
  await stop(redis.proc)
}
process.exit(0)

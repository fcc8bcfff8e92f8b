// A/B, side by side in one run: what rooms cost a connect storm. Since rooms, an edge reads each
// arriving user's rooms (one HGETALL of its reverse index) before the welcome, and writes its
// field of a room's edge index when the room gets its first local member. Storms of raw clients
// alternate between this checkout and a baseline checkout (built, without rooms), each with its
// own Redis and one edge, x3: server CPU per connection (edge, Redis, router) and the rate.
// This checkout is labelled `rooms` in the output. With --members, every user of its storms is
// first made a member of 3 rooms.
// With --bare, a bare uWS server takes its storms in the same rotation: the floor each
// build's CPU per connection is a multiple of (issue 22's target: 2x).
//   node bench/rooms-storm-ab.mjs --baseline /path/to/other/checkout [--members] [--bare]
import { SwitchboardBackend } from '@switchboard/backend'
import { median } from './lib/ab.mjs'
import { closeFleet, connectFleet } from './lib/fleet.mjs'
import { cpuMeter, secrets, sleep, startBare, startRedis, startSwitchboard, stop, stopSystem } from './lib/harness.mjs'

const args = process.argv.slice(2)
const baselineRoot = args[args.indexOf('--baseline') + 1]
if (!args.includes('--baseline') || !baselineRoot) throw new Error('usage: node bench/rooms-storm-ab.mjs --baseline <checkout root> [--members] [--bare]')
const withMembers = args.includes('--members')
const withBare = args.includes('--bare')
const CLIENTS = 5_000
// Offlines at once, and storms 3 s apart: the previous storm's closes are settled before the next storm's meter starts.
const presence = { PRESENCE_OFFLINE_GRACE_MS: '0' }
const systems = {}
for (const [name, from] of [['baseline', `${baselineRoot.replace(/\/$/, '')}/`], ['rooms', undefined]]) {
  const redis = await startRedis()
  systems[name] = { redis, system: await startSwitchboard({ edges: 1, redis, edgeEnv: presence, routerEnv: presence, ...(from && { from }) }) }
}
const bare = withBare ? await startBare() : undefined
const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${systems.rooms.system.router.port}`, apiKey: secrets.apiKey, transport: 'pipeline' })

async function storm(name, round) {
  const users = Array.from({ length: CLIENTS }, (_, i) => `st-${name}-${round}-${i}`)
  if (name === 'bare') {
    const cpu = await cpuMeter(bare.servers)
    const fleet = await connectFleet({ system: 'bare', ports: bare.ports, users, processes: 2, concurrency: 500 })
    const used = await cpu()
    await closeFleet(fleet)
    return { name, totalUs: Math.round((used['bare-uws'] * 1000) / CLIENTS), perS: Math.round(CLIENTS / (fleet.elapsedMs / 1000)) }
  }
  const { system } = systems[name]
  if (withMembers && name === 'rooms') {
    for (const room of ['a', 'b', 'c']) for (let i = 0; i < CLIENTS; i += 5_000) await sb.roomAdd(`${room}-${round}-${i % 50}`, users.slice(i, i + 5_000))
  }
  const cpu = await cpuMeter(system.servers)
  const fleet = await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: 2, concurrency: 500 })
  const used = await cpu()
  if (fleet.failed > 0) throw new Error(`${name}: ${fleet.failed} connections failed: ${fleet.errors.join('; ')}`)
  await closeFleet(fleet)
  const per = (ms) => Math.round((ms * 1000) / CLIENTS)
  return { name, edgeUs: per(used['edge-1']), redisUs: per(used.redis), routerUs: per(used.router), totalUs: per(Object.values(used).reduce((a, b) => a + b, 0)), perS: Math.round(CLIENTS / (fleet.elapsedMs / 1000)) }
}

const names = ['rooms', 'baseline', ...(withBare ? ['bare'] : [])]
for (const name of names) await storm(name, 'w')
await sleep(3_000)
const rows = []
for (let round = 0; round < 3; round++) {
  for (const name of round % 2 === 0 ? names : [...names].reverse()) rows.push(await storm(name, round)), await sleep(3_000)
}
const spread = (xs) => `${Math.min(...xs)}–${Math.max(...xs)}`
for (const name of names) {
  const r = rows.filter((x) => x.name === name)
  const perProcess = name === 'bare' ? '' : ` (edge ${median(r.map((x) => x.edgeUs))}, Redis ${median(r.map((x) => x.redisUs))}, router ${median(r.map((x) => x.routerUs))})`
  // The ratio per round (each system's storm against the bare storm of the same round), then its median.
  const ratios = withBare && name !== 'bare' ? r.map((x, i) => x.totalUs / rows.filter((b) => b.name === 'bare')[i].totalUs) : []
  const vsBare = ratios.length > 0 ? `, ${median(ratios).toFixed(2)}x bare uWS (${spread(ratios.map((x) => x.toFixed(2)))})` : ''
  console.log(
    `${name.padEnd(8)}${name === 'rooms' && withMembers ? ' (each user in 3 rooms)' : ''}: server CPU ${median(r.map((x) => x.totalUs))} µs/connection (${spread(r.map((x) => x.totalUs))})${perProcess}${vsBare}, ${median(r.map((x) => x.perS))} connections/s; runs ${r.map((x) => x.totalUs).join(' / ')}`,
  )
}
await sb.close()
if (bare) await stopSystem(bare)
for (const { redis, system } of Object.values(systems)) {
  await stopSystem(system)
  await stop(redis.proc)
}
process.exit(0)

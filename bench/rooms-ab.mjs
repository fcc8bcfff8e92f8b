// Rooms, side by side in one run: pushes to rooms of 10, 1,000 and 100,000 members, the online
// ones spread over 3 nodes, alternating the two systems round by round:
// - Switchboard: a router, 3 edges and Redis. Durable rooms (POST /v1/rooms/:room/members); a
//   room push reads the room's edge index (one Redis call) and calls the edges holding members,
//   each writing to its own. The 100,000-member room has `CLIENTS` members online, the rest
//   offline: its cost must follow the online members' edges, not the room's size.
// - socket.io 4 + @socket.io/redis-adapter, 3 nodes: the online members' sockets joined with
//   the emitter's `socketsJoin`, pushes with `emitter.to(room).emit` (one PUBLISH, which every
//   node receives and filters). Its rooms hold sockets only, so its 100,000 room is the same
//   online members.
// Figures: server CPU (every server process and its Redis) per room push and per frame
// delivered, frames received, latency to the clients, edges (nodes) that handled each push.
// Then Redis memory per durable membership and per room.
//   node bench/rooms-ab.mjs            (build first: npm run build)
import { Emitter } from '@socket.io/redis-emitter'
import { Redis } from 'ioredis-v5'
import { SwitchboardBackend } from '@switchboard/backend'
import { median } from './lib/ab.mjs'
import { closeFleet, collect, connectFleet, resetFleet, settle } from './lib/fleet.mjs'
import { ask, cpuMeter, machine, secrets, sleep, startRedis, startSocketIo, startSwitchboard, stop, stopSystem, sum } from './lib/harness.mjs'
import { percentiles } from './lib/stats.mjs'

const smoke = process.argv.includes('--smoke')
const CLIENTS = smoke ? 60 : 3_000
const SIZES = smoke ? [10, 50, 1_000] : [10, 1_000, 100_000]
/** Pushes per measured run, by room: each run delivers a few tens of thousands of frames at most. */
const PUSHES = smoke ? { 10: 20, 50: 10, 1_000: 5, one: 20 } : { 10: 400, 1_000: 60, 100_000: 20, one: 400 }
const IN_FLIGHT = 8
/** Nodes of each system (NODES=9: how the incumbent's per-message cost grows with the cluster). */
const NODES = Number(process.env.NODES ?? 3)
const ROUNDS = smoke ? 1 : 3
const PAD = 'x'.repeat(120)
const nowUs = () => Number(process.hrtime.bigint() / 1000n)
const log = (line) => process.stdout.write(`${line}\n`)

const m = machine()
log(`rooms bench on ${m.cpus} × ${m.cpuModel}, Node ${m.node}, Redis ${m.redis}: ${CLIENTS} clients per system on ${NODES} nodes, rooms of ${SIZES.join(', ')} members, ${ROUNDS} alternating rounds`)

// Members: room of size s = users m-0 … m-(s-1); the first CLIENTS are the connected ones, user
// i on node i mod NODES (the fleet's rule). Room 'one': 10 members, all on the first node (m-0,
// m-NODES, …), as most rooms of a large cluster are: on a few of its nodes.
const member = (i) => `m-${i}`
const online = Array.from({ length: CLIENTS }, (_, i) => member(i))
const roomName = (size) => `room-${size}`
const onlineIn = (size) => (size === 'one' ? 10 : Math.min(size, CLIENTS))
const membersOf = (size) => (size === 'one' ? Array.from({ length: 10 }, (_, i) => member(NODES * i)) : Array.from({ length: size }, (_, i) => member(i)))
// --only <room>: that room alone (e.g. to profile one path: BENCH_PROFILE=edge).
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined
const ROOMS = only ? [only === 'one' ? 'one' : Number(only)] : [...SIZES, 'one']

// --- Switchboard
const sbRedis = await startRedis()
const sbSystem = await startSwitchboard({ edges: NODES, redis: sbRedis })
const sbFleet = await connectFleet({ system: 'switchboard', ports: sbSystem.ports, users: online, processes: 2 })
const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${sbSystem.router.port}`, apiKey: secrets.apiKey, transport: 'pipeline', maxInFlight: 1_000 })
await sb.connect()
const sbClient = new Redis({ host: '127.0.0.1', port: sbRedis.port })
const usedMemory = async () => Number((await sbClient.info('memory')).match(/used_memory:(\d+)/)?.[1])

const memoryBefore = await usedMemory()
for (const size of SIZES) {
  const ids = membersOf(size)
  for (let from = 0; from < ids.length; from += 10_000) await sb.roomAdd(roomName(size), ids.slice(from, from + 10_000))
}
const memoryAfter = await usedMemory()
await sb.roomAdd(roomName('one'), membersOf('one'))
const memberships = SIZES.reduce((a, b) => a + b, 0)

// --- socket.io
const ioRedis = await startRedis()
const ioSystem = await startSocketIo({ nodes: NODES, redis: ioRedis })
const ioFleet = await connectFleet({ system: 'socketio', ports: ioSystem.ports, users: online, processes: 2 })
const pub = new Redis({ host: '127.0.0.1', port: ioRedis.port })
let published
const publish = pub.publish.bind(pub)
pub.publish = (...args) => (published = publish(...args)) // the emitter drops the reply: keep it, to bound what is in flight
const emitter = new Emitter(pub)
for (const size of ROOMS) emitter.in(membersOf(size).slice(0, onlineIn(size)).map((u) => `user:${u}`)).socketsJoin(roomName(size))
await published
await sleep(500) // socketsJoin is fire-and-forget on every node; the first measured run checks every frame arrived

const systems = {
  switchboard: {
    system: sbSystem,
    fleet: sbFleet,
    send: async (size) => (await sb.push({ room: roomName(size), event: 'bench', data: { t: nowUs(), pad: PAD } })).edges,
  },
  socketio: {
    system: ioSystem,
    fleet: ioFleet,
    send: async (size) => {
      emitter.to(roomName(size)).emit('push', { t: nowUs(), pad: PAD })
      await published
      return NODES // every node receives every room message (counted below)
    },
  },
}

async function adapterMessages() {
  const stats = await Promise.all(ioSystem.edges.map((n) => ask(n.proc, 'stats')))
  return stats.reduce((s, x) => s + x.messages, 0)
}

async function run(name, size) {
  const { system, fleet, send } = systems[name]
  const pushes = PUSHES[size]
  await resetFleet(fleet)
  const messagesBefore = name === 'socketio' ? await adapterMessages() : 0
  const cpu = await cpuMeter(system.servers)
  const started = nowUs()
  let next = 0
  const edges = []
  const worker = async () => {
    while (next < pushes) {
      next++
      edges.push(await send(size))
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const expected = pushes * onlineIn(size)
  const received = await settle(fleet, expected)
  const used = await cpu()
  const { latencies, lastReceiveUs } = await collect(fleet)
  const nodesPerPush = name === 'socketio' ? ((await adapterMessages()) - messagesBefore) / pushes : median(edges)
  const cpuMs = sum(used)
  const { p50, p99 } = percentiles(latencies)
  const nodesMs = system.edges.reduce((s, n) => s + used[n.name], 0)
  return {
    name,
    size,
    pushes,
    received,
    expected,
    perPushUs: Math.round((cpuMs * 1000) / pushes),
    routerUs: name === 'switchboard' ? Math.round((used.router * 1000) / pushes) : 0,
    redisUs: Math.round((used.redis * 1000) / pushes),
    nodesUs: Math.round((nodesMs * 1000) / pushes),
    perFrameUs: received > 0 ? Math.round((cpuMs * 1000 * 100) / received) / 100 : NaN,
    p50Ms: Math.round(p50 * 10) / 10,
    p99Ms: Math.round(p99 * 10) / 10,
    nodesPerPush,
    wallMs: Math.round((lastReceiveUs - started) / 1000),
  }
}

const rows = []
for (const size of ROOMS) await run('switchboard', size), await run('socketio', size) // warm-up, unmeasured
for (let round = 0; round < ROUNDS; round++) {
  for (const size of ROOMS) {
    for (const name of round % 2 === 0 ? ['switchboard', 'socketio'] : ['socketio', 'switchboard']) {
      const row = await run(name, size)
      if (row.received !== row.expected) log(`  ${name} room of ${size}: received ${row.received} of ${row.expected} frames`)
      rows.push(row)
      await sleep(200)
    }
  }
}

log('')
log('| room members (online) | system | server CPU per push, µs | router / Redis / nodes, µs | per frame delivered, µs | nodes handling each push | p50 / p99 latency, ms | frames received |')
log('|---|---|---|---|---|---|---|---|')
for (const size of ROOMS) {
  for (const name of ['switchboard', 'socketio']) {
    const r = rows.filter((x) => x.name === name && x.size === size)
    const med = (key) => median(r.map((x) => x[key]))
    const label = size === 'one' ? `10, all on 1 of ${NODES} nodes (10)` : `${size.toLocaleString('en')} (${onlineIn(size).toLocaleString('en')})`
    log(`| ${label} | ${name} | ${med('perPushUs')} (runs ${r.map((x) => x.perPushUs).join(' / ')}) | ${med('routerUs')} / ${med('redisUs')} / ${med('nodesUs')} | ${med('perFrameUs')} | ${med('nodesPerPush')} | ${med('p50Ms')} / ${med('p99Ms')} | ${r.map((x) => `${x.received}/${x.expected}`).join(', ')} |`)
  }
}
log('')
log(`Switchboard Redis used_memory for ${memberships.toLocaleString('en')} durable memberships in ${SIZES.length} rooms: ${memoryBefore} -> ${memoryAfter} bytes, ${Math.round((memoryAfter - memoryBefore) / memberships)} bytes per membership (room ZSET entry + the user's reverse entry)`)

// Per room: many small rooms, so the per-room keys dominate.
const SMALL = smoke ? 100 : 10_000
const beforeRooms = await usedMemory()
for (let from = 0; from < SMALL; from += 500) {
  await Promise.all(Array.from({ length: 500 }, (_, i) => sb.roomAdd(`small-${from + i}`, [`s-${from + i}-a`, `s-${from + i}-b`])))
}
const afterRooms = await usedMemory()
log(`${SMALL.toLocaleString('en')} rooms of 2 offline members: ${Math.round((afterRooms - beforeRooms) / SMALL)} bytes per room with its 2 memberships`)

sbClient.disconnect()
pub.disconnect()
await sb.close()
await closeFleet(sbFleet)
await closeFleet(ioFleet)
await stopSystem(sbSystem)
await stopSystem(ioSystem)
await stop(sbRedis.proc)
await stop(ioRedis.proc)
process.exit(0)

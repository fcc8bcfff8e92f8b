// Does an edge's RSS keep what its sockets' send buffers grew to? One edge (its backpressure
// bound raised to 64 MiB so no socket is closed), N raw clients; A: a burst of FRAMES × 2 KB
// broadcasts read as it comes; B: the same while the clients do not read (the kernel's buffers
// fill, then uWS's), then read it all; then every client closes. The edge's RSS, and its heap
// and external memory after a full GC, after each step.
//   node bench/backlog-rss.mjs [N=200] [FRAMES=2000]
// Run of 2026-12-07 (uws-pack 20.0.8): RSS 69 MiB after A, 117 after B's burst, still 117
// once every backlog drained (heap 13, external 2 throughout), 83 once the sockets closed: a
// socket keeps the largest backlog it had until it closes (the retention of uWebSockets.js#1150).
import { startRedis, startSwitchboard, stopSystem, stop, idleGc, tokenFor, secrets, rssKiB, sleep } from './lib/harness.mjs'
import { openSocket } from './lib/wire.mjs'
import { SwitchboardBackend } from '@switchboard/backend'

const N = Number(process.argv[2] ?? 200), FRAMES = Number(process.argv[3] ?? 2000)
const redis = await startRedis()
const system = await startSwitchboard({ edges: 1, redis, edgeEnv: { EDGE_MAX_BACKPRESSURE_BYTES: String(64 << 20) } })
const edge = system.edges[0]
const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${system.router.port}`, apiKey: secrets.apiKey, transport: 'pipeline' })
let received = 0
const conns = []
for (let i = 0; i < N; i += 200) {
  conns.push(...(await Promise.all(Array.from({ length: Math.min(200, N - i) }, async (_, k) => {
    const token = await tokenFor(`r${i + k}`)
    let welcomed
    const w = new Promise((r) => (welcomed = r))
    const c = await openSocket({ port: edge.port, path: `/v1/ws?token=${token}`, onText: (t) => (t.startsWith('{"type":"welcome"') ? welcomed() : received++), onClose: () => {} })
    await w
    return c
  }))))
}
const mem = async (what) => {
  await sleep(2000)
  const g = await idleGc(edge, 0)
  console.log(`${what}: RSS ${Math.round((await rssKiB(edge.pid)) / 1024)} MiB, heap ${Math.round(g.memory.heapUsed / 2 ** 20)} MiB, external ${Math.round(g.memory.external / 2 ** 20)} MiB`)
}
const burst = async () => {
  const data = { pad: 'x'.repeat(2000) }
  for (let f = 0; f < FRAMES; f++) await sb.push({ to: ['r0'], event: 'warm', data: {} }) // no-op warm
  const target = received + N * FRAMES
  for (let f = 0; f < FRAMES; f++) await sb.broadcast({ event: 'b', data })
  return target
}
await mem('connected')
let target = await burst()
while (received < target) await sleep(100)
await mem(`A: ${FRAMES} × 2 KB to each, read as they come`)
for (const c of conns) c.socket.pause()
target = await burst()
await sleep(3000)
await mem(`B: ${FRAMES} × 2 KB to each, clients not reading (backlog ~${FRAMES * 2} KB a socket)`)
for (const c of conns) c.socket.resume()
while (received < target) await sleep(100)
await mem('B: all read, backlogs drained')
for (const c of conns) c.close()
await sleep(3000)
await mem('all sockets closed')
await sb.close(); await stopSystem(system); await stop(redis.proc); process.exit(0)

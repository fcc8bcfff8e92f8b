// Scenarios 1 and 4: memory per idle connection after GC (Switchboard edge, socket.io node,
// bare uWS), and the connect storm (new authenticated, registered connections per second).
import { closeFleet, connectFleet } from '../lib/fleet.mjs'
import { cpuMeter, memoryAfterGc, rssKiB, startBare, startRedis, startSocketIo, startSwitchboard, stop, stopSystem, sum } from '../lib/harness.mjs'
import { round } from '../lib/stats.mjs'

const users = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)

async function start(kind, redis) {
  if (kind === 'switchboard') return startSwitchboard({ edges: 1, redis })
  if (kind === 'socketio') return startSocketIo({ nodes: 1, redis })
  return startBare()
}

/** RSS and heap per connection after GC, the server idle for `sizes.memoryIdleMs` before each read, at each size in `sizes.memory` (clients added in steps). */
export async function memory(sizes, log) {
  const rows = []
  for (const kind of ['switchboard', 'socketio', 'bare']) {
    const redis = await startRedis()
    const system = await start(kind, redis)
    const server = system.edges[0]
    const base = await memoryAfterGc(server, sizes.memoryIdleMs)
    const baseRss = await rssKiB(server.pid)
    const fleets = []
    let connected = 0
    for (const size of sizes.memory) {
      const fleet = await connectFleet({ system: kind, ports: system.ports, users: users(size - connected, `m${size}`), processes: sizes.loadProcesses })
      fleets.push(fleet)
      connected += fleet.connected
      const after = await memoryAfterGc(server, sizes.memoryIdleMs)
      const rss = await rssKiB(server.pid)
      const row = {
        system: kind,
        connections: connected,
        failed: fleet.failed,
        rssKiBPerConnection: round((rss - baseRss) / connected, 2),
        heapKiBPerConnection: round((after.heapUsed - base.heapUsed) / 1024 / connected, 2),
        externalKiBPerConnection: round((after.external - base.external) / 1024 / connected, 2),
        rssKiB: { base: baseRss, after: rss },
      }
      rows.push(row)
      log(`${kind}: ${connected} idle connections, ${row.rssKiBPerConnection} KiB RSS and ${row.heapKiBPerConnection} KiB heap each after GC`)
    }
    for (const fleet of fleets) await closeFleet(fleet)
    await stopSystem(system)
    await stop(redis.proc)
  }
  return rows
}

/** `sizes.storm` clients connecting at once to one server; rate from first attempt to last welcome. */
export async function storm(sizes, log) {
  const rows = []
  for (const kind of ['switchboard', 'socketio', 'bare']) {
    const redis = await startRedis()
    const system = await start(kind, redis)
    const cpu = await cpuMeter(system.servers)
    const fleet = await connectFleet({ system: kind, ports: system.ports, users: users(sizes.storm, 's'), processes: sizes.loadProcesses, concurrency: 500 })
    const cpuMs = await cpu()
    const row = {
      system: kind,
      clients: sizes.storm,
      connected: fleet.connected,
      failed: fleet.failed,
      elapsedMs: Math.round(fleet.elapsedMs),
      connectionsPerS: Math.round(fleet.connected / (fleet.elapsedMs / 1000)),
      cpuMs,
      cpuMsPer1000: round((sum(cpuMs) * 1000) / Math.max(1, fleet.connected), 1),
    }
    rows.push(row)
    log(`${kind}: ${row.connected}/${row.clients} connected at ${row.connectionsPerS}/s, ${row.cpuMsPer1000} server CPU ms per 1000`)
    await closeFleet(fleet)
    await stopSystem(system)
    await stop(redis.proc)
  }
  return rows
}

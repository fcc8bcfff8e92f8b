// Scenario 5: presence events. A storm of connects then of closes on two edges (grace 0):
// every transition becomes one event, delivered to a webhook receiver in this process.
// Measures how fast the event pipeline delivers them and what each event costs the routers,
// the edges and Redis, beside the same storm with nobody consuming events (no webhook, feed only).
import { randomBytes } from 'node:crypto'
import { closeFleet, connectFleet } from '../lib/fleet.mjs'
import { cpuMeter, sleep, startRedis, startSwitchboard, stop, stopSystem, sum } from '../lib/harness.mjs'
import { startReceiver } from '../lib/receiver.mjs'
import { round } from '../lib/stats.mjs'

async function until(check, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

export async function presence(sizes, log) {
  const n = sizes.storm
  const rows = []
  const secret = `whsec_${randomBytes(32).toString('base64')}`
  for (const consumer of ['webhook', 'none']) {
    const redis = await startRedis()
    const receiver = await startReceiver()
    const presenceEnv = { PRESENCE_OFFLINE_GRACE_MS: '0' }
    const routerEnv = consumer === 'webhook' ? { ...presenceEnv, PRESENCE_WEBHOOK_URL: receiver.url, PRESENCE_WEBHOOK_SECRET: secret } : presenceEnv
    const system = await startSwitchboard({ edges: 2, redis, edgeEnv: presenceEnv, routerEnv })
    const row = { consumer, events: n }
    for (const phase of ['connect', 'close']) {
      const type = phase === 'connect' ? 'user.online' : 'user.offline'
      const cpu = await cpuMeter(system.servers)
      const started = performance.now()
      const fleet = phase === 'connect' ? await connectFleet({ system: 'switchboard', ports: system.ports, users: Array.from({ length: n }, (_, i) => `p-${i}`), processes: sizes.loadProcesses, concurrency: 500 }) : undefined
      if (phase === 'connect') row.fleet = fleet
      else await closeFleet(row.fleet)
      const stormMs = performance.now() - started
      const delivered = consumer === 'webhook' ? await until(() => receiver.counts[type] >= n, 60_000) : (await sleep(2_000), true)
      const cpuMs = await cpu()
      const eventsMs = consumer === 'webhook' ? receiver.lastAt() - started : stormMs
      row[phase] = {
        connected: phase === 'connect' ? fleet.connected : undefined,
        delivered: consumer === 'webhook' ? receiver.counts[type] : null,
        complete: delivered,
        stormMs: Math.round(stormMs),
        eventsMs: Math.round(eventsMs),
        eventsPerS: consumer === 'webhook' ? Math.round(n / (eventsMs / 1000)) : null,
        cpuMs,
        routerCpuMsPer1000: round((cpuMs.router * 1000) / n, 1),
        edgesCpuMsPer1000: round((sum(cpuMs) - cpuMs.router - cpuMs.redis) * 1000 / n, 1),
        redisCpuMsPer1000: round((cpuMs.redis * 1000) / n, 1),
      }
      log(`${consumer}: ${phase} ${n}: ${row[phase].delivered ?? '-'} events in ${row[phase].eventsMs} ms (${row[phase].eventsPerS ?? '-'}/s); CPU ms per 1,000: router ${row[phase].routerCpuMsPer1000}, edges ${row[phase].edgesCpuMsPer1000}, Redis ${row[phase].redisCpuMsPer1000}`)
    }
    delete row.fleet
    rows.push(row)
    receiver.close()
    await stopSystem(system)
    await stop(redis.proc)
  }
  return rows
}

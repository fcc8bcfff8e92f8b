// Scenarios 2, 3 and 6: single-recipient pushes at a fixed rate and as fast as they go, batch
// pushes of 100 and 1,000 recipients, and how the work spreads as nodes are added; for
// Switchboard over N edges, the socket.io incumbent over N nodes and the bare uWS floor.
import { closeFleet, collect, connectFleet, resetFleet, settle } from '../lib/fleet.mjs'
import { ask, cpuMeter, secrets, startBare, startChild, startRedis, startSocketIo, startSwitchboard, stop, stopSystem, sum } from '../lib/harness.mjs'
import { percentiles, round } from '../lib/stats.mjs'

/** How many messages each edge / node has taken in: router delivery calls, or adapter messages from Redis. */
async function messagesIn(system) {
  if (system.kind === 'switchboard') {
    return Promise.all(
      system.edges.map(async (edge) => {
        const text = await (await fetch(`http://127.0.0.1:${edge.internalPort}/metrics`)).text()
        return Number(text.match(/^edge_deliver_requests_total (\d+)/m)?.[1] ?? 0)
      }),
    )
  }
  if (system.kind === 'socketio') return Promise.all(system.edges.map((node) => ask(node.proc, 'stats').then((s) => s.messages)))
  return system.edges.map(() => 0)
}

/** One measured run: publish, wait for the frames, then CPU, latency and spread. */
async function measure(system, fleet, publisher, target, run) {
  await resetFleet(fleet)
  const inBefore = await messagesIn(system)
  const cpu = await cpuMeter(system.servers)
  const published = await publisher.call({ target, users: fleet.users, ...run })
  const expected = published.sent * Math.min(run.batch ?? 1, fleet.users.length)
  await settle(fleet, expected)
  const cpuMs = await cpu()
  const inAfter = await messagesIn(system)
  const { received, latencies, lastReceiveUs } = await collect(fleet)
  const seconds = (Math.max(lastReceiveUs, published.sentUs) - published.startedUs) / 1e6
  return {
    sent: published.sent,
    errors: published.errors,
    firstError: published.firstError,
    achievedPushesPerS: Math.round(published.sent / ((published.sentUs - published.startedUs) / 1e6)),
    expected,
    received,
    lost: expected - received,
    deliveredPerS: Math.round(received / seconds),
    latencyMs: percentiles(latencies),
    latencySamples: latencies,
    cpuMs,
    cpuMsPer1000: round((sum(cpuMs) * 1000) / Math.max(1, received), 1),
    messagesInPerPush: inAfter.map((after, i) => round((after - inBefore[i]) / Math.max(1, published.sent), 3)),
  }
}

async function startSystem(kind, nodes, redis) {
  if (kind === 'switchboard') return startSwitchboard({ edges: nodes, redis })
  if (kind === 'socketio') return startSocketIo({ nodes, redis })
  return startBare()
}

function targetOf(system, redis) {
  if (system.kind === 'switchboard') return { system: 'switchboard', port: system.router.port, apiKey: secrets.apiKey }
  if (system.kind === 'socketio') return { system: 'socketio', port: redis.port }
  return { system: 'bare', port: system.port }
}

export async function pushes(sizes, log) {
  const users = Array.from({ length: sizes.clients }, (_, i) => `user-${i}`)
  const runs = []
  const plan = [
    ...sizes.nodes.flatMap((n) => [['switchboard', n], ['socketio', n]]),
    ['bare', 1],
  ]
  for (const [kind, nodes] of plan.filter(([kind]) => !sizes.only || sizes.only === kind)) {
    const redis = await startRedis()
    const system = await startSystem(kind, nodes, redis)
    const fleet = await connectFleet({ system: kind, ports: system.ports, users, processes: sizes.loadProcesses })
    log(`${kind} ×${nodes}: ${fleet.connected} clients connected in ${Math.round(fleet.elapsedMs)} ms${fleet.failed ? `, ${fleet.failed} failed: ${fleet.errors.join('; ')}` : ''}`)
    const publisher = startChild('publisher.mjs')
    const target = targetOf(system, redis)
    const isLast = nodes === sizes.nodes.at(-1) || kind === 'bare'
    const modes = [
      ['fixed', { rate: sizes.rate, durationMs: sizes.durationMs, maxInFlight: 256 }],
      ['max', { durationMs: sizes.maxDurationMs, maxInFlight: 128 }],
      ...(isLast ? [['batch100', { batch: 100, durationMs: sizes.maxDurationMs, maxInFlight: 16 }], ['batch1000', { batch: 1000, durationMs: sizes.maxDurationMs, maxInFlight: 4 }]] : []),
    ]
    for (const [mode, run] of modes) {
      const result = await measure(system, fleet, publisher, target, run)
      runs.push({ system: kind, nodes, mode, clients: fleet.connected, ...result })
      log(`  ${mode}: ${result.deliveredPerS}/s delivered, p99 ${result.latencyMs.p99} ms, ${result.cpuMsPer1000} CPU ms/1000, lost ${result.lost}, messages in per push ${result.messagesInPerPush.join('/')}`)
    }
    await publisher.stop()
    await closeFleet(fleet)
    await stopSystem(system)
    await stop(redis.proc)
  }
  return runs
}


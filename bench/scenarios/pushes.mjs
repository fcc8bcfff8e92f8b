// Scenarios 2, 3 and 6: single-recipient pushes at two fixed rates and as fast as they go,
// batch pushes of 100 and 1,000 recipients at the largest N, and how the work spreads as nodes
// are added; for Switchboard over N edges (through each of the router's ingresses, HTTP and
// the pipelined websocket, side by side on the same cluster), the socket.io incumbent over N
// nodes and the bare uWS floor.
import { closeFleet, collect, connectFleet, resetFleet, settle } from '../lib/fleet.mjs'
import { ask, cpuMeter, secrets, startBare, startChild, startRedis, startSocketIo, startSwitchboard, stop, stopSystem, sum } from '../lib/harness.mjs'
import { percentiles, round } from '../lib/stats.mjs'

/** The router's ingresses, each measured on the same cluster: POST /v1/push and the pipelined websocket. */
export const INGRESSES = ['http', 'pipeline']

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
    acknowledged: published.delivered, // recipients the system answered as delivered (null: it does not say)
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
    // Every server process (router, edges and Redis; socket.io nodes and Redis) per frame received: µs per delivered push.
    cpuMsPer1000: round((sum(cpuMs) * 1000) / Math.max(1, received), 1),
    messagesInPerPush: inAfter.map((after, i) => round((after - inBefore[i]) / Math.max(1, published.sent), 3)),
  }
}

async function startSystem(kind, nodes, redis) {
  if (kind === 'switchboard') return startSwitchboard({ edges: nodes, redis })
  if (kind === 'socketio') return startSocketIo({ nodes, redis })
  return startBare()
}

/** What the publisher sends to: one target per Switchboard ingress, one for the others. */
function targetsOf(system, redis) {
  if (system.kind === 'switchboard') return INGRESSES.map((ingress) => ({ system: 'switchboard', ingress, port: system.router.port, apiKey: secrets.apiKey }))
  if (system.kind === 'socketio') return [{ system: 'socketio', port: redis.port }]
  return [{ system: 'bare', port: system.port }]
}

/** The runs at `nodes`: both fixed rates and max everywhere; batches only at the largest N (and bare). */
function modesAt(sizes, isLast) {
  return [
    ...sizes.rates.map((rate) => ['fixed', { rate, durationMs: sizes.durationMs, maxInFlight: 256 }]),
    // As fast as it goes: the incumbent's publisher never waits for delivery, so ours may keep up
    // to the backend client's bound (1,000) in flight rather than be capped by the harness.
    ['max', { durationMs: sizes.maxDurationMs, maxInFlight: 1_000 }],
    ...(isLast
      ? [
          ['batch100', { batch: 100, durationMs: sizes.batchDurationMs, maxInFlight: 64 }],
          ['batch1000', { batch: 1000, durationMs: sizes.batchDurationMs, maxInFlight: 16 }],
        ]
      : []),
  ]
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
    const targets = targetsOf(system, redis)
    // Unmeasured: the first pushes after a start pay for JIT compilation and opening connections.
    if (sizes.warmUpMs > 0) for (const target of targets) await measure(system, fleet, publisher, target, { rate: sizes.rates[0], durationMs: sizes.warmUpMs, maxInFlight: 256 })
    const isLast = nodes === sizes.nodes.at(-1) || kind === 'bare'
    // Each mode through every ingress in turn, so a slow spell of the shared host hits both alike.
    for (const [mode, run] of modesAt(sizes, isLast)) {
      for (const target of targets) {
        const result = await measure(system, fleet, publisher, target, run)
        runs.push({ system: kind, ...(target.ingress ? { ingress: target.ingress } : {}), nodes, mode, rate: run.rate ?? null, batch: run.batch ?? 1, clients: fleet.connected, ...result })
        const name = `${target.ingress ? `${target.ingress} ` : ''}${mode}${run.rate ? ` ${run.rate}/s` : ''}`
        log(`  ${name}: ${result.deliveredPerS}/s delivered, p99 ${result.latencyMs.p99} ms, ${result.cpuMsPer1000} CPU ms/1000, lost ${result.lost}${result.errors ? `, ${result.errors} errors (${result.firstError})` : ''}, messages in per push ${result.messagesInPerPush.join('/')}`)
      }
    }
    await publisher.stop()
    await closeFleet(fleet)
    await stopSystem(system)
    await stop(redis.proc)
  }
  return runs
}

// Scenarios 2, 3 and 6 and the scale curve: single-recipient pushes at two fixed rates and as
// fast as they go, Switchboard over N edges (through each of the router's ingresses, HTTP and
// the pipelined websocket, side by side on the same cluster) against the socket.io incumbent
// over N nodes, alternating, at every N of the curve; batch pushes of 100 and 1,000 recipients
// at one N; how the work spreads as nodes are added; and the bare uWS floor.
import { closeFleet, collect, connectFleet, resetFleet, settle } from '../lib/fleet.mjs'
import { ask, secrets, startBare, startChild, startRedis, startSocketIo, startSwitchboard, stop, stopSystem, sum, turnMeter } from '../lib/harness.mjs'
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

/** One measured run: publish, wait for the frames, then CPU, turns, latency and spread. */
async function measure(system, fleet, publisher, target, run) {
  await resetFleet(fleet)
  const inBefore = await messagesIn(system)
  const meter = await turnMeter(system.servers)
  const startedMs = performance.now()
  const published = await publisher.call({ target, users: fleet.users, ...run })
  const expected = published.sent * Math.min(run.batch ?? 1, fleet.users.length)
  const settled = await settle(fleet, expected)
  const { cpuMs, turns } = await meter({ seconds: (performance.now() - startedMs) / 1000, delivered: settled })
  const inAfter = await messagesIn(system)
  const { received, latencies, lastReceiveUs } = await collect(fleet)
  const seconds = (Math.max(lastReceiveUs, published.sentUs) - published.startedUs) / 1e6
  return {
    sent: published.sent,
    acknowledged: published.delivered, // recipients the system answered as delivered (`wait: routed`: handed to an edge; null: it does not say)
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
    // Wake-ups (voluntary context switches of each main thread) per second and per delivered push, CPU µs per wake-up.
    turns,
    messagesInPerPush: inAfter.map((after, i) => round((after - inBefore[i]) / Math.max(1, published.sent), 3)),
  }
}

async function startSystem(kind, nodes, redis) {
  if (kind === 'switchboard') return startSwitchboard({ edges: nodes, redis })
  if (kind === 'socketio') return startSocketIo({ nodes, redis })
  return startBare()
}

/**
 * What the publisher sends to: one target per Switchboard ingress (with `wait`, when asked),
 * one for the others. Without `wait`, Switchboard also gets the pipeline with `wait: routed`
 * at the highest fixed rate (`onlyAtRate`), the curve's line for issue 22's routed targets.
 */
function targetsOf(system, redis, wait, sizes) {
  if (system.kind === 'switchboard') {
    const target = (ingress, extra) => ({ system: 'switchboard', ingress, port: system.router.port, apiKey: secrets.apiKey, ...extra })
    const defaults = INGRESSES.map((ingress) => target(ingress, wait ? { wait } : {}))
    return wait ? defaults : [...defaults, target('pipeline', { wait: 'routed', onlyAtRate: sizes.rates.at(-1) })]
  }
  if (system.kind === 'socketio') return [{ system: 'socketio', port: redis.port }]
  return [{ system: 'bare', port: system.port }]
}

/** The runs at one point: both fixed rates and max everywhere; with `withBatches`, batches of 100 and 1,000 too. */
function modesAt(sizes, withBatches) {
  return [
    ...sizes.rates.map((rate) => ['fixed', { rate, durationMs: sizes.durationMs, maxInFlight: 256 }]),
    // As fast as it goes: the incumbent's publisher never waits for delivery, so ours may keep up
    // to the backend client's bound (1,000) in flight rather than be capped by the harness.
    ['max', { durationMs: sizes.maxDurationMs, maxInFlight: 1_000 }],
    ...(withBatches
      ? [
          ['batch100', { batch: 100, durationMs: sizes.batchDurationMs, maxInFlight: 64 }],
          ['batch1000', { batch: 1000, durationMs: sizes.batchDurationMs, maxInFlight: 16 }],
        ]
      : []),
  ]
}

/** Redis, the system of `kind` over `nodes` nodes, its fleet of clients and a publisher, warmed up. */
async function bringUp(kind, nodes, users, sizes, log) {
  const redis = await startRedis()
  const system = await startSystem(kind, nodes, redis)
  const fleet = await connectFleet({ system: kind, ports: system.ports, users, processes: sizes.loadProcesses })
  log(`${kind} ×${nodes}: ${fleet.connected} clients connected in ${Math.round(fleet.elapsedMs)} ms${fleet.failed ? `, ${fleet.failed} failed: ${fleet.errors.join('; ')}` : ''}`)
  const publisher = startChild('publisher.mjs')
  const up = { kind, nodes, redis, system, fleet, publisher, targets: targetsOf(system, redis, sizes.wait, sizes) }
  // Unmeasured: the first pushes after a start pay for JIT compilation and opening connections.
  if (sizes.warmUpMs > 0) for (const target of up.targets) await measure(system, fleet, publisher, target, { rate: target.onlyAtRate ?? sizes.rates[0], durationMs: sizes.warmUpMs, maxInFlight: 256 })
  return up
}

async function bringDown({ redis, system, fleet, publisher }) {
  await publisher.stop()
  await closeFleet(fleet)
  await stopSystem(system)
  await stop(redis.proc)
}

/** Runs `mode` through every target of `up` and logs each; the rows go to `runs`. */
async function measureMode(up, [mode, run], repetition, runs, log) {
  for (const target of up.targets.filter((t) => !t.onlyAtRate || (mode === 'fixed' && t.onlyAtRate === run.rate))) {
    const result = await measure(up.system, up.fleet, up.publisher, target, run)
    const wait = target.wait ? { wait: target.wait } : {}
    runs.push({ system: up.kind, ...(target.ingress ? { ingress: target.ingress } : {}), ...wait, nodes: up.nodes, repetition, mode, rate: run.rate ?? null, batch: run.batch ?? 1, clients: up.fleet.connected, ...result })
    const name = `${target.ingress ? `${target.ingress} ` : ''}${target.wait ? `wait ${target.wait} ` : ''}${mode}${run.rate ? ` ${run.rate}/s` : ''}`
    const { total } = result.turns
    log(`  ${up.kind} ×${up.nodes} #${repetition + 1} ${name}: ${result.deliveredPerS}/s delivered, p99 ${result.latencyMs.p99} ms, ${result.cpuMsPer1000} CPU µs/push, ${total.wakeupsPerPush} wake-ups/push at ${total.cpuUsPerWakeup} µs, lost ${result.lost}${result.errors ? `, ${result.errors} errors (${result.firstError})` : ''}, messages in per push ${result.messagesInPerPush.join('/')}`)
  }
}

/**
 * The scale curve: at each N, Switchboard (N edges) and the incumbent (N socket.io nodes) are
 * both up, each with its own Redis and fleet; `sizes.repetitions` times, every mode runs on
 * one and then the other, the order alternating per repetition (so a slow spell of the shared
 * host hits both alike, and each repetition gives a ratio of two runs back to back). Batches
 * run once, at N = `sizes.batchNodes` (or the largest N); bare uWS once, at the end.
 */
export async function pushes(sizes, log) {
  const users = Array.from({ length: sizes.clients }, (_, i) => `user-${i}`)
  const runs = []
  const kinds = ['switchboard', 'socketio'].filter((kind) => !sizes.only || sizes.only === kind)
  const batchNodes = sizes.nodes.includes(sizes.batchNodes) ? sizes.batchNodes : sizes.nodes.at(-1)
  for (const nodes of sizes.nodes) {
    const ups = []
    for (const kind of kinds) ups.push(await bringUp(kind, nodes, users, sizes, log))
    for (let repetition = 0; repetition < sizes.repetitions; repetition++) {
      const order = repetition % 2 === 0 ? ups : [...ups].reverse()
      for (const mode of modesAt(sizes, repetition === 0 && nodes === batchNodes)) {
        for (const up of order) await measureMode(up, mode, repetition, runs, log)
      }
    }
    for (const up of ups) await bringDown(up)
  }
  if (!sizes.only || sizes.only === 'bare') {
    const bare = await bringUp('bare', 1, users, sizes, log)
    for (const mode of modesAt(sizes, true)) await measureMode(bare, mode, 0, runs, log)
    await bringDown(bare)
  }
  return runs
}

/** Seconds the pushes scenario takes at `sizes`, estimated: the runs' durations plus what each costs around them. */
export function pushesSeconds(sizes) {
  const SETTLE_S = 0.5 // a run's reset, settle (the last frames), collection and the meters
  const START_S = 2 + sizes.clients / 1_000 // Redis and the servers, then the fleet's connects
  const run = ([, r]) => r.durationMs / 1000 + SETTLE_S
  const targets = INGRESSES.length + 1 // Switchboard's ingresses, the incumbent's emitter
  const modes = modesAt(sizes, false)
  const routed = sizes.wait ? 0 : run(modes[sizes.rates.length - 1]) // the pipeline with wait: routed, at the highest fixed rate
  const batches = modesAt(sizes, true).slice(modes.length)
  const perN = 2 * START_S + ((targets + 1) * sizes.warmUpMs) / 1000 + sizes.repetitions * (targets * modes.reduce((s, m) => s + run(m), 0) + routed)
  const bare = START_S + [...modes, ...batches].reduce((s, m) => s + run(m), 0)
  return Math.round(sizes.nodes.length * perN + targets * batches.reduce((s, m) => s + run(m), 0) + bare)
}

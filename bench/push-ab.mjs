// A/B, side by side in one run: does a change make the push path slower? This checkout (`after`)
// against a baseline checkout (built), each with its own Redis, one router and one edge, 1,000
// connected clients (the fleet of this checkout's bench, for both), and one publisher process
// for both (this checkout's: the backend client, 200-byte single-recipient pushes, stamped for
// latency). For each ingress (`http`: POST /v1/push; `pipeline`: the pipelined websocket) and
// each rate — 1,000/s and 5,000/s on schedule (at most 256 in flight), and `max`, as fast as it
// goes with 1,000 in flight (the backend client's bound), as scenarios/pushes.mjs runs them —
// one measured run of 5 s per build per round:
// - server CPU per delivered push: router + edge + Redis, and each (µs; /proc, 10 ms ticks),
//   over the window from the first push to the last frame (or 1 s without one);
// - delivered/s over the same window; p50/p99 latency, publisher's stamp → client's frame;
// - turns: wake-ups (voluntary context switches of each server's main thread, /proc/<pid>/status)
//   per second and per delivered push, and CPU µs per wake-up, in all and for the router and edge;
// - `others`: the CPU the rest of the host used meanwhile (% of all cores; everything this bench
//   started — both systems, both fleets, the publisher and this process — is not counted), to
//   spot a run disturbed by another load.
// Both systems stay up for the whole run; each gets an unmeasured 1 s warm-up per ingress first.
// Order: for each (rate, ingress) the two builds run back to back, baseline first in even
// rounds and after first in odd ones (rounds alternate: A B, B A, A B, …), so a slow spell of
// the shared host hits both builds of a pair alike.
//   node bench/push-ab.mjs --baseline /path/to/other/checkout [--rounds 3] [--smoke]
//   node bench/push-ab.mjs --receipts [--rounds 3] [--smoke]
// --receipts: this checkout against itself, `after` asking for receipts on every push
// (`"ack":{"timeoutMs":5000}`; the clients acknowledge each push at the end of the turn that
// read it, as the SDK does): what receipts cost per push. With --baseline too, both builds ask
// for receipts: a change to the receipts path, A/B.
// --smoke: 100 clients, runs of 1 s, warm-ups of 0.3 s (checks the harness, measures little).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { closeFleet, collect, connectFleet, resetFleet, settle } from './lib/fleet.mjs'
import { cpuMeter, machine, root, secrets, sleep, startChild, startRedis, startSwitchboard, stop, stopSystem, sum, turnMeter } from './lib/harness.mjs'
import { abOptions } from './lib/ab.mjs'
import { median, percentiles, round as roundTo } from './lib/stats.mjs'
import { INGRESSES } from './scenarios/pushes.mjs'

const { baseline, smoke, rounds: ROUNDS, option } = abOptions('push-ab.mjs', { orBaseline: (args) => (args.includes('--receipts') ? root : undefined) })
const withReceipts = process.argv.includes('--receipts')
/** This checkout against itself, receipts against none; with --baseline, both builds ask for receipts. */
const receipts = withReceipts && option('--baseline') === undefined
/** What each build's pushes ask for beyond the push itself. */
const asks = { baseline: withReceipts && !receipts ? { ack: 5_000 } : {}, after: withReceipts ? { ack: 5_000 } : {} }
const CLIENTS = smoke ? 100 : 1_000
const DURATION_MS = smoke ? 1_000 : 5_000
const WARM_UP_MS = smoke ? 300 : 1_000
/** Fixed rates (pushes/s) and then `null`: as fast as it goes. */
const RATES = [1_000, 5_000, null]
const BUILDS = ['baseline', 'after']
const from = { baseline, after: root }
for (const app of ['router', 'edge']) if (!existsSync(`${from.baseline}apps/${app}/dist/main.js`)) throw new Error(`${from.baseline}apps/${app}/dist/main.js is missing: npm ci && npm run build in the baseline checkout first`)
const commit = (dir) => execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()

const log = (line) => process.stdout.write(`${line}\n`)
const m = machine()
log(`push-ab on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, Redis ${m.redis}; ${ROUNDS} rounds, ${CLIENTS} clients, runs of ${DURATION_MS / 1000} s; ${receipts ? `this checkout (${commit(root)}): baseline without receipts, after with receipts (ack 5 s)` : `baseline ${commit(from.baseline)} (${from.baseline}), after ${commit(from.after)} (${from.after})${withReceipts ? ', both with receipts (ack 5 s)' : ''}`}`)

/** Busy CPU time of the whole host (ms, every core), from /proc/stat. */
async function hostBusyMs() {
  const [user, nice, system, , , irq, softirq, steal] = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return (user + nice + system + irq + softirq + steal) * 10
}

const label = (rate) => (rate ? `${rate / 1000}k/s` : 'max')
const runOf = (rate, durationMs) => (rate ? { rate, durationMs, maxInFlight: 256 } : { durationMs, maxInFlight: 1_000 })

const publisher = startChild('publisher.mjs')
const builds = {}
for (const name of BUILDS) {
  const redis = await startRedis()
  const system = await startSwitchboard({ edges: 1, redis, from: from[name] })
  const users = Array.from({ length: CLIENTS }, (_, i) => `user-${i}`)
  const fleet = await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: 2 })
  if (fleet.failed > 0) throw new Error(`${name}: ${fleet.failed} connections failed: ${fleet.errors.join('; ')}`)
  const targets = Object.fromEntries(INGRESSES.map((ingress) => [ingress, { system: 'switchboard', ingress, port: system.router.port, apiKey: secrets.apiKey, ...asks[name] }]))
  builds[name] = { redis, system, fleet, targets }
  log(`${name}: ${fleet.connected} clients connected in ${Math.round(fleet.elapsedMs)} ms`)
}
// Every process this bench started, under names of its own: what `others` leaves out.
const ours = [
  ...BUILDS.flatMap((name) => [...builds[name].system.servers, ...builds[name].fleet.loaders.map((l, i) => ({ name: `loadgen-${i}`, pid: l.proc.pid }))].map((p) => ({ name: `${name}-${p.name}`, pid: p.pid }))),
  { name: 'publisher', pid: publisher.proc.pid },
  { name: 'bench', pid: process.pid },
]

/** One run of `name` through `ingress`: publish, wait for the frames, then CPU, rate, latency and the rest of the host. */
async function measure(name, ingress, run) {
  const { system, fleet, targets } = builds[name]
  await resetFleet(fleet)
  const hostBefore = await hostBusyMs()
  const ourCpu = await cpuMeter(ours)
  const serverMeter = await turnMeter(system.servers)
  const started = performance.now()
  const published = await publisher.call({ target: targets[ingress], users: fleet.users, ...run })
  const settled = await settle(fleet, published.sent)
  const wallMs = performance.now() - started
  const { cpuMs: used, turns } = await serverMeter({ seconds: wallMs / 1000, delivered: settled })
  const others = (await hostBusyMs()) - hostBefore - sum(await ourCpu())
  const { received, latencies, lastReceiveUs } = await collect(fleet)
  const per = (ms) => roundTo((ms * 1000) / Math.max(1, received), 1)
  const { p50, p99 } = percentiles(latencies)
  return {
    totalUs: per(sum(used)),
    routerUs: per(used.router),
    edgeUs: per(used['edge-1']),
    redisUs: per(used.redis),
    wakeupsPerS: turns.total.wakeupsPerS,
    wakeupsPerPush: turns.total.wakeupsPerPush,
    routerWakeupsPerPush: turns.router.wakeupsPerPush,
    edgeWakeupsPerPush: turns['edge-1'].wakeupsPerPush,
    usPerWakeup: turns.total.cpuUsPerWakeup,
    routerUsPerWakeup: turns.router.cpuUsPerWakeup,
    edgeUsPerWakeup: turns['edge-1'].cpuUsPerWakeup,
    deliveredPerS: Math.round(received / ((Math.max(lastReceiveUs, published.sentUs) - published.startedUs) / 1e6)),
    sentPerS: Math.round(published.sent / ((published.sentUs - published.startedUs) / 1e6)),
    p50,
    p99,
    lost: published.sent - received,
    errors: published.errors,
    firstError: published.firstError,
    othersPct: Math.max(0, Math.round((others / (wallMs * cpus().length)) * 100)),
  }
}

// Unmeasured: the first pushes after a start pay for JIT compilation and opening connections.
for (const name of BUILDS) for (const ingress of INGRESSES) await measure(name, ingress, runOf(RATES[0], WARM_UP_MS))

const rows = []
const started = Date.now()
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? BUILDS : [...BUILDS].reverse()
  for (const rate of RATES) {
    for (const ingress of INGRESSES) {
      for (const name of order) {
        const r = { name, round, ingress, rate, ...(await measure(name, ingress, runOf(rate, DURATION_MS))) }
        rows.push(r)
        const trouble = `${r.lost ? `, ${r.lost} lost` : ''}${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}`
        log(`round ${round} ${name.padEnd(8)} ${ingress.padEnd(8)} ${label(rate).padEnd(6)} ${r.totalUs} µs/push (router ${r.routerUs}, edge ${r.edgeUs}, Redis ${r.redisUs}), ${r.wakeupsPerPush} wake-ups/push at ${r.usPerWakeup} µs (router ${r.routerWakeupsPerPush} at ${r.routerUsPerWakeup} µs), ${r.deliveredPerS}/s delivered (${r.sentPerS}/s sent), p50 ${r.p50} ms, p99 ${r.p99} ms; others ${r.othersPct}% of the host${trouble}`)
        await sleep(300)
      }
    }
  }
}
const tookS = Math.round((Date.now() - started) / 1000)

await publisher.stop()
for (const { redis, system, fleet } of Object.values(builds)) {
  await closeFleet(fleet)
  await stopSystem(system)
  await stop(redis.proc)
}

// Per (ingress, rate) and measure: each build's median and range over the rounds, the ratio of
// the medians (after / baseline), and the median and range of the per-round ratios (each pair
// ran back to back).
const MEASURES = [
  ['server CPU per delivered push, µs', 'totalUs', 1],
  ['… router, µs', 'routerUs', 1],
  ['… edge, µs', 'edgeUs', 1],
  ['… Redis, µs', 'redisUs', 1],
  ['wake-ups per delivered push, all servers', 'wakeupsPerPush', 3],
  ['… router', 'routerWakeupsPerPush', 3],
  ['… edge', 'edgeWakeupsPerPush', 3],
  ['wake-ups per second, all servers', 'wakeupsPerS', 0],
  ['CPU per wake-up, all servers, µs', 'usPerWakeup', 0],
  ['… router, µs', 'routerUsPerWakeup', 0],
  ['… edge, µs', 'edgeUsPerWakeup', 0],
  ['delivered/s', 'deliveredPerS', 0],
  ['latency p50, ms (fixed rates)', 'p50', 2],
  ['latency p99, ms (fixed rates)', 'p99', 2],
  ['others, % of the host', 'othersPct', 0],
]
const fmt = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : '—')
const ratio = (a, b) => (a > 0 ? b / a : NaN)
const cell = (xs, digits) => `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})`
log('')
log(`| ingress | rate | measure | baseline: median (range) | after: median (range) | after / baseline | per-round after / baseline: median (range) |`)
log(`|---|---|---|---|---|---|---|`)
for (const ingress of INGRESSES) {
  for (const rate of RATES) {
    for (const [title, key, digits] of MEASURES) {
      if (!rate && key.startsWith('p')) continue // latency as fast as it goes is the queue the publisher keeps, not the path's
      const of = (name) => rows.filter((r) => r.name === name && r.ingress === ingress && r.rate === rate).sort((a, b) => a.round - b.round).map((r) => r[key])
      const [a, b] = BUILDS.map(of)
      const paired = a.map((x, i) => ratio(x, b[i]))
      const times = (x) => (Number.isFinite(x) ? `${fmt(x, 3)}×` : '—')
      const ratios = key === 'othersPct' ? ' | ' : `${times(ratio(median(a), median(b)))} | ${paired.every(Number.isFinite) ? cell(paired, 3) : '—'}`
      log(`| ${ingress} | ${label(rate)} | ${title} | ${cell(a, digits)} | ${cell(b, digits)} | ${ratios} |`)
    }
  }
}
const troubled = rows.filter((r) => r.lost > 0 || r.errors > 0)
log('')
log(`${rows.length} measured runs in ${tookS} s${troubled.length ? `; ${troubled.length} with lost frames or errors (see above)` : ''}`)
log(`raw: ${JSON.stringify(rows)}`)
process.exit(0)

// A/B, side by side in one run: what token lifetime on live connections (issue 20) costs. Since
// then each connection carries its token's `exp` and `iat` (two more fields of its user data)
// and one entry in the edge's expiry heap (two array slots), and the registration script reads
// the user's revocation key (one GET per connection registered). This checkout and a baseline
// checkout (built, before token lifetime) alternate, x3 by default, each with its own Redis and
// one edge:
// - memory: a fresh Redis, edge and router; `(after − before) / N` of the edge's RSS and V8 heap,
//   both read idle (harness idleGc: 10 s without load, none in a smoke run, then two forced GCs), with N idle,
//   authenticated, registered connections (19,000, from 4 load-generator processes on 127.0.0.2–5,
//   as scenarios/connections.mjs measures it; read at 10,000 too), RSS split into anonymous and
//   file-backed pages and the heap into V8's spaces;
// - storm: 5,000 raw clients connecting at once (2 processes, 500 at a time) to an edge kept for
//   the whole run (warmed up by one unmeasured storm): server CPU per connection (edge, Redis,
//   router) and connections/s.
// Every token the fleet mints carries `exp` (1 h) and `iat`, for both builds. Each storm also
// reports the CPU the rest of the host used meanwhile (`others`, % of all cores), to spot a run
// disturbed by another load.
//   node bench/tokens-ab.mjs --baseline /path/to/other/checkout [--rounds 3] [--smoke]
import { readFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { abOptions, median } from './lib/ab.mjs'
import { closeFleet, connectFleet } from './lib/fleet.mjs'
import { IDLE_BEFORE_READ_MS, cpuMeter, idleGc, cpuMs, machine, sleep, startRedis, startSwitchboard, stop, stopSystem, sum } from './lib/harness.mjs'

const { option, baseline, smoke, rounds: ROUNDS } = abOptions('tokens-ab.mjs')
const MEMORY_CLIENTS = smoke ? 400 : 19_000
/** Memory is read at this many connections too: the marginal cost from here to MEMORY_CLIENTS. */
const MEMORY_STEP = smoke ? 200 : 10_000
const STORM_CLIENTS = smoke ? 200 : 5_000
/** One process holds at most ~20,000 descriptors: 19,000 clients are 4 processes of 4,750. */
const MEMORY_PROCESSES = 4
const TOKEN = { lifetime: '1h', issuedAt: true }
/** `--only memory` or `--only storm`: one half of the bench (to look into one figure). */
const only = option('--only')
const BUILDS = ['baseline', 'tokens']
const from = { baseline, tokens: undefined }
// Offlines at once, and storms 3 s apart: the previous storm's closes are settled before the next storm's meter starts.
const presence = { PRESENCE_OFFLINE_GRACE_MS: '0' }

const log = (line) => process.stdout.write(`${line}\n`)
const m = machine()
log(`tokens-ab on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, Redis ${m.redis}; ${ROUNDS} rounds, memory at ${MEMORY_CLIENTS}, storms of ${STORM_CLIENTS}`)

/** Busy CPU time of the whole host (ms, every core), from /proc/stat. */
async function hostBusyMs() {
  const [user, nice, system, , , irq, softirq, steal] = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return (user + nice + system + irq + softirq + steal) * 10
}

/** Idle, after two GCs (idleGc): process.memoryUsage(), the V8 spaces, and RSS split into anonymous and file-backed pages (KiB, /proc/<pid>/status). */
async function snapshot(edge) {
  const { memory, spaces } = await idleGc(edge, smoke ? 0 : IDLE_BEFORE_READ_MS)
  const status = await readFile(`/proc/${edge.pid}/status`, 'utf8')
  const kib = (field) => Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))?.[1] ?? NaN)
  return { memory, spaces, rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') }
}

/** Connects exactly `users.length` clients: 100 at a time per process (on a loaded host, an upgrade still queued after uWS's 10 s HTTP timeout is closed before it is answered); the few that fail are connected again. */
async function connectExactly(system, users, tag) {
  const fleets = [await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: MEMORY_PROCESSES, concurrency: 100, token: TOKEN })]
  let retried = fleets[0].failed
  for (let retry = 1; fleets.at(-1).failed > 0; retry++) {
    if (retry > 3 || fleets.at(-1).failed > users.length / 100) throw new Error(`${fleets.at(-1).failed} connections failed: ${fleets.at(-1).errors.join('; ')}`)
    const again = Array.from({ length: fleets.at(-1).failed }, (_, i) => `${tag}-r${retry}-${i}`)
    fleets.push(await connectFleet({ system: 'switchboard', ports: system.ports, users: again, processes: 1, concurrency: 100, token: TOKEN }))
    retried += fleets.at(-1).failed
  }
  return { fleets, retried }
}

/**
 * A fresh Redis, edge and router; the edge's memory after GC with none, MEMORY_STEP and then
 * MEMORY_CLIENTS idle connections: per connection at MEMORY_CLIENTS (what the bench reports),
 * and the marginal cost from the first size to the second (what a fixed cost cannot move).
 */
async function memory(name, round) {
  const redis = await startRedis()
  const system = await startSwitchboard({ edges: 1, redis, ...(from[name] && { from: from[name] }) })
  const edge = system.edges[0]
  const before = await snapshot(edge)
  const users = Array.from({ length: MEMORY_CLIENTS }, (_, i) => `m-${name}-${round}-${i}`)
  const first = await connectExactly(system, users.slice(0, MEMORY_STEP), `m-${name}-${round}-a`)
  const step = await snapshot(edge)
  const second = await connectExactly(system, users.slice(MEMORY_STEP), `m-${name}-${round}-b`)
  const after = await snapshot(edge)
  for (const fleet of [...first.fleets, ...second.fleets]) await closeFleet(fleet)
  await stopSystem(system)
  await stop(redis.proc)
  const per = (kib, n = MEMORY_CLIENTS) => Math.round((kib / n) * 1000) / 1000
  const marginal = (kib) => per(kib, MEMORY_CLIENTS - MEMORY_STEP)
  return {
    name,
    round,
    rssKiB: per(after.rss - before.rss),
    rssAnonKiB: per(after.anon - before.anon),
    rssFileKiB: per(after.file - before.file),
    heapKiB: per((after.memory.heapUsed - before.memory.heapUsed) / 1024),
    heapTotalKiB: per((after.memory.heapTotal - before.memory.heapTotal) / 1024),
    externalKiB: per((after.memory.external - before.memory.external) / 1024),
    rssMarginalKiB: marginal(after.rss - step.rss),
    heapMarginalKiB: marginal((after.memory.heapUsed - step.memory.heapUsed) / 1024),
    // Each V8 space's committed (size) and used bytes per connection, KiB.
    spaces: Object.fromEntries(Object.keys(after.spaces).map((k) => [k.replace(/_space$/, ''), [per((after.spaces[k].size - before.spaces[k].size) / 1024), per((after.spaces[k].used - before.spaces[k].used) / 1024)]])),
    retried: first.retried + second.retried,
  }
}

const stormSystems = {}
for (const name of BUILDS) {
  const redis = await startRedis()
  stormSystems[name] = { redis, system: await startSwitchboard({ edges: 1, redis, edgeEnv: presence, routerEnv: presence, ...(from[name] && { from: from[name] }) }) }
}

async function storm(name, round) {
  const { system } = stormSystems[name]
  const users = Array.from({ length: STORM_CLIENTS }, (_, i) => `st-${name}-${round}-${i}`)
  const hostBefore = await hostBusyMs()
  const selfBefore = await cpuMs(process.pid)
  const started = performance.now()
  const cpu = await cpuMeter(system.servers)
  const fleet = await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: 2, concurrency: 500, token: TOKEN })
  const used = await cpu()
  // The load generators' whole life (they start with the storm) and this process count as ours; the rest of the host is `others`.
  const loaders = sum(await Promise.all(fleet.loaders.map((l) => cpuMs(l.proc.pid))))
  const others = (await hostBusyMs()) - hostBefore - sum(used) - loaders - ((await cpuMs(process.pid)) - selfBefore)
  const wallMs = performance.now() - started
  if (fleet.failed > 0) throw new Error(`${fleet.failed} connections failed: ${fleet.errors.join('; ')}`)
  await closeFleet(fleet)
  const per = (ms) => Math.round((ms * 1000) / STORM_CLIENTS)
  return {
    name,
    round,
    totalUs: per(sum(used)),
    edgeUs: per(used['edge-1']),
    redisUs: per(used.redis),
    routerUs: per(used.router),
    perS: Math.round(STORM_CLIENTS / (fleet.elapsedMs / 1000)),
    othersPct: Math.max(0, Math.round((others / (wallMs * cpus().length)) * 100)),
  }
}

if (only !== 'memory') {
  await storm('tokens', 'w')
  await storm('baseline', 'w')
  await sleep(3_000)
}
const mem = []
const storms = []
for (let round = 0; round < ROUNDS; round++) {
  for (const name of round % 2 === 0 ? ['tokens', 'baseline'] : ['baseline', 'tokens']) {
    if (only === 'storm') {
      storms.push(await storm(name, round))
      log(`round ${round} ${name.padEnd(8)} storm: ${JSON.stringify(storms.at(-1))}`)
      await sleep(3_000)
      continue
    }
    const mr = await memory(name, round)
    mem.push(mr)
    log(`round ${round} ${name.padEnd(8)} memory: ${mr.rssKiB} KiB RSS (anonymous ${mr.rssAnonKiB}, file ${mr.rssFileKiB}; ${mr.rssMarginalKiB} from ${MEMORY_STEP} to ${MEMORY_CLIENTS}), ${mr.heapKiB} KiB heap (${mr.heapTotalKiB} KiB heap total; ${mr.heapMarginalKiB} from ${MEMORY_STEP} to ${MEMORY_CLIENTS}), ${mr.externalKiB} KiB external per connection${mr.retried ? `, ${mr.retried} connected again` : ''} (load ${loadavg()[0].toFixed(1)})`)
    log(`  V8 spaces, KiB per connection [committed, used]: ${Object.entries(mr.spaces).filter(([, [a, b]]) => a !== 0 || b !== 0).map(([k, v]) => `${k} ${v.join(', ')}`).join('; ')}`)
    if (only === 'memory') continue
    await sleep(1_000)
    const sr = await storm(name, round)
    storms.push(sr)
    log(`round ${round} ${name.padEnd(8)} storm: ${sr.totalUs} µs/connection (edge ${sr.edgeUs}, Redis ${sr.redisUs}, router ${sr.routerUs}), ${sr.perS}/s; others ${sr.othersPct}% of the host`)
    await sleep(3_000)
  }
}

for (const { redis, system } of Object.values(stormSystems)) {
  await stopSystem(system)
  await stop(redis.proc)
}

// Medians and ranges per build; the difference of the medians, and the median and range of the per-round differences (tokens − baseline).
const fmt = (x, digits) => (digits === 0 ? String(Math.round(x)) : x.toFixed(digits))
const summary = (rows, key, digits) => {
  const of = (name) => rows.filter((r) => r.name === name).map((r) => r[key])
  const [a, b] = BUILDS.map(of)
  const paired = a.map((x, i) => b[i] - x)
  const cell = (xs) => `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})`
  const sign = (x) => (x > 0 ? '+' : '') + fmt(x, digits)
  return `| ${cell(a)} | ${cell(b)} | ${sign(median(b) - median(a))} | ${sign(median(paired))} (${sign(Math.min(...paired))} to ${sign(Math.max(...paired))}) |`
}
log('')
log(`| Measure | baseline: median (range) | tokens: median (range) | difference of medians | per-round difference: median (range) |`)
log(`|---|---|---|---|---|`)
if (mem.length > 0) {
  log(`| RSS per idle connection at ${MEMORY_CLIENTS.toLocaleString('en')}, KiB ${summary(mem, 'rssKiB', 3)}`)
  log(`| V8 heap (used) per idle connection at ${MEMORY_CLIENTS.toLocaleString('en')}, KiB ${summary(mem, 'heapKiB', 3)}`)
  log(`| … RSS, anonymous pages, KiB ${summary(mem, 'rssAnonKiB', 3)}`)
  log(`| … RSS, file-backed pages, KiB ${summary(mem, 'rssFileKiB', 3)}`)
  log(`| … V8 heap total (committed), KiB ${summary(mem, 'heapTotalKiB', 3)}`)
  log(`| RSS per connection from ${MEMORY_STEP.toLocaleString('en')} to ${MEMORY_CLIENTS.toLocaleString('en')}, KiB ${summary(mem, 'rssMarginalKiB', 3)}`)
  log(`| V8 heap (used) per connection from ${MEMORY_STEP.toLocaleString('en')} to ${MEMORY_CLIENTS.toLocaleString('en')}, KiB ${summary(mem, 'heapMarginalKiB', 3)}`)
}
if (storms.length > 0) log(`| Connect storm of ${STORM_CLIENTS.toLocaleString('en')}: server CPU per connection, µs ${summary(storms, 'totalUs', 0)}`)
if (storms.length > 0) {
  log(`| … edge, µs ${summary(storms, 'edgeUs', 0)}`)
  log(`| … Redis, µs ${summary(storms, 'redisUs', 0)}`)
  log(`| … router, µs ${summary(storms, 'routerUs', 0)}`)
  log(`| … connections/s ${summary(storms, 'perS', 0)}`)
}
log('')
log(`raw: ${JSON.stringify({ mem, storms })}`)
process.exit(0)

// Runs the benchmark scenarios side by side and writes bench/results/latest.json, the SVG plots
// and the figures section of BENCHMARKS.md.
//   node bench/run.mjs                     every scenario, full sizes (prints its estimated duration first)
//   node bench/run.mjs pushes registry     only those scenarios
//   node bench/run.mjs --smoke             tiny sizes, seconds: checks the harness, measures nothing
//   --nodes 1,3,6,9,12                     the scale curve's N (default 1,3,6,9; 12 if the machine bears it)
//   --repetitions 3                        alternating repetitions per point of the curve
//   --wait routed                          pushes with "wait":"routed" (the router answers once the edges have their frames)
//   node bench/run.mjs soak                the 100,000-connection soak (~13 min; not in the default run): alone,
//                                          to bench/results/soak.json; --edges 3 --per-edge 5000 --minutes 2 resize it
// Build first (npm run bench does). Scenarios: memory, pushes, storm, registry, presence (the default run), soak.
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { IDLE_BEFORE_READ_MS, killAll, machine } from './lib/harness.mjs'
import { capacityMarkdown } from './lib/capacity.mjs'
import { crossovers, scaleCurve } from './lib/curve.mjs'
import { markdown, plots, targets } from './lib/report.mjs'
import { memory, storm } from './scenarios/connections.mjs'
import { pushes, pushesSeconds } from './scenarios/pushes.mjs'
import { presence } from './scenarios/presence.mjs'
import { registry } from './scenarios/registry.mjs'
import { soak } from './scenarios/soak.mjs'

// Durations keep each run's figures stable (CPU is read in 10 ms ticks per process, so a run
// needs thousands of pushes); the scale curve's N and repetitions make most of the full run.
const SIZES = {
  full: {
    clients: 5_000, nodes: [1, 3, 6, 9], repetitions: 3, batchNodes: 3, rates: [1_000, 5_000], warmUpMs: 1_000, durationMs: 6_000, maxDurationMs: 5_000, batchDurationMs: 4_000, memory: [10_000, 19_000], memoryIdleMs: IDLE_BEFORE_READ_MS, storm: 10_000, registryUsers: 1_000_000, registryRounds: 30, loadProcesses: 4,
    // 6 × 17,000 connections from 6 load generators: each under its 20,000 file descriptors, each source address under its ~28,000 ports.
    soak: { edges: 6, perEdge: 17_000, loadProcesses: 6, concurrency: 200, minutes: 10, minuteMs: 60_000, flatMinutes: 8, roomMembers: [100, 1_000], churnPerMinute: 0.01, workload: { pushRate: 2_000, keepEvery: 4, roomRate: 10, presenceRate: 200, presenceBatch: 10 } },
  },
  smoke: {
    clients: 200, nodes: [1, 3], repetitions: 1, batchNodes: 3, rates: [100, 300], warmUpMs: 0, durationMs: 400, maxDurationMs: 300, batchDurationMs: 300, memory: [100, 200], memoryIdleMs: 0, storm: 200, registryUsers: 20_000, registryRounds: 5, loadProcesses: 2,
    // "Minutes" of 5 s, and a tenth of the users reconnecting in each, so that reconnects cross pushes.
    soak: { edges: 2, perEdge: 200, loadProcesses: 2, concurrency: 50, minutes: 3, minuteMs: 5_000, flatMinutes: 2, roomMembers: [10, 50], churnPerMinute: 0.1, workload: { pushRate: 200, keepEvery: 4, roomRate: 5, presenceRate: 20, presenceBatch: 10 } },
  },
}
const SCENARIOS = { memory, pushes, storm, registry, presence, soak }
/** The scenarios of a run that names none: the soak runs only when named (and alone). */
const DEFAULT_SCENARIOS = ['memory', 'pushes', 'storm', 'registry', 'presence']
/** Seconds each scenario took in earlier full runs (the pushes scenario is estimated from its sizes; memory: +90 s of idle before its 9 reads since issue 22). */
const OTHER_SECONDS = { memory: 150, storm: 30, registry: 60, presence: 30 }

const args = process.argv.slice(2)
const option = (name, parse) => {
  const at = args.indexOf(name)
  if (at < 0) return undefined
  const value = args[at + 1]
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`)
  return parse(value)
}
const positive = (name) => (text) => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: ${text} is not a whole number ≥ 1`)
  return n
}
const OPTIONS = {
  '--nodes': (text) => text.split(',').map(positive('--nodes')),
  '--repetitions': positive('--repetitions'),
  '--wait': (text) => {
    if (text !== 'routed') throw new Error(`--wait: ${text} is not a wait; choose routed`)
    return text
  },
  // The soak's size: edges, connections per edge, minutes of workload.
  '--edges': positive('--edges'),
  '--per-edge': positive('--per-edge'),
  '--minutes': positive('--minutes'),
}
const smoke = args.includes('--smoke')
for (const arg of args) if (arg.startsWith('--') && arg !== '--smoke' && !OPTIONS[arg]) throw new Error(`unknown option ${arg}; choose from --smoke, ${Object.keys(OPTIONS).join(', ')}`)
const chosen = args.filter((a, i) => !a.startsWith('--') && !OPTIONS[args[i - 1]])
for (const name of chosen) if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}; choose from ${Object.keys(SCENARIOS).join(', ')}`)
const asked = Object.fromEntries(Object.entries(OPTIONS).map(([name, parse]) => [name.slice(2), option(name, parse)]).filter(([, v]) => v !== undefined))
const base = smoke ? SIZES.smoke : SIZES.full
const { edges, 'per-edge': perEdge, minutes, ...others } = asked
const soakSize = { ...base.soak, ...(edges && { edges }), ...(perEdge && { perEdge }), ...(minutes && { minutes, flatMinutes: Math.min(base.soak.flatMinutes, minutes, Math.max(2, minutes - 2)) }) }
const sizes = { ...base, ...others, soak: soakSize }
const outDir = fileURLToPath(new URL(smoke ? './results/smoke/' : './results/', import.meta.url))
await mkdir(outDir, { recursive: true })

const log = (line) => process.stdout.write(`${line}\n`)
const results = { startedAt: new Date().toISOString(), smoke, machine: machine(), sizes }
log(`bench ${smoke ? '(smoke) ' : ''}on ${results.machine.cpus} × ${results.machine.cpuModel}, Node ${results.machine.node}, Redis ${results.machine.redis}`)
const names = chosen.length > 0 ? chosen : DEFAULT_SCENARIOS
if (names.includes('soak') && names.length > 1) throw new Error('the soak runs alone: node bench/run.mjs soak')
if (names.includes('soak')) await runSoak()
if (names.includes('pushes')) {
  const estimate = names.reduce((s, name) => s + (name === 'pushes' ? pushesSeconds(sizes) : OTHER_SECONDS[name]), 0)
  const duration = (s) => (s < 120 ? `${s} s` : `${Math.round(s / 60)} min`)
  log(`the curve: N = ${sizes.nodes.join(', ')}, ${sizes.repetitions} alternating repetition(s), ${sizes.clients} clients${sizes.wait ? `, wait: ${sizes.wait}` : ''}; estimated run time ${duration(estimate)} (pushes ${duration(pushesSeconds(sizes))})`)
}
for (const name of names) {
  const started = Date.now()
  log(`\n== ${name}`)
  results[name] = await SCENARIOS[name](sizes, log)
  log(`== ${name} took ${Math.round((Date.now() - started) / 1000)} s`)
}
killAll()
if (results.pushes) {
  results.curve = scaleCurve(results.pushes)
  results.crossovers = crossovers(results.curve)
}

const charts = plots(results)
const isFullRun = chosen.length === 0
if (isFullRun) {
  // Plots an earlier layout of the bench wrote (N = 2, one fixed rate) would linger beside this run's.
  const current = new Set(charts.map((c) => c.file))
  for (const file of await readdir(outDir)) if (file.endsWith('.svg') && !current.has(file)) await rm(`${outDir}${file}`)
}
for (const chart of charts) await writeFile(`${outDir}${chart.file}`, chart.svg)
const json = JSON.stringify(results, (key, value) => (key === 'latencySamples' ? undefined : value), 2)
await writeFile(`${outDir}latest.json`, `${json}\n`)
const relative = smoke ? 'bench/results/smoke/' : 'bench/results/'
const summary = markdown(results, charts.map((c) => ({ title: c.title, path: `${relative}${c.file}` })))
await writeFile(`${outDir}summary.md`, summary)
if (!smoke && isFullRun) {
  // The figures section of BENCHMARKS.md is this run's; the prose around it is written by hand.
  const file = fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url))
  const text = await readFile(file, 'utf8')
  const begin = '<!-- figures:begin -->'
  const end = '<!-- figures:end -->'
  await writeFile(file, `${text.slice(0, text.indexOf(begin) + begin.length)}\n${summary}${text.slice(text.indexOf(end))}`)
  await writeCapacity(results)
}
log(`\n${summary}`)
const missed = targets(results).filter((t) => t.ok === false)
log(`${missed.length === 0 ? 'every target measured is met' : `${missed.length} target(s) missed`}; results in ${outDir}`)
process.exit(0)

/** docs/CAPACITY.md's model, from this run's figures (between its capacity markers). */
async function writeCapacity(run) {
  const model = capacityMarkdown(run)
  if (!model) return log('capacity model: a scenario it needs is missing; docs/CAPACITY.md left as it was')
  const file = fileURLToPath(new URL('../docs/CAPACITY.md', import.meta.url))
  const text = await readFile(file, 'utf8')
  const begin = '<!-- capacity:begin -->'
  const end = '<!-- capacity:end -->'
  await writeFile(file, `${text.slice(0, text.indexOf(begin) + begin.length)}\n${model}${text.slice(text.indexOf(end))}`)
}

/** The soak alone: its own results file (the curve's latest.json and BENCHMARKS.md stay as they are). */
async function runSoak() {
  const { edges, perEdge, minutes, minuteMs } = sizes.soak
  log(`the soak: ${edges} edges × ${perEdge} connections, ${minutes} × ${minuteMs / 1000} s of workload`)
  results.soak = await soak(sizes, log)
  killAll()
  await writeFile(`${outDir}soak.json`, `${JSON.stringify(results, null, 2)}\n`)
  log(`results in ${outDir}soak.json`)
  process.exit(0)
}

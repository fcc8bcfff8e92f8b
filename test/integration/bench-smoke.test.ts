// The benchmark harness at tiny sizes (bench/run.mjs --smoke), so it cannot rot: every
// scenario runs against all three systems and the numbers it reports hang together. It
// measures nothing; the real run is `npm run bench` (see BENCHMARKS.md).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../../', import.meta.url))

// The smoke run starts ~15 server clusters one after another; a slow CI host needs more than the default 120 s.
t.setTimeout(300_000)

interface PushRun {
  system: string
  ingress?: string
  wait?: string
  nodes: number
  mode: string
  rate: number | null
  expected: number
  acknowledged: number | null
  received: number
  lost: number
  errors: number
  firstError?: string
  deliveredPerS: number
  latencyMs: { p99: number }
  messagesInPerPush: number[]
  turns: { total: { wakeupsPerPush: number; cpuUsPerWakeup: number } }
}

/** Runs bench/run.mjs with `args`; resolves with its exit code and output. */
async function bench(...args: string[]): Promise<{ code: number | null; output: string }> {
  const run = spawn(process.execPath, ['bench/run.mjs', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  run.stdout.on('data', (d: Buffer) => (output += d))
  run.stderr.on('data', (d: Buffer) => (output += d))
  const [code] = (await once(run, 'exit')) as [number | null]
  return { code, output }
}

t.test('npm run bench:smoke runs every scenario and reports whole results', async (t) => {
  const { code, output } = await bench('--smoke')
  t.equal(code, 0, `bench exits 0\n${output.slice(-3000)}`)
  const results = JSON.parse(await readFile(`${root}bench/results/smoke/latest.json`, 'utf8'))
  t.match(results.machine, { cpus: Number, node: String, redis: String })
  const pushes: PushRun[] = results.pushes
  const name = (r: PushRun) => `${r.system}${r.ingress ? ` ${r.ingress}` : ''} ×${r.nodes} ${r.mode}${r.rate ? ` ${r.rate}/s` : ''}`

  for (const system of ['switchboard', 'socketio', 'bare']) {
    const runs = pushes.filter((r) => r.system === system)
    t.ok(runs.length >= 5, `${system}: push runs measured`)
    for (const r of runs) {
      t.equal(r.errors, 0, `${name(r)}: no errors${r.firstError ? ` (${r.firstError})` : ''}`)
      t.equal(r.lost, 0, `${name(r)}: every push frame arrived`)
      t.ok(r.received > 0 && r.deliveredPerS > 0 && r.latencyMs.p99 > 0, `${name(r)}: latency and rate measured`)
    }
    const memory = results.memory.filter((m: { system: string }) => m.system === system)
    t.ok(memory.length === 2 && memory.every((m: { rssKiBPerConnection: number, failed: number }) => m.failed === 0 && Number.isFinite(m.rssKiBPerConnection)), `${system}: memory measured`)
    const storm = results.storm.find((s: { system: string }) => s.system === system)
    // CPU is read in 10 ms ticks: a smoke-sized storm on bare uWS may take less than one, so 0 is a valid reading.
    t.ok(storm && storm.failed === 0 && storm.connectionsPerS > 0 && Number.isFinite(storm.cpuMsPer1000) && storm.cpuMsPer1000 >= 0, `${system}: storm connected everyone`)
  }
  for (const ingress of ['http', 'pipeline']) {
    const runs = pushes.filter((r) => r.system === 'switchboard' && r.ingress === ingress)
    t.same([...new Set(runs.map((r) => r.nodes))], [1, 3], `${ingress}: measured at N = 1 and 3`)
    t.ok(runs.some((r) => r.mode === 'batch100'), `${ingress}: batches measured`)
    for (const r of runs) t.ok(r.acknowledged === r.expected && r.received > 0, `${name(r)}: the router answered every recipient delivered`)
  }
  // CPU is read in 10 ms ticks: a smoke-sized run on bare uWS may take less than one, so 0 µs per wake-up is a valid reading.
  for (const r of pushes.filter((r) => r.mode === 'fixed')) t.ok(r.turns.total.wakeupsPerPush > 0 && r.turns.total.cpuUsPerWakeup >= 0, `${name(r)}: turns counted`)
  const curve: Array<{ ingress: string; rate: number | null; nodes: number; cpuRatio: { median: number } }> = results.curve
  t.equal(curve.length, 2 * 3 * 2 + 2, 'the scale curve: both ingresses, both rates and max, N = 1 and 3; and the routed line at the higher rate')
  t.same(curve.filter((p) => p.ingress === 'pipeline-routed').map((p) => [p.rate, p.nodes]), [1, 3].map((n) => [results.sizes.rates.at(-1), n]), 'the pipeline with wait: routed, at the higher fixed rate on every N')
  t.ok(curve.every((p) => p.cpuRatio.median > 0), 'each point has a ratio')
  t.equal(results.crossovers.length, 2 * 3 + 1, 'a crossover per line and rate')
  const spread = pushes.filter((r) => r.system === 'switchboard' && r.nodes === 3 && r.mode === 'fixed')
  t.ok(spread.length > 0 && spread.every((r) => r.messagesInPerPush.every((m) => m > 0 && m < 1)), 'Switchboard: each edge takes in only part of the pushes')
  t.ok(results.registry.locateMs.count > 0 && results.registry.presenceQueryMs.p99 > 0, 'registry lookups measured')
  const summary = await readFile(`${root}bench/results/smoke/summary.md`, 'utf8')
  t.match(summary, /### Targets/, 'summary written')
  t.match(summary, /Switchboard, pipeline/, 'summary reports the pipelined ingress')
  t.match(summary, /### The scale curve[^]*scale-curve\.svg[^]*Crossover/, 'summary leads with the curve, its plot and the crossovers')
})

t.test('the pushes scenario with wait: routed, on both ingresses: every push handed to an edge arrives', async (t) => {
  const { code, output } = await bench('--smoke', 'pushes', '--wait', 'routed')
  t.equal(code, 0, `bench exits 0\n${output.slice(-3000)}`)
  const pushes: PushRun[] = JSON.parse(await readFile(`${root}bench/results/smoke/latest.json`, 'utf8')).pushes
  for (const ingress of ['http', 'pipeline']) {
    const runs = pushes.filter((r) => r.system === 'switchboard' && r.ingress === ingress)
    t.ok(runs.length > 0 && runs.every((r) => r.wait === 'routed'), `${ingress}: routed pushes measured`)
    for (const r of runs) {
      t.equal(r.errors, 0, `${ingress} ×${r.nodes} ${r.mode}: no errors${r.firstError ? ` (${r.firstError})` : ''}`)
      t.ok(r.acknowledged === r.expected && r.lost === 0, `${ingress} ×${r.nodes} ${r.mode}: every recipient answered routed, every frame arrived`)
    }
  }
})

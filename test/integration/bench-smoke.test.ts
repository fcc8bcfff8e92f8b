// The benchmark harness at tiny sizes (bench/run.mjs --smoke), so it cannot rot: every
// scenario runs against all three systems and the numbers it reports hang together. It
// measures nothing; the real run is `npm run bench` (see BENCHMARKS.md).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../../', import.meta.url))

t.test('npm run bench:smoke runs every scenario and reports whole results', async (t) => {
  const run = spawn(process.execPath, ['bench/run.mjs', '--smoke'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  run.stdout.on('data', (d: Buffer) => (output += d))
  run.stderr.on('data', (d: Buffer) => (output += d))
  const [code] = (await once(run, 'exit')) as [number | null]
  t.equal(code, 0, `bench exits 0\n${output.slice(-3000)}`)
  const results = JSON.parse(await readFile(`${root}bench/results/smoke/latest.json`, 'utf8'))
  t.match(results.machine, { cpus: Number, node: String, redis: String })

  const systems = ['switchboard', 'socketio', 'bare']
  for (const system of systems) {
    const runs = results.pushes.filter((r: { system: string }) => r.system === system)
    t.ok(runs.length >= 4, `${system}: push runs measured`)
    for (const r of runs) {
      t.equal(r.lost, 0, `${system} ×${r.nodes} ${r.mode}: every push frame arrived`)
      t.ok(r.received > 0 && r.deliveredPerS > 0 && r.latencyMs.p99 > 0, `${system} ×${r.nodes} ${r.mode}: latency and rate measured`)
    }
    const memory = results.memory.filter((m: { system: string }) => m.system === system)
    t.ok(memory.length === 2 && memory.every((m: { rssKiBPerConnection: number, failed: number }) => m.failed === 0 && Number.isFinite(m.rssKiBPerConnection)), `${system}: memory measured`)
    const storm = results.storm.find((s: { system: string }) => s.system === system)
    t.ok(storm && storm.failed === 0 && storm.connectionsPerS > 0, `${system}: storm connected everyone`)
  }
  const spread = results.pushes.find((r: { system: string, nodes: number, mode: string }) => r.system === 'switchboard' && r.nodes === 2 && r.mode === 'fixed')
  t.ok(spread.messagesInPerPush.every((m: number) => m > 0 && m < 1), 'Switchboard: each edge takes in only part of the pushes')
  t.ok(results.registry.locateMs.count > 0 && results.registry.presenceQueryMs.p99 > 0, 'registry lookups measured')
  t.match(await readFile(`${root}bench/results/smoke/summary.md`, 'utf8'), /### Targets/, 'summary written')
})

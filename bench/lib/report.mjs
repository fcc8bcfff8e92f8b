// Turns a run's results into the targets table, Markdown and SVG plots.
import { barChart, fmt, latencyChart, lineChart } from './plot.mjs'

const NAMES = { switchboard: 'Switchboard', socketio: 'socket.io + redis-adapter', bare: 'bare uWS' }
const find = (runs, system, nodes, mode) => runs?.find((r) => r.system === system && r.nodes === nodes && r.mode === mode)
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b)
const show = (v, unit = '') => (v == null ? 'n/a' : `${fmt(v)}${unit}`)

/** Every target of issue 5 with our figure, the incumbent's, and whether it holds. */
export function targets(results) {
  const { pushes: runs, memory, storm, registry } = results
  const maxN = Math.max(...(runs ?? []).map((r) => r.nodes))
  const minN = Math.min(...(runs ?? []).map((r) => r.nodes))
  const rows = []
  const add = (target, ours, theirs, ok) => rows.push({ target, ours, theirs, ok: ok == null ? null : Boolean(ok) })

  if (memory) {
    const largest = Math.max(...memory.map((m) => m.connections))
    const sb = memory.find((m) => m.system === 'switchboard' && m.connections === largest)
    const io = memory.find((m) => m.system === 'socketio' && m.connections === largest)
    const r = ratio(sb?.rssKiBPerConnection, io?.rssKiBPerConnection)
    add(`Memory: ≤ 2 KiB RSS per idle connection (${fmt(largest)} connections), ≤ 0.2× the incumbent`, `${show(sb?.rssKiBPerConnection, ' KiB')} (${show(r, '×')})`, show(io?.rssKiBPerConnection, ' KiB'), sb && r != null && sb.rssKiBPerConnection <= 2 && r <= 0.2)
  }
  if (runs) {
    const sbFixed = find(runs, 'switchboard', maxN, 'fixed')
    const ioFixed = find(runs, 'socketio', maxN, 'fixed')
    const r = ratio(sbFixed?.cpuMsPer1000, ioFixed?.cpuMsPer1000)
    add(`CPU per 1,000 delivered at the fixed rate, N = ${maxN}: ≤ 0.5× the incumbent`, `${show(sbFixed?.cpuMsPer1000, ' ms')} (${show(r, '×')})`, show(ioFixed?.cpuMsPer1000, ' ms'), r != null && r <= 0.5)
    const growth = (system) => ratio(find(runs, system, maxN, 'fixed')?.cpuMsPer1000, find(runs, system, minN, 'fixed')?.cpuMsPer1000)
    const g = growth('switchboard')
    add(`CPU per 1,000 delivered from N = ${minN} to N = ${maxN}: grows < 15%`, show(g == null ? null : (g - 1) * 100, '%'), show(growth('socketio') == null ? null : (growth('socketio') - 1) * 100, '%'), g != null && g < 1.15)
    const worstP99 = Math.max(...runs.filter((x) => x.system === 'switchboard' && x.mode === 'fixed').map((x) => x.latencyMs.p99))
    const ioP99 = Math.max(...runs.filter((x) => x.system === 'socketio' && x.mode === 'fixed').map((x) => x.latencyMs.p99))
    add(`Latency at the fixed rate: p99 ≤ 5 ms (worst N)`, show(worstP99, ' ms'), show(ioP99, ' ms'), worstP99 <= 5)
    const sbMax = find(runs, 'switchboard', maxN, 'max')
    const ioMax = find(runs, 'socketio', maxN, 'max')
    const t = ratio(sbMax?.deliveredPerS, ioMax?.deliveredPerS)
    add(`Throughput, single recipient, N = ${maxN}: ≥ 1.5× the incumbent`, `${show(sbMax?.deliveredPerS, '/s')} (${show(t, '×')})`, show(ioMax?.deliveredPerS, '/s'), t != null && t >= 1.5)
    const sbBatch = find(runs, 'switchboard', maxN, 'batch100')
    const bareBatch = runs.find((x) => x.system === 'bare' && x.mode === 'batch100')
    const c = ratio(sbBatch?.cpuMsPer1000, bareBatch?.cpuMsPer1000)
    add('Batch of 100: ≥ 60,000 deliveries/s', show(sbBatch?.deliveredPerS, '/s'), show(find(runs, 'socketio', maxN, 'batch100')?.deliveredPerS, '/s'), sbBatch && sbBatch.deliveredPerS >= 60_000)
    add('Batch of 100: CPU per message within 2× bare uWS', `${show(sbBatch?.cpuMsPer1000, ' ms')} (${show(c, '×')} of ${show(bareBatch?.cpuMsPer1000, ' ms')})`, show(find(runs, 'socketio', maxN, 'batch100')?.cpuMsPer1000, ' ms'), c != null && c <= 2)
  }
  if (storm) {
    const sb = storm.find((s) => s.system === 'switchboard')
    const io = storm.find((s) => s.system === 'socketio')
    add('Connect storm: ≥ 5,000 authenticated, registered connections/s on one edge', show(sb?.connectionsPerS, '/s'), show(io?.connectionsPerS, '/s'), sb && sb.failed === 0 && sb.connectionsPerS >= 5_000)
  }
  if (registry) add(`Registry: lookup of 10,000 users p99 ≤ 40 ms with ${fmt(registry.users)} registered`, show(registry.locateMs.p99, ' ms'), '—', registry.locateMs.p99 <= 40)
  return rows
}

const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')

export function markdown(results, plots) {
  const { machine, sizes, pushes: runs, memory, storm, registry } = results
  const parts = []
  parts.push(`Run ${results.startedAt} on ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, Redis ${machine.redis}${results.smoke ? ' — **smoke run (tiny sizes), not a measurement**' : ''}. Every process (servers, Redis, load generators, publisher) shares these cores.`)
  parts.push('### Targets\n\n' + table(['Target', 'Switchboard', 'Incumbent', 'Met'], targets(results).map((t) => [t.target, t.ours, t.theirs, t.ok == null ? '—' : t.ok ? 'yes' : '**no**'])))
  if (runs) {
    parts.push(`### Pushes (${fmt(sizes.clients)} clients)\n\n` + table(
      ['System', 'N', 'Mode', 'Pushes/s sent', 'Delivered/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'CPU ms / 1,000', 'Messages in per push, per node', 'Lost'],
      runs.map((r) => [NAMES[r.system], r.nodes, r.mode, fmt(r.achievedPushesPerS), fmt(r.deliveredPerS), r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99, r.latencyMs.max, r.cpuMsPer1000, r.system === 'bare' ? '—' : r.messagesInPerPush.join(' / '), r.lost]),
    ))
    parts.push('CPU per process (ms) for each run:\n\n' + table(['System', 'N', 'Mode', 'CPU ms by process'], runs.map((r) => [NAMES[r.system], r.nodes, r.mode, Object.entries(r.cpuMs).map(([k, v]) => `${k} ${v}`).join(', ')])))
  }
  if (memory) parts.push('### Memory per idle connection, after GC\n\n' + table(['System', 'Connections', 'RSS KiB / conn', 'Heap KiB / conn', 'External KiB / conn'], memory.map((m) => [NAMES[m.system], fmt(m.connections), m.rssKiBPerConnection, m.heapKiBPerConnection, m.externalKiBPerConnection])))
  if (storm) parts.push('### Connect storm, one server\n\n' + table(['System', 'Connected', 'Failed', 'Elapsed ms', 'Connections/s', 'Server CPU ms / 1,000'], storm.map((s) => [NAMES[s.system], fmt(s.connected), s.failed, s.elapsedMs, fmt(s.connectionsPerS), s.cpuMsPer1000])))
  if (registry) parts.push(`### Registry (${fmt(registry.users)} users registered, Redis used_memory ${registry.usedMemoryMiB} MiB)\n\n` + table(['Call (10,000 users)', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'Calls'], [['RedisRegistry.locate', registry.locateMs], ['POST /v1/presence/query', registry.presenceQueryMs]].map(([name, p]) => [name, p.p50, p.p90, p.p99, p.max, p.count])))
  if (plots.length > 0) parts.push('### Plots\n\n' + plots.map((p) => `![${p.title}](${p.path})`).join('\n'))
  return parts.join('\n\n') + '\n'
}

/** SVG plots as [{ file, title, svg }]. */
export function plots(results) {
  const runs = results.pushes
  if (!runs) return []
  const ns = [...new Set(runs.filter((r) => r.system !== 'bare').map((r) => r.nodes))].sort()
  const line = (mode, field, title, yLabel) => ({
    file: `${mode}-${field}.svg`,
    title,
    svg: lineChart({ title, xLabel: 'Nodes (N)', yLabel, xTicks: ns, series: ['switchboard', 'socketio'].map((s) => ({ name: NAMES[s], points: ns.map((n) => [n, field === 'messagesIn' ? avg(find(runs, s, n, mode)?.messagesInPerPush) : find(runs, s, n, mode)?.[field]]) })) }),
  })
  const out = [
    line('fixed', 'cpuMsPer1000', `CPU ms per 1,000 delivered at ${results.sizes.rate}/s, all server processes`, 'CPU ms / 1,000'),
    line('max', 'deliveredPerS', 'Single-recipient pushes delivered per second, as fast as it goes', 'delivered / s'),
    line('fixed', 'messagesIn', 'Messages each node takes in per push', 'messages / push / node'),
  ]
  for (const n of ns) {
    const title = `Latency, POST to frame, at ${results.sizes.rate}/s, N = ${n}`
    const series = ['switchboard', 'socketio'].map((s) => ({ name: NAMES[s], samples: find(runs, s, n, 'fixed')?.latencySamples ?? [] }))
    if (n === ns.at(-1)) series.push({ name: NAMES.bare, samples: runs.find((r) => r.system === 'bare' && r.mode === 'fixed')?.latencySamples ?? [] })
    out.push({ file: `latency-fixed-n${n}.svg`, title, svg: latencyChart({ title, series }) })
  }
  if (results.memory) {
    const sizes = [...new Set(results.memory.map((m) => m.connections))]
    out.push({ file: 'memory.svg', title: 'RSS per idle connection after GC', svg: barChart({ title: 'RSS KiB per idle connection after GC', yLabel: 'KiB', seriesNames: Object.values(NAMES), groups: sizes.map((n) => ({ label: `${fmt(n)} connections`, values: Object.keys(NAMES).map((s) => results.memory.find((m) => m.system === s && m.connections === n)?.rssKiBPerConnection ?? null) })) }) })
  }
  return out
}

const avg = (values) => (values?.length ? values.reduce((a, b) => a + b, 0) / values.length : null)

// Turns a run's results into the targets table, Markdown and SVG plots.
import { crossovers, lineOf, rateName, scaleCurve } from './curve.mjs'
import { barChart, fmt, latencyChart, lineChart } from './plot.mjs'
import { median } from './stats.mjs'

/** A push run's series: Switchboard once per ingress (and wait, see lineOf), the others once. */
const seriesOf = (run) => (run.ingress ? `${run.system}-${lineOf(run)}` : run.system)
const NAMES = {
  switchboard: 'Switchboard',
  'switchboard-http': 'Switchboard, HTTP',
  'switchboard-pipeline': 'Switchboard, pipeline',
  'switchboard-pipeline-routed': 'Switchboard, pipeline, wait: routed',
  'switchboard-http-routed': 'Switchboard, HTTP, wait: routed',
  socketio: 'socket.io + redis-adapter',
  bare: 'bare uWS',
}
const PUSH_SERIES = ['switchboard-http', 'switchboard-pipeline', 'switchboard-pipeline-routed', 'socketio', 'bare']
const INGRESS_NAMES = { http: 'HTTP', pipeline: 'pipeline', 'pipeline-routed': 'pipeline, wait: routed', 'http-routed': 'HTTP, wait: routed' }
/** The run of `series` at `nodes` in `mode` (and `rate`, for fixed-rate runs); bare uWS has one node whatever N is asked. */
const matches = (series, nodes, mode, rate) => (r) => seriesOf(r) === series && (r.system === 'bare' || r.nodes === nodes) && r.mode === mode && (rate === null || r.rate === rate)
const find = (runs, series, nodes, mode, rate = null) => runs?.find(matches(series, nodes, mode, rate))
/** `field` of those runs, the median over the curve's repetitions. */
const medianOf = (runs, series, nodes, mode, rate, field) => median((runs ?? []).filter(matches(series, nodes, mode, rate)).map((r) => r[field]).filter(Number.isFinite))
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b)
const show = (v, unit = '') => (v == null ? 'n/a' : `${fmt(v)}${unit}`)
const times = (v) => show(v, '×')
const perS = (rate) => `${fmt(rate)}/s`

/**
 * Every target of issue 22 (and the earlier ones it left standing) with our figure, the one it
 * is compared with from the same run, and whether it holds. Push targets read the scale curve:
 * the median of the per-repetition ratios, with their range.
 */
export function targets(results) {
  const { sizes, pushes: runs, memory, storm, registry } = results
  const rows = []
  const add = (target, ours, theirs, ok) => rows.push({ target, ours, theirs, ok: ok == null ? null : Boolean(ok) })

  if (runs?.length) {
    const curve = scaleCurve(runs)
    const ns = [...new Set(runs.filter((r) => r.system !== 'bare').map((r) => r.nodes))].sort((a, b) => a - b)
    const [low, high] = sizes.rates
    const range = (r) => `${times(r.median)} (${times(r.min)}–${times(r.max)})`
    // Server CPU per delivered push over the incumbent's: [line, N, rate, at most]. The default
    // push's lines are `pipeline` and `http` (a run with --wait routed measures only routed ones).
    const ceilings = [
      ['pipeline', 3, high, 1.0], ['http', 3, high, 1.15], ['pipeline', 3, low, 1.0], ['pipeline', 9, high, 0.6], ['pipeline', 6, low, 0.6],
      ['pipeline-routed', 3, high, 0.8], ['pipeline-routed', 9, high, 0.45],
    ]
    for (const [line, n, rate, most] of ceilings) {
      const point = curve.find((p) => p.ingress === line && p.nodes === n && p.rate === rate)
      const r = point?.cpuRatio
      add(`Server CPU per delivered push, ${INGRESS_NAMES[line]}, N = ${n}, ${perS(rate)}: ≤ ${most.toFixed(2).replace(/0$/, '')}× the incumbent`, point ? `${show(point.switchboard.cpuUsPerPush, ' µs')}: ${range(r)}` : 'n/a (not measured)', point ? `incumbent ${show(point.socketio.cpuUsPerPush, ' µs')}` : '—', point ? r.median != null && r.median <= most : null)
    }
    const maxAt3 = curve.find((p) => p.ingress === 'pipeline' && p.nodes === 3 && p.rate === null)
    add('Single-recipient delivered/s as fast as it goes, N = 3, pipeline: ≥ 1.0× the incumbent', maxAt3 ? `${show(maxAt3.switchboard.deliveredPerS, '/s')}: ${range(maxAt3.deliveredRatio)}` : 'n/a (not measured)', maxAt3 ? `incumbent ${show(maxAt3.socketio.deliveredPerS, '/s')}` : '—', maxAt3 ? maxAt3.deliveredRatio.median != null && maxAt3.deliveredRatio.median >= 1 : null)
    // Earlier targets still standing: p99 ceilings, ms, at the higher and the lower rate; the worst N counts.
    const worstP99 = (series, rate) => {
      const p99s = ns.map((n) => find(runs, series, n, 'fixed', rate)?.latencyMs.p99).filter((v) => v != null)
      return p99s.length ? Math.max(...p99s) : null
    }
    for (const [rate, most] of [[high, 5], [low, 3]]) {
      for (const ingress of ['pipeline', 'http']) {
        const ours = worstP99(`switchboard-${ingress}`, rate)
        add(`Latency request → frame at ${perS(rate)}, ${INGRESS_NAMES[ingress]}: p99 ≤ ${most} ms (worst N)`, show(ours, ' ms'), `incumbent ${show(worstP99('socketio', rate), ' ms')}`, ours != null && ours <= most)
      }
    }
    const bareBatch = find(runs, 'bare', 1, 'batch100')
    const batchN = runs.find((r) => r.system === 'switchboard' && r.mode === 'batch100')?.nodes ?? ns.at(-1)
    for (const ingress of ['pipeline', 'http']) {
      const batch = find(runs, `switchboard-${ingress}`, batchN, 'batch100')
      add(`Batches of 100, N = ${batchN}, ${INGRESS_NAMES[ingress]}: ≥ 60,000 deliveries/s`, show(batch?.deliveredPerS, '/s'), `incumbent ${show(find(runs, 'socketio', batchN, 'batch100')?.deliveredPerS, '/s')}`, batch != null && batch.deliveredPerS >= 60_000)
      const r = ratio(batch?.cpuMsPer1000, bareBatch?.cpuMsPer1000)
      add(`Batches of 100, N = ${batchN}, ${INGRESS_NAMES[ingress]}: server CPU per message ≤ 2× bare uWS`, `${show(batch?.cpuMsPer1000, ' µs')} (${times(r)})`, `bare uWS ${show(bareBatch?.cpuMsPer1000, ' µs')}`, r != null && r <= 2)
    }
  }
  if (memory?.length) {
    const largest = Math.max(...memory.map((m) => m.connections))
    const sb = memory.find((m) => m.system === 'switchboard' && m.connections === largest)
    const bare = memory.find((m) => m.system === 'bare' && m.connections === largest)
    add(`Memory: ≤ 1.5 KiB RSS per idle authenticated, registered connection (${fmt(largest)} connections)`, show(sb?.rssKiBPerConnection, ' KiB'), `bare uWS ${show(bare?.rssKiBPerConnection, ' KiB')}`, sb != null && sb.failed === 0 && sb.rssKiBPerConnection <= 1.5)
    add(`Memory: ≤ 0.25 KiB heap per idle authenticated, registered connection (${fmt(largest)} connections)`, show(sb?.heapKiBPerConnection, ' KiB'), `bare uWS ${show(bare?.heapKiBPerConnection, ' KiB')}`, sb != null && sb.failed === 0 && sb.heapKiBPerConnection <= 0.25)
  }
  if (storm?.length) {
    const sb = storm.find((s) => s.system === 'switchboard')
    const bare = storm.find((s) => s.system === 'bare')
    const r = ratio(sb?.cpuMsPer1000, bare?.cpuMsPer1000)
    add('Connect storm, one edge: server CPU per 1,000 authenticated, registered connections ≤ 2× bare uWS', `${show(sb?.cpuMsPer1000, ' ms')} (${times(r)}; wall ${show(sb?.connectionsPerS, '/s')})`, `bare uWS ${show(bare?.cpuMsPer1000, ' ms')} (wall ${show(bare?.connectionsPerS, '/s')})`, sb != null && sb.failed === 0 && r != null && r <= 2)
  }
  if (registry) add(`Registry: lookup of 10,000 users p99 ≤ 30 ms with ${fmt(registry.users)} registered`, show(registry.locateMs.p99, ' ms'), '—', registry.locateMs.p99 <= 30)
  return rows
}

const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
const modeName = (r) => (r.mode === 'fixed' ? `fixed ${perS(r.rate)}` : r.mode.startsWith('batch') ? `batch of ${fmt(r.batch)}` : r.mode)

export function markdown(results, plots) {
  const { machine, sizes, pushes: runs, memory, storm, registry, presence } = results
  const parts = []
  parts.push(`Run ${results.startedAt} on ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, Redis ${machine.redis}${results.smoke ? ' — **smoke run (tiny sizes), not a measurement**' : ''}. Every process (servers, Redis, load generators, publisher) shares these cores.`)
  const curve = scaleCurve(runs)
  if (curve.length > 0) parts.push(curveMarkdown(curve, plots.find((p) => p.path.endsWith('scale-curve.svg'))))
  parts.push('### Targets\n\n' + table(['Target', 'Switchboard', 'Compared with (same run)', 'Met'], targets(results).map((t) => [t.target, t.ours, t.theirs, t.ok == null ? '—' : t.ok ? 'yes' : '**no**'])))
  if (runs) {
    parts.push(`### Pushes (${fmt(sizes.clients)} clients)\n\nServer CPU counts every server process: router, edges and Redis for Switchboard; the socket.io nodes and Redis for the incumbent. Latency is from the publisher's request to the client's frame.\n\n` + table(
      ['System', 'N', 'Rep.', 'Mode', 'Pushes/s sent', 'Delivered/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'Server CPU µs / delivered', 'Wake-ups / delivered', 'CPU µs / wake-up', 'Messages in per push, per node', 'Lost', 'Errors'],
      runs.map((r) => [NAMES[seriesOf(r)], r.nodes, (r.repetition ?? 0) + 1, modeName(r), fmt(r.achievedPushesPerS), fmt(r.deliveredPerS), r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99, r.latencyMs.max, r.cpuMsPer1000, r.turns?.total.wakeupsPerPush ?? 'n/a', r.turns?.total.cpuUsPerWakeup ?? 'n/a', r.system === 'bare' ? '—' : r.messagesInPerPush.join(' / '), r.lost, r.errors]),
    ))
    const byProcess = (r) => Object.entries(r.cpuMs).map(([k, v]) => {
      const t = r.turns?.[k]
      return `${k} ${v}${t ? ` (${fmt(t.wakeupsPerS)} wake-ups/s, ${t.wakeupsPerPush}/push, ${t.cpuUsPerWakeup ?? '–'} µs each)` : ''}`
    }).join(', ')
    parts.push('CPU per process (ms) for each run, with its wake-ups (voluntary context switches of its main thread: turns of its event loop) per second, per delivered push, and its CPU µs per wake-up:\n\n' + table(['System', 'N', 'Rep.', 'Mode', 'CPU ms by process'], runs.map((r) => [NAMES[seriesOf(r)], r.nodes, (r.repetition ?? 0) + 1, modeName(r), byProcess(r)])))
  }
  if (memory) parts.push('### Memory per idle connection, after GC\n\n' + table(['System', 'Connections', 'RSS KiB / conn', 'Heap KiB / conn', 'External KiB / conn'], memory.map((m) => [NAMES[m.system], fmt(m.connections), m.rssKiBPerConnection, m.heapKiBPerConnection, m.externalKiBPerConnection])))
  if (storm) {
    const bare = storm.find((s) => s.system === 'bare')
    parts.push('### Connect storm, one server\n\nServer CPU counts the edge, the router and Redis for Switchboard, the node and Redis for the incumbent; the wall rate is bounded by the load generators on the same cores.\n\n' + table(
      ['System', 'Connected', 'Failed', 'Elapsed ms', 'Connections/s (wall)', 'Server CPU ms / 1,000', '× bare uWS'],
      storm.map((s) => [NAMES[s.system], fmt(s.connected), s.failed, s.elapsedMs, fmt(s.connectionsPerS), s.cpuMsPer1000, show(ratio(s.cpuMsPer1000, bare?.cpuMsPer1000), '×')]),
    ))
  }
  if (registry) parts.push(`### Registry (${fmt(registry.users)} users registered, Redis used_memory ${registry.usedMemoryMiB} MiB)\n\n` + table(['Call (10,000 users)', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'Calls'], [['RedisRegistry.locate', registry.locateMs], ['POST /v1/presence/query', registry.presenceQueryMs]].map(([name, p]) => [name, p.p50, p.p90, p.p99, p.max, p.count])))
  if (presence) {
    parts.push('### Presence events (two edges, grace 0)\n\nA storm of connects, then of closes: one event per transition. With a webhook, events/s is from the storm\'s start to the last event acknowledged by a receiver in the bench process; "none" is the same storm with no endpoint (the pull feed only), for the cost of recording events. CPU is per 1,000 events (= connections), including the idle cost of the delivery workers\' polling.\n\n' + table(
      ['Endpoint', 'Phase', 'Events', 'Delivered', 'Events/s (wall)', 'Router CPU ms / 1,000', 'Edges CPU ms / 1,000', 'Redis CPU ms / 1,000'],
      presence.flatMap((r) => ['connect', 'close'].map((phase) => [r.consumer, phase, fmt(r.events), r[phase].delivered ?? '—', r[phase].eventsPerS == null ? '—' : fmt(r[phase].eventsPerS), r[phase].routerCpuMsPer1000, r[phase].edgesCpuMsPer1000, r[phase].redisCpuMsPer1000])),
    ))
  }
  if (plots.length > 0) parts.push('### Plots\n\n' + plots.map((p) => `![${p.title}](${p.path})`).join('\n'))
  return parts.join('\n\n') + '\n'
}

/** SVG plots as [{ file, title, svg }]; bare uWS (one node) is drawn at N = 1 as the floor. */
export function plots(results) {
  const runs = results.pushes
  const out = []
  if (runs?.length) {
    const ns = [...new Set(runs.filter((r) => r.system !== 'bare').map((r) => r.nodes))].sort((a, b) => a - b)
    const present = PUSH_SERIES.filter((s) => runs.some((r) => seriesOf(r) === s))
    const value = (series, n, mode, rate, field) => {
      if (series === 'bare' && n !== 1) return null
      if (field === 'messagesIn') return avg(find(runs, series, n, mode, rate)?.messagesInPerPush)
      return medianOf(runs, series, n, mode, rate, field)
    }
    const line = (file, title, yLabel, mode, rate, field, series = present) => ({
      file,
      title,
      svg: lineChart({ title, xLabel: 'Nodes (N)', yLabel, xTicks: ns, series: series.map((s) => ({ name: NAMES[s], points: ns.map((n) => [n, value(s, n, mode, rate, field)]) })) }),
    })
    for (const rate of results.sizes.rates) out.push(line(`fixed${rate}-cpu.svg`, `Server CPU µs per delivered push at ${perS(rate)}, all server processes`, 'CPU µs / delivered', 'fixed', rate, 'cpuMsPer1000'))
    out.push(line('max-deliveredPerS.svg', 'Single-recipient pushes delivered per second, as fast as it goes', 'delivered / s', 'max', null, 'deliveredPerS'))
    const curve = scaleCurve(runs)
    if (curve.length > 0) {
      const title = 'Server CPU per delivered push, Switchboard ÷ socket.io (median and range)'
      const lines = [...new Set(curve.map((p) => `${p.ingress} ${p.rate}`))].map((key) => curve.filter((p) => `${p.ingress} ${p.rate}` === key))
      const series = lines.map((line) => ({ name: `${INGRESS_NAMES[line[0].ingress]}, ${rateName(line[0].rate)}`, points: line.map((p) => [p.nodes, p.cpuRatio.median, p.cpuRatio.min, p.cpuRatio.max]) }))
      out.unshift({ file: 'scale-curve.svg', title, svg: lineChart({ title, xLabel: 'Nodes (N): edges / socket.io nodes', yLabel: 'CPU per push, Switchboard ÷ incumbent', xTicks: ns, series, rules: [{ y: 1, label: '1.0×: as cheap' }] }) })
    }
    const high = results.sizes.rates.at(-1)
    out.push(line('fixed-messagesIn.svg', `Messages each node takes in per push at ${perS(high)}`, 'messages / push / node', 'fixed', high, 'messagesIn', present.filter((s) => s !== 'bare')))
    for (const rate of results.sizes.rates) {
      for (const n of ns) {
        const title = `Latency, request to frame, at ${perS(rate)}, N = ${n}`
        const series = present.map((s) => ({ name: NAMES[s], samples: find(runs, s, n, 'fixed', rate)?.latencySamples ?? [] }))
        out.push({ file: `latency-fixed${rate}-n${n}.svg`, title, svg: latencyChart({ title, series }) })
      }
    }
  }
  if (results.memory?.length) {
    const sizes = [...new Set(results.memory.map((m) => m.connections))]
    const systems = ['switchboard', 'socketio', 'bare']
    out.push({ file: 'memory.svg', title: 'RSS per idle connection after GC', svg: barChart({ title: 'RSS KiB per idle connection after GC', yLabel: 'KiB', seriesNames: systems.map((s) => NAMES[s]), groups: sizes.map((n) => ({ label: `${fmt(n)} connections`, values: systems.map((s) => results.memory.find((m) => m.system === s && m.connections === n)?.rssKiBPerConnection ?? null) })) }) })
  }
  return out
}

/** The scale curve's table, one row per ingress, rate and N, and the crossover per ingress and rate. */
function curveMarkdown(curve, plot) {
  const range = ({ median: m, min, max }) => (m == null ? 'n/a' : `**${times(m)}** (${times(min)}–${times(max)})`)
  const sides = (p, field, unit = '') => `${show(p.switchboard[field], unit)} / ${show(p.socketio[field], unit)}`
  const rows = curve.map((p) => [
    INGRESS_NAMES[p.ingress], rateName(p.rate), p.nodes, p.repetitions, range(p.cpuRatio), sides(p, 'cpuUsPerPush'), sides(p, 'wakeupsPerPush'), sides(p, 'cpuUsPerWakeup'),
    p.rate === null ? `${sides(p, 'deliveredPerS')}: ${range(p.deliveredRatio)}` : '—',
  ])
  const crossing = crossovers(curve).map((c) => `- ${INGRESS_NAMES[c.ingress]}, ${rateName(c.rate)}: ${c.nodes == null ? `**none up to N = ${c.upTo}**` : `**from N = ${c.nodes}**`}`)
  return `### The scale curve\n\n${plot ? `![${plot.title}](${plot.path})\n\n` : ''}` + 'Server CPU per delivered push, Switchboard (router, N edges, Redis) / socket.io + redis-adapter (N nodes, Redis): the median of the per-repetition ratios (each repetition runs the two systems back to back, the order alternating) and their range. Wake-ups are voluntary context switches of every server process\'s main thread (turns); figures are Switchboard / the incumbent, medians over the repetitions.\n\n' + table(
    ['Ingress', 'Rate', 'N', 'Reps', 'CPU / push, Switchboard ÷ incumbent', 'CPU µs / push', 'Wake-ups / push', 'CPU µs / wake-up', 'Delivered/s (max)'],
    rows,
  ) + `\n\nCrossover, the smallest N from which Switchboard's median ratio stays below 1.0×:\n\n${crossing.join('\n')}`
}

const avg = (values) => (values?.length ? values.reduce((a, b) => a + b, 0) / values.length : null)

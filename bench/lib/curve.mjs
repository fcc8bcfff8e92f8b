// The scale curve from a run's push results: at each N, ingress and rate, Switchboard's server
// CPU per delivered push over the incumbent's, each repetition's Switchboard run paired with the
// incumbent's run of the same repetition (they ran back to back), and the crossover.
import { median, round } from './stats.mjs'

/** The rates of the curve: each fixed rate, then `null` (as fast as it goes). */
export const rateName = (rate) => (rate === null ? 'max' : `${rate.toLocaleString('en-US')}/s`)

const spread = (values) => {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return { median: null, min: null, max: null }
  return { median: round(median(finite), 3), min: round(Math.min(...finite), 3), max: round(Math.max(...finite), 3) }
}
const ratio = (a, b) => (a == null || b == null || b === 0 ? NaN : a / b)
const isCurveRun = (r) => r.batch === 1 && (r.mode === 'fixed' || r.mode === 'max')

/** A Switchboard run's line of the curve: its ingress, and its `wait` when it asked for one (`pipeline-routed`). */
export const lineOf = (run) => (run.wait ? `${run.ingress}-${run.wait}` : run.ingress)

/**
 * One point per (line, rate, N) where both systems ran (`ingress`: the line, see lineOf): `cpuRatio` (median, min, max over the
 * per-repetition ratios of server CPU per delivered push), each side's median CPU µs per push,
 * wake-ups per push and CPU µs per wake-up (all server processes), and delivered/s.
 */
export function scaleCurve(runs = []) {
  const ours = runs.filter((r) => r.system === 'switchboard' && isCurveRun(r))
  const theirs = runs.filter((r) => r.system === 'socketio' && isCurveRun(r))
  const keys = new Map()
  for (const r of ours) keys.set(`${lineOf(r)} ${r.rate} ${r.nodes}`, { ingress: lineOf(r), rate: r.rate, nodes: r.nodes })
  const points = []
  for (const { ingress, rate, nodes } of keys.values()) {
    const at = (r) => r.nodes === nodes && r.rate === rate
    const pairs = ours
      .filter((r) => lineOf(r) === ingress && at(r))
      .map((r) => [r, theirs.find((t) => at(t) && t.repetition === r.repetition)])
      .filter(([, t]) => t)
    if (pairs.length === 0) continue
    const side = (i, field) => spread(pairs.map((p) => field(p[i]))).median
    const figures = (i) => ({
      cpuUsPerPush: side(i, (r) => r.cpuMsPer1000),
      wakeupsPerPush: side(i, (r) => r.turns?.total.wakeupsPerPush),
      cpuUsPerWakeup: side(i, (r) => r.turns?.total.cpuUsPerWakeup),
      deliveredPerS: side(i, (r) => r.deliveredPerS),
    })
    points.push({
      ingress,
      rate,
      nodes,
      repetitions: pairs.length,
      cpuRatio: spread(pairs.map(([r, t]) => ratio(r.cpuMsPer1000, t.cpuMsPer1000))),
      deliveredRatio: spread(pairs.map(([r, t]) => ratio(r.deliveredPerS, t.deliveredPerS))),
      switchboard: figures(0),
      socketio: figures(1),
    })
  }
  const rates = [...new Set(points.map((p) => p.rate))].sort((a, b) => (a ?? Infinity) - (b ?? Infinity))
  return points.sort((a, b) => a.ingress.localeCompare(b.ingress) || rates.indexOf(a.rate) - rates.indexOf(b.rate) || a.nodes - b.nodes)
}

/**
 * Per ingress and rate, the smallest N from which Switchboard's median ratio stays below 1 at
 * every larger N measured (`nodes`, or null: none up to `upTo`, the largest N).
 */
export function crossovers(points) {
  const lines = new Map()
  for (const p of points) {
    const key = `${p.ingress} ${p.rate}`
    if (!lines.has(key)) lines.set(key, { ingress: p.ingress, rate: p.rate, points: [] })
    lines.get(key).points.push(p)
  }
  return [...lines.values()].map(({ ingress, rate, points: line }) => {
    const sorted = [...line].sort((a, b) => a.nodes - b.nodes)
    let nodes = null
    for (let i = sorted.length - 1; i >= 0 && sorted[i].cpuRatio.median != null && sorted[i].cpuRatio.median < 1; i--) nodes = sorted[i].nodes
    return { ingress, rate, nodes, upTo: sorted.at(-1).nodes }
  })
}

// The bench's scale curve and turn counting (bench/lib/curve.mjs, harness.mjs's turnFigures,
// plot.mjs's range bars and rules): pure functions over results, checked on made-up runs.
import t from 'tap'
// @ts-expect-error: the bench is plain JS, without types
import { crossovers, scaleCurve } from '../../bench/lib/curve.mjs'
// @ts-expect-error: the bench is plain JS, without types
import { turnFigures } from '../../bench/lib/harness.mjs'
// @ts-expect-error: the bench is plain JS, without types
import { lineChart } from '../../bench/lib/plot.mjs'
// @ts-expect-error: the bench is plain JS, without types
import { targets } from '../../bench/lib/report.mjs'

interface Point {
  ingress: string
  rate: number | null
  nodes: number
  repetitions: number
  cpuRatio: { median: number | null; min: number | null; max: number | null }
  deliveredRatio: { median: number | null }
  switchboard: { cpuUsPerPush: number; wakeupsPerPush: number; cpuUsPerWakeup: number }
  socketio: { cpuUsPerPush: number }
}

/** A push run as the pushes scenario records it (only the fields the curve reads). */
const run = (system: string, nodes: number, repetition: number, cpuMsPer1000: number, extra: Record<string, unknown> = {}) => ({
  system,
  ...(system === 'switchboard' ? { ingress: 'pipeline' } : {}),
  nodes,
  repetition,
  mode: 'fixed',
  rate: 1000,
  batch: 1,
  cpuMsPer1000,
  deliveredPerS: 1000,
  turns: { total: { wakeupsPerPush: system === 'switchboard' ? 2 : 1, cpuUsPerWakeup: 50 } },
  latencyMs: { p99: 1 },
  ...extra,
})

t.test('each repetition is paired with the incumbent run of the same repetition; median and range of the ratios', async (t) => {
  const runs = [
    run('switchboard', 3, 0, 100), run('socketio', 3, 0, 50),
    run('socketio', 3, 1, 100), run('switchboard', 3, 1, 150),
    run('switchboard', 3, 2, 90), run('socketio', 3, 2, 100),
    run('switchboard', 3, 0, 1, { mode: 'batch100', batch: 100 }), // batches are not on the curve
  ]
  const [point, ...rest] = scaleCurve(runs) as [Point, ...Point[]]
  t.equal(rest.length, 0, 'one point: pipeline, 1,000/s, N = 3')
  t.match(point, { ingress: 'pipeline', rate: 1000, nodes: 3, repetitions: 3 })
  t.same(point.cpuRatio, { median: 1.5, min: 0.9, max: 2 }, 'ratios 2, 1.5 and 0.9: not the ratio of medians (100 / 100)')
  t.match(point.switchboard, { cpuUsPerPush: 100, wakeupsPerPush: 2, cpuUsPerWakeup: 50 })
  t.equal(point.socketio.cpuUsPerPush, 100)
})

t.test('runs with wait: routed make their own line, paired with the same incumbent runs', async (t) => {
  const routed = { wait: 'routed' }
  const runs = [run('switchboard', 3, 0, 100), run('switchboard', 3, 0, 40, routed), run('socketio', 3, 0, 100)]
  const points = scaleCurve(runs) as Point[]
  t.same(points.map((p) => [p.ingress, p.cpuRatio.median]), [['pipeline', 1], ['pipeline-routed', 0.4]])
})

t.test('the targets read the curve at their N and rate; a point not measured is neither met nor missed', async (t) => {
  const at5k = { rate: 5000 }
  const runs = [
    run('switchboard', 3, 0, 90, at5k), run('socketio', 3, 0, 100, at5k), // 0.9×: met (≤ 1.0×)
    run('switchboard', 3, 0, 90, { ...at5k, wait: 'routed' }), // 0.9×: missed (≤ 0.8×)
  ]
  const rows = targets({ sizes: { rates: [1000, 5000] }, pushes: runs }) as { target: string; ok: boolean | null }[]
  const row = (text: string) => rows.find((r) => r.target.includes(text))
  t.equal(row('pipeline, N = 3, 5k/s: ≤ 1.0×')?.ok, true)
  t.equal(row('pipeline, wait: routed, N = 3, 5k/s: ≤ 0.8×')?.ok, false)
  t.equal(row('pipeline, N = 9, 5k/s')?.ok, null, 'N = 9 was not measured')
})

t.test('a point without the incumbent run of its repetition is left out', async (t) => {
  t.same(scaleCurve([run('switchboard', 1, 0, 100), run('socketio', 1, 1, 100)]), [])
})

t.test('the crossover is the smallest N from which the median ratio stays below 1', async (t) => {
  const line = (ratios: Array<[number, number]>) => ratios.map(([nodes, cpuRatio]) => ({ ingress: 'http', rate: 5000, nodes, cpuRatio: { median: cpuRatio } }))
  t.match(crossovers(line([[1, 2], [3, 0.9], [6, 0.8], [9, 0.7]])), [{ ingress: 'http', rate: 5000, nodes: 3, upTo: 9 }])
  t.match(crossovers(line([[1, 0.9], [3, 1.1], [6, 0.8], [9, 0.7]])), [{ nodes: 6 }], 'a dip below 1 that does not last is no crossover')
  t.match(crossovers(line([[1, 2], [3, 1.5], [6, 1.2], [9, 1]])), [{ nodes: null, upTo: 9 }], '1.0× is not cheaper: none up to N = 9')
})

t.test('turn figures: wake-ups per second and per delivered push, CPU µs per wake-up, per process and in total', async (t) => {
  const figures = turnFigures({
    cpuMs: { router: 300, redis: 0 },
    switches: { router: { voluntary: 1000, nonvoluntary: 10 }, redis: { voluntary: 0, nonvoluntary: 0 } },
    seconds: 2,
    delivered: 4000,
  })
  t.same(figures.router, { wakeups: 1000, preempted: 10, wakeupsPerS: 500, wakeupsPerPush: 0.25, cpuUsPerWakeup: 300 })
  t.equal(figures.redis.cpuUsPerWakeup, null, 'no wake-up: no CPU per wake-up rather than a division by zero')
  t.match(figures.total, { wakeups: 1000, wakeupsPerPush: 0.25, cpuUsPerWakeup: 300 })
})

t.test('the curve plot draws each range and a dashed 1.0× rule, never NaN', async (t) => {
  const svg: string = lineChart({ title: 'ratio', xTicks: [1, 3], series: [{ name: 'pipeline, 1,000/s', points: [[1, 2, 1.5, 2.5], [3, 0.8, 0.7, Number.NaN]] }], rules: [{ y: 1, label: '1.0×' }] })
  t.match(svg, /stroke-dasharray="6 4"/, 'the rule')
  t.match(svg, />1\.0×</, 'its label')
  t.equal(svg.match(/stroke-opacity="0.6"/g)?.length, 1, 'one range bar: the point without a finite range has none')
  t.notMatch(svg, /NaN|Infinity/)
})

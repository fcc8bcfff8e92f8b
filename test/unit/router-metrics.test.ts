import t from 'tap'
import { Registry } from 'prom-client'
import { EDGE_CALL_ERROR_CODES, EdgeCallError, createRouterMetrics } from '@switchboard/router'

const countSeries = (registry: Registry, name: string) => async () =>
  (await registry.getSingleMetricAsString(name)).match(new RegExp(`^${name}(_count)?\\{[^}]*\\} \\d+`, 'gm')) ?? []

t.test('per-edge forward series of edges that left are dropped; live ones stay', async (t) => {
  const registry = new Registry()
  const metrics = createRouterMetrics(registry, () => 0)
  await metrics.forward.time('http://10.0.0.1:8081', Promise.resolve())
  await t.rejects(metrics.forward.time('http://10.0.0.2:8081', Promise.reject(new EdgeCallError('timeout', 'no answer'))))
  const series = countSeries(registry, 'router_forward_seconds')
  t.same(await series(), ['router_forward_seconds_count{edge="http://10.0.0.1:8081",result="ok"} 1', 'router_forward_seconds_count{edge="http://10.0.0.2:8081",result="error"} 1'])
  metrics.forward.prune(new Set(['http://10.0.0.1:8081']))
  t.same(await series(), ['router_forward_seconds_count{edge="http://10.0.0.1:8081",result="ok"} 1'], 'the departed edge is gone')
  metrics.forward.prune(new Set())
  t.same(await series(), [])
})

t.test('failures are counted by code; a call the circuit skipped is not timed as a failed forward', async (t) => {
  const registry = new Registry()
  const metrics = createRouterMetrics(registry, () => 0)
  const edge = 'http://10.0.0.3:8081'
  const failures = countSeries(registry, 'router_forward_failures_total')
  t.same(await failures(), EDGE_CALL_ERROR_CODES.map((code) => `router_forward_failures_total{code="${code}"} 0`), 'every code served at 0')
  const skipped = new EdgeCallError('circuit_open', 'edge skipped: it keeps failing')
  await t.rejects(metrics.forward.time(edge, Promise.reject(skipped)), skipped, 'the error still reaches the caller')
  await t.rejects(metrics.forward.time(edge, Promise.reject(new EdgeCallError('link_down', 'edge link closed (1006)'))))
  t.same(await countSeries(registry, 'router_forward_seconds')(), [`router_forward_seconds_count{edge="${edge}",result="error"} 1`], 'only the call that was sent is timed')
  const counted = (await failures()).filter((line) => !line.endsWith(' 0'))
  t.same(counted, ['router_forward_failures_total{code="link_down"} 1', 'router_forward_failures_total{code="circuit_open"} 1'])
})

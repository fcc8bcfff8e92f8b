import t from 'tap'
import { Registry } from 'prom-client'
import { createRouterMetrics } from '@switchboard/router'

t.test('per-edge forward series of edges that left are dropped; live ones stay', async (t) => {
  const registry = new Registry()
  const metrics = createRouterMetrics(registry, () => 0)
  metrics.forward.start('http://10.0.0.1:8081')({ result: 'ok' })
  metrics.forward.start('http://10.0.0.2:8081')({ result: 'error' })
  const series = async () => (await registry.getSingleMetricAsString('router_forward_seconds')).match(/^router_forward_seconds_count\{[^}]*\}/gm) ?? []
  t.same(await series(), ['router_forward_seconds_count{edge="http://10.0.0.1:8081",result="ok"}', 'router_forward_seconds_count{edge="http://10.0.0.2:8081",result="error"}'])
  metrics.forward.prune(new Set(['http://10.0.0.1:8081']))
  t.same(await series(), ['router_forward_seconds_count{edge="http://10.0.0.1:8081",result="ok"}'], 'the departed edge is gone')
  metrics.forward.prune(new Set())
  t.same(await series(), [])
})

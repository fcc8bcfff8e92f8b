// The Grafana dashboard queries only metrics the services serve: those documented in
// docs/OPERATIONS.md (checked against live services by the observability test) and
// prom-client's default process metrics.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { Registry, collectDefaultMetrics } from 'prom-client'

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')
const documented = new Set([...read('docs/OPERATIONS.md').matchAll(/^\| `(\w+)` \| (?:counter|gauge|histogram) \|/gm)].map((m) => m[1]!))

t.test('every dashboard query names served metrics', async (t) => {
  const defaults = new Registry()
  collectDefaultMetrics({ register: defaults })
  const defaultNames = new Set((await defaults.getMetricsAsJSON()).map((m) => m.name))
  const dashboard = JSON.parse(read('k8s/grafana/switchboard.json')) as { panels: { type: string; title: string; targets?: { expr: string }[] }[] }
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((q) => ({ panel: p.title, expr: q.expr })))
  t.ok(queries.length >= 15, `${queries.length} queries`)
  const used = new Set<string>()
  for (const { panel, expr } of queries) {
    const names = [...expr.matchAll(/\b((?:edge|router|presence|process|nodejs)_\w+?)(?:_bucket|_count|_sum)?\b(?=[{[\s)])/g)].map((m) => m[1]!)
    t.ok(names.length > 0, `${panel}: queries a metric`)
    for (const name of names) {
      used.add(name)
      t.ok(documented.has(name) || defaultNames.has(name), `${panel}: ${name} is served`)
    }
  }
  for (const name of ['router_recipients_total', 'router_forward_seconds', 'edge_connections', 'edge_lease_renewals_total']) t.ok(used.has(name), `the dashboard shows ${name}`)
})

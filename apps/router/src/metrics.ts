import { Counter, Histogram, collectDefaultMetrics, type Registry as PromRegistry } from 'prom-client'

export function createRouterMetrics(registry: PromRegistry) {
  collectDefaultMetrics({ register: registry })
  return {
    pushes: new Counter({
      name: 'router_pushes_total',
      help: 'Accepted push requests.',
      registers: [registry],
    }),
    recipients: new Counter({
      name: 'router_recipients_total',
      help: 'Push recipients by outcome (delivered, offline, failed).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    forwardSeconds: new Histogram({
      name: 'router_forward_seconds',
      help: 'Duration of router -> edge calls, by outcome (ok, error).',
      labelNames: ['result'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    registryErrors: new Counter({
      name: 'router_registry_errors_total',
      help: 'Requests answered 503 because the registry could not answer.',
      registers: [registry],
    }),
  }
}
export type RouterMetrics = ReturnType<typeof createRouterMetrics>

import { Counter, Gauge, Histogram, type Registry as PromRegistry } from 'prom-client'
import { PRESENCE_CAUSES } from '@switchboard/protocol'

const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3_600]

export function createPresenceMetrics(registry: PromRegistry) {
  const metrics = {
    events: new Counter({
      name: 'presence_events_total',
      help: 'Presence events read from the registry by this router\'s delivery worker, by type and cause.',
      labelNames: ['type', 'cause'] as const,
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'presence_deliveries_total',
      help: 'Batch delivery attempts by sink (a webhook endpoint, or feed) and outcome (ack, retry, gone, dropped).',
      labelNames: ['sink', 'outcome'] as const,
      registers: [registry],
    }),
    lag: new Histogram({
      name: 'presence_delivery_lag_seconds',
      help: 'From an event\'s transition to its acknowledgement, by sink.',
      labelNames: ['sink'] as const,
      buckets: LAG_BUCKETS,
      registers: [registry],
    }),
    backlog: new Gauge({
      name: 'presence_backlog_events',
      help: 'Events read and not yet acknowledged by every sink, per partition this router delivers.',
      labelNames: ['partition'] as const,
      registers: [registry],
    }),
    oldestUnacked: new Gauge({
      name: 'presence_oldest_unacked_seconds',
      help: 'Age of the oldest event a sink has not acknowledged (0 when it is caught up).',
      labelNames: ['sink'] as const,
      registers: [registry],
    }),
    disabled: new Gauge({
      name: 'presence_sink_disabled',
      help: '1 while a webhook endpoint is disabled because it answered 410 Gone.',
      labelNames: ['sink'] as const,
      registers: [registry],
    }),
    partitions: new Gauge({
      name: 'presence_partitions_owned',
      help: 'Event partitions this router delivers.',
      registers: [registry],
    }),
  }
  for (const cause of PRESENCE_CAUSES) {
    const type = cause === 'connect' || cause === 'resync' ? 'user.online' : 'user.offline'
    metrics.events.inc({ type, cause }, 0)
  }
  return metrics
}
export type PresenceMetrics = ReturnType<typeof createPresenceMetrics>

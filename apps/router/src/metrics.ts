import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry as PromRegistry } from 'prom-client'
import { timeCall } from '@switchboard/protocol'
import type { RouterRegistry } from '@switchboard/registry'
import { EDGE_CALL_ERROR_CODES, EdgeCallError } from './edge-client.js'

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

/** Read back by name by the admin web's charts (admin/traffic.ts). */
export const RECIPIENTS_METRIC = 'router_recipients_total'
/**
 * Its `result` label: how a push's recipient ended (`routed`: handed to its edge by a routed
 * push; `acked` and `unacked`: a push asking for receipts). The answers' lists, and the admin's chart.
 */
export const RECIPIENT_RESULTS = ['delivered', 'routed', 'acked', 'unacked', 'offline', 'failed'] as const
export type RecipientResult = (typeof RECIPIENT_RESULTS)[number]

export function createRouterMetrics(registry: PromRegistry, inFlight: () => number) {
  collectDefaultMetrics({ register: registry })
  const metrics = {
    pushes: new Counter({
      name: 'router_pushes_total',
      help: 'Accepted push requests.',
      registers: [registry],
    }),
    kept: new Counter({
      name: 'router_pushes_kept_total',
      help: 'Pushes kept in their recipients\' inboxes for recovery (keep, or PUSH_KEEP_DEFAULT).',
      registers: [registry],
    }),
    routedPushes: new Counter({
      name: 'router_pushes_routed_total',
      help: 'Pushes with wait: routed (answered once handed to the edges; also in router_pushes_total).',
      registers: [registry],
    }),
    roomPushes: new Counter({
      name: 'router_room_pushes_total',
      help: 'Accepted room pushes.',
      registers: [registry],
    }),
    roomEdgeCalls: new Counter({
      name: 'router_room_edge_calls_total',
      help: 'Edge calls made by room pushes: one per edge holding a connection of a member, whatever the room\'s size.',
      registers: [registry],
    }),
    recipients: new Counter({
      name: RECIPIENTS_METRIC,
      help: 'Push recipients by outcome (delivered, routed: a routed push handed to their edge, acked and unacked: a push asking for receipts acknowledged or not, offline, failed).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    forward: perEdgeTimer(
      new Histogram({
        name: 'router_forward_seconds',
        help: 'Duration of router -> edge delivery calls, per push, by edge (its internal URL) and outcome (ok, error); calls skipped by the edge\'s circuit are not in it.',
        labelNames: ['edge', 'result'] as const,
        buckets: LATENCY_BUCKETS,
        registers: [registry],
      }),
      new Counter({
        name: 'router_forward_failures_total',
        help: 'Failed router -> edge delivery calls (routed pushes too), per push, by why (EdgeCallError code); circuit_open: not sent, the edge keeps failing.',
        labelNames: ['code'] as const,
        registers: [registry],
      }),
    ),
    registrySeconds: new Histogram({
      name: 'router_registry_seconds',
      help: 'Duration of registry reads by operation (locate, live_nodes, incarnations) and outcome (ok, error).',
      labelNames: ['op', 'result'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    presenceQueries: new Counter({
      name: 'router_presence_queries_total',
      help: 'Presence requests by kind (single, batch).',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    presenceUsers: new Counter({
      name: 'router_presence_users_total',
      help: 'User ids looked up by presence requests.',
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'router_requests_in_flight',
      help: 'Requests received and not yet answered, HTTP and pipelined.',
      registers: [registry],
      collect() {
        this.set(inFlight())
      },
    }),
    pipelineConnections: new Gauge({
      name: 'router_pipeline_connections',
      help: 'Open pipelined-ingress connections (backends).',
      registers: [registry],
    }),
    pipelineRefusals: new Counter({
      name: 'router_pipeline_refusals_total',
      help: 'Pipelined-ingress refusals by reason: in_flight (a request answered 429 past the per-connection bound), too_slow (a connection closed with 4008).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    registryErrors: new Counter({
      name: 'router_registry_errors_total',
      help: 'Requests answered 503 because the registry could not answer.',
      registers: [registry],
    }),
  }
  // Served at 0 from the start, so a dashboard and its alerts see the series before the first refusal.
  for (const reason of ['in_flight', 'too_slow'] as const) metrics.pipelineRefusals.inc({ reason }, 0)
  return metrics
}
export type RouterMetrics = ReturnType<typeof createRouterMetrics>

/** The registry reads the routes make, each timed in router_registry_seconds. */
export type TimedRegistry = RouterRegistry

export function timedRegistry(registry: RouterRegistry, seconds: RouterMetrics['registrySeconds']): TimedRegistry {
  return {
    locate: (userIds) => timeCall(seconds.startTimer({ op: 'locate' }), registry.locate(userIds)),
    liveNodes: () => timeCall(seconds.startTimer({ op: 'live_nodes' }), registry.liveNodes()),
    incarnations: (incIds) => timeCall(seconds.startTimer({ op: 'incarnations' }), registry.incarnations(incIds)),
  }
}

/**
 * Times router -> edge calls in router_forward_seconds by edge, counts failures by code in
 * router_forward_failures_total (a call the edge's circuit skipped never left: it is counted
 * there, not timed), and drops the series of edges that left (`prune`), so label sets do not
 * pile up as edges come and go (every deploy brings new ones).
 */
function perEdgeTimer(histogram: Histogram<'edge' | 'result'>, failures: Counter<'code'>) {
  const seen = new Set<string>()
  // Served at 0 from the start, so a dashboard and its alerts see every code before its first failure.
  for (const code of EDGE_CALL_ERROR_CODES) failures.inc({ code }, 0)
  const codeOf = (err: unknown) => (err instanceof EdgeCallError ? err.code : 'edge_error')
  return {
    /** Counts a failed call that was not timed (a routed push's hand-over). */
    failed(err: unknown): void {
      failures.inc({ code: codeOf(err) })
    },
    time<T>(edge: string, call: Promise<T>): Promise<T> {
      seen.add(edge)
      const end = histogram.startTimer({ edge })
      return call.then(
        (value) => {
          end({ result: 'ok' })
          return value
        },
        (err: unknown) => {
          const code = codeOf(err)
          failures.inc({ code })
          if (code !== 'circuit_open') end({ result: 'error' })
          throw err
        },
      )
    },
    prune(liveEdges: ReadonlySet<string>) {
      for (const edge of seen) {
        if (liveEdges.has(edge)) continue
        histogram.remove({ edge, result: 'ok' })
        histogram.remove({ edge, result: 'error' })
        seen.delete(edge)
      }
    },
  }
}

import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry as PromRegistry } from 'prom-client'

/** The sizes the gauges read at scrape time; 0 until `observe` names where they come from. */
export interface EdgeSizes {
  connections: () => number
  rooms: () => number
  receiptsWaiting: () => number
}

export function createEdgeMetrics(registry: PromRegistry) {
  collectDefaultMetrics({ register: registry })
  const sizes: EdgeSizes = { connections: () => 0, rooms: () => 0, receiptsWaiting: () => 0 }
  const metrics = {
    /** Where the gauges read their sizes: called once the connections (and rooms) exist. */
    observe(from: Partial<EdgeSizes>): void {
      Object.assign(sizes, from)
    },
    connections: new Gauge({
      name: 'edge_connections',
      help: 'Open client websockets on this edge.',
      registers: [registry],
      collect() {
        this.set(sizes.connections())
      },
    }),
    handshakes: new Counter({
      name: 'edge_handshakes_total',
      help: 'Websocket upgrade attempts by result (ok, unauthorized, forbidden, draining).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    closes: new Counter({
      name: 'edge_disconnects_total',
      help: 'Closed client websockets by close code, and reason: the edge\'s (a name of CloseReasons: too_slow, rate_limited, going_away, ...), or client when the client or the network closed it.',
      labelNames: ['code', 'reason'] as const,
      registers: [registry],
    }),
    resumes: new Counter({
      name: 'edge_resumes_total',
      help: 'Clients that offered resume., by result (recovered, not_recovered, started: no position yet, failed: the inbox read failed).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    tokenRefreshes: new Counter({
      name: 'edge_token_refreshes_total',
      help: 'Client refresh frames, by result (ok, invalid, other_user, revoked, unavailable: the revocation could not be read).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    tokenExpiries: new Counter({
      name: 'edge_token_expiries_total',
      help: 'Client websockets closed with 4002 because their token expired.',
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'edge_deliver_requests_total',
      help: 'Delivery calls received from routers (one call carries one push to any number of this edge\'s users).',
      registers: [registry],
    }),
    framesOut: new Counter({
      name: 'edge_push_frames_total',
      help: 'Pushes delivered: push frames written to client sockets.',
      registers: [registry],
    }),
    framesSent: new Counter({
      name: 'edge_frames_sent_total',
      help: 'Frames written to client sockets by type (push, welcome, pong).',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    framesReceived: new Counter({
      name: 'edge_frames_received_total',
      help: 'Frames received from clients, valid or not.',
      registers: [registry],
    }),
    roomPushes: new Counter({
      name: 'edge_room_pushes_total',
      help: 'Room push calls received from routers (one per room push whose room has a member here).',
      registers: [registry],
    }),
    rooms: new Gauge({
      name: 'edge_rooms',
      help: 'Rooms with a member connected to this edge (each is a field of this edge in the room\'s edge index).',
      registers: [registry],
      collect() {
        this.set(sizes.rooms())
      },
    }),
    routedUnwritten: new Counter({
      name: 'edge_routed_unwritten_total',
      help: 'Recipients of routed pushes (wait: routed, never confirmed to the router) this edge could not write, by reason (not_here: no open socket of the user here; closed: closed as too slow instead).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    acks: new Counter({
      name: 'edge_acks_total',
      help: 'Push ids in clients\' ack frames, by result (ok: a push waiting for that user\'s receipt; unknown: nothing waits for it here: unknown, already acknowledged, timed out, or replayed from an inbox).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    receiptsWaiting: new Gauge({
      name: 'edge_receipts_waiting',
      help: 'Pushes asking for receipts that wait here for their recipients\' acknowledgements.',
      registers: [registry],
      collect() {
        this.set(sizes.receiptsWaiting())
      },
    }),
    receipts: new Counter({
      name: 'edge_receipts_total',
      help: 'Recipients of pushes asking for receipts, written here, by outcome (acked: a connection of the user acknowledged it in time; unacked: none did before the timeout, or its connections closed).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    backpressureCloses: new Counter({
      name: 'edge_backpressure_closes_total',
      help: 'Sockets closed with 4008 (too_slow) because they read too slowly.',
      registers: [registry],
    }),
    leaseRenewals: new Counter({
      name: 'edge_lease_renewals_total',
      help: 'Lease renewals by result (ok, lost, server_changed, error).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    registryErrors: new Counter({
      name: 'edge_registry_errors_total',
      help: 'Failed registry calls.',
      registers: [registry],
    }),
    registrySeconds: new Histogram({
      name: 'edge_registry_seconds',
      help: 'Duration of registry calls by operation (open, renew, add, remove, resync, close) and result (ok, error).',
      labelNames: ['op', 'result'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  }
  // Served at 0 from the start, so a dashboard and its alerts see the series before the first routed push.
  for (const reason of ['not_here', 'closed'] as const) metrics.routedUnwritten.inc({ reason }, 0)
  for (const result of ['ok', 'unknown'] as const) metrics.acks.inc({ result }, 0)
  for (const result of ['acked', 'unacked'] as const) metrics.receipts.inc({ result }, 0)
  return metrics
}
export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>

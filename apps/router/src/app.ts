import type { Logger } from 'pino'
import type { Registry as PromRegistry } from 'prom-client'
import { App, us_listen_socket_close, us_socket_local_port, type us_listen_socket } from 'uWebSockets.js'
import { DEFAULT_TOKEN_MAX_LIFETIME_S, createBearerCheck } from '@switchboard/protocol'
import { DEFAULT_INBOX, DEFAULT_ROOMS, MemoryIdempotencyStore, MemoryInbox, MemoryRoomStore, type Inbox, type PresenceReader, type Revocations, type RoomStore, type RouterRegistry } from '@switchboard/registry'
import { createApi, type Api } from './api.js'
import type { RouterConfig } from './config.js'
import type { EdgeClient } from './edge-client.js'
import { serveHttpApi } from './http-api.js'
import { createLimitChecks, type ApiLimits } from './limits.js'
import { batchLocates } from './locate-batch.js'
import { createRouterMetrics, timedRegistry } from './metrics.js'
import { servePipeline } from './pipeline.js'
import { createPullApi } from './presence/pull-api.js'
import { createIdempotent, type IdempotencyDeps } from './idempotency.js'

export interface AppDeps {
  config: Pick<RouterConfig, 'apiKeys' | 'bodyLimitBytes' | 'pipelineMaxInFlight' | 'pipelineMaxBackpressureBytes'> & Partial<Pick<RouterConfig, 'presencePollMs' | 'keepByDefault' | 'inbox' | 'rooms' | 'tokenMaxLifetimeS' | 'coalesceMs'>> & ApiLimits
  /** Routing reads (timed, batched), revocations, and the presence pull API's reads. */
  registry: RouterRegistry & Revocations & PresenceReader
  edges: EdgeClient
  log: Logger
  promRegistry: PromRegistry
  /** Where Idempotency-Key answers are kept; default: in this process, 24 h. */
  idempotency?: IdempotencyDeps
  /** Inboxes of kept pushes; default: in this process, within `config.inbox`. */
  inbox?: Inbox
  /** Room memberships and edge indexes; default: in this process, within `config.rooms`. */
  rooms?: RoomStore
}

export interface RouterApp {
  /** The operations both ingresses call (the admin web calls them too). */
  readonly api: Api
  /** Resolves with the port bound (`port` 0: any free one). */
  listen(host: string, port: number): Promise<number>
  /**
   * Stops accepting, waits (at most `graceMs`) for requests in flight on both ingresses to be
   * answered, then closes every connection: pipelined backends with 1001. Pushes still waiting
   * for receipts then are answered first, with the edges that did not answer as `failed`.
   */
  close(graceMs?: number): Promise<void>
}

/** How often the per-edge series of edges that left are dropped. */
const PRUNE_EVERY_MS = 60_000
/** How often close() looks whether the requests in flight are answered. */
const CLOSE_POLL_MS = 10
/** After the grace, how long close() gives pushes whose receipt waits it ended to be answered. */
const CLOSE_ANSWER_MS = 500

/**
 * The router: its HTTP API and pipelined ingress on one uWebSockets.js app and port, both
 * calling the same operations (api.ts). Registry lookups are batched per event-loop turn
 * (locate-batch.ts) and timed; deliveries go through `edges` (one link per edge).
 */
export function buildApp(deps: AppDeps): RouterApp {
  /** Requests received and not yet answered, on both ingresses. */
  const inFlight = { n: 0 }
  const metrics = createRouterMetrics(deps.promRegistry, () => inFlight.n)
  const timed = timedRegistry(deps.registry, metrics.registrySeconds)
  const registry = { ...timed, locate: batchLocates(timed.locate, { windowMs: deps.config.coalesceMs ?? 0 }) }
  const roomLimits = deps.config.rooms ?? DEFAULT_ROOMS
  const api = createApi({
    registry,
    edges: deps.edges,
    metrics,
    limits: createLimitChecks(deps.config),
    log: deps.log,
    inbox: deps.inbox ?? new MemoryInbox(deps.config.inbox ?? DEFAULT_INBOX),
    keepByDefault: deps.config.keepByDefault ?? false,
    rooms: deps.rooms ?? new MemoryRoomStore(roomLimits),
    roomLimits,
    revocations: deps.registry,
    tokenMaxLifetimeS: deps.config.tokenMaxLifetimeS ?? DEFAULT_TOKEN_MAX_LIFETIME_S,
  })
  const isApiKey = createBearerCheck(deps.config.apiKeys)
  const idempotent = createIdempotent(deps.idempotency ?? { store: new MemoryIdempotencyStore(), retentionMs: 86_400_000, pendingTtlMs: 15_000 })
  let isClosing = false
  const app = App()
  // The websocket route first: a plain GET of its path falls through to the HTTP API (404).
  const pipeline = servePipeline(app, {
    api,
    idempotent,
    isApiKey,
    log: deps.log,
    metrics,
    bodyLimitBytes: deps.config.bodyLimitBytes,
    maxInFlight: deps.config.pipelineMaxInFlight,
    maxBackpressureBytes: deps.config.pipelineMaxBackpressureBytes,
    isClosing: () => isClosing,
    inFlight,
  })
  const pull = createPullApi({ registry: deps.registry, pollMs: deps.config.presencePollMs ?? 250, isClosing: () => isClosing })
  serveHttpApi(app, { api, pull, idempotent, registry, isApiKey, bodyLimitBytes: deps.config.bodyLimitBytes, log: deps.log, metrics, promRegistry: deps.promRegistry, isClosing: () => isClosing, inFlight })

  const pruner = setInterval(() => {
    deps.registry.liveNodes().then(
      (nodes) => metrics.forward.prune(new Set(nodes.map((n) => n.url))),
      () => undefined, // the registry is down: prune next time
    )
  }, PRUNE_EVERY_MS)
  pruner.unref()

  let listenSocket: us_listen_socket | undefined
  return {
    api,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        app.listen(host, port, (socket) => {
          if (!socket) return reject(new Error(`cannot listen on ${host}:${port}`))
          listenSocket = socket
          resolve(us_socket_local_port(socket))
        })
      }),
    async close(graceMs = 30_000) {
      isClosing = true
      clearInterval(pruner)
      if (listenSocket) us_listen_socket_close(listenSocket)
      const deadline = Date.now() + graceMs
      while (inFlight.n > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, CLOSE_POLL_MS))
      if (inFlight.n > 0) {
        // Receipts can outlast the grace (up to 30 s): end their waits so that their pushes are
        // answered (not-yet-answered edges' users `failed`) before the connections close.
        deps.edges.endWaits?.()
        const answeredBy = Date.now() + CLOSE_ANSWER_MS
        while (inFlight.n > 0 && Date.now() < answeredBy) await new Promise((r) => setTimeout(r, CLOSE_POLL_MS))
      }
      // Answers written in the last turn are flushed by then (setImmediate) before the sockets go.
      await new Promise((r) => setImmediate(r))
      pipeline.closeAll()
      await new Promise((r) => setImmediate(r))
      app.close()
    },
  }
}

import type { Logger } from 'pino'
import type { Registry as PromRegistry } from 'prom-client'
import {
  App,
  us_listen_socket_close,
  us_socket_local_port,
  type HttpRequest,
  type HttpResponse,
  type TemplatedApp,
  type WebSocket,
  type us_listen_socket,
} from 'uWebSockets.js'
import { LINK_OPS, LINK_PATH, REQUEST_IDS, WS_PATH, createBearerCheck, linkOps, type LinkOp } from '@switchboard/protocol'
import type { EdgeRegistry, Inbox, RouterRegistry } from '@switchboard/registry'
import { createPublicKey } from 'node:crypto'
import { createOriginCheck, tokenFromProtocols } from './auth.js'
import { JwksCache, TokenError, createTokenVerifier, type TokenVerifier, type VerifiedToken } from './tokens.js'
import type { EdgeConfig } from './config.js'
import { ConnIds } from './conn-ids.js'
import { Connections, type Conn } from './connections.js'
import { readBody, sendError, sendJson } from './http.js'
import { createEdgeMetrics } from './metrics.js'
import { createEvictor } from './evictions.js'
import { KeyedRateLimiter } from './rate-limit.js'
import { Registration } from './registration.js'
import { createInternalCalls } from './internal-calls.js'
import { createRouterLinks } from './router-link.js'
import { LocalRooms, type RoomIndexStore } from './rooms.js'

export interface EdgeDeps {
  config: EdgeConfig
  /** Its lease and connections' entries, and the live nodes (to reach the edge holding an evicted socket). */
  registry: EdgeRegistry & Pick<RouterRegistry, 'liveNodes'>
  log: Logger
  promRegistry: PromRegistry
  /** Defaults to the keys and rules of `config.jwt`. */
  verifyToken?: TokenVerifier
  /** Where resuming clients' missed kept pushes are read; without one, every resume is answered `recovered: false`. */
  inbox?: Inbox
  /** Where users' rooms are read and this edge's room index fields written; without one, room pushes reach no one here. */
  rooms?: RoomIndexStore
  /** A lease renewal failed: drop the registry's connection and connect afresh (see RegistrationDeps.onRenewFailed). */
  onRegistryStalled?: () => void
}

export interface Edge {
  readonly nodeId: string
  readonly port: number
  readonly internalPort: number
  /** Stops accepting, closes every client socket with 1001 spread over `drainMs`, leaves the registry, then closes the router links. */
  drain(drainMs?: number): Promise<void>
}

type Socket = WebSocket<Conn>

/** Internal request bodies: a 10,000-recipient delivery with ids of 256 chars, with room to spare. */
const MAX_INTERNAL_BODY_BYTES = 16 << 20

/**
 * An edge, built in phases, each from what the earlier ones made: what a handshake checks; the
 * internal port (its URL is the lease's); the registry side (lease, entries, room index); the
 * client sockets; the routers' calls on the internal port; then it joins the registry, and only
 * then opens its public port.
 */
export async function startEdge(deps: EdgeDeps): Promise<Edge> {
  const { config, registry, log } = deps
  const startedAt = Date.now()

  // 1. What a handshake checks, and the metrics.
  const jwks = config.jwt.jwksUrl ? new JwksCache({ url: config.jwt.jwksUrl, log }) : undefined
  await jwks?.start()
  const verifyToken =
    deps.verifyToken ??
    createTokenVerifier(
      { secret: config.jwt.secret, publicKey: config.jwt.publicKeyPem ? createPublicKey(config.jwt.publicKeyPem) : undefined, jwks },
      config.jwt,
    )
  const isOriginAllowed = createOriginCheck(config.allowedOrigins)
  const isInternalCaller = createBearerCheck([config.internalToken])
  const handshakes = config.maxHandshakesPerIpPerS > 0 ? new KeyedRateLimiter(config.maxHandshakesPerIpPerS) : undefined
  const metrics = createEdgeMetrics(deps.promRegistry)
  for (const result of ['recovered', 'not_recovered', 'started', 'failed'] as const) metrics.resumes.inc({ result }, 0) // served from the start
  for (const result of ['ok', 'invalid', 'other_user', 'revoked', 'unavailable'] as const) metrics.tokenRefreshes.inc({ result }, 0)
  const framesSent = { push: metrics.framesSent.labels('push'), welcome: metrics.framesSent.labels('welcome'), pong: metrics.framesSent.labels('pong') }

  // 2. The internal port: routers reach this edge at its URL, which the lease announces.
  const internal = App()
  const internalSocket = await listen(internal, config.internalHost, config.internalPort)
  const internalPort = us_socket_local_port(internalSocket)
  const url = config.advertiseUrl ?? `http://127.0.0.1:${internalPort}`

  // 3. The registry side: the lease and the connections' entries, and the rooms' edge index.
  const registration = new Registration({
    registry,
    node: { nodeId: config.nodeId, url, startedAt },
    leaseTtlMs: config.leaseTtlMs,
    log,
    metrics,
    maxConnectionsPerUser: config.maxConnectionsPerUser,
    onRenewFailed: deps.onRegistryStalled,
  })
  const rooms =
    deps.rooms &&
    new LocalRooms<Socket>({
      store: deps.rooms,
      incId: () => registration.lease?.incId,
      onFailure: (err) => {
        metrics.registryErrors.inc()
        log.warn({ err }, 'room index call failed; will resync')
        registration.requestResync()
      },
    })

  // 4. The client sockets' lifecycle; the uWS handlers below only hand events to it.
  const connections = new Connections<Socket>({
    nodeId: config.nodeId,
    connIds: new ConnIds(),
    registration,
    startedAt,
    maxBackpressureBytes: config.maxBackpressureBytes,
    maxFramesPerS: config.maxFramesPerS,
    maxFrameBytes: config.maxFrameBytes,
    metrics: {
      pushesWritten: {
        inc: (n) => {
          metrics.framesOut.inc(n)
          framesSent.push.inc(n)
        },
      },
      backpressureCloses: metrics.backpressureCloses,
      welcomes: framesSent.welcome,
      pongs: framesSent.pong,
      framesReceived: metrics.framesReceived,
      closes: metrics.closes,
    },
    receipts: {
      acks: { ok: metrics.acks.labels('ok'), unknown: metrics.acks.labels('unknown') },
      settled: { acked: metrics.receipts.labels('acked'), unacked: metrics.receipts.labels('unacked') },
    },
    inbox: deps.inbox,
    resumes: metrics.resumes,
    onResumeError: (err) => log.warn({ err }, 'inbox read failed; the client is welcomed without a replay'),
    rooms,
    tokens: {
      verify: verifyToken,
      clockToleranceS: config.jwt.clockToleranceS,
      cutoffOf: (userId) => registry.revokedBefore(userId),
      refreshes: metrics.tokenRefreshes,
      expired: metrics.tokenExpiries,
      onCutoffError: (err) => log.warn({ err }, 'refresh refused: the revocation cannot be read'),
    },
  })
  metrics.observe({ connections: () => connections.sockets.size, rooms: () => rooms?.size ?? 0, receiptsWaiting: () => connections.receipts.size })
  /** After an outage (a resync, a lost router link): resuming clients are told their inbox heads, in the background. */
  const announceInboxes = () => void connections.announceInboxes().catch((err: unknown) => log.warn({ err }, 'announcing inbox heads failed'))

  // 5. The routers' calls: one link per router, and the one HTTP route edges call on each other.
  const calls = createInternalCalls({
    sockets: connections.sockets,
    receipts: connections.receipts,
    deliveryCalls: metrics.deliveries,
    routedUnwritten: { notHere: metrics.routedUnwritten.labels('not_here'), closed: metrics.routedUnwritten.labels('closed') },
    rooms,
    roomCalls: metrics.roomPushes,
    isOpen: (ws) => connections.isOpen(ws),
    revokeUser: (userId, reason) => connections.revokeUser(userId, reason),
    log,
  })
  const links = createRouterLinks({
    isInternalCaller,
    calls,
    log,
    onLinkLost: announceInboxes,
  })
  /**
   * An internal call over HTTP (evictions: edges hold no link to each other): token check, body
   * read, then the same `calls` the router link uses. Request ids (REQUEST_IDS), if any, go
   * into the call's log line and into the warning of a refused one.
   */
  function internalCall(res: HttpResponse, req: HttpRequest, op: LinkOp): void {
    const requestIds = req.getHeader(REQUEST_IDS).slice(0, 4096) // uWS: headers are readable only now
    if (!isInternalCaller(req.getHeader('authorization'))) {
      res.onAborted(() => undefined)
      log.warn({ route: op, requestIds }, 'internal call refused: bad token')
      return sendError(res, 401, 'unauthorized', 'internal token required')
    }
    readBody(res, MAX_INTERNAL_BODY_BYTES).then(
      async (body) => {
        if (body === undefined) return
        let isAborted = false
        res.onAborted(() => (isAborted = true))
        // Only rows with `http` are served here, and none of them is unanswered: `{}` is never sent.
        const answer = await calls(op, body.toString('utf8'), requestIds, 'http')
        if (!isAborted) sendJson(res, answer?.status ?? 200, answer?.body ?? '{}')
      },
      () => sendError(res, 413, 'payload_too_large', 'internal request too large'),
    )
  }

  internal
    .get('/healthz', (res) => sendJson(res, 200, { status: 'ok' }))
    .get('/readyz', (res) => {
      const draining = connections.isDraining
      const ready = !draining && registration.isHealthy
      sendJson(res, ready ? 200 : 503, { ready, draining, registry: registration.isHealthy ? 'ok' : 'unavailable' })
    })
    .get('/metrics', (res) => {
      res.onAborted(() => undefined) // answered asynchronously; nothing to clean up if the scraper leaves
      void deps.promRegistry.metrics().then((text) => sendJson(res, 200, text, deps.promRegistry.contentType))
    })
    .ws(LINK_PATH, links.behavior)
  for (const op of LINK_OPS) {
    const path = linkOps[op].http // only an eviction's disconnect, which edges call on each other
    if (path) internal.post(path, (res, req) => internalCall(res, req, op))
  }
  internal.any('/*', (res) => sendError(res, 404, 'not_found', 'no such route'))

  // 6. Join the registry: from here on, what the sockets hold is kept registered.
  await registration.start({
    liveConnections: () => connections.liveConnections(),
    status: () => ({ connections: connections.sockets.size, draining: connections.isDraining }),
    onEvicted: createEvictor({
      registry,
      internalToken: config.internalToken,
      log,
      policy: config.sessionPolicy,
      closeLocal: (connId, reason) => connections.closeById(connId, reason),
    }),
    afterResync: () => {
      announceInboxes()
      return rooms?.rewrite() ?? Promise.resolve()
    },
  })

  // 7. The public port.

  const app = App()
    .ws<Conn>(WS_PATH, {
      // uWS drops a frame over maxPayloadLength without a close frame (1006). Frames between
      // the configured limit and this ceiling get a proper 1009 below; beyond it, a cut-off.
      maxPayloadLength: Math.max(64 << 10, 4 * config.maxFrameBytes),
      idleTimeout: config.idleTimeoutS,
      sendPingsAutomatically: true,
      // uWS drops frames past its own bound, and then the close frame too (the client would
      // see 1006). Our bound is enforced by UserSockets; uWS's sits above it with room for one
      // more frame and the 4008 close frame.
      maxBackpressure: config.maxBackpressureBytes + MAX_INTERNAL_BODY_BYTES,
      closeOnBackpressureLimit: false,
      upgrade: (res, req, context) => {
        const origin = req.getHeader('origin')
        const offered = tokenFromProtocols(req.getHeader('sec-websocket-protocol'))
        const token = new URLSearchParams(req.getQuery() ?? '').get('token') ?? offered.token
        const key = req.getHeader('sec-websocket-key')
        const extensions = req.getHeader('sec-websocket-extensions')
        const refuse = (status: number, code: 'unauthorized' | 'forbidden' | 'not_ready' | 'rate_limited', result: string, message: string) => {
          metrics.handshakes.inc({ result })
          sendError(res, status, code, message)
        }
        if (connections.isDraining) return refuse(503, 'not_ready', 'draining', 'edge is draining; connect to another edge')
        if (handshakes && !handshakes.take(Buffer.from(res.getRemoteAddressAsText()).toString())) {
          return refuse(429, 'rate_limited', 'rate_limited', 'too many connection attempts from this address; retry with backoff')
        }
        if (!isOriginAllowed(origin)) return refuse(403, 'forbidden', 'forbidden', 'origin not allowed')
        if (!token) return refuse(401, 'unauthorized', 'unauthorized', 'token required')
        let verified: VerifiedToken
        try {
          verified = verifyToken(token)
        } catch (err) {
          // Never log the token or the reason in detail: a token is a credential.
          return refuse(401, 'unauthorized', 'unauthorized', (err instanceof TokenError && err.publicMessage) || 'invalid or expired token')
        }
        metrics.handshakes.inc({ result: 'ok' })
        // Upgraded synchronously, inside the handler: see createHs256Verifier.
        res.upgrade(connections.accept(verified.userId, offered.resume, rooms ? verified.rooms : [], verified), key, offered.selected, extensions, context)
      },
      open: (ws) => connections.opened(ws),
      message: (ws, message, isBinary) => connections.received(ws, message, isBinary),
      close: (ws, code) => connections.closed(ws, code),
    })
    .any('/*', (res) => sendError(res, 404, 'not_found', 'websocket endpoint is /v1/ws'))
  const publicSocket = await listen(app, config.host, config.port)
  const port = us_socket_local_port(publicSocket)
  log.info({ port, internalPort, nodeId: config.nodeId, url }, 'edge listening')

  async function drain(drainMs = config.drainMs): Promise<void> {
    if (!connections.beginDrain()) return
    us_listen_socket_close(publicSocket)
    log.info({ connections: connections.sockets.size, drainMs }, 'draining')
    await registration.renewNow().catch(() => undefined) // announce draining; failures are already logged
    await connections.closeAll(drainMs)
    await registration.stop().catch((err: unknown) => log.warn({ err }, 'leaving the registry failed; entries lapse with the lease'))
    // Routers could still call until the registry said this edge was gone: links close last.
    links.closeAll()
    us_listen_socket_close(internalSocket)
    jwks?.stop()
    log.info('drained')
  }

  return { nodeId: config.nodeId, port, internalPort, drain }
}

function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => (socket ? resolve(socket) : reject(new Error(`cannot listen on ${host}:${port}`))))
  })
}

import { randomBytes } from 'node:crypto'
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
import {
  CloseCode,
  createBearerCheck,
  DisconnectResult,
  InternalDisconnect,
  PONG_FRAME,
  REQUEST_IDS,
  decodeDeliveries,
  decodeDelivery,
  internalRoutes,
  parseClientFrame,
  welcomeFrame,
  type BroadcastResult,
  type DeliveriesResult,
  type Delivery,
  type DeliveryResult,
} from '@switchboard/protocol'
import type { ConnectionInfo, Registry } from '@switchboard/registry'
import { createPublicKey } from 'node:crypto'
import { createOriginCheck, tokenFromProtocols } from './auth.js'
import { JwksCache, createTokenVerifier, type TokenVerifier } from './tokens.js'
import type { EdgeConfig } from './config.js'
import { ConnectionTable } from './connections.js'
import { readBody, sendError, sendJson } from './http.js'
import { createEdgeMetrics } from './metrics.js'
import { createEvictor } from './evictions.js'
import { KeyedRateLimiter } from './rate-limit.js'
import { Registration } from './registration.js'

export interface EdgeDeps {
  config: EdgeConfig
  registry: Registry
  log: Logger
  promRegistry: PromRegistry
  /** Defaults to the keys and rules of `config.jwt`. */
  verifyToken?: TokenVerifier
}

export interface Edge {
  readonly nodeId: string
  readonly port: number
  readonly internalPort: number
  /** Stops accepting, closes every socket with 1001 spread over `drainMs`, leaves the registry. */
  drain(drainMs?: number): Promise<void>
}

interface Conn {
  userId: string
  connId: string
  since: number
  /** Resolves once the registry write for this socket finished (or was handed to resync). */
  registered: Promise<void>
  /** Set by the close handler: the socket must not be touched afterwards. */
  isClosed: boolean
  /** Client frames in the current one-second window, and when it started (ms). */
  frames: number
  windowStartMs: number
}
type Socket = WebSocket<Conn>

/** Internal request bodies: a 10,000-recipient delivery with ids of 256 chars, with room to spare. */
const MAX_INTERNAL_BODY_BYTES = 16 << 20

export async function startEdge(deps: EdgeDeps): Promise<Edge> {
  const { config, registry, log } = deps
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
  const table = new ConnectionTable<Socket>()
  /** Every open socket, welcomed or not, for evictions by connId. */
  const byConnId = new Map<string, Socket>()
  const metrics = createEdgeMetrics(deps.promRegistry, () => table.size)
  const framesSent = { push: metrics.framesSent.labels('push'), welcome: metrics.framesSent.labels('welcome'), pong: metrics.framesSent.labels('pong') }
  const connIdPrefix = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`
  let connSeq = 0
  let draining = false

  const internal = App()
  const internalSocket = await listen(internal, config.internalHost, config.internalPort)
  const internalPort = us_socket_local_port(internalSocket)
  const url = config.advertiseUrl ?? `http://127.0.0.1:${internalPort}`

  const registration = new Registration({
    registry,
    node: { nodeId: config.nodeId, url, startedAt: Date.now() },
    leaseTtlMs: config.leaseTtlMs,
    log,
    metrics,
    // Every open socket, welcomed or not: one whose registration is in flight under a lease
    // just lost must be re-written too (Redis applies that earlier write first).
    liveConnections: () => [...byConnId.values()].map((ws) => connectionInfo(ws.getUserData())),
    status: () => ({ connections: table.size, draining }),
    maxConnectionsPerUser: config.maxConnectionsPerUser,
    onEvicted: createEvictor({
      registry,
      internalToken: config.internalToken,
      log,
      ...(config.sessionPolicy === 'single'
        ? { code: CloseCode.replaced, reason: 'replaced by a newer session' }
        : { code: CloseCode.tooManyConnections, reason: 'too many connections for this user' }),
      closeLocal: (connId, code, reason) => {
        const ws = byConnId.get(connId)
        ws?.end(code, reason)
        return ws !== undefined
      },
    }),
  })

  /**
   * Writes one serialized frame to each socket. A socket whose unsent backlog is past
   * `maxBackpressureBytes` is closed with 4008 instead; the frame that crosses the bound
   * is still queued, so a backlog never exceeds the bound plus one frame.
   */
  function write(sockets: readonly Socket[], frame: string): number {
    let written = 0
    for (const ws of sockets) {
      if (ws.getBufferedAmount() > config.maxBackpressureBytes) {
        metrics.backpressureCloses.inc()
        ws.end(CloseCode.tooSlow, 'too slow')
        continue
      }
      ws.cork(() => ws.send(frame, false))
      written++
    }
    metrics.framesOut.inc(written)
    framesSent.push.inc(written)
    return written
  }

  function deliver({ frame, to }: Delivery): DeliveryResult {
    const answer: DeliveryResult = { delivered: [], missing: [] }
    for (const userId of to) {
      const sockets = table.socketsOf(userId)
      if (sockets.length > 0 && write(sockets, frame) > 0) answer.delivered.push(userId)
      else answer.missing.push(userId)
    }
    return answer
  }

  internal
    .get('/healthz', (res) => sendJson(res, 200, { status: 'ok' }))
    .get('/readyz', (res) => {
      const ready = !draining && registration.isHealthy
      sendJson(res, ready ? 200 : 503, { ready, draining, registry: registration.isHealthy ? 'ok' : 'unavailable' })
    })
    .get('/metrics', (res) => {
      res.onAborted(() => undefined) // answered asynchronously; nothing to clean up if the scraper leaves
      void deps.promRegistry.metrics().then((text) => sendJson(res, 200, text, deps.promRegistry.contentType))
    })
    .post(internalRoutes.deliveries, (res, req) =>
      internalCall(res, req, 'deliveries', (body): DeliveriesResult | undefined => {
        const deliveries = decodeDeliveries(body)
        if (!deliveries) return undefined
        metrics.deliveries.inc()
        return { results: deliveries.map(deliver) }
      }),
    )
    .post(internalRoutes.deliver, (res, req) =>
      internalCall(res, req, 'deliver', (body) => {
        const delivery = decodeDelivery(body)
        if (!delivery) return undefined
        metrics.deliveries.inc()
        return deliver(delivery)
      }),
    )
    .post(internalRoutes.broadcast, (res, req) =>
      internalCall(res, req, 'broadcast', (frame): BroadcastResult => ({ connections: write(table.all(), frame) })),
    )
    .post(internalRoutes.disconnect, (res, req) =>
      internalCall(res, req, 'disconnect', (body) => {
        const r = InternalDisconnect.safeParse(safeJson(body))
        if (!r.success) return undefined
        const { userId, connIds, code = CloseCode.kicked, reason = 'disconnected' } = r.data
        const sockets = connIds
          ? connIds.flatMap((id) => byConnId.get(id) ?? []).filter((ws) => ws.getUserData().userId === userId)
          : table.socketsOf(userId)
        for (const ws of sockets) ws.end(code, reason)
        return DisconnectResult.parse({ closed: sockets.length })
      }),
    )
    .any('/*', (res) => sendError(res, 404, 'not_found', 'no such route'))

  /**
   * Token check, body read, then `handle`; `handle` returning undefined means a malformed body
   * (400). The routers' request ids (REQUEST_IDS) go into the debug line of every call and
   * into the warning of a refused one, so a push can be followed from router to edge.
   */
  function internalCall(res: HttpResponse, req: HttpRequest, route: string, handle: (body: string) => unknown): void {
    const requestIds = req.getHeader(REQUEST_IDS).slice(0, 4096) // uWS: headers are readable only now
    if (!isInternalCaller(req.getHeader('authorization'))) {
      res.onAborted(() => undefined)
      log.warn({ route, requestIds }, 'internal call refused: bad token')
      return sendError(res, 401, 'unauthorized', 'internal token required')
    }
    readBody(res, MAX_INTERNAL_BODY_BYTES).then(
      (body) => {
        if (body === undefined) return
        const answer = handle(body.toString('utf8'))
        if (answer === undefined) {
          log.warn({ route, requestIds }, 'malformed internal request')
          sendError(res, 400, 'invalid_request', 'malformed internal request')
        } else {
          if (log.isLevelEnabled('debug')) log.debug({ route, requestIds, answer: summary(answer) }, 'internal call')
          sendJson(res, 200, answer)
        }
      },
      () => sendError(res, 413, 'payload_too_large', 'internal request too large'),
    )
  }

  await registration.start()

  const app = App()
    .ws<Conn>('/v1/ws', {
      // uWS drops a frame over maxPayloadLength without a close frame (1006). Frames between
      // the configured limit and this ceiling get a proper 1009 below; beyond it, a cut-off.
      maxPayloadLength: Math.max(64 << 10, 4 * config.maxFrameBytes),
      idleTimeout: config.idleTimeoutS,
      sendPingsAutomatically: true,
      // uWS drops frames past its own bound, and then the close frame too (the client would
      // see 1006). Our bound is enforced in write(); uWS's sits above it with room for one
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
        if (draining) return refuse(503, 'not_ready', 'draining', 'edge is draining; connect to another edge')
        if (handshakes && !handshakes.take(Buffer.from(res.getRemoteAddressAsText()).toString())) {
          return refuse(429, 'rate_limited', 'rate_limited', 'too many connection attempts from this address; retry with backoff')
        }
        if (!isOriginAllowed(origin)) return refuse(403, 'forbidden', 'forbidden', 'origin not allowed')
        if (!token) return refuse(401, 'unauthorized', 'unauthorized', 'token required')
        let userId: string
        try {
          userId = verifyToken(token)
        } catch {
          // Never log the token or the reason in detail: a token is a credential.
          return refuse(401, 'unauthorized', 'unauthorized', 'invalid or expired token')
        }
        metrics.handshakes.inc({ result: 'ok' })
        const connId = `${connIdPrefix}.${(connSeq++).toString(36)}`
        const conn: Conn = { userId, connId, since: Date.now(), registered: Promise.resolve(), isClosed: false, frames: 0, windowStartMs: 0 }
        // Upgraded synchronously, inside the handler: see createHs256Verifier.
        res.upgrade(conn, key, offered.selected, extensions, context)
      },
      open: (ws) => {
        const conn = ws.getUserData()
        byConnId.set(conn.connId, ws)
        // Welcome means reachable: the socket joins the table, and gets its welcome, once its
        // entry is written (or queued for resync while Redis is down). A push that finds the
        // entry is handled in a later macrotask than this continuation, so it finds the socket.
        conn.registered = registration.register(connectionInfo(conn))
        void conn.registered.then(() => {
          if (conn.isClosed) return
          if (draining) return ws.end(CloseCode.draining, 'edge draining')
          table.add(conn.userId, ws)
          ws.cork(() => ws.send(welcomeFrame(conn.connId, config.nodeId), false))
          framesSent.welcome.inc()
        })
      },
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData()
        metrics.framesReceived.inc()
        const now = Date.now()
        if (now - conn.windowStartMs >= 1_000) {
          conn.windowStartMs = now
          conn.frames = 0
        }
        if (++conn.frames > config.maxFramesPerS) return ws.end(CloseCode.tooSlow, 'rate limited')
        if (message.byteLength > config.maxFrameBytes) return ws.end(CloseCode.messageTooBig, 'frame too big')
        const frame = isBinary ? undefined : parseClientFrame(Buffer.from(message).toString('utf8'))
        if (!frame) return ws.end(CloseCode.protocolViolation, 'invalid frame')
        // Chained on the registration, so a pong never overtakes the welcome.
        void conn.registered.then(() => {
          if (conn.isClosed) return
          ws.cork(() => ws.send(PONG_FRAME, false))
          framesSent.pong.inc()
        })
      },
      close: (ws, code) => {
        const conn = ws.getUserData()
        conn.isClosed = true
        byConnId.delete(conn.connId)
        table.remove(conn.userId, ws)
        metrics.closes.inc({ code: String(code) })
        void registration.unregister(conn.registered, conn.userId, conn.connId)
      },
    })
    .any('/*', (res) => sendError(res, 404, 'not_found', 'websocket endpoint is /v1/ws'))
  const publicSocket = await listen(app, config.host, config.port)
  const port = us_socket_local_port(publicSocket)
  log.info({ port, internalPort, nodeId: config.nodeId, url }, 'edge listening')

  async function drain(drainMs = config.drainMs): Promise<void> {
    if (draining) return
    draining = true
    us_listen_socket_close(publicSocket)
    log.info({ connections: table.size, drainMs }, 'draining')
    await registration.renewNow().catch(() => undefined) // announce draining; failures are already logged
    const sockets = table.all()
    await Promise.all(
      sockets.map(
        (ws) =>
          new Promise<void>((resolve) => {
            // Spread with jitter, so the clients don't all come back at the same moment.
            setTimeout(() => {
              if (!ws.getUserData().isClosed) ws.end(CloseCode.draining, 'edge draining')
              resolve()
            }, Math.random() * drainMs)
          }),
      ),
    )
    await registration.stop().catch((err: unknown) => log.warn({ err }, 'leaving the registry failed; entries lapse with the lease'))
    us_listen_socket_close(internalSocket)
    jwks?.stop()
    log.info('drained')
  }

  return { nodeId: config.nodeId, port, internalPort, drain }
}

function connectionInfo(conn: Conn): ConnectionInfo {
  return { userId: conn.userId, connId: conn.connId, since: conn.since }
}

function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => (socket ? resolve(socket) : reject(new Error(`cannot listen on ${host}:${port}`))))
  })
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined // the caller's schema rejects it
  }
}

/** What an internal call's debug line says about its answer: counts, never user ids. */
function summary(answer: unknown): unknown {
  if (typeof answer !== 'object' || answer === null) return answer
  if ('results' in answer) {
    const { results } = answer as DeliveriesResult
    return { pushes: results.length, delivered: results.reduce((n, r) => n + r.delivered.length, 0) }
  }
  if ('delivered' in answer) return { pushes: 1, delivered: (answer as DeliveryResult).delivered.length }
  return answer // broadcast { connections } or disconnect { closed }
}

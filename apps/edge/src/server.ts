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
import { CloseCode, LINK_PATH, PONG_FRAME, REQUEST_IDS, createBearerCheck, internalRoutes, parseClientFrame, welcomeFrame } from '@switchboard/protocol'
import type { ConnectionInfo, Registry } from '@switchboard/registry'
import { createPublicKey } from 'node:crypto'
import { createOriginCheck, tokenFromProtocols } from './auth.js'
import { JwksCache, createTokenVerifier, type TokenVerifier } from './tokens.js'
import type { EdgeConfig } from './config.js'
import { ConnIds } from './conn-ids.js'
import { UserSockets } from './delivery.js'
import { readBody, sendError, sendJson } from './http.js'
import { createEdgeMetrics } from './metrics.js'
import { createEvictor } from './evictions.js'
import { KeyedRateLimiter } from './rate-limit.js'
import { Registration } from './registration.js'
import { createInternalCalls, type InternalOp } from './internal-calls.js'
import { createRouterLinks } from './router-link.js'

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
  /** Stops accepting, closes every client socket with 1001 spread over `drainMs`, leaves the registry, then closes the router links. */
  drain(drainMs?: number): Promise<void>
}

/** Where a client socket is in its life: a small integer, not a promise per socket. */
const Registering = 0
const Open = 1
const Closed = 2
type ConnState = typeof Registering | typeof Open | typeof Closed

/** Per client socket, for its whole life: small integers next to the user id. */
interface Conn {
  readonly userId: string
  /** Its connId is `connIds.format(seq)`, built when needed. */
  readonly seq: number
  /** Connected at, in ms since the edge started (a small integer). */
  readonly sinceMs: number
  /** Registering until its registry entry is written and the welcome sent; Closed from the close handler on. */
  state: ConnState
  /** Client frames in the current one-second window, and when it started (ms since the edge started). */
  frames: number
  windowStartMs: number
}
type Socket = WebSocket<Conn>

/** Internal request bodies: a 10,000-recipient delivery with ids of 256 chars, with room to spare. */
const MAX_INTERNAL_BODY_BYTES = 16 << 20

export async function startEdge(deps: EdgeDeps): Promise<Edge> {
  const { config, registry, log } = deps
  const startedAt = Date.now()
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
  const connIds = new ConnIds()
  /** Every open client socket by seq, welcomed or not: evictions by connId and resyncs. */
  const bySeq = new Map<number, Socket>()
  const openSocket = (connId: string): Socket | undefined => {
    const seq = connIds.parse(connId)
    return seq === undefined ? undefined : bySeq.get(seq)
  }
  /** Pings answered before the welcome is out, by socket: a pong never overtakes the welcome. */
  const owedPongs = new Map<Conn, number>()
  // Read at scrape time only, once `index` exists.
  const metrics = createEdgeMetrics(deps.promRegistry, () => index.size)
  const framesSent = { push: metrics.framesSent.labels('push'), welcome: metrics.framesSent.labels('welcome'), pong: metrics.framesSent.labels('pong') }
  /** The welcomed client sockets by user, and the writes to them. */
  const index = new UserSockets<Socket>({
    maxBackpressureBytes: config.maxBackpressureBytes,
    metrics: {
      pushesWritten: {
        inc: (n) => {
          metrics.framesOut.inc(n)
          framesSent.push.inc(n)
        },
      },
      backpressureCloses: metrics.backpressureCloses,
    },
    findConn: openSocket,
    userOf: (ws) => ws.getUserData().userId,
  })
  const calls = createInternalCalls({ sockets: index, deliveryCalls: metrics.deliveries, log })
  const links = createRouterLinks({ isInternalCaller, calls, log })
  let draining = false

  const connectionInfo = (conn: Conn): ConnectionInfo => ({ userId: conn.userId, connId: connIds.format(conn.seq), since: startedAt + conn.sinceMs })

  const internal = App()
  const internalSocket = await listen(internal, config.internalHost, config.internalPort)
  const internalPort = us_socket_local_port(internalSocket)
  const url = config.advertiseUrl ?? `http://127.0.0.1:${internalPort}`

  const registration = new Registration({
    registry,
    node: { nodeId: config.nodeId, url, startedAt },
    leaseTtlMs: config.leaseTtlMs,
    log,
    metrics,
    // Every open socket, welcomed or not: one whose registration is in flight under a lease
    // just lost must be re-written too (Redis applies that earlier write first).
    liveConnections: () => Array.from(bySeq.values(), (ws) => connectionInfo(ws.getUserData())),
    status: () => ({ connections: index.size, draining }),
    maxConnectionsPerUser: config.maxConnectionsPerUser,
    onEvicted: createEvictor({
      registry,
      internalToken: config.internalToken,
      log,
      ...(config.sessionPolicy === 'single'
        ? { code: CloseCode.replaced, reason: 'replaced by a newer session' }
        : { code: CloseCode.tooManyConnections, reason: 'too many connections for this user' }),
      closeLocal: (connId, code, reason) => {
        const ws = openSocket(connId)
        ws?.end(code, reason)
        return ws !== undefined
      },
    }),
  })

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
    .ws(LINK_PATH, links.behavior)
    .post(internalRoutes.deliveries, (res, req) => internalCall(res, req, 'deliveries'))
    .post(internalRoutes.deliver, (res, req) => internalCall(res, req, 'deliver'))
    .post(internalRoutes.broadcast, (res, req) => internalCall(res, req, 'broadcast'))
    .post(internalRoutes.disconnect, (res, req) => internalCall(res, req, 'disconnect'))
    .any('/*', (res) => sendError(res, 404, 'not_found', 'no such route'))

  /**
   * An internal call over HTTP: token check, body read, then the same `calls` the router link
   * uses. The routers' request ids (REQUEST_IDS) go into the call's log line and into the
   * warning of a refused one, so a push can be followed from router to edge.
   */
  function internalCall(res: HttpResponse, req: HttpRequest, op: InternalOp): void {
    const requestIds = req.getHeader(REQUEST_IDS).slice(0, 4096) // uWS: headers are readable only now
    if (!isInternalCaller(req.getHeader('authorization'))) {
      res.onAborted(() => undefined)
      log.warn({ route: op, requestIds }, 'internal call refused: bad token')
      return sendError(res, 401, 'unauthorized', 'internal token required')
    }
    readBody(res, MAX_INTERNAL_BODY_BYTES).then(
      (body) => {
        if (body === undefined) return
        const answer = calls(op, body.toString('utf8'), requestIds, 'http')
        sendJson(res, answer.status, answer.body)
      },
      () => sendError(res, 413, 'payload_too_large', 'internal request too large'),
    )
  }

  /**
   * The socket's entry is written (or queued for resync while Redis is down): welcome means
   * reachable, so only now does it join the index and get its welcome. A push that finds the
   * entry is handled in a later macrotask than this continuation, so it finds the socket.
   */
  function registered(ws: Socket, conn: Conn): void {
    if (conn.state === Registering && draining) ws.end(CloseCode.draining, 'edge draining') // the close handler marks it Closed
    const pongs = owedPongs.get(conn) ?? 0
    if (pongs > 0) owedPongs.delete(conn)
    if (conn.state === Closed) {
      // Closed while registering: its removal runs only now, so it cannot overtake the write.
      void registration.unregister(conn.userId, connIds.format(conn.seq))
      return
    }
    conn.state = Open
    index.add(conn.userId, ws)
    ws.cork(() => {
      ws.send(welcomeFrame(connIds.format(conn.seq), config.nodeId), false)
      for (let i = 0; i < pongs; i++) ws.send(PONG_FRAME, false)
    })
    framesSent.welcome.inc()
    if (pongs > 0) framesSent.pong.inc(pongs)
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
        const conn: Conn = { userId, seq: connIds.nextSeq(), sinceMs: Date.now() - startedAt, state: Registering, frames: 0, windowStartMs: -1_000 }
        // Upgraded synchronously, inside the handler: see createHs256Verifier.
        res.upgrade(conn, key, offered.selected, extensions, context)
      },
      open: (ws) => {
        const conn = ws.getUserData()
        bySeq.set(conn.seq, ws)
        void registration.register(connectionInfo(conn)).then(() => registered(ws, conn))
      },
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData()
        metrics.framesReceived.inc()
        const now = Date.now() - startedAt
        if (now - conn.windowStartMs >= 1_000) {
          conn.windowStartMs = now
          conn.frames = 0
        }
        if (++conn.frames > config.maxFramesPerS) return ws.end(CloseCode.tooSlow, 'rate limited')
        if (message.byteLength > config.maxFrameBytes) return ws.end(CloseCode.messageTooBig, 'frame too big')
        const frame = isBinary ? undefined : parseClientFrame(Buffer.from(message).toString('utf8'))
        if (!frame) return ws.end(CloseCode.protocolViolation, 'invalid frame')
        if (conn.state === Registering) {
          owedPongs.set(conn, (owedPongs.get(conn) ?? 0) + 1) // sent right after the welcome
          return
        }
        ws.cork(() => ws.send(PONG_FRAME, false))
        framesSent.pong.inc()
      },
      close: (ws, code) => {
        const conn = ws.getUserData()
        const wasOpen = conn.state === Open
        conn.state = Closed
        bySeq.delete(conn.seq)
        metrics.closes.inc({ code: String(code) })
        if (!wasOpen) return // still registering: registered() removes its entry once written
        index.remove(conn.userId, ws)
        void registration.unregister(conn.userId, connIds.format(conn.seq))
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
    log.info({ connections: index.size, drainMs }, 'draining')
    await registration.renewNow().catch(() => undefined) // announce draining; failures are already logged
    await Promise.all(
      index.all().map(
        (ws) =>
          new Promise<void>((resolve) => {
            // Spread with jitter, so the clients don't all come back at the same moment.
            setTimeout(() => {
              if (ws.getUserData().state !== Closed) ws.end(CloseCode.draining, 'edge draining')
              resolve()
            }, Math.random() * drainMs)
          }),
      ),
    )
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

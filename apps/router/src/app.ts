import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { LogController, type FastifyInstance, type FastifyError, type FastifyReply } from 'fastify'
import type { Logger } from 'pino'
import type { Registry as PromRegistry } from 'prom-client'
import { SwitchboardError, createBearerCheck, errorBody, httpStatus } from '@switchboard/protocol'
import type { Registry } from '@switchboard/registry'
import type { RouterConfig } from './config.js'
import type { EdgeClient } from './edge-client.js'
import { createLimitChecks, type ApiLimits, type LimitChecks } from './limits.js'
import { createRouterMetrics, timedRegistry, type RouterMetrics, type TimedRegistry } from './metrics.js'
import { healthRoutes } from './routes/health.js'
import { nodeRoutes } from './routes/nodes.js'
import { presenceRoutes } from './routes/presence.js'
import { pushRoutes } from './routes/push.js'

export interface AppDeps {
  config: Pick<RouterConfig, 'apiKeys' | 'bodyLimitBytes'> & ApiLimits
  registry: Registry
  edges: EdgeClient
  log: Logger
  promRegistry: PromRegistry
}

/** What route modules get: the app's dependencies, its metrics, and registry reads that are timed. */
export interface RouteDeps extends Omit<AppDeps, 'registry'> {
  registry: TimedRegistry
  metrics: RouterMetrics
  limits: LimitChecks
}

/** How often the per-edge series of edges that left are dropped. */
const PRUNE_EVERY_MS = 60_000

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.config.bodyLimitBytes,
    // Ids come from clients' own ids; keep them out of the URL-length budget of path params.
    routerOptions: { maxParamLength: 1024 },
    // Requests the router cannot even route (bad percent-encoding, an over-long id) still
    // get the contract's error shape.
    frameworkErrors: (err, _req, reply) => {
      const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'userId: too long' : 'path: not a valid URL'
      void (reply as FastifyReply).code(400).send(errorBody('invalid_request', message))
    },
    // So do requests Node's HTTP parser refuses before fastify sees them.
    clientErrorHandler: answerClientError,
    http: { requireHostHeader: false },
    // A backend's own X-Request-Id is kept (logged here and on the edges, echoed back), so
    // one push can be followed through every log; anything else gets a fresh id.
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
  }) as unknown as FastifyInstance
  let inFlight = 0
  // Counted on Node's own request, so requests fastify never routes are counted too; 'close'
  // fires once per response, whether it finished or the client left.
  app.server.on('request', (_req, res: ServerResponse) => {
    inFlight++
    res.once('close', () => inFlight--)
  })
  app.server.on('connect', (_req, socket: Socket) => writeRaw(socket, 404, errorBody('not_found', 'CONNECT is not supported')))
  const metrics = createRouterMetrics(deps.promRegistry, () => inFlight)
  const routeDeps: RouteDeps = {
    ...deps,
    registry: timedRegistry(deps.registry, metrics.registrySeconds),
    metrics,
    limits: createLimitChecks(deps.config),
  }
  const pruner = setInterval(() => {
    deps.registry.liveNodes().then(
      (nodes) => metrics.forward.prune(new Set(nodes.map((n) => n.url))),
      () => undefined, // the registry is down: prune next time
    )
  }, PRUNE_EVERY_MS)
  pruner.unref()
  app.addHook('onClose', (_app, done) => {
    clearInterval(pruner)
    done()
  })

  // Every body is JSON, whatever Content-Type the backend sent (curl -d sends a form type).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'))

  // close() drops only the keep-alive connections idle at that moment: one whose request was
  // still in flight would stay open after its answer and hold shutdown up for the whole
  // keep-alive timeout (72 s). Answers sent while closing end their connection instead.
  let isClosing = false
  app.addHook('preClose', (done) => {
    isClosing = true
    done()
  })
  app.addHook('onSend', (req, reply, payload, done) => {
    void reply.header('x-request-id', req.id)
    if (isClosing) void reply.header('connection', 'close')
    done(null, payload)
  })

  // Deny by default, decided on the route fastify matched (it decodes percent-escapes and
  // absolute-form targets): only the probes are public, unknown paths need a key too.
  const isApiKey = createBearerCheck(deps.config.apiKeys)
  // A callback hook, not an async one: it runs on every request and needs no promise.
  app.addHook('onRequest', (req, _reply, done) => {
    if (PUBLIC_ROUTES.has(req.routeOptions.url ?? '') || isApiKey(req.headers.authorization ?? '')) done()
    else done(new SwitchboardError('unauthorized', 'a valid API key is required (Authorization: Bearer <key>)'))
  })

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody('not_found', `no route ${req.method} ${req.url.split('?')[0]}`))
  })

  app.setErrorHandler(async (err: FastifyError | SwitchboardError, req, reply) => {
    const mapped = mapError(err)
    if (mapped.code === 'registry_unavailable') routeDeps.metrics.registryErrors.inc()
    const status = httpStatus(mapped.code)
    if (status >= 500) req.log.error({ err, url: req.url }, 'request failed')
    if (mapped.code === 'payload_too_large') await drainRequest(req.raw)
    return reply.code(status).send(errorBody(mapped.code, mapped.message))
  })

  app.register(healthRoutes(routeDeps))
  app.register(pushRoutes(routeDeps))
  app.register(presenceRoutes(routeDeps))
  app.register(nodeRoutes(routeDeps))
  return app
}

const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics'])
/** Request ids kept from X-Request-Id: short, and safe in logs and in a comma-separated header. */
const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/

/** How much of an over-limit body is read and discarded before answering 413 (see drainRequest). */
const DRAIN_MAX_BYTES = 16 * 1024 * 1024
const DRAIN_MAX_MS = 5_000

/**
 * Reads the rest of a refused body before the 413 goes out. The answer closes the connection;
 * closing while the client is still sending makes the kernel answer its next bytes with a
 * reset, which can destroy the 413 unread. Past DRAIN_MAX_BYTES or DRAIN_MAX_MS the client
 * gets the reset: a body that big is not a mistake worth serving.
 */
function drainRequest(raw: IncomingMessage): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    let bytes = 0
    const done = () => {
      clearTimeout(timer)
      raw.off('data', onData).off('end', done).off('close', done).off('error', done)
      resolve()
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > DRAIN_MAX_BYTES) done()
    }
    const timer = setTimeout(done, DRAIN_MAX_MS)
    raw.on('data', onData).on('end', done).on('close', done).on('error', done)
    raw.resume()
  })
}

function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  if (err.code === 'HPE_HEADER_OVERFLOW') writeRaw(socket, 413, errorBody('payload_too_large', 'request head exceeds the size limit'))
  else writeRaw(socket, 400, errorBody('invalid_request', 'request: malformed HTTP'))
}

/** A whole JSON answer on a raw socket, then close: for requests that never became fastify requests. */
function writeRaw(socket: Socket, status: 400 | 404 | 413, body: unknown): void {
  const text = JSON.stringify(body)
  const reason = { 400: 'Bad Request', 404: 'Not Found', 413: 'Payload Too Large' }[status]
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`)
}

/** Stable codes for everything that can go wrong; 5xx get a generic message (the cause is logged). */
function mapError(err: FastifyError | SwitchboardError): SwitchboardError {
  if (err instanceof SwitchboardError) {
    if (httpStatus(err.code) >= 500) return new SwitchboardError(err.code, err.code === 'registry_unavailable' ? 'registry unavailable, retry later' : 'internal error')
    return err
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new SwitchboardError('payload_too_large', 'body exceeds the size limit')
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return new SwitchboardError('invalid_request', 'body: not valid JSON')
  if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new SwitchboardError('invalid_request', 'body: required')
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new SwitchboardError('invalid_request', 'body: send JSON (Content-Type: application/json)')
  // Any other client error fastify detects (malformed headers, bad encodings) is the caller's.
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return new SwitchboardError('invalid_request', `request: ${err.message}`)
  return new SwitchboardError('internal', 'internal error')
}

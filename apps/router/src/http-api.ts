import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Registry as PromRegistry } from 'prom-client'
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import { OPERATIONS, REQUEST_ID, SwitchboardError } from '@switchboard/protocol'
import { errorAnswer } from './answers.js'
import type { Api } from './api.js'
import { apiKeyScope, type Idempotent } from './idempotency.js'
import type { PullApi } from './presence/pull-api.js'
import type { RouterMetrics, TimedRegistry } from './metrics.js'
import { routeOf, type Route, type RouteName } from './http-routes.js'
import { httpCall, runOperation } from './operations.js'

export interface HttpApiDeps {
  api: Api
  /** The presence events stream and snapshot (HTTP only). */
  pull: PullApi
  /** Pushes and broadcasts sent with an Idempotency-Key run once. */
  idempotent: Idempotent
  /** For /readyz. */
  registry: TimedRegistry
  isApiKey: (authorization: string) => boolean
  bodyLimitBytes: number
  log: Logger
  metrics: RouterMetrics
  promRegistry: PromRegistry
  /** Read at every answer: while closing, answers end their connection. */
  isClosing: () => boolean
  /** Counts requests received and not yet answered (router_requests_in_flight). */
  inFlight: { n: number }
}

const PUBLIC: ReadonlySet<RouteName> = new Set(['healthz', 'readyz', 'metrics'])

/** How much of an over-limit body is read and discarded before answering 413 (see `Exchange`). */
const DRAIN_MAX_BYTES = 16 << 20
const DRAIN_MAX_MS = 5_000

const STATUS_LINE: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  409: '409 Conflict',
  410: '410 Gone',
  413: '413 Payload Too Large',
  422: '422 Unprocessable Content',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
}

/**
 * The HTTP API on uWebSockets.js: every request, whatever its path or method, lands in one
 * handler that routes it itself. So absolute paths, percent-escapes and unknown paths are
 * decided in one place (deny by default: only the probes answer without a key), and every
 * answer a request gets is the contract's JSON with its X-Request-Id.
 *
 * A request's whole body is read before it is answered, even one that will be refused
 * (bounded by DRAIN_MAX_BYTES and DRAIN_MAX_MS): answering and closing while the client is
 * still sending makes the kernel reset the connection under its writes, destroying the
 * answer unread.
 *
 * Requests that are not HTTP/1.1 uWS can parse (broken framing, control bytes in the head,
 * absolute-form targets, HTTP/1.0, a head over 4 KiB) never reach this handler: uWS refuses
 * them with a plain 400/431/505 and closes the connection (README, "HTTP API").
 */
export function serveHttpApi(app: TemplatedApp, deps: HttpApiDeps): void {
  const { log, metrics } = deps

  /** What a request brings besides its route and body. */
  interface Context {
    ex: Exchange
    query: string
    authorization: string
    idempotencyKey: string | undefined
  }

  async function answer(route: Route, body: Buffer | undefined, c: Context): Promise<unknown> {
    switch (route.name) {
      case 'presence.events':
        return deps.pull.events(new URLSearchParams(c.query))
      case 'presence.snapshot':
        return deps.pull.snapshot(new URLSearchParams(c.query))
      case 'healthz':
        return { status: 'ok' }
      case 'readyz':
      case 'metrics':
        throw new Error(`unrouted ${route.name}`) // answered before
      default: {
        const op = route.name
        // Only an idempotent op hashes the API key for its Idempotency-Key: the fast path has none.
        const idempotency = c.idempotencyKey !== undefined && OPERATIONS[op].isIdempotent ? { scope: apiKeyScope(c.authorization), key: c.idempotencyKey } : undefined
        const { value, replayed } = await runOperation(deps, op, httpCall(op, route.params, body, c.query), c.ex.requestId, idempotency)
        if (replayed) c.ex.replayed = true
        return value
      }
    }
  }

  function dispatch(ex: Exchange, route: Route | SwitchboardError | undefined, authorization: string, contentType: string | undefined, c: Context, body: Buffer | undefined, isTooLarge: boolean): void {
    if (route instanceof SwitchboardError) return ex.error(route)
    if (!(route && PUBLIC.has(route.name)) && !deps.isApiKey(authorization)) {
      return ex.error(new SwitchboardError('unauthorized', 'a valid API key is required (Authorization: Bearer <key>)'))
    }
    if (!route) return ex.error(new SwitchboardError('not_found', `no route ${ex.method} ${ex.path}`))
    if (isTooLarge) return ex.error(new SwitchboardError('payload_too_large', 'body exceeds the size limit'))
    if (ex.method === 'POST' && contentType !== undefined && !MEDIA_TYPE.test(contentType)) {
      return ex.error(new SwitchboardError('invalid_request', 'body: send JSON (Content-Type: application/json)'))
    }
    if (route.name === 'readyz') {
      deps.registry.liveNodes().then(
        () => ex.send(200, JSON.stringify({ ready: true, registry: 'ok' })),
        (err: unknown) => {
          log.warn({ err }, 'not ready: registry unavailable')
          ex.send(503, JSON.stringify({ ready: false, registry: 'unavailable' }))
        },
      )
      return
    }
    if (route.name === 'metrics') {
      deps.promRegistry.metrics().then(
        (text) => ex.send(200, text, deps.promRegistry.contentType),
        (err: unknown) => ex.error(err),
      )
      return
    }
    answer(route, body, c).then(
      (value) => ex.send(200, JSON.stringify(value)),
      (err: unknown) => ex.error(err),
    )
  }

  app.any('/*', (res, req) => {
    deps.inFlight.n++
    const method = req.getCaseSensitiveMethod()
    const path = req.getUrl()
    const given = req.getHeader('x-request-id')
    const requestId = given.length > 0 && REQUEST_ID.test(given) ? given : randomUUID()
    const authorization = req.getHeader('authorization')
    const contentType = contentTypeOf(req)
    const query = req.getQuery() ?? ''
    const idempotencyKey = req.getHeader('idempotency-key') || undefined
    const route = routeOf(method, path)
    const wantsBody = route !== undefined && !(route instanceof SwitchboardError) && method === 'POST'
    const ex = new Exchange(res, method, path, requestId)
    ex.read(req, wantsBody ? deps.bodyLimitBytes : 0, (body, isTooLarge) => dispatch(ex, route, authorization, contentType, { ex, query, authorization, idempotencyKey }, body, isTooLarge))
  })

  /** One request and its answer: the body read, the one answer sent (never after an abort). */
  class Exchange {
    #isDone = false
    /** The answer is an earlier request's, replayed for its Idempotency-Key. */
    replayed = false
    constructor(
      readonly res: HttpResponse,
      readonly method: string,
      readonly path: string,
      readonly requestId: string,
    ) {
      res.onAborted(() => this.#finish())
    }

    /**
     * Reads the body, keeping up to `limitBytes` (0: reads and drops it), then calls `done`
     * once. Past the limit it goes on reading and dropping up to DRAIN_MAX_BYTES, then answers
     * `isTooLarge`; past that too, or after DRAIN_MAX_MS, the connection is cut.
     */
    read(req: HttpRequest, limitBytes: number, done: (body: Buffer | undefined, isTooLarge: boolean) => void): void {
      const declared = Number(req.getHeader('content-length') || 0)
      let isTooLarge = limitBytes > 0 && declared > limitBytes
      let size = 0
      let chunks: Buffer[] = []
      let timer: NodeJS.Timeout | undefined
      this.res.onData((chunk, isLast) => {
        if (this.#isDone) return
        size += chunk.byteLength
        if (limitBytes > 0 && !isTooLarge) {
          if (size > limitBytes) {
            isTooLarge = true
            chunks = []
          } else if (chunk.byteLength > 0) {
            chunks.push(Buffer.from(chunk.slice(0))) // uWS reuses the chunk's memory after this call
          }
        }
        if (size > DRAIN_MAX_BYTES) return this.#cut(timer)
        if (!isLast) {
          // Only a body being dropped is on a clock; a wanted one may take its time (uWS's idle timeout bounds a stalled client).
          if (isTooLarge || limitBytes === 0) timer ??= setTimeout(() => this.#cut(timer), DRAIN_MAX_MS)
          return
        }
        clearTimeout(timer)
        done(isTooLarge || chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), isTooLarge)
      })
    }

    send(status: number, body: string, contentType = 'application/json'): void {
      if (this.#isDone) return
      this.#finish()
      const close = deps.isClosing()
      this.res.cork(() => {
        this.res.writeStatus(STATUS_LINE[status] ?? String(status)).writeHeader('content-type', contentType).writeHeader('x-request-id', this.requestId)
        if (this.replayed) this.res.writeHeader('idempotent-replayed', 'true')
        if (this.method === 'HEAD') this.res.endWithoutBody(Buffer.byteLength(body), close)
        else this.res.end(body, close)
      })
    }

    error(err: unknown): void {
      const { status, body } = errorAnswer(err, { log: deps.log, metrics: deps.metrics, requestId: this.requestId, what: this.path })
      this.send(status, JSON.stringify(body))
    }

    #finish(): void {
      if (this.#isDone) return
      this.#isDone = true
      deps.inFlight.n--
    }

    #cut(timer: NodeJS.Timeout | undefined): void {
      clearTimeout(timer)
      if (this.#isDone) return
      this.#finish()
      this.res.close()
    }
  }
}

/** A syntactically valid media type (RFC 9110): the body is read as JSON whatever it names. */
const MEDIA_TYPE = /^[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+(\s*;\s*[\w!#$%&'*+.^`|~-]+=([\w!#$%&'*+.^`|~-]+|"[^"\\]*"))*\s*$/

/** The Content-Type header, or undefined when there is none (uWS answers '' for absent and empty alike). */
function contentTypeOf(req: HttpRequest): string | undefined {
  const value = req.getHeader('content-type')
  if (value !== '') return value
  let isPresent = false
  req.forEach((name) => {
    if (name === 'content-type') isPresent = true
  })
  return isPresent ? '' : undefined
}

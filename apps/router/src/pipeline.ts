import type { Logger } from 'pino'
import type { TemplatedApp, WebSocket } from 'uWebSockets.js'
import {
  OPERATIONS,
  OPERATION_NAMES,
  PIPELINE_PATH,
  PIPELINE_PROTOCOL,
  CloseReasons,
  PipelineClose,
  REQUEST_ID,
  SwitchboardError,
  errorBody,
  type PipelineOp,
} from '@switchboard/protocol'
import { errorAnswer } from './answers.js'
import type { Api } from './api.js'
import { apiKeyScope, type Idempotent } from './idempotency.js'
import { parseJsonBody, refusePrototypeKeys } from './json-body.js'
import type { RouterMetrics } from './metrics.js'
import { pipelineCall, runOperation } from './operations.js'

export interface PipelineDeps {
  api: Api
  idempotent: Idempotent
  isApiKey: (authorization: string) => boolean
  log: Logger
  metrics: RouterMetrics
  bodyLimitBytes: number
  /** Requests one connection may have unanswered; more are answered 429 at once. */
  maxInFlight: number
  /** Unsent answer bytes one connection may queue; past it the connection closes with 4008. */
  maxBackpressureBytes: number
  isClosing: () => boolean
  /** The app's count of requests received and not yet answered, both ingresses. */
  inFlight: { n: number }
}

/** One backend connection. */
interface Backend {
  /** Its API key's scope for idempotency keys. */
  scope: string
  inFlight: number
  isClosed: boolean
  /** Answers finished this turn, written together (one syscall) once the turn's I/O is done. */
  out: string[]
}
type Socket = WebSocket<Backend>

/** Room for the envelope (`{"id":…,"op":…,"body":…}`) around a body of the HTTP limit. */
const ENVELOPE_BYTES = 1024

export interface Pipeline {
  /** Closes every connection with 1001 (answers already sent stay sent). */
  closeAll(): void
}

/**
 * The pipelined ingress (protocol: @switchboard/protocol pipeline.ts): a backend keeps one
 * websocket and sends requests without waiting; each is answered once, by id, with the HTTP
 * API's status and body, through the same handlers (operations.ts). Answers finished in one
 * event-loop turn go out corked together.
 *
 * Slow-consumer rule, in one place (`flush`): a backend whose unsent answers pass
 * `maxBackpressureBytes` is closed with 4008. Its in-flight bound answers 429 at once rather
 * than queueing without limit.
 */
export function servePipeline(app: TemplatedApp, deps: PipelineDeps): Pipeline {
  const { log } = deps
  const sockets = new Set<Socket>()

  function handle(ws: Socket, backend: Backend, text: string): void {
    let id: string | null = null
    let op: PipelineOp
    let body: unknown
    let idempotencyKey: string | undefined
    try {
      const request = parseJsonBody(text, false)
      if (typeof request !== 'object' || request === null || Array.isArray(request)) throw new SwitchboardError('invalid_request', 'request: must be a JSON object {"id","op","body"}')
      const r = request as Record<string, unknown>
      if (typeof r.id !== 'string' || !REQUEST_ID.test(r.id)) throw new SwitchboardError('invalid_request', 'id: required, 1 to 128 of A-Za-z0-9_.:@/+=-')
      id = r.id
      if (typeof r.op !== 'string' || !Object.hasOwn(OPERATIONS, r.op)) throw new SwitchboardError('not_found', `op: no operation ${JSON.stringify(r.op)}; one of ${OPERATION_NAMES.join(', ')}`)
      op = r.op as PipelineOp
      body = r.body
      if (r.idempotencyKey !== undefined && typeof r.idempotencyKey !== 'string') throw new SwitchboardError('invalid_request', 'idempotencyKey: a string')
      idempotencyKey = r.idempotencyKey
      refusePrototypeKeys(text, body)
    } catch (err) {
      return reply(ws, backend, id, err)
    }
    if (backend.inFlight >= deps.maxInFlight) {
      deps.metrics.pipelineRefusals.inc({ reason: 'in_flight' })
      return reply(ws, backend, id, new SwitchboardError('rate_limited', `too many requests in flight on this connection (at most ${deps.maxInFlight}); wait for answers`))
    }
    backend.inFlight++
    deps.inFlight.n++
    const requestId = id
    runOperation(deps, op, pipelineCall(op, body), id, idempotencyKey === undefined ? undefined : { scope: backend.scope, key: idempotencyKey }).then(
      ({ value, replayed }) => answered(ws, backend, requestId, 200, value, replayed),
      (err: unknown) => answered(ws, backend, requestId, undefined, err, false),
    )
  }

  function answered(ws: Socket, backend: Backend, id: string, status: number | undefined, value: unknown, replayed: boolean): void {
    backend.inFlight--
    deps.inFlight.n--
    if (status === 200) queue(ws, backend, answerText(id, 200, JSON.stringify(value), replayed))
    else reply(ws, backend, id, value)
  }

  function reply(ws: Socket, backend: Backend, id: string | null, err: unknown): void {
    const { status, body } = errorAnswer(err, { log, metrics: deps.metrics, requestId: id, what: PIPELINE_PATH })
    queue(ws, backend, answerText(id, status, JSON.stringify(body)))
  }

  function queue(ws: Socket, backend: Backend, text: string): void {
    if (backend.isClosed) return
    if (backend.out.push(text) === 1) setImmediate(() => flush(ws, backend))
  }

  function flush(ws: Socket, backend: Backend): void {
    const out = backend.out
    backend.out = []
    if (backend.isClosed) return
    ws.cork(() => {
      for (const text of out) ws.send(text, false)
    })
    if (ws.getBufferedAmount() > deps.maxBackpressureBytes) {
      deps.metrics.pipelineRefusals.inc({ reason: 'too_slow' })
      log.warn({ buffered: ws.getBufferedAmount() }, 'pipelined backend too slow to read its answers: closing it')
      ws.end(PipelineClose.tooSlow, CloseReasons.too_slow.text)
    }
  }

  app.ws<Backend>(PIPELINE_PATH, {
    maxPayloadLength: deps.bodyLimitBytes + ENVELOPE_BYTES,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    // The 4008 rule is ours (flush); uWS's own bound sits above it so nothing is dropped silently.
    maxBackpressure: deps.maxBackpressureBytes * 2 + (deps.bodyLimitBytes << 1),
    closeOnBackpressureLimit: false,
    upgrade: (res, req, context) => {
      const protocols = req.getHeader('sec-websocket-protocol')
      const offered = protocols.split(',').map((p) => p.trim())
      const bearer = offered.find((p) => p.startsWith('bearer.'))
      const authorization = req.getHeader('authorization') || (bearer ? `Bearer ${bearer.slice('bearer.'.length)}` : '')
      const refuse = (status: string, code: 'unauthorized' | 'not_ready', message: string): void => {
        res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(errorBody(code, message)), true))
      }
      if (!deps.isApiKey(authorization)) return refuse('401 Unauthorized', 'unauthorized', 'a valid API key is required (Authorization: Bearer <key>)')
      if (deps.isClosing()) return refuse('503 Service Unavailable', 'not_ready', 'router shutting down; connect to another router')
      const selected = offered.includes(PIPELINE_PROTOCOL) ? PIPELINE_PROTOCOL : ''
      res.upgrade<Backend>({ scope: apiKeyScope(authorization), inFlight: 0, isClosed: false, out: [] }, req.getHeader('sec-websocket-key'), selected, req.getHeader('sec-websocket-extensions'), context)
    },
    open: (ws) => {
      sockets.add(ws)
      deps.metrics.pipelineConnections.set(sockets.size)
    },
    message: (ws, message) => handle(ws, ws.getUserData(), Buffer.from(message).toString('utf8')),
    close: (ws) => {
      const backend = ws.getUserData()
      backend.isClosed = true
      sockets.delete(ws)
      deps.metrics.pipelineConnections.set(sockets.size)
    },
  })

  return {
    closeAll() {
      for (const ws of [...sockets]) ws.end(1001, 'router shutting down')
    },
  }
}

function answerText(id: string | null, status: number, body: string, replayed = false): string {
  return `{"id":${id === null ? 'null' : JSON.stringify(id)},"status":${status},"body":${body}${replayed ? ',"replayed":true' : ''}}`
}

// A fake router for the backend client's unit tests: the pipelined ingress (ws) and the HTTP
// API on one port, as the real router has them, with scripted answers and counters.
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { OPERATIONS, SwitchboardError, type PipelineOp } from '@switchboard/protocol'
import { routeOf } from '../../apps/router/src/http-routes.js'

export interface FakeAnswer {
  status: number
  body: unknown
}

export interface FakeRequest {
  id: string
  op: PipelineOp
  body: unknown
  via: 'pipeline' | 'http'
  /** The pipeline frame's idempotencyKey, or the Idempotency-Key header. */
  idempotencyKey?: string
}

export interface FakeRouterOptions {
  apiKey?: string
  /** Refuse every pipeline upgrade with this status (404: a router without the pipeline). */
  refuseUpgrade?: number
  /** Like ROUTER_PIPELINE_MAX_IN_FLIGHT: more unanswered requests on one socket are answered 429 at once. */
  maxInFlight?: number
  /** Answers a request; a promise that never settles leaves it unanswered. Default: `defaultAnswer`. */
  answer?: (req: FakeRequest) => FakeAnswer | Promise<FakeAnswer>
}

export interface FakeRouter {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  readonly apiKey: string
  /** Every request, in arrival order, pipeline and HTTP. */
  readonly requests: FakeRequest[]
  /** Every HTTP request's headers, in arrival order. */
  readonly httpHeaders: IncomingMessage['headers'][]
  /** Upgrade attempts at /v1/pipeline, refused or not. */
  readonly upgrades: { count: number }
  /** The most pipeline requests unanswered at once, over all sockets. */
  readonly maxConcurrent: { value: number }
  /** 429 answers given for the in-flight bound. */
  readonly refused: { count: number }
  readonly sockets: Set<WebSocket>
  /** Resolves once `count` requests have arrived in total. */
  received(count: number): Promise<void>
  /** Resolves at the next pipeline connection. */
  nextConnection(): Promise<WebSocket>
  setAnswer(answer: FakeRouterOptions['answer']): void
  close(): Promise<void>
}

export function defaultAnswer(req: FakeRequest): FakeAnswer {
  const body = req.body as Record<string, unknown> | undefined
  switch (req.op) {
    case 'push':
      return { status: 200, body: { id: body?.id ?? `m-${req.id}`, delivered: body?.to ?? [], offline: [], failed: [] } }
    case 'broadcast':
      return { status: 200, body: { id: body?.id ?? `m-${req.id}`, nodes: 1, connections: 2 } }
    case 'presence':
      return { status: 200, body: { userId: body?.userId, online: false, connections: [] } }
    case 'presence.query':
      return { status: 200, body: { online: [], offline: body?.userIds ?? [] } }
    case 'disconnect':
      return { status: 200, body: { closed: 1 } }
    case 'user.revoke':
      return { status: 200, body: { userId: body?.userId, revokedBefore: 1, closed: 1 } }
    case 'nodes':
      return { status: 200, body: { nodes: [] } }
    case 'room.add':
      return { status: 200, body: { room: body?.room, added: body?.userIds ?? [], refused: [], members: (body?.userIds as unknown[] | undefined)?.length ?? 0 } }
    case 'room.remove':
      return { status: 200, body: { room: body?.room, removed: body?.userIds ?? [], members: 0 } }
    case 'room.members':
      return { status: 200, body: { room: body?.room, userIds: [] } }
    case 'room.info':
      return { status: 200, body: { room: body?.room, exists: false, members: 0 } }
    case 'room.delete':
    case 'room.clear':
      return { status: 200, body: { room: body?.room, removed: 0 } }
    case 'room.presence':
      return { status: 200, body: { room: body?.room, members: 0, online: 0, users: [], offline: [] } }
  }
}

const REASONS: Record<number, string> = { 401: 'Unauthorized', 404: 'Not Found', 502: 'Bad Gateway' }

function refuseUpgrade(socket: Socket, status: number, code: string): void {
  const body = JSON.stringify({ error: { code, message: `refused with ${status}` } })
  socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

export async function startFakeRouter(t: { teardown(fn: () => unknown): void }, options: FakeRouterOptions = {}): Promise<FakeRouter> {
  const apiKey = options.apiKey ?? 'test-key-0123456789abcdef'
  let answer = options.answer ?? defaultAnswer
  const requests: FakeRequest[] = []
  const httpHeaders: IncomingMessage['headers'][] = []
  const upgrades = { count: 0 }
  const maxConcurrent = { value: 0 }
  const refused = { count: 0 }
  const sockets = new Set<WebSocket>()
  let concurrent = 0
  const countWaiters: { count: number; resolve(): void }[] = []
  const connectionWaiters: ((ws: WebSocket) => void)[] = []
  const record = (req: FakeRequest) => {
    requests.push(req)
    for (const w of countWaiters.filter((w) => requests.length >= w.count)) {
      countWaiters.splice(countWaiters.indexOf(w), 1)
      w.resolve()
    }
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const send = (a: FakeAnswer) => {
        const text = typeof a.body === 'string' ? a.body : JSON.stringify(a.body)
        res.writeHead(a.status, { 'content-type': 'application/json', 'x-request-id': String(req.headers['x-request-id'] ?? '') }).end(text)
      }
      httpHeaders.push(req.headers)
      if (req.headers.authorization !== `Bearer ${apiKey}`) return send({ status: 401, body: { error: { code: 'unauthorized', message: 'a valid API key is required' } } })
      const [path = '', query = ''] = (req.url ?? '').split('?')
      // Routed as the router routes (its matcher of the operation table); the request recorded as its pipeline body.
      const route = routeOf(req.method ?? '', path)
      if (route === undefined || route instanceof SwitchboardError || !Object.hasOwn(OPERATIONS, route.name)) return send({ status: 404, body: { error: { code: 'not_found', message: `no route ${req.method} ${path}` } } })
      const op = route.name as PipelineOp
      const text = Buffer.concat(chunks).toString('utf8')
      const rest = OPERATIONS[op].input === 'query' ? Object.fromEntries(new URLSearchParams(query)) : text ? (JSON.parse(text) as unknown) : undefined
      const body = Object.keys(route.params).length === 0 ? rest : { ...(rest as object | undefined), ...route.params }
      const key = req.headers['idempotency-key']
      const fake: FakeRequest = { id: String(req.headers['x-request-id']), op, body, via: 'http', ...(typeof key === 'string' ? { idempotencyKey: key } : {}) }
      record(fake)
      void Promise.resolve(answer(fake)).then(send)
    })
  })
  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/v1/pipeline') return refuseUpgrade(socket, 404, 'not_found')
    upgrades.count++
    if (options.refuseUpgrade !== undefined) return refuseUpgrade(socket, options.refuseUpgrade, options.refuseUpgrade === 401 ? 'unauthorized' : 'not_found')
    if (req.headers.authorization !== `Bearer ${apiKey}`) return refuseUpgrade(socket, 401, 'unauthorized')
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws)
      ws.once('close', () => sockets.delete(ws))
      let inFlight = 0
      ws.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as { id: string; op: PipelineOp; body?: unknown; idempotencyKey?: string }
        const reply = (a: FakeAnswer) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ id: frame.id, status: a.status, body: a.body }))
        if (options.maxInFlight !== undefined && inFlight >= options.maxInFlight) {
          refused.count++
          return reply({ status: 429, body: { error: { code: 'rate_limited', message: 'too many requests in flight on this connection' } } })
        }
        inFlight++
        concurrent++
        maxConcurrent.value = Math.max(maxConcurrent.value, concurrent)
        const fake: FakeRequest = { id: frame.id, op: frame.op, body: frame.body, via: 'pipeline', ...(frame.idempotencyKey === undefined ? {} : { idempotencyKey: frame.idempotencyKey }) }
        record(fake)
        void Promise.resolve(answer(fake)).then((a) => {
          inFlight--
          concurrent--
          reply(a)
        })
      })
      for (const w of connectionWaiters.splice(0)) w(ws)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port

  const close = async () => {
    for (const ws of sockets) ws.terminate()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  t.teardown(close)
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    apiKey,
    requests,
    httpHeaders,
    upgrades,
    maxConcurrent,
    refused,
    sockets,
    received: (count) => (requests.length >= count ? Promise.resolve() : new Promise((resolve) => countWaiters.push({ count, resolve }))),
    nextConnection: () => new Promise((resolve) => connectionWaiters.push(resolve)),
    setAnswer: (a) => {
      answer = a ?? defaultAnswer
    },
    close,
  }
}

// Hostile input against a real router (Redis, router and one edge as processes): random and
// mutated bodies, Content-Types, paths, methods and Authorization headers on every route,
// sent byte for byte. Property: the answer is a documented 2xx, or a JSON error
// {"error":{"code","message"}} whose stable code matches its status (400 invalid_request,
// 401 unauthorized, 404 not_found, 413 payload_too_large); never a 5xx, another error
// shape, a dropped connection or a crash, and a connected user keeps getting pushes.
// Every generated request is checked against one model of the documented API (README).
// One exception, documented in the README: requests the HTTP parser (uWebSockets.js) cannot
// read as origin-form HTTP/1.1 never reach a route; uWS refuses them itself, with a plain
// 400/431/505 and Connection: close, or by closing the connection. `isParserRefusal` accepts
// exactly that, and only for such requests: malformed framing, or a target not starting with '/'.
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { limits } from '@switchboard/protocol'
import { api, connectUser } from '../helpers/clients.js'
import { startCluster, testSecrets } from '../helpers/processes.js'
import { rawRequest, type RawOutcome, type RawRequest } from '../helpers/raw-http.js'

const cluster = await startCluster(t, { edges: 1 })
const { router } = cluster
const edge = cluster.edges[0]!
const { apiKeys, jwtSecret } = testSecrets()
const BODY_LIMIT_BYTES = 1_048_576 // ROUTER_BODY_LIMIT_BYTES default
const MAX_RECIPIENTS = 10_000
/** Online the whole time: the only user a fuzzed push, query or presence may find. */
const BYSTANDER = `bystander-${randomBytes(6).toString('hex')}`
const bystander = await connectUser(t, edge.wsUrl, jwtSecret, BYSTANDER)

/** Every request this file sends, for the summary. */
let casesRun = 0
/**
 * Runs per property; a few hundred per route fit the time budget on two shared cores.
 * HOSTILE_API_RUNS=n changes it; HOSTILE_API_DEBUG=1 logs every request and skips shrinking.
 */
const RUNS = Number(process.env.HOSTILE_API_RUNS ?? 400)

// ---------------------------------------------------------------------------------------------
// The model: which answer the documented API gives to a request.

const ERROR_STATUS = { invalid_request: 400, unauthorized: 401, not_found: 404, payload_too_large: 413 } as const
type StableCode = keyof typeof ERROR_STATUS

interface HostileRequest {
  method: string
  target: string | Buffer
  /** Authorization header value; undefined sends none. */
  authorization?: string | undefined
  /** Content-Type header value; undefined sends none. */
  contentType?: string | undefined
  body?: Buffer | undefined
  extraHeaders?: readonly (readonly [string, string | Buffer])[]
  /** Sent as is: no Host/Content-Length/Connection added (for malformed framing). */
  isRawFraming?: boolean
}

type RouteName = 'push' | 'broadcast' | 'query' | 'disconnect' | 'presence' | 'nodes' | 'healthz'
interface RouteMatch {
  route: RouteName
  /** The decoded :userId of GET /v1/presence/:userId. */
  userId?: string
}

interface Expectation {
  /** Allowed statuses. */
  statuses: readonly number[]
  /** Checks a 2xx JSON answer; returns what is wrong. */
  check?: (body: unknown) => string | undefined
  why: string
}

const POST_ROUTES: Record<string, RouteName> = {
  '/v1/push': 'push',
  '/v1/broadcast': 'broadcast',
  '/v1/presence/query': 'query',
  '/v1/disconnect': 'disconnect',
}

/** Decodes percent-escapes of unreserved characters only: RFC 3986 makes those spellings equivalent. */
function decodeUnreserved(segment: string): string {
  return segment.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16))
    return /[A-Za-z0-9\-._~]/.test(ch) ? ch : escape
  })
}

/** The path a target names: absolute-form loses scheme and authority, the query is dropped. */
function pathOf(target: string): string | undefined {
  let path = target
  const absolute = /^https?:\/\/[^/?#]*/.exec(path)
  if (absolute) path = path.slice(absolute[0].length) || '/'
  if (!path.startsWith('/')) return undefined
  const query = path.indexOf('?')
  return query < 0 ? path : path.slice(0, query)
}

/** Which route serves `method path`, if any; undefined for no route (404). */
function matchRoute(method: string, path: string): RouteMatch | undefined {
  const segments = path.split('/').map(decodeUnreserved)
  const decoded = segments.join('/')
  const isGet = method === 'GET' || method === 'HEAD'
  if (method === 'POST' && POST_ROUTES[decoded]) return { route: POST_ROUTES[decoded] }
  if (isGet && decoded === '/v1/nodes') return { route: 'nodes' }
  if (isGet && decoded === '/healthz') return { route: 'healthz' }
  const [empty, v1, presence, ...rest] = path.split('/')
  if (isGet && empty === '' && decodeUnreserved(v1 ?? '') === 'v1' && decodeUnreserved(presence ?? '') === 'presence' && rest.length === 1) {
    let userId: string | undefined
    try {
      userId = decodeURIComponent(rest[0]!)
    } catch {
      userId = undefined // not UTF-8: 400
    }
    return { route: 'presence', userId }
  }
  return undefined
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
/** Lengths count characters (code points), as the README says, not UTF-16 units. */
const isText = (v: unknown, min: number, max: number): v is string => typeof v === 'string' && [...v].length >= min && [...v].length <= max
/** No C0 control characters or DEL (README: user ids and events). */
const isPrintable = (v: unknown, min: number, max: number): v is string => isText(v, min, max) && !/[\u0000-\u001f\u007f]/.test(v)
const isUserId = (v: unknown): v is string => isPrintable(v, 1, 256)
const hasOnly = (v: Record<string, unknown>, keys: readonly string[]) => Object.keys(v).every((k) => keys.includes(k))
const isOptional = (v: Record<string, unknown>, key: string, test: (x: unknown) => boolean) => !Object.hasOwn(v, key) || test(v[key])
const isIdList = (v: unknown, max: number): v is string[] => Array.isArray(v) && v.length >= 1 && v.length <= max && v.every(isUserId)

/** The README's request schemas, written independently of the product's zod schemas. */
const isValidBody: Record<'push' | 'broadcast' | 'query' | 'disconnect', (v: unknown) => boolean> = {
  push: (v) =>
    isObject(v) && hasOnly(v, ['to', 'event', 'data', 'id']) && isIdList(v.to, MAX_RECIPIENTS) && isPrintable(v.event, 1, 256) && isOptional(v, 'id', (x) => isText(x, 1, 128)),
  broadcast: (v) => isObject(v) && hasOnly(v, ['event', 'data', 'id']) && isPrintable(v.event, 1, 256) && isOptional(v, 'id', (x) => isText(x, 1, 128)),
  query: (v) => isObject(v) && hasOnly(v, ['userIds']) && isIdList(v.userIds, MAX_RECIPIENTS),
  disconnect: (v) => isObject(v) && hasOnly(v, ['userId', 'reason']) && isUserId(v.userId) && isOptional(v, 'reason', (x) => isText(x, 0, 512)),
}

/** JSON with `__proto__` or `constructor` keys: refused as a prototype-pollution attempt (docs/SECURITY.md), so 400 is allowed. */
function hasPrototypeKeys(v: unknown): boolean {
  const stack = [v]
  while (stack.length > 0) {
    const x = stack.pop()
    if (Array.isArray(x)) stack.push(...x)
    else if (isObject(x)) {
      if (Object.hasOwn(x, '__proto__')) return true
      if (Object.hasOwn(x, 'constructor')) return true
      stack.push(...Object.values(x))
    }
  }
  return false
}

/** How deep arrays and objects nest (a scalar is 0, `[]` is 1); iterative. */
function depthOf(v: unknown): number {
  let max = 0
  const stack: [unknown, number][] = [[v, 0]]
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!
    if (x === null || typeof x !== 'object') continue
    max = Math.max(max, depth + 1)
    for (const child of Object.values(x)) stack.push([child, depth + 1])
  }
  return max
}

/** A syntactically valid media type (RFC 9110 token/token with token=token|quoted-string parameters). */
const MEDIA_TYPE = /^[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+(\s*;\s*[\w!#$%&'*+.^`|~-]+=([\w!#$%&'*+.^`|~-]+|"[^"\\]*"))*\s*$/

function sameSet(a: readonly unknown[], b: readonly unknown[]): boolean {
  const x = new Set(a)
  return x.size === new Set(b).size && b.every((v) => x.has(v))
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

/** The documented 200 answer of each route, for this request and this cluster (only the bystander online). */
function answerCheck(match: RouteMatch, request: unknown): (body: unknown) => string | undefined {
  const req = request as Record<string, unknown>
  switch (match.route) {
    case 'push':
      return (b) => {
        if (!isObject(b) || !sameSet(Object.keys(b), ['id', 'delivered', 'offline', 'failed'])) return 'push answer shape'
        if (!isStringList(b.delivered) || !isStringList(b.offline) || !isStringList(b.failed)) return 'push lists'
        if (typeof b.id !== 'string' || (req.id !== undefined && b.id !== req.id)) return 'push id is not the caller id'
        const all = [...b.delivered, ...b.offline, ...b.failed]
        if (all.length !== new Set(all).size || !sameSet(all, req.to as string[])) return 'every recipient must be in exactly one list'
        if (b.failed.length > 0) return 'no edge is down: failed must be empty'
        if (!b.delivered.every((u) => u === BYSTANDER) || b.offline.includes(BYSTANDER)) return 'only the bystander is online'
        return undefined
      }
    case 'broadcast':
      return (b) => {
        if (!isObject(b) || !sameSet(Object.keys(b), ['id', 'nodes', 'connections'])) return 'broadcast answer shape'
        if (typeof b.id !== 'string' || (req.id !== undefined && b.id !== req.id)) return 'broadcast id is not the caller id'
        return b.nodes === 1 && b.connections === 1 ? undefined : 'one edge with one socket (the bystander)'
      }
    case 'query':
      return (b) => {
        if (!isObject(b) || !sameSet(Object.keys(b), ['online', 'offline'])) return 'query answer shape'
        if (!isStringList(b.online) || !isStringList(b.offline)) return 'query lists'
        const all = [...b.online, ...b.offline]
        if (all.length !== new Set(all).size || !sameSet(all, req.userIds as string[])) return 'every id must be in exactly one list'
        return b.online.every((u) => u === BYSTANDER) && !b.offline.includes(BYSTANDER) ? undefined : 'only the bystander is online'
      }
    case 'disconnect':
      return (b) => (isObject(b) && sameSet(Object.keys(b), ['closed']) && b.closed === (req.userId === BYSTANDER ? 1 : 0) ? undefined : 'disconnect answer')
    case 'presence':
      return (b) => {
        if (!isObject(b) || !sameSet(Object.keys(b), ['userId', 'online', 'connections'])) return 'presence answer shape'
        if (b.userId !== match.userId) return `presence echoes another id: ${JSON.stringify(b.userId)}`
        const isOnline = match.userId === BYSTANDER
        if (b.online !== isOnline || !Array.isArray(b.connections) || b.connections.length !== (isOnline ? 1 : 0)) return 'presence online/connections'
        return undefined
      }
    case 'nodes':
      return (b) => {
        if (!isObject(b) || !sameSet(Object.keys(b), ['nodes']) || !Array.isArray(b.nodes) || b.nodes.length !== 1) return 'nodes answer shape'
        const [node] = b.nodes as Record<string, unknown>[]
        return node?.nodeId === edge.nodeId && node.draining === false && typeof node.connections === 'number' && typeof node.startedAt === 'number'
          ? undefined
          : 'nodes: the edge, not draining'
      }
    case 'healthz':
      return (b) => (isObject(b) && b.status === 'ok' ? undefined : 'healthz answer')
  }
}

function isAuthorized(value: string | undefined): boolean {
  if (value === undefined) return false
  // The HTTP parser strips optional whitespace around a header value; uWS also drops
  // obs-text bytes (0x80-0xff) at its end.
  const trimmed = value.replace(/^[ \t]+|[ \t\x80-\xff]+$/g, '')
  return apiKeys.some((key) => trimmed === `Bearer ${key}`)
}

const only = (why: string, ...statuses: number[]): Expectation => ({ statuses, why })

/** What the documented API answers to `req`. */
function expectationFor(req: HostileRequest): Expectation {
  const target = Buffer.isBuffer(req.target) ? req.target.toString('latin1') : req.target
  const path = pathOf(target)
  if (path === undefined) return only('no such route', 404, 400)
  const match = matchRoute(req.method, path)
  const isV1 = path.split('/').map(decodeUnreserved).join('/').startsWith('/v1/')
  const isTooLarge = (req.body?.length ?? 0) > BODY_LIMIT_BYTES
  if (isV1 && !isAuthorized(req.authorization)) {
    // Every /v1/* call needs a key, however the path is spelled; an unknown one may also be 404.
    return match ? only('a /v1 route without a valid key', 401) : only('an unknown /v1 path without a valid key', 401, 404)
  }
  if (!match) {
    // No route: 404, unless a body (or a Content-Type announcing one) is refused first.
    return req.body?.length || req.contentType !== undefined ? only('no such route (with a body)', 404, 400, 413) : only('no such route', 404)
  }
  if (match.route === 'healthz') return { statuses: [200], check: answerCheck(match, undefined), why: 'healthz' }
  if (match.route === 'nodes') return { statuses: [200], check: answerCheck(match, undefined), why: 'GET /v1/nodes' }
  if (match.route === 'presence') {
    if (!isUserId(match.userId)) return only('userId is not 1..256 characters without controls', 400)
    return { statuses: [200], check: answerCheck(match, undefined), why: 'presence of a valid id' }
  }
  const isMalformedType = req.contentType !== undefined && !MEDIA_TYPE.test(req.contentType)
  if (isTooLarge) return isMalformedType ? only('body over the limit, malformed Content-Type', 413, 400) : only('body over the limit', 413)
  const text = (req.body ?? Buffer.alloc(0)).toString('utf8').replace(/^\uFEFF/, '')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return only('body is not JSON', 400)
  }
  const route = match.route
  if (!isValidBody[route](value)) return only(`invalid ${route} body`, 400)
  const check = answerCheck(match, value)
  // May be refused (400), as documented or as a bound past the README's promises; never a 5xx.
  if (hasPrototypeKeys(value)) return { statuses: [200, 400], check, why: `valid ${route} body with prototype keys (docs/SECURITY.md)` }
  if (isObject(value) && depthOf(value.data) > limits.maxDataDepth) return { statuses: [200, 400], check, why: `valid ${route} body with data nested past ${limits.maxDataDepth}` }
  if (isMalformedType) return { statuses: [200, 400], check, why: `valid ${route} body, malformed Content-Type` }
  return { statuses: [200], check, why: `valid ${route} body` }
}

// ---------------------------------------------------------------------------------------------
// Sending and judging.

function toRaw(req: HostileRequest): RawRequest {
  const headers: (readonly [string, string | Buffer])[] = []
  if (req.authorization !== undefined) headers.push(['Authorization', req.authorization])
  if (req.contentType !== undefined) headers.push(['Content-Type', req.contentType])
  headers.push(...(req.extraHeaders ?? []))
  return { method: req.method, target: req.target, headers, body: req.body, isAutoFramed: !req.isRawFraming }
}

const clip = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s)

function describe(req: HostileRequest): string {
  const target = Buffer.isBuffer(req.target) ? req.target.toString('latin1') : req.target
  const parts = [`${req.method} ${clip(JSON.stringify(target), 200)}`]
  if (req.authorization !== undefined) parts.push(`authorization=${clip(JSON.stringify(req.authorization), 80)}`)
  if (req.contentType !== undefined) parts.push(`content-type=${clip(JSON.stringify(req.contentType), 80)}`)
  for (const [name, value] of req.extraHeaders ?? []) parts.push(`${name}=${clip(JSON.stringify(value.toString()), 80)}`)
  if (req.body !== undefined) parts.push(`body(${req.body.length} bytes)=${clip(JSON.stringify(req.body.toString('utf8')), 300)}`)
  return parts.join(' ')
}

/** Makes fast-check print a short description of a request instead of megabytes of body. */
function printable(req: HostileRequest): HostileRequest {
  return Object.assign(req, { [fc.toStringMethod]: () => `<${describe(req)}>` })
}

/** The members of each documented 200 answer, for requests outside the model. */
const DOCUMENTED_ANSWERS = [['id', 'delivered', 'offline', 'failed'], ['id', 'nodes', 'connections'], ['online', 'offline'], ['closed'], ['userId', 'online', 'connections'], ['nodes'], ['status']]

/**
 * The contract of every answer: complete, below 500, JSON with the documented shape; an error
 * has exactly {"error":{"code","message"}} with a stable code matching the status. Returns what
 * is wrong, or undefined.
 */
/**
 * uWS's own refusal of a request it could not parse: no route ran, nothing was served. Some
 * malformed heads (a space in a header name) make its parser wait for more bytes: it closes
 * the connection at its HTTP idle timeout (~10 s), so for malformed requests a `stall` (no
 * answer within STALL_MS) is that refusal too.
 */
function isParserRefusal(outcome: RawOutcome, canStall: boolean): boolean {
  const res = outcome.response
  if (!res) return outcome.failure !== 'timeout' || canStall
  return [400, 431, 505].includes(res.status) && res.headers.connection === 'close' && !/json/.test(res.headers['content-type'] ?? '')
}

/** A target that is not origin-form (absolute-form, `*`, authority-form): uWS does not route it. */
function isOriginForm(req: HostileRequest): boolean {
  const target = Buffer.isBuffer(req.target) ? req.target.toString('latin1') : req.target
  return target.startsWith('/')
}

function judge(req: HostileRequest, outcome: RawOutcome, expected?: Expectation, isMalformed = false): string | undefined {
  if ((isMalformed || !isOriginForm(req)) && isParserRefusal(outcome, isMalformed)) return undefined
  const res = outcome.response
  if (!res) return `no answer (${outcome.failure}); received ${clip(JSON.stringify(outcome.received))}`
  const show = `${res.status} ${clip(res.text)}`
  if (res.status >= 500) return `a 5xx: ${show}`
  if (req.method === 'HEAD') {
    if (res.status >= 300 && !(Object.values(ERROR_STATUS) as number[]).includes(res.status)) return `status ${res.status} has no stable code`
    if (expected && !expected.statuses.includes(res.status)) return `status ${res.status}, expected ${expected.statuses.join('/')} (${expected.why})`
    return undefined
  }
  if (!/^application\/json\b/.test(res.headers['content-type'] ?? '')) return `not a JSON answer (content-type ${res.headers['content-type']}): ${show}`
  let body: unknown
  try {
    body = JSON.parse(res.text)
  } catch {
    return `the body is not JSON: ${show}`
  }
  if (res.status >= 200 && res.status < 300) {
    if (!expected) return res.status === 200 && DOCUMENTED_ANSWERS.some((keys) => isObject(body) && sameSet(Object.keys(body), keys)) ? undefined : `not a documented answer: ${show}`
    if (!expected.statuses.includes(res.status)) return `status ${res.status}, expected ${expected.statuses.join('/')} (${expected.why}): ${show}`
    const problem = expected.check?.(body)
    return problem ? `${problem}: ${show}` : undefined
  }
  if (!isObject(body) || !sameSet(Object.keys(body), ['error'])) return `not the error shape: ${show}`
  const error = body.error
  if (!isObject(error) || !sameSet(Object.keys(error), ['code', 'message'])) return `not the error shape: ${show}`
  if (typeof error.message !== 'string' || error.message.length === 0) return `the error has no message: ${show}`
  const status = ERROR_STATUS[error.code as StableCode]
  if (status === undefined) return `unknown error code ${JSON.stringify(error.code)}: ${show}`
  if (status !== res.status) return `code ${String(error.code)} with status ${res.status}: ${show}`
  if (expected && !expected.statuses.includes(res.status)) return `status ${res.status}, expected ${expected.statuses.join('/')} (${expected.why}): ${show}`
  return undefined
}

/** How long a malformed request may go unanswered before it counts as a parser stall (see isParserRefusal). */
const STALL_MS = 2_000

async function send(req: HostileRequest, timeoutMs = 10_000): Promise<RawOutcome> {
  casesRun++
  const started = Date.now()
  const outcome = await rawRequest(router.port, toRaw(req), { timeoutMs })
  if (process.env.HOSTILE_API_DEBUG) process.stderr.write(`${Date.now() - started} ms ${outcome.response?.status ?? outcome.failure} ${clip(describe(req), 200)}\n`)
  return outcome
}

/** Sends each generated request and holds it to the model (or only to the general contract). */
async function checkProperty(t: Test, name: string, arb: fc.Arbitrary<HostileRequest>, opts: { numRuns?: number; isModelled?: boolean } = {}) {
  const before = casesRun
  const property = fc.asyncProperty(arb.map(printable), async (req) => {
    const outcome = await send(req, opts.isModelled === false ? STALL_MS : undefined)
    const problem = judge(req, outcome, opts.isModelled === false ? undefined : expectationFor(req), opts.isModelled === false)
    if (problem) throw new Error(`${describe(req)}\n  → ${problem}`)
  })
  report(t, name, await fc.check(property, checkParams(opts.numRuns ?? RUNS)), before)
}

/** Each property gets a time budget (shrinking included), so a failure cannot eat the file's minute. */
function checkParams(numRuns: number): fc.Parameters<[HostileRequest]> {
  return { numRuns, includeErrorInReport: true, interruptAfterTimeLimit: 10_000, markInterruptAsFailure: false, endOnFailure: !!process.env.HOSTILE_API_DEBUG }
}

function report(t: Test, name: string, details: fc.RunDetails<[HostileRequest]>, before: number) {
  if (details.failed) t.fail(`${name}\n${fc.defaultReportMessage(details)}`)
  else t.pass(`${name}: ${details.numRuns} generated requests${details.interrupted ? ' (time budget reached)' : ''}`)
  t.comment(`${name}: ${casesRun - before} requests sent (shrinking included)`)
}

// ---------------------------------------------------------------------------------------------
// Generators.

const KEY = `Bearer ${apiKeys[0]}`

/** Characters a header value may carry on the wire (HTAB, visible ASCII, obs-text). */
const headerChar = fc.oneof(
  { arbitrary: fc.integer({ min: 0x20, max: 0x7e }), weight: 8 },
  { arbitrary: fc.integer({ min: 0x80, max: 0xff }), weight: 1 },
  { arbitrary: fc.constant(0x09), weight: 1 },
).map((c) => String.fromCharCode(c))
const headerText = (maxLength = 40) => fc.string({ unit: headerChar, maxLength })

/** Content types that are well-formed media types (the README: the body is JSON whatever they say). */
const plainContentType = fc.constantFrom(
  undefined,
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'text/plain; charset=iso-8859-1',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/octet-stream',
  'Application/JSON',
)
/** Anything a Content-Type header can carry, malformed included. */
const anyContentType = fc.oneof(
  plainContentType,
  fc.constantFrom('', ' ', 'foo', ';;;', 'application/json, text/plain', '*/*', 'application/', '/json', 'application/json; charset="', 'text/html; charset=utf-16le', 'application/json;;', 'application/json; x', '\xff\xfe'),
  headerText(60),
  fc.tuple(fc.stringMatching(/^[a-z]{1,10}\/[a-z+.-]{1,15}$/), headerText(20)).map(([type, params]) => `${type};${params}`),
)

/** User ids: ordinary, unicode, prototype names, path-like, boundary lengths. */
const userIdArb = fc.oneof(
  { arbitrary: fc.string({ minLength: 1, maxLength: 20 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }), weight: 3 },
  { arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '..', '.', '/', 'a/b', '%', '%2F', '?x=1', '#', ' ', '\u0000', '\uFEFF', '\uD800', '🙂', 'ünïcödé', 'query', 'v1'), weight: 2 },
  { arbitrary: fc.constantFrom(255, 256, 257).map((n) => 'u'.repeat(n)), weight: 1 },
)
const eventArb = fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.constantFrom('chat.message', 'x'.repeat(256), 'x'.repeat(257), '', '__proto__'))
const messageIdArb = fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.constantFrom('x'.repeat(128), 'x'.repeat(129), ''))
const dataArb = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom(null, '', 0, [], {}))

/** Valid-looking bodies (the README's schemas; some fields at or past their bounds). */
const validBodies = {
  push: fc.record({ to: fc.array(userIdArb, { minLength: 1, maxLength: 8 }), event: eventArb, data: dataArb, id: messageIdArb }, { requiredKeys: ['to', 'event'] }),
  broadcast: fc.record({ event: eventArb, data: dataArb, id: messageIdArb }, { requiredKeys: ['event'] }),
  query: fc.record({ userIds: fc.array(userIdArb, { minLength: 1, maxLength: 8 }) }),
  disconnect: fc.record({ userId: userIdArb, reason: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('x'.repeat(512), 'x'.repeat(513))) }, { requiredKeys: ['userId'] }),
} satisfies Record<string, fc.Arbitrary<Record<string, unknown>>>
type BodyRoute = keyof typeof validBodies
const bodiesOf = (route: BodyRoute) => validBodies[route] as fc.Arbitrary<Record<string, unknown>>
const BODY_PATHS: Record<BodyRoute, string> = { push: '/v1/push', broadcast: '/v1/broadcast', query: '/v1/presence/query', disconnect: '/v1/disconnect' }
const FIELDS = ['to', 'event', 'data', 'id', 'userIds', 'userId', 'reason']

/** JSON nested `depth` levels deep, as text (no recursion in this process). */
const nestedText = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth)}null${'}'.repeat(depth)}`

/** Values of the wrong type, empty, huge, unicode, numbers as strings, moderately nested. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, -0, 1e308, '', ' ', '0', '1', 'true', 'null', '[]', '{}', [], {}, [[]], [null], [''], ['a', 1], { to: [] }),
  fc.integer().map(String),
  fc.double({ noNaN: true }).map(String),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer({ min: 257, max: 20_000 }).map((n) => 'x'.repeat(n)),
  fc.jsonValue({ maxDepth: 3 }),
  fc.anything({ maxDepth: 2 }),
  fc.integer({ min: 1, max: 200 }).map((n) => JSON.parse(nestedText(n)) as unknown),
  fc.array(fc.constant('dup'), { minLength: 2, maxLength: 5 }),
)

type Mutation = (v: Record<string, unknown>) => unknown
const withOwn = (v: Record<string, unknown>, key: string, value: unknown) => {
  const copy = { ...v }
  // defineProperty, so that "__proto__" becomes an own (serialized) key.
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true })
  return copy
}
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // a missing field
  fc.nat().map((i): Mutation => (v) => {
    const keys = Object.keys(v)
    const copy = { ...v }
    if (keys.length > 0) delete copy[keys[i % keys.length]!]
    return copy
  }),
  // a wrong, extra or prototype-named field
  fc
    .tuple(fc.oneof(fc.constantFrom(...FIELDS, '__proto__', 'constructor', 'prototype', 'toString', '', 'TO', ' to'), fc.string({ maxLength: 10 })), hostileValue)
    .map(([key, value]): Mutation => (v) => withOwn(v, key, value)),
  // a bad element in a list of ids
  fc.tuple(fc.nat(), hostileValue).map(([i, value]): Mutation => (v) => {
    const key = Object.keys(v).find((k) => Array.isArray(v[k]))
    if (!key) return v
    const list = [...(v[key] as unknown[])]
    list[i % (list.length + 1)] = value
    return { ...v, [key]: list }
  }),
  // numbers where strings belong
  fc.integer().map((n): Mutation => (v) => Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === 'string' ? n : Array.isArray(x) ? x.map(() => n) : x]))),
  // not an object at all
  fc.constantFrom<Mutation>((v) => [v], () => null, (v) => JSON.stringify(v), (v) => ({ body: v }), () => [], () => 0, () => '', (v) => Object.values(v)),
  // {"constructor":{"prototype":...}}, {"__proto__":...}
  fc.constantFrom<Mutation>((v) => withOwn(v, 'constructor', { prototype: { isAdmin: true } }), (v) => withOwn(v, '__proto__', { isAdmin: true }), (v) => ({ ...v, data: withOwn({}, '__proto__', { polluted: 1 }) })),
  // around the recipient limit
  fc.integer({ min: MAX_RECIPIENTS - 2, max: MAX_RECIPIENTS + 2 }).map((n): Mutation => (v) => {
    const key = Object.keys(v).find((k) => Array.isArray(v[k]))
    return key ? { ...v, [key]: Array.from({ length: n }, (_, i) => `bulk-${i}`) } : v
  }),
)

/** Edits of the JSON text itself: truncation, insertions, BOM, comments, duplicate keys, trailing junk. */
const textEdit = fc.oneof(
  { arbitrary: fc.constant((s: string) => s), weight: 3 },
  { arbitrary: fc.nat().map((i) => (s: string) => s.slice(0, i % (s.length + 1))), weight: 1 },
  {
    arbitrary: fc.tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })).map(([i, ins]) => (s: string) => {
      const at = i % (s.length + 1)
      return s.slice(0, at) + ins + s.slice(at)
    }),
    weight: 1,
  },
  {
    arbitrary: fc.constantFrom(
      (s: string) => `\uFEFF${s}`,
      (s: string) => `${s}garbage`,
      (s: string) => `${s},`,
      (s: string) => ` \n\t${s}\r\n `,
      (s: string) => `/* c */${s}`,
      (s: string) => s.replaceAll('"', "'"),
      (s: string) => s.replace(/^\{/, '{"to":"dup","userIds":"dup","event":7,'),
      (s: string) => s.replace(/\}$/, ',"event":"late","userId":"late"}'),
      (s: string) => s.replace(/:/, ':NaN,"x":'),
      (s: string) => `${s}${s}`,
    ),
    weight: 1,
  },
)

const utf8 = (s: string) => Buffer.from(s, 'utf8')

/** A body for a POST route: random JSON or bytes, or a valid body mutated (moderate nesting only). */
function bodyArb(route: BodyRoute): fc.Arbitrary<Buffer | undefined> {
  const mutated = fc.tuple(bodiesOf(route), fc.array(mutation, { maxLength: 2 }), textEdit).map(([v, muts, edit]) => {
    const value = muts.reduce<unknown>((acc, m) => (isObject(acc) ? m(acc) : acc), v)
    const text = JSON.stringify(value)
    return text === undefined ? undefined : utf8(edit(text))
  })
  return fc.oneof(
    { arbitrary: bodiesOf(route).map((v) => utf8(JSON.stringify(v))), weight: 3 },
    { arbitrary: mutated, weight: 6 },
    { arbitrary: fc.anything({ maxDepth: 3 }).map((v) => (JSON.stringify(v) === undefined ? undefined : utf8(JSON.stringify(v)))), weight: 1 },
    { arbitrary: fc.json({ maxDepth: 3 }).map(utf8), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 60 }).map(utf8), weight: 1 },
    { arbitrary: fc.uint8Array({ maxLength: 100 }).map((a) => Buffer.from(a)), weight: 1 },
    { arbitrary: fc.constantFrom(undefined, Buffer.alloc(0), utf8(' '), utf8('null'), utf8('[]'), utf8('{}'), utf8('""'), utf8('0')), weight: 1 },
    // around the body limit: a huge string in a valid body, just under or over
    {
      arbitrary: fc.tuple(bodiesOf(route), fc.integer({ min: -64, max: 64 })).map(([v, delta]) => {
        const field = route === 'query' ? 'userIds' : route === 'disconnect' ? 'reason' : 'data'
        const pad = BODY_LIMIT_BYTES + delta - Buffer.byteLength(JSON.stringify({ ...v, [field]: '' }))
        return utf8(JSON.stringify({ ...v, [field]: 'x'.repeat(Math.max(0, pad)) }))
      }),
      weight: 1,
    },
  )
}

const postRequest = (route: BodyRoute, contentType: fc.Arbitrary<string | undefined>) =>
  fc.record({ body: bodyArb(route), contentType }).map(({ body, contentType }): HostileRequest => ({ method: 'POST', target: BODY_PATHS[route], authorization: KEY, contentType, body }))

/** Percent-encodes every character of `s` as UTF-8 escapes (lone surrogates become U+FFFD). */
const encodeAll = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('')
/** What the router sees after decoding: lone surrogates cannot survive UTF-8. */
const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8')

// ---------------------------------------------------------------------------------------------
// Properties.

t.test('before the fuzzing, a push reaches the bystander', async (t) => {
  const res = await cluster.api.post('/v1/push', { to: [BYSTANDER], event: 'before', data: 1, id: 'before-1' })
  t.equal(res.status, 200)
  t.same(res.body.delivered, [BYSTANDER])
  t.match(await bystander.client.nextFrame(), { type: 'push', id: 'before-1', event: 'before', data: 1 })
})

for (const route of Object.keys(validBodies) as BodyRoute[]) {
  t.test(`POST ${BODY_PATHS[route]}: random and mutated bodies get 200 or a stable 4xx`, async (t) => {
    await checkProperty(t, `POST ${BODY_PATHS[route]} bodies`, postRequest(route, plainContentType))
  })
}

t.test('any Content-Type: a valid media type is read as JSON (README), a malformed one may be 400', async (t) => {
  const routes = fc.constantFrom(...(Object.keys(validBodies) as BodyRoute[]))
  const withBody = routes.chain((route) => postRequest(route, anyContentType))
  const getWithBody = fc
    .record({ target: fc.constantFrom('/v1/nodes', '/v1/presence/someone', '/healthz'), contentType: anyContentType, body: fc.option(fc.string().map(utf8), { nil: undefined }) })
    .map(({ target, contentType, body }): HostileRequest => ({ method: 'GET', target, authorization: KEY, contentType, body }))
  await checkProperty(t, 'Content-Type fuzz', fc.oneof({ arbitrary: withBody, weight: 3 }, { arbitrary: getWithBody, weight: 1 }))
})

t.test('deeply nested JSON in data: never a 5xx', async (t) => {
  // Valid JSON of any depth up to the body limit. Past limits.maxDataDepth the router may
  // refuse it with a 400 naming `data`; it must never fail (or crash) serializing it.
  const depth = fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: 2_000, max: 200_000 }))
  const arb = fc.record({ route: fc.constantFrom<'push' | 'broadcast'>('push', 'broadcast'), depth, isObjects: fc.boolean() }).map(({ route, depth, isObjects }): HostileRequest => {
    const data = isObjects ? nestedObjects(depth) : nestedText(depth)
    const body = route === 'push' ? `{"to":["deep-user"],"event":"deep","data":${data}}` : `{"event":"deep","data":${data}}`
    return { method: 'POST', target: BODY_PATHS[route], authorization: KEY, contentType: 'application/json', body: utf8(body) }
  })
  const before = casesRun
  const property = fc.asyncProperty(arb.map(printable), async (req) => {
    const outcome = await send(req)
    const problem = judge(req, outcome, expectationFor(req))
    if (problem) throw new Error(`${describe(req)}\n  → ${problem}`)
    const res = outcome.response!
    if (res.status === 400 && !/^data\b/.test(String((JSON.parse(res.text) as { error: { message: string } }).error.message))) {
      throw new Error(`${describe(req)}\n  → a 400 for valid JSON must name data: ${res.text}`)
    }
  })
  report(t, 'deep nesting', await fc.check(property, checkParams(Math.ceil(RUNS / 4))), before)
})

t.test('GET /v1/presence/:userId: random, encoded, unicode and very long ids', async (t) => {
  // Up to the router's path-parameter bound (1024); longer ones are in the oversized-head case below.
  const longId = fc.oneof(fc.integer({ min: 250, max: 300 }), fc.integer({ min: 300, max: 1_024 })).map((n) => 'u'.repeat(n))
  const id = fc.oneof(
    { arbitrary: userIdArb, weight: 5 },
    { arbitrary: fc.string({ unit: 'binary', minLength: 100, maxLength: 400 }), weight: 1 },
    { arbitrary: longId, weight: 2 },
    { arbitrary: fc.constant(''), weight: 1 },
    { arbitrary: fc.constant(BYSTANDER), weight: 1 },
  )
  const encoding = fc.constantFrom(encodeURIComponent, encodeAll, (s: string) => encodeAll(s).toLowerCase())
  const query = fc.option(fc.webQueryParameters().map((q) => `?${q}`), { nil: '' })
  const arb = fc.record({ id, encoding, query, method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD') }).map(({ id, encoding, query, method }): HostileRequest => ({
    method,
    target: `/v1/presence/${encoding(wellFormed(id))}${query}`,
    authorization: KEY,
  }))
  await checkProperty(t, 'presence ids', arb)
})

t.test('random paths and methods: 404 not_found, or the route they name', async (t) => {
  const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD')
  const path = fc.oneof(
    fc.webPath().map((p) => p || '/'),
    fc.webPath().map((p) => `/v1${p || '/'}`),
    fc.webSegment().map((s) => `/v1/${s}`),
    fc.constantFrom('/', '/v1', '/v1/', '/v2/push', '/v1/push/', '/v1//push', '//v1/push', '/V1/push', '/v1/PUSH', '/v1/presence', '/v1/presence/', '/v1/presence/a/b', '/v1/nodes/x', '/v1/../v1/nodes', '/./v1/nodes', '/v1/nodes;x', '/v1/%2e%2e/nodes', '/v1%2Fnodes', '/metrics/x', '/healthz/', '*'),
    fc.stringMatching(/^\/[!-~]{0,60}$/).map((p) => p.replace(/[#?%\s]/g, '_')),
  )
  const query = fc.option(fc.webQueryParameters().map((q) => `?${q}`), { nil: '' })
  const body = fc.option(fc.oneof(validBodies.push.map((v) => utf8(JSON.stringify(v))), fc.string().map(utf8)), { nil: undefined })
  const arb = fc.record({ method, path, query, body, contentType: plainContentType }).map(({ method, path, query, body, contentType }): HostileRequest => ({
    method,
    target: `${path}${query}`,
    authorization: KEY,
    contentType,
    body: method === 'GET' || method === 'HEAD' ? undefined : body,
  }))
  await checkProperty(t, 'paths and methods', arb)
})

/** A canonical, valid request to each route. */
const canonical: fc.Arbitrary<HostileRequest> = fc.oneof(
  ...(Object.keys(validBodies) as BodyRoute[]).map((route) =>
    bodiesOf(route).filter((v) => isValidBody[route](v) && !hasPrototypeKeys(v)).map((v): HostileRequest => ({ method: 'POST', target: BODY_PATHS[route], contentType: 'application/json', body: utf8(JSON.stringify(v)) })),
  ),
  fc.constantFrom<HostileRequest>({ method: 'GET', target: '/v1/nodes' }, { method: 'GET', target: `/v1/presence/${BYSTANDER}` }, { method: 'GET', target: '/v1/presence/nobody' }),
)

t.test('random and malformed Authorization headers on every route: 401 unless exactly a key', async (t) => {
  const [key0, key1] = apiKeys
  const flip = (s: string, i: number) => s.slice(0, i % s.length) + (s[i % s.length] === 'a' ? 'b' : 'a') + s.slice((i % s.length) + 1)
  const authorization = fc.oneof(
    fc.constant(undefined),
    headerText(80),
    fc.constantFrom(
      '', 'Bearer', 'Bearer ', `bearer ${key0}`, `BEARER ${key0}`, `Basic ${key0}`, `Token ${key0}`, key0, `Bearer  ${key0}`, `Bearer\t${key0}`,
      `Bearer ${key0} `, ` Bearer ${key0}`, `Bearer ${key0},${key1}`, `Bearer ${key0} ${key1}`, `Bearer ${key0}${key1}`, `Bearer ${key0.toUpperCase()}`,
      `Bearer ${key0.slice(0, -1)}`, `Bearer ${key0}x`, `Bearer "${key0}"`, `Bearer ${Buffer.from(key0).toString('base64')}`, `Bearer ${key1}`, `Bearer ${'0'.repeat(key0.length)}`,
    ),
    fc.nat().map((i) => `Bearer ${flip(key0, i)}`),
    fc.tuple(fc.constantFrom(...apiKeys), headerText(3)).map(([k, junk]) => `Bearer ${k}${junk}`),
    fc.stringMatching(/^[A-Za-z0-9]{32}$/).map((k) => `Bearer ${k}`),
  )
  const arb = fc.record({ base: canonical, authorization }).map(({ base, authorization }) => ({ ...base, authorization }))
  await checkProperty(t, 'Authorization fuzz', arb)
})

t.test('other spellings of a /v1 path need the key too (percent-encoding, absolute-form)', async (t) => {
  const spelling = fc.oneof(
    // percent-encode some characters (never '/'), upper- or lower-case hex
    fc.tuple(fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), fc.boolean()).map(([which, isUpper]) => (path: string) =>
      [...path]
        .map((ch, i) => {
          if (ch === '/' || !which[i % which.length]) return ch
          const hex = ch.charCodeAt(0).toString(16).padStart(2, '0')
          return `%${isUpper ? hex.toUpperCase() : hex}`
        })
        .join(''),
    ),
    fc.constantFrom(
      (p: string) => `http://127.0.0.1:${router.port}${p}`,
      (p: string) => `http://evil.example${p}`,
      (p: string) => `https://user:pass@evil.example:1${p}`,
      (p: string) => `${p}?token=x`,
      (p: string) => p.replace('/v1/', '/%76%31/'),
    ),
  )
  const arb = fc
    .record({ base: canonical, spelling, isAuthed: fc.boolean() })
    .map(({ base, spelling, isAuthed }): HostileRequest => ({ ...base, target: spelling(base.target as string), authorization: isAuthed ? KEY : undefined }))
  await checkProperty(t, 'path spellings', arb)
})

// Malformed HTTP: the parser refuses these before any route. The answer must still be a
// JSON error with a stable code (not the framework's own error shape, no 414/431/505).
const malformedCases: Record<string, fc.Arbitrary<HostileRequest>> = {
  'invalid percent-encoding in the path': fc
    .record({
      prefix: fc.constantFrom('/v1/presence/', '/v1/', '/', '/v1/push/', '/healthz/'),
      bad: fc.constantFrom('%', '%Z', '%ZZ', '%G0', '%0', '%C3%28', '%FF', '%ED%A0%80', '%C0%AF', '%E2%82', '%F8%88%80%80%80', '%%', 'a%', '%u0041'),
      suffix: fc.string({ unit: fc.constantFrom('a', 'b', '1', '-'), maxLength: 5 }),
      method: fc.constantFrom('GET', 'POST'),
    })
    .map(({ prefix, bad, suffix, method }): HostileRequest => ({ method, target: `${prefix}${suffix}${bad}${suffix}`, authorization: KEY, ...(method === 'POST' ? { body: utf8('{}') } : {}) })),
  'an oversized request head (long path, query or header)': fc
    .record({ size: fc.integer({ min: 1_025, max: 40_000 }), where: fc.constantFrom('id', 'query', 'header', 'path') })
    .map(({ size, where }): HostileRequest => {
      const filler = 'a'.repeat(size)
      if (where === 'id') return { method: 'GET', target: `/v1/presence/${filler}`, authorization: KEY }
      if (where === 'query') return { method: 'GET', target: `/v1/nodes?x=${filler}`, authorization: KEY }
      if (where === 'path') return { method: 'GET', target: `/v1/${filler}`, authorization: KEY }
      return { method: 'GET', target: '/v1/nodes', authorization: KEY, extraHeaders: [['X-Filler', filler]] }
    }),
  'broken request lines, header bytes and framing': fc.oneof(
    fc.record({ method: fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/).filter((m) => !['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'].includes(m)) }).map(({ method }): HostileRequest => ({ method, target: '/v1/nodes', authorization: KEY })),
    fc.uint8Array({ minLength: 1, maxLength: 40 }).map((bytes): HostileRequest => ({ method: 'GET', target: Buffer.concat([Buffer.from('/v1/presence/'), Buffer.from(bytes).map((b) => (b === 0x20 || b === 0x0a || b === 0x0d ? 0x41 : b))]), authorization: KEY })),
    fc.record({ at: fc.nat(), ctl: fc.constantFrom(0x00, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x0e, 0x1b, 0x1f, 0x7f) }).map(({ at, ctl }): HostileRequest => {
      const value = Buffer.from(KEY, 'latin1')
      const i = at % value.length
      return { method: 'GET', target: '/v1/nodes', extraHeaders: [['Authorization', Buffer.concat([value.subarray(0, i), Buffer.from([ctl]), value.subarray(i)])]] }
    }),
    fc.constantFrom<[string, string]>(['X Bad', 'v'], ['X(Bad)', 'v'], ['', 'v'], [':authority', 'x'], ['X-Bad\u00e9', 'v']).map(([name, value]): HostileRequest => ({ method: 'GET', target: '/v1/nodes', authorization: KEY, extraHeaders: [[name, value]] })),
    fc.constantFrom<HostileRequest>(
      { method: 'POST', target: '/v1/push', authorization: KEY, body: utf8('{"to":["a"],"event":"e"}'), extraHeaders: [['Content-Length', '24'], ['Content-Length', '25']] },
      { method: 'POST', target: '/v1/push', authorization: KEY, body: utf8('{}'), extraHeaders: [['Content-Length', '-1']] },
      { method: 'POST', target: '/v1/push', authorization: KEY, body: utf8('{}'), extraHeaders: [['Content-Length', '0x2']] },
      { method: 'POST', target: '/v1/push', authorization: KEY, body: utf8('zz\r\n{}\r\n0\r\n\r\n'), extraHeaders: [['Transfer-Encoding', 'chunked']] },
      { method: 'POST', target: '/v1/push', authorization: KEY, body: utf8('2\r\n{}\r\n0\r\n\r\n'), extraHeaders: [['Transfer-Encoding', 'chunked'], ['Content-Length', '2']] },
      { method: 'POST', target: '/v1/push', authorization: KEY, body: utf8('{}'), extraHeaders: [['Transfer-Encoding', 'gzip']] },
      { method: 'GET', target: '/v1/nodes', authorization: KEY, extraHeaders: [['Host', 'a'], ['Host', 'b']] },
      { method: 'GET', target: '/v1/nodes', isRawFraming: true, extraHeaders: [['Authorization', KEY], ['Connection', 'close']] },
      { method: 'GET', target: '/v1/nodes HTTP/1.1 extra', authorization: KEY },
      { method: 'GET', target: 'v1/nodes', authorization: KEY },
      { method: 'CONNECT', target: '/v1/nodes', authorization: KEY },
      { method: 'CONNECT', target: '127.0.0.1:1', authorization: KEY },
    ),
  ),
}
for (const [name, arb] of Object.entries(malformedCases)) {
  t.test(`malformed HTTP: ${name} gets a JSON error with a stable code, or the parser refuses it`, async (t) => {
    await checkProperty(t, `malformed: ${name}`, arb, { numRuns: Math.ceil(RUNS / 2), isModelled: false })
  })
}

t.test('after the fuzzing: the router is up and the bystander still gets pushes', async (t) => {
  t.equal(router.isRunning(), true, 'the router process is still running')
  t.equal((await api(router.url).get('/healthz')).status, 200, 'healthz')
  t.equal((await api(router.url).get('/readyz')).status, 200, 'readyz')
  const nodes = await cluster.api.get('/v1/nodes')
  t.match(nodes.body, { nodes: [{ nodeId: edge.nodeId, draining: false }] }, 'the edge is listed')
  const presence = await cluster.api.get(`/v1/presence/${BYSTANDER}`)
  t.match(presence.body, { userId: BYSTANDER, online: true, connections: [{ connId: bystander.welcome.connId }] }, 'the bystander keeps its connection')
  t.equal(presence.body.connections.length, 1)

  const res = await cluster.api.post('/v1/push', { to: [BYSTANDER, 'after-offline'], event: 'after', data: { ok: true }, id: 'after-1' })
  t.equal(res.status, 200)
  t.same(res.body, { id: 'after-1', delivered: [BYSTANDER], offline: ['after-offline'], failed: [] })
  // Valid broadcasts from the fuzzing reached the bystander too: skip those.
  const others: string[] = []
  for (;;) {
    const frame = await bystander.client.nextFrame()
    if (frame.id === 'after-1') {
      t.match(frame, { type: 'push', event: 'after', data: { ok: true } })
      break
    }
    others.push(frame.type)
  }
  t.ok(others.every((type) => type === 'push'), `before it, only (${others.length}) broadcast pushes arrived`)
  t.same(await bystander.client.ping(), { type: 'pong' }, 'the bystander answers pings')
  t.comment(`hostile-api: ${casesRun} requests in total`)
})

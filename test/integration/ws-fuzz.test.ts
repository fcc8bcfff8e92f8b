// Websocket fuzz against a real edge (with Redis and a router to read presence): random
// text and binary frames, oversized frames, ping floods, sockets that never read, abrupt
// TCP resets, raw TCP garbage and broken upgrades, and invalid tokens in many forms, while
// three bystanders stay connected. Every fuzzed socket must end closed with a documented
// code (1008, 1009, 4008, 4009; 1006 for resets, cut-offs and raw garbage) or be refused with a
// 4xx; the edge stays up; the bystanders keep their sessions, get pushes and answer pings;
// and presence ends with exactly the bystanders online.
import { createHmac, randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { api, connectClient, connectUser, eventually, expectRefusal, mintToken, withToken, type Client, type CloseInfo, type ConnectedUser } from '../helpers/clients.js'
import { startCluster, testSecrets } from '../helpers/processes.js'
import { parseResponse } from '../helpers/raw-http.js'

const MAX_FRAME_BYTES = 1_024
/** README: past max(64 KiB, 4 × the limit) a socket is cut off without a close frame (1006). */
const HARD_CEILING_BYTES = Math.max(64 << 10, 4 * MAX_FRAME_BYTES)
const MAX_FRAMES_PER_S = 20
const IDLE_TIMEOUT_S = 8 // the smallest the edge accepts: sockets that never read are reaped within the file's run
const cluster = await startCluster(t, {
  edges: 0,
  edgeEnv: {
    EDGE_MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
    EDGE_MAX_BACKPRESSURE_BYTES: String(64 * 1024),
    EDGE_MAX_FRAMES_PER_S: String(MAX_FRAMES_PER_S),
    EDGE_IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S),
  },
})
const edge = await cluster.addEdge(t, { nodeId: `fuzz-edge-${randomBytes(3).toString('hex')}` })
const { jwtSecret } = testSecrets()
/** Cases per property (scaled per kind); about 30 s on two shared cores. */
const RUNS = Number(process.env.WS_FUZZ_RUNS ?? 200)

/** Connected for the whole file; fuzzed sockets sometimes sign in as them too (a misbehaving second device). */
const BYSTANDERS = ['a', 'b', 'c'].map((n) => `bystander-${n}-${randomBytes(4).toString('hex')}`)
const bystanders = new Map<string, ConnectedUser>()
for (const id of BYSTANDERS) bystanders.set(id, await connectUser(t, edge.wsUrl, jwtSecret, id))

/** Every user id a fuzzed socket was accepted as: all must be offline at the end. */
const fuzzUsers = new Set<string>()
let fuzzSeq = 0
const freshUser = () => `fuzz-${(fuzzSeq++).toString(36)}-${randomBytes(3).toString('hex')}`
/** Fuzz cases run, by kind, and how the fuzzed sockets ended, for the summary. */
const cases = new Map<string, number>()
const endings = new Map<string, number>()
const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)

/** A fresh user id, or (1 in 4) a bystander's: their other device must not disturb them. */
const userArb = fc.oneof({ arbitrary: fc.constant<string | undefined>(undefined), weight: 3 }, { arbitrary: fc.constantFrom<string | undefined>(...BYSTANDERS), weight: 1 })

async function openAs(t: Test, maybeUser: string | undefined): Promise<Client> {
  const userId = maybeUser ?? freshUser()
  if (!BYSTANDERS.includes(userId)) fuzzUsers.add(userId)
  return (await connectUser(t, edge.wsUrl, jwtSecret, userId)).client
}

/** Resolves with the close the client saw, or rejects if the socket is still open after `timeoutMs`. */
function closeOf(client: Client, timeoutMs = 5_000): Promise<CloseInfo> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs)
    void client.closed.then((info) => {
      clearTimeout(timer)
      count(endings, String(info.code))
      resolve(info)
    })
  })
}

const underlying = (client: Client) => (client.ws as unknown as { _socket: Socket })._socket

/** Runs a property with a time budget (shrinking included) and reports it. */
async function check<T>(t: Test, kind: string, arb: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, numRuns = RUNS) {
  const property = fc.asyncProperty(arb, async (value) => {
    count(cases, kind)
    await predicate(value)
  })
  const details = await fc.check(property, { numRuns, includeErrorInReport: true, interruptAfterTimeLimit: 15_000, markInterruptAsFailure: false })
  if (details.failed) t.fail(`${kind}\n${fc.defaultReportMessage(details)}`)
  else t.pass(`${kind}: ${details.numRuns} cases${details.interrupted ? ' (time budget reached)' : ''}`)
}

// ---------------------------------------------------------------------------------------------
// The protocol's answer to one client message (README "Websocket protocol").

type Verdict = { pong: true } | { code: number }

/** Exactly {"type":"ping"}; JSON.parse keeps the last of duplicate keys, as the edge does. */
function isPing(text: string): boolean {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return false
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && (value as { type?: unknown }).type === 'ping'
}

function verdictFor(message: Buffer, isBinary: boolean): Verdict {
  if (message.length > HARD_CEILING_BYTES) return { code: 1006 }
  if (message.length > MAX_FRAME_BYTES) return { code: 1009 }
  if (isBinary) return { code: 1008 }
  return isPing(message.toString('utf8')) ? { pong: true } : { code: 1008 }
}

/** Sends one message (maybe in fragments) and holds the socket to the verdict; closes it if it stays open. */
async function sendAndJudge(client: Client, message: Buffer, isBinary: boolean, fragments: number): Promise<string | undefined> {
  const expected = verdictFor(message, isBinary)
  const size = Math.ceil(message.length / fragments) || 1
  for (let at = 0; at < message.length || at === 0; at += size) {
    const isLast = at + size >= message.length
    client.ws.send(message.subarray(at, at + size), { binary: isBinary, fin: isLast })
    if (isLast) break
  }
  if ('pong' in expected) {
    const frame = await client.nextFrame().catch((err: Error) => ({ type: `<${err.message}>` }))
    if (frame.type !== 'pong') return `expected a pong, got ${JSON.stringify(frame)}`
    if (client.isClosed()) return 'closed after a valid ping'
    const info = await client.close()
    count(endings, `${info.code} (closed by the test)`)
    return undefined
  }
  const info = await closeOf(client).catch((err: Error) => ({ code: -1, reason: err.message }))
  return info.code === expected.code ? undefined : `expected close ${expected.code}, got ${info.code} ${info.reason}`
}

/** What a server sees of a string: lone surrogates cannot survive UTF-8. */
const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8')

const show = (b: Buffer) => JSON.stringify(b.length > 120 ? `${b.subarray(0, 120).toString('utf8')}… (${b.length} bytes)` : b.toString('utf8'))

// ---------------------------------------------------------------------------------------------
// Generators.

const PING = '{"type":"ping"}'
const paddedPing = (bytes: number) => PING.slice(0, -1) + ' '.repeat(Math.max(0, bytes - PING.length)) + '}'

/** Text that is almost, or exactly, a ping; JSON of every kind; unicode; sizes around both limits. */
const textMessage: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    PING, ' {"type":"ping"} ', '{"type" : "ping"}\n', '{"type":"ping","type":"ping"}', '{"type":"\\u0070ing"}', '{"type":"PING"}', '{"type":"ping "}',
    '{"type":"ping\\u0000"}', '{"type":"ping","id":1}', '{"type":["ping"]}', '{"type":{"ping":1}}', '{"Type":"ping"}', '{"type":null}', '{"type":"pong"}',
    '{"type":"welcome","connId":"x","nodeId":"y"}', '{"type":"push","id":"1","event":"e","data":1,"ts":1}', '{"type":"subscribe","channel":"*"}', '{"type":"ping"}{"type":"ping"}',
    '{"type":"ping"} x', '\uFEFF{"type":"ping"}', '[{"type":"ping"}]', '"ping"', 'ping', 'null', '{}', '', ' ', '{"type":"ping"', '{"__proto__":{"type":"ping"}}',
    '{"constructor":{"prototype":{"type":"ping"}}}', '{"type":"ping","__proto__":null}',
  ),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.json({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify({ type: 'ping', extra: v })),
  fc.integer({ min: MAX_FRAME_BYTES - 3, max: MAX_FRAME_BYTES + 3 }).map(paddedPing),
  fc.integer({ min: 1, max: 300 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.oneof(fc.integer({ min: MAX_FRAME_BYTES + 1, max: 8_000 }), fc.integer({ min: HARD_CEILING_BYTES - 2, max: HARD_CEILING_BYTES + 2 }), fc.integer({ min: HARD_CEILING_BYTES, max: 200_000 })).map((n) => 'x'.repeat(n)),
)

const binaryMessage: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  fc.constantFrom(Buffer.from(PING), Buffer.alloc(0), Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from('\uFEFF' + PING)),
  fc.integer({ min: 0, max: 2_000 }).map((n) => randomBytes(n)),
  fc.oneof(fc.integer({ min: MAX_FRAME_BYTES - 1, max: MAX_FRAME_BYTES + 1 }), fc.integer({ min: HARD_CEILING_BYTES - 1, max: HARD_CEILING_BYTES + 1 }), fc.integer({ min: HARD_CEILING_BYTES, max: 150_000 })).map((n) => Buffer.alloc(n, 0x41)),
)

/** HS256 over arbitrary header and payload segments, independent of the library under test. */
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url')
function signHs256(header: string, payload: string, secret = jwtSecret): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

interface TokenCase {
  label: string
  token: string | undefined
  /** The user id it must be accepted as; undefined means it must be refused. */
  acceptedAs?: string
  /** As `bearer.<token>` next to `switchboard.v1` instead of the query. */
  isSubprotocol: boolean
}

const nowS = () => Math.floor(Date.now() / 1000)
const isUserId = (v: unknown): v is string => typeof v === 'string' && [...v].length >= 1 && [...v].length <= 256 && !/[\u0000-\u001f\u007f]/.test(v)

/** TOKEN_MAX_LIFETIME_S's default: the edges here run with it. */
const MAX_LIFETIME_S = 86_400

/** Claims around every rule: sub (type, length, control characters), exp, nbf. Times are far from any boundary. */
const claimsArb = fc.record(
  {
    sub: fc.oneof(
      fc.string({ minLength: 1, maxLength: 20 }).map((s) => `tok-${s}`),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
      fc.constantFrom<unknown>('', 'u'.repeat(256), 'u'.repeat(257), '\u0000', 'a\nb', '\u007f', 7, null, true, ['a'], { id: 'a' }, '__proto__'),
    ),
    exp: fc.oneof(fc.constant('future'), fc.constant('future'), fc.constantFrom<unknown>('past', 'string', null, 1e308, 'missing')),
    nbf: fc.constantFrom<unknown>('missing', 'missing', 'past', 'future', 'string'),
    extra: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  },
  { requiredKeys: ['sub', 'exp', 'nbf'] },
)

function claimsOf(c: { sub: unknown; exp: unknown; nbf: unknown; extra?: Record<string, unknown> }): { payload: Record<string, unknown>; isValid: boolean } {
  const time = (v: unknown) => (v === 'future' ? nowS() + 3_600 : v === 'past' ? nowS() - 3_600 : v === 'string' ? String(nowS() + 3_600) : v)
  const payload: Record<string, unknown> = { ...c.extra, sub: c.sub }
  delete payload.exp
  delete payload.nbf
  delete payload.iat // no iat: the lifetime counts from now
  if (c.exp !== 'missing') payload.exp = time(c.exp)
  if (c.nbf !== 'missing') payload.nbf = time(c.nbf)
  const isValid =
    isUserId(payload.sub) &&
    typeof payload.exp === 'number' &&
    payload.exp > nowS() &&
    payload.exp - nowS() <= MAX_LIFETIME_S && // 1e308: valid for ever, refused
    (payload.nbf === undefined || (typeof payload.nbf === 'number' && payload.nbf <= nowS()))
  return { payload, isValid }
}

const tokenArb: fc.Arbitrary<Omit<TokenCase, 'isSubprotocol'>> = fc.oneof(
  // properly signed, claims fuzzed
  claimsArb.map((c) => {
    const { payload, isValid } = claimsOf(c)
    const token = signHs256(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), JSON.stringify(payload))
    return { label: `signed ${JSON.stringify(payload).slice(0, 120)}`, token, ...(isValid ? { acceptedAs: payload.sub as string } : {}) }
  }),
  // valid claims, but the wrong key, algorithm or signature spelling
  fc.constantFrom('wrong secret', 'alg none', 'alg HS512', 'alg RS256', 'no alg', 'header not JSON', 'header an array', 'payload not JSON', 'payload an array', 'signature base64', 'signature empty', 'signature flipped', 'four parts', 'two parts', 'trailing dot', 'spaces').map((kind) => {
    const payload = JSON.stringify({ sub: `bad-${kind}`, exp: nowS() + 3_600 })
    const good = signHs256('{"alg":"HS256"}', payload)
    const [h, p, s] = good.split('.') as [string, string, string]
    const tokens: Record<string, string> = {
      'wrong secret': signHs256('{"alg":"HS256"}', payload, 'x'.repeat(64)),
      'alg none': `${b64('{"alg":"none"}')}.${p}.`,
      'alg HS512': signHs256('{"alg":"HS512"}', payload),
      'alg RS256': signHs256('{"alg":"RS256"}', payload),
      'no alg': signHs256('{"typ":"JWT"}', payload),
      'header not JSON': signHs256('alg=HS256', payload),
      'header an array': signHs256('["HS256"]', payload),
      'payload not JSON': signHs256('{"alg":"HS256"}', 'sub=x'),
      'payload an array': signHs256('{"alg":"HS256"}', '[{"sub":"x"}]'),
      'signature base64': `${h}.${p}.${Buffer.from(s, 'base64url').toString('base64')}`,
      'signature empty': `${h}.${p}.`,
      'signature flipped': `${h}.${p}.${s.slice(0, -2)}${s.at(-2) === 'A' ? 'B' : 'A'}${s.at(-1)}`,
      'four parts': `${good}.${s}`,
      'two parts': `${h}.${p}`,
      'trailing dot': `${good}.`,
      spaces: ` ${good} `,
    }
    return { label: kind, token: tokens[kind] }
  }),
  // not a JWT at all
  fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', '.', '..', 'a.b.c', 'null', 'undefined', '%', '%00', '&token=', 'Bearer x')).map((s) => ({ label: 'not a JWT', token: s })),
  fc.tuple(fc.base64String({ maxLength: 40 }), fc.base64String({ maxLength: 40 }), fc.base64String({ maxLength: 40 })).map(([a, b, c]) => ({ label: 'three base64 segments', token: `${a}.${b}.${c}` })),
  fc.integer({ min: 3_000, max: 20_000 }).map((n) => ({ label: `a ${n}-char token`, token: 'x'.repeat(n) })),
  fc.constant({ label: 'no token', token: undefined }),
)

/** Tokens a subprotocol can carry (RFC 7230 token characters). */
const isProtocolSafe = (s: string) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(s)

// ---------------------------------------------------------------------------------------------
// Raw TCP.

interface RawConnection {
  socket: Socket
  received(): Buffer
  isEnded(): boolean
  /** Resolves when the edge ended the connection, or after `ms` (false). */
  endedWithin(ms: number): Promise<boolean>
}

/** Waits `ms` for an answer; one that has begun gets up to 3 s more to complete (or the edge to close). */
async function settle(conn: RawConnection, ms: number): Promise<void> {
  if (await conn.endedWithin(ms)) return
  if (conn.received().length === 0) return
  await eventually(() => conn.isEnded() || httpAnswer(conn.received()) !== undefined, { timeoutMs: 3_000, intervalMs: 20 }).catch(() => undefined)
}

function rawConnect(): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: edge.port })
    let data = Buffer.alloc(0)
    let isEnded = false
    const ended = new Promise<void>((done) => {
      socket.on('close', () => {
        isEnded = true
        done()
      })
    })
    socket.on('data', (chunk) => (data = Buffer.concat([data, chunk])))
    socket.on('error', () => undefined) // a reset by the edge shows as the close
    socket.once('connect', () =>
      resolve({
        socket,
        received: () => data,
        isEnded: () => isEnded,
        endedWithin: (ms) => Promise.race([ended.then(() => true), delay(ms).then(() => isEnded)]),
      }),
    )
    socket.once('error', reject)
  })
}

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
function upgradeRequest(token: string, key: string | undefined = WS_KEY, extra = ''): string {
  return `GET /v1/ws?token=${encodeURIComponent(token)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n${key === undefined ? '' : `Sec-WebSocket-Key: ${key}\r\n`}${extra}\r\n`
}

/** A client frame, masked as RFC 6455 requires (mask bit and key can be overridden to break it). */
function clientFrame(opcode: number, payload: Buffer, { fin = true, rsv = 0, isMasked = true } = {}): Buffer {
  const head = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
  const maskBit = isMasked ? 0x80 : 0
  if (payload.length < 126) head.push(maskBit | payload.length)
  else if (payload.length < 65_536) head.push(maskBit | 126, payload.length >> 8, payload.length & 0xff)
  else head.push(maskBit | 127, 0, 0, 0, 0, (payload.length >>> 24) & 0xff, (payload.length >> 16) & 0xff, (payload.length >> 8) & 0xff, payload.length & 0xff)
  if (!isMasked) return Buffer.concat([Buffer.from(head), payload])
  const mask = randomBytes(4)
  return Buffer.concat([Buffer.from(head), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))])
}

/** Close frames the edge sent on an upgraded raw connection: their codes (undefined for an empty close). */
function serverCloseCodes(bytes: Buffer): (number | undefined)[] {
  const codes: (number | undefined)[] = []
  let at = 0
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f
    let length = bytes[at + 1]! & 0x7f
    let start = at + 2
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2)
      start += 2
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2))
      start += 8
    }
    if (start + length > bytes.length) break
    if (opcode === 0x8) codes.push(length >= 2 ? bytes.readUInt16BE(start) : undefined)
    at = start + length
  }
  return codes
}

/** The HTTP answer a raw request got, if any; a 101 is an upgrade. */
const httpAnswer = (bytes: Buffer) => {
  try {
    return parseResponse(bytes, false, true)
  } catch {
    return { status: -1, headers: {}, body: bytes, text: bytes.toString('latin1') }
  }
}

/** `METHOD /origin-form-target HTTP/1.1`, ended by CRLF: a request line the edge's own code answers. */
const ORIGIN_FORM_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \/[!-~]* HTTP\/1\.1$/

/**
 * How the edge may answer bytes that are not a valid upgrade: nothing yet (it waits for the
 * rest), or a 4xx. uWS's HTTP parser answers every request line it cannot parse (another
 * version, bare LF, a target not starting with "/", CONNECT host:port) with its own
 * `505 HTTP Version Not Supported` page and closes; app code cannot change that, so it is
 * allowed for such lines only. An origin-form HTTP/1.1 request line must get a 4xx.
 */
function judgeRefusal(sent: Buffer, received: Buffer): string | undefined {
  if (received.length === 0) return undefined
  const answer = httpAnswer(received)
  if (!answer) return `an incomplete answer: ${JSON.stringify(received.toString('latin1').slice(0, 200))}`
  if (answer.status >= 400 && answer.status < 500) return undefined
  const text = sent.toString('latin1')
  // An unfinished request line is not origin-form either: uWS refuses some before their CRLF.
  const requestLine = text.includes('\r\n') ? text.slice(0, text.indexOf('\r\n')) : undefined
  const isParserRefusal = answer.status === 505 && answer.headers.connection === 'close' && !(requestLine !== undefined && ORIGIN_FORM_LINE.test(requestLine))
  if (isParserRefusal) return undefined
  return `answered ${answer.status}: ${JSON.stringify(received.toString('latin1').slice(0, 200))}`
}

// ---------------------------------------------------------------------------------------------
// Sockets that never read: opened first, so the edge's idle timeout reaps them by the end.

const idleSockets: Client[] = []
const idleUsers = Array.from({ length: 3 }, () => freshUser())
for (const userId of idleUsers) {
  fuzzUsers.add(userId)
  const client = await connectClient(edge.wsUrl, await mintToken(jwtSecret, userId), { t })
  underlying(client).pause() // never reads: not the welcome, not the edge's pings
  idleSockets.push(client)
  count(cases, 'half-open: never reads')
}

// ---------------------------------------------------------------------------------------------
// Properties.

t.test('random text frames: a ping gets a pong, anything else 1008, too big 1009, past the ceiling 1006', async (t) => {
  const arb = fc.record({ user: userArb, text: textMessage, fragments: fc.oneof({ arbitrary: fc.constant(1), weight: 4 }, { arbitrary: fc.integer({ min: 2, max: 5 }), weight: 1 }) })
  await check(t, 'text frames', arb, async ({ user, text, fragments }) => {
    const client = await openAs(t, user)
    const message = Buffer.from(text, 'utf8')
    const problem = await sendAndJudge(client, message, false, message.length <= 4 * MAX_FRAME_BYTES ? fragments : 1)
    if (problem) throw new Error(`text ${show(message)} in ${fragments} fragment(s): ${problem}`)
  })
})

t.test('random binary frames (invalid UTF-8 included): 1008, too big 1009, past the ceiling 1006', async (t) => {
  await check(t, 'binary frames', fc.record({ user: userArb, bytes: binaryMessage }), async ({ user, bytes }) => {
    const client = await openAs(t, user)
    const problem = await sendAndJudge(client, bytes, true, 1)
    if (problem) throw new Error(`binary ${bytes.length} bytes ${bytes.subarray(0, 16).toString('hex')}: ${problem}`)
  }, Math.ceil(RUNS * 0.6))
})

t.test('ping floods: every JSON ping answered up to the rate limit, then 4009; protocol pings always answered', async (t) => {
  await check(t, 'JSON ping floods', fc.record({ user: userArb, n: fc.integer({ min: 1, max: 3 * MAX_FRAMES_PER_S }) }), async ({ user, n }) => {
    const client = await openAs(t, user)
    for (let i = 0; i < n; i++) client.send(PING)
    let pongs = 0
    while (pongs < n) {
      const frame = await client.nextFrame().catch(() => undefined)
      if (!frame) break
      if (frame.type !== 'pong') throw new Error(`flood of ${n}: got ${JSON.stringify(frame)}`)
      pongs++
    }
    if (pongs === n && n <= 2 * MAX_FRAMES_PER_S) {
      // Within the limit (or spread over two windows by a slow machine): still open.
      if (n <= MAX_FRAMES_PER_S && client.isClosed()) throw new Error(`flood of ${n} (within the limit) closed the socket`)
      count(endings, `${(await client.close()).code} (closed by the test)`)
      return
    }
    const info = await closeOf(client).catch((err: Error) => ({ code: -1, reason: err.message }))
    if (info.code !== 4009) throw new Error(`flood of ${n}: ${pongs} pongs, then close ${info.code} ${info.reason} (expected 4009)`)
    if (pongs > MAX_FRAMES_PER_S * 2) throw new Error(`flood of ${n}: ${pongs} pongs before 4009`)
  }, Math.ceil(RUNS / 3))

  await check(t, 'protocol ping floods', fc.record({ user: userArb, n: fc.integer({ min: 1, max: 3_000 }), payload: fc.uint8Array({ maxLength: 125 }) }), async ({ user, n, payload }) => {
    const client = await openAs(t, user)
    let pongs = 0
    client.ws.on('pong', () => pongs++)
    for (let i = 0; i < n; i++) client.ws.ping(Buffer.from(payload))
    await eventually(() => pongs === n, { timeoutMs: 5_000 }).catch(() => {
      throw new Error(`${n} protocol pings of ${payload.length} bytes: ${pongs} pongs`)
    })
    const pong = await client.ping().catch((err: Error) => ({ type: `<${err.message}>` }))
    if (pong.type !== 'pong') throw new Error(`after ${n} protocol pings, a JSON ping got ${JSON.stringify(pong)}`)
    count(endings, `${(await client.close()).code} (closed by the test)`)
  }, Math.ceil(RUNS / 8))
})

t.test('invalid tokens in many forms are refused with 401 (4xx when oversized); valid ones are welcomed', async (t) => {
  const arb = fc.record({ tok: tokenArb, viaProtocol: fc.boolean() }).map(({ tok, viaProtocol }): TokenCase => ({ ...tok, isSubprotocol: viaProtocol && tok.token !== undefined && tok.token !== '' && isProtocolSafe(tok.token) }))
  await check(t, 'tokens', arb, async (c) => {
    const url = c.isSubprotocol || c.token === undefined ? edge.wsUrl : `${edge.wsUrl}?token=${encodeURIComponent(wellFormed(c.token))}`
    const protocols = c.isSubprotocol ? ['switchboard.v1', `bearer.${c.token}`] : []
    const headers: Record<string, string> = c.isSubprotocol ? { 'Sec-WebSocket-Protocol': protocols.join(', ') } : {}
    if (c.acceptedAs !== undefined) {
      if (!BYSTANDERS.includes(c.acceptedAs)) fuzzUsers.add(c.acceptedAs)
      const client = await connectClient(url, undefined, { t, protocols }).catch((err: Error) => {
        throw new Error(`${c.label}: a valid token was refused (${err.message})`)
      })
      const welcome = await client.nextFrame().catch((err: Error) => ({ type: `<${err.message}>` }))
      if (welcome.type !== 'welcome') throw new Error(`${c.label}: expected a welcome, got ${JSON.stringify(welcome)}`)
      if (c.isSubprotocol && client.ws.protocol !== 'switchboard.v1') throw new Error(`${c.label}: selected subprotocol ${JSON.stringify(client.ws.protocol)}`)
      const presence = await cluster.api.get(`/v1/presence/${encodeURIComponent(wellFormed(c.acceptedAs))}`)
      if (presence.body?.online !== true) throw new Error(`${c.label}: accepted, but ${JSON.stringify(c.acceptedAs)} is not online: ${presence.text}`)
      count(endings, `${(await client.close()).code} (closed by the test)`)
      return
    }
    const status = await expectRefusal(url, headers).catch((err: Error) => {
      throw new Error(`${c.label} (${JSON.stringify(c.token?.slice(0, 80))}): not refused with an HTTP status (${err.message})`)
    })
    count(endings, `HTTP ${status}`)
    const isOversized = url.length + (headers['Sec-WebSocket-Protocol']?.length ?? 0) > 3_000
    if (isOversized ? status < 400 || status >= 500 : status !== 401) {
      throw new Error(`${c.label} (${JSON.stringify(c.token?.slice(0, 80))}): refused with ${status}, expected ${isOversized ? '4xx' : 401}`)
    }
  }, Math.ceil(RUNS * 1.5))
})

t.test('raw TCP garbage, partial and broken upgrades, headers that never finish: refused or cut, never upgraded', async (t) => {
  const kinds = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 1_500 }).map((a) => ({ kind: 'random bytes', bytes: Buffer.from(a), isValid: false })),
    fc.nat().map((cut) => {
      const request = Buffer.from(upgradeRequest('t'.repeat(40)))
      return { kind: 'partial upgrade', bytes: request.subarray(0, cut % request.length), isValid: false }
    }),
    fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }).map((key) => ({ kind: 'bad Sec-WebSocket-Key', bytes: Buffer.from(upgradeRequest('x', key)), isValid: false })),
    fc.constantFrom('', 'short', 'AAAAAAAAAAAAAAAAAAAAAA', '!!!!!!!!!!!!!!!!!!!!!!==', ' '.repeat(24), `${WS_KEY}${WS_KEY}`).map((key) => ({ kind: 'bad Sec-WebSocket-Key', bytes: Buffer.from(upgradeRequest('x', key)), isValid: false })),
    fc.array(fc.stringMatching(/^[A-Za-z-]{1,12}: [ -~]{0,40}$/), { maxLength: 6 }).map((headers) => ({
      kind: 'headers that never finish',
      bytes: Buffer.from(`GET /v1/ws?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n${headers.join('\r\n')}`),
      isValid: false,
    })),
    fc.constantFrom(
      'GET /v1/ws?token=x HTTP/1.0\r\n\r\n', 'GET /v1/ws?token=x\r\n\r\n', 'get /v1/ws?token=x HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /v1/ws?token=x HTTP/1.1\nHost: x\n\n',
      'GET /v1/ws?token=x HTTP/1.1\r\nHost: x\u0001\r\n\r\n', 'GET /v1/ws?token=x HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      'CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n', `GET /v1/ws?token=x HTTP/1.1\r\n${'X-A: b\r\n'.repeat(200)}\r\n`, `GET /v1/ws?token=${'x'.repeat(20_000)} HTTP/1.1\r\n\r\n`,
      'POST /v1/ws HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
    ).map((s) => ({ kind: 'malformed HTTP', bytes: Buffer.from(s, 'latin1'), isValid: false })),
  )
  await check(t, 'raw TCP', kinds, async ({ kind, bytes }) => {
    const conn = await rawConnect()
    conn.socket.write(bytes)
    await settle(conn, 50)
    const problem = judgeRefusal(bytes, conn.received())
    conn.socket.destroy()
    count(endings, 'raw: closed')
    if (problem) throw new Error(`${kind} ${JSON.stringify(bytes.toString('latin1').slice(0, 160))}: ${problem}`)
  }, RUNS)
})

t.test('broken frames on an upgraded raw connection: the edge cuts the socket, and only that one', async (t) => {
  const must = fc.constantFrom<[string, () => Buffer]>(
    ['reserved opcode 3', () => clientFrame(0x3, Buffer.from('hi'))],
    ['reserved opcode 0xB', () => clientFrame(0xb, Buffer.from('hi'))],
    ['RSV bits set', () => clientFrame(0x1, Buffer.from(PING), { rsv: 0x7 })],
    ['continuation without a start', () => clientFrame(0x0, Buffer.from(PING))],
    ['fragmented ping control frame', () => clientFrame(0x9, Buffer.from('x'), { fin: false })],
    ['control frame over 125 bytes', () => clientFrame(0x9, Buffer.alloc(200, 0x61))],
    ['64-bit length past the ceiling', () => Buffer.concat([Buffer.from([0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]), randomBytes(4)])],
    ['invalid UTF-8 in a text frame', () => clientFrame(0x1, Buffer.from([0xc3, 0x28]))],
    ['close with a 1-byte payload', () => clientFrame(0x8, Buffer.from([0x03]))],
    ['close with code 999', () => clientFrame(0x8, Buffer.from([0x03, 0xe7]))],
    ['a new text frame inside a fragmented one', () => Buffer.concat([clientFrame(0x1, Buffer.from('{"type"'), { fin: false }), clientFrame(0x1, Buffer.from(':"ping"}'))])],
  )
  const random = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a): [string, () => Buffer] => ['random bytes', () => Buffer.from(a)])
  await check(t, 'raw frames', fc.record({ frame: fc.oneof(must, random), user: userArb }), async ({ frame: [label, make], user }) => {
    const userId = user ?? freshUser()
    if (!BYSTANDERS.includes(userId)) fuzzUsers.add(userId)
    const token = signHs256('{"alg":"HS256"}', JSON.stringify({ sub: userId, exp: nowS() + 3_600 }))
    const conn = await rawConnect()
    conn.socket.write(upgradeRequest(token))
    await eventually(() => conn.received().includes('welcome') || conn.isEnded(), { timeoutMs: 3_000, intervalMs: 5 }).catch(() => undefined)
    const answer = httpAnswer(conn.received())
    if (answer?.status !== 101 || !answer.body.includes('welcome')) {
      conn.socket.destroy()
      throw new Error(`${label}: the valid upgrade got ${JSON.stringify(conn.received().toString('latin1').slice(0, 200))}`)
    }
    const before = conn.received().length
    conn.socket.write(make())
    const isCut = await conn.endedWithin(label === 'random bytes' ? 50 : 3_000)
    const closes = serverCloseCodes(conn.received().subarray(before))
    conn.socket.destroy()
    const closeNames = closes.map((code) => (code === undefined ? 'without a code' : String(code)))
    count(endings, isCut ? `raw: cut by the edge${closes.length ? ` after a close frame ${closeNames.join(',')}` : ''}` : 'raw: closed by the test')
    if (label !== 'random bytes' && !isCut) throw new Error(`${label}: the edge kept the connection open`)
    const allowed = [undefined, 1002, 1007, 1008, 1009, 4008, 4009]
    const bad = closes.filter((code) => !allowed.includes(code))
    if (bad.length > 0) throw new Error(`${label}: the edge sent close ${bad.join(',')}`)
  }, Math.ceil(RUNS * 0.6))
})

t.test('abrupt resets at every stage leave no ghost behind', async (t) => {
  const stage = fc.constantFrom('terminate after welcome', 'TCP RST after welcome', 'destroy at the 101', 'destroy mid-frame', 'ping then terminate', 'raw upgrade then destroy', 'raw upgrade then RST')
  await check(t, 'resets', fc.record({ stage, user: userArb }), async ({ stage, user }) => {
    const userId = user ?? freshUser()
    if (!BYSTANDERS.includes(userId)) fuzzUsers.add(userId)
    const token = await mintToken(jwtSecret, userId)
    if (stage.startsWith('raw upgrade')) {
      const conn = await rawConnect()
      conn.socket.write(upgradeRequest(token))
      await delay(Math.random() * 5)
      if (stage.endsWith('RST')) conn.socket.resetAndDestroy()
      else conn.socket.destroy()
      count(endings, 'raw: reset by the test')
      return
    }
    if (stage === 'destroy at the 101') {
      const ws = new WebSocket(withToken(edge.wsUrl, token))
      ws.on('error', () => undefined)
      const code = await new Promise<number>((resolve) => {
        ws.once('upgrade', (res) => res.socket.destroy())
        ws.once('close', (c) => resolve(c))
      })
      count(endings, String(code))
      if (code !== 1006) throw new Error(`${stage}: close ${code}`)
      return
    }
    const { client } = await connectUser(t, edge.wsUrl, jwtSecret, userId)
    if (stage === 'terminate after welcome') client.terminate()
    else if (stage === 'TCP RST after welcome') underlying(client).resetAndDestroy()
    else if (stage === 'ping then terminate') {
      client.send(PING)
      client.terminate()
    } else {
      underlying(client).write(clientFrame(0x1, Buffer.from(PING)).subarray(0, 5))
      underlying(client).destroy()
    }
    const info = await closeOf(client)
    if (info.code !== 1006) throw new Error(`${stage}: close ${info.code}`)
  }, Math.ceil(RUNS / 2))
})

t.test('a reader that stops reading is closed with 4008 once its backlog passes the bound', async (t) => {
  count(cases, 'half-open: stops reading while pushed to')
  const userId = freshUser()
  fuzzUsers.add(userId)
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, userId)
  underlying(client).pause()
  // It keeps writing (a ping every second), so the idle timeout is not what closes it.
  const keepAlive = setInterval(() => client.isClosed() || client.send(PING), 1_000)
  t.teardown(() => clearInterval(keepAlive))
  const data = 'x'.repeat(600_000)
  let isDelivered = true
  let pushes = 0
  while (isDelivered && pushes < 80) {
    const res = await cluster.api.post('/v1/push', { to: [userId], event: 'bulk', data })
    t.equal(res.status, 200)
    isDelivered = (res.body.delivered as string[]).includes(userId)
    pushes++
  }
  clearInterval(keepAlive)
  t.notOk(isDelivered, `after ${pushes} pushes of 600 kB the edge stopped delivering to it`)
  underlying(client).resume()
  t.equal((await closeOf(client, 20_000)).code, 4008)
})

t.test('while 40 connections hold unfinished handshakes, the edge still serves everyone', async (t) => {
  const stalled = await Promise.all(Array.from({ length: 40 }, () => rawConnect()))
  for (const [i, conn] of stalled.entries()) conn.socket.write(upgradeRequest('x'.repeat(i)).slice(0, 30 + i))
  t.teardown(() => stalled.forEach((c) => c.socket.destroy()))
  count(cases, 'stalled handshakes (40 at once)')
  const newcomer = await openAs(t, undefined)
  t.same(await newcomer.ping(), { type: 'pong' }, 'a new user connects and gets answers')
  for (const [id, { client }] of bystanders) t.same(await client.ping(), { type: 'pong' }, `${id} answers`)
  await newcomer.close()
  for (const conn of stalled) conn.socket.destroy()
})

t.test('sockets that never read are reaped by the idle timeout (1006)', async (t) => {
  for (const client of idleSockets) underlying(client).resume()
  for (const client of idleSockets) {
    const info = await closeOf(client, (IDLE_TIMEOUT_S * 3 + 5) * 1_000)
    t.equal(info.code, 1006, 'cut off without a close frame')
  }
})

t.test('after the fuzzing: the edge is up, presence is exactly the bystanders, and they still get pushes', async (t) => {
  t.equal(edge.isRunning(), true, 'the edge process is still running')
  t.equal((await api(edge.internalUrl).get('/healthz')).status, 200, 'internal /healthz')
  t.equal((await api(edge.internalUrl).get('/readyz')).status, 200, 'internal /readyz')

  const everyone = [...fuzzUsers, ...BYSTANDERS]
  const presence = await eventually(async () => {
    const res = await cluster.api.post('/v1/presence/query', { userIds: everyone })
    return res.status === 200 && [...res.body.online].sort().join() === [...BYSTANDERS].sort().join() ? res.body : undefined
  }, { timeoutMs: 20_000, intervalMs: 250 }).catch(async (err: Error) => {
    const res = await cluster.api.post('/v1/presence/query', { userIds: everyone })
    t.fail(`presence did not settle to the bystanders: online ${JSON.stringify(res.body.online)} (${err.message})`)
    return undefined
  })
  if (presence) t.pass(`of ${everyone.length} users, only the ${BYSTANDERS.length} bystanders are online`)

  for (const [id, { welcome }] of bystanders) {
    const res = await cluster.api.get(`/v1/presence/${id}`)
    t.match(res.body, { userId: id, online: true }, `${id} is online`)
    t.same(res.body.connections.map((c: { connId: string }) => c.connId), [welcome.connId], `${id} kept exactly its own connection`)
  }
  const nodes = await eventually(async () => {
    const res = await cluster.api.get('/v1/nodes')
    return res.body.nodes?.length === 1 && res.body.nodes[0].connections === BYSTANDERS.length ? res.body.nodes : undefined
  }, { timeoutMs: 10_000 }).catch(() => undefined)
  t.ok(nodes, `/v1/nodes lists the edge with ${BYSTANDERS.length} connections`)
  t.match(nodes?.[0], { nodeId: edge.nodeId, draining: false })

  const res = await cluster.api.post('/v1/push', { to: BYSTANDERS, event: 'after-fuzz', data: { ok: true }, id: 'after-fuzz-1' })
  t.equal(res.status, 200)
  t.same([...res.body.delivered].sort(), [...BYSTANDERS].sort(), 'every bystander is delivered to')
  for (const [id, { client }] of bystanders) {
    t.match(await client.nextFrame(), { type: 'push', id: 'after-fuzz-1', event: 'after-fuzz', data: { ok: true } }, `${id} got the push`)
    t.same(await client.ping(), { type: 'pong' }, `${id} answers a ping`)
    t.equal(client.isClosed(), false)
  }
  const total = [...cases.values()].reduce((a, b) => a + b, 0)
  t.comment(`ws-fuzz: ${total} fuzz cases: ${JSON.stringify(Object.fromEntries(cases))}`)
  t.comment(`ws-fuzz endings: ${JSON.stringify(Object.fromEntries(endings))}`)
})

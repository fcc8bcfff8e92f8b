import { setTimeout as delay } from 'node:timers/promises'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import type { TestScope } from './redis.js'

export interface TokenOptions {
  /** jose semantics: a string is relative ("1h"), a number is the absolute `exp` in epoch seconds; `null` omits `exp`. */
  expiresIn?: string | number | null
  /** Extra claims. */
  claims?: Record<string, unknown>
  /** `iat` in s epoch; default now in ms precision, as mintClientToken writes it; `null` omits it. */
  issuedAt?: number | null
}

/** An HS256 client token; `sub` undefined leaves the subject out. */
export async function mintToken(secret: string, sub: string | undefined, opts: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ ...opts.claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  if (opts.issuedAt !== null) jwt.setIssuedAt(opts.issuedAt ?? Date.now() / 1_000)
  if (sub !== undefined) jwt.setSubject(sub)
  const expiresIn = opts.expiresIn === undefined ? '1h' : opts.expiresIn
  if (expiresIn !== null) jwt.setExpirationTime(expiresIn)
  return jwt.sign(new TextEncoder().encode(secret))
}

/** `ws://host/v1/ws?token=...`; no token leaves the query out. */
export function withToken(wsUrl: string, token: string | undefined): string {
  return token === undefined ? wsUrl : `${wsUrl}?token=${encodeURIComponent(token)}`
}

/** A parsed server frame. */
export type Frame = { type: string } & Record<string, unknown>

export interface CloseInfo {
  code: number
  reason: string
  /** A client-side error that ended the socket (e.g. an invalid frame from the server). */
  error?: string
}

export interface Client {
  readonly ws: WebSocket
  /** The next frame not yet taken, parsed as JSON; rejects on timeout or when the socket closes first. */
  nextFrame(opts?: { timeoutMs?: number }): Promise<Frame>
  /** Resolves when the socket closes, with the close code and reason the client saw. */
  readonly closed: Promise<CloseInfo>
  isClosed(): boolean
  /** Strings go as text frames, Buffers as binary frames, anything else as JSON text. */
  send(data: unknown): void
  /** Sends `{"type":"ping"}` and returns the next frame: a barrier proving no other frame was queued before it. */
  ping(opts?: { timeoutMs?: number }): Promise<Frame>
  /** Closes with a handshake and waits for it (terminates if the server does not answer in time). */
  close(code?: number, reason?: string): Promise<CloseInfo>
  terminate(): void
}

export interface ConnectOptions {
  /** Closes the socket when this test ends. */
  t?: TestScope
  /** Sent as the `Origin` header; omitted means no Origin (not a browser). */
  origin?: string
  headers?: Record<string, string>
  /** Offered as Sec-WebSocket-Protocol values (e.g. `switchboard.v1` and `bearer.<JWT>`). */
  protocols?: string[]
  timeoutMs?: number
}

const DEFAULT_FRAME_TIMEOUT_MS = 3_000

/** Opens a websocket; rejects if the upgrade is refused (message includes the HTTP status) or errors. */
export function connectClient(wsUrl: string, token: string | undefined, opts: ConnectOptions = {}): Promise<Client> {
  const ws = new WebSocket(withToken(wsUrl, token), opts.protocols ?? [], {
    headers: opts.headers,
    handshakeTimeout: opts.timeoutMs ?? 5_000,
    ...(opts.origin === undefined ? {} : { origin: opts.origin }),
  })
  const queue: Frame[] = []
  const waiters: { resolve: (f: Frame) => void; reject: (e: Error) => void }[] = []
  let closeInfo: CloseInfo | undefined
  let clientError: Error | undefined
  const closed = new Promise<CloseInfo>((resolve) => {
    ws.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString('utf8') }
      if (clientError) closeInfo.error = clientError.message
      for (const w of waiters.splice(0)) w.reject(new Error(`socket closed (${code} ${closeInfo.reason}) before a frame arrived`))
      resolve(closeInfo)
    })
  })
  ws.on('message', (data, isBinary) => {
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8')
    let frame: Frame
    try {
      frame = JSON.parse(text) as Frame
    } catch {
      frame = { type: '<not json>', text, isBinary }
    }
    const waiter = waiters.shift()
    if (waiter) waiter.resolve(frame)
    else queue.push(frame)
  })

  const nextFrame = ({ timeoutMs = DEFAULT_FRAME_TIMEOUT_MS } = {}): Promise<Frame> => {
    const queued = queue.shift()
    if (queued) return Promise.resolve(queued)
    if (closeInfo) return Promise.reject(new Error(`socket already closed (${closeInfo.code} ${closeInfo.reason})`))
    return new Promise<Frame>((resolve, reject) => {
      const waiter = {
        resolve: (f: Frame) => {
          clearTimeout(timer)
          resolve(f)
        },
        reject: (e: Error) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1)
        reject(new Error(`no frame within ${timeoutMs} ms`))
      }, timeoutMs)
      waiters.push(waiter)
    })
  }

  const close = async (code = 1000, reason = ''): Promise<CloseInfo> => {
    if (closeInfo) return closeInfo
    ws.close(code, reason)
    const timeout = delay(1_000).then(() => undefined)
    const info = await Promise.race([closed, timeout])
    if (info) return info
    ws.terminate()
    return closed
  }

  const client: Client = {
    ws,
    nextFrame,
    closed,
    isClosed: () => closeInfo !== undefined,
    send: (data) => {
      if (typeof data === 'string') ws.send(data)
      else if (Buffer.isBuffer(data)) ws.send(data, { binary: true })
      else ws.send(JSON.stringify(data))
    },
    ping: (pingOpts) => {
      ws.send(JSON.stringify({ type: 'ping' }))
      return nextFrame(pingOpts)
    },
    close,
    terminate: () => ws.terminate(),
  }

  return new Promise<Client>((resolve, reject) => {
    let isOpen = false
    ws.once('open', () => {
      isOpen = true
      opts.t?.teardown(() => close())
      resolve(client)
    })
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      ws.terminate()
      reject(new Error(`upgrade refused with HTTP ${res.statusCode}`))
    })
    // After the open, errors surface as the close code (e.g. 1006); the listener keeps them from throwing.
    ws.on('error', (err) => {
      clientError = err
      if (!isOpen) reject(err)
    })
  })
}

export interface ConnectedUser {
  client: Client
  welcome: Frame & { connId: string; nodeId: string }
}

/** Connects `userId` with a fresh token and takes the welcome frame. */
export async function connectUser(
  t: TestScope,
  wsUrl: string,
  secret: string,
  userId: string,
  { tokenClaims, ...opts }: Omit<ConnectOptions, 't'> & { tokenClaims?: Record<string, unknown> } = {},
): Promise<ConnectedUser> {
  const client = await connectClient(wsUrl, await mintToken(secret, userId, { claims: tokenClaims }), { ...opts, t })
  let welcome: Frame
  try {
    welcome = await client.nextFrame()
  } catch (err) {
    throw new Error(`${userId} at ${wsUrl} got no welcome frame: ${(err as Error).message}`, { cause: err })
  }
  if (welcome.type !== 'welcome' || typeof welcome.connId !== 'string' || typeof welcome.nodeId !== 'string') {
    throw new Error(`expected a welcome frame first, got ${JSON.stringify(welcome)}`)
  }
  return { client, welcome: welcome as ConnectedUser['welcome'] }
}

/**
 * Resolves with the HTTP status of a refused upgrade. Rejects if the upgrade succeeds
 * (the socket is then closed) or the connection fails without an HTTP answer.
 */
export function expectRefusal(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 5_000 })
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      ws.terminate()
      resolve(res.statusCode ?? 0)
    })
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the upgrade was accepted'))
    })
    ws.on('error', (err) => reject(err)) // a no-op once settled
  })
}

export interface ApiResponse {
  status: number
  headers: Headers
  /** Parsed JSON when the answer is JSON, else the text. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary answer shapes
  body: any
  text: string
}

/** How long `api`'s requests wait for an answer unless told otherwise. */
export const REQUEST_TIMEOUT_MS = 10_000

export interface RequestOptions {
  /** A string is sent as is (with a JSON content type); anything else is JSON-encoded. */
  body?: unknown
  headers?: Record<string, string>
  timeoutMs?: number
}

export interface Api {
  request(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse>
  get(path: string, opts?: RequestOptions): Promise<ApiResponse>
  post(path: string, body: unknown, opts?: RequestOptions): Promise<ApiResponse>
}

/** fetch against the router (or an edge's internal port) with a bearer key; no key sends no Authorization. */
export function api(baseUrl: string, key?: string): Api {
  const request = async (method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> => {
    const headers: Record<string, string> = {}
    if (key !== undefined) headers.authorization = `Bearer ${key}`
    let body: string | undefined
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body)
    }
    Object.assign(headers, opts.headers)
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body,
      signal: AbortSignal.timeout(opts.timeoutMs ?? REQUEST_TIMEOUT_MS),
    })
    const text = await res.text()
    let parsed: unknown = text
    if ((res.headers.get('content-type') ?? '').includes('json')) {
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = text // a broken JSON answer stays text so the assertion shows it
      }
    }
    return { status: res.status, headers: res.headers, body: parsed, text }
  }
  return {
    request,
    get: (path, opts) => request('GET', path, opts),
    post: (path, body, opts) => request('POST', path, { ...opts, body }),
  }
}

export { eventually, type EventuallyOptions } from './eventually.js'

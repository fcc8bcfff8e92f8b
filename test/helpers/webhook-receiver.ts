// A webhook receiver on a real HTTP server (port 0) for the router's webhook tests, and a
// Standard Webhooks verifier written from the spec text alone: it shares no code with the
// router's signer, so a signer that misreads the spec fails here instead of passing itself.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** The three Standard Webhooks headers, as a signer gives them. */
export type WebhookHeaders = { readonly [name in 'webhook-id' | 'webhook-timestamp' | 'webhook-signature']?: string | string[] | undefined }

export interface VerifyOptions {
  /** Unix seconds to check the timestamp against. Default: the clock. */
  nowS?: number
  /** Seconds the timestamp may be off, either way (the spec's libraries use 5 minutes). */
  toleranceS?: number
}

/**
 * Whether `body` (the exact bytes received) carries a valid `v1` signature by `secret`:
 * HMAC-SHA256 keyed with the base64-decoded part after `whsec_`, over
 * `{webhook-id}.{webhook-timestamp}.{body}`; the header is a space-separated list of
 * `<version>,<base64>` and any one matching `v1` entry verifies. The comparison is constant
 * time, on the base64 text as sent, so a signer's base64url or missing padding fails.
 */
export function verifyWebhook(secret: string, headers: IncomingHttpHeaders | WebhookHeaders, body: Buffer | string, options: VerifyOptions = {}): boolean {
  const id = headers['webhook-id']
  const timestamp = headers['webhook-timestamp']
  const signatures = headers['webhook-signature']
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return false
  if (!/^\d+$/.test(timestamp)) return false
  const nowS = options.nowS ?? Math.floor(Date.now() / 1000)
  if (Math.abs(nowS - Number(timestamp)) > (options.toleranceS ?? 300)) return false
  if (!secret.startsWith('whsec_')) return false
  const hmac = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
  hmac.update(Buffer.from(`${id}.${timestamp}.`, 'utf8'))
  hmac.update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
  const expected = Buffer.from(hmac.digest('base64'), 'latin1')
  let isValid = false
  for (const entry of signatures.split(' ')) {
    const comma = entry.indexOf(',')
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue
    const given = Buffer.from(entry.slice(comma + 1), 'latin1')
    // No early return: every entry is compared, so the time taken does not say which matched.
    if (given.length === expected.length && timingSafeEqual(given, expected)) isValid = true
  }
  return isValid
}

export interface ReceivedBatch {
  /** 1 for the first request this receiver got, over stops and starts. */
  n: number
  /** Local ms epoch when the request ended (or was cut off). */
  at: number
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The body as received (UTF-8), '' when it was over `maxBodyBytes`. */
  body: string
  /** The body parsed as JSON; undefined when it is not JSON. */
  payload: unknown
  /** The payload when it is an array, its `events` when that is one; [] otherwise. */
  events: unknown[]
  /** A whole body holding an events array (see `events`). */
  isValid: boolean
  /** The signature checks out with the receiver's secret (see verifyWebhook). */
  verified: boolean
  /** Why the batch is invalid: cut off, too large, not JSON, no events. */
  problem?: string
}

/** How to answer request `n`: a status after an optional delay, or never ('hang'). */
export type ReceiverAnswer = { status: number; headers?: Record<string, string>; body?: string | Buffer; delayMs?: number } | 'hang'

export interface ReceiverOptions {
  /** The `whsec_` secret batches are verified with. */
  secret: string
  /** Bodies over this are recorded as invalid (and not kept). Default 16 MiB. */
  maxBodyBytes?: number
  /** The address to listen on; default 127.0.0.1 (a netns host's router reaches the root's bridge address, `net.root.address`). */
  host?: string
}

export interface WebhookReceiver {
  /** `http://<host>:<port>/hooks` (127.0.0.1 unless given); the same across stop() and start(). */
  readonly url: string
  readonly port: number
  /** Every request, in arrival order, valid or not. */
  readonly received: ReceivedBatch[]
  /** Sets how later requests are answered. Default: 204 at once. */
  answerWith(answer: (n: number, batch: ReceivedBatch) => ReceiverAnswer): void
  /** Resolves with `received` once `predicate` holds; rejects after `timeoutMs` saying what arrived. */
  waitFor(predicate: (received: readonly ReceivedBatch[]) => boolean, timeoutMs?: number): Promise<ReceivedBatch[]>
  /** Closes the listening socket and every connection: new connections are refused. */
  stop(): Promise<void>
  /** Listens again on the same port. */
  start(): Promise<void>
  /** stop() for good; also the test's teardown. */
  close(): Promise<void>
}

export async function startReceiver(t: { teardown(fn: () => unknown): void }, options: ReceiverOptions): Promise<WebhookReceiver> {
  const maxBodyBytes = options.maxBodyBytes ?? 16 * 1024 * 1024
  const host = options.host ?? '127.0.0.1'
  const received: ReceivedBatch[] = []
  const waiters = new Set<() => void>()
  const delays = new Set<NodeJS.Timeout>()
  let answer: (n: number, batch: ReceivedBatch) => ReceiverAnswer = () => ({ status: 204 })
  let count = 0
  let isClosed = false

  const record = (batch: ReceivedBatch) => {
    received.push(batch)
    for (const check of [...waiters]) check()
  }

  const server: Server = createServer((req, res) => {
    const n = ++count
    const chunks: Buffer[] = []
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= maxBodyBytes) chunks.push(chunk)
    })
    // The sender gave up mid-body (its timeout, a reset): record what came, never answer.
    req.on('error', () => undefined)
    req.on('close', () => {
      if (!req.complete) record(parseBatch(n, req.method, req.url, req.headers, undefined, 'the request was cut off'))
    })
    req.on('end', () => {
      const raw = bytes <= maxBodyBytes ? Buffer.concat(chunks) : undefined
      const batch = parseBatch(n, req.method, req.url, req.headers, raw, raw ? undefined : `the body is over ${maxBodyBytes} bytes`)
      if (raw) batch.verified = verifyWebhook(options.secret, req.headers, raw)
      record(batch)
      const reply = answer(n, batch)
      if (reply === 'hang') return
      const send = () => res.writeHead(reply.status, reply.headers).end(reply.body)
      if (!reply.delayMs) return send()
      const timer = setTimeout(() => {
        delays.delete(timer)
        send()
      }, reply.delayMs)
      delays.add(timer)
    })
  })

  const listen = async (port: number) => {
    server.listen(port, host)
    await once(server, 'listening')
  }
  await listen(0)
  const port = (server.address() as AddressInfo).port

  const stop = async () => {
    if (!server.listening) return
    for (const timer of delays) clearTimeout(timer)
    delays.clear()
    const closed = new Promise((resolve) => server.close(resolve))
    server.closeAllConnections() // hung and keep-alive ones too: a stopped receiver is gone
    await closed
  }
  t.teardown(stop)

  return {
    url: `http://${host}:${port}/hooks`,
    port,
    received,
    answerWith: (fn) => {
      answer = fn
    },
    waitFor: (predicate, timeoutMs = 5_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(received)) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(received)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`waitFor: not met within ${timeoutMs} ms; received ${received.length}: ${JSON.stringify(received.map((b) => ({ n: b.n, verified: b.verified, problem: b.problem })))}`))
        }, timeoutMs)
        waiters.add(check)
        check()
      }),
    stop,
    start: async () => {
      if (isClosed) throw new Error('this receiver was closed')
      if (!server.listening) await listen(port)
    },
    close: async () => {
      isClosed = true
      await stop()
    },
  }
}

function parseBatch(n: number, method: string | undefined, url: string | undefined, headers: IncomingHttpHeaders, raw: Buffer | undefined, problem: string | undefined): ReceivedBatch {
  const batch: ReceivedBatch = { n, at: Date.now(), method: method ?? '', path: url ?? '', headers, body: '', payload: undefined, events: [], isValid: false, verified: false }
  if (raw === undefined) return { ...batch, problem }
  batch.body = raw.toString('utf8')
  try {
    batch.payload = JSON.parse(batch.body) as unknown
  } catch {
    return { ...batch, problem: 'the body is not JSON' }
  }
  const payload = batch.payload as { events?: unknown } | null
  const events = Array.isArray(payload) ? payload : Array.isArray(payload?.events) ? payload.events : undefined
  if (!events) return { ...batch, problem: 'the body holds no events array' }
  return { ...batch, events: events as unknown[], isValid: true }
}

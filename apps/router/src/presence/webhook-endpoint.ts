// One delivery attempt of a batch to one webhook endpoint, and when to try again.
import { backoffDelayMs } from '@switchboard/protocol'
import { request, type Dispatcher } from 'undici'
import { signatureHeaders } from './webhook-signature.js'

export const USER_AGENT = 'switchboard-webhooks/1'
/**
 * Bytes of an answer's body read at most. Receivers answer a webhook with a status and little
 * else; the body is read (and dropped) only so the connection can be reused, and the bound keeps
 * an endpoint that streams a file at us from costing memory or time.
 */
export const MAX_ANSWER_BYTES = 64 * 1024
/** Longest Retry-After honoured: an endpoint asking for more is retried after a day anyway. */
export const MAX_RETRY_AFTER_MS = 24 * 60 * 60_000

/**
 * Why an attempt is to be retried:
 * - `timeout`: no complete answer within `timeoutMs`;
 * - `connect`: no connection (refused, unknown host, unreachable);
 * - `network`: the connection failed during the exchange, or the answer was not HTTP;
 * - `status`: a complete answer whose status is neither 2xx nor 410;
 * - `too_large`: an answer body over MAX_ANSWER_BYTES;
 * - `invalid`: the request could not be made (a bad secret, URL or message id): a bug or bad
 *   configuration, which no retry will fix, reported here rather than thrown.
 */
export type RetryReason = 'timeout' | 'connect' | 'network' | 'status' | 'too_large' | 'invalid'

export type Attempt =
  | { outcome: 'ack'; status: number }
  | { outcome: 'retry'; reason: RetryReason; status?: number; error: string; retryAfterMs?: number }
  | { outcome: 'gone'; status: 410 }

export interface PostBatchOptions {
  url: string | URL
  /** `whsec_` secrets; each signs (more than one during a rotation). */
  secrets: readonly string[]
  /** The batch's id, the same on every attempt: receivers deduplicate on it. */
  msgId: string
  /** The JSON text sent and signed, byte for byte. */
  body: string
  /** ms for the whole exchange: connecting, sending, the answer's headers and its body. */
  timeoutMs: number
  /** Where the request goes (an undici Agent, Pool or MockAgent; only `dispatch` is used). Default: undici's global dispatcher. */
  dispatcher?: Pick<Dispatcher, 'dispatch'>
  /** ms epoch: the signature's timestamp and the reference for a Retry-After date. */
  now?: () => number
}

/** Connection errors raised before anything was sent. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT'])
/** undici's argument errors: the request was never made. */
const INVALID_ERRORS = new Set(['UND_ERR_INVALID_ARG', 'ERR_INVALID_URL'])

/**
 * POSTs `body` to `url`, signed, and classifies the answer the way the Standard Webhooks spec
 * suggests. It never throws: every failure is an Attempt, so a delivery loop needs no try/catch.
 *
 * - `ack` only for a 2xx whose whole (bounded) answer arrived within `timeoutMs`. Delivery is
 *   at least once and receivers deduplicate on `webhook-id`, so when in doubt (the body timed
 *   out, was cut or was too large) the batch is retried: a duplicate costs the receiver one
 *   lookup, a wrong ack loses events. A 200 with a huge body is also what a URL pointing at the
 *   wrong service (a static site, a proxy's error page) looks like.
 * - `gone` for 410: the receiver says it wants no more webhooks, so the endpoint is to be
 *   disabled rather than retried (spec: "Sender should disable the webhook endpoint").
 * - `retry` for everything else, 3xx included: redirects are not followed, because a signed
 *   batch must not be sent where the endpoint's owner did not configure, and the spec
 *   recommends fixing the URL instead.
 * - `retryAfterMs` when a failed answer carries Retry-After (429, 503): the receiver knows its
 *   own load better than our backoff does. Clamped to [0, 24 h] so a broken header can
 *   neither make us retry at once forever nor park a batch for a year.
 *
 * `timeoutMs` bounds the whole exchange (undici's headersTimeout and bodyTimeout are idle
 * timers, which a receiver trickling a byte a second would never trip).
 */
export async function postBatch(options: PostBatchOptions): Promise<Attempt> {
  const now = options.now ?? Date.now
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(new Error(`no complete answer within ${options.timeoutMs} ms`)), options.timeoutMs)
  try {
    let headers: Record<string, string>
    try {
      headers = { 'content-type': 'application/json', 'user-agent': USER_AGENT, ...signatureHeaders(options.secrets, options.msgId, Math.floor(now() / 1000), options.body) }
    } catch (err) {
      return { outcome: 'retry', reason: 'invalid', error: (err as Error).message }
    }
    const res = await request(options.url, {
      method: 'POST',
      headers,
      body: options.body,
      signal: abort.signal,
      dispatcher: options.dispatcher as Dispatcher | undefined,
    })
    const status = res.statusCode
    const unread = await discardBody(res.body, res.headers['content-length'], abort.signal)
    if (status === 410) return { outcome: 'gone', status } // the receiver's word, whatever its body did
    if (status >= 200 && status < 300) return unread ? { outcome: 'retry', status, ...unread } : { outcome: 'ack', status }
    const attempt: Attempt = { outcome: 'retry', reason: 'status', status, error: `the endpoint answered ${status}` }
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'], now())
    if (retryAfterMs !== undefined) attempt.retryAfterMs = retryAfterMs
    return attempt
  } catch (err) {
    return { outcome: 'retry', ...classify(err, abort.signal) }
  } finally {
    clearTimeout(timer)
  }
}

type Failure = { reason: RetryReason; error: string }

/**
 * Reads and drops an answer body up to MAX_ANSWER_BYTES; over that it destroys the body (and
 * so the connection). Undefined when the whole body arrived; otherwise why it did not.
 */
async function discardBody(body: Dispatcher.ResponseData['body'], contentLength: string | string[] | undefined, signal: AbortSignal): Promise<Failure | undefined> {
  const tooLarge: Failure = { reason: 'too_large', error: `the answer's body is over ${MAX_ANSWER_BYTES} bytes` }
  if (typeof contentLength === 'string' && Number(contentLength) > MAX_ANSWER_BYTES) {
    body.destroy()
    return tooLarge
  }
  let bytes = 0
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      bytes += chunk.length
      if (bytes > MAX_ANSWER_BYTES) {
        body.destroy()
        return tooLarge
      }
    }
  } catch (err) {
    return classify(err, signal)
  }
  return undefined
}

function classify(err: unknown, signal: AbortSignal): Failure {
  if (signal.aborted) return { reason: 'timeout', error: (signal.reason as Error).message }
  const code = (err as { code?: unknown } | null | undefined)?.code
  const message = err instanceof Error ? err.message : String(err)
  const error = typeof code === 'string' ? `${code}: ${message}` : message
  if (typeof code === 'string' && CONNECT_ERRORS.has(code)) return { reason: 'connect', error }
  if ((typeof code === 'string' && INVALID_ERRORS.has(code)) || err instanceof TypeError) return { reason: 'invalid', error }
  return { reason: 'network', error }
}

/**
 * ms to wait from `nowMs` as a Retry-After value says (RFC 9110 10.2.3): delta-seconds or an
 * HTTP-date, clamped to [0, MAX_RETRY_AFTER_MS]; a date in the past is 0. Undefined when the
 * header is absent or neither form, so a garbled header falls back to the backoff.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim()
  if (!text) return undefined
  if (/^\d+$/.test(text)) return clampRetryAfter(Number(text) * 1000)
  // Date.parse reads many things ("1", "May"); an HTTP-date in any of its three forms starts with a day name.
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /.test(text)) return undefined
  const dateMs = Date.parse(text)
  return Number.isNaN(dateMs) ? undefined : clampRetryAfter(dateMs - nowMs)
}

function clampRetryAfter(ms: number): number {
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.ceil(ms)))
}

/**
 * ms to wait before retrying, after `attempt` + 1 failed attempts in a row (0 after the first).
 *
 * Full jitter, uniform in [0, min(capMs, baseMs * 2^attempt)): when an endpoint comes back
 * after an outage, every router's backlog for it retries at once unless spread; full jitter
 * spreads the most for the same mean wait. Doubling keeps a long outage from costing more
 * than a few attempts an hour; the cap (5 min) keeps a recovered endpoint from waiting long.
 *
 * A Retry-After is a floor, not replaced by jitter: the receiver asked for that much quiet.
 * It may exceed the cap (up to MAX_RETRY_AFTER_MS), since the cap is our guess and Retry-After
 * is the receiver's word. `random` returns [0, 1), as Math.random does.
 */
export function retryDelayMs(attempt: number, retryAfterMs: number | undefined, random: () => number = Math.random, baseMs = 500, capMs = 5 * 60_000): number {
  const jitteredMs = Math.floor(backoffDelayMs(attempt, { baseMs, capMs }, random))
  return retryAfterMs === undefined ? jitteredMs : Math.max(jitteredMs, clampRetryAfter(retryAfterMs))
}

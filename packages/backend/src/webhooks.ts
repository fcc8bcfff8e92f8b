import { createHmac, timingSafeEqual } from 'node:crypto'
import type { PresenceEvent } from '@switchboard/protocol'

/** Header lookup as Node's `IncomingHttpHeaders`, fetch's `Headers`, or a plain object. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>

export interface VerifyWebhookOptions {
  /** Refuse a timestamp further than this from now (replays); default 300 s. */
  toleranceS?: number
  /** Seconds since the epoch; default the clock. */
  nowS?: number
}

/** Why a webhook was refused: answer it 400 (or 401), never 2xx. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError'
}

/**
 * Verifies a presence webhook the Standard Webhooks way and returns its events. `secrets` are
 * the `whsec_` secrets you accept (several during a rotation); `body` is the raw body, exactly
 * as received (parse it only after). Throws WebhookVerificationError when the headers are
 * missing, the timestamp is outside the tolerance, or no signature matches any secret.
 */
export function verifyPresenceWebhook(secrets: string | readonly string[], headers: WebhookHeaders, body: string | Buffer, options: VerifyWebhookOptions = {}): PresenceEvent[] {
  const id = header(headers, 'webhook-id')
  const timestamp = header(headers, 'webhook-timestamp')
  const signatures = header(headers, 'webhook-signature')
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature')
  const nowS = options.nowS ?? Math.floor(Date.now() / 1_000)
  if (!/^\d+$/.test(timestamp) || Math.abs(nowS - Number(timestamp)) > (options.toleranceS ?? 300)) {
    throw new WebhookVerificationError('webhook-timestamp is outside the tolerance (a replay, or a clock far off)')
  }
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), typeof body === 'string' ? Buffer.from(body) : body])
  const given = signatures.split(' ').flatMap((s) => (s.startsWith('v1,') ? [Buffer.from(s.slice(3))] : []))
  const matches = (typeof secrets === 'string' ? [secrets] : secrets).some((secret) => {
    const expected = Buffer.from(createHmac('sha256', keyOf(secret)).update(signed).digest('base64'))
    return given.some((g) => g.length === expected.length && timingSafeEqual(g, expected))
  })
  if (!matches) throw new WebhookVerificationError('no signature matches the secrets')
  let payload: { events?: unknown } | null
  try {
    payload = JSON.parse(signed.subarray(id.length + timestamp.length + 2).toString('utf8')) as { events?: unknown } | null
  } catch {
    throw new WebhookVerificationError('the body is not JSON')
  }
  if (!Array.isArray(payload?.events)) throw new WebhookVerificationError('the body has no events array')
  return payload.events as PresenceEvent[]
}

function keyOf(secret: string): Buffer {
  if (!secret.startsWith('whsec_')) throw new WebhookVerificationError('a secret must start with whsec_')
  return Buffer.from(secret.slice('whsec_'.length), 'base64')
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  const value = headers instanceof Headers ? headers.get(name) : headers[name]
  return (Array.isArray(value) ? value[0] : value) ?? undefined
}

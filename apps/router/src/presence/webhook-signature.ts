// Standard Webhooks signing (symmetric scheme `v1`, HMAC-SHA256), as
// https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md defines it.
import { createHmac } from 'node:crypto'

const SECRET_PREFIX = 'whsec_'
/** The spec's bounds for a symmetric key: at least 192 bits, at most 512. */
const MIN_KEY_BYTES = 24
const MAX_KEY_BYTES = 64
/** Standard base64 (not base64url), padding optional: what the spec's libraries decode. */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
/** Visible ASCII without `.`: the id is a field of the signed `{id}.{timestamp}.{body}`, so a dot could shift the fields. */
const MESSAGE_ID = /^[\x21-\x2d\x2f-\x7e]+$/

export interface SignatureHeaders {
  'webhook-id': string
  /** Unix seconds of this attempt (not of the events): receivers reject stale ones against replays. */
  'webhook-timestamp': string
  /** Space-separated `v1,<base64 signature>`, one per secret. */
  'webhook-signature': string
}

/**
 * The HMAC key of a `whsec_<base64>` secret. Throws an Error that says what is wrong without
 * repeating the secret (it ends up in logs and startup failures), so config loading can call it.
 */
export function parseSecret(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error(`a webhook secret must start with ${SECRET_PREFIX}`)
  const encoded = secret.slice(SECRET_PREFIX.length)
  // Buffer.from skips characters outside the alphabet, so check first: a secret pasted with a
  // stray space or newline would otherwise sign with another key than the receiver's.
  if (!BASE64.test(encoded) || encoded.length % 4 === 1) {
    throw new Error(`a webhook secret must be ${SECRET_PREFIX} followed by standard base64 (A-Z a-z 0-9 + / and = padding), with no spaces`)
  }
  const key = Buffer.from(encoded, 'base64')
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw new Error(`a webhook secret's key must be ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes once base64-decoded; this one is ${key.length}`)
  }
  return key
}

/**
 * Headers for one attempt. Every secret signs, so during a rotation receivers that know only the
 * old secret or only the new one both verify. `msgId` stays the same across retries (receivers
 * deduplicate on it); `timestampS` is the attempt's, so a retry is signed anew. Throws on an
 * empty secret list (an unsigned webhook is refused by every receiver), an invalid secret,
 * a `msgId` that is not visible ASCII without `.`, or a timestamp that is not whole seconds.
 */
export function signatureHeaders(secrets: readonly string[], msgId: string, timestampS: number, body: string): SignatureHeaders {
  if (secrets.length === 0) throw new Error('signing a webhook needs at least one secret')
  if (!MESSAGE_ID.test(msgId)) throw new Error('a webhook id must be visible ASCII without "." (it is a field of the signed content)')
  if (!Number.isSafeInteger(timestampS) || timestampS < 0) throw new Error('a webhook timestamp must be whole seconds since the epoch')
  const signed = `${msgId}.${timestampS}.${body}`
  const signatures = secrets.map((secret) => `v1,${createHmac('sha256', parseSecret(secret)).update(signed, 'utf8').digest('base64')}`)
  return { 'webhook-id': msgId, 'webhook-timestamp': String(timestampS), 'webhook-signature': signatures.join(' ') }
}

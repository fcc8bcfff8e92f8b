import { createHash } from 'node:crypto'
import { SwitchboardError, limits } from '@switchboard/protocol'
import type { IdempotencyStore } from '@switchboard/registry'

/** An Idempotency-Key: 1 to 255 visible ASCII characters. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/

export interface IdempotencyDeps {
  store: IdempotencyStore
  /** How long a stored answer is replayed. */
  retentionMs: number
  /**
   * How long a key stays in flight if its router dies before answering (then a retry runs
   * again); a push waiting for receipts stays its `ack.timeoutMs` longer.
   */
  pendingTtlMs: number
}

/** Runs a write once per (API key, operation, Idempotency-Key); a repeat gets the stored answer. */
export type Idempotent = <T>(scope: string, key: string | undefined, op: string, body: unknown, run: () => Promise<T>) => Promise<{ value: T; replayed: boolean }>

/**
 * Idempotent writes for both ingresses. The first request under a key runs and its successful
 * answer is kept for `retentionMs`; a repeat with the same body gets that answer back
 * (`replayed`), one while the first is still running gets 409, one with another body 422. A
 * request that fails (an error answer) frees its key, so it can be retried. Keys are scoped by
 * the caller's API key (`scope`) and the operation, and hashed: any key length costs the same.
 */
export function createIdempotent(deps: IdempotencyDeps): Idempotent {
  return async (scope, key, op, body, run) => {
    if (key === undefined) return { value: await run(), replayed: false }
    if (!IDEMPOTENCY_KEY.test(key)) throw new SwitchboardError('invalid_request', 'Idempotency-Key: 1 to 255 visible ASCII characters')
    const scoped = sha256(`${scope}\n${op}\n${key}`)
    const fingerprint = sha256(JSON.stringify(body) ?? '')
    const begun = await deps.store.begin(scoped, fingerprint, deps.pendingTtlMs + ackTimeoutOf(body))
    if (begun.state === 'done') return { value: JSON.parse(begun.answer) as Awaited<ReturnType<typeof run>>, replayed: true }
    if (begun.state === 'in_flight') throw new SwitchboardError('idempotency_in_flight', 'a request with this Idempotency-Key is still being processed; retry after it answered')
    if (begun.state === 'mismatch') throw new SwitchboardError('idempotency_mismatch', 'this Idempotency-Key was used with another body')
    let value: Awaited<ReturnType<typeof run>>
    try {
      value = await run()
    } catch (err) {
      await deps.store.end(scoped, fingerprint, undefined, 0).catch(() => undefined) // expires by itself otherwise
      throw err
    }
    // The write happened: answer it even if its answer cannot be stored (a retry then gets 409
    // until the pending mark expires, and runs again after).
    await deps.store.end(scoped, fingerprint, JSON.stringify(value), deps.retentionMs).catch(() => undefined)
    return { value, replayed: false }
  }
}

/** A push's `ack.timeoutMs` when it asks for receipts (its answer comes that much later), else 0. */
function ackTimeoutOf(body: unknown): number {
  const ms = (body as { ack?: { timeoutMs?: unknown } } | null)?.ack?.timeoutMs
  return typeof ms === 'number' && Number.isInteger(ms) && ms > 0 && ms <= limits.maxAckTimeoutMs ? ms : 0
}

/** The scope of an API key: its hash, so the key itself is never stored. */
export function apiKeyScope(authorization: string): string {
  return sha256(authorization.replace(/^Bearer\s+/i, ''))
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

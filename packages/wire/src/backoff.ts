/**
 * Exponential backoff with full jitter, the one formula of every retry loop: the SDK's and the
 * backend client's reconnects, the edge's registry retries, the Redis client's reconnects, the
 * presence webhooks' retries; the circuit breaker's cooldown is its ceiling, unjittered.
 */

/** Attempt `n` (0 for the first after a success) waits up to min(capMs, baseMs × 2^n). */
export interface BackoffPolicy {
  /** ms: the ceiling of the first attempt's delay; it doubles with each failure in a row. */
  baseMs: number
  /** ms: no delay is ever longer. */
  capMs: number
}

/** The ceiling of attempt `attempt`'s delay, min(capMs, baseMs × 2^attempt), without jitter. */
export function backoffCeilingMs(attempt: number, policy: BackoffPolicy): number {
  // 2^60 × any sane base is past any cap; bounding the exponent keeps Infinity (and 0 × Infinity) out.
  const exponent = Math.min(60, Math.max(0, Math.floor(attempt)))
  return Math.min(policy.capMs, policy.baseMs * 2 ** exponent)
}

/**
 * Full jitter: uniform in [0, ceiling). Peers that lost the same server retry spread over the
 * whole window instead of together; of the jitter shapes it spreads most for the same mean wait.
 * `random` returns [0, 1), as Math.random does.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return random() * backoffCeilingMs(attempt, policy)
}

/** A run of failures: `next()` is the delay before the next attempt, `reset()` follows a success. */
export class Backoff {
  readonly policy: BackoffPolicy
  readonly #random: () => number
  #attempt = 0

  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    this.policy = policy
    this.#random = random
  }

  /** Failures since the last reset. */
  get attempt(): number {
    return this.#attempt
  }

  next(): number {
    return backoffDelayMs(this.#attempt++, this.policy, this.#random)
  }

  reset(): void {
    this.#attempt = 0
  }
}

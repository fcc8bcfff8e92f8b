export interface BackoffOptions {
  /** ms: the cap of the first retry's delay; it doubles with each failure in a row. */
  baseDelayMs: number
  /** ms: no delay is ever longer. */
  maxDelayMs: number
}

/**
 * Delay before reconnect attempt `attempt` (0 for the first after a success): capped
 * exponential backoff with full jitter, uniform in [0, min(max, base * 2^attempt)], so the
 * backends that lost the same router do not all come back in the same instant.
 */
export function reconnectDelayMs(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * cap)
}

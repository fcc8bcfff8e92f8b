/** A timer a Clock handed out: only good for the same clock's `clearTimeout`. */
export interface Timer {
  /** Lets the process exit while the timer is pending. */
  unref(): unknown
}

/**
 * Time and chance as the edge's background work sees them: the real ones by default, a fake in
 * tests, which then drive renewals, backoffs and drain spreads without waiting for them.
 */
export interface Clock {
  /** ms epoch */
  now(): number
  /** In [0, 1), as Math.random. */
  random(): number
  setTimeout(fn: () => void, ms: number): Timer
  clearTimeout(timer: Timer | undefined): void
}

export const systemClock: Clock = {
  now: Date.now,
  random: Math.random,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
}

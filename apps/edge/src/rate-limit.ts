/**
 * Token buckets by key (e.g. source address): `ratePerS` a second, bursts up to `burst`.
 * Memory stays bounded: past `maxKeys`, buckets that have refilled are forgotten (at most
 * once a second, so many distinct keys cannot make every call pay for a sweep).
 */
export class KeyedRateLimiter {
  readonly #buckets = new Map<string, { tokens: number; atMs: number }>()
  #prunedAtMs = 0

  constructor(
    private readonly ratePerS: number,
    private readonly burst = ratePerS * 2,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token; false when the key is over its rate. */
  take(key: string): boolean {
    const now = this.now()
    const b = this.#buckets.get(key)
    const tokens = b ? Math.min(this.burst, b.tokens + ((now - b.atMs) * this.ratePerS) / 1_000) : this.burst
    const allowed = tokens >= 1
    this.#buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, atMs: now })
    if (this.#buckets.size > this.maxKeys && now - this.#prunedAtMs >= 1_000) this.#prune(now)
    return allowed
  }

  get size(): number {
    return this.#buckets.size
  }

  #prune(now: number): void {
    this.#prunedAtMs = now
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.atMs) * this.ratePerS) / 1_000 >= this.burst) this.#buckets.delete(key)
    }
  }
}

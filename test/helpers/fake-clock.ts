import type { Clock, Timer } from '../../apps/edge/src/clock.js'

interface FakeTimer extends Timer {
  readonly at: number
  readonly fn: () => void
}

/** Lets every promise chain that waits on nothing but other promises run to its end. */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Resolves once `cond` holds, letting the event loop turn in between; rejects after `turns` turns. */
export async function until(cond: () => boolean, what = 'condition', turns = 1_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return
    await settle()
  }
  throw new Error(`${what}: not reached after ${turns} event-loop turns`)
}

/**
 * A Clock whose time moves only when the test advances it. Timers run in due order, each one's
 * promise chains settling before the next one runs, as they would with real time.
 */
export class FakeClock implements Clock {
  #now: number
  readonly #timers = new Set<FakeTimer>()

  constructor(
    start = 1_700_000_000_000,
    /** What random() answers: fixed by default, so backoffs and drain delays are exact. */
    private readonly nextRandom: () => number = () => 0.5,
  ) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  random(): number {
    return this.nextRandom()
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer: FakeTimer = { at: this.#now + Math.max(0, ms), fn, unref: () => timer }
    this.#timers.add(timer)
    return timer
  }

  clearTimeout(timer: Timer | undefined): void {
    this.#timers.delete(timer as FakeTimer)
  }

  /** The delay from now of each pending timer, soonest first. */
  get pending(): number[] {
    return [...this.#timers].map((t) => t.at - this.#now).sort((a, b) => a - b)
  }

  /** Moves time `ms` forward, running the timers that fall due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms
    for (;;) {
      let next: FakeTimer | undefined
      for (const t of this.#timers) if (t.at <= end && (next === undefined || t.at < next.at)) next = t
      if (next === undefined) break
      this.#timers.delete(next)
      this.#now = next.at
      next.fn()
      await settle()
    }
    this.#now = end
    await settle()
  }
}

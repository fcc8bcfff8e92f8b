import { backoffCeilingMs } from '@switchboard/protocol'

/** The router's circuit per edge: skipped after 3 failures in a row, for 250 ms doubling up to 5 s. */
export const EDGE_CIRCUIT = { threshold: 3, baseCooldownMs: 250, maxCooldownMs: 5_000 } as const

/**
 * Per-edge circuit: after `threshold` consecutive failures an edge is skipped (calls fail
 * at once) for a cooldown that doubles up to `maxCooldownMs`; then one probe call is let
 * through, and its success closes the circuit. A dead edge's users thus fail fast instead
 * of piling requests up behind its timeout until its lease lapses.
 */
export class Circuits {
  readonly #state = new Map<string, { failures: number; openUntil: number }>()

  constructor(
    private readonly options: { threshold: number; baseCooldownMs: number; maxCooldownMs: number; now?: () => number },
  ) {}

  /** False while the edge is being skipped. Letting a probe through re-arms the cooldown for others. */
  allow(edge: string): boolean {
    const s = this.#state.get(edge)
    if (!s || s.failures < this.options.threshold) return true
    const now = this.#now()
    if (now < s.openUntil) return false
    s.openUntil = now + this.#cooldown(s.failures)
    return true
  }

  succeeded(edge: string): void {
    this.#state.delete(edge)
  }

  failed(edge: string): void {
    const s = this.#state.get(edge) ?? { failures: 0, openUntil: 0 }
    s.failures++
    if (s.failures >= this.options.threshold) s.openUntil = this.#now() + this.#cooldown(s.failures)
    this.#state.set(edge, s)
  }

  /**
   * Opens the circuit at once: for a failure that is evidence on its own, such as a
   * persistent link that stopped answering (every call on it would wait out the timeout).
   */
  trip(edge: string): void {
    const s = this.#state.get(edge) ?? { failures: 0, openUntil: 0 }
    s.failures = Math.max(s.failures, this.options.threshold)
    s.openUntil = this.#now() + this.#cooldown(s.failures)
    this.#state.set(edge, s)
  }

  #cooldown(failures: number): number {
    const { threshold, baseCooldownMs, maxCooldownMs } = this.options
    return backoffCeilingMs(failures - threshold, { baseMs: baseCooldownMs, capMs: maxCooldownMs })
  }

  #now(): number {
    return (this.options.now ?? Date.now)()
  }
}

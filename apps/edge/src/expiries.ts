import type { Clock, Timer } from './clock.js'

export interface ExpiriesDeps<T> {
  clock: Clock
  /** The item's deadline now (ms epoch), or undefined once it has none (closed): an entry with another deadline is stale. */
  deadlineOf(item: T): number | undefined
  /** The item's deadline passed: called once per live entry, in deadline order. */
  expire(item: T): void
}

/** setTimeout's ceiling is 2^31 - 1 ms; a later deadline is re-armed when this passes. */
const MAX_TIMER_MS = 3_600_000
/**
 * Compaction runs once stale entries are this many and over a quarter of all entries: each
 * holds a closed item (a Conn, ~550 B with what it references) until then, so a churning edge
 * holds at most a third of its live count in closed ones, for O(4) heap work per close.
 */
const COMPACT_MIN_STALE = 1_024

/**
 * When each connection's token expires: one binary min-heap and one timer per edge, never a
 * timer per socket, so an idle connection costs one heap slot (a deadline and a reference).
 *
 * Entries are never removed from the middle: a refreshed connection gets a new entry and its old
 * one goes stale (its deadline no longer matches `deadlineOf`), as does a closed connection's.
 * Stale entries are dropped when they reach the top, or all at once by a compaction when they
 * are a quarter of the entries, so a churning edge does not hold closed sockets until their
 * tokens' expiry. The caller says when an entry went stale (`forget`) so the count stays exact.
 */
export class Expiries<T> {
  readonly #deps: ExpiriesDeps<T>
  #deadlines: number[] = []
  #items: T[] = []
  #stale = 0
  #timer: Timer | undefined
  /** The deadline the timer is armed for (Infinity: none). */
  #armedFor = Infinity

  constructor(deps: ExpiriesDeps<T>) {
    this.#deps = deps
  }

  /** Live entries. */
  get size(): number {
    return this.#items.length - this.#stale
  }

  /** Entries held, stale ones included (what compaction bounds). */
  get entries(): number {
    return this.#items.length
  }

  /** `item` expires at `deadlineMs` (ms epoch), which `deadlineOf(item)` now returns. */
  add(item: T, deadlineMs: number): void {
    this.#deadlines.push(deadlineMs)
    this.#items.push(item)
    this.#up(this.#items.length - 1)
    if (deadlineMs < this.#armedFor) this.#arm()
  }

  /** One entry went stale (its item closed, or got a new deadline). */
  forget(): void {
    this.#stale++
    if (this.#stale >= COMPACT_MIN_STALE && this.#stale * 4 > this.#items.length) this.#compact()
  }

  /** Pops every entry due by now: a live one expires, a stale one is dropped. */
  #fire(): void {
    this.#timer = undefined
    this.#armedFor = Infinity
    const now = this.#deps.clock.now()
    while (this.#items.length > 0 && this.#deadlines[0]! <= now) {
      const deadline = this.#deadlines[0]!
      const item = this.#pop()
      if (this.#deps.deadlineOf(item) === deadline) this.#deps.expire(item)
      else this.#stale--
    }
    this.#arm()
  }

  #arm(): void {
    const { clock } = this.#deps
    clock.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#armedFor = Infinity
    if (this.#items.length === 0) return
    const next = this.#deadlines[0]!
    this.#armedFor = next
    this.#timer = clock.setTimeout(() => this.#fire(), Math.min(MAX_TIMER_MS, Math.max(0, next - clock.now())))
    this.#timer.unref()
  }

  #compact(): void {
    const deadlines: number[] = []
    const items: T[] = []
    for (let i = 0; i < this.#items.length; i++) {
      const item = this.#items[i]!
      if (this.#deps.deadlineOf(item) !== this.#deadlines[i]) continue
      deadlines.push(this.#deadlines[i]!)
      items.push(item)
    }
    this.#deadlines = deadlines
    this.#items = items
    this.#stale = 0
    for (let i = (items.length >> 1) - 1; i >= 0; i--) this.#down(i)
  }

  #pop(): T {
    const top = this.#items[0]!
    const lastDeadline = this.#deadlines.pop()!
    const lastItem = this.#items.pop()!
    if (this.#items.length > 0) {
      this.#deadlines[0] = lastDeadline
      this.#items[0] = lastItem
      this.#down(0)
    }
    return top
  }

  #up(i: number): void {
    const d = this.#deadlines
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (d[parent]! <= d[i]!) return
      this.#swap(i, parent)
      i = parent
    }
  }

  #down(i: number): void {
    const d = this.#deadlines
    const n = d.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let min = i
      if (l < n && d[l]! < d[min]!) min = l
      if (r < n && d[r]! < d[min]!) min = r
      if (min === i) return
      this.#swap(i, min)
      i = min
    }
  }

  #swap(a: number, b: number): void {
    const d = this.#deadlines
    const it = this.#items
    ;[d[a], d[b]] = [d[b]!, d[a]!]
    ;[it[a], it[b]] = [it[b]!, it[a]!]
  }
}

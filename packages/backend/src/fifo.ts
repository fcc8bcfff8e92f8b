/** A first-in, first-out queue with O(1) push and shift (Array#shift copies the array). */
export class Fifo<T> {
  #items: (T | undefined)[] = []
  #head = 0

  get length(): number {
    return this.#items.length - this.#head
  }

  push(item: T): void {
    this.#items.push(item)
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head++] = undefined
    // Compact once the consumed head is most of the array, so memory follows the live length.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return item
  }

  /** Empties the queue and returns what it held, in order. */
  drain(): T[] {
    const items = this.#items.slice(this.#head) as T[]
    this.#items = []
    this.#head = 0
    return items
  }
}

/** The sockets of this edge, by user. Generic over the socket type so it is testable without uWS. */
export class ConnectionTable<S> {
  readonly #byUser = new Map<string, Set<S>>()
  #size = 0

  get size(): number {
    return this.#size
  }

  add(userId: string, socket: S): void {
    const set = this.#byUser.get(userId)
    if (set) set.add(socket)
    else this.#byUser.set(userId, new Set([socket]))
    this.#size++
  }

  remove(userId: string, socket: S): boolean {
    const set = this.#byUser.get(userId)
    if (!set?.delete(socket)) return false
    if (set.size === 0) this.#byUser.delete(userId)
    this.#size--
    return true
  }

  /** A copy, safe to iterate while closing sockets (a close removes from the table). */
  socketsOf(userId: string): S[] {
    const set = this.#byUser.get(userId)
    return set ? [...set] : []
  }

  all(): S[] {
    const out: S[] = []
    for (const set of this.#byUser.values()) out.push(...set)
    return out
  }
}

import { gatewayOf, type RedisClient, type RedisGateway } from './gateway.js'
import * as lua from './scripts/lua.js'

/** What became of the first request under an idempotency key. */
export type IdempotencyBegin = { state: 'new' } | { state: 'in_flight' } | { state: 'mismatch' } | { state: 'done'; answer: string }

/**
 * Idempotency keys: the first request under a key is pending until it ends; its answer is then
 * kept for the retention, so a repeat gets it back instead of running again. `key` is already
 * scoped (API key, operation) and bounded in length by the caller; `fingerprint` names the
 * request's body.
 */
export interface IdempotencyStore {
  /** Marks the key pending for `pendingTtlMs` (a router that dies mid-request frees it then), or reports its state. */
  begin(key: string, fingerprint: string, pendingTtlMs: number): Promise<IdempotencyBegin>
  /** Ends the pending request: keeps `answer` for `ttlMs`, or frees the key when `answer` is undefined (it failed). */
  end(key: string, fingerprint: string, answer: string | undefined, ttlMs: number): Promise<void>
}

export class RedisIdempotencyStore implements IdempotencyStore {
  readonly #gateway: RedisGateway

  /** `options.prefix`: a client's key prefix (a gateway has its own). */
  constructor(redis: RedisClient | RedisGateway, options: { prefix?: string } = {}) {
    this.#gateway = gatewayOf(redis, 'idempotency store', options.prefix)
  }

  async begin(key: string, fingerprint: string, pendingTtlMs: number): Promise<IdempotencyBegin> {
    // The common case, a new key, is one plain SET NX; the script only reads what a key holds.
    const set = await this.#gateway.call((r) => r.set(this.#gateway.keys.idempotency(key), `p ${fingerprint}`, 'PX', pendingTtlMs, 'NX'))
    if (set === 'OK') return { state: 'new' }
    const [state, answer] = (await this.#gateway.script(lua.idemBegin, [this.#gateway.keys.idempotency(key)], [fingerprint, pendingTtlMs])) as [string, string?]
    return state === 'done' ? { state, answer: answer ?? '' } : { state: state as 'new' | 'in_flight' | 'mismatch' }
  }

  async end(key: string, fingerprint: string, answer: string | undefined, ttlMs: number): Promise<void> {
    await this.#gateway.script(lua.idemEnd, [this.#gateway.keys.idempotency(key)], [fingerprint, answer ?? '', ttlMs])
  }
}

/** The same rules in one process (standalone and tests); expiry is read on access. */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #entries = new Map<string, { fingerprint: string; answer: string | undefined; expiresAt: number }>()
  readonly #now: () => number

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now
  }

  async begin(key: string, fingerprint: string, pendingTtlMs: number): Promise<IdempotencyBegin> {
    const entry = this.#live(key)
    if (!entry) {
      this.#entries.set(key, { fingerprint, answer: undefined, expiresAt: this.#now() + pendingTtlMs })
      return { state: 'new' }
    }
    if (entry.fingerprint !== fingerprint) return { state: 'mismatch' }
    return entry.answer === undefined ? { state: 'in_flight' } : { state: 'done', answer: entry.answer }
  }

  async end(key: string, fingerprint: string, answer: string | undefined, ttlMs: number): Promise<void> {
    const entry = this.#live(key)
    if (!entry || entry.fingerprint !== fingerprint || entry.answer !== undefined) return
    if (answer === undefined) this.#entries.delete(key)
    else this.#entries.set(key, { fingerprint, answer, expiresAt: this.#now() + ttlMs })
  }

  #live(key: string) {
    const entry = this.#entries.get(key)
    if (entry && entry.expiresAt <= this.#now()) this.#entries.delete(key)
    return entry && entry.expiresAt > this.#now() ? entry : undefined
  }
}

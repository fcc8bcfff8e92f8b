import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'

/** Most sessions one router keeps: an anonymous caller (each page load makes one, for its CSRF secret) cannot grow it past this. */
export const ADMIN_SESSIONS_MAX = 10_000

/**
 * The admin's sessions, in this router's memory, each dropped once `ttlMs` has passed since
 * it was last saved, and at most `max` of them: past that, the least recently saved goes
 * first. (@fastify/session's own MemoryStore keeps every session it is given, forever.)
 * Map order is save order, and every session lives `ttlMs`, so the expired ones are at the front.
 */
export class BoundedSessionStore implements SessionStore {
  readonly #sessions = new Map<string, { session: Session; expiresAt: number }>()
  readonly #ttlMs: number
  readonly #max: number
  readonly #now: () => number

  constructor(ttlMs: number, max = ADMIN_SESSIONS_MAX, now: () => number = Date.now) {
    this.#ttlMs = ttlMs
    this.#max = max
    this.#now = now
  }

  get size(): number {
    return this.#sessions.size
  }

  set(sessionId: string, session: Session, callback: (err?: unknown) => void): void {
    const now = this.#now()
    this.#sessions.delete(sessionId)
    for (const [id, entry] of this.#sessions) {
      if (entry.expiresAt > now && this.#sessions.size < this.#max) break
      this.#sessions.delete(id)
    }
    this.#sessions.set(sessionId, { session, expiresAt: now + this.#ttlMs })
    callback()
  }

  get(sessionId: string, callback: (err: unknown, session?: Session | null) => void): void {
    const entry = this.#sessions.get(sessionId)
    if (entry && entry.expiresAt <= this.#now()) this.#sessions.delete(sessionId)
    callback(null, entry && entry.expiresAt > this.#now() ? entry.session : null)
  }

  destroy(sessionId: string, callback: (err?: unknown) => void): void {
    this.#sessions.delete(sessionId)
    callback()
  }
}

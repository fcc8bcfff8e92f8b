import { createHash } from 'node:crypto'
import { SwitchboardError, type Position } from '@switchboard/protocol'
import { gatewayOf, type RedisClient, type RedisGateway } from './gateway.js'
import { groupBy, partitionOf, type Keys } from './keys.js'
import * as lua from './scripts/lua.js'

/** A kept push as the inbox holds it: the frame without its position, and its offset. */
export interface InboxEntry {
  offset: number
  frame: string
}

/**
 * What a (re)connecting client is owed, and `head`, the inbox's position now (its last kept
 * push; offset 0 when empty). With a position: `recovered: true` and every kept push after it,
 * oldest first, or `recovered: false` when the inbox no longer holds them all (another life of
 * the inbox, entries trimmed by the length bound, or the inbox expired): never a partial
 * replay of what the position asked for. A position of another life (the inbox expired and a
 * push started it anew while the client was away) is owed the whole new life when the inbox
 * still holds it: `recovered: false`, `head` the position before its first push (offset 0)
 * and its entries, oldest first. Without a position: the head only.
 */
export interface InboxRead {
  head: Position
  recovered?: boolean
  entries: InboxEntry[]
}

export interface InboxLimits {
  /** Kept pushes per user; an older one is trimmed when a newer one is kept past this. */
  maxLen: number
  /** An inbox with no push kept for this long expires, whole. */
  ttlMs: number
}

/** Default bounds of each user's inbox of kept pushes (INBOX_MAX_LEN, INBOX_TTL_S). */
export const DEFAULT_INBOX = { maxLen: 100, ttlMs: 300_000 } as const

/**
 * Per-user inboxes of kept pushes, for missed-message recovery: the router appends before it
 * forwards, an edge reads when a client resumes. Bounded by `InboxLimits`.
 */
export interface Inbox {
  /** Appends `frame` to each user's inbox; resolves each user's position, in `userIds` order (ids must be unique). */
  append(userIds: readonly string[], frame: string): Promise<Position[]>
  /** The kept pushes after `from`, or recovered: false; creates the user's inbox, empty, when it has none, so the head is a position to resume from. */
  read(userId: string, from: Position | undefined): Promise<InboxRead>
  /** Each user's inbox position now, in `userIds` order; undefined for a user without an inbox (none is created). */
  heads(userIds: readonly string[]): Promise<(Position | undefined)[]>
}

/**
 * Inboxes in Redis: per user a LIST of frames `{pN}:in:<userId>` and a meta STRING
 * `{pN}:im:<userId>` in the user's partition slot (lua/keep.lua says how). One script call per
 * partition of the recipients, autopipelined.
 */
export class RedisInbox implements Inbox {
  readonly #gateway: RedisGateway
  /** Redis's clock minus this process's (ms), when sampled. */
  readonly #clock: { offsetMs: number | undefined; sampledAt: number; sampling: boolean } = { offsetMs: undefined, sampledAt: 0, sampling: false }
  readonly #keys: Keys
  readonly #limits: InboxLimits

  /** `options.prefix`: a client's key prefix (a gateway has its own). */
  constructor(redis: RedisClient | RedisGateway, limits: InboxLimits, options: { prefix?: string } = {}) {
    this.#gateway = gatewayOf(redis, 'inbox', options.prefix)
    this.#keys = this.#gateway.keys
    this.#limits = limits
  }

  async append(userIds: readonly string[], frame: string): Promise<Position[]> {
    const limits = this.#limits
    const notAfter = await this.#deadline()
    const byPartition = groupBy(userIds.keys(), (i) => partitionOf(userIds[i]!)) // partition -> indexes into userIds
    const positions = new Array<Position>(userIds.length)
    await Promise.all(
      [...byPartition].map(async ([p, indexes]) => {
        const keys = indexes.flatMap((i) => this.#keys.inbox(p, userIds[i]!))
        const reply = (await this.#gateway.script(lua.keep, keys, [frame, limits.maxLen, limits.ttlMs, notAfter])) as string[]
        if (reply.length === 0) throw new SwitchboardError('registry_unavailable', 'inbox append came past its deadline: nothing kept')
        indexes.forEach((i, k) => (positions[i] = { epoch: reply[2 * k]!, offset: Number(reply[2 * k + 1]) }))
      }),
    )
    return positions
  }

  async read(userId: string, from: Position | undefined): Promise<InboxRead> {
    const keys = this.#keys.inbox(partitionOf(userId), userId)
    const reply = (await this.#gateway.script(lua.inboxRead, keys, [from?.epoch ?? '', from?.offset ?? 0, this.#limits.ttlMs])) as (number | string)[]
    const head = { epoch: String(reply[1]), offset: Number(reply[2]) }
    const outcome = Number(reply[0])
    // Frames follow the position (recovered) or the head (a new life, from offset 1).
    const after = outcome === 1 ? (from?.offset ?? 0) : head.offset
    const entries: InboxEntry[] = reply.slice(3).map((frame, k) => ({ offset: after + k + 1, frame: String(frame) }))
    return outcome === 2 ? { head, entries } : { head, recovered: outcome === 1, entries }
  }

  async heads(userIds: readonly string[]): Promise<(Position | undefined)[]> {
    const byPartition = groupBy(userIds.keys(), (i) => partitionOf(userIds[i]!))
    const heads = new Array<Position | undefined>(userIds.length)
    await Promise.all(
      [...byPartition].map(async ([p, indexes]) => {
        for (let b = 0; b < indexes.length; b += HEADS_BATCH) {
          const batch = indexes.slice(b, b + HEADS_BATCH)
          const reply = (await this.#gateway.script(lua.inboxHeads, batch.map((i) => this.#keys.inbox(p, userIds[i]!)[0]), [])) as string[]
          batch.forEach((i, k) => (heads[i] = reply[2 * k] ? { epoch: reply[2 * k]!, offset: Number(reply[2 * k + 1]) } : undefined))
        }
      }),
    )
    return heads
  }

  /**
   * When the router answers 503 for an append starting now, on Redis's clock (keep.lua keeps
   * nothing past it): now + the command timeout, shifted by Redis's clock offset from this
   * process's, sampled every CLOCK_SAMPLE_MS (TIME; half its round trip counted). 0 (no fence)
   * while the offset is unknown, so a skewed clock can never refuse every kept push.
   */
  async #deadline(): Promise<number> {
    const timeoutMs = this.#gateway.commandTimeoutMs
    if (timeoutMs === undefined) return 0
    if (Date.now() - this.#clock.sampledAt >= CLOCK_SAMPLE_MS && !this.#clock.sampling) {
      this.#clock.sampling = true
      const sent = Date.now()
      this.#gateway
        .call((r) => r.time())
        .then(([s, us]) => {
          const received = Date.now()
          this.#clock.offsetMs = Number(s) * 1_000 + Math.floor(Number(us) / 1_000) - (sent + received) / 2
          this.#clock.sampledAt = received
        })
        .catch(() => undefined) // unknown or stale: the last offset (or no fence) until the next sample
        .finally(() => (this.#clock.sampling = false))
    }
    return this.#clock.offsetMs === undefined ? 0 : Math.round(Date.now() + this.#clock.offsetMs + timeoutMs)
  }
}

/** How often an inbox samples Redis's clock, for the deadline of its appends. */
const CLOCK_SAMPLE_MS = 10_000

/** Users per heads script call, so one call never blocks Redis for long. */
const HEADS_BATCH = 500

/** The same rules in one process (standalone and tests); expiry is read on access. */
export class MemoryInbox implements Inbox {
  readonly #inboxes = new Map<string, { epoch: string; last: number; entries: InboxEntry[]; expiresAt: number }>()
  readonly #limits: InboxLimits
  readonly #now: () => number

  constructor(limits: InboxLimits, options: { now?: () => number } = {}) {
    this.#limits = limits
    this.#now = options.now ?? Date.now
  }

  async append(userIds: readonly string[], frame: string): Promise<Position[]> {
    return userIds.map((userId) => {
      const inbox = this.#inbox(userId)
      inbox.last++
      inbox.entries.push({ offset: inbox.last, frame })
      if (inbox.entries.length > this.#limits.maxLen) inbox.entries.shift()
      inbox.expiresAt = this.#now() + this.#limits.ttlMs
      return { epoch: inbox.epoch, offset: inbox.last }
    })
  }

  async read(userId: string, from: Position | undefined): Promise<InboxRead> {
    const inbox = this.#inbox(userId)
    const head = { epoch: inbox.epoch, offset: inbox.last }
    if (!from) return { head, entries: [] }
    if (inbox.epoch !== from.epoch && inbox.last > 0 && inbox.entries.length === inbox.last) {
      return { head: { epoch: inbox.epoch, offset: 0 }, recovered: false, entries: [...inbox.entries] }
    }
    const entries = inbox.entries.filter((e) => e.offset > from.offset)
    const isWhole = inbox.epoch === from.epoch && from.offset <= inbox.last && entries.length === inbox.last - from.offset
    return isWhole ? { head, recovered: true, entries } : { head, recovered: false, entries: [] }
  }

  async heads(userIds: readonly string[]): Promise<(Position | undefined)[]> {
    return userIds.map((userId) => {
      const inbox = this.#live(userId)
      return inbox && { epoch: inbox.epoch, offset: inbox.last }
    })
  }

  /** The user's live inbox, created empty when it has none (expiring like a new one). */
  #inbox(userId: string) {
    let inbox = this.#live(userId)
    if (!inbox) {
      const epoch = `${this.#now()}${createHash('sha1').update(userId).digest('hex').slice(0, 8)}`
      inbox = { epoch, last: 0, entries: [], expiresAt: this.#now() + this.#limits.ttlMs }
      this.#inboxes.set(userId, inbox)
    }
    return inbox
  }

  #live(userId: string) {
    const inbox = this.#inboxes.get(userId)
    if (inbox && inbox.expiresAt <= this.#now()) this.#inboxes.delete(userId)
    return inbox && inbox.expiresAt > this.#now() ? inbox : undefined
  }
}

import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import type { PresenceEvent } from '@switchboard/protocol'
import { comparePositions, type PresenceDelivery, type StoredEvent } from '@switchboard/registry'
import type { PresenceMetrics } from './metrics.js'
import type { Attempt, Sink } from './sink.js'

export interface RelayOptions {
  registry: PresenceDelivery
  sinks: readonly Sink[]
  /** Unique per router process. */
  workerId: string
  log: Logger
  metrics: PresenceMetrics
  /** How often owned partitions are pumped (held offlines settled, new events read). */
  pollMs: number
  batchMax: number
  /** A batch smaller than batchMax waits at most this long for more events. */
  batchMs: number
  /** A batch failing for longer than this is dropped (logged and counted). */
  retryForMs: number
  /** Ends a delivery attempt: a stopping worker waits this long at most for its attempts in flight before it releases their partitions. */
  attemptTimeoutMs: number
  retryDelayMs: (attempt: number, retryAfterMs: number | undefined) => number
  /** How long a claim on partitions lasts unless renewed (renewed every fifth of it). */
  claimTtlMs?: number
  now?: () => number
}

/** How long a claim on partitions lasts unless renewed: a dead router's share is taken over after it. */
export const CLAIM_TTL_MS = 5_000

/**
 * The most an event waits for delivery when its partition changes hands between live routers
 * (one joining, or one stopping), besides the round trips (Redis, the sink): normally it is read
 * at the next pump and sent batchMs later; the giver keeps doing so until it releases the
 * partition, so at worst it was read and its batch still waiting at the release, and the taker
 * (polling while it waits, or woken by the membership change) claims it within a poll and reads
 * it again at once: two pumps and two batch waits.
 */
export function handoverBoundMs(pollMs: number, batchMs: number): number {
  return 2 * (pollMs + batchMs)
}

/** Events read per partition per pump, at most. */
const READ_COUNT = 1_000
/**
 * Events read per turn of the pump loop, all partitions together, about: a router taking over
 * partitions with a deep backlog (hours of a sink down, a million events) reads them a few
 * thousand per poll instead of 256 × READ_COUNT at once, whose parsing held its event loop
 * for seconds (pushes and presence queries past their deadlines). Each partition reads at
 * least MIN_READ_COUNT.
 */
const PUMP_BUDGET = 5_000
const MIN_READ_COUNT = 20
/** How far before this router's start a sink seen for the first time begins. */
export const NEW_SINK_LOOKBACK_MS = 60_000
/** Events buffered per partition; a sink further behind reads from Redis (see trimBuffers). */
const BUFFER_MAX = 10_000

/** The relay's two loops: the turns at sharing the partitions, and the pumps. */
type Loop = 'claim' | 'pump'

interface Buffered {
  event: StoredEvent
  /** Local time it was read: a batch waits batchMs from its oldest event's reading. */
  readAt: number
}

interface PartitionState {
  /** Position up to which events have been read into `buffer`. */
  readTo: string
  /** The position just before the buffer's first event: a sink acknowledged before it reads from Redis. */
  base: string
  buffer: Buffered[]
  /** The partition's version at the last pump: unchanged, and no hold due, means nothing to read. */
  version: string | undefined
  /** Local time the next held offline is due, if any. */
  holdDueAt: number | undefined
  /** Pump at the next turn whatever the version (just adopted, or the last pump failed). */
  stale: boolean
}

interface SinkState {
  sink: Sink
  /** Acknowledged position per owned partition. */
  acked: Map<number, string>
  inFlight: boolean
  /** The partitions of the batch in an attempt or being acknowledged now: none of them is released meanwhile. */
  busy: ReadonlySet<number> | undefined
  disabled: boolean
  /** The last failed attempt, and the last acknowledgement (local ms epoch): the admin shows them. */
  lastError?: { message: string; at: number }
  lastAckAt?: number
}

/** One sink's delivery as this router sees it, over the partitions it delivers now (admin web). */
export interface SinkStatus {
  label: string
  disabled: boolean
  /** Events read here and not yet acknowledged by the sink; a sink further behind than the buffer shows at least this many. */
  pending: number
  /** ms since the oldest of them happened (0: caught up). */
  oldestPendingMs: number
  lastError?: { message: string; at: number }
  lastAckAt?: number
}

export interface RelayStatus {
  /** This router's id among the presence workers (host, pid and a random part). */
  workerId: string
  /** Partitions this router delivers, of `partitions`: the others are another router's. */
  owned: number
  partitions: number
  sinks: SinkStatus[]
}

/**
 * A router's presence delivery worker. It claims its share of the event partitions (one
 * worker per partition across all routers, so a user's events go out in order), pumps them
 * (settling held offlines, reading new events), and hands each sink batches in order: a sink
 * gets its next batch only once the previous one is acknowledged, and its acknowledgement is
 * stored per partition, so another router resumes there if this one dies. A slow or failing
 * sink holds back only itself.
 */
export class PresenceRelay {
  readonly #o: RelayOptions
  readonly #now: () => number
  readonly #partitions = new Map<number, PartitionState>()
  readonly #sinks: SinkState[]
  /** Pending sleeps, by timer, with what ends them early (stop(), or #wake for their loop). */
  readonly #sleeps = new Map<NodeJS.Timeout, { loop: Loop | undefined; end: () => void }>()
  #stopped = false
  /** The turn in progress (claiming, releasing): stop() waits for it before leaving. */
  #turning: Promise<number> | undefined
  /** Owned partitions another worker waits for: released at a turn once no batch of theirs is in flight. */
  #giving = new Set<number>()
  /** Owned partitions no new batch starts for: given, and being released or about to be. */
  readonly #paused = new Set<number>()
  /** The workers' membership at the last turn: a change (a router joined or left) brings the next turn forward. */
  #membership: string | undefined
  /** Local time until which the current claim is certainly held. */
  #claimValidUntil = 0
  readonly #claimTtlMs: number
  #failing = false
  readonly #startedAt: number

  constructor(options: RelayOptions) {
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#startedAt = this.#now()
    this.#claimTtlMs = options.claimTtlMs ?? CLAIM_TTL_MS
    this.#sinks = options.sinks.map((sink) => ({ sink, acked: new Map(), inFlight: false, busy: undefined, disabled: false }))
    // Every sink's series exist from the start, so dashboards and alerts see them at 0.
    for (const { label } of options.sinks) {
      for (const outcome of ['ack', 'retry', 'gone', 'dropped']) options.metrics.deliveries.inc({ sink: label, outcome }, 0)
      options.metrics.lag.zero({ sink: label })
      options.metrics.disabled.set({ sink: label }, 0)
      options.metrics.oldestUnacked.set({ sink: label }, 0)
    }
  }

  start(): void {
    void this.#claimLoop()
    void this.#pumpLoop()
  }

  /**
   * Stops delivering: no new batch or attempt; the attempts in flight end (within
   * attemptTimeoutMs) and their acknowledgements are stored; then this worker leaves, releasing
   * its partitions, so the other routers take them at their next turn rather than when its
   * claim lapses (CLAIM_TTL_MS).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    for (const [timer, { end }] of this.#sleeps) {
      clearTimeout(timer)
      end()
    }
    this.#sleeps.clear()
    await this.#turning
    // The idle partitions at once; those with an attempt in flight once it has ended.
    await this.#leave()
    const deadline = this.#now() + this.#o.attemptTimeoutMs + 1_000
    while (this.#sinks.some((s) => s.busy) && this.#now() < deadline) await new Promise((r) => setTimeout(r, 10))
    if (this.#partitions.size > 0) await this.#leave()
    this.#o.metrics.partitions.set(this.#partitions.size)
  }

  /** Leaves the workers, releasing every partition with no attempt in flight. */
  async #leave(): Promise<void> {
    const release = [...this.#partitions.keys()].filter((p) => !this.#isBusy(p))
    try {
      await this.#o.registry.leavePartitions(this.#o.workerId, release)
      for (const p of release) this.#forget(p)
    } catch (err) {
      this.#o.log.warn({ err }, 'presence delivery: releasing partitions at stop failed; the other routers take them when the claim lapses')
    }
  }

  /** Partitions this worker delivers now. */
  get owned(): number[] {
    return [...this.#partitions.keys()]
  }

  /** Each sink's backlog and last outcome here, for the admin web. */
  status(): RelayStatus {
    const now = this.#now()
    const sinks = this.#sinks.map((s): SinkStatus => {
      const { pending, oldestTs } = this.#pendingOf(s)
      const status: SinkStatus = { label: s.sink.label, disabled: s.disabled, pending, oldestPendingMs: oldestTs === undefined ? 0 : Math.max(0, now - oldestTs) }
      if (s.lastError) status.lastError = { ...s.lastError }
      if (s.lastAckAt !== undefined) status.lastAckAt = s.lastAckAt
      return status
    })
    return { workerId: this.#o.workerId, owned: this.#partitions.size, partitions: this.#o.registry.partitions, sinks }
  }

  async #claimLoop(): Promise<void> {
    while (!this.#stopped) {
      this.#turning = this.#turn()
      const nextInMs = await this.#turning
      this.#turning = undefined
      await this.#sleep(nextInMs, 'claim')
    }
  }

  /**
   * One turn at sharing the partitions: releases the given ones with no batch in flight (the
   * others start no new batch, so a later turn releases them), renews and takes the rest.
   * Returns when the next turn is due: a poll away while partitions are changing hands.
   */
  async #turn(): Promise<number> {
    const started = this.#now()
    const release = [...this.#giving].filter((p) => this.#partitions.has(p) && !this.#isBusy(p))
    for (const p of this.#giving) this.#paused.add(p)
    try {
      const claim = await this.#o.registry.claimPartitions(this.#o.workerId, this.#claimTtlMs, release)
      this.#claimValidUntil = started + this.#claimTtlMs * 0.9
      this.#membership = claim.membership
      this.#giving = new Set(claim.giving)
      await this.#adopt(new Set(claim.owned))
      for (const p of this.#paused) if (!this.#giving.has(p) || !this.#partitions.has(p)) this.#paused.delete(p)
      if (this.#failing) this.#o.log.info('presence delivery: registry reachable again')
      this.#failing = false
      return claim.giving.length > 0 || claim.isWaiting ? this.#o.pollMs : this.#claimTtlMs / 5
    } catch (err) {
      // Whether the release happened is unknown: deliver those no more unless a turn says they are still ours.
      for (const p of release) this.#forget(p)
      this.#o.metrics.partitions.set(this.#partitions.size)
      if (!this.#failing) this.#o.log.warn({ err }, 'presence delivery: claiming partitions failed')
      this.#failing = true
      return this.#claimTtlMs / 5
    }
  }

  #isBusy(p: number): boolean {
    return this.#sinks.some((s) => s.busy?.has(p))
  }

  /** Whether a new batch or attempt may carry this partition's events. */
  #isDeliverable(p: number): boolean {
    return this.#partitions.has(p) && !this.#paused.has(p)
  }

  #forget(p: number): void {
    this.#partitions.delete(p)
    this.#paused.delete(p)
    this.#giving.delete(p)
    for (const s of this.#sinks) s.acked.delete(p)
    this.#o.metrics.backlog.remove(String(p))
  }

  /** Starts delivering newly owned partitions from each sink's acknowledgement; forgets the others. */
  async #adopt(owned: Set<number>): Promise<void> {
    const { registry } = this.#o
    for (const p of this.#partitions.keys()) if (!owned.has(p)) this.#forget(p)
    const ids = this.#sinks.map((s) => s.sink.id)
    const taken = [...owned].filter((p) => !this.#partitions.has(p))
    // One round trip for all (pipelined), not one per partition: half the partitions move at a join.
    const acks = await Promise.all(taken.map((p) => registry.acknowledged(p, ids)))
    // A sink that never acknowledged here starts a little before this router did: a newly
    // configured endpoint gets no retained history beyond that, and nothing since.
    const start = `${Math.max(0, this.#startedAt - NEW_SINK_LOOKBACK_MS)}-0`
    taken.forEach((p, i) => {
      const positions = acks[i]!.map((a) => a ?? start)
      this.#sinks.forEach((s, j) => s.acked.set(p, positions[j]!))
      const readTo = positions.reduce((min, pos) => (comparePositions(pos, min) < 0 ? pos : min), positions[0] ?? '0-0')
      this.#partitions.set(p, { readTo, base: readTo, buffer: [], version: undefined, holdDueAt: undefined, stale: true })
    })
    this.#o.metrics.partitions.set(this.#partitions.size)
    // Partitions taken over are pumped at once, not at the next poll.
    if (taken.length > 0) this.#wake('pump')
  }

  async #pumpLoop(): Promise<void> {
    while (!this.#stopped) {
      await this.#pumpChanged()
      for (const s of this.#sinks) this.#deliver(s)
      this.#trimBuffers()
      this.#updateGauges()
      await this.#sleep(this.#o.pollMs, 'pump')
    }
  }

  /**
   * Pumps the partitions that changed since their last pump (one plain GET each, so an idle
   * partition costs no script), whose held offline is due, or whose last pump failed.
   */
  async #pumpChanged(): Promise<void> {
    const owned = [...this.#partitions]
    let versions: (string | undefined)[]
    try {
      let membership: string
      ;[versions, membership] = await Promise.all([this.#o.registry.versions(owned.map(([p]) => p)), this.#o.registry.membership()])
      // A router joined or left: its share changes hands at a turn taken now, not up to a fifth of the claim's TTL later.
      if (this.#membership !== undefined && membership !== this.#membership) this.#wake('claim')
    } catch (err) {
      if (!this.#failing) this.#o.log.warn({ err }, 'presence delivery: reading partition versions failed')
      this.#failing = true
      return
    }
    const now = this.#now()
    const changed = owned.flatMap(([p, state], i) => {
      const due = state.holdDueAt !== undefined && state.holdDueAt <= now
      return !state.stale && !due && versions[i] === state.version ? [] : [{ p, state, version: versions[i] }]
    })
    const count = Math.min(READ_COUNT, Math.max(MIN_READ_COUNT, Math.floor(PUMP_BUDGET / Math.max(1, changed.length))))
    await Promise.all(changed.map(({ p, state, version }) => this.#pump(p, state, version, count)))
  }

  async #pump(p: number, state: PartitionState, version: string | undefined, count: number): Promise<void> {
    try {
      const { events, nextHoldInMs } = await this.#o.registry.pump(p, state.readTo, count)
      if (this.#partitions.get(p) !== state) return // given up meanwhile
      // A full page may have more behind it: read again next turn.
      state.stale = events.length === count
      state.version = version
      state.holdDueAt = nextHoldInMs === undefined ? undefined : this.#now() + nextHoldInMs
      const readAt = this.#now()
      for (const event of events) {
        state.buffer.push({ event, readAt })
        this.#o.metrics.events.inc({ type: event.type, cause: event.cause })
      }
      if (events.length > 0) state.readTo = events.at(-1)!.position
    } catch (err) {
      state.stale = true
      if (!this.#failing) this.#o.log.warn({ err, partition: p }, 'presence delivery: reading events failed')
      this.#failing = true
    }
  }

  /** Sends the sink its next batch if it has none in flight and one is ready. */
  #deliver(s: SinkState): void {
    if (s.inFlight || s.disabled || this.#stopped) return
    s.inFlight = true
    let sent = false
    void this.#nextBatch(s)
      .then(async (batch) => {
        if (!batch) return
        await this.#send(s, batch)
        sent = true
      })
      .catch((err: unknown) => {
        if (!this.#failing) this.#o.log.warn({ err, sink: s.sink.label }, 'presence delivery: reading a lagging sink\'s events failed')
      })
      .finally(() => {
        s.inFlight = false
        this.#trimBuffers()
        if (sent) this.#deliver(s) // the next batch at once when there is a backlog, not at the next poll
      })
  }

  /**
   * The sink's next batch, in each partition's order: from the shared buffer, or from Redis for
   * a partition where the sink fell behind what the buffer still holds. Undefined while it is
   * smaller than batchMax and its oldest event was read less than batchMs ago.
   */
  async #nextBatch(s: SinkState): Promise<StoredEvent[] | undefined> {
    const batch: StoredEvent[] = []
    let oldestReadAt = Infinity
    for (const [p, state] of this.#partitions) {
      if (this.#paused.has(p)) continue
      const room = this.#o.batchMax - batch.length
      if (room <= 0) break
      const acked = s.acked.get(p) ?? '0-0'
      if (comparePositions(acked, state.base) < 0) {
        const { events } = await this.#o.registry.pump(p, acked, room)
        batch.push(...events.filter((e) => comparePositions(e.position, state.readTo) <= 0))
        oldestReadAt = 0
        continue
      }
      for (const b of state.buffer) {
        if (batch.length >= this.#o.batchMax) break
        if (comparePositions(b.event.position, acked) <= 0) continue
        batch.push(b.event)
        oldestReadAt = Math.min(oldestReadAt, b.readAt)
      }
    }
    if (batch.length === 0) return undefined
    if (batch.length < this.#o.batchMax && this.#now() - oldestReadAt < this.#o.batchMs) return undefined
    return batch
  }

  /** Sends one batch until acknowledged, dropped after retryForMs, the sink is gone, or a partition of it is given. */
  async #send(s: SinkState, batch: StoredEvent[]): Promise<void> {
    const { log, metrics } = this.#o
    const label = s.sink.label
    const batchId = `msg_${createHash('sha256').update(batch.map((e) => e.id).join(',')).digest('base64url').slice(0, 24)}`
    const body: PresenceEvent[] = batch.map(({ id, type, userId, ver, cause, connections, ts }) => ({ id, type, userId, ver, cause, connections, ts }))
    const partitions: ReadonlySet<number> = new Set(batch.map((e) => e.partition))
    const firstAt = this.#now()
    for (let attempt = 0; !this.#stopped; attempt++) {
      // Given up, or being given: no attempt (the new owner resends from the acknowledgements).
      if ([...partitions].some((p) => !this.#isDeliverable(p))) return
      if (this.#now() > this.#claimValidUntil) {
        // Our claim may have lapsed (a stall): another router may own these partitions now.
        await this.#sleep(this.#o.pollMs)
        continue
      }
      let delayMs: number
      // From the attempt until its outcome is stored, none of these partitions is released:
      // whoever delivers them next starts from what this attempt came to.
      s.busy = partitions
      try {
        const result: Attempt = await s.sink.send(batchId, body).catch((err: unknown) => ({ outcome: 'retry' as const, error: String(err) }))
        metrics.deliveries.inc({ sink: label, outcome: result.outcome })
        if (result.outcome === 'ack') {
          s.lastAckAt = this.#now()
          return await this.#acknowledge(s, batch)
        }
        s.lastError = { message: result.error, at: this.#now() }
        if (result.outcome === 'gone') {
          s.disabled = true
          metrics.disabled.set({ sink: label }, 1)
          log.error({ sink: label }, 'presence webhook endpoint answered 410 Gone: disabled; no more events are sent to it until the routers restart')
          return
        }
        if (this.#now() - firstAt > this.#o.retryForMs) {
          metrics.deliveries.inc({ sink: label, outcome: 'dropped' })
          log.error({ sink: label, events: batch.length, error: result.error }, 'presence delivery: batch dropped after failing for the whole retry window')
          return await this.#acknowledge(s, batch)
        }
        if (attempt === 0) log.warn({ sink: label, error: result.error }, 'presence delivery failed; retrying with backoff')
        delayMs = this.#o.retryDelayMs(attempt, result.outcome === 'retry' ? result.retryAfterMs : undefined)
      } finally {
        s.busy = undefined
      }
      // Not busy while waiting: a partition given meanwhile is released, and this batch ends at the check above.
      await this.#sleep(delayMs)
    }
  }

  async #acknowledge(s: SinkState, batch: readonly StoredEvent[]): Promise<void> {
    const last = new Map<number, string>()
    for (const e of batch) last.set(e.partition, e.position)
    const now = this.#now()
    for (const e of batch) this.#o.metrics.lag.observe({ sink: s.sink.label }, Math.max(0, now - e.ts) / 1_000)
    // Stored for whoever delivers the partition next, all at once (one pipelined write, not a
    // round trip per partition); a failed write only means a resend.
    const stored = [...last].filter(([p]) => this.#partitions.has(p)).map(([p, position]) => {
      s.acked.set(p, position)
      return this.#o.registry.acknowledge(p, s.sink.id, position)
    })
    const failed = (await Promise.allSettled(stored)).find((r) => r.status === 'rejected')
    if (failed) this.#o.log.warn({ err: failed.reason }, 'presence delivery: storing acknowledgements failed; those events may be sent again')
  }

  /**
   * Drops buffered events every active sink has acknowledged, and the oldest beyond BUFFER_MAX:
   * a sink that falls that far behind reads its events from Redis, so it never holds back the
   * others.
   */
  #trimBuffers(): void {
    const active = this.#sinks.filter((s) => !s.disabled)
    for (const [p, state] of this.#partitions) {
      let keep = 0
      while (keep < state.buffer.length && active.every((s) => comparePositions(state.buffer[keep]!.event.position, s.acked.get(p) ?? '0-0') <= 0)) keep++
      keep = Math.max(keep, state.buffer.length - BUFFER_MAX)
      if (keep > 0) state.base = state.buffer.splice(0, keep).at(-1)!.event.position
    }
  }

  #updateGauges(): void {
    const now = this.#now()
    for (const [p, state] of this.#partitions) this.#o.metrics.backlog.set({ partition: String(p) }, state.buffer.length)
    for (const s of this.#sinks) {
      const { oldestTs } = this.#pendingOf(s)
      this.#o.metrics.oldestUnacked.set({ sink: s.sink.label }, oldestTs === undefined ? 0 : Math.max(0, now - oldestTs) / 1_000)
    }
  }

  /**
   * What `s` has not acknowledged of the buffered events (a buffer is in position order, so
   * they are its tail after the first one past `acked`): how many, and when the oldest happened.
   */
  #pendingOf(s: SinkState): { pending: number; oldestTs: number | undefined } {
    let pending = 0
    let oldestTs: number | undefined
    for (const [p, state] of this.#partitions) {
      const acked = s.acked.get(p) ?? '0-0'
      const first = state.buffer.findIndex((b) => comparePositions(b.event.position, acked) > 0)
      if (first < 0) continue
      pending += state.buffer.length - first
      oldestTs = Math.min(oldestTs ?? Infinity, state.buffer[first]!.event.ts)
    }
    return { pending, oldestTs }
  }

  /** Resolves after `ms`, or at once when stop() is called or `loop` is woken. */
  #sleep(ms: number, loop?: Loop): Promise<void> {
    if (this.#stopped) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleeps.delete(timer)
        resolve()
      }, ms)
      this.#sleeps.set(timer, { loop, end: resolve })
    })
  }

  /** Ends the loop's current sleep, so its next round starts now. */
  #wake(loop: Loop): void {
    for (const [timer, sleep] of this.#sleeps) {
      if (sleep.loop !== loop) continue
      clearTimeout(timer)
      this.#sleeps.delete(timer)
      sleep.end()
    }
  }
}

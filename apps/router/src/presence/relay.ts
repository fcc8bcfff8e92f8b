import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import type { PresenceEvent } from '@switchboard/protocol'
import { comparePositions, type PresenceLog, type StoredEvent } from '@switchboard/registry'
import type { PresenceMetrics } from './metrics.js'
import type { Attempt, Sink } from './sink.js'

export interface RelayOptions {
  registry: PresenceLog
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
  /** Ends a delivery attempt; a partition given up waits this plus a margin before another router takes it. */
  attemptTimeoutMs: number
  retryDelayMs: (attempt: number, retryAfterMs: number | undefined) => number
  /** How long a claim on partitions lasts unless renewed (renewed every fifth of it). */
  claimTtlMs?: number
  now?: () => number
}

/** How long a claim on partitions lasts unless renewed: a dead router's share is taken over after it. */
export const CLAIM_TTL_MS = 5_000
/** Events read per partition per pump. */
const READ_COUNT = 1_000
/** How far before this router's start a sink seen for the first time begins. */
export const NEW_SINK_LOOKBACK_MS = 60_000
/** Events buffered per partition; a sink further behind reads from Redis (see trimBuffers). */
const BUFFER_MAX = 10_000

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
  #timers = new Set<NodeJS.Timeout>()
  #stopped = false
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
    this.#sinks = options.sinks.map((sink) => ({ sink, acked: new Map(), inFlight: false, disabled: false }))
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

  async stop(): Promise<void> {
    this.#stopped = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
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
      const started = this.#now()
      try {
        const owned = await this.#o.registry.claimPartitions(this.#o.workerId, this.#claimTtlMs, this.#o.attemptTimeoutMs + 1_000)
        this.#claimValidUntil = started + this.#claimTtlMs * 0.9
        await this.#adopt(new Set(owned))
        if (this.#failing) this.#o.log.info('presence delivery: registry reachable again')
        this.#failing = false
      } catch (err) {
        if (!this.#failing) this.#o.log.warn({ err }, 'presence delivery: claiming partitions failed')
        this.#failing = true
      }
      await this.#sleep(this.#claimTtlMs / 5)
    }
  }

  /** Starts delivering newly owned partitions from each sink's acknowledgement; forgets the others. */
  async #adopt(owned: Set<number>): Promise<void> {
    const { registry } = this.#o
    for (const p of this.#partitions.keys()) {
      if (owned.has(p)) continue
      this.#partitions.delete(p)
      for (const s of this.#sinks) s.acked.delete(p)
      this.#o.metrics.backlog.remove(String(p))
    }
    const ids = this.#sinks.map((s) => s.sink.id)
    for (const p of owned) {
      if (this.#partitions.has(p)) continue
      const acks = await registry.acknowledged(p, ids)
      // A sink that never acknowledged here starts a little before this router did: a newly
      // configured endpoint gets no retained history beyond that, and nothing since.
      const start = `${Math.max(0, this.#startedAt - NEW_SINK_LOOKBACK_MS)}-0`
      const positions = acks.map((a) => a ?? start!)
      this.#sinks.forEach((s, i) => s.acked.set(p, positions[i]!))
      const readTo = positions.reduce((min, pos) => (comparePositions(pos, min) < 0 ? pos : min), positions[0] ?? '0-0')
      if (!this.#partitions.has(p) && owned.has(p)) this.#partitions.set(p, { readTo, base: readTo, buffer: [], version: undefined, holdDueAt: undefined, stale: true })
    }
    this.#o.metrics.partitions.set(this.#partitions.size)
  }

  async #pumpLoop(): Promise<void> {
    while (!this.#stopped) {
      await this.#pumpChanged()
      for (const s of this.#sinks) this.#deliver(s)
      this.#trimBuffers()
      this.#updateGauges()
      await this.#sleep(this.#o.pollMs)
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
      versions = await this.#o.registry.versions(owned.map(([p]) => p))
    } catch (err) {
      if (!this.#failing) this.#o.log.warn({ err }, 'presence delivery: reading partition versions failed')
      this.#failing = true
      return
    }
    const now = this.#now()
    await Promise.all(
      owned.map(([p, state], i) => {
        const due = state.holdDueAt !== undefined && state.holdDueAt <= now
        if (!state.stale && !due && versions[i] === state.version) return undefined
        return this.#pump(p, state, versions[i])
      }),
    )
  }

  async #pump(p: number, state: PartitionState, version: string | undefined): Promise<void> {
    try {
      const { events, nextHoldInMs } = await this.#o.registry.pump(p, state.readTo, READ_COUNT)
      if (this.#partitions.get(p) !== state) return // given up meanwhile
      // A full page may have more behind it: read again next turn.
      state.stale = events.length === READ_COUNT
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

  /** Sends one batch until acknowledged, dropped after retryForMs, or the sink is gone. */
  async #send(s: SinkState, batch: StoredEvent[]): Promise<void> {
    const { log, metrics } = this.#o
    const label = s.sink.label
    const batchId = `msg_${createHash('sha256').update(batch.map((e) => e.id).join(',')).digest('base64url').slice(0, 24)}`
    const body: PresenceEvent[] = batch.map(({ id, type, userId, ver, cause, connections, ts }) => ({ id, type, userId, ver, cause, connections, ts }))
    const firstAt = this.#now()
    for (let attempt = 0; !this.#stopped; attempt++) {
      if (this.#now() > this.#claimValidUntil) {
        // Our claim may have lapsed (a stall): another router may own these partitions now.
        await this.#sleep(this.#o.pollMs)
        if (batch.some((e) => !this.#partitions.has(e.partition))) return
        continue
      }
      const result: Attempt = await s.sink.send(batchId, body).catch((err: unknown) => ({ outcome: 'retry' as const, error: String(err) }))
      metrics.deliveries.inc({ sink: label, outcome: result.outcome })
      if (result.outcome === 'ack') {
        s.lastAckAt = this.#now()
        return this.#acknowledge(s, batch)
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
        return this.#acknowledge(s, batch)
      }
      if (attempt === 0) log.warn({ sink: label, error: result.error }, 'presence delivery failed; retrying with backoff')
      await this.#sleep(this.#o.retryDelayMs(attempt, result.outcome === 'retry' ? result.retryAfterMs : undefined))
      if (batch.some((e) => !this.#partitions.has(e.partition))) return // given up meanwhile: its new owner resends
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

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        resolve()
      }, ms)
      this.#timers.add(timer)
    })
  }
}

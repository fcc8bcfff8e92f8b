import type { Counter, Registry as PromRegistry } from 'prom-client'
import type { RouterRegistry } from '@switchboard/registry'
import { RECIPIENTS_METRIC } from '../metrics.js'

/** One point of the admin's charts. */
export interface TrafficSample {
  /** ms epoch. */
  at: number
  /** Connections on every live edge (null: the registry could not be read). */
  connections: number | null
  /** This router's push recipients per second since the previous sample, by result (`routed`: handed to an edge by a `wait: "routed"` push). */
  delivered: number
  routed: number
  offline: number
  failed: number
}

export interface TrafficOptions {
  /** Where the router counts its recipients (`router_recipients_total`): the same figures as Grafana's. */
  promRegistry: PromRegistry
  registry: Pick<RouterRegistry, 'liveNodes'>
  everyMs: number
  /** Samples kept: the chart's width in time is keep × everyMs. */
  keep: number
  now?: () => number
}

/** The charts: a point every 2 s over the last 5 minutes. */
export const TRAFFIC_EVERY_MS = 2_000
export const TRAFFIC_KEEP = 150

const RESULTS = ['delivered', 'routed', 'offline', 'failed'] as const
type Result = (typeof RESULTS)[number]

/**
 * The last minutes of traffic for the admin's charts, sampled in this router: the cluster's
 * connections, and the rate of this router's push recipients by result. It only reads what
 * the metrics and the lease renewals already hold; nothing is sampled per push.
 */
export class TrafficHistory {
  readonly #o: TrafficOptions
  readonly #now: () => number
  readonly #samples: TrafficSample[] = []
  #previous: { at: number; totals: Record<Result, number> } | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(options: TrafficOptions) {
    this.#o = options
    this.#now = options.now ?? Date.now
  }

  start(): void {
    void this.sample()
    this.#timer = setInterval(() => void this.sample(), this.#o.everyMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /** Oldest first. */
  samples(): readonly TrafficSample[] {
    return this.#samples
  }

  /** Takes one sample now (the timer calls it; tests call it directly). */
  async sample(): Promise<void> {
    const at = this.#now()
    const totals = await this.#recipientTotals()
    const connections = await this.#o.registry.liveNodes().then(
      (nodes) => nodes.reduce((sum, n) => sum + n.connections, 0),
      () => null,
    )
    const previous = this.#previous
    this.#previous = { at, totals }
    if (!previous) return // rates need two readings
    const seconds = Math.max(1, at - previous.at) / 1_000
    const rate = (r: Result) => Math.max(0, totals[r] - previous.totals[r]) / seconds
    this.#samples.push({ at, connections, delivered: rate('delivered'), routed: rate('routed'), offline: rate('offline'), failed: rate('failed') })
    if (this.#samples.length > this.#o.keep) this.#samples.shift()
  }

  async #recipientTotals(): Promise<Record<Result, number>> {
    const totals = Object.fromEntries(RESULTS.map((r) => [r, 0])) as Record<Result, number>
    const counter = this.#o.promRegistry.getSingleMetric(RECIPIENTS_METRIC) as Counter<'result'> | undefined
    for (const { labels, value } of (await counter?.get())?.values ?? []) {
      const result = labels.result as keyof typeof totals | undefined
      if (result && result in totals) totals[result] += value
    }
    return totals
  }
}

import type { Counter, Registry as PromRegistry } from 'prom-client'
import type { RouterRegistry } from '@switchboard/registry'
import { RECIPIENTS_METRIC, RECIPIENT_RESULTS, type RecipientResult } from '../metrics.js'

/**
 * One point of the admin's charts: when (ms epoch), the connections on every live edge (null:
 * the registry could not be read), and this router's push recipients per second since the
 * previous sample, by result (RECIPIENT_RESULTS).
 */
export type TrafficSample = { at: number; connections: number | null } & Record<RecipientResult, number>

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


/**
 * The last minutes of traffic for the admin's charts, sampled in this router: the cluster's
 * connections, and the rate of this router's push recipients by result. It only reads what
 * the metrics and the lease renewals already hold; nothing is sampled per push.
 */
export class TrafficHistory {
  readonly #o: TrafficOptions
  readonly #now: () => number
  readonly #samples: TrafficSample[] = []
  #previous: { at: number; totals: Record<RecipientResult, number> } | undefined
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
    const rates = Object.fromEntries(RECIPIENT_RESULTS.map((r) => [r, Math.max(0, totals[r] - previous.totals[r]) / seconds])) as Record<RecipientResult, number>
    this.#samples.push({ at, connections, ...rates })
    if (this.#samples.length > this.#o.keep) this.#samples.shift()
  }

  async #recipientTotals(): Promise<Record<RecipientResult, number>> {
    const totals = Object.fromEntries(RECIPIENT_RESULTS.map((r) => [r, 0])) as Record<RecipientResult, number>
    const counter = this.#o.promRegistry.getSingleMetric(RECIPIENTS_METRIC) as Counter<'result'> | undefined
    for (const { labels, value } of (await counter?.get())?.values ?? []) {
      const result = labels.result as keyof typeof totals | undefined
      if (result && result in totals) totals[result] += value
    }
    return totals
  }
}

import type { Logger } from 'pino'
import type { RegistryJanitor } from '@switchboard/registry'

export interface ReaperOptions {
  registry: RegistryJanitor
  log: Logger
  graceMs: number
  /**
   * After this router lost its registry access, or while the registry's data is younger than
   * this (a Redis restarted or failed over), lapsed leases last renewed before then wait this
   * long, so edges that lived through the outage renew before being judged (ReapGuard).
   */
  settleMs: number
  intervalMs?: number
}

/**
 * Periodically cleans up the entries of dead edges. Idempotent, so every router may run one.
 * A router that just started reaps at once: whether a lapse proves an edge dead is the
 * registry's to tell (ReapGuard), not a wait from this process's start.
 */
export function startReaper(options: ReaperOptions): () => void {
  const { registry, log, graceMs, settleMs } = options
  /** ms epoch of this router's latest failed registry call (undefined: none since it started). */
  let failedAt: number | undefined
  let isFailing = false
  let isRunning = false
  const timer = setInterval(() => {
    // A call still running (Redis slow or unreachable until its command timeout) is not doubled.
    if (isRunning) return
    isRunning = true
    registry.reap(graceMs, { settleMs, accessMs: failedAt === undefined ? undefined : Date.now() - failedAt }).then(
      (reaped) => {
        if (isFailing) log.info({ settleMs }, 'reaper: registry reachable again; leases that lapsed meanwhile wait for their edges to renew')
        isFailing = false
        if (reaped > 0) log.info({ reaped }, 'reaped dead edges')
      },
      (err: unknown) => {
        if (!isFailing) log.warn({ err }, 'reaping failed')
        isFailing = true
        failedAt = Date.now()
      },
    ).finally(() => {
      isRunning = false
    })
  }, options.intervalMs ?? 1_000)
  timer.unref()
  return () => clearInterval(timer)
}

import type { Logger } from 'pino'
import type { Registry } from '@switchboard/registry'

export interface ReaperOptions {
  registry: Registry
  log: Logger
  graceMs: number
  /** Reaping waits for this much continuous registry access, so edges that lived through a Redis outage renew before being judged. */
  settleMs: number
  intervalMs?: number
}

/** Periodically cleans up the entries of dead edges. Idempotent, so every router may run one. */
export function startReaper(options: ReaperOptions): () => void {
  const { registry, log, graceMs, settleMs } = options
  let reachableSince = Date.now()
  let failing = false
  const timer = setInterval(() => {
    if (Date.now() - reachableSince < settleMs) return
    registry.reap(graceMs).then(
      (reaped) => {
        failing = false
        if (reaped > 0) log.info({ reaped }, 'reaped dead edges')
      },
      (err: unknown) => {
        if (!failing) log.warn({ err }, 'reaping failed')
        failing = true
        reachableSince = Date.now()
      },
    )
  }, options.intervalMs ?? 1_000)
  timer.unref()
  return () => clearInterval(timer)
}

import type { Located } from '@switchboard/registry'

type Locate = (userIds: readonly string[]) => Promise<Map<string, Located[]>>

interface Batch {
  isSent: boolean
  ids: string[]
  waiters: { resolve(found: Map<string, Located[]>): void; reject(err: unknown): void }[]
}

export interface BatchOptions {
  /** A batch stops growing at this many user ids. */
  maxIds?: number
  /**
   * ROUTER_COALESCE_MS: 0 sends each batch once its turn's I/O callbacks have run. More holds
   * a batch open this long from its first lookup while lookups arrive more often than one per
   * half of it (so that it gathers at least two): the pushes of several turns share one Redis
   * call, and after it one link frame per edge and one answer frame per backend. Slower
   * traffic goes as with 0, so the window costs latency only where it saves turns.
   */
  windowMs?: number
  /** ms, monotonic; `performance.now` unless a test gives its own. */
  now?: () => number
}

/**
 * How much the newest gap between two lookups weighs in their moving average, and the most a
 * gap counts (in windows): a quiet spell does not keep a busy router from coalescing for long.
 */
const GAP_WEIGHT = 1 / 8
const MAX_GAP_WINDOWS = 4

/**
 * Lookups of every request that arrived in one event-loop turn (or coalescing window) go to
 * the registry as one call (one pipeline per Redis master), made once the turn's I/O callbacks
 * have run (setImmediate) or, while lookups come faster than one per half window (their mean
 * gap), once the window closes. Node's timers fire on whole milliseconds, so a window is held
 * only where it gathers pushes: a window held at the rate of one lookup per window would delay
 * each by a millisecond and gather nothing. ioredis's own autopipelining flushes on nextTick,
 * which inside a uWS callback means once per request; this makes it once per turn at most.
 * Each caller gets the batch's whole map and reads only its own users. One timer per batch,
 * never one per request.
 */
export function batchLocates(locate: Locate, { maxIds = 10_000, windowMs = 0, now = () => performance.now() }: BatchOptions = {}): Locate {
  let open: Batch | undefined
  let lastAt = -Infinity
  let meanGapMs = Infinity
  const flush = (batch: Batch) => {
    if (batch.isSent) return // sent early: it had reached maxIds
    batch.isSent = true
    if (open === batch) open = undefined
    locate(batch.ids).then(
      (found) => batch.waiters.forEach((w) => w.resolve(found)),
      (err: unknown) => batch.waiters.forEach((w) => w.reject(err)),
    )
  }
  /** Whether lookups come faster than one per half window, by the moving average of their gaps. */
  const isBusy = () => {
    if (windowMs === 0) return false
    const at = now()
    const gap = Math.min(at - lastAt, MAX_GAP_WINDOWS * windowMs)
    lastAt = at
    meanGapMs = meanGapMs === Infinity ? gap : meanGapMs + GAP_WEIGHT * (gap - meanGapMs)
    return meanGapMs < windowMs / 2
  }
  return (userIds) =>
    new Promise((resolve, reject) => {
      const busy = isBusy()
      if (open && open.ids.length + userIds.length > maxIds) flush(open)
      if (!open) {
        const batch: Batch = { isSent: false, ids: [], waiters: [] }
        open = batch
        if (busy) setTimeout(() => flush(batch), windowMs)
        else setImmediate(() => flush(batch))
      }
      for (const id of userIds) open.ids.push(id)
      open.waiters.push({ resolve, reject })
    })
}

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
   * ROUTER_COALESCE_MS: the least time between two batches. 0 sends each batch once its turn's
   * I/O callbacks have run. More holds a batch that opens sooner than this after the last one
   * went until this long after it, so the pushes of several turns share one Redis call, and
   * after it one link frame per edge and one answer frame per backend; a batch that opens
   * after a quiet spell goes at once, as with 0.
   */
  windowMs?: number
  /** ms, monotonic; `performance.now` unless a test gives its own. */
  now?: () => number
}

/**
 * Lookups of every request that arrived in one event-loop turn (or coalescing window) go to
 * the registry as one call (one pipeline per Redis master), made once the turn's I/O callbacks
 * have run (setImmediate), and with a window no sooner than `windowMs` after the previous
 * call: a router taking a push now and then sends each at once, a busy one one call per
 * window, so the window costs latency only where it saves turns. ioredis's own autopipelining flushes on
 * nextTick, which inside a uWS callback means once per request; this makes it once per turn.
 * Each caller gets the batch's whole map and reads only its own users. One timer per batch,
 * never one per request.
 */
export function batchLocates(locate: Locate, { maxIds = 10_000, windowMs = 0, now = () => performance.now() }: BatchOptions = {}): Locate {
  let open: Batch | undefined
  let lastSentAt = -Infinity
  const flush = (batch: Batch) => {
    if (batch.isSent) return // sent early: it had reached maxIds
    batch.isSent = true
    if (open === batch) open = undefined
    if (windowMs > 0) lastSentAt = now()
    locate(batch.ids).then(
      (found) => batch.waiters.forEach((w) => w.resolve(found)),
      (err: unknown) => batch.waiters.forEach((w) => w.reject(err)),
    )
  }
  return (userIds) =>
    new Promise((resolve, reject) => {
      if (open && open.ids.length + userIds.length > maxIds) flush(open)
      if (!open) {
        const batch: Batch = { isSent: false, ids: [], waiters: [] }
        open = batch
        const waitMs = lastSentAt + windowMs - now()
        if (waitMs > 0) setTimeout(() => flush(batch), waitMs)
        else setImmediate(() => flush(batch))
      }
      for (const id of userIds) open.ids.push(id)
      open.waiters.push({ resolve, reject })
    })
}

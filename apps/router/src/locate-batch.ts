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
   * ROUTER_COALESCE_MS: 0 sends a batch once the turn's I/O callbacks have run; more holds it
   * open this long from its first lookup, so the pushes of several turns share one Redis call,
   * and after it one link frame per edge and one answer frame per backend.
   */
  windowMs?: number
}

/**
 * Lookups of every request that arrived in one event-loop turn (or coalescing window) go to
 * the registry as one call (one pipeline per Redis master), made once the turn's I/O callbacks
 * have run (setImmediate) or the window closes. ioredis's own autopipelining flushes on
 * nextTick, which inside a uWS callback means once per request; this makes it once per turn.
 * Each caller gets the batch's whole map and reads only its own users. One timer per batch,
 * never one per request.
 */
export function batchLocates(locate: Locate, { maxIds = 10_000, windowMs = 0 }: BatchOptions = {}): Locate {
  let open: Batch | undefined
  const flush = (batch: Batch) => {
    if (batch.isSent) return // sent early: it had reached maxIds
    batch.isSent = true
    if (open === batch) open = undefined
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
        if (windowMs > 0) setTimeout(() => flush(batch), windowMs)
        else setImmediate(() => flush(batch))
      }
      for (const id of userIds) open.ids.push(id)
      open.waiters.push({ resolve, reject })
    })
}

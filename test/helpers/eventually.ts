import { setTimeout as delay } from 'node:timers/promises'

export interface EventuallyOptions {
  /** The deadline: derive it from the timeout that bounds the condition (a TTL, a poll interval, a command timeout) and name it. */
  timeoutMs?: number
  intervalMs?: number
}

/** Thrown by a condition that can no longer come true (a process exited): `eventually` rejects at once. */
export class GaveUp extends Error {}

/**
 * Calls `fn` until it returns a value other than undefined, null or false without throwing,
 * and resolves with that value; after `timeoutMs` rejects with the last failure, or at once
 * when `fn` throws `GaveUp`. The one polling loop of the tests. The default deadline, 5 s, is
 * for conditions no configured timeout bounds (an answer, a frame, a welcome after a local
 * action); a condition that waits out a TTL, a poll or a backoff names it in `timeoutMs`.
 */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  { timeoutMs = 5_000, intervalMs = 50 }: EventuallyOptions = {},
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await fn()
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, undefined | null | false>
      last = new Error(`condition returned ${String(value)}`)
    } catch (err) {
      if (err instanceof GaveUp) throw err
      last = err
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? last.message : String(last)
      throw new Error(`condition not met within ${timeoutMs} ms: ${why}`, { cause: last })
    }
    await delay(intervalMs)
  }
}

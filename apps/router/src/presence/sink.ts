import type { PresenceEvent } from '@switchboard/protocol'

/** What one delivery attempt of a batch came to. */
export type Attempt =
  | { outcome: 'ack' }
  | { outcome: 'retry'; error: string; retryAfterMs?: number }
  | { outcome: 'gone'; error: string }

/**
 * Somewhere presence events go, in order, a batch at a time: a webhook endpoint, or the feed
 * that the pull API reads. `id` names it in the registry's acknowledgements and in metrics.
 */
export interface Sink {
  readonly id: string
  /** For logs and metrics: never a secret. */
  readonly label: string
  send(batchId: string, events: readonly PresenceEvent[]): Promise<Attempt>
}

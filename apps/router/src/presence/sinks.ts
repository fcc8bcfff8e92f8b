import { createHash } from 'node:crypto'
import type { PresenceDelivery } from '@switchboard/registry'
import { postBatch } from './webhook-endpoint.js'
import type { Sink } from './sink.js'

/** The feed the pull API reads: one ordered stream in Redis, appended to in each partition's order. */
export function feedSink(registry: PresenceDelivery): Sink {
  return {
    id: 'feed',
    label: 'feed',
    async send(_batchId, events) {
      try {
        await registry.appendFeed(events)
        return { outcome: 'ack' }
      } catch (err) {
        return { outcome: 'retry', error: (err as Error).message }
      }
    },
  }
}

export interface WebhookSinkOptions {
  url: string
  secrets: readonly string[]
  timeoutMs: number
}

/**
 * A webhook endpoint receiving `{"events":[...]}` signed the Standard Webhooks way. Its id
 * (where its acknowledgements are kept) is derived from the URL, so changing the URL starts a
 * new endpoint; its label shows the origin and path, never a query string that may hold a token.
 */
export function webhookSink(options: WebhookSinkOptions): Sink {
  const url = new URL(options.url)
  return {
    id: `hook:${createHash('sha256').update(options.url).digest('hex').slice(0, 16)}`,
    label: `${url.origin}${url.pathname}`,
    async send(batchId, events) {
      const attempt = await postBatch({ url: options.url, secrets: options.secrets, msgId: batchId, body: JSON.stringify({ events }), timeoutMs: options.timeoutMs })
      if (attempt.outcome === 'ack') return { outcome: 'ack' }
      if (attempt.outcome === 'gone') return { outcome: 'gone', error: '410 Gone' }
      return { outcome: 'retry', error: attempt.error, ...(attempt.retryAfterMs === undefined ? {} : { retryAfterMs: attempt.retryAfterMs }) }
    },
  }
}

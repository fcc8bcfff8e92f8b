import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Registry as PromRegistry } from 'prom-client'
import type { PresenceDelivery } from '@switchboard/registry'
import type { RouterConfig } from '../config.js'
import { createPresenceMetrics } from './metrics.js'
import { PresenceRelay } from './relay.js'
import { feedSink, webhookSink } from './sinks.js'
import { retryDelayMs } from './webhook-endpoint.js'

export interface PresenceDeliveryDeps {
  config: Pick<RouterConfig, 'webhooks' | 'presencePollMs'>
  registry: PresenceDelivery
  log: Logger
  promRegistry: PromRegistry
}

/** Starts this router's presence delivery worker: the feed, and every configured webhook endpoint. */
export function startPresenceDelivery(deps: PresenceDeliveryDeps): PresenceRelay {
  const { webhooks } = deps.config
  const relay = new PresenceRelay({
    registry: deps.registry,
    sinks: [feedSink(deps.registry), ...webhooks.urls.map((url) => webhookSink({ url, secrets: webhooks.secrets, timeoutMs: webhooks.timeoutMs }))],
    workerId: `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`,
    log: deps.log.child({ component: 'presence' }),
    metrics: createPresenceMetrics(deps.promRegistry),
    pollMs: deps.config.presencePollMs,
    batchMax: webhooks.batchMax,
    batchMs: webhooks.batchMs,
    retryForMs: webhooks.retryForMs,
    attemptTimeoutMs: webhooks.timeoutMs,
    retryDelayMs: (attempt, retryAfterMs) => retryDelayMs(attempt, retryAfterMs, Math.random, undefined, webhooks.retryMaxMs),
  })
  relay.start()
  return relay
}

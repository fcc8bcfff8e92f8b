import { randomBytes } from 'node:crypto'
import type { PresenceEvent } from '@switchboard/protocol'
import { startCluster, type Cluster, type ClusterOptions, type EnvOverrides } from './processes.js'
import type { TestScope } from './redis.js'
import { startReceiver, type ReceivedBatch, type WebhookReceiver } from './webhook-receiver.js'

export interface PresenceClusterOptions extends ClusterOptions {
  /** PRESENCE_OFFLINE_GRACE_MS on edges and the router; default 0. */
  graceMs?: number
  /** PRESENCE_POLL_MS and PRESENCE_WEBHOOK_BATCH_MS; default 50, so tests wait little. */
  pollMs?: number
  /** Env both edges and the router get (e.g. PRESENCE_RETENTION_MS). */
  presenceEnv?: EnvOverrides
  /** Secrets the router signs with besides the receiver's (a rotation). */
  otherSecrets?: string[]
}

export interface PresenceCluster {
  cluster: Cluster
  receiver: WebhookReceiver
  /** The receiver's `whsec_` secret, configured on the router. */
  secret: string
}

/** A cluster whose router sends presence events to a webhook receiver started by the test. */
export async function startPresenceCluster(t: TestScope, opts: PresenceClusterOptions = {}): Promise<PresenceCluster> {
  const secret = newWebhookSecret()
  const receiver = await startReceiver(t, { secret })
  const { graceMs = 0, pollMs = 50, presenceEnv = {}, otherSecrets = [], edgeEnv, routerEnv, ...rest } = opts
  const both = { PRESENCE_OFFLINE_GRACE_MS: String(graceMs), ...presenceEnv }
  const poll = { PRESENCE_POLL_MS: String(pollMs), PRESENCE_WEBHOOK_BATCH_MS: String(pollMs) }
  const cluster = await startCluster(t, {
    ...rest,
    edgeEnv: { ...both, ...edgeEnv },
    routerEnv: { ...both, ...poll, PRESENCE_WEBHOOK_URL: receiver.url, PRESENCE_WEBHOOK_SECRET: [...otherSecrets, secret].join(' '), ...routerEnv },
  })
  return { cluster, receiver, secret }
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`
}

/** Every event in these batches (duplicates included), in arrival order. */
export function eventsIn(batches: readonly ReceivedBatch[]): PresenceEvent[] {
  return batches.flatMap((b) => b.events as PresenceEvent[])
}

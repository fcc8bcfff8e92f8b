import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { backoffDelayMs, type BackoffPolicy } from '@switchboard/protocol'
import type { RedisClient } from './gateway.js'

export interface HostPort {
  host: string
  port: number
}

/** Where the registry lives: one server (or a Sentinel-managed one by URL), a Cluster, or Sentinel. */
export type RedisTarget =
  | { kind: 'url'; url: string }
  | { kind: 'cluster'; nodes: HostPort[]; username?: string; password?: string }
  | { kind: 'sentinel'; sentinels: HostPort[]; name: string; username?: string; password?: string }

export interface RedisClientOptions {
  /** Bounds every command, so a hung Redis becomes `registry_unavailable` instead of a hang. */
  commandTimeoutMs: number
}

/** The longest a registry client waits before a reconnect attempt. */
export const RECONNECT_MAX_MS = 2_200
/** Reconnect attempt n (ioredis counts from 1) waits up to min(RECONNECT_MAX_MS, 100 ms × 2^n). */
const RECONNECT_BACKOFF: BackoffPolicy = { baseMs: 100, capMs: RECONNECT_MAX_MS }

/** Reconnects with capped backoff and full jitter: a fleet of edges must not reconnect in lockstep. */
const backoff = (attempt: number) => Math.floor(backoffDelayMs(attempt, RECONNECT_BACKOFF))

/**
 * A client tuned for the registry: autopipelining (one write per tick, per master on a
 * Cluster), a bounded wait per command, few retries, and reconnects with capped jittered
 * backoff. A URL string is a one-server target.
 */
export function createRedisClient(target: RedisTarget | string, options: RedisClientOptions): RedisClient {
  const t: RedisTarget = typeof target === 'string' ? { kind: 'url', url: target } : target
  // A connect attempt is bounded like a command: one begun during a partition is retried
  // soon after the heal, not after TCP's backed-off SYN retransmissions.
  const common: RedisOptions = { commandTimeout: options.commandTimeoutMs, connectTimeout: options.commandTimeoutMs, maxRetriesPerRequest: 1 }
  switch (t.kind) {
    case 'url':
      return new Redis(t.url, { ...common, enableAutoPipelining: true, retryStrategy: backoff })
    case 'sentinel':
      // Sentinel tells the client which server is master; after a failover it reconnects to the new one.
      return new Redis({
        ...common,
        sentinels: t.sentinels,
        name: t.name,
        username: t.username,
        password: t.password,
        enableAutoPipelining: true,
        retryStrategy: backoff,
        sentinelRetryStrategy: backoff,
      })
    case 'cluster':
      // Every registry command touches one hash slot (keys.ts), so nothing is ever CROSSSLOT.
      return new Cluster(t.nodes, {
        enableAutoPipelining: true,
        clusterRetryStrategy: backoff,
        scaleReads: 'master',
        redisOptions: { ...common, username: t.username, password: t.password },
      })
  }
}

/**
 * Drops a connection that the client believes is up although a command on it just failed
 * (cut by a partition, TCP would keep it "open" for minutes), so a fresh one is made. A client
 * already reconnecting is left alone: restarting it at every failure (each renewal, while
 * Sentinel still names the dead master) kept it from ever finishing.
 */
export function dropIfStalled(client: RedisClient): void {
  if (client.status === 'ready') client.disconnect(true)
}

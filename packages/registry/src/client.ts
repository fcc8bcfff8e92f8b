import { Redis } from 'ioredis'

export interface RedisClientOptions {
  /** Bounds every command, so a hung Redis becomes `registry_unavailable` instead of a hang. */
  commandTimeoutMs: number
}

/**
 * A client tuned for the registry: autopipelining (one write per tick, per node on a
 * cluster), a bounded wait per command, few retries, and reconnects with capped jittered
 * backoff.
 */
export function createRedisClient(url: string, options: RedisClientOptions): Redis {
  return new Redis(url, {
    enableAutoPipelining: true,
    commandTimeout: options.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2_000) + Math.floor(Math.random() * 200),
  })
}

import { randomInt } from 'node:crypto'
import { Cluster, type Redis } from 'ioredis'
import { SwitchboardError } from '@switchboard/protocol'
import { buildKeys, type Keys } from './keys.js'
import type { LuaScript } from './scripts/lua.js'

export type RedisClient = Redis | Cluster

export interface RedisGatewayOptions {
  /** Key prefix, so several deployments (or tests) share one Redis. */
  prefix?: string
  /** Names the store in the message of a failed call ("inbox call failed"). */
  name?: string
}

/**
 * Every Redis call of every store (registry, inbox, rooms, idempotency) goes through here:
 * the one place that fails fast while the client reconnects, bounds a call by the command
 * timeout from its start, maps any failure to `registry_unavailable`, applies the key prefix
 * (`keys`) and runs Lua scripts by SHA. Stores named apart share one client: `named()`.
 */
export class RedisGateway {
  readonly client: RedisClient
  readonly prefix: string
  readonly keys: Keys
  readonly #name: string

  constructor(client: RedisClient, options: RedisGatewayOptions = {}) {
    this.client = client
    this.prefix = options.prefix ?? 'sb:'
    this.keys = buildKeys(this.prefix)
    this.#name = options.name ?? 'registry'
  }

  /** The same client and prefix; failures name store `name`. */
  named(name: string): RedisGateway {
    return new RedisGateway(this.client, { prefix: this.prefix, name })
  }

  /** The client's bound on one command (ms), if it has one. */
  get commandTimeoutMs(): number | undefined {
    const options = this.client.options as { commandTimeout?: number; redisOptions?: { commandTimeout?: number } }
    return options.redisOptions?.commandTimeout ?? options.commandTimeout
  }

  /**
   * Runs one store call: refused at once while the client is not connected (a command queued
   * offline would wait out the timeout for nothing), otherwise any failure is
   * `registry_unavailable`, and so is a call not answered within the command timeout counted
   * from now. ioredis counts its timeout from when a command is written, and with
   * auto-pipelining a command waits for the pipeline ahead of it on the connection: during an
   * outage a call took up to twice the timeout.
   */
  async call<T>(run: (redis: RedisClient) => Promise<T>): Promise<T> {
    const status = this.client.status
    if (status === 'reconnecting' || status === 'end' || status === 'close') {
      throw new SwitchboardError('registry_unavailable', `redis is ${status}`)
    }
    const timeoutMs = this.commandTimeoutMs
    let timer: NodeJS.Timeout | undefined
    try {
      if (timeoutMs === undefined) return await run(this.client)
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
      })
      return await Promise.race([run(this.client), deadline])
    } catch (err) {
      throw new SwitchboardError('registry_unavailable', `${this.#name} call failed`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }

  /** Runs a script as one store call: by SHA, and in full once if the server does not have it (restart, flush). */
  script(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return this.call(async (redis) => {
      try {
        return await redis.evalsha(script.sha, keys.length, ...keys, ...args)
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
        return redis.eval(script.source, keys.length, ...keys, ...args)
      }
    })
  }

  /** On a Cluster, one script call must keep to one hash slot; a single server (or Sentinel's master) takes keys of any slot. */
  get isCluster(): boolean {
    return this.client instanceof Cluster
  }

  /** The run ids of the masters, sorted and joined: it changes when a server restarts empty or fails over. */
  serverIdentity(): Promise<string> {
    return this.call(async (redis) => {
      const masters = redis instanceof Cluster ? redis.nodes('master') : [redis]
      const ids = await Promise.all(masters.map(async (m) => /^run_id:(\w+)/m.exec(await m.info('server'))?.[1] ?? '?'))
      return ids.sort().join(',')
    })
  }
}

/**
 * A new incarnation id, for the memory and Redis registries alike: time-sortable and unique
 * per start, base36 ms (9 chars) then 8 random base36 chars.
 */
export function newIncarnationId(nowMs = Date.now()): string {
  return nowMs.toString(36).padStart(9, '0') + randomInt(36 ** 8).toString(36).padStart(8, '0')
}

/** A store's gateway: `redis` itself renamed, or a new one on the client with `prefix` (the gateway's own prefix wins). */
export function gatewayOf(redis: RedisClient | RedisGateway, name: string, prefix: string | undefined): RedisGateway {
  return redis instanceof RedisGateway ? redis.named(name) : new RedisGateway(redis, { prefix, name })
}

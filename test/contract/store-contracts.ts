import type { Test } from 'tap'
import {
  RedisIdempotencyStore,
  RedisInbox,
  RedisRegistry,
  RedisRoomStore,
  createRedisClient,
  type IdempotencyStore,
  type Inbox,
  type InboxLimits,
  type PresenceSettings,
  type Registry,
  type RoomLimits,
  type RoomStore,
} from '@switchboard/registry'
import { uniquePrefix } from '../helpers/redis.js'
import { registryContract } from './registry-contract.js'
import { presenceContract } from './presence-contract.js'
import { idempotencyContract } from './idempotency-contract.js'
import { inboxContract } from './inbox-contract.js'
import { roomContract } from './room-contract.js'

/** One backend's stores, each fresh and sharing no state with any other (its teardown on `t`). */
export interface StoreFactory {
  registry(t: Test, presence?: Partial<PresenceSettings>): Promise<Registry>
  idempotency(t: Test): Promise<IdempotencyStore>
  inbox(t: Test, limits: InboxLimits): Promise<Inbox>
  rooms(t: Test, limits: RoomLimits): Promise<RoomStore>
}

/** Every shared contract suite, run against one backend's stores. */
export function storeContracts(t: Test, stores: StoreFactory): void {
  registryContract(t, (t) => stores.registry(t))
  presenceContract(t, (t, presence) => stores.registry(t, presence))
  idempotencyContract(t, (t) => stores.idempotency(t))
  inboxContract(t, (t, limits) => stores.inbox(t, limits))
  roomContract(t, (t, limits) => stores.rooms(t, limits))
}

type RedisClient = ReturnType<typeof createRedisClient>

/** Clients of one Redis server or Cluster, each closed with the test that asked for it. */
export function redisClients(target: Parameters<typeof createRedisClient>[0]): (t: { teardown(fn: () => unknown): void }) => RedisClient {
  return (t) => {
    const c = createRedisClient(target, { commandTimeoutMs: 2_000 })
    t.teardown(() => c.disconnect())
    return c
  }
}

/**
 * The Redis stores (one server or a Cluster: the same code), each on its own key prefix over
 * a client from `client`. A zero refresh interval makes the routers' view of live incarnations
 * exact, as the contract demands; the cached view's bound is tested on its own.
 */
export function redisStores(client: (t: Test) => RedisClient): StoreFactory {
  return {
    async registry(t, presence) {
      const registry = new RedisRegistry(client(t), { prefix: uniquePrefix(), liveRefreshMs: 0, presence })
      t.teardown(() => registry.close())
      return registry
    },
    idempotency: async (t) => new RedisIdempotencyStore(client(t), { prefix: uniquePrefix() }),
    inbox: async (t, limits) => new RedisInbox(client(t), limits, { prefix: uniquePrefix() }),
    rooms: async (t, limits) => new RedisRoomStore(client(t), limits, { prefix: uniquePrefix() }),
  }
}

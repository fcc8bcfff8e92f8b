import t from 'tap'
import { MemoryIdempotencyStore, MemoryInbox, MemoryRegistry, MemoryRoomStore } from '@switchboard/registry'
import { storeContracts } from './store-contracts.js'

storeContracts(t, {
  async registry(t, presence) {
    const registry = new MemoryRegistry({ presence })
    t.teardown(() => registry.close())
    return registry
  },
  idempotency: async () => new MemoryIdempotencyStore(),
  inbox: async (_t, limits) => new MemoryInbox(limits),
  rooms: async (_t, limits) => new MemoryRoomStore(limits),
})

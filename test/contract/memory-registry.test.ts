import t from 'tap'
import { MemoryIdempotencyStore, MemoryInbox, MemoryRegistry, MemoryRoomStore } from '@switchboard/registry'
import { registryContract } from './registry-contract.js'
import { presenceContract } from './presence-contract.js'
import { idempotencyContract } from './idempotency-contract.js'
import { inboxContract } from './inbox-contract.js'
import { roomContract } from './room-contract.js'

registryContract(t, async (t) => {
  const registry = new MemoryRegistry()
  t.teardown(() => registry.close())
  return registry
})

presenceContract(t, async (t, presence) => {
  const registry = new MemoryRegistry({ presence })
  t.teardown(() => registry.close())
  return registry
})

idempotencyContract(t, async () => new MemoryIdempotencyStore())

inboxContract(t, async (_t, limits) => new MemoryInbox(limits))

roomContract(t, async (_t, limits) => new MemoryRoomStore(limits))

import t from 'tap'
import { MemoryRegistry } from '@switchboard/registry'
import { registryContract } from './registry-contract.js'
import { presenceContract } from './presence-contract.js'

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

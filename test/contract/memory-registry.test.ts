import t from 'tap'
import { MemoryRegistry } from '@switchboard/registry'
import { registryContract } from './registry-contract.js'

registryContract(t, async (t) => {
  const registry = new MemoryRegistry()
  t.teardown(() => registry.close())
  return registry
})

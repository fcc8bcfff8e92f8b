import { SwitchboardBackend, type BackendOptions } from '@switchboard/backend'
import { testSecrets } from './processes.js'
import type { TestScope } from './redis.js'

/** The Node backend client on the router at `url` with the first test API key, closed when `t` ends. */
export function backendClient(t: TestScope, url: string, options: Omit<BackendOptions, 'url' | 'apiKey'> = {}): SwitchboardBackend {
  const sb = new SwitchboardBackend({ url, apiKey: testSecrets().apiKeys[0], ...options })
  t.teardown(() => sb.close())
  return sb
}

import { RouterEnv, loadConfig, type RouterConfig } from '@switchboard/protocol'

export type { RouterConfig }

export function loadRouterConfig(env: Record<string, string | undefined>): RouterConfig {
  return loadConfig(RouterEnv, env)
}

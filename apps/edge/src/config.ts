import { EdgeEnv, loadConfig, type EdgeConfig } from '@switchboard/protocol'

export type { EdgeConfig }

export function loadEdgeConfig(env: Record<string, string | undefined>): EdgeConfig {
  return loadConfig(EdgeEnv, env)
}

import type { Logger } from 'pino'
import type { Registry as PromRegistry } from 'prom-client'
import type { RouterConfig } from '../config.js'
import { buildAdmin, type AdminOptions } from './server.js'
import { TRAFFIC_EVERY_MS, TRAFFIC_KEEP, TrafficHistory } from './traffic.js'

export interface StartAdminDeps extends Pick<AdminOptions, 'registry' | 'api' | 'presence'> {
  admin: NonNullable<RouterConfig['admin']>
  leaseTtlMs: number
  promRegistry: PromRegistry
  log: Logger
}

export interface RunningAdmin {
  port: number
  close(): Promise<void>
}

/** The admin web and its traffic sampler, listening on ROUTER_ADMIN_HOST:ROUTER_ADMIN_PORT; rejects when it cannot listen. */
export async function startAdmin(deps: StartAdminDeps): Promise<RunningAdmin> {
  const traffic = new TrafficHistory({ promRegistry: deps.promRegistry, registry: deps.registry, everyMs: TRAFFIC_EVERY_MS, keep: TRAFFIC_KEEP })
  const server = await buildAdmin({
    password: deps.admin.password,
    sessionTtlMs: deps.admin.sessionTtlMs,
    leaseTtlMs: deps.leaseTtlMs,
    registry: deps.registry,
    api: deps.api,
    presence: deps.presence,
    traffic,
    log: deps.log,
  })
  const port = await server.listen(deps.admin.host, deps.admin.port)
  traffic.start()
  deps.log.info({ adminPort: port }, 'admin web listening')
  return {
    port,
    async close() {
      traffic.stop()
      await server.close()
    },
  }
}

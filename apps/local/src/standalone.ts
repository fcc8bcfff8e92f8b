import pino from 'pino'
import { Registry as PromRegistry } from 'prom-client'
import { loadEdgeConfig, startEdge } from '@switchboard/edge'
import { MemoryInbox, MemoryRegistry, MemoryRoomStore } from '@switchboard/registry'
import { LinkEdgeClient, buildApp, loadRouterConfig, startAdmin, startPresenceDelivery, startReaper, type RunningAdmin } from '@switchboard/router'
import { localAdminEnv, type DevSecrets } from './secrets.js'

type Env = Record<string, string | undefined>

/** What `npm start` runs: `ready` once it answers; `stop` works whether or not it is ready yet. */
export interface Launch {
  ready: Promise<{ routerUrl: string; wsUrls: string[]; admin?: { url: string; password: string } }>
  stop(): Promise<void>
}

/** Router and one edge in this process, sharing an in-memory registry. */
export function launchStandalone(env: Env, secrets: DevSecrets): Launch {
  const running = runStandalone(env, secrets)
  return {
    ready: running,
    // In one process: waiting for start to finish (or fail) is enough, exit does the rest.
    stop: () => running.then((r) => r.stop(), () => undefined),
  }
}

async function runStandalone(env: Env, secrets: DevSecrets) {
  const shared = { LOG_LEVEL: 'warn', ROUTER_HOST: '127.0.0.1', ...env, SWITCHBOARD_INTERNAL_TOKEN: secrets.internalToken }
  const edgeConfig = loadEdgeConfig({ EDGE_NODE_ID: 'edge-1', EDGE_INTERNAL_HOST: '127.0.0.1', ...shared, EDGE_JWT_SECRET: secrets.jwtSecret })
  const routerConfig = loadRouterConfig({ ...shared, ...localAdminEnv(env, secrets), ROUTER_API_KEYS: secrets.apiKey })
  const log = pino({ level: routerConfig.logLevel })
  const registry = new MemoryRegistry({ presence: routerConfig.presence })

  const inbox = new MemoryInbox(routerConfig.inbox)
  const rooms = new MemoryRoomStore(routerConfig.rooms)
  const edge = await startEdge({ config: edgeConfig, registry, inbox, rooms, log: log.child({ service: 'edge' }), promRegistry: new PromRegistry() })
  const edges = new LinkEdgeClient({ internalToken: secrets.internalToken, timeoutMs: routerConfig.forwardTimeoutMs })
  const promRegistry = new PromRegistry()
  const app = buildApp({ config: routerConfig, registry, edges, inbox, rooms, log: log.child({ service: 'router' }), promRegistry })
  const stopReaper = startReaper({ registry, log, graceMs: routerConfig.reapGraceMs, settleMs: 0 })
  const presence = startPresenceDelivery({ config: routerConfig, registry, log: log.child({ service: 'router' }), promRegistry })
  const port = await app.listen(routerConfig.host, routerConfig.port)
  const adminConfig = routerConfig.admin!
  // Like the example page: a port in use costs the admin, not the run.
  const admin: RunningAdmin | undefined = await startAdmin({ admin: adminConfig, leaseTtlMs: routerConfig.leaseTtlMs, registry, api: app.api, presence, promRegistry, log: log.child({ service: 'router' }) }).catch((err: unknown) => {
    process.stderr.write(`switchboard: no admin web (${(err as Error).message}); set ROUTER_ADMIN_PORT to a free port\n`)
    return undefined
  })

  return {
    routerUrl: `http://127.0.0.1:${port}`,
    wsUrls: [`ws://127.0.0.1:${edge.port}`],
    ...(admin && { admin: { url: `http://${adminConfig.host}:${admin.port}/`, password: adminConfig.password } }),
    async stop() {
      await admin?.close()
      stopReaper()
      await presence.stop()
      await edge.drain(0)
      await app.close(1_000)
      await edges.close()
    },
  }
}

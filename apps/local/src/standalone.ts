import pino from 'pino'
import { Registry as PromRegistry } from 'prom-client'
import { loadEdgeConfig, startEdge } from '@switchboard/edge'
import { MemoryIdempotencyStore, MemoryInbox, MemoryRegistry, MemoryRoomStore } from '@switchboard/registry'
import { loadRouterConfig, startRouter } from '@switchboard/router'
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
  const stores = { registry, inbox: new MemoryInbox(routerConfig.inbox), rooms: new MemoryRoomStore(routerConfig.rooms), idempotency: new MemoryIdempotencyStore() }
  const edge = await startEdge({ config: edgeConfig, registry, inbox: stores.inbox, rooms: stores.rooms, log: log.child({ service: 'edge' }), promRegistry: new PromRegistry() })
  const router = await startRouter({ config: routerConfig, stores, log: log.child({ service: 'router' }) })
  // Like the example page: a port in use costs the admin, not the run.
  const admin = router.admin instanceof Error ? undefined : router.admin
  if (router.admin instanceof Error) process.stderr.write(`switchboard: no admin web (${router.admin.message}); set ROUTER_ADMIN_PORT to a free port\n`)
  const adminConfig = routerConfig.admin!

  return {
    routerUrl: `http://127.0.0.1:${router.port}`,
    wsUrls: [`ws://127.0.0.1:${edge.port}`],
    ...(admin && { admin: { url: `http://${adminConfig.host}:${admin.port}/`, password: adminConfig.password } }),
    async stop() {
      await edge.drain(0)
      await router.stop(1_000)
    },
  }
}

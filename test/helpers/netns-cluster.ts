import { fileURLToPath } from 'node:url'
import { api, eventually, mintToken, type Api } from './clients.js'
import { createNet, type Host, type Net } from './netns.js'
import { spawnService, startEdge, startRouter, testSecrets, type Edge, type EnvOverrides, type Router, type ServiceProcess } from './processes.js'
import { startRedis, uniquePrefix, type TestRedis, type TestScope } from './redis.js'

export interface NetRouter {
  host: Host
  router: Router
  /** The router's API with the first key, from the test process (the root). */
  api: Api
}

export interface NetEdge {
  host: Host
  edge: Edge
}

export interface NetCluster {
  net: Net
  redisHost: Host
  redis: TestRedis
  prefix: string
  leaseTtlMs: number
  routers: NetRouter[]
  edges: NetEdge[]
  /** When every process was ready (ms epoch); routers started before it. */
  startedAt: number
  /**
   * Starts an edge in `host` with the cluster's Redis, prefix, lease and edge environment: an
   * edge restarted where it ran (same host, same `nodeId`), as an orchestrator would, or one more.
   */
  addEdge(t: TestScope, host: Host, opts?: { nodeId?: string; env?: EnvOverrides }): Promise<Edge>
}

export interface NetClusterOptions {
  edges?: number
  routers?: number
  leaseTtlMs: number
  /** Applied to every edge / router. */
  edgeEnv?: EnvOverrides
  /** Or made from the network, before any router starts (e.g. a webhook receiver on `net.root.address`). */
  routerEnv?: EnvOverrides | ((net: Net) => EnvOverrides | Promise<EnvOverrides>)
  /** What edges and routers connect to instead of the Redis host (a proxy in front of it). */
  redisUrl?: (redis: TestRedis, net: Net) => Promise<string> | string
}

/**
 * Redis, routers and edges, each in a host (namespace) of its own on one bridge; the test
 * process reaches them all from the root. Everything is torn down with `t`.
 */
export async function startNetCluster(t: TestScope, opts: NetClusterOptions): Promise<NetCluster> {
  const net = await createNet(t)
  const redisHost = await net.addHost('redis')
  const redis = await startRedis(t, { host: redisHost })
  const redisUrl = opts.redisUrl ? await opts.redisUrl(redis, net) : redis.url
  const prefix = uniquePrefix()
  const { leaseTtlMs } = opts
  const routerEnv = typeof opts.routerEnv === 'function' ? await opts.routerEnv(net) : opts.routerEnv
  const routerHosts = await Promise.all(Array.from({ length: opts.routers ?? 1 }, (_, i) => net.addHost(`r${i + 1}`)))
  const edgeHosts = await Promise.all(Array.from({ length: opts.edges ?? 2 }, (_, i) => net.addHost(`e${i + 1}`)))
  const addEdge: NetCluster['addEdge'] = (scope, host, edgeOpts = {}) =>
    startEdge(scope, { redisUrl, prefix, leaseTtlMs, host, nodeId: edgeOpts.nodeId, env: { ...opts.edgeEnv, ...edgeOpts.env } })
  const [routers, edges] = await Promise.all([
    Promise.all(
      routerHosts.map(async (host) => {
        const router = await startRouter(t, { redisUrl, prefix, leaseTtlMs, host, env: routerEnv })
        return { host, router, api: api(router.url, testSecrets().apiKeys[0]) }
      }),
    ),
    Promise.all(
      edgeHosts.map(async (host, i) => ({ host, edge: await addEdge(t, host, { nodeId: `e${i + 1}-${prefix.slice(1, -1)}` }) })),
    ),
  ])
  return { net, redisHost, redis, prefix, leaseTtlMs, routers, edges, startedAt: Date.now(), addEdge }
}

/**
 * Resolves once the cluster's routers reap: a router reaps lapsed leases (and announces
 * `edge_lost`) only after LEASE_TTL_MS + 5 s of Redis access from its start
 * (apps/router/src/main.ts), checked every min(1 s, TTL/3). Before that a lease that lapsed
 * in a partition revives at the heal instead of being replaced by a new incarnation.
 */
export async function untilReaperArmed(c: NetCluster): Promise<void> {
  const armedAt = c.startedAt + c.leaseTtlMs + 5_000 + Math.min(1_000, c.leaseTtlMs / 3)
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, armedAt - Date.now())))
}

/** One line an SDK client process printed (test/helpers/netns-sdk-client.mjs). */
export type SdkLine = { kind: 'state' | 'push'; at: number } & Record<string, unknown>

export interface SdkProcess {
  service: ServiceProcess
  lines(): SdkLine[]
  /** Resolves with the first line (already printed or to come) that `match` accepts. */
  waitFor(match: (line: SdkLine) => boolean, timeoutMs: number): Promise<SdkLine>
}

const SDK_CLIENT = fileURLToPath(new URL('./netns-sdk-client.mjs', import.meta.url))

/** The SDK (packages/client) as its own process in `host`, connected as `userId`. */
export async function startSdkClient(
  t: TestScope,
  host: Host,
  wsUrl: string,
  userId: string,
  { pingMs, pongMs }: { pingMs: number; pongMs: number },
): Promise<SdkProcess> {
  const token = await mintToken(testSecrets().jwtSecret, userId)
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', SB_URL: wsUrl, SB_TOKEN: token, SB_PING_MS: String(pingMs), SB_PONG_MS: String(pongMs) }
  const service = spawnService(t, SDK_CLIENT, env, host.ns)
  const lines = (): SdkLine[] =>
    service.logs().flatMap((line) => {
      try {
        return [JSON.parse(line) as SdkLine]
      } catch {
        return [] // a stack trace on stderr
      }
    })
  return {
    service,
    lines,
    waitFor: (match, timeoutMs) => eventually(() => lines().find(match), { timeoutMs, intervalMs: 20 }),
  }
}

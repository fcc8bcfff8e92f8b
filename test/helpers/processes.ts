import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { api, type Api } from './clients.js'
import { GaveUp, eventually } from './eventually.js'
import type { Host } from './netns.js'
import { startRedis, startRedisCluster, uniquePrefix, type TestRedis, type TestRedisCluster, type TestScope } from './redis.js'

export const EDGE_MAIN = fileURLToPath(new URL('../../apps/edge/dist/main.js', import.meta.url))
export const ROUTER_MAIN = fileURLToPath(new URL('../../apps/router/dist/main.js', import.meta.url))

const READY_TIMEOUT_MS = 15_000
const MAX_LOG_LINES = 20_000

/** Environment values; `undefined` removes a variable the helper would otherwise set. */
export type EnvOverrides = Record<string, string | undefined>

export interface TestSecrets {
  /** SWITCHBOARD_INTERNAL_TOKEN shared by router and edges. */
  readonly internalToken: string
  /** EDGE_JWT_SECRET; client tokens are minted with it. */
  readonly jwtSecret: string
  /** ROUTER_API_KEYS; the first is the one tests use by default. */
  readonly apiKeys: readonly [string, string]
}

const secrets: TestSecrets = Object.freeze({
  internalToken: randomBytes(24).toString('hex'),
  jwtSecret: randomBytes(32).toString('hex'),
  apiKeys: [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')] as const,
})

/** Secrets generated once per test file and shared by every process it starts. */
export function testSecrets(): TestSecrets {
  return secrets
}

export interface ServiceProcess {
  readonly proc: ChildProcess
  /** Exit code; `null` when a signal ended the process. Resolves once stdout and stderr are drained. */
  readonly exited: Promise<number | null>
  /** Everything the process wrote, stdout and stderr, one line per entry. */
  logs(): string[]
  /** Parsed pino lines of stdout (non-JSON lines are skipped). */
  logRecords(): Record<string, unknown>[]
  /** Calls `fn` with every line written from now on; returns the unsubscribe function. */
  onLine(fn: (line: string) => void): () => void
  kill(signal?: NodeJS.Signals): void
  isRunning(): boolean
}

export interface Edge extends ServiceProcess {
  readonly nodeId: string
  /** Public websocket port. */
  readonly port: number
  readonly internalPort: number
  /** `ws://127.0.0.1:<port>/v1/ws` (add `?token=`). */
  readonly wsUrl: string
  readonly url: string
  /** `http://127.0.0.1:<internalPort>` */
  readonly internalUrl: string
}

export interface Router extends ServiceProcess {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
}

const live = new Set<ChildProcess>()
// A crashed test file must not leave services behind.
process.once('exit', () => {
  for (const proc of live) proc.kill('SIGKILL')
})

/** A minimal environment: the test runner's own NODE_OPTIONS (TS loader) must not leak into services. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NODE_ENV: 'test' }
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) {
    const value = process.env[name]
    if (value !== undefined) env[name] = value
  }
  return env
}

function mergeEnv(defaults: Record<string, string>, overrides: EnvOverrides = {}): Record<string, string> {
  const env = { ...baseEnv(), ...defaults }
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  return env
}

/**
 * Spawns `node <script>` without waiting for it to be ready; the teardown SIGKILLs it
 * (also when stopped with SIGSTOP) and waits for it to exit. With `netns`, it runs in that
 * network namespace (`ip netns exec` execs it: the pid is node's own).
 */
export function spawnService(t: TestScope, script: string, env: Record<string, string>, netns?: string): ServiceProcess {
  const command = netns ? ['ip', 'netns', 'exec', netns, process.execPath, script] : [process.execPath, script]
  const proc = spawn(command[0]!, command.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(proc)
  const lines: string[] = []
  // For debugging a failure: SWITCHBOARD_TEST_LOG_DIR=/tmp/x npx tap ... keeps every process's output.
  const logDir = process.env.SWITCHBOARD_TEST_LOG_DIR
  const file = logDir ? createWriteStream(join(logDir, `${basename(dirname(dirname(script)))}-${proc.pid}.log`)) : undefined
  const listeners = new Set<(line: string) => void>()
  const keep = (line: string) => {
    if (lines.length < MAX_LOG_LINES) lines.push(line)
    file?.write(`${line}\n`)
    for (const fn of listeners) fn(line)
  }
  createInterface({ input: proc.stdout! }).on('line', keep)
  createInterface({ input: proc.stderr! }).on('line', keep)
  const exited = new Promise<number | null>((resolve) => {
    proc.once('close', (code) => {
      live.delete(proc)
      file?.end()
      resolve(code)
    })
    proc.once('error', (err) => {
      keep(`spawn error: ${err.message}`)
      live.delete(proc)
      resolve(null)
    })
  })
  const isRunning = () => proc.exitCode === null && proc.signalCode === null
  t.teardown(async () => {
    if (isRunning()) proc.kill('SIGKILL')
    await exited
  })
  return {
    proc,
    exited,
    logs: () => [...lines],
    logRecords: () => lines.flatMap((line) => {
      try {
        const record: unknown = JSON.parse(line)
        return record !== null && typeof record === 'object' ? [record as Record<string, unknown>] : []
      } catch {
        return [] // not a pino line (e.g. a stack trace on stderr)
      }
    }),
    onLine: (fn) => {
      listeners.add(fn)
      return () => listeners.delete(fn)
    },
    kill: (signal = 'SIGTERM') => {
      if (isRunning()) proc.kill(signal)
    },
    isRunning,
  }
}

/** Resolves with the first pino record whose `msg` is `msg`; rejects if the process exits first or after the timeout. */
export function waitForLog(
  service: ServiceProcess,
  msg: string,
  timeoutMs = READY_TIMEOUT_MS,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const finish = (err: Error | undefined, record?: Record<string, unknown>) => {
      clearTimeout(timer)
      unsubscribe()
      if (err) reject(err)
      else resolve(record!)
    }
    const timer = setTimeout(() => {
      service.kill('SIGKILL')
      finish(new Error(`no "${msg}" log within ${timeoutMs} ms; output:\n${service.logs().join('\n')}`))
    }, timeoutMs)
    const unsubscribe = service.onLine((line) => {
      let record: unknown
      try {
        record = JSON.parse(line)
      } catch {
        return // not a pino line
      }
      if (record !== null && typeof record === 'object' && (record as Record<string, unknown>).msg === msg) {
        finish(undefined, record as Record<string, unknown>)
      }
    })
    // Lines logged before this call are already in logs().
    const seen = service.logRecords().find((r) => r.msg === msg)
    if (seen) {
      finish(undefined, seen)
      return
    }
    void service.exited.then((code) => {
      finish(new Error(`process exited (code ${code}) before logging "${msg}"; output:\n${service.logs().join('\n')}`))
    })
  })
}

function numberField(record: Record<string, unknown>, name: string): number {
  const value = record[name]
  if (typeof value !== 'number') throw new Error(`listening log has no numeric "${name}": ${JSON.stringify(record)}`)
  return value
}

export interface EdgeOptions {
  redisUrl: string
  prefix: string
  nodeId?: string
  leaseTtlMs?: number
  /** Set or (with `undefined`) remove variables. */
  env?: EnvOverrides
  /** Runs in this host's namespace, bound to its address (test/helpers/netns.ts). */
  host?: Host
}

// Inside a host's own namespace nothing else listens: fixed ports cannot collide there.
const NETNS_EDGE_PORT = 8080
const NETNS_EDGE_INTERNAL_PORT = 8081
const NETNS_ROUTER_PORT = 3000

function edgeHostEnv(host: Host | undefined): Record<string, string> {
  if (!host) return {}
  return {
    EDGE_HOST: host.address,
    EDGE_PORT: String(NETNS_EDGE_PORT),
    EDGE_INTERNAL_HOST: host.address,
    EDGE_INTERNAL_PORT: String(NETNS_EDGE_INTERNAL_PORT),
    EDGE_ADVERTISE_URL: `http://${host.address}:${NETNS_EDGE_INTERNAL_PORT}`,
  }
}

export function edgeEnv(opts: EdgeOptions): Record<string, string> {
  return mergeEnv(
    {
      REDIS_URL: opts.redisUrl,
      REGISTRY_PREFIX: opts.prefix,
      SWITCHBOARD_INTERNAL_TOKEN: secrets.internalToken,
      EDGE_JWT_SECRET: secrets.jwtSecret,
      EDGE_PORT: '0',
      EDGE_INTERNAL_PORT: '0',
      EDGE_NODE_ID: opts.nodeId ?? `edge-${randomBytes(4).toString('hex')}`,
      EDGE_ALLOWED_ORIGINS: '*',
      EDGE_DRAIN_MS: '0',
      LEASE_TTL_MS: String(opts.leaseTtlMs ?? 3_000),
      LOG_LEVEL: 'info',
      ...edgeHostEnv(opts.host),
    },
    opts.env,
  )
}

/** Spawns a real edge and resolves once it logs "edge listening". */
export async function startEdge(t: TestScope, opts: EdgeOptions): Promise<Edge> {
  const service = spawnService(t, EDGE_MAIN, edgeEnv(opts), opts.host?.ns)
  const ready = await waitForLog(service, 'edge listening')
  const port = numberField(ready, 'port')
  const internalPort = numberField(ready, 'internalPort')
  const nodeId = ready.nodeId
  if (typeof nodeId !== 'string') throw new Error(`edge listening log has no nodeId: ${JSON.stringify(ready)}`)
  const address = opts.host?.address ?? '127.0.0.1'
  const wsUrl = `ws://${address}:${port}/v1/ws`
  return {
    ...service,
    nodeId,
    port,
    internalPort,
    wsUrl,
    url: wsUrl,
    internalUrl: `http://${address}:${internalPort}`,
  }
}

export interface RouterOptions {
  redisUrl: string
  prefix: string
  leaseTtlMs?: number
  env?: EnvOverrides
  /** Runs in this host's namespace, bound to its address (test/helpers/netns.ts). */
  host?: Host
}

export function routerEnv(opts: RouterOptions): Record<string, string> {
  return mergeEnv(
    {
      REDIS_URL: opts.redisUrl,
      REGISTRY_PREFIX: opts.prefix,
      SWITCHBOARD_INTERNAL_TOKEN: secrets.internalToken,
      ROUTER_API_KEYS: secrets.apiKeys.join(','),
      ROUTER_PORT: '0',
      LEASE_TTL_MS: String(opts.leaseTtlMs ?? 3_000),
      LOG_LEVEL: 'info',
      ...(opts.host ? { ROUTER_HOST: opts.host.address, ROUTER_PORT: String(NETNS_ROUTER_PORT) } : {}),
    },
    opts.env,
  )
}

/** Spawns a real router and resolves once it logs "router listening". */
export async function startRouter(t: TestScope, opts: RouterOptions): Promise<Router> {
  const service = spawnService(t, ROUTER_MAIN, routerEnv(opts), opts.host?.ns)
  const ready = await waitForLog(service, 'router listening')
  const port = numberField(ready, 'port')
  return { ...service, port, url: `http://${opts.host?.address ?? '127.0.0.1'}:${port}` }
}

export interface ClusterOptions {
  edges?: number
  leaseTtlMs?: number
  /** Applied to every edge. */
  edgeEnv?: EnvOverrides
  routerEnv?: EnvOverrides
}

export interface Cluster {
  redis: TestRedis
  prefix: string
  leaseTtlMs: number
  edges: Edge[]
  router: Router
  /** Router API with the first key. */
  api: Api
  /** Starts one more edge in this cluster (same Redis and prefix). */
  addEdge(t: TestScope, opts?: Omit<EdgeOptions, 'redisUrl' | 'prefix' | 'leaseTtlMs'>): Promise<Edge>
  /** Starts one more router with the first one's environment (same Redis, prefix and presence settings). */
  addRouter(t: TestScope): Promise<Router>
}

/**
 * Redis, N edges and a router sharing one registry prefix; everything is torn down with `t`.
 * With SWITCHBOARD_TEST_REDIS=cluster the registry is a 3-master Redis Cluster instead
 * (test/integration/on-redis-cluster/ runs whole suites that way); `redis` then refuses to
 * stop or restart, so only suites that never do run there.
 */
export async function startCluster(t: TestScope, opts: ClusterOptions = {}): Promise<Cluster> {
  const onCluster = process.env.SWITCHBOARD_TEST_REDIS === 'cluster'
  const redis = onCluster ? clusterAsRedis(await startRedisCluster(t, 3)) : await startRedis(t)
  const redisEnv = onCluster ? { REDIS_CLUSTER_NODES: redis.url } : {}
  const redisUrl = onCluster ? '' : redis.url
  const prefix = uniquePrefix()
  const leaseTtlMs = opts.leaseTtlMs ?? 3_000
  const addEdge: Cluster['addEdge'] = (scope, edgeOpts = {}) =>
    startEdge(scope, {
      ...edgeOpts,
      redisUrl,
      prefix,
      leaseTtlMs,
      env: { ...redisEnv, ...opts.edgeEnv, ...edgeOpts.env },
    })
  const addRouter: Cluster['addRouter'] = (scope) => startRouter(scope, { redisUrl, prefix, leaseTtlMs, env: { ...redisEnv, ...opts.routerEnv } })
  const [router, edges] = await Promise.all([addRouter(t), Promise.all(Array.from({ length: opts.edges ?? 2 }, () => addEdge(t)))])
  return { redis, prefix, leaseTtlMs, edges, router, api: api(router.url, secrets.apiKeys[0]), addEdge, addRouter }
}

export interface LocalRun {
  proc: ChildProcess
  exited: Promise<number | null>
  /** Everything printed up to the banner's last line. */
  out: string
  /** The session file it writes for the CLI (its own, not the repository's). */
  session: string
}

/** Starts `npm start` or `npm run cluster` (their dist scripts) and resolves once the banner is out. */
export async function launchLocal(t: TestScope, script: 'main' | 'cluster', args: string[], env: Record<string, string>): Promise<LocalRun> {
  const session = join(mkdtempSync(join(tmpdir(), 'sb-local-')), 'local.json')
  const main = fileURLToPath(new URL(`../../apps/local/dist/${script}.js`, import.meta.url))
  const proc = spawn(process.execPath, [main, ...args], { env: { PATH: process.env.PATH ?? '', SWITCHBOARD_SESSION_FILE: session, LOCAL_EXAMPLE_PORT: '0', ROUTER_ADMIN_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve))
  t.teardown(() => proc.kill('SIGKILL'))
  let out = ''
  proc.stdout!.on('data', (d) => (out += d))
  proc.stderr!.on('data', (d) => (out += d))
  // Its Redis first (`npm run cluster`), then its services: each within a service's ready timeout.
  await eventually(
    () => {
      if (out.includes('Ctrl-C stops everything')) return true
      throw new (proc.exitCode === null ? Error : GaveUp)(`no banner${proc.exitCode === null ? '' : ` (exited ${proc.exitCode})`}:\n${out}`)
    },
    { timeoutMs: 2 * READY_TIMEOUT_MS },
  )
  return { proc, exited, out, session }
}

/** A Redis Cluster in the shape suites expect of one Redis: `url` holds the seed nodes. */
function clusterAsRedis(cluster: TestRedisCluster): TestRedis {
  const refuse = () => Promise.reject(new Error('this suite stops or restarts Redis: run it on a single Redis, not SWITCHBOARD_TEST_REDIS=cluster'))
  return { url: cluster.nodes, port: cluster.ports[0]!, stop: refuse, start: refuse, restart: refuse }
}

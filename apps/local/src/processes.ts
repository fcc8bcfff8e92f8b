import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { localAdminEnv, type DevSecrets } from './secrets.js'
import type { Launch } from './standalone.js'

type Env = Record<string, string | undefined>

/** The Redis target the environment names, for display; undefined without one. */
export function redisOf(env: Env): string | undefined {
  return env.REDIS_URL || env.REDIS_CLUSTER_NODES || (env.REDIS_SENTINELS ? `sentinels ${env.REDIS_SENTINELS}` : undefined)
}

const script = (app: string) => fileURLToPath(new URL(`../../../${app}/dist/main.js`, import.meta.url))
/** pino's warn level: below it, child logs are kept quiet unless LOG_LEVEL was set. */
const WARN = 40

/** A router and `edgeCount` edges as separate processes against the Redis `env` names. */
export function launchProcesses(env: Env, secrets: DevSecrets, edgeCount = 2): Launch {
  // Children log at info, so their "listening" lines arrive; only warnings and errors are
  // shown, unless LOG_LEVEL asks for more.
  const shared = { ROUTER_HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env, SWITCHBOARD_INTERNAL_TOKEN: secrets.internalToken }
  const minLevel = env.LOG_LEVEL ? 0 : WARN
  const routerPort = Number(env.ROUTER_PORT ?? 3000)
  const basePort = Number(env.EDGE_PORT ?? 8080)
  const children: ChildProcess[] = []
  const started: Promise<unknown>[] = []

  /** Resolves with the parsed line that says the child is ready. */
  const run = (name: string, app: string, extra: Env, readyMsg: string) => {
    const child = spawn(process.execPath, [script(app)], { env: { ...shared, ...extra }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)))
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes(`"msg":"${readyMsg}"`)) resolve(JSON.parse(line) as Record<string, unknown>)
        else if (levelOf(line) >= minLevel) process.stdout.write(`[${name}] ${line}\n`)
      })
    })
    started.push(ready)
    return ready
  }

  const wsUrls: string[] = []
  for (let i = 0; i < edgeCount; i++) {
    const port = basePort + 2 * i
    wsUrls.push(`ws://127.0.0.1:${port}`)
    run(`edge-${i + 1}`, 'apps/edge', {
      EDGE_NODE_ID: `edge-${i + 1}`,
      EDGE_PORT: String(port),
      EDGE_INTERNAL_PORT: String(port + 1),
      EDGE_INTERNAL_HOST: '127.0.0.1',
      EDGE_JWT_SECRET: secrets.jwtSecret,
    }, 'edge listening')
  }
  // The router is ready once its admin web is: the last thing it starts.
  const adminEnv = localAdminEnv(env, secrets)
  const router = run('router', 'apps/router', { ROUTER_PORT: String(routerPort), ROUTER_API_KEYS: secrets.apiKey, ...adminEnv }, 'admin web listening')

  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map((c) => new Promise<void>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : (c.once('exit', () => resolve()), c.kill('SIGTERM'))))),
    )
  }
  const ready = Promise.all(started).then(async () => ({
    routerUrl: `http://127.0.0.1:${routerPort}`,
    wsUrls,
    admin: { url: `http://${adminEnv.ROUTER_ADMIN_HOST}:${String((await router).adminPort)}/`, password: adminEnv.ROUTER_ADMIN_PASSWORD! },
  }))
  return { ready, stop }
}

function levelOf(line: string): number {
  try {
    return Number((JSON.parse(line) as { level?: unknown }).level) || WARN
  } catch {
    return WARN // not a pino line (a crash trace): always shown
  }
}

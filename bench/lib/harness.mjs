// Processes and measurements shared by every scenario: free ports, Redis, the systems under
// test (Switchboard, the socket.io incumbent, a bare uWebSockets.js floor), CPU and memory
// read from /proc, and clean-up. Everything binds 127.0.0.1.
import { execFileSync, fork, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { cpus, totalmem, release } from 'node:os'
import { fileURLToPath } from 'node:url'
import { SignJWT } from 'jose'

export const root = fileURLToPath(new URL('../../', import.meta.url))
const benchDir = fileURLToPath(new URL('../', import.meta.url))
export const secrets = {
  jwt: randomBytes(32).toString('hex'),
  apiKey: randomBytes(16).toString('hex'),
  internal: randomBytes(16).toString('hex'),
}

const children = new Set()
/** Kills every process this run started (on any exit, so an aborted run leaves nothing behind). */
export function killAll() {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  children.clear()
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(130))

export const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves with the first stdout line matching `re` (its match), or rejects if the process exits first. */
function untilLine(proc, re, what) {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (chunk) => {
      text += chunk
      const match = re.exec(text)
      if (match) {
        proc.stdout.off('data', onData)
        proc.stdout.resume() // keep draining so the child never blocks on a full pipe
        resolve(match)
      }
    }
    proc.stdout.on('data', onData)
    proc.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready:\n${text.slice(-2000)}`)))
  })
}

function track(child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Starts a Node process with an IPC channel and the GC hook preloaded (see servers/gc-hook.mjs). */
function startNode(script, env, args = []) {
  // BENCH_PROFILE=router (or edge, socketio-node, ...) writes a CPU profile of those processes to bench/results/profiles.
  // BENCH_SERVER_FLAGS='--some-v8-flag' starts every server with those Node/V8 flags (A/B tests).
  const profile = process.env.BENCH_PROFILE && script.includes(process.env.BENCH_PROFILE) ? ['--cpu-prof', `--cpu-prof-dir=${benchDir}results/profiles`] : []
  return track(
    spawn(process.execPath, [...profile, ...(process.env.BENCH_SERVER_FLAGS?.split(' ').filter(Boolean) ?? []), '--expose-gc', '--import', `${benchDir}servers/gc-hook.mjs`, script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    }),
  )
}

export async function startRedis() {
  const port = await freePort()
  const proc = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] }))
  await untilLine(proc, /Ready to accept connections/, 'redis-server')
  return { name: 'redis', port, url: `redis://127.0.0.1:${port}`, proc, pid: proc.pid }
}

/** A router and `edges` edges on one Redis; each server is `{ name, pid, port, ... }`. */
/** `from`: another checkout's root (built), to compare two versions side by side; default this one. */
export async function startSwitchboard({ edges = 1, redis, edgeEnv = {}, routerEnv = {}, from = root }) {
  const common = { REDIS_URL: redis.url, SWITCHBOARD_INTERNAL_TOKEN: secrets.internal, LOG_LEVEL: 'info', REGISTRY_PREFIX: 'bench:' }
  const started = await Promise.all(
    Array.from({ length: edges }, async (_, i) => {
      const proc = startNode(`${from}apps/edge/dist/main.js`, {
        ...common,
        EDGE_JWT_SECRET: secrets.jwt,
        EDGE_NODE_ID: `edge-${i + 1}`,
        EDGE_HOST: '127.0.0.1',
        EDGE_INTERNAL_HOST: '127.0.0.1',
        EDGE_PORT: '0',
        EDGE_INTERNAL_PORT: '0',
        ...edgeEnv,
      })
      const [, port, internalPort] = await untilLine(proc, /"port":(\d+),"internalPort":(\d+)/, 'edge')
      return { name: `edge-${i + 1}`, proc, pid: proc.pid, port: Number(port), internalPort: Number(internalPort) }
    }),
  )
  const routerProc = startNode(`${from}apps/router/dist/main.js`, { ...common, ROUTER_API_KEYS: secrets.apiKey, ROUTER_PORT: '0', ROUTER_HOST: '127.0.0.1', ...routerEnv })
  const [, routerPort] = await untilLine(routerProc, /"port":(\d+),"msg":"router listening"/, 'router')
  const router = { name: 'router', proc: routerProc, pid: routerProc.pid, port: Number(routerPort) }
  return { kind: 'switchboard', edges: started, router, servers: [router, ...started, redis], ports: started.map((e) => e.port) }
}

/** `nodes` socket.io nodes on one Redis (redis-adapter); pushes are published with redis-emitter. */
export async function startSocketIo({ nodes = 1, redis }) {
  const started = await Promise.all(
    Array.from({ length: nodes }, async (_, i) => {
      const proc = startNode(`${benchDir}servers/socketio-node.mjs`, { REDIS_PORT: String(redis.port), JWT_SECRET: secrets.jwt })
      const [, port] = await untilLine(proc, /listening (\d+)/, 'socket.io node')
      return { name: `socketio-${i + 1}`, proc, pid: proc.pid, port: Number(port) }
    }),
  )
  return { kind: 'socketio', edges: started, servers: [...started, redis], ports: started.map((n) => n.port), redisPort: redis.port }
}

/** A bare uWebSockets.js server: sockets in a Map and a POST /push, nothing else (the floor). */
export async function startBare() {
  const proc = startNode(`${benchDir}servers/bare-uws.mjs`, {})
  const [, port] = await untilLine(proc, /listening (\d+)/, 'bare uWS')
  const server = { name: 'bare-uws', proc, pid: proc.pid, port: Number(port) }
  return { kind: 'bare', edges: [server], servers: [server], ports: [server.port], port: server.port }
}

export async function stopSystem(system) {
  await Promise.all(system.servers.filter((s) => s.name !== 'redis').map((s) => stop(s.proc)))
}

export function stop(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve()
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  proc.kill(process.env.BENCH_PROFILE ? 'SIGTERM' : 'SIGKILL') // a profile is written on a clean exit only
  return exited
}

/** Sends `message` to a server over IPC and resolves with its reply ('gc' → GC hook, 'stats' → the server). */
export function ask(proc, message) {
  return new Promise((resolve) => {
    proc.once('message', resolve)
    proc.send(message)
  })
}

/**
 * How long a server is left idle before its memory is read. V8 keeps its young generation at the
 * size a burst of allocation (a connect storm) grew it to, up to 32 MiB, until a GC finds the
 * allocation rate low (its samples over the last 5 s), which an idle server's next GC does. Read
 * right after a storm, that burst counts as memory per connection, by an amount that follows how
 * fast the storm went (+0.86 or -0.76 KiB per connection at 19,000 in two rounds of one build).
 */
export const IDLE_BEFORE_READ_MS = 10_000

/** After `idleMs` idle (smoke runs pass 0), collects garbage twice in a server started with the GC hook: its reply (process.memoryUsage() and the V8 spaces). */
export const idleGc = (server, idleMs) => sleep(idleMs).then(() => ask(server.proc, 'gc'))

/** process.memoryUsage() of a server idle for `idleMs`, after GC (idleGc). */
export const memoryAfterGc = (server, idleMs) => idleGc(server, idleMs).then((reply) => reply.memory)

/** CPU time (user + system) a process has used, in ms, from /proc (10 ms resolution). */
export async function cpuMs(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

export async function rssKiB(pid) {
  return Number((await readFile(`/proc/${pid}/status`, 'utf8')).match(/VmRSS:\s+(\d+)/)?.[1] ?? NaN)
}

/** Starts a CPU measurement over `servers`; the returned function gives ms used per server since. */
export async function cpuMeter(servers) {
  const before = await Promise.all(servers.map((s) => cpuMs(s.pid)))
  return async () => {
    const after = await Promise.all(servers.map((s) => cpuMs(s.pid)))
    return Object.fromEntries(servers.map((s, i) => [s.name, after[i] - before[i]]))
  }
}

/**
 * Context switches of a process's main thread from /proc/<pid>/status: `voluntary` (a blocking
 * wait, epoll_wait for an event loop, that ended in a wake-up: one turn) and `nonvoluntary`
 * (preempted). Other threads (libuv pool, GC helpers) are not counted.
 */
export async function contextSwitches(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const field = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1] ?? NaN)
  return { voluntary: field('voluntary_ctxt_switches'), nonvoluntary: field('nonvoluntary_ctxt_switches') }
}

/**
 * Starts counting CPU time and turns over `servers`; the returned function gives, once the run
 * is over, CPU ms per server (as cpuMeter) and its turns, per server and in total, over the
 * `seconds` the run took and the `delivered` pushes it delivered (see turnFigures).
 */
export async function turnMeter(servers) {
  const [cpu, before] = await Promise.all([cpuMeter(servers), Promise.all(servers.map((s) => contextSwitches(s.pid)))])
  return async ({ seconds, delivered }) => {
    const [cpuMs, after] = await Promise.all([cpu(), Promise.all(servers.map((s) => contextSwitches(s.pid)))])
    const switches = Object.fromEntries(servers.map((s, i) => [s.name, { voluntary: after[i].voluntary - before[i].voluntary, nonvoluntary: after[i].nonvoluntary - before[i].nonvoluntary }]))
    return { cpuMs, turns: turnFigures({ cpuMs, switches, seconds, delivered }) }
  }
}

/**
 * Wake-ups (voluntary context switches) per second and per delivered push, and CPU µs per
 * wake-up, for each process and for all of them (`total`); `preempted`: nonvoluntary switches.
 */
export function turnFigures({ cpuMs, switches, seconds, delivered }) {
  const figures = (ms, { voluntary, nonvoluntary }) => ({
    wakeups: voluntary,
    preempted: nonvoluntary,
    wakeupsPerS: Math.round(voluntary / Math.max(seconds, 1e-3)),
    wakeupsPerPush: Number((voluntary / Math.max(1, delivered)).toFixed(3)),
    cpuUsPerWakeup: voluntary > 0 ? Math.round((ms * 1000) / voluntary) : null,
  })
  const names = Object.keys(switches)
  const total = names.reduce((t, name) => ({ voluntary: t.voluntary + switches[name].voluntary, nonvoluntary: t.nonvoluntary + switches[name].nonvoluntary }), { voluntary: 0, nonvoluntary: 0 })
  return {
    ...Object.fromEntries(names.map((name) => [name, figures(cpuMs[name], switches[name])])),
    total: figures(sum(cpuMs), total),
  }
}

export const sum = (values) => Object.values(values).reduce((a, b) => a + b, 0)

export const tokenFor = (() => {
  const key = new TextEncoder().encode(secrets.jwt)
  return (userId) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setExpirationTime('2h').sign(key)
})()

/** Starts a child from bench/lib with an IPC channel; `call(message)` resolves with its next reply. */
export function startChild(script, args = []) {
  const proc = track(fork(`${benchDir}lib/${script}`, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const replies = []
  const waiting = []
  proc.on('message', (message) => (waiting.length > 0 ? waiting.shift()(message) : replies.push(message)))
  proc.once('exit', (code) => {
    for (const reject of waiting.splice(0)) reject({ error: `${script} exited (${code})` })
  })
  const next = () => (replies.length > 0 ? Promise.resolve(replies.shift()) : new Promise((resolve) => waiting.push(resolve)))
  return {
    proc,
    call: async (message) => {
      proc.send(message)
      const reply = await next()
      if (reply?.error) throw new Error(`${script}: ${reply.error}`)
      return reply
    },
    stop: () => stop(proc),
  }
}

export function machine() {
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1]
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    redis: redisVersion,
  }
}

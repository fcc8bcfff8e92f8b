import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { GaveUp, eventually } from './eventually.js'
import type { Host } from './netns.js'

/** The part of a tap test the helpers need: teardowns run when the test ends. */
export interface TestScope {
  teardown(fn: () => unknown): void
}

export interface TestRedis {
  /** `redis://127.0.0.1:<port>` (the host's address when started in one) */
  readonly url: string
  readonly port: number
  /** SIGKILLs the server; the port stays reserved for `start()`. */
  stop(): Promise<void>
  /** Starts an empty server on the same port (no-op when already running). */
  start(): Promise<void>
  /** SIGKILL, then start again on the same port, empty. */
  restart(): Promise<void>
}

const READY_TIMEOUT_MS = 10_000
const live = new Set<ChildProcess>()
// A crashed test file must not leave servers behind.
process.once('exit', () => {
  for (const proc of live) proc.kill('SIGKILL')
})

/** A key prefix no other test uses, so tests can share one Redis without FLUSHALL. */
export function uniquePrefix(): string {
  return `t${randomBytes(5).toString('hex')}:`
}

/** A port that was free a moment ago: bind port 0, read it, release it. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)')
  return address.port
}

/**
 * The first of `count` consecutive ports that were free a moment ago, for services that
 * take a base port and count up from it (local edges use EDGE_PORT, +1, +2, ...). Drawn below
 * Linux's ephemeral range (32768+), where outgoing connections would take them.
 */
export async function freePortRange(count: number): Promise<number> {
  for (;;) {
    const base = 10_000 + 2 * Math.floor(Math.random() * 10_000)
    const servers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
          const s = createServer().once('error', () => resolve(undefined)).listen(base + i, '127.0.0.1', () => resolve(s))
        }),
      ),
    )
    await Promise.all(servers.map((s) => s && new Promise((r) => s.close(r))))
    if (servers.every(Boolean)) return base
  }
}

/**
 * The process id of the Redis answering on `port` (one raw INFO server), or undefined when
 * none answers. A PONG alone is not enough: another test's server may have taken the port
 * between the probe and our bind, and answer while ours exits.
 */
function serverPid(port: number, timeoutMs = 500, address = '127.0.0.1'): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port })
    let answer = ''
    const done = (pid: number | undefined) => {
      socket.destroy()
      resolve(pid)
    }
    socket.setTimeout(timeoutMs, () => done(undefined))
    socket.once('error', () => done(undefined))
    socket.once('connect', () => socket.write('*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n'))
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1')
      if (answer.startsWith('-')) return done(undefined) // loading, or an error: not ready
      const m = /process_id:(\d+)\r\n/.exec(answer)
      if (m) done(Number(m[1]))
    })
  })
}

interface RedisProcess {
  proc: ChildProcess
  exited: Promise<void>
  output: () => string
}

function spawnRedis(port: number, extraArgs: readonly string[] = [], host?: Host): RedisProcess {
  // Protected mode refuses clients from other addresses than loopback: a host's clients are in other namespaces.
  const reach = host ? ['--bind', host.address, '--protected-mode', 'no'] : ['--bind', '127.0.0.1']
  const args = ['--port', String(port), ...reach, '--save', '', '--appendonly', 'no', ...extraArgs]
  return spawnRedisWith(args, host?.ns)
}

/** With `netns`, in that network namespace (`ip netns exec` execs redis-server: same pid). */
function spawnRedisWith(args: readonly string[], netns?: string): RedisProcess {
  const command = netns ? ['ip', 'netns', 'exec', netns, 'redis-server', ...args] : ['redis-server', ...args]
  const proc = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(proc)
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000)
  }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  const exited = new Promise<void>((resolve) => {
    proc.once('close', () => {
      live.delete(proc)
      resolve()
    })
    proc.once('error', (err) => {
      output += `\nspawn error: ${err.message}`
      live.delete(proc)
      resolve()
    })
  })
  return { proc, exited, output: () => output }
}

async function waitReady(server: RedisProcess, port: number, address?: string): Promise<void> {
  let hasExited = false
  void server.exited.then(() => {
    hasExited = true
  })
  await eventually(
    async () => {
      if (hasExited) throw new GaveUp(`redis-server on port ${port} exited before answering:\n${server.output()}`)
      const pid = await serverPid(port, 500, address)
      if (pid !== undefined && pid === server.proc.pid) return true
      throw new Error(`redis-server on port ${port} did not answer:\n${server.output()}`)
    },
    { timeoutMs: READY_TIMEOUT_MS, intervalMs: 25 },
  ).catch((err: unknown) => {
    server.proc.kill('SIGKILL')
    throw err
  })
}

/** In a host's own namespace nothing else listens: the usual port cannot collide there. */
const NETNS_REDIS_PORT = 6379

/**
 * Starts a real, empty, non-persistent redis-server on a free port (with `host`: in its
 * namespace, on its address); the test's teardown kills it.
 */
export async function startRedis(t: TestScope, { host }: { host?: Host } = {}): Promise<TestRedis> {
  let port = 0
  let current: RedisProcess | undefined
  const address = host?.address ?? '127.0.0.1'
  // Another process may grab the free port between probe and bind: try a few ports.
  for (let attempt = 1; current === undefined; attempt++) {
    port = host ? NETNS_REDIS_PORT : await freePort()
    const server = spawnRedis(port, [], host)
    try {
      await waitReady(server, port, address)
      current = server
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }
  const boundPort = port

  const stop = async () => {
    const server = current
    current = undefined
    if (!server) return
    server.proc.kill('SIGKILL')
    await server.exited
  }
  const start = async () => {
    if (current) return
    const server = spawnRedis(boundPort, [], host)
    await waitReady(server, boundPort, address)
    current = server
  }
  t.teardown(stop)
  return {
    url: `redis://${address}:${boundPort}`,
    port: boundPort,
    stop,
    start,
    restart: async () => {
      await stop()
      await start()
    },
  }
}

export interface RedisProcessHandle {
  readonly port: number
  kill(signal: NodeJS.Signals): void
}

/**
 * Servers of one topology in one temporary folder, all killed and the folder removed when
 * the test ends. `start` takes the server's arguments for its port (or, with `raw`, its
 * whole command line) and retries on another port if one was taken in between.
 */
function serverGroup(t: TestScope, name: string) {
  const dir = mkdtempSync(join(tmpdir(), `sb-${name}-`))
  const servers: RedisProcess[] = []
  t.teardown(async () => {
    for (const s of servers) s.proc.kill('SIGKILL')
    await Promise.all(servers.map((s) => s.exited))
    rmSync(dir, { recursive: true, force: true })
  })
  const start = async (args: (port: number) => string[], raw = false): Promise<RedisProcessHandle> => {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const server = raw ? spawnRedisWith(args(port)) : spawnRedis(port, args(port))
      try {
        await waitReady(server, port)
        servers.push(server)
        return { port, kill: (signal) => server.proc.kill(signal) }
      } catch (err) {
        if (attempt >= 3) throw err
      }
    }
  }
  return { dir, start }
}

export interface TestRedisCluster {
  /** `127.0.0.1:<port>,...`, as REDIS_CLUSTER_NODES takes it. */
  readonly nodes: string
  readonly ports: readonly number[]
}

const SLOTS = 16_384

/**
 * Starts a real Redis Cluster of `masters` empty masters (no replicas) on free ports: each
 * server in cluster mode, the slots split evenly with CLUSTER ADDSLOTSRANGE, the nodes
 * introduced with CLUSTER MEET. Resolves once every node reports `cluster_state:ok` and
 * knows every other. The test's teardown kills the servers and removes their files.
 */
export async function startRedisCluster(t: TestScope, masters = 3): Promise<TestRedisCluster> {
  const { dir, start } = serverGroup(t, 'cluster')
  const ports: number[] = []
  for (let i = 0; i < masters; i++) {
    const node = await start((port) => ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir])
    ports.push(node.port)
  }

  const admins = ports.map((port) => new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 }))
  try {
    await Promise.all(
      admins.map((admin, i) => {
        const first = Math.floor((SLOTS * i) / masters)
        const last = Math.floor((SLOTS * (i + 1)) / masters) - 1
        return admin.call('CLUSTER', 'ADDSLOTSRANGE', String(first), String(last))
      }),
    )
    for (const port of ports.slice(1)) await admins[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(port))
    await eventually(
      async () => {
        const infos = await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO') as Promise<string>))
        if (infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${masters}`))) return true
        throw new Error(`cluster not ready:\n${infos.join('\n')}`)
      },
      { timeoutMs: READY_TIMEOUT_MS },
    )
  } finally {
    for (const admin of admins) admin.disconnect()
  }
  return { nodes: ports.map((p) => `127.0.0.1:${p}`).join(','), ports }
}

export interface TestRedisSentinel {
  /** `127.0.0.1:<port>`, as REDIS_SENTINELS takes it. */
  readonly sentinels: string
  readonly name: string
  readonly master: RedisProcessHandle
  readonly replica: RedisProcessHandle
  /** The port Sentinel currently names as master. */
  masterPort(): Promise<number>
}

/**
 * A master, one replica of it and one Sentinel (quorum 1, down after 1 s) on free ports.
 * Resolves once the replica is in sync and Sentinel knows it, so a failover can promote it.
 */
export async function startRedisSentinel(t: TestScope): Promise<TestRedisSentinel> {
  const { dir, start } = serverGroup(t, 'sentinel')
  const name = 'sbmaster'
  // In the test's own folder: a replica keeps the snapshot it syncs from as dump.rdb.
  const master = await start(() => ['--dir', dir])
  const replica = await start(() => ['--dir', dir, '--replicaof', '127.0.0.1', String(master.port)])
  const sentinel = await start((port) => {
    const conf = join(dir, `sentinel-${port}.conf`)
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 10000`,
        '',
      ].join('\n'),
    )
    return [conf, '--sentinel']
  }, true)

  const admin = new Redis({ host: '127.0.0.1', port: sentinel.port, maxRetriesPerRequest: 0 })
  const replicaAdmin = new Redis({ host: '127.0.0.1', port: replica.port, maxRetriesPerRequest: 0 })
  t.teardown(() => {
    admin.disconnect()
    replicaAdmin.disconnect()
  })
  // Sentinel finds replicas through the master's INFO, every 10 s at first: two of those.
  const SENTINEL_INFO_PERIOD_MS = 10_000
  await eventually(
    async () => {
      const replicas = (await admin.call('SENTINEL', 'REPLICAS', name)) as string[][]
      const info = await replicaAdmin.info('replication')
      const known = replicas.some((r) => r[r.indexOf('port') + 1] === String(replica.port) && !/_down/.test(r[r.indexOf('flags') + 1] ?? ''))
      if (known && info.includes('master_link_status:up')) return true
      throw new Error(`sentinel did not see the replica in sync: ${JSON.stringify(replicas)}\n${info}`)
    },
    { timeoutMs: 2 * SENTINEL_INFO_PERIOD_MS, intervalMs: 100 },
  )
  return {
    sentinels: `127.0.0.1:${sentinel.port}`,
    name,
    master,
    replica,
    masterPort: async () => Number(((await admin.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[])[1]),
  }
}

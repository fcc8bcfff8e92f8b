// Connect storm: N clients connecting at once to one edge (real Redis, real router), from
// several client processes and 127.0.0.x source addresses. Reports connections/s until all
// are welcomed (welcome means registered), and checks presence lost none.
// Usage: node bench/storm.mjs [clients=10000] [processes=4]
import { fork, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFile, mkdir } from 'node:fs/promises'
import { createServer } from 'node:net'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { SignJWT } from 'jose'

const clients = Number(process.argv[2] ?? 10_000)
const processes = Number(process.argv[3] ?? 4)
const root = fileURLToPath(new URL('..', import.meta.url))
const secret = randomBytes(32).toString('hex')
const apiKey = randomBytes(16).toString('hex')
const internal = randomBytes(16).toString('hex')

const freePort = () => new Promise((resolve) => { const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) }) })
const untilLine = (proc, re) => new Promise((resolve, reject) => {
  let buf = ''
  proc.stdout.on('data', (d) => { buf += d; const m = buf.match(re); if (m) resolve(m) })
  proc.once('exit', (code) => reject(new Error(`exited ${code}: ${buf}`)))
})
const children = []
const cleanup = () => children.forEach((c) => c.kill('SIGKILL'))
process.on('exit', cleanup)

const redisPort = await freePort()
const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] })
children.push(redis)
await untilLine(redis, /Ready to accept connections/)
const env = { ...process.env, REDIS_URL: `redis://127.0.0.1:${redisPort}`, SWITCHBOARD_INTERNAL_TOKEN: internal, LOG_LEVEL: 'info' }
const edge = spawn(process.execPath, [`${root}apps/edge/dist/main.js`], { env: { ...env, EDGE_JWT_SECRET: secret, EDGE_PORT: '0', EDGE_INTERNAL_PORT: '0', EDGE_HOST: '0.0.0.0' }, stdio: ['ignore', 'pipe', 'inherit'] })
const router = spawn(process.execPath, [`${root}apps/router/dist/main.js`], { env: { ...env, ROUTER_API_KEYS: apiKey, ROUTER_PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] })
children.push(edge, router)
const [[, edgePort], [, routerPort]] = await Promise.all([untilLine(edge, /"port":(\d+)/), untilLine(router, /"port":(\d+),"msg":"router listening"/)])

/** Resident set of a process, KiB, from /proc (Linux). */
const rssKiB = async (pid) => Number((await import('node:fs/promises').then((fs) => fs.readFile(`/proc/${pid}/status`, 'utf8'))).match(/VmRSS:\s+(\d+)/)?.[1] ?? NaN)
/** CPU time (user + system) a process has used, ms, from /proc (Linux; 100 ticks a second). */
const cpuMs = async (pid) => {
  const stat = await import('node:fs/promises').then((fs) => fs.readFile(`/proc/${pid}/stat`, 'utf8'))
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}
const servers = () => ({ edge: edge.pid, redis: redis.pid, router: router.pid })
const cpuOf = async () => Object.fromEntries(await Promise.all(Object.entries(servers()).map(async ([name, pid]) => [name, await cpuMs(pid)])))
const users = Array.from({ length: clients }, (_, i) => `storm-${i}`)
const key = new TextEncoder().encode(secret)
const tokens = await Promise.all(users.map((u) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(u).setExpirationTime('1h').sign(key)))
await mkdir('/tmp/switchboard-bench', { recursive: true })
const per = Math.ceil(clients / processes)
const loaders = await Promise.all(Array.from({ length: processes }, async (_, p) => {
  const file = `/tmp/switchboard-bench/tokens-${p}.json`
  await writeFile(file, JSON.stringify(tokens.slice(p * per, (p + 1) * per)))
  return file
}))

const rssBeforeKiB = await rssKiB(edge.pid)
const cpuBefore = await cpuOf()
const started = performance.now()
const results = await Promise.all(loaders.map((file, p) => new Promise((resolve) => {
  const child = fork(fileURLToPath(new URL('storm-clients.mjs', import.meta.url)), [`ws://127.0.0.1:${edgePort}/v1/ws`, file, `127.0.0.${2 + p}`])
  children.push(child)
  child.once('message', resolve)
})))
const elapsedMs = performance.now() - started
const cpuAfter = await cpuOf()
const cpuPer1000 = Object.fromEntries(Object.keys(cpuAfter).map((k) => [k, Math.round(((cpuAfter[k] - cpuBefore[k]) * 1000) / clients)]))
const welcomed = results.reduce((s, r) => s + r.welcomed, 0)
const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b)
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]

await new Promise((r) => setTimeout(r, 2_000)) // let allocation settle (no forced GC: the edge runs without --expose-gc)
const rssAfterKiB = await rssKiB(edge.pid)
const res = await fetch(`http://127.0.0.1:${routerPort}/v1/presence/query`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: JSON.stringify({ userIds: users }) })
const presence = await res.json()
const summary = {
  scenario: 'connect storm, one edge',
  clients, processes, welcomed, failed: clients - welcomed,
  elapsedMs: Math.round(elapsedMs),
  connectionsPerSecond: Math.round(welcomed / (elapsedMs / 1000)),
  welcomeLatencyMs: { p50: Math.round(q(0.5)), p90: Math.round(q(0.9)), p99: Math.round(q(0.99)), max: Math.round(latencies.at(-1) ?? 0) },
  presenceOnline: presence.online.length, presenceOffline: presence.offline.length,
  /** CPU ms used by each server process per 1,000 connections (10 ms resolution). */
  serverCpuMsPer1000Connections: cpuPer1000,
  edgeRssKiB: { before: rssBeforeKiB, after: rssAfterKiB, perConnection: Number(((rssAfterKiB - rssBeforeKiB) / welcomed).toFixed(2)) },
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
}
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
children.filter((c) => c.connected).forEach((c) => c.send('exit'))
cleanup()
process.exit(summary.failed === 0 && summary.presenceOnline === clients ? 0 : 1)

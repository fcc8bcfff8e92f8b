/**
 * `npm run cluster -- --edges 3`: a router and N edges as processes against Redis. With no
 * Redis settings it starts its own redis-server (from the PATH, on a free port, nothing kept
 * on disk) and stops it on exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { parseArgs } from 'node:util'
import { launchProcesses, redisOf } from './processes.js'
import { generateSecrets } from './secrets.js'
import { runLocal } from './session.js'

const USAGE = 'usage: npm run cluster -- [--edges N] (1-16, default 3)'
let edges: number
try {
  const { values } = parseArgs({ options: { edges: { type: 'string', default: '3' }, help: { type: 'boolean' } }, strict: true })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  edges = Number(values.edges)
  if (!Number.isInteger(edges) || edges < 1 || edges > 16) throw new Error(`--edges must be a whole number from 1 to 16, not ${values.edges}`)
} catch (err) {
  process.stderr.write(`switchboard: ${(err as Error).message}\n${USAGE}\n`)
  process.exit(2)
}

const env = { ...process.env }
let redis: ChildProcess | undefined
if (!redisOf(env)) {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    process.stderr.write('switchboard: redis-server is not on the PATH: install Redis 7, or set REDIS_URL to a running one\n')
    process.exit(1)
  }
  const port = await freePort()
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  env.REDIS_URL = `redis://127.0.0.1:${port}`
}
const stopRedis = async () => {
  if (!redis || redis.exitCode !== null) return
  const exited = new Promise((resolve) => redis!.once('exit', resolve))
  redis.kill('SIGTERM')
  await exited
}
const secrets = generateSecrets()
await runLocal(launchProcesses(env, secrets, edges), secrets, (n) => `router + ${n} edges against ${redisOf(env)}${redis ? ' (started for this run)' : ''}`, stopRedis)

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/**
 * `npm start`: without Redis settings, a whole Switchboard in this process on an in-memory
 * registry; with REDIS_URL (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS), a router and two
 * edges as separate processes against it.
 */
import { banner } from './banner.js'
import { launchProcesses } from './processes.js'
import { generateSecrets, mintDevToken } from './secrets.js'
import { launchStandalone } from './standalone.js'

const env = process.env
const secrets = generateSecrets()
const userId = 'alice'

const redis = env.REDIS_URL || env.REDIS_CLUSTER_NODES || (env.REDIS_SENTINELS && `sentinels ${env.REDIS_SENTINELS}`)
const launch = redis ? launchProcesses(env, secrets) : launchStandalone(env, secrets)
// Installed before anything is up, so an early Ctrl-C still stops child processes.
const stop = () => void launch.stop().finally(() => process.exit(0))
process.once('SIGINT', stop)
process.once('SIGTERM', stop)

try {
  const running = await launch.ready
  const mode = redis ? `router + ${running.wsUrls.length} edges against ${redis}` : 'standalone: router and one edge in one process, in-memory registry'
  process.stdout.write(banner({ mode, ...running, apiKey: secrets.apiKey, userId, token: await mintDevToken(secrets.jwtSecret, userId) }))
} catch (err) {
  process.stderr.write(`switchboard: ${(err as Error).message}\n`)
  await launch.stop()
  process.exit(1)
}

/**
 * `npm start`: without REDIS_URL, a whole Switchboard in this process on an in-memory
 * registry; with REDIS_URL, a router and two edges as separate processes against it.
 */
import { banner } from './banner.js'
import { launchProcesses } from './processes.js'
import { generateSecrets, mintDevToken } from './secrets.js'
import { launchStandalone } from './standalone.js'

const env = process.env
const secrets = generateSecrets()
const userId = 'alice'

const launch = env.REDIS_URL ? launchProcesses(env, secrets) : launchStandalone(env, secrets)
// Installed before anything is up, so an early Ctrl-C still stops child processes.
const stop = () => void launch.stop().finally(() => process.exit(0))
process.once('SIGINT', stop)
process.once('SIGTERM', stop)

try {
  const running = await launch.ready
  const mode = env.REDIS_URL ? `router + ${running.wsUrls.length} edges against ${env.REDIS_URL}` : 'standalone: router and one edge in one process, in-memory registry'
  process.stdout.write(banner({ mode, ...running, apiKey: secrets.apiKey, userId, token: await mintDevToken(secrets.jwtSecret, userId) }))
} catch (err) {
  process.stderr.write(`switchboard: ${(err as Error).message}\n`)
  await launch.stop()
  process.exit(1)
}

/**
 * `npm start`: without Redis settings, a whole Switchboard in this process on an in-memory
 * registry; with REDIS_URL (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS), a router and two
 * edges as separate processes against it.
 */
import { launchProcesses, redisOf } from './processes.js'
import { generateSecrets } from './secrets.js'
import { runLocal } from './session.js'
import { launchStandalone } from './standalone.js'

const env = process.env
const secrets = generateSecrets()
const redis = redisOf(env)
await runLocal(redis ? launchProcesses(env, secrets) : launchStandalone(env, secrets), secrets, (edges) =>
  redis ? `router + ${edges} edges against ${redis}` : 'standalone: router and one edge in one process, in-memory registry',
)

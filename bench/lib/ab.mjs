// What the A/B benches of pushes share (keep-ab, idempotency-ab): one edge with 1,000
// connected clients, a backend client on the pipelined ingress, and a measured run of N
// pushes with a fixed number in flight.
import { SwitchboardBackend } from '@switchboard/backend'
import { closeFleet, connectFleet } from './fleet.mjs'
import { cpuMeter, secrets, startRedis, startSwitchboard, stop, stopSystem, sum } from './harness.mjs'

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Redis, a router and one edge, `userCount` clients connected, and a pipelined backend client. */
export async function startPushBench({ userCount = 1_000 } = {}) {
  const redis = await startRedis()
  const system = await startSwitchboard({ edges: 1, redis })
  const users = Array.from({ length: userCount }, (_, i) => `ab-${i}`)
  const fleet = await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: 2 })
  const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${system.router.port}`, apiKey: secrets.apiKey, transport: 'pipeline', maxInFlight: 1_000 })
  await sb.connect()
  return {
    redis,
    system,
    users,
    sb,
    /**
     * Sends `pushes` pushes, `inFlight` at a time (`pushOne(i)` sends push i); resolves with
     * the server CPU per push (router + Redis + edge, and each) and the rate.
     */
    async measure(pushes, inFlight, pushOne) {
      const cpu = await cpuMeter(system.servers)
      let next = 0
      const worker = async () => {
        while (next < pushes) await pushOne(next++)
      }
      const started = performance.now()
      await Promise.all(Array.from({ length: inFlight }, worker))
      const ms = performance.now() - started
      const used = await cpu()
      const per = (cpuMs) => Math.round((cpuMs * 1000) / pushes)
      return { perPushUs: per(sum(used)), routerUs: per(used.router), redisUs: per(used.redis), edgeUs: per(used['edge-1']), pushesPerS: Math.round(pushes / (ms / 1000)) }
    },
    async close() {
      await sb.close()
      await closeFleet(fleet)
      await stopSystem(system)
      await stop(redis.proc)
    },
  }
}

/**
 * The options of an A/B bench against another checkout:
 * `node bench/<script> --baseline <checkout root> [--rounds 3] [--smoke]`. `option(name)` reads
 * any other; `baseline` ends with `/`, ready for startSwitchboard's `from`.
 */
export function abOptions(script, { orBaseline } = {}) {
  const args = process.argv.slice(2)
  const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined)
  const baselineRoot = option('--baseline') ?? orBaseline?.(args)
  if (!baselineRoot) throw new Error(`usage: node bench/${script} --baseline <checkout root> [--rounds 3] [--smoke]`)
  return { option, baseline: `${baselineRoot.replace(/\/$/, '')}/`, smoke: args.includes('--smoke'), rounds: Number(option('--rounds') ?? 3) }
}

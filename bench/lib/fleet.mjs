// A fleet of load-generator processes (loadgen.mjs) acting as one: clients spread over
// `processes` children, each on its own 127.0.0.x source address, so no process passes the
// file-descriptor limit and no address runs out of ports.
import { secrets, sleep, startChild } from './harness.mjs'

/**
 * `token`: `{ lifetime: '1h', issuedAt: true }` mints tokens with that `exp` and an `iat` (default: 2 h, no `iat`).
 * `retries`: attempts after a failed connect, each after the SDK's backoff (default none: a failure counts);
 * `reconnect`: a client a server closes later reconnects the same way.
 */
export async function connectFleet({ system, ports, users, processes = 4, concurrency = 200, token, retries, reconnect }) {
  process.env.BENCH_JWT_SECRET = secrets.jwt
  const loaders = Array.from({ length: processes }, () => startChild('loadgen.mjs'))
  const per = Math.ceil(users.length / processes)
  const results = await Promise.all(
    loaders.map((loader, p) =>
      loader.call({ cmd: 'connect', system, ports, users: users.slice(p * per, (p + 1) * per), offset: p * per, localAddress: `127.0.0.${2 + p}`, concurrency, token, retries, reconnect }),
    ),
  )
  const startedUs = Math.min(...results.map((r) => r.startedUs))
  const endedUs = Math.max(...results.map((r) => r.endedUs))
  return {
    loaders,
    users,
    connected: results.reduce((s, r) => s + r.connected, 0),
    failed: results.reduce((s, r) => s + r.failed, 0),
    retried: results.reduce((s, r) => s + r.retried, 0),
    errors: results.flatMap((r) => r.errors).slice(0, 5),
    elapsedMs: (endedUs - startedUs) / 1000,
  }
}

const all = (fleet, message) => Promise.all(fleet.loaders.map((l) => l.call(message)))

export const resetFleet = (fleet) => all(fleet, { cmd: 'reset' })

export async function closeFleet(fleet) {
  await all(fleet, { cmd: 'close' }).catch(() => undefined)
  await Promise.all(fleet.loaders.map((l) => l.stop()))
}

/** Waits until `expected` messages arrived, or none arrived for `quietMs`; returns the count. */
export async function settle(fleet, expected, quietMs = 1_000) {
  let last = -1
  let quietSince = Date.now()
  for (;;) {
    const counts = await all(fleet, { cmd: 'count' })
    const received = counts.reduce((s, c) => s + c.received, 0)
    if (received >= expected) return received
    if (received !== last) {
      last = received
      quietSince = Date.now()
    } else if (Date.now() - quietSince >= quietMs) return received
    await sleep(100)
  }
}

/** Every latency sample (ms), the count, and when the last message arrived (µs, hrtime). */
export async function collect(fleet) {
  const reports = await all(fleet, { cmd: 'report' })
  const latencies = new Float64Array(reports.reduce((s, r) => s + r.latenciesMs.length, 0))
  let offset = 0
  for (const r of reports) {
    latencies.set(r.latenciesMs, offset)
    offset += r.latenciesMs.length
  }
  return { received: offset, latencies, lastReceiveUs: Math.max(...reports.map((r) => r.lastReceiveUs)) }
}

// One Switchboard run of the curve's harness, without the incumbent: Redis, a router, N edges,
// `clients` connected clients and the publisher at a fixed rate (0: as fast as it goes), then
// server CPU per delivered push by process, turns (wake-ups) and latency, as one JSON line,
// with the measured window in process.hrtime µs (to cut a CPU profile to it). Any ROUTER_* or
// EDGE_* variable reaches the servers; WAIT=routed sends "wait":"routed".
//   node bench/turns-probe.mjs <http|pipeline> <rate> <seconds> <edges> [clients]
// The ROUTER_COALESCE_MS A/B of BENCHMARKS.md, alternating 0 and 1 per round:
//   for r in 1 2 3; do for rate in 1000 5000; do for w in 0 1; do [ $((r % 2)) = 0 ] && w=$((1 - w));
//     ROUTER_COALESCE_MS=$w node bench/turns-probe.mjs pipeline $rate 6 3; done; done; done
import { closeFleet, collect, connectFleet, resetFleet, settle } from './lib/fleet.mjs'
import { secrets, startChild, startRedis, startSwitchboard, stop, stopSystem, turnMeter, killAll } from './lib/harness.mjs'
import { percentiles } from './lib/stats.mjs'
const [ingress = 'pipeline', rate = '5000', seconds = '6', edges = '3', clients = '5000'] = process.argv.slice(2)
const redis = await startRedis()
const system = await startSwitchboard({ edges: Number(edges), redis })
const users = Array.from({ length: Number(clients) }, (_, i) => `u-${i}`)
const fleet = await connectFleet({ system: 'switchboard', ports: system.ports, users, processes: 4 })
const publisher = startChild('publisher.mjs')
const target = { system: 'switchboard', ingress, port: system.router.port, apiKey: secrets.apiKey, ...(process.env.WAIT ? { wait: process.env.WAIT } : {}) }
await publisher.call({ target, users, rate: Number(rate), durationMs: 1000, maxInFlight: 256 })
await settle(fleet, 0, 300)
await resetFleet(fleet)
const meter = await turnMeter(system.servers)
const t0 = performance.now()
const windowFromUs = Number(process.hrtime.bigint() / 1000n)
const pub = await publisher.call({ target, users, ...(Number(rate) > 0 ? { rate: Number(rate), maxInFlight: 256 } : { maxInFlight: 1000 }), durationMs: Number(seconds) * 1000 })
const got = await settle(fleet, pub.sent)
const windowToUs = Number(process.hrtime.bigint() / 1000n)
const { cpuMs, turns } = await meter({ seconds: (performance.now() - t0) / 1000, delivered: got })
const { latencies } = await collect(fleet)
const p = percentiles(latencies)
const per = Object.fromEntries(Object.entries(cpuMs).map(([k, v]) => [k, Math.round((v * 1000) / got)]))
console.log(JSON.stringify({ sent: pub.sent, got, errors: pub.errors, cpuUsPerPush: per, total: Object.values(per).reduce((a, b) => a + b, 0), turns, p50: p.p50, p99: p.p99, window: `${windowFromUs}-${windowToUs}` }))
await publisher.stop(); await closeFleet(fleet); await stopSystem(system); await stop(redis.proc); killAll(); process.exit(0)

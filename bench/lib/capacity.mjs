// The capacity model of docs/CAPACITY.md, computed from one bench run's results: every term is
// a figure the bench measured on this machine, with the arithmetic shown, for a deployment of
// 10M online users on 200 edges over a Redis Cluster. A full `npm run bench` rewrites it.
import { round } from './stats.mjs'

/** The deployment the model sizes, and the traffic assumed of it (stated in the document). */
export const DEPLOYMENT = {
  users: 10_000_000,
  edges: 200,
  /** Pushes each online user receives per minute, single-recipient. */
  pushesPerUserPerMin: 1,
  /** Mean session length: every session is one connect and one disconnect (registry writes). */
  sessionMinutes: 30,
  leaseTtlMs: 10_000,
  /** After a full restart, clients come back spread by full jitter over this window (README backoff cap). */
  stormWindowS: 30,
  /** Plan cores to this utilisation. */
  targetUtilisation: 0.5,
}

/** A Switchboard run of the default push (no `wait`) matching `f`. */
const run = (r, f) => r.pushes?.find((p) => p.system === 'switchboard' && !p.wait && Object.entries(f).every(([k, v]) => p[k] === v))
const perItemUs = (cpuMs, items) => (cpuMs * 1000) / Math.max(1, items)
const edgeMs = (cpuMs) => Object.entries(cpuMs).filter(([k]) => k.startsWith('edge')).reduce((a, [, v]) => a + v, 0)
const fmt = (n, digits = 1) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : String(round(n, digits)))

/** Markdown of the model, or undefined when the run lacks a scenario it needs. */
export function capacityMarkdown(r, d = DEPLOYMENT) {
  const maxN3 = run(r, { ingress: 'pipeline', nodes: 3, mode: 'max' })
  const fixedN3 = (rate) => run(r, { ingress: 'pipeline', nodes: 3, mode: 'fixed', rate })
  const batch1000 = run(r, { ingress: 'pipeline', nodes: 3, mode: 'batch1000' })
  const storm = r.storm?.find((s) => s.system === 'switchboard')
  const memory = r.memory?.filter((m) => m.system === 'switchboard').at(-1)
  if (!maxN3 || !fixedN3(1000) || !fixedN3(5000) || !batch1000 || !storm || !memory || !r.registry) return undefined

  const pushesPerS = (d.users * d.pushesPerUserPerMin) / 60
  const bytesPerUser = (r.registry.usedMemoryMiB * 2 ** 20) / r.registry.users
  const registryGiB = (bytesPerUser * d.users) / 2 ** 30
  const redisUsPerPush = perItemUs(maxN3.cpuMs.redis, maxN3.received)
  const redisUsPerPush1k = perItemUs(fixedN3(1000).cpuMs.redis, fixedN3(1000).received)
  const writesPerS = (2 * d.users) / (d.sessionMinutes * 60)
  const renewalsPerS = d.edges / (d.leaseTtlMs / 3 / 1000)
  const redisUsPerConnect = perItemUs(storm.cpuMs.redis ?? 0, storm.connected)
  const redisCores = (pushesPerS * redisUsPerPush + writesPerS * redisUsPerConnect) / 1e6
  const stormRedisCoresAll = ((d.users / d.stormWindowS) * perItemUs(storm.cpuMs.redis ?? 0, storm.connected)) / 1e6
  const steadyMasters = Math.max(3, Math.ceil(redisCores / d.targetUtilisation))
  // A full restart's registrations must fit the clients' backoff window with each master below 80%.
  const masters = Math.max(steadyMasters, Math.ceil(stormRedisCoresAll / 0.8))
  const routerUs = { max: perItemUs(maxN3.cpuMs.router, maxN3.received), r5k: perItemUs(fixedN3(5000).cpuMs.router, fixedN3(5000).received), r1k: perItemUs(fixedN3(1000).cpuMs.router, fixedN3(1000).received) }
  const routerUsPer1000Recipients = perItemUs(batch1000.cpuMs.router, batch1000.received) * 1000
  const routerCores = (pushesPerS * routerUs.max) / 1e6
  const routers = Math.max(2, Math.ceil(routerCores / d.targetUtilisation))
  const perEdgeUsers = d.users / d.edges
  const edgeUsPerFrame = perItemUs(edgeMs(maxN3.cpuMs), maxN3.received)
  const edgeUsPerFrameBatch = perItemUs(edgeMs(batch1000.cpuMs), batch1000.received)
  const perEdgeFramesPerS = pushesPerS / d.edges
  const connsPerGiB = 2 ** 20 / memory.rssKiBPerConnection
  const edgeMiB = (perEdgeUsers * memory.rssKiBPerConnection) / 1024
  const edgeUsPerConnect = perItemUs(edgeMs(storm.cpuMs), storm.connected)
  const stormPerEdgePerS = perEdgeUsers / d.stormWindowS
  const stormRedisCores = ((d.users / d.stormWindowS) * redisUsPerConnect) / 1e6
  const src = (what) => `\`${what}\``

  return `The deployment: **${fmt(d.users)} online users on ${d.edges} edges** over a Redis Cluster, each
user receiving ${d.pushesPerUserPerMin} single-recipient push a minute (${fmt(pushesPerS)} pushes/s in all), sessions of
${d.sessionMinutes} min on average, \`LEASE_TTL_MS\` ${d.leaseTtlMs}, and cores planned at ${d.targetUtilisation * 100}% busy. Every input is
a figure of the bench run of ${r.startedAt} on ${r.machine.cpus} × ${r.machine.cpuModel} (\`bench/results/latest.json\`, field named);
change the assumptions in \`bench/lib/capacity.mjs\` and re-run \`npm run bench\`.

| term | measured | arithmetic | for the deployment |
|---|---|---|---|
| Registry bytes per user | ${r.registry.usedMemoryMiB} MiB used by Redis for ${fmt(r.registry.users)} users (${src('registry.usedMemoryMiB')}) | ${r.registry.usedMemoryMiB} × 2²⁰ / ${fmt(r.registry.users)} | **${fmt(bytesPerUser)} B/user**, ${fmt(registryGiB, 2)} GiB in all, ${fmt(registryGiB / masters, 2)} GiB per master on ${masters} masters (each further device of a user adds one \`connId:incId:since\` entry, about 45 bytes) |
| Redis CPU per push (lookup) | ${fmt(redisUsPerPush)} µs at full load, ${fmt(redisUsPerPush1k)} µs at 1,000/s (${src('pushes[pipeline, N=3, max / fixed 1000].cpuMs.redis')}) | ${fmt(pushesPerS)} pushes/s × ${fmt(redisUsPerPush)} µs | ${fmt((pushesPerS * redisUsPerPush) / 1e6, 2)} cores; one HMGET per push, or per partition per router turn when pushes arrive together |
| Redis writes per second | connects and disconnects, ${fmt(redisUsPerConnect)} µs of Redis each (${src('storm.cpuMs.redis / connected')}) | 2 × ${fmt(d.users)} / ${d.sessionMinutes * 60} s; + ${d.edges} renewals / ${fmt(d.leaseTtlMs / 3000, 2)} s | ${fmt(writesPerS)} writes/s (${fmt((writesPerS * redisUsPerConnect) / 1e6, 2)} cores) + ${fmt(renewalsPerS)} renewals/s on the \`{ctl}\` master |
| Redis masters | | steady: (${fmt((pushesPerS * redisUsPerPush) / 1e6, 2)} + ${fmt((writesPerS * redisUsPerConnect) / 1e6, 2)}) cores / ${d.targetUtilisation}, at least 3 = ${steadyMasters}; a full restart (last row): ${fmt(stormRedisCoresAll, 2)} cores / 0.8 | **${masters} masters**, sized by the restart storm: ${fmt(pushesPerS / masters)} lookups/s and ${fmt(writesPerS / masters)} writes/s each (partitions spread evenly; 256 partitions cap the spread at 256 masters) |
| Router CPU per push | ${fmt(routerUs.max)} µs at full load, ${fmt(routerUs.r5k)} µs at 5,000/s, ${fmt(routerUs.r1k)} µs at 1,000/s (${src('pushes[pipeline, N=3].cpuMs.router / received')}) | ${fmt(pushesPerS)} × ${fmt(routerUs.max)} µs | ${fmt(routerCores, 2)} cores: **${routers} router cores** (replicas). A lightly loaded router pays a wake-up per hop per push: run few, busy routers (the HPA's 70% CPU target does that) |
| Router CPU per 1,000 recipients | ${fmt(routerUsPer1000Recipients / 1000)} ms in batches of 1,000 (${src('pushes[pipeline, N=3, batch1000]')}) | | a 10,000-recipient push ≈ ${fmt(routerUsPer1000Recipients / 100)} ms of one router core |
| Edge connections per GiB | ${memory.rssKiBPerConnection} KiB RSS per idle connection at ${fmt(memory.connections)} (${src('memory[switchboard].rssKiBPerConnection')}) | 2²⁰ KiB / ${memory.rssKiBPerConnection} | **${fmt(connsPerGiB)} connections/GiB**; ${fmt(perEdgeUsers)} per edge ≈ ${fmt(edgeMiB)} MiB + the process's ~80 MiB |
| Edge connections per core | ${fmt(edgeUsPerFrame)} µs of edge CPU per single-recipient frame, ${fmt(edgeUsPerFrameBatch)} µs in batches (${src('pushes[pipeline, N=3, max / batch1000]')}) | ${fmt(perEdgeFramesPerS)} frames/s per edge × ${fmt(edgeUsPerFrame)} µs | ${fmt((perEdgeFramesPerS * edgeUsPerFrame) / 1e4, 2)}% of a core per edge for pushes: idle connections cost memory, not CPU, so an edge is sized by memory and its connect storm |
| Connect storm after a full restart | ${fmt(edgeUsPerConnect)} µs of edge CPU and ${fmt(redisUsPerConnect)} µs of Redis per authenticated, registered connection (${src('storm.cpuMs')}) | ${fmt(perEdgeUsers)} per edge over ${d.stormWindowS} s = ${fmt(stormPerEdgePerS)}/s × ${fmt(edgeUsPerConnect)} µs; Redis ${fmt(d.users / d.stormWindowS)}/s × ${fmt(redisUsPerConnect)} µs | **${fmt((stormPerEdgePerS * edgeUsPerConnect) / 1e6, 2)} edge cores** busy for ${d.stormWindowS} s, and ${fmt(stormRedisCores, 2)} Redis cores (${fmt(stormRedisCores / masters, 2)} per master): within budget when clients honour the full-jitter backoff; without jitter, the same work lands in seconds |

**How it changes with N.** A single-recipient push costs the router one lookup and one link
frame whatever the number of edges (measured: CPU per push from N = 1 to 3 in BENCHMARKS.md's
targets). A push to k recipients touches min(k, N) edges: one frame per edge per router turn,
so router CPU grows with the edges involved, not the cluster size; the incumbent's grows
with every node, since every node receives every message. Redis grows with pushes and
connection churn, not with N, except for one renewal per edge every ${fmt(d.leaseTtlMs / 3000, 2)} s.
`
}

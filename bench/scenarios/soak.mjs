// The soak (issue 22, item 5): `edges` edges holding `perEdge` authenticated, registered
// connections each, from load-generator processes on distinct 127.0.0.x addresses, then
// `minutes` of a mixed workload: single-recipient pushes (every `keepEvery`-th kept), room pushes
// to durable rooms of `roomMembers` members, presence queries, a fraction of the users
// reconnecting by the SDK's rule each minute, and a presence webhook answering 204. Reports the
// storm, CPU per process, memory (RSS per connection, Redis used_memory) and latency per minute,
// the slope of memory over the last `flatMinutes`, and every push accounted for (accounting.mjs).
import { randomBytes } from 'node:crypto'
import { createRedisClient } from '@switchboard/registry'
import { SwitchboardBackend } from '@switchboard/backend'
import { framesPerPush, notDeliveredOutsideReconnects, roomPushAccount, userPushAccount } from '../lib/accounting.mjs'
import { closeFleet, connectFleet, settle } from '../lib/fleet.mjs'
import { cpuMeter, idleGc, rssKiB, secrets, sleep, startChild, startRedis, startSwitchboard, stop, stopSystem, sum } from '../lib/harness.mjs'
import { startReceiver } from '../lib/receiver.mjs'
import { percentiles, round, slope } from '../lib/stats.mjs'

/** Durable rooms over consecutive users, their sizes stepping from the smallest to the largest and round again. */
function roomsOf(users, [smallest, largest]) {
  const rooms = []
  const steps = 10
  for (let at = 0, i = 0; at + smallest <= users.length; i++) {
    const size = Math.min(users.length - at, Math.round(smallest + ((largest - smallest) * (i % steps)) / (steps - 1)))
    rooms.push({ name: `soak-room-${i}`, members: users.slice(at, at + size) })
    at += size
  }
  return rooms
}

const all = (fleet, message) => Promise.all(fleet.loaders.map((l) => l.call(message)))
const kib = (bytes) => Math.round(bytes / 1024)

export async function soak(sizes, log) {
  const s = sizes.soak
  const redis = await startRedis()
  const redisClient = createRedisClient(redis.url, { commandTimeoutMs: 30_000 })
  const usedMemory = async () => Number((await redisClient.info('memory')).match(/used_memory:(\d+)/)?.[1])
  const receiver = await startReceiver()
  const routerEnv = { PRESENCE_WEBHOOK_URL: receiver.url, PRESENCE_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}` }
  const system = await startSwitchboard({ edges: s.edges, redis, routerEnv })
  const edges = system.edges
  const rssOf = async (servers) => Object.fromEntries(await Promise.all(servers.map(async (x) => [x.name, await rssKiB(x.pid)])))
  const result = { sizes: s }
  try {
    const users = Array.from({ length: s.edges * s.perEdge }, (_, i) => `soak-${i}`)
    const rooms = roomsOf(users, s.roomMembers)
    const admin = new SwitchboardBackend({ url: `http://127.0.0.1:${system.router.port}`, apiKey: secrets.apiKey, transport: 'http' })
    for (const room of rooms) await admin.roomAdd(room.name, room.members)
    await admin.close()
    result.rooms = { count: rooms.length, members: rooms.reduce((n, r) => n + r.members.length, 0) }
    log(`${rooms.length} rooms of ${s.roomMembers.join('–')} members (${result.rooms.members} memberships); storm of ${users.length} connections on ${s.edges} edges from ${s.loadProcesses} load generators`)

    // The storm: every connection authenticated, registered, in its rooms, offered resume.start (the SDK's first connect).
    const idle = { rssKiB: await rssOf(system.servers.filter((x) => x.name !== 'redis')), redisUsedMemory: await usedMemory() }
    const stormCpu = await cpuMeter(system.servers)
    const fleet = await connectFleet({ system: 'switchboard-resume', ports: system.ports, users, processes: s.loadProcesses, concurrency: s.concurrency, retries: 5, reconnect: true })
    const stormCpuMs = await stormCpu()
    if (fleet.failed > 0) throw new Error(`${fleet.failed} of ${users.length} connections failed: ${fleet.errors.join('; ')}`)
    const connected = { rssKiB: await rssOf(system.servers.filter((x) => x.name !== 'redis')), redisUsedMemory: await usedMemory() }
    const edgeRssGrowth = sum(Object.fromEntries(edges.map((e) => [e.name, connected.rssKiB[e.name] - idle.rssKiB[e.name]])))
    result.storm = {
      connections: fleet.connected,
      retried: fleet.retried,
      errors: fleet.errors,
      elapsedMs: Math.round(fleet.elapsedMs),
      perS: Math.round(fleet.connected / (fleet.elapsedMs / 1000)),
      cpuMs: stormCpuMs,
      cpuUsPerConnection: Object.fromEntries(Object.entries(stormCpuMs).map(([name, ms]) => [name, round((ms * 1000) / fleet.connected, 1)])),
      serverCpuUsPerConnection: round((sum(stormCpuMs) * 1000) / fleet.connected, 1),
      idle,
      connected,
      edgeRssKiBPerConnection: round(edgeRssGrowth / fleet.connected, 2),
      redisBytesPerConnection: Math.round((connected.redisUsedMemory - idle.redisUsedMemory) / fleet.connected),
    }
    log(`storm: ${fleet.connected} in ${(fleet.elapsedMs / 1000).toFixed(1)} s (${result.storm.perS}/s; ${fleet.retried} attempts retried${fleet.retried ? `: ${fleet.errors[0]}` : ''}), server CPU ${result.storm.serverCpuUsPerConnection} µs per connection; edge RSS +${result.storm.edgeRssKiBPerConnection} KiB, Redis +${result.storm.redisBytesPerConnection} B per connection`)

    // The workload, with a row a minute.
    const publisher = startChild('publisher.mjs')
    const durationMs = s.minutes * s.minuteMs
    await publisher.call({
      cmd: 'mix-start',
      target: { system: 'switchboard', ingress: 'pipeline', port: system.router.port, apiKey: secrets.apiKey },
      users,
      rooms: rooms.map((r) => r.name),
      ...s.workload,
      durationMs,
    })
    await all(fleet, { cmd: 'churn-start', perS: s.churnPerMinute / (s.minuteMs / 1000) })
    await all(fleet, { cmd: 'tick' }) // latencies from here on
    const wholeCpu = await cpuMeter(system.servers)
    const startedAt = Date.now()
    const minutes = []
    log('minute | user pushes p50/p99/max ms | room frames p50/p99/max ms | CPU % of a core: router, edges (max), Redis | RSS MiB: router, edges | edges heap after GC MiB | Redis MiB | webhook events')
    for (let m = 1; m <= s.minutes; m++) {
      const minuteCpu = await cpuMeter(system.servers)
      await sleep(startedAt + m * s.minuteMs - Date.now())
      const [cpuMs, ticks, rss, redisUsedMemory] = await Promise.all([minuteCpu(), all(fleet, { cmd: 'tick' }), rssOf(system.servers.filter((x) => x.name !== 'redis')), usedMemory()])
      // What the edges hold alive, after a full GC (a pause of a few ms once a minute): a leak shows here, RSS alone can be the allocator.
      const heaps = await Promise.all(edges.map((e) => idleGc(e, 0)))
      const pct = (ms) => round((ms / s.minuteMs) * 100, 1)
      const edgePct = edges.map((e) => pct(cpuMs[e.name]))
      const row = {
        minute: m,
        userLatencyMs: percentiles(ticks.flatMap((t) => t.user)),
        roomLatencyMs: percentiles(ticks.flatMap((t) => t.room)),
        cpuPct: Object.fromEntries(Object.entries(cpuMs).map(([name, ms]) => [name, pct(ms)])),
        rssKiB: rss,
        edgeHeapKiB: Object.fromEntries(edges.map((e, i) => [e.name, kib(heaps[i].memory.heapUsed)])),
        edgeExternalKiB: Object.fromEntries(edges.map((e, i) => [e.name, kib(heaps[i].memory.external)])),
        redisUsedMemory,
        webhookEvents: { ...receiver.counts },
      }
      minutes.push(row)
      const l = (p) => `${p.p50}/${p.p99}/${p.max}`
      log(`${String(m).padStart(6)} | ${l(row.userLatencyMs).padEnd(25)} | ${l(row.roomLatencyMs).padEnd(26)} | ${row.cpuPct.router}, ${round(edgePct.reduce((a, b) => a + b, 0), 1)} (${Math.max(...edgePct)}), ${row.cpuPct.redis} | ${Math.round(rss.router / 1024)}, ${Math.round(sum(edges.map((e) => rss[e.name])) / 1024)} | ${round(sum(row.edgeHeapKiB) / 1024, 1)} | ${Math.round(redisUsedMemory / 2 ** 20)} | ${row.webhookEvents['user.online']} on, ${row.webhookEvents['user.offline']} off`)
    }
    const mix = await publisher.call({ cmd: 'mix-stop' })
    const churn = await all(fleet, { cmd: 'churn-stop' })
    await settle(fleet, Number.MAX_SAFE_INTEGER, 2_000) // frames still on their way (and replays of the last resumes)
    const cpuMs = await wholeCpu()
    const windowMs = Date.now() - startedAt
    const receipts = await all(fleet, { cmd: 'receipts' })
    await publisher.stop()

    const userPushes = userPushAccount(mix.answers, framesPerPush(mix.answers.length, receipts.map((r) => r.user)))
    userPushes.notDeliveredOutsideReconnects = notDeliveredOutsideReconnects(
      mix.offlineAnswers,
      churn.flatMap((c) => c.gaps),
    )
    userPushes.isWhole &&= userPushes.notDeliveredOutsideReconnects === 0
    const roomFrames = new Map()
    for (const r of receipts) for (const [n, count] of r.room) roomFrames.set(n, (roomFrames.get(n) ?? 0) + count)
    const roomPushes = roomPushAccount(mix.roomReached, roomFrames)
    const pushes = mix.pushes.sent + mix.roomPushes.sent
    const frames = sum(receipts.map((r) => r.user.length)) + roomPushes.frames
    const flat = minutes.slice(-s.flatMinutes)
    const perMinute = (values) => round(slope(flat.map((r) => r.minute), values), 1)
    result.workload = {
      windowMs,
      sent: { userPushes: mix.pushes.sent, roomPushes: mix.roomPushes.sent, presenceQueries: mix.queries.sent, perS: round((mix.pushes.sent * 1000) / durationMs, 0) },
      cpuPctOfCore: Object.fromEntries(Object.entries(cpuMs).map(([name, ms]) => [name, round((ms / windowMs) * 100, 1)])),
      cpuUsPerPush: Object.fromEntries(Object.entries(cpuMs).map(([name, ms]) => [name, round((ms * 1000) / pushes, 1)])),
      serverCpuUsPerPush: round((sum(cpuMs) * 1000) / pushes, 1),
      serverCpuUsPerFrame: round((sum(cpuMs) * 1000) / frames, 1),
      userPushes,
      roomPushes,
      presenceQueries: { ...mix.presence, latenciesMs: undefined, latencyMs: percentiles(mix.presence.latenciesMs) },
      publisherErrors: mix.errors,
      reconnects: {
        count: sum(churn.map((c) => c.reconnects)),
        failedAttempts: sum(churn.map((c) => c.failedAttempts)),
        notRecovered: sum(churn.map((c) => c.notRecovered)),
        unexpectedCloses: sum(churn.map((c) => c.unexpectedCloses)),
        gaveUp: sum(churn.map((c) => c.gaveUp)),
        gapMs: percentiles(churn.flatMap((c) => c.gaps.map(([, from, to]) => (to - from) / 1000))),
      },
      webhookEvents: { ...receiver.counts },
      worstMinuteLatencyMs: {
        userP99: Math.max(...minutes.map((r) => r.userLatencyMs.p99)),
        userMax: Math.max(...minutes.map((r) => r.userLatencyMs.max)),
        roomP99: Math.max(...minutes.map((r) => r.roomLatencyMs.p99)),
        roomMax: Math.max(...minutes.map((r) => r.roomLatencyMs.max)),
      },
      memorySlopePerMinute: {
        minutes: flat.map((r) => r.minute),
        routerRssKiB: perMinute(flat.map((r) => r.rssKiB.router)),
        edgesRssKiB: perMinute(flat.map((r) => sum(edges.map((e) => r.rssKiB[e.name])))),
        edgesHeapKiB: perMinute(flat.map((r) => sum(r.edgeHeapKiB))),
        redisUsedMemoryKiB: perMinute(flat.map((r) => kib(r.redisUsedMemory))),
      },
      edgeRssKiBPerConnection: round(sum(edges.map((e) => minutes.at(-1).rssKiB[e.name])) / fleet.connected, 2),
    }
    result.minutes = minutes
    const w = result.workload
    log(`user pushes: ${userPushes.sent} sent, ${userPushes.delivered} delivered, ${userPushes.offline} offline, ${userPushes.failed} failed, ${userPushes.errors} errors; ${userPushes.kept} kept, ${userPushes.keptMissing} missing, ${userPushes.keptDuplicateFrames} duplicate frames (dropped by id); delivered but missing ${userPushes.deliveredMissing}; not delivered outside a reconnect ${userPushes.notDeliveredOutsideReconnects}: ${userPushes.isWhole ? 'every push accounted for' : 'NOT WHOLE'}`)
    log(`room pushes: ${roomPushes.sent} sent, ${roomPushes.reached} reached, ${roomPushes.frames} frames, ${roomPushes.missingFrames} missing, ${roomPushes.extraFrames} extra, ${roomPushes.errors} errors: ${roomPushes.isWhole ? 'whole' : 'NOT WHOLE'}`)
    log(`presence queries: ${mix.presence.answered} answered (p99 ${w.presenceQueries.latencyMs.p99} ms), ${mix.presence.errors} errors, ${mix.presence.wrong} wrong; reconnects ${w.reconnects.count} (gap p50 ${w.reconnects.gapMs.p50} ms), ${w.reconnects.notRecovered} not recovered, ${w.reconnects.unexpectedCloses} closed by a server, ${w.reconnects.gaveUp} given up after 10 attempts; webhook events ${w.webhookEvents['user.online']} online, ${w.webhookEvents['user.offline']} offline`)
    log(`CPU % of a core: ${Object.entries(w.cpuPctOfCore).map(([n, v]) => `${n} ${v}`).join(', ')}; server CPU ${w.serverCpuUsPerPush} µs per push (${w.serverCpuUsPerFrame} per frame)`)
    log(`memory slope per minute over minutes ${w.memorySlopePerMinute.minutes.join(', ')}: edges RSS ${w.memorySlopePerMinute.edgesRssKiB} KiB (heap after GC ${w.memorySlopePerMinute.edgesHeapKiB} KiB), router RSS ${w.memorySlopePerMinute.routerRssKiB} KiB, Redis used_memory ${w.memorySlopePerMinute.redisUsedMemoryKiB} KiB; edge RSS ${w.edgeRssKiBPerConnection} KiB per connection at the end`)
    await closeFleet(fleet)
    return result
  } finally {
    receiver.close()
    redisClient.disconnect()
    await stopSystem(system)
    await stop(redis.proc)
  }
}

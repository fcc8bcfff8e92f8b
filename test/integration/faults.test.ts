// Faults: edges crashing over and over leave Redis as they found it; a user's late close on
// an old edge never removes their newer connection; an edge that refuses, errors or hangs
// makes only its own users `failed`, and one that keeps failing is skipped quickly; a
// router's SIGTERM still answers the push it is working on.
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { connect, createServer as createTcpServer, type Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { Redis } from 'ioredis'
import { RedisRegistry } from '@switchboard/registry'
import { api, connectUser, eventually, mintToken, withToken, type Client, type Frame } from '../helpers/clients.js'
import { startCluster, startRouter, testSecrets, type Edge } from '../helpers/processes.js'
import type { TestScope } from '../helpers/redis.js'

const { jwtSecret, internalToken, apiKeys } = testSecrets()

// A lease long enough that an edge killed or stopped in a test still holds it while the
// test pushes to its users: they must come out `failed`, not `offline`.
const FAULT_LEASE_TTL_MS = 10_000
const FORWARD_TIMEOUT_MS = 500
const cluster = await startCluster(t, {
  edges: 2,
  leaseTtlMs: FAULT_LEASE_TTL_MS,
  routerEnv: { ROUTER_FORWARD_TIMEOUT_MS: String(FORWARD_TIMEOUT_MS) },
})
const [edge1, edge2] = cluster.edges as [Edge, Edge]
const push = (body: unknown) => cluster.api.post('/v1/push', body)
const presence = (userId: string) => cluster.api.get(`/v1/presence/${encodeURIComponent(userId)}`)

/** Runs `fn` and measures it in ms. */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now()
  const value = await fn()
  return { value, ms: Date.now() - started }
}

/** The next frame of push `id`; earlier frames (e.g. of pushes reported `failed` but written late) are skipped. */
async function pushFrameWithId(client: Client, id: string): Promise<{ frame: Frame; skipped: number }> {
  for (let skipped = 0; ; skipped++) {
    const frame = await client.nextFrame()
    if (frame.type === 'push' && frame.id === id) return { frame, skipped }
  }
}

t.test('crash cycles leave the registry keys and Redis memory at their baseline', async (t) => {
  const CYCLES = 20
  // Measured at 1.0 to 1.5 s per cycle (20 to 30 s in all) on 2 shared cores: all 500 users stay.
  const USERS = 500
  const LEASE_TTL_MS = 1_000
  const KEY_SLACK = 2
  // Less than one cycle's entries (about 140 KiB): covers client buffers (measured within
  // ±25 KiB) and the Lua scripts first run after the baseline (a few KiB, cached for good).
  const MEMORY_SLACK_BYTES = 128 * 1024

  // Grace 0: a lapsed lease is reaped (and its entries collected) at the reaper's next turn.
  const crash = await startCluster(t, { edges: 1, leaseTtlMs: LEASE_TTL_MS, routerEnv: { REGISTRY_REAP_GRACE_MS: '0' } })
  const [permanent] = crash.edges as [Edge]
  const redis = new Redis(crash.redis.url)
  t.teardown(() => redis.disconnect())
  const registryKeys = async (): Promise<string[]> => {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${crash.prefix}*`, 'COUNT', 1_000)
      cursor = next
      keys.push(...batch)
    } while (cursor !== '0')
    return keys.sort()
  }
  // Presence events are kept on purpose (PRESENCE_RETENTION_MS) with their delivery state:
  // not entries, and left out of both the key and the memory comparison.
  const isPresenceKey = (k: string) => /:(ev|h|hc|v|cur|own|workers|trimmed)$/.test(k)
  const presenceBytes = async (): Promise<number> => {
    let bytes = 0
    for (const k of (await registryKeys()).filter(isPresenceKey)) bytes += Number(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) || 0
    return bytes
  }
  const usedMemoryBytes = async (): Promise<number> => {
    // Server bookkeeping, not registry memory: a latency histogram (about 30 KiB) per command
    // name from its first call, and a slow log that a loaded machine fills at random.
    await redis.call('CONFIG', 'RESETSTAT')
    await redis.call('SLOWLOG', 'RESET')
    const info = await redis.info('memory')
    return Number(/^used_memory:(\d+)/m.exec(info)?.[1])
  }
  const ctl = (name: string) => `${crash.prefix}{ctl}:${name}`
  const query = (userIds: string[]) => crash.api.post('/v1/presence/query', { userIds })

  // A user on the permanent edge is part of the baseline and must survive every crash.
  const bystander = await connectUser(t, permanent.wsUrl, jwtSecret, 'f-crash-bystander')
  await eventually(async () => (await query(['f-crash-bystander'])).body?.online?.length === 1, { timeoutMs: 2_000 })
  const baselineKeys = (await registryKeys()).filter((k) => !isPresenceKey(k))
  const baselineBytes = (await usedMemoryBytes()) - (await presenceBytes())

  const users = Array.from({ length: USERS }, (_, i) => `f-crash-${i}`)
  const tokens = await Promise.all(users.map((u) => mintToken(jwtSecret, u)))
  const sockets: WebSocket[] = []
  t.teardown(() => sockets.forEach((ws) => ws.terminate()))
  const reusedId = `f-crash-reused-${randomBytes(3).toString('hex')}`
  const cycleMs: number[] = []
  let peakBytes = 0

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const started = Date.now()
    // Two cycles under one reused id (the second start supersedes the first), then two fresh ids.
    const nodeId = cycle % 4 < 2 ? reusedId : `f-crash-${cycle}-${randomBytes(3).toString('hex')}`
    const edge = await crash.addEdge(t, { nodeId })
    const welcomes = await Promise.all(
      tokens.map(
        (token) =>
          new Promise<Frame>((resolve, reject) => {
            const ws = new WebSocket(withToken(edge.wsUrl, token))
            sockets.push(ws)
            ws.once('message', (data) => resolve(JSON.parse(String(data)) as Frame))
            ws.once('close', (code) => reject(new Error(`cycle ${cycle}: closed with ${code} before its welcome`)))
            ws.on('error', reject) // also takes the resets that follow the edge's SIGKILL
          }),
      ),
    )
    const welcomed = welcomes.filter((w) => w.type === 'welcome' && w.nodeId === nodeId).length
    await eventually(async () => (await query(users)).body?.online?.length === USERS, { timeoutMs: 5_000 })
    // The previous incarnation's entries of the same users may still be within their lease:
    // check that the newest connection is among those found, not only that the user is online.
    const sample = await crash.api.get(`/v1/presence/${users[0]}`)
    const sampleIds = (sample.body?.connections ?? []).map((c: { connId: string }) => c.connId)
    t.ok(welcomed === USERS && sampleIds.includes(welcomes[0]?.connId), `cycle ${cycle} (${nodeId}): ${welcomed} welcomed and online`)
    if (cycle === CYCLES - 1) peakBytes = await usedMemoryBytes()

    edge.kill('SIGKILL')
    await edge.exited
    // Only now do the clients go away: the dead edge never removed a single entry itself.
    for (const ws of sockets.splice(0)) ws.terminate()
    cycleMs.push(Date.now() - started)
  }
  const totalMs = cycleMs.reduce((a, b) => a + b, 0)
  t.comment(`${CYCLES} cycles of ${USERS} users: ${totalMs} ms, ${Math.round(totalMs / CYCLES)} ms per cycle (max ${Math.max(...cycleMs)} ms)`)

  const offline = await timed(() =>
    eventually(async () => (await query(users)).body?.offline?.length === USERS, { timeoutMs: LEASE_TTL_MS * 2 + 3_000 }),
  )
  t.pass(`every crashed edge's user is offline ${offline.ms} ms after the last kill`)
  // Reaped and collected: only the permanent edge's incarnation is left, and no clean-up job.
  const cleaned = await timed(() =>
    eventually(
      async () => {
        const [nodes, incs, jobs] = await Promise.all([redis.zcard(ctl('nodes')), redis.hlen(ctl('inc')), redis.zcard(ctl('gcq'))])
        return nodes === 1 && incs === 1 && jobs === 0
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    ),
  )
  t.pass(`the reaper finished ${cleaned.ms} ms later`)
  t.equal(await redis.hlen(ctl('names')), 1, 'only the permanent node keeps its name')

  const afterKeys = (await registryKeys()).filter((k) => !isPresenceKey(k))
  const extra = afterKeys.filter((k) => !baselineKeys.includes(k))
  t.ok(
    afterKeys.length <= baselineKeys.length + KEY_SLACK,
    `${afterKeys.length} keys after, ${baselineKeys.length} at baseline; new keys: ${JSON.stringify(extra.slice(0, 20))}`,
  )
  const afterBytes = (await usedMemoryBytes()) - (await presenceBytes())
  const deltaBytes = afterBytes - baselineBytes
  t.ok(
    deltaBytes <= MEMORY_SLACK_BYTES,
    `used_memory without presence events ${afterBytes} B after, ${baselineBytes} B at baseline (${deltaBytes >= 0 ? '+' : ''}${deltaBytes} B; ${peakBytes} B with the last cycle's users online)`,
  )

  const res = await crash.api.post('/v1/push', { to: ['f-crash-bystander', users[0]], event: 'after.crashes', data: 1 })
  t.same(res.body.delivered, ['f-crash-bystander'], 'the permanent edge\'s user is still reachable')
  t.same(res.body.offline, [users[0]])
  t.match((await pushFrameWithId(bystander.client, res.body.id)).frame, { event: 'after.crashes' })
})

/** Polls presence until it shows exactly `connId`, counting the answers that showed the user offline meanwhile. */
async function settlesOn(userId: string, connId: string): Promise<{ body: { online: boolean; connections: { connId: string; nodeId: string }[] }; offlineSeen: number }> {
  let offlineSeen = 0
  const res = await eventually(async () => {
    const r = await presence(userId)
    if (r.body?.online !== true) offlineSeen++
    const ids = (r.body?.connections ?? []).map((c: { connId: string }) => c.connId)
    return ids.length === 1 && ids[0] === connId ? r : undefined
  }, { timeoutMs: 3_000, intervalMs: 20 })
  return { body: res.body, offlineSeen }
}

t.test('reconnect race: a late close of the old socket never removes the newer connection', async (t) => {
  for (let round = 0; round < 4; round++) {
    const [from, to] = round % 2 === 0 ? [edge1, edge2] : [edge2, edge1]
    const userId = `f-race-${round}`
    const old = await connectUser(t, from.wsUrl, jwtSecret, userId)
    const fresh = await connectUser(t, to.wsUrl, jwtSecret, userId)
    // Welcome means registered: both entries exist before the old socket closes.
    const both = await presence(userId)
    t.same(
      both.body.connections.map((c: { connId: string }) => c.connId).sort(),
      [old.welcome.connId, fresh.welcome.connId].sort(),
      `round ${round}: both connections registered`,
    )

    await old.client.close()
    const settled = await settlesOn(userId, fresh.welcome.connId)
    t.equal(settled.offlineSeen, 0, `round ${round}: never shown offline`)
    t.match(settled.body, { online: true, connections: [{ connId: fresh.welcome.connId, nodeId: to.nodeId }] })

    const res = await push({ to: [userId], event: 'after.race', data: round })
    t.same(res.body.delivered, [userId])
    t.match(await fresh.client.nextFrame(), { type: 'push', id: res.body.id, event: 'after.race', data: round })
  }
})

t.test('reconnect race, reverse order: the old socket closes first, the new one ends up registered', async (t) => {
  for (let round = 0; round < 4; round++) {
    const [from, to] = round % 2 === 0 ? [edge1, edge2] : [edge2, edge1]
    const userId = `f-race-rev-${round}`
    const old = await connectUser(t, from.wsUrl, jwtSecret, userId)
    // The old edge's removal races the new edge's registration.
    const closing = old.client.close()
    const fresh = await connectUser(t, to.wsUrl, jwtSecret, userId)
    await closing
    const settled = await settlesOn(userId, fresh.welcome.connId)
    t.match(settled.body, { online: true, connections: [{ connId: fresh.welcome.connId, nodeId: to.nodeId }] })

    const res = await push({ to: [userId], event: 'after.race', data: round })
    t.same(res.body.delivered, [userId])
    t.match(await fresh.client.nextFrame(), { type: 'push', id: res.body.id, event: 'after.race', data: round })
  }
})

t.test('an edge killed while it still holds its lease: its users are failed at once, others delivered', async (t) => {
  const doomed = await cluster.addEdge(t)
  await connectUser(t, doomed.wsUrl, jwtSecret, 'f-refused')
  const other = await connectUser(t, edge1.wsUrl, jwtSecret, 'f-refused-other')
  const to = ['f-refused', 'f-refused-other', 'f-refused-nobody']
  // Leaves a keep-alive connection from the router to the edge in the pool.
  const warm = await push({ to, event: 'warm', data: 0 })
  t.same(warm.body.delivered.sort(), ['f-refused', 'f-refused-other'])
  await other.client.nextFrame()

  doomed.kill('SIGKILL')
  await doomed.exited
  t.equal((await presence('f-refused')).body.online, true, 'the registry still lists the user (lease live)')
  // The first push may meet the pooled connection the kill reset, the second a refused connect.
  for (const attempt of ['pooled connection', 'new connection']) {
    const { value: res, ms } = await timed(() => push({ to, event: 'refused', data: attempt }))
    t.equal(res.status, 200)
    t.same(res.body, { id: res.body.id, delivered: ['f-refused-other'], offline: ['f-refused-nobody'], failed: ['f-refused'] }, attempt)
    t.ok(ms < FORWARD_TIMEOUT_MS / 2, `${attempt}: answered in ${ms} ms (forward timeout ${FORWARD_TIMEOUT_MS} ms)`)
    t.match(await other.client.nextFrame(), { type: 'push', id: res.body.id })
  }
})

interface FakeEdge {
  url: string
  /** Headers of every call it got. */
  calls: IncomingHttpHeaders[]
}

/** An HTTP server standing in for an edge's internal port that answers every call with `status` and `body`. */
async function startFakeEdge(t: TestScope, status: number, body: string): Promise<FakeEdge> {
  const calls: IncomingHttpHeaders[] = []
  const server = createServer((req, res) => {
    calls.push(req.headers)
    req.resume()
    req.once('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end(body))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise((resolve) => server.close(resolve))
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('fake edge has no port')
  return { url: `http://127.0.0.1:${address.port}`, calls }
}

t.test('an edge answering 5xx (or garbage): its users are failed, never delivered, the others delivered', async (t) => {
  const redis = new Redis(cluster.redis.url)
  t.teardown(() => redis.disconnect())
  const registry = new RedisRegistry(redis, { prefix: cluster.prefix })
  const fakes = {
    'f-5xx': await startFakeEdge(t, 500, '{"error":{"code":"internal","message":"boom"}}'),
    // A 200 that is not a delivery answer proves nothing was written.
    'f-garbage': await startFakeEdge(t, 200, 'not json'),
  }
  const renewalErrors: unknown[] = []
  for (const [userId, fake] of Object.entries(fakes)) {
    const lease = await registry.openLease({ nodeId: `${userId}-${randomBytes(3).toString('hex')}`, url: fake.url, startedAt: Date.now() }, FAULT_LEASE_TTL_MS)
    await registry.addConnections(lease, [{ userId, connId: `fake${randomBytes(4).toString('hex')}.0`, since: Date.now() }])
    const renewer = setInterval(() => {
      registry.renew(lease, { connections: 1, draining: false }).then(
        (held) => held || renewalErrors.push(new Error(`${userId}: lease lost`)),
        (err: unknown) => renewalErrors.push(err),
      )
    }, FAULT_LEASE_TTL_MS / 3)
    t.teardown(() => {
      clearInterval(renewer)
      return registry.closeLease(lease)
    })
  }
  const other = await connectUser(t, edge2.wsUrl, jwtSecret, 'f-5xx-other')

  const to = ['f-5xx', 'f-garbage', 'f-5xx-other']
  const { value: res, ms } = await timed(() => push({ to, event: 'erroring', data: 1 }))
  t.equal(res.status, 200)
  t.same(res.body.delivered, ['f-5xx-other'])
  t.same(res.body.failed.sort(), ['f-5xx', 'f-garbage'])
  t.same(res.body.offline, [])
  t.ok(ms < FORWARD_TIMEOUT_MS / 2, `answered in ${ms} ms`)
  for (const fake of Object.values(fakes)) {
    t.equal(fake.calls.length, 1, 'the router called the fake edge once')
    t.equal(fake.calls[0]?.authorization, `Bearer ${internalToken}`, 'with the internal token')
  }
  t.match(await other.client.nextFrame(), { type: 'push', id: res.body.id })
  t.same(renewalErrors, [], 'the fake leases stayed live')
})

t.test('a stopped edge: its users fail within the timeout, then fast, and it is used again once it resumes', async (t) => {
  const slow = await cluster.addEdge(t)
  const victim = await connectUser(t, slow.wsUrl, jwtSecret, 'f-slow')
  const other = await connectUser(t, edge1.wsUrl, jwtSecret, 'f-slow-other')
  slow.kill('SIGSTOP')
  t.teardown(() => slow.kill('SIGCONT'))

  const stuck = await Promise.all(
    Array.from({ length: 10 }, (_, i) => timed(() => push({ to: ['f-slow', 'f-slow-other'], event: 'slow', data: i }))),
  )
  const stuckMs = stuck.map((s) => s.ms)
  for (const { value: res } of stuck) {
    t.equal(res.status, 200)
    t.same([res.body.failed, res.body.delivered], [['f-slow'], ['f-slow-other']])
  }
  t.ok(Math.max(...stuckMs) < FORWARD_TIMEOUT_MS + 1_000, `10 parallel pushes answered in ${Math.min(...stuckMs)}..${Math.max(...stuckMs)} ms (forward timeout ${FORWARD_TIMEOUT_MS} ms)`)

  // A node that keeps failing is skipped quickly instead of being waited on again.
  for (let i = 0; i < 3; i++) {
    const { value: res, ms } = await timed(() => push({ to: ['f-slow', 'f-slow-other'], event: 'skipped', data: i }))
    t.same([res.body.failed, res.body.delivered], [['f-slow'], ['f-slow-other']])
    t.ok(ms < FORWARD_TIMEOUT_MS / 2, `push ${i} after the failures answered in ${ms} ms: skipped, not waited on (forward timeout ${FORWARD_TIMEOUT_MS} ms)`)
  }
  for (let i = 0; i < 13; i++) await other.client.nextFrame()

  slow.kill('SIGCONT')
  const { value: back, ms: backMs } = await timed(() =>
    eventually(async () => {
      const r = await push({ to: ['f-slow'], event: 'resumed', data: 1 })
      return r.body?.delivered?.[0] === 'f-slow' ? r : undefined
    }, { timeoutMs: 8_000, intervalMs: 100 }),
  )
  t.pass(`delivered again ${backMs} ms after SIGCONT (the circuit probes after at most 5 s)`)
  // Pushes reported failed may still reach the socket once the edge resumes: `failed` means
  // "not confirmed", so a caller that retries must tolerate a duplicate.
  const { frame, skipped } = await pushFrameWithId(victim.client, back.body.id)
  t.match(frame, { type: 'push', event: 'resumed', data: 1 })
  t.comment(`${skipped} frames of pushes reported failed arrived late`)
})

interface Relay {
  /** `http://127.0.0.1:<port>` */
  url: string
  /** Where connections go; set before the first one arrives. */
  target: { port: number }
  /** Resolves when the next chunk from a client arrives. */
  nextData(): Promise<void>
}

/** A TCP relay, so a test sees the moment a router's call reaches an edge (even a stopped one). */
async function startRelay(t: TestScope): Promise<Relay> {
  const target = { port: 0 }
  const waiters: (() => void)[] = []
  const sockets = new Set<Socket>()
  const server = createTcpServer((down) => {
    const up = connect({ host: '127.0.0.1', port: target.port })
    const end = () => {
      down.destroy()
      up.destroy()
    }
    for (const s of [down, up]) {
      sockets.add(s)
      s.once('close', () => {
        sockets.delete(s)
        end()
      })
      s.on('error', end) // a reset on one side ends both; the close reports it
    }
    down.on('data', () => waiters.splice(0).forEach((w) => w()))
    down.pipe(up).pipe(down)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    sockets.forEach((s) => s.destroy())
    return new Promise((resolve) => server.close(resolve))
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('relay has no port')
  return { url: `http://127.0.0.1:${address.port}`, target, nextData: () => new Promise((resolve) => waiters.push(resolve)) }
}

t.test('a router finishes its in-flight push on SIGTERM, then exits 0', async (t) => {
  const SPARE_FORWARD_TIMEOUT_MS = 1_500
  const relay = await startRelay(t)
  const stuck = await cluster.addEdge(t, { env: { EDGE_ADVERTISE_URL: relay.url } })
  relay.target.port = stuck.internalPort
  const victim = await connectUser(t, stuck.wsUrl, jwtSecret, 'f-term')
  const spare = await startRouter(t, {
    redisUrl: cluster.redis.url,
    prefix: cluster.prefix,
    leaseTtlMs: FAULT_LEASE_TTL_MS,
    env: { ROUTER_FORWARD_TIMEOUT_MS: String(SPARE_FORWARD_TIMEOUT_MS) },
  })
  const spareApi = api(spare.url, apiKeys[0])
  const ok = await spareApi.post('/v1/push', { to: ['f-term'], event: 'before', data: 0 })
  t.same(ok.body.delivered, ['f-term'], 'the spare router reaches the edge through the relay')
  await victim.client.nextFrame()

  stuck.kill('SIGSTOP')
  t.teardown(() => stuck.kill('SIGCONT'))
  const reached = relay.nextData()
  const started = Date.now()
  const inFlight = spareApi.post('/v1/push', { to: ['f-term'], event: 'during.term', data: 1 })
  await reached
  spare.kill('SIGTERM')
  const termAfterMs = Date.now() - started
  t.ok(termAfterMs < SPARE_FORWARD_TIMEOUT_MS, `SIGTERM sent ${termAfterMs} ms into the push, while the edge call was pending`)

  const res = await inFlight
  const answeredMs = Date.now() - started
  t.equal(res.status, 200, 'the in-flight push got its answer')
  t.same(res.body, { id: res.body.id, delivered: [], offline: [], failed: ['f-term'] })
  t.ok(answeredMs >= SPARE_FORWARD_TIMEOUT_MS - 50, `answered after the edge call timed out (${answeredMs} ms)`)
  t.equal(await spare.exited, 0, 'exit code 0')
  const exitMs = Date.now() - started
  t.ok(exitMs < SPARE_FORWARD_TIMEOUT_MS + 3_000, `exited ${exitMs} ms after the push started`)
  t.equal((await api(cluster.router.url).get('/healthz')).status, 200, 'the other router is unaffected')
})

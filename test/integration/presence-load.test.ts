// A storm of 10,000 connects then 10,000 closes (grace 0) makes exactly 10,000 online and
// 10,000 offline events, none lost, none extra, each user's in order. (Throughput and cost per
// event are measured by the bench: bench/run.mjs presence.)
import { randomBytes } from 'node:crypto'
import t from 'tap'
import WebSocket from 'ws'
import type { PresenceEvent } from '@switchboard/protocol'
import { mintToken } from '../helpers/clients.js'
import { eventsIn, startPresenceCluster } from '../helpers/presence.js'
import { testSecrets } from '../helpers/processes.js'

const USERS = 10_000
const { cluster, receiver } = await startPresenceCluster(t, { edges: 2, leaseTtlMs: 10_000, pollMs: 100 })
const { jwtSecret } = testSecrets()

t.test(`${USERS} connects then ${USERS} closes: exactly ${USERS} online and ${USERS} offline events`, async (t) => {
  const tag = randomBytes(3).toString('hex')
  const users = Array.from({ length: USERS }, (_, i) => `pl-${tag}-${i}`)
  const tokens = await Promise.all(users.map((u) => mintToken(jwtSecret, u)))
  const sockets: WebSocket[] = []
  t.teardown(() => sockets.forEach((ws) => ws.terminate()))
  // In waves of 1,000, spread over both edges and loopback addresses.
  for (let i = 0; i < USERS; i += 1_000) {
    await Promise.all(
      tokens.slice(i, i + 1_000).map(
        (token, k) =>
          new Promise<void>((resolve, reject) => {
            const n = i + k
            const ws = new WebSocket(`${cluster.edges[n % 2]!.wsUrl}?token=${token}`, { localAddress: `127.0.0.${1 + (n % 8)}` })
            sockets.push(ws)
            ws.once('message', () => resolve())
            ws.once('close', (code) => reject(new Error(`closed ${code} before welcome`)))
            ws.once('error', reject)
          }),
      ),
    )
  }
  const ours = () => {
    const byId = new Map<string, PresenceEvent>()
    for (const e of eventsIn(receiver.received)) if (e.userId.startsWith(`pl-${tag}-`)) byId.set(e.id, e)
    return [...byId.values()]
  }
  await receiver.waitFor(() => ours().length >= USERS, 60_000)
  await Promise.all(sockets.map((ws) => new Promise((resolve) => (ws.once('close', resolve), ws.close()))))
  await receiver.waitFor(() => ours().length >= 2 * USERS, 60_000)

  const events = ours()
  t.equal(events.filter((e) => e.type === 'user.online').length, USERS, `${USERS} online events`)
  t.equal(events.filter((e) => e.type === 'user.offline').length, USERS, `${USERS} offline events`)
  const perUser = new Map<string, PresenceEvent[]>()
  for (const e of events) perUser.set(e.userId, [...(perUser.get(e.userId) ?? []), e])
  const wrong = users.filter((u) => {
    const list = perUser.get(u) ?? []
    return list.length !== 2 || list[0]!.type !== 'user.online' || list[1]!.type !== 'user.offline' || list[1]!.ver <= list[0]!.ver || list[1]!.cause !== 'close'
  })
  t.same(wrong.slice(0, 5), [], 'each user: online (connect), then offline (close), in ver order')
  t.ok(receiver.received.every((b) => b.verified), `${receiver.received.length} batches, every one signed`)
})

// Past the retention, a cursor is refused with 410 cursor_expired, and the snapshot gives a
// cursor to resume from; the webhook signature carries every configured secret (rotation).
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { PresenceEvent } from '@switchboard/protocol'
import { connectUser, eventually } from '../helpers/clients.js'
import { newWebhookSecret, startPresenceCluster } from '../helpers/presence.js'
import { testSecrets, type Edge } from '../helpers/processes.js'
import { verifyWebhook } from '../helpers/webhook-receiver.js'

const RETENTION_MS = 2_000
// The receiver knows the new secret; the router signs with the old one too (a rotation).
const oldSecret = newWebhookSecret()
const { cluster, receiver, secret: newSecret } = await startPresenceCluster(t, {
  edges: 1,
  presenceEnv: { PRESENCE_RETENTION_MS: String(RETENTION_MS) },
  otherSecrets: [oldSecret],
  routerEnv: { PRESENCE_WEBHOOK_RETRY_FOR_MS: '1000' },
})
const [edge] = cluster.edges as [Edge]
const { jwtSecret } = testSecrets()

/** Connects and closes a user, and waits until both events are in the feed; returns the feed's cursor after them. */
async function transitions(userId: string, after: string): Promise<string> {
  const { client } = await connectUser(t, edge.wsUrl, jwtSecret, userId)
  await client.close()
  return eventually(async () => {
    const page = await cluster.api.get(`/v1/presence/events?after=${after}&limit=1000`)
    const mine = (page.body.events as PresenceEvent[]).filter((e) => e.userId === userId)
    return mine.length === 2 && (page.body.next as string)
  })
}

t.test('a cursor older than the retention is 410 cursor_expired; a snapshot gives one to resume from', async (t) => {
  const a = `pr-a-${randomBytes(3).toString('hex')}`
  const first = await cluster.api.get('/v1/presence/events?limit=1000')
  const start = first.body.next as string
  const afterA = await transitions(a, start)
  const oldCursor = (await cluster.api.get(`/v1/presence/events?after=${start}&limit=1`)).body.next as string
  // Past the retention, the next appends trim a's events.
  await new Promise((r) => setTimeout(r, RETENTION_MS + 500))
  const b = `pr-b-${randomBytes(3).toString('hex')}`
  const afterB = await transitions(b, afterA)
  const expired = await cluster.api.get(`/v1/presence/events?after=${oldCursor}`)
  t.equal(expired.status, 410, 'a cursor whose next events were trimmed')
  t.equal(expired.body.error.code, 'cursor_expired')
  t.match(expired.body.error.message, /snapshot/)
  const current = await cluster.api.get(`/v1/presence/events?after=${afterB}`)
  t.same([current.status, current.body.events], [200, []], 'a cursor within the retention still works')
  const snapshot = await cluster.api.get('/v1/presence/snapshot')
  t.equal(snapshot.status, 200)
  const resumed = await cluster.api.get(`/v1/presence/events?after=${snapshot.body.eventsAfter}`)
  t.equal(resumed.status, 200, 'the snapshot\'s cursor is valid')
})

t.test('with two secrets configured, a receiver knowing either one verifies every batch', async (t) => {
  await receiver.waitFor((r) => r.length > 0, 10_000)
  t.ok(receiver.received.every((b) => b.verified), 'verified with the new secret')
  t.ok(receiver.received.every((b) => verifyWebhook(oldSecret, b.headers, b.body)), 'and with the old one')
  t.ok(receiver.received.every((b) => String(b.headers['webhook-signature']).split(' ').length === 2), 'two signatures per batch')
  const other = `whsec_${randomBytes(32).toString('base64')}`
  t.notOk(receiver.received.some((b) => verifyWebhook(other, b.headers, b.body)), 'a third secret verifies nothing')
})

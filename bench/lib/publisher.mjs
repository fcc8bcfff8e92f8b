// The publisher process: sends pushes the way a business backend would, at a fixed rate or as
// fast as it goes with a bounded number in flight, and stamps each with `t` (µs, hrtime).
// - switchboard: the backend client (@switchboard/backend), ingress `http` (POST /v1/push over a
//   keep-alive pool) or `pipeline` (the router's pipelined websocket, every push in flight on one
//   connection). Target `wait: 'routed'` sends `"wait":"routed"` in each push: the router answers
//   once it handed each edge its frame, and `routed` is what the publisher counts as delivered.
//   Target `ack: <ms>` asks for receipts (`"ack":{"timeoutMs":<ms>}`): `acked` is what it counts.
// - socketio: @socket.io/redis-emitter to rooms `user:<id>` (one PUBLISH per push).
// - bare: POST /push to the bare uWebSockets.js server (undici).
// `mix-start`/`mix-stop`: the soak's mixed workload (user, kept and room pushes, presence
// queries) with every answer kept for the accounting (accounting.mjs).
import { Emitter } from '@socket.io/redis-emitter'
import { Redis } from 'ioredis-v5'
import { Pool } from 'undici'
import { SwitchboardBackend } from '@switchboard/backend'
import { Answer } from './accounting.mjs'

const nowUs = () => Number(process.hrtime.bigint() / 1000n)
const PAD = 'x'.repeat(120) // a push frame of about 200 bytes, as in the incumbent's published figures

/**
 * Switchboard's router through the backend client (@switchboard/backend), over one ingress:
 * `http` (a keep-alive pool) or `pipeline` (one websocket, connected before the measurement
 * so that no push takes the HTTP fallback). The client's in-flight bound sits above the
 * publisher's, so it never queues.
 */
async function switchboardClient({ port, apiKey, ingress }) {
  const sb = new SwitchboardBackend({ url: `http://127.0.0.1:${port}`, apiKey, transport: ingress, maxInFlight: 1_000, httpConnections: 64 })
  if (ingress === 'pipeline') await sb.connect()
  return sb
}

/** Resolves with send(to[]) → Promise<number of recipients the system says it delivered, or -1 when unknown>. */
async function sender({ system, ingress, port, apiKey, wait, ack }) {
  if (system === 'socketio') {
    const redis = new Redis({ host: '127.0.0.1', port })
    let published
    const publish = redis.publish.bind(redis)
    redis.publish = (...args) => (published = publish(...args)) // the emitter drops the reply; keep it, to bound what is in flight
    const emitter = new Emitter(redis)
    return async (to) => {
      emitter.to(to.map((id) => `user:${id}`)).emit('push', { t: nowUs(), pad: PAD })
      await published
      return -1
    }
  }
  if (system === 'bare') {
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64, keepAliveTimeout: 60_000 })
    return async (to) => {
      const frame = JSON.stringify({ type: 'push', id: 'b', event: 'bench', data: { t: nowUs(), pad: PAD }, ts: Date.now() })
      const res = await pool.request({ path: '/push', method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to, frame }) })
      return (await res.body.json()).delivered
    }
  }
  if (ingress !== 'http' && ingress !== 'pipeline') throw new Error(`unknown ingress ${ingress}; choose http or pipeline`)
  const client = await switchboardClient({ port, apiKey, ingress })
  if (ack !== undefined) return async (to) => (await client.push({ to, event: 'bench', data: { t: nowUs(), pad: PAD }, ack: { timeoutMs: ack } })).acked.length
  if (wait === undefined) return async (to) => (await client.push({ to, event: 'bench', data: { t: nowUs(), pad: PAD } })).delivered.length
  // `wait: routed`: the router answers once each edge was handed its frame; `routed` counts as delivered to an edge.
  if (wait !== 'routed') throw new Error(`unknown wait ${wait}; choose routed (or leave it out: the router waits for the edges)`)
  return async (to) => (await client.push({ to, event: 'bench', data: { t: nowUs(), pad: PAD }, wait })).routed.length
}

/** `batch` distinct random users. */
function recipients(users, batch) {
  if (batch === 1) return [users[Math.floor(Math.random() * users.length)]]
  batch = Math.min(batch, users.length)
  const picked = new Set()
  while (picked.size < batch) picked.add(users[Math.floor(Math.random() * users.length)])
  return [...picked]
}

const senders = new Map()

/**
 * Sends for `durationMs`: with `rate`, that many pushes a second on schedule (never more than
 * `maxInFlight` outstanding); without, as fast as answers come back with `maxInFlight` outstanding.
 * `delivered` is the sum of what the system answered (null when it does not say: the emitter).
 */
async function run({ target, users, batch = 1, rate, durationMs, maxInFlight = 64 }) {
  const key = JSON.stringify(target)
  let send = senders.get(key)
  if (!send) {
    senders.set(key, (send = await sender(target)))
    await send(['warm-up']) // warms the connection; nobody of that name is connected
  }
  let delivered = 0
  let isDeliveredUnknown = false
  let errors = 0
  let firstError
  const paced = await pace({ rate, durationMs, maxInFlight }, async () => {
    try {
      // Await first, then add: `delivered += await …` reads `delivered` before the await and
      // writes back a stale sum, losing whatever concurrent sends added meanwhile.
      const count = await send(recipients(users, batch))
      if (count >= 0) delivered += count
      else isDeliveredUnknown = true
    } catch (err) {
      errors++
      firstError ??= String(err.message ?? err)
    }
  })
  return { ...paced, delivered: isDeliveredUnknown ? null : delivered, errors, firstError }
}

/**
 * Runs `task` for `durationMs`: with `rate`, that many times a second on schedule (never more
 * than `maxInFlight` outstanding); without, as fast as tasks end with `maxInFlight` outstanding.
 * Resolves once every task ended, with how many were started and when (µs, hrtime).
 */
async function pace({ rate, durationMs, maxInFlight }, task) {
  const startedUs = nowUs()
  const endUs = startedUs + durationMs * 1000
  let sent = 0
  let inFlight = 0
  let wake
  const one = async () => {
    inFlight++
    sent++
    await task()
    inFlight--
    wake?.()
  }
  for (;;) {
    const now = nowUs()
    if (now >= endUs) break
    const due = rate ? Math.floor(((now - startedUs) / 1e6) * rate) : Infinity
    while (sent < due && inFlight < maxInFlight) void one()
    await new Promise((resolve) => {
      wake = resolve
      setTimeout(resolve, 1)
    })
  }
  const sentUs = nowUs()
  while (inFlight > 0) await new Promise((resolve) => (wake = resolve))
  return { sent, startedUs, sentUs, endedUs: nowUs() }
}

let mixing

/**
 * The soak's mixed workload, three paced loops at once on one backend client: single-recipient
 * pushes to random users (every `keepEvery`-th kept), room pushes to random rooms, presence
 * queries of `presenceBatch` random users. Each push carries its number (`n` for user pushes,
 * `r` for room pushes) for the accounting. Answers until `mix-stop`.
 */
async function mixStart({ target, users, rooms, pushRate, keepEvery, roomRate, presenceRate, presenceBatch, durationMs, maxInFlight = 1_000 }) {
  const client = await switchboardClient(target)
  const answers = []
  const offlineAnswers = [] // [n, userId, sentUs, answeredUs]: the bench checks each fell in a reconnect of that user
  const roomReached = []
  const presence = { answered: 0, errors: 0, wrong: 0, firstError: undefined, latenciesMs: [] }
  const errors = { push: 0, room: 0, firstError: undefined }
  const userPush = async () => {
    const n = answers.length
    answers.push(0)
    const to = users[Math.floor(Math.random() * users.length)]
    const isKept = n % keepEvery === 0
    const sentUs = nowUs()
    try {
      const a = await client.push({ to: [to], event: 'bench', data: { n, t: sentUs, pad: PAD }, ...(isKept ? { keep: true } : {}) })
      const result = a.delivered.length > 0 ? Answer.delivered : a.offline.length > 0 ? Answer.offline : Answer.failed
      answers[n] = result | (isKept ? Answer.KEPT : 0)
      if (result !== Answer.delivered) offlineAnswers.push([n, to, sentUs, nowUs()])
    } catch (err) {
      answers[n] = Answer.error
      errors.push++
      errors.firstError ??= String(err.message ?? err)
    }
  }
  const roomPush = async () => {
    const r = roomReached.length
    roomReached.push(-1)
    try {
      const a = await client.push({ room: rooms[Math.floor(Math.random() * rooms.length)], event: 'bench', data: { r, t: nowUs(), pad: PAD } })
      roomReached[r] = a.reached
    } catch (err) {
      errors.room++
      errors.firstError ??= String(err.message ?? err)
    }
  }
  const query = async () => {
    const asked = recipients(users, presenceBatch)
    const startedUs = nowUs()
    try {
      const a = await client.presenceQuery(asked)
      presence.latenciesMs.push((nowUs() - startedUs) / 1000)
      presence.answered++
      if (a.online.length + a.offline.length !== asked.length) presence.wrong++
    } catch (err) {
      presence.errors++
      presence.firstError ??= String(err.message ?? err)
    }
  }
  const loops = Promise.all([
    pace({ rate: pushRate, durationMs, maxInFlight }, userPush),
    pace({ rate: roomRate, durationMs, maxInFlight }, roomPush),
    pace({ rate: presenceRate, durationMs, maxInFlight }, query),
  ])
  mixing = loops.then(([pushes, roomPushes, queries]) => ({ pushes, roomPushes, queries, answers, offlineAnswers, roomReached, presence, errors }))
  return {}
}

const commands = { run, 'mix-start': mixStart, 'mix-stop': () => mixing }

process.on('message', async (message) => {
  try {
    process.send(await commands[message.cmd ?? 'run'](message))
  } catch (err) {
    process.send({ error: String(err.stack ?? err) })
  }
})
process.on('disconnect', () => process.exit(0))

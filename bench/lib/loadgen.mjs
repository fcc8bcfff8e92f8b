// A load-generator process: holds websocket clients of one system, driven by the bench over
// IPC. Each push carries `"t":<µs>` from process.hrtime (CLOCK_MONOTONIC, the same clock in
// every process), so receive latency is measured across processes without clock skew.
//
// Protocols, all over the same minimal client (wire.mjs):
// - switchboard: /v1/ws?token=<jwt>; ready on the welcome frame (sent after registration).
// - switchboard-resume: the same, offering `resume.start` as the SDK does (recovery on: the
//   edge reads the user's inbox before the welcome).
// - socketio: engine.io v4 over websocket; on the open packet send `40{"token":…}`, ready on
//   the namespace's `40` answer; pings (`2`) are answered with `3`. Same JWT.
// - bare: /ws?user=<id>; ready on its welcome.
//
// The soak (scenarios/soak.mjs) also counts each push by its number in `data` (`"n"` for a
// user push, `"r"` for a room push), keeps each client's inbox position as the SDK does, bins
// latencies per minute, and reconnects clients at a given rate by the SDK's rule (`churn`).
import { reconnectDelayMs, resumeProtocol } from '@switchboard/wire'
import { SignJWT } from 'jose'
import { openSocket } from './wire.mjs'

const key = new TextEncoder().encode(process.env.BENCH_JWT_SECRET)
// A token valid 2 h without `iat` unless the bench asks for another lifetime (`token.lifetime`)
// and an `iat` (`token.issuedAt`), as a backend minting tokens for "sign out everywhere" does.
const sign = (userId, token = {}) => {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setExpirationTime(token.lifetime ?? '2h')
  return (token.issuedAt ? jwt.setIssuedAt() : jwt).sign(key)
}
const nowUs = () => Number(process.hrtime.bigint() / 1000n)

/** userId → its client: `{ conn, position, ahead }` (position: the last kept push in inbox order, as the SDK keeps it). */
const clients = new Map()
let samples = new Float64Array(1 << 16)
let received = 0
let lastReceiveUs = 0
/** The soak's counts: numbers of the user pushes received (one entry per frame), frames per room push, this minute's latencies (ms). */
let userReceipts = new Int32Array(1 << 16)
let userReceived = 0
const roomReceipts = new Map()
let minute = { user: [], room: [] }

/** The integer after `key` in `text`, or -1. */
function numberAfter(text, key) {
  const at = text.indexOf(key)
  return at < 0 ? -1 : parseInt(text.slice(at + key.length, at + key.length + 20), 10)
}

/** The SDK's pace for acks (ACK_EVERY_MS): at most one ack frame per client per this many ms. */
const ACK_EVERY_MS = 100

/**
 * A push asking for a receipt (`"ack":true`): acknowledged as the SDK does, at the end of the
 * turn after a quiet spell, else together with the others once ACK_EVERY_MS passed since the
 * client's last ack frame (so a client never passes the edge's frame rate with acks).
 */
function acknowledge(text, client) {
  const id = JSON.parse(text).id
  if (client.acks) return void client.acks.push(id)
  client.acks = [id]
  const send = () => {
    client.conn.send(`{"type":"ack","ids":${JSON.stringify(client.acks)}}`)
    client.acks = undefined
    client.lastAckAt = performance.now()
  }
  const waitMs = (client.lastAckAt ?? -Infinity) + ACK_EVERY_MS - performance.now()
  if (waitMs <= 0) setImmediate(send)
  else setTimeout(send, waitMs)
}

function onMessage(text, client) {
  if (text.includes('"ack":true')) acknowledge(text, client)
  const at = text.indexOf('"t":')
  if (at < 0) return
  const now = nowUs()
  const sentUs = parseInt(text.slice(at + 4, at + 24), 10)
  if (received === samples.length) samples = grown(samples)
  const latencyMs = (now - sentUs) / 1000
  samples[received++] = latencyMs
  lastReceiveUs = now
  const n = numberAfter(text, '{"n":')
  if (n >= 0) {
    if (userReceived === userReceipts.length) userReceipts = grown(userReceipts)
    userReceipts[userReceived++] = n
    minute.user.push(latencyMs)
    if (text.includes('"offset":')) keptInOrder(client, JSON.parse(text))
    return
  }
  const r = numberAfter(text, '{"r":')
  if (r < 0) return
  roomReceipts.set(r, (roomReceipts.get(r) ?? 0) + 1)
  minute.room.push(latencyMs)
}

function grown(array) {
  const bigger = new array.constructor(array.length * 2)
  bigger.set(array)
  return bigger
}

/**
 * The SDK's position rule (packages/client, #ordered): the next kept push in the inbox moves the
 * position (with any held ones now next), one of another inbox life starts over from it, one
 * ahead of a missing one is held. A resume from the position replays what is missing.
 */
function keptInOrder(client, { epoch, offset }) {
  const at = client.position
  if (at === undefined || at.epoch !== epoch) {
    client.ahead = undefined
    client.position = { epoch, offset }
    return
  }
  if (offset <= at.offset) return
  if (offset > at.offset + 1) {
    ;(client.ahead ??= new Set()).add(offset)
    return
  }
  let next = offset
  while (client.ahead?.delete(next + 1)) next++
  client.position = { epoch, offset: next }
}

/** The welcome of a client that offered `resume.`: not resumed, or not recovered, starts over from the inbox's head (as the SDK does). */
function onWelcome(text, client) {
  const { epoch, offset, recovered } = JSON.parse(text)
  if (recovered === false) churned.notRecovered++
  if (recovered !== true && epoch !== undefined) {
    client.position = { epoch, offset }
    client.ahead = undefined
  }
}

/** Opens one client and resolves once it is ready (welcomed / joined); `client` is kept across reconnects. */
async function openClient(system, port, userId, localAddress, tokenOptions, client = { userId, port, localAddress, tokenOptions }) {
  const token = system === 'bare' ? '' : await sign(userId, tokenOptions)
  let ready
  const isReady = new Promise((resolve) => (ready = resolve))
  const handlers = {
    switchboard: { path: `/v1/ws?token=${token}`, onText: (text) => (text.startsWith('{"type":"welcome"') ? ready() : onMessage(text, client)) },
    'switchboard-resume': {
      path: `/v1/ws?token=${token}`,
      protocols: ['switchboard.v1', resumeProtocol(client.position)],
      onText: (text) => (text.startsWith('{"type":"welcome"') ? (onWelcome(text, client), ready()) : onMessage(text, client)),
    },
    bare: { path: `/ws?user=${encodeURIComponent(userId)}`, onText: (text) => (text.startsWith('{"type":"welcome"') ? ready() : onMessage(text, client)) },
    socketio: {
      path: '/socket.io/?EIO=4&transport=websocket',
      onText: (text, conn) => {
        if (text.startsWith('42')) onMessage(text, client)
        else if (text === '2') conn.send('3')
        else if (text.startsWith('0{')) conn.send(`40${JSON.stringify({ token })}`)
        else if (text.startsWith('40')) ready()
        else if (text.startsWith('44')) ready(new Error(`socket.io refused: ${text}`))
      },
    },
  }[system]
  // Closed by a server (not by this client's reconnect, the bench's close or a refusal): a soak
  // client reconnects as the SDK does after a lost connection; other scenarios' clients stay closed.
  const onClose = () => {
    if (client.conn !== conn || client.isReconnecting || isClosing) return
    churned.unexpectedCloses++
    if (reconnectsOnClose) void reconnect(client, { isClosed: true })
  }
  const conn = await openSocket({ port, path: handlers.path, protocols: handlers.protocols, localAddress, onText: handlers.onText, onClose })
  const refusal = await Promise.race([isReady, new Promise((resolve) => setTimeout(resolve, 30_000, new Error('not ready within 30 s')))])
  if (refusal) {
    conn.close()
    throw refusal
  }
  client.system = system
  client.conn = conn
  clients.set(userId, client)
}

/**
 * Opens clients for `users` (user i goes to ports[(offset + i) % ports.length]), `concurrency` at
 * a time. With `retries`, a failed connect is retried that many times after the SDK's delay for
 * a lost connection, as clients of a storm do; `retried` counts those attempts. With `reconnect`,
 * a client a server closes later reconnects the same way (see reconnect).
 */
async function connectAll({ system, ports, users, offset = 0, localAddress, concurrency = 200, token, retries = 0, reconnect = false }) {
  reconnectsOnClose = reconnect
  const startedUs = nowUs()
  let next = 0
  let failed = 0
  let retried = 0
  const errors = []
  const worker = async () => {
    while (next < users.length) {
      const i = next++
      for (let attempt = 0; ; attempt++) {
        try {
          await openClient(system, ports[(offset + i) % ports.length], users[i], localAddress, token)
          break
        } catch (err) {
          if (errors.length < 5) errors.push(String(err.message ?? err))
          if (attempt === retries) {
            failed++
            break
          }
          retried++
          await new Promise((resolve) => setTimeout(resolve, reconnectDelayMs(attempt, 1006)))
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, users.length) }, worker))
  return { connected: users.length - failed, failed, retried, errors, startedUs, endedUs: nowUs() }
}

/**
 * Reconnects: how many, failed attempts, welcomes with `recovered: false`, sockets the server
 * closed (none expected), and each reconnect's gap (userId, closing → welcomed, µs).
 */
const churned = { reconnects: 0, failedAttempts: 0, gaveUp: 0, notRecovered: 0, unexpectedCloses: 0, gaps: [] }
/** Attempts of one reconnect before the bench gives up on it (the backoff reaches its 30 s cap by then). */
const MAX_RECONNECT_ATTEMPTS = 10
let churnTimer
/** Set by `connect` with `reconnect`: a client a server closed reconnects (the soak's clients, as the SDK's do). */
let reconnectsOnClose = false
let isClosing = false

/**
 * A lost connection as the SDK handles it: the socket closes (with a close frame, so every frame
 * the edge wrote before is read and the push accounting stays exact), then the SDK's delay for
 * a lost connection (reconnectDelayMs for 1006: full jitter, attempt 0 after a stable minute,
 * doubling per failure) and a connect offering `resume.<position>`.
 */
async function reconnect(client, { isClosed = false } = {}) {
  client.isReconnecting = true
  const closingUs = nowUs()
  if (!isClosed) await client.conn.closeGracefully()
  for (let attempt = 0; ; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, reconnectDelayMs(attempt, 1006)))
    try {
      await openClient(client.system, client.port, client.userId, client.localAddress, client.tokenOptions, client)
      churned.reconnects++
      churned.gaps.push([client.userId, closingUs, nowUs()])
      break
    } catch {
      churned.failedAttempts++
      // The SDK would go on; the bench stops so that the run ends, and says so.
      if (attempt === MAX_RECONNECT_ATTEMPTS) {
        churned.gaveUp++
        break
      }
    }
  }
  client.isReconnecting = false
}

/** Reconnects the fraction `perS` of this process's clients a second, random ones, until `churn-stop`. */
function churnStart({ perS }) {
  const users = [...clients.keys()]
  let due = 0
  churnTimer = setInterval(() => {
    due += users.length * perS
    for (; due >= 1; due--) {
      const client = clients.get(users[Math.floor(Math.random() * users.length)])
      if (!client.isReconnecting) void reconnect(client)
    }
  }, 1_000)
  return {}
}

async function churnStop() {
  clearInterval(churnTimer)
  reconnectsOnClose = false
  while ([...clients.values()].some((c) => c.isReconnecting)) await new Promise((resolve) => setTimeout(resolve, 50))
  return churned
}

const commands = {
  connect: connectAll,
  'churn-start': churnStart,
  'churn-stop': churnStop,
  /** This minute's latencies (ms) of user and room pushes, then a new minute. */
  tick: () => {
    const ended = minute
    minute = { user: [], room: [] }
    return ended
  },
  /** The soak's counts: every user push number received (once per frame) and frames per room push. */
  receipts: () => ({ user: Array.from(userReceipts.subarray(0, userReceived)), room: [...roomReceipts] }),
  reset: () => {
    received = 0
    lastReceiveUs = 0
    return {}
  },
  count: () => ({ received, lastReceiveUs }),
  report: () => ({ received, lastReceiveUs, latenciesMs: Array.from(samples.subarray(0, received)) }),
  close: async () => {
    isClosing = true
    for (const client of clients.values()) client.conn.close()
    clients.clear()
    return {}
  },
}

process.on('message', async (message) => {
  try {
    process.send(await commands[message.cmd](message))
  } catch (err) {
    process.send({ error: String(err.stack ?? err) })
  }
})
process.on('disconnect', () => process.exit(0))

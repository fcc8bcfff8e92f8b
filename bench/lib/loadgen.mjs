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

const conns = []
let samples = new Float64Array(1 << 16)
let received = 0
let lastReceiveUs = 0

function onMessage(text) {
  const at = text.indexOf('"t":')
  if (at < 0) return
  const now = nowUs()
  const sentUs = parseInt(text.slice(at + 4, at + 24), 10)
  if (received === samples.length) {
    const grown = new Float64Array(samples.length * 2)
    grown.set(samples)
    samples = grown
  }
  samples[received++] = (now - sentUs) / 1000
  lastReceiveUs = now
}

/** Opens one client and resolves once it is ready (welcomed / joined). */
async function openClient(system, port, userId, localAddress, tokenOptions) {
  const token = system === 'bare' ? '' : await sign(userId, tokenOptions)
  let ready
  const isReady = new Promise((resolve) => (ready = resolve))
  const handlers = {
    switchboard: { path: `/v1/ws?token=${token}`, onText: (text) => (text.startsWith('{"type":"welcome"') ? ready() : onMessage(text)) },
    'switchboard-resume': {
      path: `/v1/ws?token=${token}`,
      protocols: ['switchboard.v1', 'resume.start'],
      onText: (text) => (text.startsWith('{"type":"welcome"') ? ready() : onMessage(text)),
    },
    bare: { path: `/ws?user=${encodeURIComponent(userId)}`, onText: (text) => (text.startsWith('{"type":"welcome"') ? ready() : onMessage(text)) },
    socketio: {
      path: '/socket.io/?EIO=4&transport=websocket',
      onText: (text, conn) => {
        if (text.startsWith('42')) onMessage(text)
        else if (text === '2') conn.send('3')
        else if (text.startsWith('0{')) conn.send(`40${JSON.stringify({ token })}`)
        else if (text.startsWith('40')) ready()
        else if (text.startsWith('44')) ready(new Error(`socket.io refused: ${text}`))
      },
    },
  }[system]
  const conn = await openSocket({ port, path: handlers.path, protocols: handlers.protocols, localAddress, onText: handlers.onText })
  const refusal = await Promise.race([isReady, new Promise((resolve) => setTimeout(resolve, 30_000, new Error('not ready within 30 s')))])
  if (refusal) {
    conn.close()
    throw refusal
  }
  conns.push(conn)
}

/** Opens clients for `users` (user i goes to ports[(offset + i) % ports.length]), `concurrency` at a time. */
async function connectAll({ system, ports, users, offset = 0, localAddress, concurrency = 200, token }) {
  const startedUs = nowUs()
  let next = 0
  let failed = 0
  const errors = []
  const worker = async () => {
    while (next < users.length) {
      const i = next++
      try {
        await openClient(system, ports[(offset + i) % ports.length], users[i], localAddress, token)
      } catch (err) {
        failed++
        if (errors.length < 5) errors.push(String(err.message ?? err))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, users.length) }, worker))
  return { connected: users.length - failed, failed, errors, startedUs, endedUs: nowUs() }
}

const commands = {
  connect: connectAll,
  reset: () => {
    received = 0
    lastReceiveUs = 0
    return {}
  },
  count: () => ({ received, lastReceiveUs }),
  report: () => ({ received, lastReceiveUs, latenciesMs: Array.from(samples.subarray(0, received)) }),
  close: async () => {
    for (const conn of conns.splice(0)) conn.close()
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

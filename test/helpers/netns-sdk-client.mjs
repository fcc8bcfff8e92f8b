// An SDK client (packages/client) as a process of its own, so that it can run in a host's
// network namespace and lose its link there (test/helpers/netns.ts). Configured by
// SB_URL, SB_TOKEN, SB_PING_MS and SB_PONG_MS; prints one JSON line per state change and
// per push on stdout, each with `at` (ms epoch), for the test to read.
import WebSocket from 'ws'
import { Switchboard } from '@switchboard/client'

const print = (line) => process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`)
const sb = new Switchboard({
  url: process.env.SB_URL,
  getToken: () => process.env.SB_TOKEN,
  WebSocket,
  pingIntervalMs: Number(process.env.SB_PING_MS ?? 25_000),
  pongTimeoutMs: Number(process.env.SB_PONG_MS ?? 10_000),
  storage: null,
})
sb.on('state', (change) => print({ kind: 'state', ...change }))
sb.on('push', (push) => print({ kind: 'push', id: push.id, event: push.event, data: push.data }))
sb.connect()
process.once('SIGTERM', () => {
  sb.close()
  process.exit(0)
})

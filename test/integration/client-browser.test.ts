// The SDK's browser bundle in a real headless Chromium (Debian's chromium-headless-shell,
// driven by puppeteer-core) against real edges behind a load balancer and a router: connect,
// receive, an edge's drain (1001) moves it to the other edge, an expired token is refreshed,
// a page reload resumes from sessionStorage and gets the kept pushes it missed, a short-lived
// token is refreshed in place, a revocation (4503) ends it, and the
// disconnect API (4500) ends it for good. No console errors but the refused handshake's.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import t from 'tap'
import puppeteer, { type Page } from 'puppeteer-core'
// @ts-expect-error: a build script in plain JS, without types
import { BUNDLE_PATH, bundleBrowser } from '../../packages/client/scripts/bundle.mjs'
import { eventually, mintToken } from '../helpers/clients.js'
import { startBalancer } from '../helpers/balancer.js'
import { startCluster, testSecrets, type Edge } from '../helpers/processes.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium-headless-shell'

await bundleBrowser()
const bundle = await readFile(BUNDLE_PATH as string)
const cluster = await startCluster(t, { edges: 2, edgeEnv: { EDGE_DRAIN_MS: '200' } })
const live = new Set<Edge>(cluster.edges)
const balancer = await startBalancer(t, () => [...live].filter((e) => e.isRunning()).map((e) => e.port))
const { jwtSecret } = testSecrets()

// The app's page and its token endpoint (an expired token for users named "expired-…" the first time).
const tokenCalls = new Map<string, number>()
const PAGE = `<!doctype html><meta charset="utf-8"><title>sdk</title><script type="module" src="/app.js"></script>`
const APP = `import { Switchboard } from '/switchboard.min.js'
window.clients = {}
window.start = (url, user) => {
  const c = { states: [], pushes: [] }
  c.sb = new Switchboard({ url, getToken: async () => (await fetch('/token?user=' + encodeURIComponent(user))).text() })
  c.sb.on('state', (s) => c.states.push(s))
  c.sb.on('greeting', (data) => c.pushes.push(data))
  c.sb.connect()
  window.clients[user] = c
}
window.ready = true`
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x')
  if (url.pathname === '/token') {
    const user = url.searchParams.get('user') ?? ''
    const n = (tokenCalls.get(user) ?? 0) + 1
    tokenCalls.set(user, n)
    const expired = user.startsWith('expired-') && n === 1
    // Users named "short-…" get tokens valid 3 s: the SDK refreshes them in place.
    const expiresIn = expired ? Math.floor(Date.now() / 1000) - 60 : user.startsWith('short-') ? Math.ceil(Date.now() / 1000) + 3 : undefined
    void mintToken(jwtSecret, user, expiresIn === undefined ? {} : { expiresIn }).then((token) => res.end(token))
    return
  }
  const [type, body] = url.pathname === '/switchboard.min.js' ? ['text/javascript', bundle] : url.pathname === '/app.js' ? ['text/javascript', APP] : ['text/html', PAGE]
  res.writeHead(200, { 'content-type': type }).end(body)
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
t.teardown(() => new Promise((resolve) => server.close(resolve)))
const pageUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/`

const browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true })
t.teardown(() => browser.close())
const page: Page = await browser.newPage()
const consoleErrors: string[] = []
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()))
page.on('pageerror', (e) => consoleErrors.push(String(e)))
await page.goto(pageUrl)
await page.waitForFunction('window.ready === true')

type State = { state: string; code?: number; nodeId?: string; connId?: string; willRetry?: boolean; delayMs?: number; token?: string }
const statesOf = (user: string) => page.evaluate((u) => (globalThis as unknown as { clients: Record<string, { states: State[] }> }).clients[u]!.states, user)
const pushesOf = (user: string) => page.evaluate((u) => (globalThis as unknown as { clients: Record<string, { pushes: unknown[] }> }).clients[u]!.pushes, user)
const start = (user: string) => page.evaluate((url, u) => (globalThis as unknown as { start(url: string, u: string): void }).start(url, u), balancer.url, user)
/** Connections made (a token refresh also says `connected`, with `token`). */
const connectedCount = async (user: string) => (await statesOf(user)).filter((s) => s.state === 'connected' && s.token === undefined).length

t.test('in Chromium: connect, receive, follow a drain to the other edge', async (t) => {
  const u = `br-${randomBytes(3).toString('hex')}`
  await start(u)
  await eventually(async () => (await connectedCount(u)) === 1)
  const res = await cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n: 1 } })
  t.same(res.body.delivered, [u])
  await eventually(async () => (await pushesOf(u)).length === 1)
  const first = (await statesOf(u)).find((s) => s.state === 'connected')!
  const drained = cluster.edges.find((e) => e.nodeId === first.nodeId)!
  live.delete(drained)
  drained.kill('SIGTERM')
  await eventually(async () => (await connectedCount(u)) === 2, { timeoutMs: 10_000 })
  const states = await statesOf(u)
  t.match(states.find((s) => s.state === 'disconnected'), { code: 1001, willRetry: true })
  t.not(states.filter((s) => s.state === 'connected')[1]!.nodeId, first.nodeId, 'reconnected to the other edge')
  await cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n: 2 } })
  await eventually(async () => (await pushesOf(u)).length === 2)
  t.same(await pushesOf(u), [{ n: 1 }, { n: 2 }])
})

t.test('in Chromium: an expired token is refused at the handshake, and the next getToken() connects', async (t) => {
  const u = `expired-${randomBytes(3).toString('hex')}`
  await start(u)
  await eventually(async () => (await connectedCount(u)) === 1, { timeoutMs: 10_000 })
  t.equal(tokenCalls.get(u), 2, 'two tokens fetched: the expired one, then a fresh one')
})

t.test('in Chromium: a page reload resumes from sessionStorage: the kept push sent meanwhile comes first, once', async (t) => {
  const u = `reload-${randomBytes(3).toString('hex')}`
  const kept = (n: number) => cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n }, keep: true })
  await start(u)
  await eventually(async () => (await connectedCount(u)) === 1)
  await kept(1)
  await eventually(async () => (await pushesOf(u)).length === 1)
  await page.reload()
  await page.waitForFunction('window.ready === true')
  const stored = await page.evaluate(() => JSON.stringify(Object.entries((globalThis as unknown as { sessionStorage: Record<string, string> }).sessionStorage)))
  t.match(stored, /switchboard:ws:\/\/127\.0\.0\.1:\d+\/v1\/ws","[0-9a-f]+\.1"/, 'the position of push 1, kept in sessionStorage')
  const missed = await kept(2) // the page has no socket now
  t.same(missed.body.kept, [u], 'kept, not written')
  await start(u)
  await eventually(async () => (await connectedCount(u)) === 1)
  t.match((await statesOf(u)).find((s) => s.state === 'connected'), { recovered: true })
  await kept(3)
  await eventually(async () => (await pushesOf(u)).length === 2)
  t.same(await pushesOf(u), [{ n: 2 }, { n: 3 }], 'the missed one, then live')
})

t.test('in Chromium: a short-lived token is refreshed in place (same connId), and a revocation (4503) ends it for good', async (t) => {
  const u = `short-${randomBytes(3).toString('hex')}`
  await start(u)
  await eventually(async () => (await statesOf(u)).filter((s) => s.token === 'refreshed').length >= 2, { timeoutMs: 15_000 })
  const states = await statesOf(u)
  t.equal(await connectedCount(u), 1, 'two refreshes over one connection')
  t.ok(states.filter((s) => s.state === 'connected').every((s) => s.connId === states.find((x) => x.state === 'connected')!.connId), 'the same connId throughout')
  const res = await cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n: 1 } })
  t.same(res.body.delivered, [u])
  await eventually(async () => (await pushesOf(u)).length === 1)
  const revoked = await cluster.api.post(`/v1/users/${u}/revoke`, {})
  t.equal(revoked.body.closed, 1)
  await eventually(async () => (await statesOf(u)).at(-1)?.state === 'disconnected')
  t.match((await statesOf(u)).at(-1), { state: 'disconnected', code: 4503, willRetry: false })
})

t.test('in Chromium: pushes asking for receipts are acknowledged by the SDK, a burst of 40 in a few ack frames (the socket is not rate-limited)', async (t) => {
  const u = `ack-${randomBytes(3).toString('hex')}`
  await start(u)
  await eventually(async () => (await connectedCount(u)) === 1)
  const one = await cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n: 0 }, ack: { timeoutMs: 5_000 } })
  t.same([one.body.acked, one.body.unacked], [[u], []], 'acked once the app\'s listener returned')
  // More pushes at once than EDGE_MAX_FRAMES_PER_S (20): one ack frame each would close the socket.
  const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => cluster.api.post('/v1/push', { to: [u], event: 'greeting', data: { n: i + 1 }, ack: { timeoutMs: 5_000 } })))
  t.ok(burst.every((r) => r.body.acked?.[0] === u), 'every one acked')
  t.equal(await connectedCount(u), 1, 'on the same connection')
  t.equal((await pushesOf(u)).length, 41)
})

t.test('in Chromium: the disconnect API (4500) ends it for good; no console errors', async (t) => {
  const u = `bye-${randomBytes(3).toString('hex')}`
  await start(u)
  await eventually(async () => (await connectedCount(u)) === 1)
  await cluster.api.post('/v1/disconnect', { userId: u, reason: 'signed out' })
  await eventually(async () => (await statesOf(u)).at(-1)?.state === 'disconnected')
  t.match((await statesOf(u)).at(-1), { state: 'disconnected', code: 4500, willRetry: false })
  const calls = tokenCalls.get(u)
  t.equal((await cluster.api.get(`/v1/presence/${u}`)).body.online, false, 'offline, and it stays so')
  t.equal(tokenCalls.get(u), calls, 'no new attempt')
  // The refused handshake of the expired token is logged by Chromium itself; nothing else may be.
  t.same(consoleErrors.filter((e) => !/WebSocket connection to .* failed/.test(e)), [], 'no console errors')
})

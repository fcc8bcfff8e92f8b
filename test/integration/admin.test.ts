// The admin web on a real router with two edges and Redis: login, session, CSRF, security
// headers, and every page's API over real HTTP; then the whole page in headless Chromium.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { LOGIN_FAILURES_MAX, LOGIN_WINDOW_MS } from '../../apps/router/src/admin/server.js'
import { CLAIM_TTL_MS } from '../../apps/router/src/presence/relay.js'
import { connectUser, eventually } from '../helpers/clients.js'
import { ROUTER_MAIN, routerEnv, startCluster, startRouter, testSecrets, waitForLog } from '../helpers/processes.js'
import { freePort } from '../helpers/redis.js'

/** Screenshots, kept by CI as test artifacts (not committed). */
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname
const PASSWORD = `admin-${randomBytes(12).toString('hex')}`
const adminPort = await freePort()
/** A webhook endpoint nobody listens on, with a token in its query: its state shows the failure, never the token. */
const HOOK_TOKEN = `hooktoken${randomBytes(6).toString('hex')}`
const HOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`
const hookUrl = `http://127.0.0.1:${await freePort()}/hooks/presence?token=${HOOK_TOKEN}`
const cluster = await startCluster(t, {
  edges: 2,
  routerEnv: { ROUTER_ADMIN_PORT: String(adminPort), ROUTER_ADMIN_PASSWORD: PASSWORD, PRESENCE_WEBHOOK_URL: hookUrl, PRESENCE_WEBHOOK_SECRET: HOOK_SECRET },
})
await waitForLog(cluster.router, 'admin web listening')
const base = `http://127.0.0.1:${adminPort}`
const { apiKeys, jwtSecret } = testSecrets()

/** A browser's view: a cookie jar and the CSRF token the page would hold. */
function browser(url = base) {
  let cookie = ''
  let csrf = ''
  const call = async (method: string, path: string, body?: unknown, opts: { csrf?: boolean; contentType?: string } = {}) => {
    const headers: Record<string, string> = {}
    if (cookie) headers.cookie = cookie
    if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json'
    if (opts.csrf !== false && method !== 'GET') headers['x-csrf-token'] = csrf
    const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) })
    const set = res.headers.getSetCookie()
    if (set.length > 0) cookie = set.map((c) => c.split(';')[0]).join('; ')
    const text = await res.text()
    const json = (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : undefined
    if (json?.csrfToken) csrf = json.csrfToken
    return { status: res.status, headers: res.headers, text, json, setCookie: set }
  }
  return { call, login: async (password = PASSWORD) => (await call('GET', '/api/session'), call('POST', '/api/login', { password })) }
}

t.test('the page: served with a strict CSP and no secret in it', async (t) => {
  const page = await fetch(`${base}/`)
  t.equal(page.status, 200)
  const csp = page.headers.get('content-security-policy') ?? ''
  t.match(csp, /default-src 'self'/)
  t.match(csp, /script-src 'self'/)
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'no inline script or style allowed')
  t.match(csp, /frame-ancestors 'none'/)
  t.equal(page.headers.get('x-content-type-options'), 'nosniff')
  const html = await page.text()
  t.notMatch(html, /<script>|<script [^>]*>[^<]|style=/, 'no inline script or style in the page')
  const sources = html + (await (await fetch(`${base}/app.js`)).text()) + (await (await fetch(`${base}/app.css`)).text())
  for (const secret of [...apiKeys, PASSWORD, jwtSecret, HOOK_SECRET]) t.notOk(sources.includes(secret), 'no API key, admin password, JWT or webhook secret in what is served')
})

t.test('login: refused without a CSRF token or with a wrong password; a session cookie HttpOnly and SameSite=Strict', async (t) => {
  const b = browser()
  t.equal((await b.call('GET', '/api/cluster')).status, 401, 'the cluster view needs a session')
  await b.call('GET', '/api/session')
  const noToken = await b.call('POST', '/api/login', { password: PASSWORD }, { csrf: false })
  t.equal(noToken.status, 403, 'a login without the CSRF token is refused')
  t.equal(noToken.json?.error?.code, 'csrf_invalid', 'with a code of its own, not a wrong password\'s')
  const wrong = await b.call('POST', '/api/login', { password: 'not the password' })
  t.same([wrong.status, wrong.json], [401, { error: { code: 'unauthorized', message: 'wrong password' } }])
  const before = await b.call('GET', '/api/session')
  const ok = await b.call('POST', '/api/login', { password: PASSWORD })
  t.equal(ok.status, 200)
  const id = (cookies: string[]) => cookies.join('').match(/sb_admin=([^;]+)/)?.[1]
  t.ok(id(before.setCookie) && id(ok.setCookie) && id(before.setCookie) !== id(ok.setCookie), 'a new session id at login: one fixed before it is worth nothing')
  t.match(ok.setCookie.join('\n'), /sb_admin=[^;]+;.*HttpOnly/i)
  t.match(ok.setCookie.join('\n'), /SameSite=Strict/i)
  t.notOk(ok.text.includes(PASSWORD), 'the answer never echoes the password')
  const withKey = await fetch(`${base}/api/cluster`, { headers: { authorization: `Bearer ${apiKeys[0]}` } })
  t.equal(withKey.status, 401, 'an API key does not open the admin')
  t.equal(cluster.router.logs().filter((l) => l.includes(PASSWORD)).length, 0, 'nor does any log line')
})

t.test('the cluster view: both edges and their connections, live', async (t) => {
  const b = browser()
  t.equal((await b.login()).status, 200)
  const [e1, e2] = cluster.edges
  await connectUser(t, e1!.wsUrl, jwtSecret, 'adm-ann')
  await connectUser(t, e1!.wsUrl, jwtSecret, 'adm-bob')
  await connectUser(t, e2!.wsUrl, jwtSecret, 'adm-cy')
  // Edges report their connections at each renewal (LEASE_TTL_MS/3).
  const view = await eventually(async () => {
    const res = await b.call('GET', '/api/cluster')
    const counts = Object.fromEntries((res.json.nodes as { nodeId: string; connections: number }[]).map((n) => [n.nodeId, n.connections]))
    return counts[e1!.nodeId] === 2 && counts[e2!.nodeId] === 1 ? res.json : undefined
  }, { timeoutMs: cluster.leaseTtlMs * 2 })
  t.equal(view.registry, 'ok')
  t.ok(view.routers.some((r: { workerId: string }) => r.workerId === view.router.workerId), 'this router is among the live routers')
  t.equal(view.routers.reduce((sum: number, r: { partitions: number }) => sum + r.partitions, 0) <= view.router.presence.partitions, true, 'they share the partitions')
  t.same(view.nodes.map((n: { nodeId: string }) => n.nodeId), [e1!.nodeId, e2!.nodeId].sort())
  for (const n of view.nodes) t.ok(n.leaseAgeMs >= 0 && n.leaseAgeMs <= n.leaseTtlMs, `${n.nodeId}: lease renewed ${n.leaseAgeMs} ms ago`)
})

t.test('logout needs the CSRF token, and ends the session', async (t) => {
  const b = browser()
  await b.login()
  t.equal((await b.call('POST', '/api/logout', {}, { csrf: false })).status, 403)
  t.equal((await b.call('GET', '/api/cluster')).status, 200, 'still logged in')
  t.equal((await b.call('POST', '/api/logout', {})).status, 200)
  t.equal((await b.call('GET', '/api/cluster')).status, 401)
})

t.test('a session expires after ROUTER_ADMIN_SESSION_TTL_S', async (t) => {
  const port = await freePort()
  const ttlS = 1
  await startRouter(t, { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs, env: { ROUTER_ADMIN_PORT: String(port), ROUTER_ADMIN_PASSWORD: PASSWORD, ROUTER_ADMIN_SESSION_TTL_S: String(ttlS) } })
  const b = browser(`http://127.0.0.1:${port}`)
  // The login's time is taken before its request: the router stamps the session while answering.
  let loggedInAt = 0
  await eventually(async () => {
    loggedInAt = Date.now()
    return (await b.login()).status === 200
  })
  t.equal((await b.call('GET', '/api/cluster')).status, 200)
  await eventually(async () => (await b.call('GET', '/api/cluster')).status === 401, { timeoutMs: ttlS * 1_000 + 2_000 })
  t.ok(Date.now() - loggedInAt >= ttlS * 1_000, 'not before its TTL')
})

t.test('a CSRF token whose session is gone (its router restarted): 403 csrf_invalid, told apart from a wrong password; a fresh token logs in', async (t) => {
  const port = await freePort()
  const opts = { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs, env: { ROUTER_ADMIN_PORT: String(port), ROUTER_ADMIN_PASSWORD: PASSWORD } }
  const first = await startRouter(t, opts)
  await waitForLog(first, 'admin web listening')
  const b = browser(`http://127.0.0.1:${port}`)
  t.equal((await b.call('GET', '/api/session')).status, 200, 'the page took its token')
  first.kill('SIGKILL')
  await first.exited
  await waitForLog(await startRouter(t, opts), 'admin web listening')
  for (const password of [PASSWORD, 'not the password']) {
    const stale = await b.call('POST', '/api/login', { password })
    t.same([stale.status, stale.json?.error?.code], [403, 'csrf_invalid'], `the old token: 403 csrf_invalid (${password === PASSWORD ? 'right' : 'wrong'} password)`)
  }
  t.equal((await b.call('GET', '/api/session')).status, 200, 'a fresh token, as the page takes it')
  const wrong = await b.call('POST', '/api/login', { password: 'not the password' })
  t.same([wrong.status, wrong.json?.error?.code], [401, 'unauthorized'], 'a wrong password is 401 unauthorized')
  t.equal((await b.call('POST', '/api/login', { password: PASSWORD })).status, 200, 'the right one logs in')
})

t.test('the user inspector: online, each connection, recent presence events', async (t) => {
  const b = browser()
  await b.login()
  // A router delivers presence (the feed included) once it holds its claim on the partitions,
  // which a new router gets within a claim's TTL (CLAIM_TTL_MS) of its start.
  await eventually(async () => {
    const { presence } = (await b.call('GET', '/api/cluster')).json.router
    return presence.owned === presence.partitions
  }, { timeoutMs: 2 * CLAIM_TTL_MS })
  const [e1, e2] = cluster.edges
  await connectUser(t, e1!.wsUrl, jwtSecret, 'adm-dee')
  await connectUser(t, e2!.wsUrl, jwtSecret, 'adm-dee')
  // The feed is written by the router's presence delivery, in batches (PRESENCE_WEBHOOK_BATCH_MS).
  const user = await eventually(async () => {
    const res = await b.call('GET', '/api/users/adm-dee')
    return res.json.events.length > 0 ? res.json : undefined
  })
  t.equal(user.online, true)
  t.same(user.connections.map((c: { nodeId: string }) => c.nodeId).sort(), [e1!.nodeId, e2!.nodeId].sort(), 'a connection on each edge')
  t.match(user.events[0], { userId: 'adm-dee', type: 'user.online', cause: 'connect' })
  const nobody = await b.call('GET', '/api/users/adm-nobody')
  t.same([nobody.status, nobody.json.online, nobody.json.connections, nobody.json.events], [200, false, [], []], 'an unknown user: offline, no event')
  const bad = await b.call('GET', `/api/users/${encodeURIComponent('x'.repeat(300))}`)
  t.same([bad.status, bad.json.error.code], [400, 'invalid_request'], "a bad user id: the API's 400")
  t.match(bad.json.error.message, /userId/)
})

t.test('a test push: the answer per recipient and a request id; refused without CSRF; bad input a clear 400', async (t) => {
  const b = browser()
  await b.login()
  const { client } = await connectUser(t, cluster.edges[0]!.wsUrl, jwtSecret, 'adm-eve')
  const body = { to: ['adm-eve', 'adm-offline'], event: 'admin.test', data: { n: 1 } }
  t.equal((await b.call('POST', '/api/push', body, { csrf: false })).status, 403, 'no CSRF token: refused')
  const res = await b.call('POST', '/api/push', body)
  t.equal(res.status, 200)
  t.same([res.json.delivered, res.json.offline, res.json.failed], [['adm-eve'], ['adm-offline'], []])
  t.match(res.json.requestId, /^admin-[0-9a-f-]{36}$/)
  t.match(await client.nextFrame(), { type: 'push', event: 'admin.test', data: { n: 1 } }, 'the client received it')
  await eventually(() => cluster.router.logs().some((l) => l.includes(res.json.requestId) && l.includes('admin: test push sent')))
  t.pass('the request id is in the router log')
  for (const [bad, message] of [
    [{ to: [], event: 'e' }, /to/],
    [{ to: ['u'], event: '' }, /event/],
    [{ to: 'adm-eve', event: 'e' }, /to/],
  ] as const) {
    const r = await b.call('POST', '/api/push', bad)
    t.same([r.status, r.json.error.code], [400, 'invalid_request'], `refused: ${JSON.stringify(bad)}`)
    t.match(r.json.error.message, message)
  }
  const noBody = await b.call('POST', '/api/push')
  t.same([noBody.status, noBody.json.error.code], [400, 'invalid_request'], 'no body: 400')
  const textPlain = await b.call('POST', '/api/push', 'to=adm-eve', { contentType: 'text/plain' })
  t.same([textPlain.status, textPlain.json.error.code], [400, 'invalid_request'], 'text: 400, the fields are missing')
  const xml = await b.call('POST', '/api/push', '<to>adm-eve</to>', { contentType: 'application/xml' })
  t.same([xml.status, xml.json.error.code], [415, 'invalid_request'], 'a type fastify does not parse: 415, invalid_request')
  const garbled = await b.call('POST', '/api/push', '{"to":', {})
  t.same([garbled.status, garbled.json.error.code], [400, 'invalid_request'], 'garbled JSON: 400')
  const tooBig = await b.call('POST', '/api/push', { to: ['u'], event: 'e', data: 'x'.repeat(20_000) })
  t.same([tooBig.status, tooBig.json.error.code], [413, 'payload_too_large'])
})

t.test('disconnect: refused without CSRF; closes every connection with the reason; the user is then offline', async (t) => {
  const b = browser()
  await b.login()
  const { client } = await connectUser(t, cluster.edges[1]!.wsUrl, jwtSecret, 'adm-fay')
  t.equal((await b.call('POST', '/api/users/adm-fay/disconnect', { reason: 'x' }, { csrf: false })).status, 403)
  t.equal(client.isClosed(), false, 'still connected')
  const res = await b.call('POST', '/api/users/adm-fay/disconnect', { reason: 'account locked by support' })
  t.same([res.status, res.json.closed], [200, 1])
  t.equal((await client.closed).reason, 'account locked by support', 'the client saw the reason')
  t.equal((await b.call('GET', '/api/users/adm-fay')).json.online, false)
  t.equal((await b.call('POST', '/api/users/adm-fay/disconnect', { reason: 7 })).status, 400, 'a reason that is not a string: 400')
  t.ok(cluster.router.logs().some((l) => l.includes(res.json.requestId) && l.includes('admin: user disconnected')), 'who and why, in the router log')
})

t.test('presence events: the latest, and the webhook endpoint failing, shown without its query string', async (t) => {
  const b = browser()
  await b.login()
  await connectUser(t, cluster.edges[0]!.wsUrl, jwtSecret, 'adm-gus')
  const view = await eventually(async () => {
    const res = await b.call('GET', '/api/events')
    const hook = res.json.delivery.sinks.find((s: { label: string }) => s.label !== 'feed')
    return res.json.events.some((e: { userId: string }) => e.userId === 'adm-gus') && hook?.lastError ? res.json : undefined
  }, { timeoutMs: 10_000 })
  const lastVer = new Map<string, number>()
  const newestFirst = view.events.every((e: { userId: string; ver: number }) => {
    const ok = (lastVer.get(e.userId) ?? Infinity) > e.ver
    lastVer.set(e.userId, e.ver)
    return ok
  })
  t.ok(newestFirst, "newest first (each user's versions decrease down the list)")
  t.equal(view.delivery.owned, view.delivery.partitions, 'this router, the only one, delivers every partition')
  const hook = view.delivery.sinks.find((s: { label: string }) => s.label !== 'feed')
  t.equal(hook.label, hookUrl.split('?')[0], 'the endpoint by origin and path')
  t.match(hook, { disabled: false, lastError: { message: /ECONNREFUSED/ } })
  t.ok(hook.pending > 0, `its backlog: ${hook.pending} events`)
  t.match(view.delivery.sinks.find((s: { label: string }) => s.label === 'feed'), { disabled: false })
  t.notOk(JSON.stringify(view).includes(HOOK_TOKEN), 'the query string (a token) is never shown')
})

t.test('a room: its members, who is online and on which edges', async (t) => {
  const b = browser()
  await b.login()
  const [e1, e2] = cluster.edges
  await connectUser(t, e1!.wsUrl, jwtSecret, 'adm-hal')
  await connectUser(t, e2!.wsUrl, jwtSecret, 'adm-ivy', { tokenClaims: { rooms: ['adm-room'] } })
  t.equal((await cluster.api.post('/v1/rooms/adm-room/members', { userIds: ['adm-hal', 'adm-jon'] })).status, 200)
  const res = await b.call('GET', '/api/rooms/adm-room')
  t.equal(res.status, 200)
  t.match(res.json, { room: 'adm-room', exists: true, members: 2, online: 2, offline: ['adm-jon'], firstMembers: ['adm-hal', 'adm-jon'], moreMembers: false })
  t.same(res.json.users, [
    { userId: 'adm-hal', nodes: [e1!.nodeId] },
    { userId: 'adm-ivy', nodes: [e2!.nodeId] },
  ].sort((x, y) => (x.userId < y.userId ? -1 : 1)), 'a durable and a token member, each on its edge')
  const none = await b.call('GET', '/api/rooms/adm-empty')
  t.match(none.json, { exists: false, members: 0, online: 0, users: [], firstMembers: [] })
  const bad = await b.call('GET', `/api/rooms/${encodeURIComponent('r'.repeat(300))}`)
  t.same([bad.status, bad.json.error.code], [400, 'invalid_request'])
})

t.test('traffic: the charts get connections and recipients per second', async (t) => {
  const b = browser()
  await b.login()
  await connectUser(t, cluster.edges[0]!.wsUrl, jwtSecret, 'adm-kit')
  t.equal((await cluster.api.post('/v1/push', { to: ['adm-kit'], event: 'e', data: 1 })).status, 200)
  // A point every TRAFFIC_EVERY_MS (2 s).
  const samples = await eventually(async () => {
    const s = (await b.call('GET', '/api/traffic')).json.samples as { delivered: number; connections: number }[]
    return s.some((x) => x.delivered > 0) ? s : undefined
  }, { timeoutMs: 8_000 })
  t.ok(samples.at(-1)!.connections! >= 1, 'connections counted')
  t.ok(samples.every((x, i) => i === 0 || (x as unknown as { at: number }).at > (samples[i - 1] as unknown as { at: number }).at), 'in time order')
})

t.test('Redis down: the cluster view says so, the other pages answer 503 registry_unavailable', async (t) => {
  const port = await freePort()
  // A router whose Redis does not answer (nothing listens there).
  await startRouter(t, { redisUrl: `redis://127.0.0.1:${await freePort()}`, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs, env: { ROUTER_ADMIN_PORT: String(port), ROUTER_ADMIN_PASSWORD: PASSWORD, REDIS_COMMAND_TIMEOUT_MS: '200' } })
  const b = browser(`http://127.0.0.1:${port}`)
  await eventually(async () => (await b.login()).status === 200)
  t.match((await b.call('GET', '/api/cluster')).json, { registry: 'unavailable', nodes: [] })
  for (const path of ['/api/users/someone', '/api/events']) {
    const res = await b.call('GET', path)
    t.same([res.status, res.json.error.code], [503, 'registry_unavailable'], path)
  }
  // In the browser: a banner and a sentence, not a blank page.
  const page = await openPage(t, `http://127.0.0.1:${port}/`)
  await page.waitForSelector('#login:not([hidden])')
  await page.keyboard.type(PASSWORD)
  await page.keyboard.press('Enter')
  await page.waitForSelector('#banner:not([hidden])')
  t.match(await page.evaluate("document.getElementById('banner').textContent"), /Redis is unavailable/)
  t.match(await page.evaluate("document.getElementById('cluster-summary').textContent"), /registry cannot be read/)
})

/** A headless Chromium page at `url`, closed with the test. */
async function openPage(t: Test, url: string) {
  const { default: puppeteer } = await import('puppeteer-core')
  const browserProc = await puppeteer.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium-headless-shell', args: ['--no-sandbox'], headless: true })
  t.teardown(() => browserProc.close())
  const page = await browserProc.newPage()
  await page.setViewport({ width: 1280, height: 800 })
  await page.goto(url)
  return page
}

t.test('in Chromium: the login form left open while its pre-login session is gone (TTL passed, router restarted) still logs in, without a reload', async (t) => {
  const ttlS = 1
  const port = await freePort()
  const adminEnv = { ROUTER_ADMIN_PORT: String(port), ROUTER_ADMIN_PASSWORD: PASSWORD }
  const routerOn = (env: Record<string, string>) => startRouter(t, { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs, env })
  const first = await routerOn({ ...adminEnv, ROUTER_ADMIN_SESSION_TTL_S: String(ttlS) })
  await waitForLog(first, 'admin web listening')
  const page = await openPage(t, `http://127.0.0.1:${port}/`)
  const problems: string[] = []
  page.on('pageerror', (e) => problems.push(String(e)))
  const logIn = async () => {
    await page.waitForSelector('#login:not([hidden])')
    await page.focus('#password')
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press('Enter')
    await page.waitForSelector('#cluster:not([hidden])', { timeout: 5_000 })
    t.equal(await page.evaluate("document.getElementById('login-error').textContent"), '', 'no error shown')
  }

  // The pre-login session holding the form's CSRF secret expires while the form is open.
  const loadedAt = Date.now()
  await page.waitForSelector('#login:not([hidden])')
  await new Promise((resolve) => setTimeout(resolve, ttlS * 1_000 + 500 - (Date.now() - loadedAt)))
  await logIn()
  t.pass(`logged in ${Date.now() - loadedAt} ms after the page loaded (session TTL ${ttlS} s)`)

  // The router restarts (its sessions were in its memory): the page asks for the password
  // again, with the CSRF token of a session the new router never had.
  first.kill('SIGKILL')
  await first.exited
  const second = await routerOn(adminEnv)
  await waitForLog(second, 'admin web listening')
  await logIn()
  t.pass('logged in on the restarted router')
  t.same(problems, [], 'no page error')
})

t.test('password guessing: past LOGIN_FAILURES_MAX failures in LOGIN_WINDOW_MS, every login waits (429)', async (t) => {
  const port = await freePort()
  await startRouter(t, { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs, env: { ROUTER_ADMIN_PORT: String(port), ROUTER_ADMIN_PASSWORD: PASSWORD } })
  const b = browser(`http://127.0.0.1:${port}`)
  await eventually(async () => (await b.call('GET', '/api/session')).status === 200)
  for (let i = 0; i < LOGIN_FAILURES_MAX; i++) t.equal((await b.call('POST', '/api/login', { password: `guess-${i}` })).status, 401)
  const locked = await b.call('POST', '/api/login', { password: PASSWORD })
  t.same([locked.status, locked.json.error.code], [429, 'rate_limited'], 'even the right password waits')
  const wait = Number(locked.headers.get('retry-after'))
  t.ok(wait > 0 && wait <= LOGIN_WINDOW_MS / 1_000, `Retry-After: ${wait} s, within the window`)
})

t.test('off unless configured: the API port has no admin routes; a port without a password stops the router', async (t) => {
  const onApi = await fetch(`${cluster.router.url}/api/session`, { headers: { authorization: `Bearer ${apiKeys[0]}` } })
  t.equal(onApi.status, 404, 'the admin is not on the API port')
  const plain = await startRouter(t, { redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs })
  t.notOk(plain.logs().some((l) => l.includes('admin web listening')), 'a router without ROUTER_ADMIN_PORT serves no admin')
  // No ROUTER_ADMIN_PASSWORD (routerEnv sets none).
  const env: Record<string, string> = { ...routerEnv({ redisUrl: cluster.redis.url, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs }), ROUTER_ADMIN_PORT: String(await freePort()) }
  const proc = spawn(process.execPath, [ROUTER_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const code = await new Promise((resolve) => proc.once('exit', resolve))
  t.equal(code, 1)
  t.match(stderr, /ROUTER_ADMIN_PASSWORD: required with ROUTER_ADMIN_PORT/)
})

t.test('the page sources are the files in apps/router/admin-web, served as they are', async (t) => {
  const file = readFileSync(new URL('../../apps/router/admin-web/app.js', import.meta.url), 'utf8')
  t.equal(await (await fetch(`${base}/app.js`)).text(), file)
})

t.test('in Chromium: log in with the keyboard, then every page: the cluster, a user, a test push, a disconnect, events, a room, an edge killed; no console error', async (t) => {
  const page = await openPage(t, 'about:blank')
  const problems: string[] = []
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()))
  page.on('pageerror', (e) => problems.push(String(e)))
  mkdirSync(ARTIFACTS, { recursive: true })
  const shot = (name: string) => page.screenshot({ path: `${ARTIFACTS}admin-${name}.png`, fullPage: true })
  /** Expressions run in the page (this project's TypeScript has no DOM types). */
  const text = (id: string) => `document.getElementById(${JSON.stringify(id)}).textContent`
  const rowIds = "[...document.querySelectorAll('#nodes tr td:first-child')].map((td) => td.textContent)"
  const open = async (tab: string) => {
    await page.focus(`nav a[href="#${tab}"]`)
    await page.keyboard.press('Enter')
    await page.waitForSelector(`#${tab}:not([hidden])`)
  }
  await page.goto(`${base}/`)
  await page.waitForSelector('#login:not([hidden])')
  t.equal(await page.evaluate('document.activeElement.id'), 'password', 'the password field has the focus')
  await page.keyboard.type('wrong password!')
  await page.keyboard.press('Enter')
  await page.waitForFunction(`${text('login-error')} === 'wrong password'`)
  await page.keyboard.type(PASSWORD)
  await page.keyboard.press('Enter')
  await page.waitForSelector('#cluster:not([hidden])')

  // The cluster: every live edge, and a new one appearing.
  const extra = await cluster.addEdge(t)
  await page.waitForFunction(`${rowIds}.includes(${JSON.stringify(extra.nodeId)})`, { timeout: cluster.leaseTtlMs * 2 })
  t.same(((await page.evaluate(rowIds)) as string[]).sort(), [...cluster.edges.map((e) => e.nodeId), extra.nodeId].sort(), 'every live edge, by node id')
  await page.waitForFunction(`${text('routers')}.includes("(this page's)")`)
  t.pass('the live routers, this one marked')

  // A user, inspected.
  const { client } = await connectUser(t, extra.wsUrl, jwtSecret, 'adm-lou')
  await open('user')
  await page.focus('#user-id')
  await page.keyboard.type('adm-lou')
  await page.keyboard.press('Enter')
  await page.waitForFunction(`${text('user-status')}.includes('online: 1 connection')`)
  t.match(await page.evaluate(text('user-connections')), extra.nodeId, 'the connection, on its edge')
  await page.waitForFunction(`${text('user-events')}.includes('user.online (connect)')`, { timeout: 5_000 })
  await shot('user')

  // A test push, received.
  await open('push')
  await page.focus('#push-to')
  await page.keyboard.type('adm-lou, adm-nobody')
  await page.click('#push-form button[type=submit]')
  await page.waitForSelector('#push-view:not([hidden])')
  t.same(await page.evaluate("[...document.querySelectorAll('#push-results tr')].map((tr) => tr.textContent)"), ['adm-loudelivered', 'adm-nobodyoffline'], 'delivered / offline per recipient')
  t.match(await page.evaluate(text('push-request')), /request admin-/, 'the request id to follow in the logs')
  t.match(await client.nextFrame(), { type: 'push', event: 'admin.test', data: { hello: 'from the admin' } }, 'the websocket client received it')
  await shot('push')
  await page.evaluate("document.getElementById('push-data').value = '{not json'")
  await page.click('#push-form button[type=submit]')
  await page.waitForFunction(`${text('push-error')}.startsWith('Data is not JSON')`)
  t.pass('data that is not JSON: a clear error, nothing sent')

  // Disconnect, with a reason and a confirmation.
  await open('user')
  await page.focus('#disconnect-reason')
  await page.keyboard.type('support: session reset')
  await page.click('#disconnect')
  await page.waitForSelector('#disconnect-confirm:not([hidden])')
  t.equal(await page.evaluate('document.activeElement.id'), 'disconnect-no', 'the confirmation focuses Cancel')
  t.equal(client.isClosed(), false, 'nothing closed before the confirmation')
  await page.click('#disconnect-yes')
  t.equal((await client.closed).reason, 'support: session reset', 'the client saw the reason')
  await page.waitForFunction(`${text('user-status')}.includes('is offline')`)
  t.match(await page.evaluate(text('disconnect-result')), /Closed 1 connection/)

  // Presence events and the webhook endpoint.
  await open('events')
  await page.waitForFunction(`${text('event-rows')}.includes('adm-lou')`, { timeout: 5_000 })
  await page.waitForFunction(`${text('sinks')}.includes('ECONNREFUSED')`, { timeout: 10_000 })
  t.notOk(((await page.evaluate('document.body.innerHTML')) as string).includes(HOOK_TOKEN), 'the webhook URL\'s token is not on the page')
  await shot('events')

  // A room.
  await cluster.api.post('/v1/rooms/adm-lobby/members', { userIds: ['adm-eve', 'adm-mo'] })
  await connectUser(t, cluster.edges[0]!.wsUrl, jwtSecret, 'adm-mo')
  await open('rooms')
  await page.focus('#room-name')
  await page.keyboard.type('adm-lobby')
  await page.keyboard.press('Enter')
  await page.waitForFunction(`${text('room-users')}.includes('adm-mo')`)
  t.match(await page.evaluate(text('room-users')), cluster.edges[0]!.nodeId, 'the online member, on its edge')
  t.match(await page.evaluate(text('room-summary')), /2 durable members/)
  await shot('rooms')

  // Readable at phone width: no page scrolls sideways.
  await page.setViewport({ width: 390, height: 844 })
  for (const tab of ['rooms', 'events', 'push', 'user', 'cluster']) {
    await open(tab)
    t.ok(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1'), `${tab}: fits at 390 px`)
  }
  await page.setViewport({ width: 1280, height: 800 })

  // The cluster again: charts (recipients delivered, routed, acked, unacked, offline and failed), then an edge killed.
  await page.waitForFunction("document.querySelectorAll('#chart-pushes polyline').length === 6", { timeout: 5_000 })
  await page.waitForFunction(`${text('chart-connections-legend')}.startsWith('connections')`, { timeout: 5_000 })
  await shot('cluster')
  extra.kill('SIGKILL')
  await page.waitForFunction(`!${rowIds}.includes(${JSON.stringify(extra.nodeId)})`, { timeout: cluster.leaseTtlMs + 5_000 })
  t.match(await page.evaluate(text('gone')), extra.nodeId, `${extra.nodeId} gone from the table within the lease bound, and listed as gone`)
  // Chromium logs every 4xx answer to fetch as a console error: the one wrong password's 401 is expected.
  const unexpected = problems.filter((p, i) => !(i === problems.indexOf(p) && p.includes('status of 401')))
  t.equal(problems.filter((p) => p.includes('status of 401')).length, 1, 'one 401: the wrong password')
  t.same(unexpected, [], `no other console error${unexpected.length ? `: ${JSON.stringify(unexpected)}` : ''}`)
})

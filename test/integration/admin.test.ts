// The admin web (first slice: login, session, CSRF, security headers, the cluster view) on a
// real router with two edges and Redis, over real HTTP. Browser tests come with the pages.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { connectUser, eventually } from '../helpers/clients.js'
import { ROUTER_MAIN, routerEnv, startCluster, startRouter, testSecrets, waitForLog } from '../helpers/processes.js'
import { freePort } from '../helpers/redis.js'

/** Screenshots, kept by CI as test artifacts (not committed). */
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname
const PASSWORD = `admin-${randomBytes(12).toString('hex')}`
const adminPort = await freePort()
const cluster = await startCluster(t, { edges: 2, routerEnv: { ROUTER_ADMIN_PORT: String(adminPort), ROUTER_ADMIN_PASSWORD: PASSWORD } })
await waitForLog(cluster.router, 'admin web listening')
const base = `http://127.0.0.1:${adminPort}`
const { apiKeys, jwtSecret } = testSecrets()

/** A browser's view: a cookie jar and the CSRF token the page would hold. */
function browser(url = base) {
  let cookie = ''
  let csrf = ''
  const call = async (method: string, path: string, body?: unknown, opts: { csrf?: boolean } = {}) => {
    const headers: Record<string, string> = {}
    if (cookie) headers.cookie = cookie
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (opts.csrf !== false && method !== 'GET') headers['x-csrf-token'] = csrf
    const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
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
  for (const secret of [...apiKeys, PASSWORD, jwtSecret]) t.notOk(sources.includes(secret), 'no API key, admin password or JWT secret in what is served')
})

t.test('login: refused without a CSRF token or with a wrong password; a session cookie HttpOnly and SameSite=Strict', async (t) => {
  const b = browser()
  t.equal((await b.call('GET', '/api/cluster')).status, 401, 'the cluster view needs a session')
  await b.call('GET', '/api/session')
  const noToken = await b.call('POST', '/api/login', { password: PASSWORD }, { csrf: false })
  t.equal(noToken.status, 403, 'a login without the CSRF token is refused')
  t.equal(noToken.json?.error?.code, 'forbidden')
  const wrong = await b.call('POST', '/api/login', { password: 'not the password' })
  t.same([wrong.status, wrong.json], [401, { error: { code: 'unauthorized', message: 'wrong password' } }])
  const ok = await b.call('POST', '/api/login', { password: PASSWORD })
  t.equal(ok.status, 200)
  t.match(ok.setCookie.join('\n'), /sb_admin=[^;]+;.*HttpOnly/i)
  t.match(ok.setCookie.join('\n'), /SameSite=Strict/i)
  t.notOk(ok.text.includes(PASSWORD), 'the answer never echoes the password')
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
  await eventually(async () => (await b.login()).status === 200)
  const loggedInAt = Date.now()
  t.equal((await b.call('GET', '/api/cluster')).status, 200)
  await eventually(async () => (await b.call('GET', '/api/cluster')).status === 401, { timeoutMs: ttlS * 1_000 + 2_000 })
  t.ok(Date.now() - loggedInAt >= ttlS * 1_000, 'not before its TTL')
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

t.test('in Chromium: log in with the keyboard, see both edges and their counts, kill one and see it go; no console error', async (t) => {
  const { default: puppeteer } = await import('puppeteer-core')
  const browserProc = await puppeteer.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium-headless-shell', args: ['--no-sandbox'], headless: true })
  t.teardown(() => browserProc.close())
  const page = await browserProc.newPage()
  await page.setViewport({ width: 1280, height: 800 })
  const problems: string[] = []
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()))
  page.on('pageerror', (e) => problems.push(String(e)))
  await page.goto(`${base}/`)
  // Expressions run in the page (this project's TypeScript has no DOM types).
  const rowIds = "[...document.querySelectorAll('#nodes tr td:first-child')].map((td) => td.textContent)"
  await page.waitForSelector('#login:not([hidden])')
  t.equal(await page.evaluate('document.activeElement.id'), 'password', 'the password field has the focus')
  await page.keyboard.type('wrong password!')
  await page.keyboard.press('Enter')
  await page.waitForFunction("document.getElementById('login-error').textContent === 'wrong password'")
  await page.keyboard.type(PASSWORD)
  await page.keyboard.press('Enter')
  await page.waitForSelector('#cluster:not([hidden])')
  const extra = await cluster.addEdge(t)
  await page.waitForFunction(`${rowIds}.includes(${JSON.stringify(extra.nodeId)})`, { timeout: cluster.leaseTtlMs * 2 })
  t.same(((await page.evaluate(rowIds)) as string[]).sort(), [...cluster.edges.map((e) => e.nodeId), extra.nodeId].sort(), 'every live edge, by node id')
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: `${ARTIFACTS}admin-cluster.png` })
  extra.kill('SIGKILL')
  await page.waitForFunction(`!${rowIds}.includes(${JSON.stringify(extra.nodeId)})`, { timeout: cluster.leaseTtlMs + 5_000 })
  t.pass(`${extra.nodeId} gone from the page within the lease bound`)
  await page.setViewport({ width: 390, height: 844 })
  t.ok(await page.evaluate("document.querySelector('table').scrollWidth <= window.innerWidth + 1"), 'readable at phone width: the table fits')
  // Chromium logs every 4xx answer to fetch as a console error: the one wrong password's 401 is expected.
  const unexpected = problems.filter((p, i) => !(i === problems.indexOf(p) && p.includes('status of 401')))
  t.equal(problems.filter((p) => p.includes('status of 401')).length, 1, 'one 401: the wrong password')
  t.same(unexpected, [], `no other console error${unexpected.length ? `: ${JSON.stringify(unexpected)}` : ''}`)
})

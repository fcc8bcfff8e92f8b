// `npm start` as the README tells a newcomer: both modes print a banner whose websocket URL,
// token, API key and curl line really deliver a push, and Ctrl-C stops everything (exit 0).
import t from 'tap'
import { connectClient } from '../helpers/clients.js'
import { launchLocal } from '../helpers/processes.js'
import { freePortRange, startRedis, type TestScope } from '../helpers/redis.js'

const launch = (t: TestScope, env: Record<string, string>) => launchLocal(t, 'main', [], env)

async function pushThroughBanner(t: import("tap").Test, out: string) {
  const wsUrl = out.match(/(ws:\/\/\S+\/v1\/ws)\?token=(\S+)/)
  const curl = out.match(/curl -s -X POST (\S+) -H 'authorization: Bearer (\S+)'.* -d '(.+)'/)
  t.ok(wsUrl && curl, 'the banner has a websocket URL with a token and a curl line')
  const client = await connectClient(wsUrl![1]!, wsUrl![2]!, { t })
  t.match(await client.nextFrame(), { type: 'welcome' })
  const res = await fetch(curl![1]!, { method: 'POST', headers: { authorization: `Bearer ${curl![2]}`, 'content-type': 'application/json' }, body: curl![3]! })
  t.same(((await res.json()) as { delivered: string[] }).delivered, ["alice"])
  t.match(await client.nextFrame(), { type: 'push', event: 'hello' })
  await adminThroughBanner(t, out)
}

/** The admin web the banner names: its password logs in, and it sees alice online. */
async function adminThroughBanner(t: import('tap').Test, out: string) {
  const url = out.match(/admin web\s+(http:\/\/127\.0\.0\.1:\d+\/)/)?.[1]
  const password = out.match(/admin password\s+(\S+)/)?.[1]
  if (!t.ok(url && password, 'the banner names the admin web and its password')) return
  const session = await fetch(`${url}api/session`)
  const cookie = session.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  const { csrfToken } = (await session.json()) as { csrfToken: string }
  const login = await fetch(`${url}api/login`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' }, body: JSON.stringify({ password }) })
  t.equal(login.status, 200, 'its password logs in')
  const loggedIn = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  const alice = (await (await fetch(`${url}api/users/alice`, { headers: { cookie: loggedIn } })).json()) as { online: boolean }
  t.equal(alice.online, true, 'and the admin sees alice online')
}

t.test('standalone (no REDIS_URL): one process, in-memory registry', async (t) => {
  const { proc, exited, out } = await launch(t, { ROUTER_PORT: '0', EDGE_PORT: '0', EDGE_INTERNAL_PORT: '0' })
  t.match(out, /standalone/)
  await pushThroughBanner(t, out)
  proc.kill('SIGINT')
  t.equal(await exited, 0, 'Ctrl-C exits 0')
})

t.test('with REDIS_URL: a router and two edges as processes', async (t) => {
  const redis = await startRedis(t)
  const base = await freePortRange(5)
  const { proc, exited, out } = await launch(t, { REDIS_URL: redis.url, ROUTER_PORT: String(base + 4), EDGE_PORT: String(base) })
  t.match(out, /router \+ 2 edges/)
  t.match(out, new RegExp(`ws://127.0.0.1:${base + 2}/v1/ws`), 'the second edge is listed')
  await pushThroughBanner(t, out)
  proc.kill('SIGINT')
  t.equal(await exited, 0, 'Ctrl-C stops the children and exits 0')
})

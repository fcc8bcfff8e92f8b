// The `switchboard` CLI against a real router and edge, and `npm run cluster`, which starts
// its own Redis and leaves a session file the CLI finds without any flags.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { connectClient } from '../helpers/clients.js'
import { launchLocal, startCluster, testSecrets, type Edge } from '../helpers/processes.js'
import { freePort, freePortRange } from '../helpers/redis.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = join(ROOT, 'packages/cli/bin/switchboard.js')
const CLUSTER = join(ROOT, 'apps/local/dist/cluster.js')
const noSession = join(mkdtempSync(join(tmpdir(), 'sb-cli-')), 'none.json')

interface Run {
  code: number
  stdout: string
  stderr: string
}
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', SWITCHBOARD_SESSION_FILE: noSession, ...env }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

t.test('against a running router: token, presence, push, nodes, and clear failures', async (t) => {
  const cluster = await startCluster(t, { edges: 1 })
  const edge = cluster.edges[0] as Edge
  const { jwtSecret, apiKeys } = testSecrets()
  const env = { SWITCHBOARD_URL: cluster.router.url, SWITCHBOARD_API_KEY: apiKeys[0], EDGE_JWT_SECRET: jwtSecret }

  const token = await cli(['token', '--user', 'cli-ann'], env)
  t.equal(token.code, 0)
  const client = await connectClient(edge.wsUrl, token.stdout.trim(), { t })
  t.match(await client.nextFrame(), { type: 'welcome' }, 'the minted token connects')

  const presence = await cli(['presence', 'cli-ann'], env)
  t.equal(presence.code, 0)
  t.match(presence.stdout, new RegExp(`^cli-ann  online \\(1 connection\\)\\n    \\S+ on ${edge.nodeId} since `))
  const batch = await cli(['presence', 'cli-ann', 'cli-nobody'], env)
  t.equal(batch.stdout, 'cli-ann  online\ncli-nobody  offline\n')

  const push = await cli(['push', '--to', 'cli-ann,cli-nobody', '--event', 'cli.hello', '--data', '{"text":"hi"}', '--id', 'cli-1'], env)
  t.equal(push.code, 0)
  t.equal(push.stdout, 'push cli-1\n  delivered  cli-ann\n  offline    cli-nobody\n  failed     -\n')
  t.match(await client.nextFrame(), { type: 'push', id: 'cli-1', event: 'cli.hello', data: { text: 'hi' } })
  const kept = await cli(['push', '--to', 'cli-ann,cli-nobody', '--event', 'cli.kept', '--id', 'cli-2', '--keep'], env)
  t.equal(kept.stdout, 'push cli-2\n  delivered  cli-ann\n  offline    cli-nobody\n  failed     -\n  kept       cli-nobody\n', '--keep: who waits in an inbox')
  t.match(await client.nextFrame(), { type: 'push', id: 'cli-2', epoch: /^[0-9a-f]+$/, offset: 1 })
  const routed = await cli(['push', '--to', 'cli-ann,cli-nobody', '--event', 'cli.routed', '--id', 'cli-3', '--wait', 'routed'], env)
  t.equal(routed.stdout, 'push cli-3\n  routed     cli-ann\n  offline    cli-nobody\n  failed     -\n', '--wait routed: whom it was routed to')
  t.match(await client.nextFrame(), { type: 'push', id: 'cli-3' })
  t.equal((await cli(['push', '--to', 'cli-ann', '--event', 'e', '--wait', 'soon'], env)).code, 2, '--wait: a bad value is a usage error')
  const json = await cli(['push', '--to', 'cli-ann', '--event', 'e', '--json'], env)
  t.same(JSON.parse(json.stdout), { id: JSON.parse(json.stdout).id, delivered: ['cli-ann'], offline: [], failed: [] })
  t.match(await client.nextFrame(), { type: 'push', event: 'e', data: null })

  const add = await cli(['room', 'add', 'cli room', 'cli-ann', 'cli-nobody'], env)
  t.equal(add.stdout, 'cli room: 2 members; added cli-ann, cli-nobody\n')
  const roomPush = await cli(['push', '--room', 'cli room', '--event', 'cli.room', '--id', 'cli-r1'], env)
  t.equal(roomPush.stdout, 'push cli-r1 to room cli room: 2 members, 1 reached on 1 edge\n  delivered  cli-ann\n  offline    cli-nobody\n  failed     -\n')
  t.match(await client.nextFrame(), { type: 'push', id: 'cli-r1', event: 'cli.room' })
  const excepted = await cli(['push', '--room', 'cli room', '--event', 'e', '--except', 'cli-ann', '--json'], env)
  t.match(JSON.parse(excepted.stdout), { room: 'cli room', members: 2, reached: 0, delivered: [], offline: ['cli-nobody'] })
  t.equal((await cli(['room', 'presence', 'cli room'], env)).stdout, 'cli room: 1 online of 2 members\n  online     cli-ann\n  offline    cli-nobody\n')
  t.equal((await cli(['room', 'members', 'cli room'], env)).stdout, 'cli-ann\ncli-nobody\n')
  t.equal((await cli(['room', 'remove', 'cli room', 'cli-nobody'], env)).stdout, 'cli room: 1 members; removed cli-nobody\n')
  t.equal((await cli(['room', 'info', 'cli room'], env)).stdout, 'cli room: 1 members\n')
  t.equal((await cli(['room', 'clear', 'cli room'], env)).stdout, 'cli room: cleared, 1 members removed\n')
  t.equal((await cli(['room', 'delete', 'cli room'], env)).stdout, 'cli room: deleted, 0 members removed\n')
  t.equal((await cli(['room', 'info', 'cli room'], env)).stdout, 'cli room: no such room\n')

  const revoke = await cli(['revoke', 'cli-ann', '--reason', 'signed out'], env)
  t.equal(revoke.code, 0)
  t.match(revoke.stdout, /^cli-ann  revoked: tokens issued until \d{4}-\S+Z refused, 1 socket closed\n$/)
  t.same(await client.closed, { code: 4503, reason: 'signed out' }, 'its socket closes 4503')
  t.equal((await cli(['revoke'], env)).code, 2, 'revoke needs one id')

  const nodes = await cli(['nodes'], env)
  t.equal(nodes.code, 0)
  t.match(nodes.stdout, new RegExp(`^node\\s+connections\\s+state\\s+started\\n${edge.nodeId}\\s+\\d+\\s+serving\\s+\\d{4}-`))

  const badKey = await cli(['nodes', '--key', 'wrong-key-0123456789'], env)
  t.equal(badKey.code, 1, 'a refused request exits 1')
  t.match(badKey.stderr, /401 unauthorized/)
  const unreachable = await cli(['nodes', '--url', 'http://127.0.0.1:1'], env)
  t.equal(unreachable.code, 1)
  t.match(unreachable.stderr, /cannot reach the router at http:\/\/127\.0\.0\.1:1/)
  const noRouter = await cli(['nodes'])
  t.equal(noRouter.code, 2, 'nothing to talk to is a usage error')
  t.match(noRouter.stderr, /no router: pass --url and --key/)
})

t.test('bad usage exits 2 with the usage text', async (t) => {
  const bad = [[], ['bogus'], ['push', '--to', 'a'], ['push', '--to', 'a', '--room', 'r', '--event', 'e'], ['push', '--to', 'a', '--event', 'e', '--data', '{bad'], ['nodes', '--nope'], ['token'], ['presence'], ['room'], ['room', 'add', 'r'], ['room', 'zap', 'r']]
  for (const args of bad) {
    const run = await cli(args, { SWITCHBOARD_URL: 'http://127.0.0.1:1', SWITCHBOARD_API_KEY: 'k'.repeat(16), EDGE_JWT_SECRET: 's'.repeat(32) })
    t.equal(run.code, 2, JSON.stringify(args))
    t.match(run.stderr, /^switchboard: .+\n\nusage: switchboard <command>/, `${JSON.stringify(args)}: says what is wrong, then the usage`)
  }
})

t.test('npm run cluster -- --edges 3: its own Redis, three edges, found by the CLI without flags', async (t) => {
  const [routerPort, edgePort] = [await freePort(), await freePortRange(6)]
  const { proc, exited, out, session } = await launchLocal(t, 'cluster', ['--edges', '3'], { ROUTER_PORT: String(routerPort), EDGE_PORT: String(edgePort) })
  t.match(out, /router \+ 3 edges against redis:\/\/127\.0\.0\.1:\d+ \(started for this run\)/)
  const redisPort = Number(/redis:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1])
  t.ok(existsSync(session), 'the session file is written')

  const nodes = await cli(['nodes'], { SWITCHBOARD_SESSION_FILE: session })
  t.equal(nodes.code, 0, nodes.stderr)
  t.same(nodes.stdout.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]).sort(), ['edge-1', 'edge-2', 'edge-3'])
  const token = await cli(['token', '--user', 'cl-bob'], { SWITCHBOARD_SESSION_FILE: session })
  const client = await connectClient(`ws://127.0.0.1:${edgePort + 4}/v1/ws`, token.stdout.trim(), { t })
  t.match(await client.nextFrame(), { type: 'welcome', nodeId: 'edge-3' })
  const push = await cli(['push', '--to', 'cl-bob', '--event', 'hi'], { SWITCHBOARD_SESSION_FILE: session })
  t.match(push.stdout, /delivered {2}cl-bob/)
  t.match(await client.nextFrame(), { type: 'push', event: 'hi' })

  proc.kill('SIGINT')
  t.equal(await exited, 0, 'Ctrl-C exits 0')
  t.notOk(existsSync(session), 'the session file is removed')
  const redisGone = await new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port: redisPort }).once('connect', () => (s.destroy(), resolve(false))).once('error', () => resolve(true))
  })
  t.ok(redisGone, 'the Redis it started is stopped')
})

t.test('npm run cluster refuses a bad edge count', async (t) => {
  const run = await new Promise<Run>((resolve) =>
    execFile(process.execPath, [CLUSTER, '--edges', '0'], { env: { PATH: process.env.PATH ?? '' } }, (err, stdout, stderr) => resolve({ code: Number((err as { code?: number } | null)?.code ?? 0), stdout, stderr })),
  )
  t.equal(run.code, 2)
  t.match(run.stderr, /--edges must be a whole number from 1 to 16/)
})

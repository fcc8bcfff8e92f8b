import t from 'tap'
import { SwitchboardError } from '@switchboard/protocol'
import { MemoryRegistry, RedisGateway, RedisIdempotencyStore, RedisInbox, RedisRegistry, RedisRoomStore, newIncarnationId, type RedisClient } from '@switchboard/registry'

// The gateway against a stand-in client: what it does before, around and after a command.
// Its behaviour against a real Redis is the contract suites' (every Redis store runs through it).

const script = { sha: 'f'.repeat(40), source: 'return 1' }

/** A client stand-in: `status`, the command timeout, and the commands the tests use. */
function fakeClient(fields: { status?: string; commandTimeout?: number; [command: string]: unknown }): RedisClient {
  const { status = 'ready', commandTimeout, ...commands } = fields
  return { status, options: { commandTimeout }, ...commands } as unknown as RedisClient
}

async function codeAndMessage(promise: Promise<unknown>): Promise<[string, string]> {
  try {
    await promise
  } catch (err) {
    if (err instanceof SwitchboardError) return [err.code, err.message]
    throw err
  }
  throw new Error('resolved: expected a SwitchboardError')
}

for (const status of ['reconnecting', 'end', 'close']) {
  t.test(`a call while the client is ${status} fails at once, without a command`, async (t) => {
    let sent = 0
    const gateway = new RedisGateway(fakeClient({ status, get: async () => sent++ }))
    t.same(await codeAndMessage(gateway.call((r) => r.get('k'))), ['registry_unavailable', `redis is ${status}`])
    t.same(await codeAndMessage(gateway.script(script, [], [])), ['registry_unavailable', `redis is ${status}`])
    t.equal(sent, 0)
  })
}

t.test('every Redis store fails at once while its client reconnects, sending nothing', async (t) => {
  const sent: string[] = []
  // Any command is recorded: none may be sent.
  const client = new Proxy({ status: 'reconnecting', options: {} } as Record<string | symbol, unknown>, {
    get: (target, name) => (name in target || name === 'then' ? target[name] : (...args: unknown[]) => sent.push(`${String(name)} ${args.join(' ')}`)),
  }) as unknown as RedisClient
  const limits = { maxLen: 10, ttlMs: 1_000, maxMembers: 10, maxRoomsPerUser: 10 }
  const calls: [string, () => Promise<unknown>][] = [
    ['registry', () => new RedisRegistry(client).locate(['ann'])],
    ['registry', () => new RedisRegistry(client).serverIdentity()],
    ['inbox', () => new RedisInbox(client, limits).append(['ann'], '{}')],
    ['room store', () => new RedisRoomStore(client, limits).info('r')],
    ['idempotency store', () => new RedisIdempotencyStore(client).begin('k', 'f', 1_000)],
  ]
  for (const [store, call] of calls) t.same(await codeAndMessage(call()), ['registry_unavailable', 'redis is reconnecting'], store)
  t.same(sent, [])
})

t.test('a failed command is registry_unavailable naming the store, with the error as its cause', async (t) => {
  const failure = new Error('READONLY You cannot write against a read only replica')
  const gateway = new RedisGateway(fakeClient({ set: () => Promise.reject(failure) }))
  const err = await gateway
    .named('inbox')
    .call((r) => r.set('k', 'v'))
    .catch((e: unknown) => e)
  t.ok(err instanceof SwitchboardError)
  t.match(err, { code: 'registry_unavailable', message: 'inbox call failed', cause: failure })
  t.same(await codeAndMessage(gateway.call((r) => r.set('k', 'v'))), ['registry_unavailable', 'registry call failed'])
})

t.test('a command unanswered within the command timeout fails once the timeout has passed', async (t) => {
  const timeoutMs = 50
  const gateway = new RedisGateway(fakeClient({ commandTimeout: timeoutMs, get: () => new Promise(() => undefined) }))
  const started = performance.now()
  t.same(await codeAndMessage(gateway.call((r) => r.get('k'))), ['registry_unavailable', 'registry call failed'])
  const tookMs = performance.now() - started
  // Timers may fire a millisecond early; never much later on an idle loop, but CI is not idle.
  t.ok(tookMs >= timeoutMs - 1 && tookMs < timeoutMs + 1_000, `failed after ${tookMs.toFixed(0)} ms`)
  t.equal(gateway.commandTimeoutMs, timeoutMs)
})

t.test('a Cluster client: the command timeout is read from its nodes options', async (t) => {
  const cluster = { status: 'ready', options: { redisOptions: { commandTimeout: 700 } } } as unknown as RedisClient
  t.equal(new RedisGateway(cluster).commandTimeoutMs, 700)
  t.equal(new RedisGateway(fakeClient({})).commandTimeoutMs, undefined)
})

t.test('a script goes by SHA, and in full once when the server answers NOSCRIPT', async (t) => {
  const sent: string[] = []
  let known = false
  const gateway = new RedisGateway(
    fakeClient({
      evalsha: async (sha: string, ...rest: unknown[]) => {
        sent.push(`evalsha ${sha} ${rest.join(' ')}`)
        if (!known) throw new Error('NOSCRIPT No matching script. Please use EVAL.')
        return 'by sha'
      },
      eval: async (source: string, ...rest: unknown[]) => {
        sent.push(`eval ${source} ${rest.join(' ')}`)
        known = true
        return 'in full'
      },
    }),
  )
  t.equal(await gateway.script(script, ['k1', 'k2'], ['a', 1]), 'in full')
  t.equal(await gateway.script(script, ['k1'], []), 'by sha')
  t.same(sent, [`evalsha ${script.sha} 2 k1 k2 a 1`, 'eval return 1 2 k1 k2 a 1', `evalsha ${script.sha} 1 k1`])
})

t.test('a script error other than NOSCRIPT is not retried in full', async (t) => {
  let evals = 0
  const gateway = new RedisGateway(fakeClient({ evalsha: () => Promise.reject(new Error('ERR wrong number of arguments')), eval: async () => evals++ }))
  t.same(await codeAndMessage(gateway.script(script, [], [])), ['registry_unavailable', 'registry call failed'])
  t.equal(evals, 0)
})

t.test('keys carry the prefix: one given to the gateway, or sb: by default', async (t) => {
  const client = fakeClient({})
  const gateway = new RedisGateway(client, { prefix: 'test:' })
  t.equal(gateway.keys.nodes, 'test:{ctl}:nodes')
  t.equal(gateway.keys.idempotency('k'), 'test:idem:k')
  t.equal(gateway.named('inbox').keys.nodes, 'test:{ctl}:nodes', 'a named gateway keeps the prefix')
  t.equal(new RedisGateway(client).keys.nodes, 'sb:{ctl}:nodes')
})

t.test('a store given a gateway uses its client and prefix, and names itself in failures', async (t) => {
  const keys: string[] = []
  const client = fakeClient({
    evalsha: async (_sha: string, _n: number, ...keysAndArgs: string[]) => {
      keys.push(...keysAndArgs.slice(0, 2))
      throw new Error('LOADING Redis is loading the dataset in memory')
    },
  })
  const inbox = new RedisInbox(new RedisGateway(client, { prefix: 'p1:' }), { maxLen: 10, ttlMs: 1_000 })
  t.same(await codeAndMessage(inbox.read('ann', undefined)), ['registry_unavailable', 'inbox call failed'])
  t.match(keys, [/^p1:\{p\d+\}:im:ann$/, /^p1:\{p\d+\}:in:ann$/])
})

t.test('incarnation ids: one format for every registry, sortable by creation time', async (t) => {
  const ids = [newIncarnationId(1), newIncarnationId(Date.now()), newIncarnationId(36 ** 9 - 1)]
  for (const id of ids) t.match(id, /^[0-9a-z]{17}$/)
  t.same([...ids].sort(), ids)
  t.not(newIncarnationId(5), newIncarnationId(5), 'two starts in one ms differ')
  const registry = new MemoryRegistry()
  t.teardown(() => registry.close())
  const lease = await registry.openLease({ nodeId: 'n1', url: 'http://n1', startedAt: 1 }, 1_000)
  t.match(lease.incId, /^[0-9a-z]{17}$/)
})

// The router's operations through their seams: a memory registry and a fake edge client, no
// sockets. Both ingresses (HTTP and pipelined) call exactly these.
import t, { type Test } from 'tap'
import pino from 'pino'
import { Registry as PromRegistry } from 'prom-client'
import { SwitchboardError, type DeliveryResult, type InternalDisconnect, type Position } from '@switchboard/protocol'
import { MemoryInbox, MemoryRegistry, type Inbox } from '@switchboard/registry'
import { EdgeCallError, createApi, createLimitChecks, createRouterMetrics, timedRegistry, type EdgeClient } from '@switchboard/router'

/** An edge client that answers from what each fake edge holds, and fails for edges marked down. */
class FakeEdges implements EdgeClient {
  readonly calls: { url: string; op: string; to?: readonly string[]; requestId?: string; at?: readonly Position[] }[] = []
  readonly down = new Set<string>()
  constructor(readonly holds: Record<string, string[]>) {}
  async deliver(url: string, frame: string, to: readonly string[], requestId?: string, at?: readonly Position[]): Promise<DeliveryResult> {
    this.calls.push({ url, op: 'deliver', to, requestId, ...(at && { at }) })
    if (this.down.has(url)) throw new EdgeCallError('down')
    JSON.parse(frame) // the frame is the client's JSON
    const here = new Set(this.holds[url] ?? [])
    return { delivered: to.filter((u) => here.has(u)), missing: to.filter((u) => !here.has(u)) }
  }
  async broadcast(url: string) {
    this.calls.push({ url, op: 'broadcast' })
    if (this.down.has(url)) throw new EdgeCallError('down')
    return { connections: (this.holds[url] ?? []).length }
  }
  async disconnect(url: string, body: InternalDisconnect) {
    this.calls.push({ url, op: 'disconnect', to: [body.userId] })
    if (this.down.has(url)) throw new EdgeCallError('down')
    return { closed: (this.holds[url] ?? []).filter((u) => u === body.userId).length }
  }
  async close() {}
}

const LIMITS = { maxRecipients: 10_000, maxPresenceBatch: 10_000, maxUserIdLength: 256, maxEventLength: 256 }

async function setup(t: Test, limits = LIMITS, options: { inbox?: Inbox; keepByDefault?: boolean } = {}) {
  const registry = new MemoryRegistry()
  t.teardown(() => registry.close())
  const e1 = await registry.openLease({ nodeId: 'e1', url: 'http://e1', startedAt: 1 }, 60_000)
  const e2 = await registry.openLease({ nodeId: 'e2', url: 'http://e2', startedAt: 2 }, 60_000)
  await registry.addConnections(e1, [{ userId: 'ann', connId: 'a1', since: 10 }, { userId: 'bob', connId: 'b1', since: 11 }])
  await registry.addConnections(e2, [{ userId: 'bob', connId: 'b2', since: 12 }, { userId: 'cy', connId: 'c1', since: 13 }])
  const edges = new FakeEdges({ 'http://e1': ['ann', 'bob'], 'http://e2': ['bob', 'cy'] })
  const metrics = createRouterMetrics(new PromRegistry(), () => 0)
  const inbox = options.inbox ?? new MemoryInbox({ maxLen: 10, ttlMs: 60_000 })
  const api = createApi({
    registry: timedRegistry(registry, metrics.registrySeconds),
    edges,
    metrics,
    limits: createLimitChecks(limits),
    log: pino({ level: 'silent' }),
    inbox,
    keepByDefault: options.keepByDefault ?? false,
  })
  return { api, edges, registry, inbox, metrics }
}

const codeOf = async (p: Promise<unknown>) => p.then(() => 'ok', (err: unknown) => (err instanceof SwitchboardError ? `${err.code}: ${err.message}` : String(err)))

t.test('a push goes to each recipient edge once and settles every recipient in one list', async (t) => {
  const { api, edges } = await setup(t)
  const answer = await api.push({ to: ['ann', 'bob', 'zed', 'ann'], event: 'e', data: { n: 1 }, id: 'm1' }, 'req-1')
  t.same(answer, { id: 'm1', delivered: ['ann', 'bob'], offline: ['zed'], failed: [] })
  t.same(edges.calls.map((c) => [c.url, c.to]).sort(), [['http://e1', ['ann', 'bob']], ['http://e2', ['bob']]])
  t.ok(edges.calls.every((c) => c.requestId === 'req-1'), 'the request id travels to the edges')
})

t.test('a kept push is in every inbox before any edge call, each edge gets its users\' positions, and the answer says who waits in an inbox', async (t) => {
  const { api, edges, inbox } = await setup(t)
  edges.down.add('http://e2')
  const [zedBefore] = await inbox.append(['zed'], '{"type":"push","id":"older"}')
  const answer = await api.push({ to: ['ann', 'cy', 'zed'], event: 'e', data: 1, id: 'k1', keep: true }, 'r')
  t.same(answer, { id: 'k1', delivered: ['ann'], offline: ['zed'], failed: ['cy'], kept: ['zed', 'cy'] }, 'kept: not written now, waiting in the inbox')
  const at = (url: string) => edges.calls.find((c) => c.url === url)!.at!
  t.same(at('http://e1').map((p) => p.offset), [1], "ann's first kept push")
  t.same(at('http://e2').map((p) => p.offset), [1], "cy's too (its edge then failed)")
  const positions = { ann: at('http://e1')[0]!, cy: at('http://e2')[0]!, zed: { epoch: zedBefore!.epoch, offset: 2 } }
  for (const [user, p] of Object.entries(positions)) {
    const read = await inbox.read(user, { epoch: p.epoch, offset: p.offset - 1 })
    t.match(read, { recovered: true, entries: [{ offset: p.offset, frame: /"id":"k1"/ }] }, `${user}'s inbox holds it at ${p.offset}`)
  }
})

t.test('PUSH_KEEP_DEFAULT keeps a push that does not say; keep: false opts out; a plain push touches no inbox', async (t) => {
  const calls: string[][] = []
  const inbox = new MemoryInbox({ maxLen: 10, ttlMs: 60_000 })
  const spy: Inbox = { append: (u, f) => (calls.push([...u]), inbox.append(u, f)), read: (u, p) => inbox.read(u, p) }
  const { api, edges, metrics } = await setup(t, LIMITS, { inbox: spy, keepByDefault: true })
  t.same((await api.push({ to: ['ann'], event: 'e' }, 'r')).kept, [], 'kept by default; delivered, so nobody waits')
  t.notOk('kept' in (await api.push({ to: ['ann'], event: 'e', keep: false }, 'r')), 'keep: false: a plain push')
  t.same(calls, [['ann']], 'one append, for the kept push')
  t.ok(edges.calls[0]!.at && !edges.calls[1]!.at, 'positions only with the kept push')
  t.equal((await metrics.kept.get()).values[0]!.value, 1)
})

t.test('a kept push whose inbox cannot be written is refused (503) and sent nowhere', async (t) => {
  const failing: Inbox = {
    append: async () => {
      throw new SwitchboardError('registry_unavailable', 'inbox call failed')
    },
    read: async () => ({ head: { epoch: 'e', offset: 0 }, recovered: false, entries: [] }),
  }
  const { api, edges } = await setup(t, LIMITS, { inbox: failing })
  t.equal(await codeOf(api.push({ to: ['ann'], event: 'e', keep: true }, 'r')), 'registry_unavailable: inbox call failed')
  t.same(edges.calls, [], 'nothing forwarded: "kept" is never claimed for a push that is not')
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e', keep: 'yes' }, 'r')), /^invalid_request: keep/)
  t.match(await codeOf(api.broadcast({ event: 'e', keep: true }, 'r')), /^invalid_request/, 'a broadcast cannot be kept')
})

t.test('only the users of an edge that fails are failed; delivered elsewhere wins', async (t) => {
  const { api, edges } = await setup(t)
  edges.down.add('http://e2')
  const answer = await api.push({ to: ['ann', 'bob', 'cy'], event: 'e' }, 'r')
  t.same(answer.delivered, ['ann', 'bob'], 'bob was written on e1')
  t.same(answer.failed, ['cy'])
  t.same(answer.offline, [])
  t.match(answer.id, /^[0-9a-f-]{36}$/, 'an id is generated')
})

t.test('validation and limits throw invalid_request naming the field', async (t) => {
  const { api, edges } = await setup(t, { ...LIMITS, maxRecipients: 2, maxEventLength: 3 })
  t.match(await codeOf(api.push({ to: [], event: 'e' }, 'r')), /^invalid_request: to/)
  t.match(await codeOf(api.push({ to: ['a', 'b', 'c'], event: 'e' }, 'r')), /^invalid_request: to: at most 2/)
  t.match(await codeOf(api.push({ to: ['a'], event: 'long' }, 'r')), /^invalid_request: event/)
  t.match(await codeOf(api.push(null, 'r')), /^invalid_request: body/)
  t.match(await codeOf(api.presence({ userId: '' })), /^invalid_request: userId/)
  t.match(await codeOf(api.presenceQuery({ userIds: 'ann' })), /^invalid_request: userIds/)
  t.match(await codeOf(api.disconnect({ userId: 'ann', extra: 1 }, 'r')), /^invalid_request/)
  t.same(edges.calls, [], 'nothing reached an edge')
})

t.test('presence, presence query, broadcast, disconnect and nodes', async (t) => {
  const { api, edges } = await setup(t)
  const bob = await api.presence({ userId: 'bob' })
  t.same({ ...bob, connections: bob.connections.map((c) => c.nodeId).sort() }, { userId: 'bob', online: true, connections: ['e1', 'e2'] })
  t.same(await api.presence({ userId: 'zed' }), { userId: 'zed', online: false, connections: [] })
  t.same(await api.presenceQuery({ userIds: ['cy', 'zed', 'cy'] }), { online: ['cy'], offline: ['zed'] })
  edges.down.add('http://e2')
  t.match(await api.broadcast({ event: 'b', id: 'x' }, 'r'), { id: 'x', nodes: 1, connections: 2 }, 'the edge that failed is not counted')
  t.same(await api.disconnect({ userId: 'bob' }, 'r'), { closed: 1 }, "e2's sockets are not counted when it fails")
  t.same((await api.nodes()).nodes.map((n) => n.nodeId), ['e1', 'e2'])
})

t.test('a registry that cannot answer surfaces as registry_unavailable', async (t) => {
  const { api, registry } = await setup(t)
  registry.locate = async () => {
    throw new SwitchboardError('registry_unavailable', 'down')
  }
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e' }, 'r')), /^registry_unavailable/)
  t.match(await codeOf(api.presence({ userId: 'ann' })), /^registry_unavailable/)
})

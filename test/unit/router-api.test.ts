// The router's operations through their seams: a memory registry and a fake edge client, no
// sockets. Both ingresses (HTTP and pipelined) call exactly these.
import t, { type Test } from 'tap'
import pino from 'pino'
import { Registry as PromRegistry } from 'prom-client'
import {
  SwitchboardError,
  type AckedDelivery,
  type AckedDeliveryResult,
  type AckedPushResponse,
  type DeliveryResult,
  type InternalDisconnect,
  type InternalRoomJoin,
  type InternalRoomLeave,
  type InternalRoomMembers,
  type Position,
  type PushResponse,
  type RoomDelivery,
  type RoutedPushResponse,
} from '@switchboard/protocol'
import { MemoryInbox, MemoryRegistry, MemoryRoomStore, type Inbox, type RoomStore } from '@switchboard/registry'
import { EdgeCallError, createApi, createLimitChecks, createRouterMetrics, timedRegistry, type EdgeClient } from '@switchboard/router'

/** An edge client that answers from what each fake edge holds, and fails for edges marked down. */
class FakeEdges implements EdgeClient {
  readonly calls: { url: string; op: string; to?: readonly string[]; requestId?: string; at?: readonly Position[]; room?: RoomDelivery; timeoutMs?: number }[] = []
  /** Users whose connections acknowledge pushes asking for receipts (on every edge holding them). */
  readonly acking = new Set<string>()
  readonly down = new Set<string>()
  /** Edges whose delivery calls are never answered (a stopped edge whose link still takes frames). */
  readonly silent = new Set<string>()
  /** Each edge's local room members (url -> room -> user -> generation), and where it writes its index field. */
  readonly local = new Map<string, Map<string, Map<string, string>>>()
  index: { store: RoomStore; incIds: Record<string, string> } | undefined
  constructor(readonly holds: Record<string, string[]>) {}
  async room(url: string, d: RoomDelivery) {
    this.calls.push({ url, op: 'room', room: d })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    const except = new Set(d.except)
    const users = [...(this.local.get(url)?.get(d.room) ?? [])].filter(([u, g]) => g === d.generation && !except.has(u)).map(([u]) => u)
    const reached = d.list ? { reached: users.length, users } : { reached: users.length }
    if (!d.ack) return reached
    this.calls.at(-1)!.timeoutMs = d.ack.timeoutMs
    const acked = users.filter((u) => this.acking.has(u))
    return d.list ? { ...reached, acked: acked.length, ackedUsers: acked } : { ...reached, acked: acked.length }
  }
  async roomJoin(url: string, body: InternalRoomJoin) {
    this.calls.push({ url, op: 'room-join', to: body.userIds })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    const rooms = this.local.get(url) ?? new Map<string, Map<string, string>>()
    this.local.set(url, rooms)
    const members = rooms.get(body.room) ?? new Map<string, string>()
    rooms.set(body.room, members)
    const here = body.userIds.filter((u) => this.holds[url]?.includes(u))
    for (const u of here) members.set(u, body.generation)
    if (here.length > 0) await this.index!.store.setEdgeRooms(this.index!.incIds[url]!, [{ room: body.room, holds: true }])
    return { changed: here.length }
  }
  async roomMembers(url: string, body: InternalRoomMembers) {
    this.calls.push({ url, op: 'room-members' })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    return { users: [...(this.local.get(url)?.get(body.room) ?? [])].filter(([, g]) => g === body.generation).map(([u]) => u) }
  }
  async roomLeave(url: string, body: InternalRoomLeave) {
    this.calls.push({ url, op: 'room-leave', to: body.userIds })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    const members = this.local.get(url)?.get(body.room)
    const gone = (body.userIds ?? [...(members?.keys() ?? [])]).filter((u) => members?.delete(u))
    if (members?.size === 0) await this.index!.store.setEdgeRooms(this.index!.incIds[url]!, [{ room: body.room, holds: false }])
    return { changed: gone.length }
  }
  async deliver(url: string, frame: string, to: readonly string[], requestId?: string, at?: readonly Position[]): Promise<DeliveryResult> {
    this.calls.push({ url, op: 'deliver', to, requestId, ...(at && { at }) })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    if (this.silent.has(url)) return new Promise<never>(() => undefined)
    JSON.parse(frame) // the frame is the client's JSON
    const here = new Set(this.holds[url] ?? [])
    return { delivered: to.filter((u) => here.has(u)), missing: to.filter((u) => !here.has(u)) }
  }
  async deliverAcked(url: string, d: AckedDelivery, requestId?: string): Promise<AckedDeliveryResult> {
    this.calls.push({ url, op: 'deliver-acked', to: d.to, requestId, timeoutMs: d.timeoutMs, ...(d.at && { at: d.at }) })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    if (!(JSON.parse(d.frame) as { ack?: boolean }).ack) throw new Error('a push asking for receipts carries "ack": true')
    if (this.silent.has(url)) return new Promise<never>(() => undefined)
    const here = new Set(this.holds[url] ?? [])
    const written = d.to.filter((u) => here.has(u))
    return { acked: written.filter((u) => this.acking.has(u)), unacked: written.filter((u) => !this.acking.has(u)), missing: d.to.filter((u) => !here.has(u)) }
  }
  async route(url: string, frame: string, to: readonly string[], requestId?: string, at?: readonly Position[]): Promise<void> {
    this.calls.push({ url, op: 'route', to, requestId, ...(at && { at }) })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    JSON.parse(frame)
  }
  async broadcast(url: string) {
    this.calls.push({ url, op: 'broadcast' })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    return { connections: (this.holds[url] ?? []).length }
  }
  async disconnect(url: string, body: InternalDisconnect) {
    this.calls.push({ url, op: 'disconnect', to: [body.userId] })
    if (this.down.has(url)) throw new EdgeCallError('link_down', 'down')
    return { closed: (this.holds[url] ?? []).filter((u) => u === body.userId).length }
  }
  async close() {}
}

const LIMITS = { maxRecipients: 10_000, maxPresenceBatch: 10_000, maxUserIdLength: 256, maxEventLength: 256 }

async function setup(t: Test, limits = LIMITS, options: { inbox?: Inbox; keepByDefault?: boolean; roomLimits?: { maxNameLength: number; listMax: number } } = {}) {
  const registry = new MemoryRegistry()
  t.teardown(() => registry.close())
  const e1 = await registry.openLease({ nodeId: 'e1', url: 'http://e1', startedAt: 1 }, 60_000)
  const e2 = await registry.openLease({ nodeId: 'e2', url: 'http://e2', startedAt: 2 }, 60_000)
  await registry.addConnections(e1, [{ userId: 'ann', connId: 'a1', since: 10 }, { userId: 'bob', connId: 'b1', since: 11 }])
  await registry.addConnections(e2, [{ userId: 'bob', connId: 'b2', since: 12 }, { userId: 'cy', connId: 'c1', since: 13 }])
  const edges = new FakeEdges({ 'http://e1': ['ann', 'bob'], 'http://e2': ['bob', 'cy'] })
  const prom = new PromRegistry()
  const metrics = createRouterMetrics(prom, () => 0)
  const inbox = options.inbox ?? new MemoryInbox({ maxLen: 10, ttlMs: 60_000 })
  const rooms = new MemoryRoomStore({ maxMembers: 1_000, maxRoomsPerUser: 10 })
  edges.index = { store: rooms, incIds: { 'http://e1': e1.incId, 'http://e2': e2.incId } }
  const api = createApi({
    registry: timedRegistry(registry, metrics.registrySeconds),
    edges,
    metrics,
    limits: createLimitChecks(limits),
    log: pino({ level: 'silent' }),
    inbox,
    keepByDefault: options.keepByDefault ?? false,
    rooms,
    roomLimits: options.roomLimits ?? { maxNameLength: 128, listMax: 100 },
    revocations: registry,
    tokenMaxLifetimeS: 3_600,
  })
  return { api, edges, registry, inbox, metrics, prom, rooms, e1, e2 }
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
  const spy: Inbox = { append: (u, f) => (calls.push([...u]), inbox.append(u, f)), read: (u, p) => inbox.read(u, p), heads: (u) => inbox.heads(u) }
  const { api, edges, metrics } = await setup(t, LIMITS, { inbox: spy, keepByDefault: true })
  t.same(((await api.push({ to: ['ann'], event: 'e' }, 'r')) as PushResponse).kept, [], 'kept by default; delivered, so nobody waits')
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
    heads: async (u) => u.map(() => undefined),
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

t.test('wait: routed answers once each edge took its frame: routed, offline and failed, never delivered', async (t) => {
  const { api, edges, metrics } = await setup(t)
  edges.silent.add('http://e1').add('http://e2') // no edge would ever answer a delivery call
  const answer = (await api.push({ to: ['ann', 'bob', 'cy', 'zed', 'ann'], event: 'e', id: 'r1', wait: 'routed' }, 'req-r')) as RoutedPushResponse
  t.same(answer, { id: 'r1', routed: ['ann', 'bob', 'cy'], offline: ['zed'], failed: [] }, 'answered although no edge answers')
  t.same(edges.calls.map((c) => [c.op, c.url, c.to]).sort(), [['route', 'http://e1', ['ann', 'bob']], ['route', 'http://e2', ['bob', 'cy']]], 'each edge handed its users, no delivery call')
  t.ok(edges.calls.every((c) => c.requestId === 'req-r'), 'the request id travels to the edges')
  const recipients = Object.fromEntries((await metrics.recipients.get()).values.map((v) => [v.labels.result, v.value]))
  t.same(recipients, { routed: 3, offline: 1 }, 'router_recipients_total{result="routed"}')
  t.equal((await metrics.routedPushes.get()).values[0]!.value, 1, 'router_pushes_routed_total')
  t.equal((await metrics.pushes.get()).values[0]!.value, 1, 'and router_pushes_total')
  t.same(await api.push({ to: ['zed'], event: 'e', id: 'r2', wait: 'written' }, 'r'), { id: 'r2', delivered: [], offline: ['zed'], failed: [] }, 'written: the default answer')
})

t.test('wait: routed with an edge whose link is down: its users are failed, routed elsewhere wins; the failure is counted', async (t) => {
  const { api, edges, prom } = await setup(t)
  edges.down.add('http://e2')
  t.same(await api.push({ to: ['ann', 'bob', 'cy'], event: 'e', id: 'r3', wait: 'routed' }, 'r'), { id: 'r3', routed: ['ann', 'bob'], offline: [], failed: ['cy'] })
  const linkDown = (await prom.getSingleMetric('router_forward_failures_total')!.get()).values.find((v) => v.labels.code === 'link_down')
  t.equal(linkDown?.value, 1, 'router_forward_failures_total{code="link_down"}')
})

t.test('a kept routed push is in every inbox first; kept lists offline and failed; positions reach the edges', async (t) => {
  const { api, edges, inbox } = await setup(t)
  edges.down.add('http://e2')
  const answer = await api.push({ to: ['ann', 'cy', 'zed'], event: 'e', id: 'kr', keep: true, wait: 'routed' }, 'r')
  t.same(answer, { id: 'kr', routed: ['ann'], offline: ['zed'], failed: ['cy'], kept: ['zed', 'cy'] })
  t.same(edges.calls.find((c) => c.url === 'http://e1')!.at!.map((p) => p.offset), [1], 'the edge gets ann\'s inbox position')
  for (const user of ['ann', 'cy', 'zed']) t.match(await inbox.read(user, { epoch: (await inbox.heads([user]))[0]!.epoch, offset: 0 }), { entries: [{ frame: /"id":"kr"/ }] }, `${user}'s inbox holds it`)
})

t.test('wait: a bad value, and routed on a room push, are refused with a clear message', async (t) => {
  const { api, edges } = await setup(t)
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e', wait: 'later' }, 'r')), /^invalid_request: wait: /)
  t.match(await codeOf(api.push({ room: 'r1', event: 'e', wait: 'routed' }, 'r')), /^invalid_request: wait: a room push waits for its edges' answers/)
  t.same(edges.calls, [], 'nothing sent')
  t.equal(await codeOf(api.push({ room: 'r1', event: 'e', wait: 'written' }, 'r')), 'ok', 'written, the default, is taken')
})

t.test('ack: the frame asks for a receipt, each edge waits for its users, and the answer splits written into acked and unacked', async (t) => {
  const { api, edges, metrics } = await setup(t)
  edges.acking.add('bob').add('cy') // their apps acknowledge; ann's never does
  edges.holds['http://e1'] = ['ann']
  const answer = (await api.push({ to: ['ann', 'bob', 'cy', 'zed'], event: 'e', id: 'a1', ack: { timeoutMs: 2_000 } }, 'req-a')) as AckedPushResponse
  t.same(answer, { id: 'a1', acked: ['bob', 'cy'], unacked: ['ann'], offline: ['zed'], failed: [] }, 'every recipient in one list, no delivered')
  t.same(edges.calls.map((c) => [c.op, c.url, c.to, c.timeoutMs]).sort(), [['deliver-acked', 'http://e1', ['ann', 'bob'], 2_000], ['deliver-acked', 'http://e2', ['bob', 'cy'], 2_000]], 'each edge gets its users and the timeout')
  t.ok(edges.calls.every((c) => c.requestId === 'req-a'), 'the request id travels to the edges')
  const recipients = Object.fromEntries((await metrics.recipients.get()).values.map((v) => [v.labels.result, v.value]))
  t.same(recipients, { acked: 2, unacked: 1, offline: 1 }, 'router_recipients_total by acked and unacked')
})

t.test('ack: a user acknowledged on one edge is settled without waiting for its other edge; the answer comes once every recipient is', async (t) => {
  const { api, edges } = await setup(t)
  edges.silent.add('http://e2') // bob's laptop's edge waits out a long timeout
  edges.acking.add('bob')
  const answer = await api.push({ to: ['ann', 'bob'], event: 'e', id: 'a3', ack: { timeoutMs: 30_000 } }, 'r')
  t.same(answer, { id: 'a3', acked: ['bob'], unacked: ['ann'], offline: [], failed: [] }, 'answered although e2 never did')
})

t.test('ack with an edge down: its users are failed unless acked elsewhere; a kept push lists offline and failed as kept', async (t) => {
  const { api, edges } = await setup(t)
  edges.down.add('http://e2')
  edges.acking.add('ann')
  const answer = await api.push({ to: ['ann', 'bob', 'cy', 'zed'], event: 'e', id: 'a2', keep: true, ack: { timeoutMs: 100 } }, 'r')
  t.same(answer, { id: 'a2', acked: ['ann'], unacked: ['bob'], offline: ['zed'], failed: ['cy'], kept: ['zed', 'cy'] }, 'bob was written on e1 and did not acknowledge')
  t.ok(edges.calls.find((c) => c.url === 'http://e1')!.at, 'positions travel with an acked kept push')
})

t.test('ack: bounds and combinations are refused with a clear message, before anything is sent', async (t) => {
  const { api, edges } = await setup(t)
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e', ack: { timeoutMs: 99 } }, 'r')), /^invalid_request: ack\.timeoutMs: /)
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e', ack: { timeoutMs: 30_001 } }, 'r')), /^invalid_request: ack\.timeoutMs: /)
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e', ack: true }, 'r')), /^invalid_request: ack: /)
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e', ack: { timeoutMs: 500, every: true } }, 'r')), /^invalid_request: ack: /)
  t.match(await codeOf(api.push({ to: ['ann'], event: 'e', ack: { timeoutMs: 500 }, wait: 'routed' }, 'r')), /^invalid_request: ack: a push with receipts waits for its edges' answers/)
  t.same(edges.calls, [], 'nothing sent')
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

// Rooms: e1 holds ann and bob, e2 holds bob and cy (setup); the fake edges keep local room members and write their index fields.

t.test('a room push calls only the edges holding members, and each writes to its own members', async (t) => {
  const { api, edges, metrics } = await setup(t)
  t.same(await api.rooms.add('standup', { userIds: ['ann', 'zed'] }, 'r1'), { room: 'standup', added: ['ann', 'zed'], refused: [], members: 2 })
  t.same(edges.calls.map((c) => [c.url, c.op, c.to]), [['http://e1', 'room-join', ['ann']]], 'only the edge holding ann hears of it; zed is offline')
  edges.calls.length = 0
  const answer = await api.push({ room: 'standup', event: 'e', data: 1, id: 'p1' }, 'r2')
  t.same(answer, { id: 'p1', room: 'standup', members: 2, reached: 1, edges: 1, failedEdges: 0, delivered: ['ann'], offline: ['zed'], failed: [] })
  t.same(edges.calls.map((c) => [c.url, c.op]), [['http://e1', 'room']], 'e2 holds no member: not called')
  t.equal((await metrics.roomEdgeCalls.get()).values[0]!.value, 1)
})

t.test('except leaves members out; a room that does not exist reaches no one and calls no edge', async (t) => {
  const { api, edges } = await setup(t)
  await api.rooms.add('team', { userIds: ['ann', 'bob', 'cy'] }, 'r')
  edges.calls.length = 0
  const answer = await api.push({ room: 'team', event: 'e', except: ['bob'] }, 'r')
  t.same({ ...answer, id: undefined }, { id: undefined, room: 'team', members: 3, reached: 2, edges: 2, failedEdges: 0, delivered: ['ann', 'cy'], offline: [], failed: [] })
  t.ok(edges.calls.every((c) => c.room?.except?.[0] === 'bob'), 'each edge skips the sender itself')
  edges.calls.length = 0
  t.same({ ...(await api.push({ room: 'nowhere', event: 'e', id: 'x' }, 'r')) }, { id: 'x', room: 'nowhere', members: 0, reached: 0, edges: 0, failedEdges: 0, delivered: [], offline: [], failed: [] })
  t.same(edges.calls, [])
})

t.test('past ROOM_PUSH_LIST_MAX the answer has counts only; a failed edge makes its members failed, not offline', async (t) => {
  const { api, edges } = await setup(t, LIMITS, { roomLimits: { maxNameLength: 128, listMax: 2 } })
  await api.rooms.add('big', { userIds: ['ann', 'bob', 'cy'] }, 'r')
  t.same(Object.keys(await api.push({ room: 'big', event: 'e' }, 'r')).sort(), ['edges', 'failedEdges', 'id', 'members', 'reached', 'room'])
  await api.rooms.add('pair', { userIds: ['ann', 'cy'] }, 'r')
  edges.down.add('http://e2')
  const answer = await api.push({ room: 'pair', event: 'e', id: 'p' }, 'r')
  t.same(answer, { id: 'p', room: 'pair', members: 2, reached: 1, edges: 2, failedEdges: 1, delivered: ['ann'], offline: [], failed: ['cy'] })
})

t.test('a room push with ack: acknowledged counts who acknowledged; a small room lists acked and unacked instead of delivered', async (t) => {
  const { api, edges } = await setup(t, LIMITS, { roomLimits: { maxNameLength: 128, listMax: 3 } })
  edges.acking.add('bob').add('cy')
  await api.rooms.add('team', { userIds: ['ann', 'bob', 'cy', 'zed'] }, 'r')
  const big = await api.push({ room: 'team', event: 'e', id: 'rb', ack: { timeoutMs: 1_000 } }, 'r')
  t.same(big, { id: 'rb', room: 'team', members: 4, reached: 4, acknowledged: 3, edges: 2, failedEdges: 0 }, 'counts per edge: bob, on both edges, counts twice in each')
  t.ok(edges.calls.filter((c) => c.op === 'room').every((c) => c.timeoutMs === 1_000 && c.room!.ack?.id === 'rb'), 'each edge gets the id and the timeout')
  await api.rooms.add('pair', { userIds: ['ann', 'cy', 'zed'] }, 'r')
  const small = await api.push({ room: 'pair', event: 'e', id: 'rs', ack: { timeoutMs: 1_000 } }, 'r')
  t.same(small, { id: 'rs', room: 'pair', members: 3, reached: 2, acknowledged: 1, edges: 2, failedEdges: 0, acked: ['cy'], unacked: ['ann'], offline: ['zed'], failed: [] })
  t.match(await codeOf(api.push({ room: 'pair', event: 'e', ack: { timeoutMs: 50 } }, 'r')), /^invalid_request: ack\.timeoutMs/)
})

t.test('a removed member is dropped by its edges before the call returns', async (t) => {
  const { api, edges } = await setup(t)
  await api.rooms.add('chat', { userIds: ['ann', 'bob'] }, 'r')
  t.same(await api.rooms.remove('chat', { userIds: ['bob', 'nobody'] }, 'r'), { room: 'chat', removed: ['bob'], members: 1 })
  t.same(edges.calls.filter((c) => c.op === 'room-leave').map((c) => c.url).sort(), ['http://e1', 'http://e2'], 'both edges holding bob')
  const answer = await api.push({ room: 'chat', event: 'e', id: 'p' }, 'r')
  t.same(answer, { id: 'p', room: 'chat', members: 1, reached: 1, edges: 1, failedEdges: 0, delivered: ['ann'], offline: [], failed: [] }, 'e2 left the index with bob')
})

t.test('a membership change an edge does not confirm is stored, and answered 503 edge_unavailable', async (t) => {
  const { api, edges } = await setup(t)
  edges.down.add('http://e2')
  t.match(await codeOf(api.rooms.add('r', { userIds: ['cy'] }, 'r')), /^edge_unavailable: the change is stored, but 1 of 1 edges/)
  t.same(await api.rooms.info('r'), { room: 'r', exists: true, members: 1 })
})

t.test('room names, members pages and delete', async (t) => {
  const { api, edges } = await setup(t, LIMITS, { roomLimits: { maxNameLength: 5, listMax: 100 } })
  t.equal(await codeOf(api.rooms.add('toolong', { userIds: ['ann'] }, 'r')), 'invalid_request: room: at most 5 characters')
  t.equal(await codeOf(api.push({ room: 'a\u0001', event: 'e' }, 'r')), 'invalid_request: room: must not contain control characters')
  t.equal(await codeOf(api.push({ room: 'a', to: ['ann'], event: 'e' }, 'r')), 'invalid_request: to: a push goes to users (to) or to a room (room), not both')
  t.equal(await codeOf(api.rooms.add('a', { userIds: [] }, 'r')), 'invalid_request: userIds: Too small: expected array to have >=1 items')
  await api.rooms.add('abc', { userIds: ['cy', 'ann', 'bob'] }, 'r')
  t.same(await api.rooms.members('abc', { limit: '2' }), { room: 'abc', userIds: ['ann', 'bob'], cursor: 'bob' })
  t.same(await api.rooms.members('abc', { cursor: 'bob', limit: '2' }), { room: 'abc', userIds: ['cy'] })
  edges.calls.length = 0
  t.same(await api.rooms.delete('abc', 'r'), { room: 'abc', removed: 3 })
  t.same(edges.calls.map((c) => [c.url, c.op, c.to]).sort(), [['http://e1', 'room-leave', undefined], ['http://e2', 'room-leave', undefined]], 'every edge in the index drops the room')
  t.same(await api.rooms.info('abc'), { room: 'abc', exists: false, members: 0 })
  t.same((await api.push({ room: 'abc', event: 'e', id: 'x' }, 'r')), { id: 'x', room: 'abc', members: 0, reached: 0, edges: 0, failedEdges: 0, delivered: [], offline: [], failed: [] })
})

t.test('a room push skips index fields of incarnations without a lease', async (t) => {
  const { api, edges, registry, rooms } = await setup(t)
  await api.rooms.add('m', { userIds: ['ann'] }, 'r')
  const gone = await registry.openLease({ nodeId: 'e9', url: 'http://e9', startedAt: 3 }, 60_000)
  await rooms.setEdgeRooms(gone.incId, [{ room: 'm', holds: true }])
  await registry.closeLease(gone)
  edges.calls.length = 0
  t.equal((await api.push({ room: 'm', event: 'e' }, 'r') as { edges: number }).edges, 1)
  t.same(edges.calls.map((c) => c.url), ['http://e1'])
})

t.test('a kept room push is in each member\'s inbox (but except) before any edge call; edges get the positions; kept lists who waits', async (t) => {
  const { api, edges, inbox } = await setup(t)
  await api.rooms.add('k', { userIds: ['ann', 'bob', 'zed'] }, 'r')
  edges.calls.length = 0
  const answer = await api.push({ room: 'k', event: 'e', id: 'kp', keep: true, except: ['bob'] }, 'r')
  t.same(answer, { id: 'kp', room: 'k', members: 3, reached: 1, edges: 2, failedEdges: 0, delivered: ['ann'], offline: ['zed'], failed: [], kept: ['zed'] }, 'e2 holds bob: called, and skips him')
  const at = edges.calls[0]!.room!.at!
  t.same(edges.calls[1]!.room!.at, at, 'every edge gets the positions')
  t.same(Object.keys(at).sort(), ['ann', 'zed'], 'positions of every member but except')
  t.match(await inbox.read('zed', { epoch: at.zed![0], offset: 0 }), { recovered: true, entries: [{ offset: 1, frame: /"id":"kp"/ }] })
  t.match(await inbox.read('bob', undefined), { head: { offset: 0 } }, 'not in the inbox of the member left out')
})

t.test('a room push can be kept for rooms of at most ROOM_PUSH_LIST_MAX members', async (t) => {
  const { api, edges } = await setup(t, LIMITS, { roomLimits: { maxNameLength: 128, listMax: 1 } })
  await api.rooms.add('big', { userIds: ['ann', 'bob'] }, 'r')
  edges.calls.length = 0
  t.equal(await codeOf(api.push({ room: 'big', event: 'e', keep: true }, 'r')), 'invalid_request: keep: a room push can be kept for rooms of at most 1 members (ROOM_PUSH_LIST_MAX); big has 2')
  t.same(edges.calls, [], 'sent nowhere')
})

t.test('room presence: who of the room is connected now, from the edges holding members; offline members of a small room', async (t) => {
  const { api, edges } = await setup(t)
  await api.rooms.add('p', { userIds: ['ann', 'bob', 'zed'] }, 'r')
  t.same(await api.rooms.presence('p', 'r'), { room: 'p', members: 3, online: 2, users: ['ann', 'bob'], offline: ['zed'] }, 'bob on two edges counts once')
  edges.down.add('http://e2')
  t.match(await codeOf(api.rooms.presence('p', 'r')), /^edge_unavailable: 1 of 2 edges holding members of p did not answer/)
})

t.test('clear removes every member and has every edge holding one drop the room; the room lives on', async (t) => {
  const { api, edges } = await setup(t)
  await api.rooms.add('c', { userIds: ['ann', 'cy'] }, 'r')
  edges.calls.length = 0
  t.same(await api.rooms.clear('c', 'r'), { room: 'c', removed: 2 })
  t.same(edges.calls.map((c) => [c.url, c.op, c.to]).sort(), [['http://e1', 'room-leave', undefined], ['http://e2', 'room-leave', undefined]])
  t.same(await api.rooms.info('c'), { room: 'c', exists: true, members: 0 })
  t.same(((await api.push({ room: 'c', event: 'e' }, 'r')) as { reached: number }).reached, 0)
})

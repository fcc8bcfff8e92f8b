// What the chaos tests share: a client as apps use it (the SDK, reconnecting by its own rules),
// and the invariants checked at quiescence, once every fault is over and every remaining client
// is connected again.
import type { Test } from 'tap'
import WebSocket from 'ws'
import { Switchboard, type Push, type StateChange, type SwitchboardOptions, type WebSocketFactory } from '@switchboard/client'
import { eventually, type Api } from './clients.js'
import type { WebhookReceiver } from './webhook-receiver.js'

/** A client as apps use it: the SDK (its reconnect rules: backoff with jitter, quickly after 1001, never after 45xx), e.g. behind a load balancer. */
export class ChaosClient {
  readonly sb: Switchboard
  welcome: { connId: string; nodeId: string } | undefined
  readonly received = new Set<string>()
  /** Every push handed to the app, in order. */
  readonly pushes: Push[] = []
  /** What happened to it (ms epoch): its states and the pushes handed over, for a failure's report. */
  readonly history: { at: number; state?: StateChange; push?: Push }[] = []
  hasQuit = false
  /** When the app closed it: frames still in flight then are not handed to the app. */
  quitAt: number | undefined

  constructor(
    readonly userId: string,
    url: string,
    token: string,
    options: Omit<SwitchboardOptions, 'url' | 'getToken' | 'WebSocket'> = {},
  ) {
    this.sb = new Switchboard({ ...options, url, getToken: () => token, WebSocket: WebSocket as unknown as WebSocketFactory })
    this.sb.on('state', (s) => {
      this.history.push({ at: Date.now(), state: s })
      this.welcome = s.state === 'connected' ? { connId: s.connId, nodeId: s.nodeId } : undefined
    })
    this.sb.on('push', (p) => {
      this.received.add(p.id)
      this.pushes.push(p)
      this.history.push({ at: Date.now(), push: p })
    })
  }

  get isOpen(): boolean {
    return this.welcome !== undefined
  }

  connect(): void {
    this.sb.connect()
  }

  quit(): void {
    this.hasQuit = true
    this.quitAt ??= Date.now()
    this.sb.close()
  }
}

/** A push answered 200: who it was reported delivered to, and when the answer came. */
export interface PushAnswer {
  id: string
  delivered: string[]
  answeredAt: number
}

export interface QuiescenceOptions {
  /** The router API to ask. */
  api: Api
  clients: readonly ChaosClient[]
  /** The node ids of the edges running now. */
  nodeIds: readonly string[]
  /** Every push answered 200 during the run. */
  answers: readonly PushAnswer[]
  /** Where the routers sent presence events. */
  receiver: WebhookReceiver
  /** How long presence, nodes and presence events may take to settle. */
  settleMs: number
  /** How long a frame written by an edge may take to reach its client. */
  inFlightMs: number
}

/**
 * The invariants at quiescence, each a tap assertion: presence of every user equals its open
 * sockets (none missing, no ghost), `/v1/nodes` lists the live edges with their sockets, every
 * push reported delivered was received, and the last presence event of every user equals its
 * presence. Each view is awaited up to its bound, then judged as it is. Resolves with the users
 * that failed a check, for the caller's report.
 */
export async function checkQuiescence(t: Test, q: QuiescenceOptions): Promise<Set<string>> {
  const concerned = new Set<string>()
  const { api, clients } = q
  const users = clients.map((c) => c.userId)
  const byUser = new Map(clients.map((c) => [c.userId, c]))
  const stayers = clients.filter((c) => !c.hasQuit)

  // The registry's view equals the truth: exactly the open sockets.
  const truth = (c: ChaosClient) => (c.isOpen ? [{ connId: c.welcome!.connId, nodeId: c.welcome!.nodeId }] : [])
  const mismatches = async () => {
    const wrong: string[] = []
    await Promise.all(
      clients.map(async (c) => {
        const res = await api.get(`/v1/presence/${c.userId}`)
        const seen = (res.body?.connections ?? []).map(({ connId, nodeId }: { connId: string; nodeId: string }) => ({ connId, nodeId }))
        if (JSON.stringify(seen) !== JSON.stringify(truth(c))) wrong.push(`${c.userId}: registry ${JSON.stringify(seen)}, truth ${JSON.stringify(truth(c))}`)
      }),
    )
    return wrong
  }
  const last = await eventually(async () => ((await mismatches()).length === 0 ? [] : undefined), { timeoutMs: q.settleMs }).catch(async () => mismatches())
  t.same(last, [], 'presence of every user equals its open sockets')
  for (const line of last) concerned.add(line.split(':')[0]!)

  // Awaited too: a client may still be resuming (its edge announced its inbox head after a resync).
  const expectedOnline = JSON.stringify(stayers.map((c) => c.userId).sort())
  const queryNow = () => api.post('/v1/presence/query', { userIds: users })
  const query = await eventually(async () => {
    const res = await queryNow()
    return JSON.stringify([...res.body.online].sort()) === expectedOnline ? res : undefined
  }, { timeoutMs: q.settleMs }).catch(() => queryNow())
  t.same([...query.body.online].sort(), stayers.map((c) => c.userId).sort(), 'online: exactly the connected users')
  t.same([...query.body.offline].sort(), clients.filter((c) => c.hasQuit).map((c) => c.userId).sort(), 'offline: exactly those who left')

  const expectedNodes = () => [...q.nodeIds].sort().map((nodeId) => ({ nodeId, connections: stayers.filter((c) => c.welcome?.nodeId === nodeId).length }))
  const nodesView = async () =>
    ((await api.get('/v1/nodes')).body.nodes as { nodeId: string; connections: number }[]).map(({ nodeId, connections }) => ({ nodeId, connections }))
  await eventually(async () => JSON.stringify(await nodesView()) === JSON.stringify(expectedNodes()), { timeoutMs: q.settleMs }).catch(() => undefined)
  t.same(await nodesView(), expectedNodes(), `/v1/nodes: the ${q.nodeIds.length} live edges with their open sockets`)

  // Delivered means received (frames may still be in flight for a moment). A client that quit
  // (close()) stops listening at once: a push written to its socket just before, still in
  // flight or not yet read when it quit, is not handed to the app. Those answered within a
  // second of its quit are not counted.
  const QUIT_MARGIN_MS = 1_000
  const expected = (a: PushAnswer, u: string) => {
    const quitAt = byUser.get(u)!.quitAt
    return quitAt === undefined || a.answeredAt < quitAt - QUIT_MARGIN_MS
  }
  const undelivered = () => q.answers.flatMap((a) => a.delivered.filter((u) => expected(a, u) && !byUser.get(u)!.received.has(a.id)).map((u) => `${a.id} -> ${u}`))
  await eventually(() => undelivered().length === 0, { timeoutMs: q.inFlightMs }).catch(() => undefined)
  t.same(undelivered(), [], 'every push reported delivered was received')
  for (const line of undelivered()) concerned.add(line.split(' -> ')[1]!)

  // Presence events: the last one of every user says what presence says.
  interface Event {
    userId: string
    type: string
    ver: number
    cause: string
  }
  const online = new Set(query.body.online as string[])
  const lastEvents = () => {
    const lastOf = new Map<string, Event>()
    for (const e of q.receiver.received.filter((b) => b.verified).flatMap((b) => b.events as Event[])) {
      if ((lastOf.get(e.userId)?.ver ?? 0) < e.ver) lastOf.set(e.userId, e)
    }
    return lastOf
  }
  const eventMismatches = () => {
    const lastOf = lastEvents()
    return users.filter((u) => (lastOf.get(u)?.type === 'user.online') !== online.has(u)).map((u) => `${u}: presence ${online.has(u) ? 'online' : 'offline'}, last event ${JSON.stringify(lastOf.get(u))}`)
  }
  await eventually(() => eventMismatches().length === 0, { timeoutMs: q.settleMs }).catch(() => undefined)
  t.same(eventMismatches(), [], 'the last presence event of every user equals its presence')
  for (const line of eventMismatches()) concerned.add(line.split(':')[0]!)
  return concerned
}

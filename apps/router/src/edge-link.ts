import WebSocket from 'ws'
import {
  LINK_PATH,
  type AckedDelivery,
  type AckedDeliveryResult,
  MAX_LINK_FRAME_BYTES,
  MAX_RECIPIENTS_PER_CALL,
  decodeLinkAnswer,
  encodeDelivery,
  encodeLinkCall,
  linkOps,
  type BroadcastResult,
  type DeliveryResult,
  type DisconnectResult,
  type InternalDisconnect,
  type InternalRoomJoin,
  type InternalRoomLeave,
  type InternalRoomMembers,
  type LinkOp,
  type LinkRequest,
  type LinkResult,
  type RoomDelivery,
  type RoomDeliveryResult,
  type RoomMembershipResult,
  type RoomMembersResult,
  type Position,
} from '@switchboard/protocol'
import { Circuits, EDGE_CIRCUIT } from './circuit.js'
import { EdgeCallError, type EdgeClient } from './edge-client.js'

export interface LinkEdgeClientOptions {
  internalToken: string
  /** Whole-call bound, connecting included: past it the call fails and the link is dropped. */
  timeoutMs: number
  /** How often an open link is pinged; a link that missed a whole period's pong is dropped. */
  pingEveryMs?: number
  /** A link with nothing in flight for this long is closed (edges come and go with deploys). */
  idleCloseMs?: number
}

/** A coalesced delivery call stops growing at this many bytes (the edge accepts MAX_LINK_FRAME_BYTES). */
const MAX_CALL_BYTES = 4 << 20

/**
 * A routed push is not queued on a link whose unsent backlog is past this (the edge is not
 * reading: stopped or overloaded); its recipients are `failed` (`backpressure`).
 */
export const MAX_LINK_BACKLOG_BYTES = MAX_LINK_FRAME_BYTES

/** One call on a link: sent (or waiting for the link to open) and not yet answered. */
interface Call {
  op: LinkOp
  requestIds: string
  payload: string
  /** ms epoch past which the call fails. */
  deadline: number
  isSent: boolean
  /** Its op's row says `isUnanswered`: settled (with undefined) once queued on the socket, and forgotten. */
  isUnanswered: boolean
  settle(body: unknown): void
  fail(err: unknown): void
}

/** A push waiting for this turn's delivery call to its edge (`T`: its answer, or void for a routed push). */
interface Delivery<T> {
  body: string
  recipients: number
  requestId: string
  resolve(result: T): void
  reject(err: unknown): void
}

/**
 * Router -> edge calls over one persistent websocket per edge (protocol: LINK_PATH in
 * @switchboard/protocol), instead of one HTTP request per call. Calls are pipelined and
 * answered by id; the pushes bound for one edge in one event-loop turn go as one
 * `deliveries` call, so a busy router writes one frame per edge per turn.
 *
 * What the HTTP client had is kept: every call is bounded by `timeoutMs` (connecting
 * included), an edge that keeps failing is skipped for a while (Circuits), request ids reach
 * the edge's log, and a lost link is reopened by the next call. A call that times out drops
 * its link, so a half-open connection turns every call on it into a failure within the
 * timeout and the next call reconnects; an edge restart closes the link and fails its calls
 * at once.
 */
export class LinkEdgeClient implements EdgeClient {
  readonly #links = new Map<string, Link>()
  readonly #circuits = new Circuits(EDGE_CIRCUIT)
  #isClosed = false

  constructor(private readonly options: LinkEdgeClientOptions) {}

  deliver(edgeUrl: string, frame: string, to: readonly string[], requestId = '-', at?: readonly Position[]): Promise<DeliveryResult> {
    return this.#link(edgeUrl).deliver(encodeDelivery(frame, to, at), to.length, requestId)
  }

  route(edgeUrl: string, frame: string, to: readonly string[], requestId = '-', at?: readonly Position[]): Promise<void> {
    return this.#link(edgeUrl).route(encodeDelivery(frame, to, at), to.length, requestId)
  }

  deliverAcked(edgeUrl: string, delivery: AckedDelivery, requestId = '-'): Promise<AckedDeliveryResult> {
    return this.#link(edgeUrl).call('delivery-acked', delivery, requestId, delivery.timeoutMs)
  }

  broadcast(edgeUrl: string, frame: string, requestId = '-'): Promise<BroadcastResult> {
    return this.#link(edgeUrl).call('broadcast', frame, requestId)
  }

  disconnect(edgeUrl: string, body: InternalDisconnect, requestId = '-'): Promise<DisconnectResult> {
    return this.#link(edgeUrl).call('disconnect', body, requestId)
  }

  room(edgeUrl: string, delivery: RoomDelivery, requestId = '-'): Promise<RoomDeliveryResult> {
    return this.#link(edgeUrl).call('room', delivery, requestId, delivery.ack?.timeoutMs ?? 0)
  }

  roomJoin(edgeUrl: string, body: InternalRoomJoin, requestId = '-'): Promise<RoomMembershipResult> {
    return this.#link(edgeUrl).call('room-join', body, requestId)
  }

  roomLeave(edgeUrl: string, body: InternalRoomLeave, requestId = '-'): Promise<RoomMembershipResult> {
    return this.#link(edgeUrl).call('room-leave', body, requestId)
  }

  roomMembers(edgeUrl: string, body: InternalRoomMembers, requestId = '-'): Promise<RoomMembersResult> {
    return this.#link(edgeUrl).call('room-members', body, requestId)
  }

  endWaits(): void {
    for (const link of this.#links.values()) link.endWaits(new EdgeCallError('closed', 'router shutting down: receipts no longer awaited'))
  }

  async close(): Promise<void> {
    this.#isClosed = true
    for (const link of this.#links.values()) link.close(new EdgeCallError('closed', 'router shutting down'))
    this.#links.clear()
  }

  #link(edgeUrl: string): Link {
    if (this.#isClosed) throw new EdgeCallError('closed', 'edge client closed')
    let link = this.#links.get(edgeUrl)
    if (!link) {
      link = new Link(edgeUrl, this.options, this.#circuits, () => this.#links.delete(edgeUrl))
      this.#links.set(edgeUrl, link)
    }
    return link
  }
}

/** The link to one edge: its socket (opened on demand), its calls in flight, this turn's deliveries. */
class Link {
  readonly #wsUrl: string
  readonly #headers: Record<string, string>
  #ws: WebSocket | undefined
  #isOpen = false
  /** In deadline order: every call has the same timeout, and Maps iterate in insertion order. */
  readonly #calls = new Map<number, Call>()
  /**
   * Calls the edge answers later than the timeout by design (a push's receipts, up to its
   * `timeoutMs`), each with its own deadline; the pinger fails those past it (a safety net: the
   * edge answers them by then, and a lost link fails them at once).
   */
  readonly #waits = new Map<number, Call>()
  #nextCallId = 1
  #deliveries: Delivery<DeliveryResult>[] = []
  /** This turn's routed pushes: one `deliveries-routed` call, which the edge does not answer. */
  #routed: Delivery<void>[] = []
  #timer: NodeJS.Timeout | undefined
  #pinger: NodeJS.Timeout | undefined
  #isPongDue = false
  #lastUsedMs = Date.now()

  constructor(
    private readonly edgeUrl: string,
    private readonly options: LinkEdgeClientOptions,
    private readonly circuits: Circuits,
    private readonly onIdle: () => void,
  ) {
    this.#wsUrl = `${edgeUrl.replace(/^http/, 'ws')}${LINK_PATH}`
    this.#headers = { authorization: `Bearer ${options.internalToken}` }
  }

  /** Joins this turn's delivery call to the edge; the call goes out once the turn's I/O is done. */
  deliver(body: string, recipients: number, requestId: string): Promise<DeliveryResult> {
    return new Promise((resolve, reject) => {
      this.#flushSoon()
      this.#deliveries.push({ body, recipients, requestId, resolve, reject })
    })
  }

  /** Joins this turn's routed call to the edge; settled once that call is queued on the socket. */
  route(body: string, recipients: number, requestId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#flushSoon()
      this.#routed.push({ body, recipients, requestId, resolve, reject })
    })
  }

  /**
   * One call of `op`: its request encoded and its answer checked by the op's row (protocol's
   * `linkOps`). `laterMs`: the edge answers up to this long after it got the call (receipts).
   */
  call<Op extends LinkOp>(op: Op, request: LinkRequest<Op>, requestIds: string, laterMs = 0): Promise<LinkResult<Op>> {
    const row = linkOps[op]
    return new Promise((resolve, reject) => {
      this.#start(op, requestIds, row.encode(request), (body) => {
        const parsed = row.answer.safeParse(body)
        if (parsed.success) resolve(parsed.data)
        else reject(new EdgeCallError('bad_answer', 'edge answered a malformed body'))
      }, reject, laterMs)
    })
  }

  /**
   * Ends the link for good (client closed, or idle): everything waiting or in flight fails. A
   * clean close (1000), so the edge can tell it from a link lost in a failure (1006), after
   * which it tells its resuming clients their inbox heads (kept pushes may have failed).
   */
  close(err: unknown): void {
    for (const d of this.#deliveries.splice(0)) d.reject(err)
    for (const d of this.#routed.splice(0)) d.reject(err)
    this.#teardown(err, 1000)
  }

  #flushSoon(): void {
    if (this.#deliveries.length === 0 && this.#routed.length === 0) setImmediate(() => this.#flushDeliveries())
  }

  /**
   * Sends what waits as `deliveries` and `deliveries-routed` calls, each within MAX_CALL_BYTES
   * and MAX_RECIPIENTS_PER_CALL.
   */
  #flushDeliveries(): void {
    const waiting = this.#deliveries
    const routed = this.#routed
    this.#deliveries = []
    this.#routed = []
    for (const { batch, payload, requestIds } of batches(waiting)) {
      const fail = (err: unknown) => batch.forEach((d) => d.reject(err))
      this.#start('deliveries', requestIds, payload, (body) => {
        const parsed = linkOps.deliveries.answer.safeParse(body)
        if (!parsed.success) return fail(new EdgeCallError('bad_answer', 'edge answered a malformed body'))
        const { results } = parsed.data
        if (results.length !== batch.length) return fail(new EdgeCallError('bad_answer', `edge answered ${results.length} results for ${batch.length} deliveries`))
        batch.forEach((d, k) => d.resolve(results[k]!))
      }, fail)
    }
    for (const { batch, payload, requestIds } of batches(routed)) {
      // Unanswered: settled once queued on the socket (now, or when the link opens within the timeout).
      this.#start('deliveries-routed', requestIds, payload, () => batch.forEach((d) => d.resolve()), (err) => batch.forEach((d) => d.reject(err)))
    }
  }

  /**
   * "Handed": the frame is queued on an open socket whose backlog is within MAX_LINK_BACKLOG_BYTES.
   * A link that takes frames is a working one for the circuit (no answer will ever say so).
   */
  #queueUnanswered(callId: number, op: LinkOp, requestIds: string, payload: string, done: () => void, fail: (err: unknown) => void): void {
    const ws = this.#ws!
    if (ws.readyState !== WebSocket.OPEN) return fail(new EdgeCallError('link_down', 'edge link closing'))
    if (ws.bufferedAmount > MAX_LINK_BACKLOG_BYTES) {
      this.circuits.failed(this.edgeUrl)
      return fail(new EdgeCallError('backpressure', `edge link backlog past ${MAX_LINK_BACKLOG_BYTES} bytes: the edge is not reading`))
    }
    ws.send(encodeLinkCall(callId, op, requestIds, payload), { binary: true })
    this.circuits.succeeded(this.edgeUrl)
    done()
  }

  /**
   * Starts a call: sent now if the link is open, else once it opens. An answered call waits in
   * `#calls` for its answer or its deadline; an unanswered one (its row's `isUnanswered`) only until it is
   * queued on the socket, so on an open link it leaves no entry and arms no timer.
   */
  #start(op: LinkOp, requestIds: string, payload: string, settle: (body: unknown) => void, fail: (err: unknown) => void, laterMs = 0): void {
    if (!this.circuits.allow(this.edgeUrl)) return fail(new EdgeCallError('circuit_open', 'edge skipped: it keeps failing'))
    this.#lastUsedMs = Date.now()
    const callId = this.#nextCallId++
    const call: Call = { op, requestIds, payload, deadline: this.#lastUsedMs + this.options.timeoutMs + laterMs, isSent: false, isUnanswered: linkOps[op].isUnanswered === true, settle, fail }
    // A late-answered call is not in #calls: its deadline is not in their order (the pinger
    // sweeps #waits; a link that does not open within the timeout is dropped with both).
    const calls = laterMs > 0 ? this.#waits : this.#calls
    calls.set(callId, call)
    if (this.#isOpen) this.#send(callId, call)
    else this.#connect()
    if (this.#calls.has(callId)) this.#timer ??= setTimeout(() => this.#expire(), this.options.timeoutMs)
  }

  #send(callId: number, call: Call): void {
    if (call.isUnanswered) {
      this.#calls.delete(callId)
      return this.#queueUnanswered(callId, call.op, call.requestIds, call.payload, () => call.settle(undefined), call.fail)
    }
    call.isSent = true
    this.#ws!.send(encodeLinkCall(callId, call.op, call.requestIds, call.payload), { binary: true })
  }

  #connect(): void {
    if (this.#ws) return // already connecting
    const ws = new WebSocket(this.#wsUrl, { headers: this.#headers, perMessageDeflate: false, maxPayload: MAX_LINK_FRAME_BYTES, handshakeTimeout: this.options.timeoutMs })
    this.#ws = ws
    ws.on('open', () => {
      if (this.#ws !== ws) return
      this.#isOpen = true
      for (const [callId, call] of this.#calls) if (!call.isSent) this.#send(callId, call)
      for (const [callId, call] of this.#waits) if (!call.isSent) this.#send(callId, call)
      this.#startPings(ws)
    })
    ws.on('message', (data: Buffer) => this.#answer(data))
    ws.on('pong', () => (this.#isPongDue = false))
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      this.#drop(ws, new EdgeCallError('refused', `edge refused the link: ${res.statusCode}`))
    })
    ws.on('error', (err) => this.#drop(ws, new EdgeCallError('link_down', `edge link failed: ${err.message}`, { cause: err })))
    ws.on('close', (code) => this.#drop(ws, new EdgeCallError('link_down', `edge link closed (${code})`)))
  }

  #answer(data: Buffer): void {
    const answer = decodeLinkAnswer(data.toString('utf8'))
    if (!answer) return this.#drop(this.#ws!, new EdgeCallError('bad_answer', 'edge sent a malformed answer'))
    const call = this.#calls.get(answer.callId) ?? this.#waits.get(answer.callId)
    if (!call) return // it timed out: already failed
    this.#calls.delete(answer.callId)
    this.#waits.delete(answer.callId)
    if (answer.status !== 200) {
      this.circuits.failed(this.edgeUrl)
      return call.fail(new EdgeCallError('edge_error', `edge answered ${answer.status}: ${answer.body.slice(0, 200)}`))
    }
    let body: unknown
    try {
      body = JSON.parse(answer.body)
    } catch {
      this.circuits.failed(this.edgeUrl)
      return call.fail(new EdgeCallError('bad_answer', 'edge answered a body that is not JSON'))
    }
    this.circuits.succeeded(this.edgeUrl)
    call.settle(body)
  }

  /** Fails the calls whose deadline passed; a sent one means the link is stuck, so it is dropped. */
  #expire(): void {
    this.#timer = undefined
    const now = Date.now()
    let isStuck = false
    for (const [callId, call] of this.#calls) {
      if (call.deadline > now) {
        this.#timer = setTimeout(() => this.#expire(), call.deadline - now)
        break
      }
      this.#calls.delete(callId)
      isStuck ||= call.isSent || this.#ws !== undefined
      call.fail(new EdgeCallError('timeout', `edge did not answer within ${this.options.timeoutMs} ms`))
    }
    if (!isStuck || !this.#ws) return
    // A link that stopped answering is a stopped or overloaded edge: skip it (circuit) rather
    // than let the next pushes wait out the timeout on a new connection too.
    this.circuits.trip(this.edgeUrl)
    this.#drop(this.#ws, new EdgeCallError('timeout', 'edge link timed out'))
  }

  /** Ends `ws` (if it is still this link's socket): its calls fail now, the next call reconnects. */
  #drop(ws: WebSocket, err: EdgeCallError): void {
    if (this.#ws !== ws) return
    this.circuits.failed(this.edgeUrl)
    this.#teardown(err)
  }

  /** Closes the socket (cleanly with `code`, else cut), stops its timers and fails every call on it; the next call reconnects. */
  #teardown(err: unknown, code?: number): void {
    clearInterval(this.#pinger)
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (code !== undefined && this.#ws?.readyState === WebSocket.OPEN) this.#ws.close(code)
    else this.#ws?.terminate()
    this.#ws = undefined
    this.#isOpen = false
    for (const call of this.#calls.values()) call.fail(err)
    for (const call of this.#waits.values()) call.fail(err)
    this.#calls.clear()
    this.#waits.clear()
  }

  /** Fails every late-answered call now (a stopping router); an answer arriving later is ignored. */
  endWaits(err: unknown): void {
    for (const call of this.#waits.values()) call.fail(err)
    this.#waits.clear()
  }

  /** Fails the late-answered calls past their deadline (the pinger's sweep). */
  #expireWaits(): void {
    const now = Date.now()
    for (const [callId, call] of this.#waits) {
      if (call.deadline > now) continue
      this.#waits.delete(callId)
      call.fail(new EdgeCallError('timeout', `edge did not answer a ${call.op} call by its deadline`))
    }
  }

  #startPings(ws: WebSocket): void {
    this.#isPongDue = false
    this.#pinger = setInterval(() => {
      if (this.#waits.size > 0) this.#expireWaits()
      if (this.#calls.size === 0 && this.#waits.size === 0 && Date.now() - this.#lastUsedMs > (this.options.idleCloseMs ?? 60_000)) {
        this.close(new EdgeCallError('closed', 'idle link closed'))
        this.onIdle()
        return
      }
      if (this.#isPongDue) return this.#drop(ws, new EdgeCallError('link_down', 'edge link missed a pong'))
      this.#isPongDue = true
      ws.ping()
    }, this.options.pingEveryMs ?? 5_000)
    this.#pinger.unref()
  }
}

/**
 * Pushes waiting for one edge, cut into calls of at most MAX_CALL_BYTES and
 * MAX_RECIPIENTS_PER_CALL. The payload is the row's encoding (deliveries joined by newlines),
 * built from each push's delivery encoded once, when it was queued, to bound the call's size.
 */
function* batches<T>(waiting: readonly Delivery<T>[]): Generator<{ batch: Delivery<T>[]; payload: string; requestIds: string }> {
  for (let i = 0; i < waiting.length; ) {
    let bytes = 0
    let recipients = 0
    let j = i
    while (j < waiting.length && (j === i || (bytes + waiting[j]!.body.length <= MAX_CALL_BYTES && recipients + waiting[j]!.recipients <= MAX_RECIPIENTS_PER_CALL))) {
      bytes += waiting[j]!.body.length + 1
      recipients += waiting[j]!.recipients
      j++
    }
    const batch = waiting.slice(i, j)
    i = j
    const payload = batch.length === 1 ? batch[0]!.body : batch.map((d) => d.body).join('\n')
    const requestIds = batch.length === 1 ? batch[0]!.requestId : batch.map((d) => d.requestId).join(',')
    yield { batch, payload, requestIds }
  }
}

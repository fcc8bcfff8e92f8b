import { Backoff, PIPELINE_PATH, PipelineClose, type BackoffPolicy, type PipelineAnswer } from '@switchboard/protocol'
import { SwitchboardApiError } from './errors.js'
import { Fifo } from './fifo.js'
import type { BackendLogger } from './logger.js'
import type { Answer, PendingRequest } from './pending-request.js'
import { PipelineSocket, UpgradeRefused } from './pipeline-socket.js'

/**
 * - `idle`: not opened yet (it opens at the first call, or at `connect()`)
 * - `connecting`: the first attempt is under way
 * - `connected`: calls go over the pipeline
 * - `disconnected`: lost or refused; a reconnect is scheduled, calls go over HTTP meanwhile
 * - `unsupported`: the router has no pipeline (404 at the upgrade): HTTP from then on
 * - `unauthorized`: the router refused the API key (401): calls reject with `unauthorized`
 * - `closed`: `close()` was called
 */
export type PipelineState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'unsupported' | 'unauthorized' | 'closed'

/** What the pipeline tells the client about the calls it carried. */
export interface PipelineHandler {
  answered(req: PendingRequest, answer: Answer): void
  /** Sent, and the connection ended before the answer: the router may have carried it out. */
  lost(req: PendingRequest, error: SwitchboardApiError): void
  /** Refused by the router (429) and not sent again before the connection ended: never carried out. */
  returned(req: PendingRequest): void
}

export interface PipelineOptions {
  /** The router's base URL (http or https, with an optional path prefix). */
  url: URL
  apiKey: string
  handshakeTimeoutMs: number
  pingIntervalMs: number
  /** Reconnects: full jitter under min(capMs, baseMs × 2^failures). */
  backoff: BackoffPolicy
  /** Requests whose frame is larger go over HTTP, where an oversized body gets a 413 instead of closing the socket. */
  maxFrameBytes: number
  /** The client's in-flight bound; more unanswered timed-out requests than twice this mean the router stopped answering. */
  maxInFlight: number
  log: BackendLogger
}

/** ms a connection must have lived for its loss to restart the backoff from the first step. */
const STABLE_MS = 5_000

/**
 * The pipelined-ingress connection, reopened after every loss with capped exponential
 * backoff and full jitter. It matches answers to calls by id and absorbs the router's 429s
 * (its own per-connection bound may be lower than the client's): a refused call was not
 * carried out, so it is parked and sent again as soon as an answer frees a place.
 */
export class Pipeline {
  readonly #options: PipelineOptions
  readonly #handler: PipelineHandler
  readonly #url: string
  #state: PipelineState = 'idle'
  #socket: PipelineSocket | undefined
  /** Sent on the current socket, unanswered, by request id. */
  readonly #sent = new Map<string, PendingRequest>()
  /** Ids of requests given up (timed out) whose answers may still come: not reusable until then. */
  readonly #abandoned = new Set<string>()
  /** Refused with 429, waiting for an answer to free a place at the router. */
  readonly #parked = new Fifo<PendingRequest>()
  readonly #backoff: Backoff
  #openedAt = 0
  #retryTimer: NodeJS.Timeout | undefined
  /** Aborts the attempt under way, if any. */
  #opening: AbortController | undefined
  #refusal: SwitchboardApiError | undefined
  #waiters: { resolve(): void; reject(err: SwitchboardApiError): void }[] = []

  constructor(options: PipelineOptions, handler: PipelineHandler) {
    this.#options = options
    this.#handler = handler
    this.#backoff = new Backoff(options.backoff)
    const url = new URL(options.url)
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    // The key travels in the authorization header only; nothing else of the URL is the pipeline's.
    url.username = url.password = url.search = url.hash = ''
    url.pathname = url.pathname.replace(/\/+$/, '') + PIPELINE_PATH
    this.#url = url.href
  }

  get state(): PipelineState {
    return this.#state
  }

  /** The error calls get while the router refuses the API key. */
  get refusal(): SwitchboardApiError | undefined {
    return this.#state === 'unauthorized' ? this.#refusal : undefined
  }

  /** Opens the pipeline if it never was; otherwise does nothing. */
  start(): void {
    if (this.#state === 'idle') this.#open()
  }

  /** Resolves once the pipeline is open, or known to be unsupported; rejects with the error of an attempt that failed. */
  connect(): Promise<void> {
    switch (this.#state) {
      case 'connected':
      case 'unsupported':
        return Promise.resolve()
      case 'unauthorized':
        return Promise.reject(this.#refusal)
      case 'closed':
        return Promise.reject(new SwitchboardApiError('closed', 'the client is closed'))
      default:
        this.start()
        return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
    }
  }

  /**
   * Sends `req` if the pipeline can carry it now. False means the caller sends it over HTTP:
   * not connected, its id is still in use on this connection, or its frame is too large.
   */
  trySend(req: PendingRequest): boolean {
    if (this.#state !== 'connected' || !this.#socket?.isOpen || this.#sent.has(req.id) || this.#abandoned.has(req.id)) return false
    const frame = req.frame()
    if (frame.length * 3 > this.#options.maxFrameBytes && Buffer.byteLength(frame) > this.#options.maxFrameBytes) return false
    this.#sent.set(req.id, req)
    req.stage = 'pipeline'
    this.#socket!.send(frame)
    return true
  }

  /** `req` settled without its answer (it timed out): its answer, if it comes, is dropped. */
  abandon(req: PendingRequest): void {
    if (this.#sent.get(req.id) !== req) return // parked ones are skipped when their turn comes
    this.#sent.delete(req.id)
    this.#abandoned.add(req.id)
    if (this.#abandoned.size > 2 * this.#options.maxInFlight) {
      this.#options.log.warn({ unanswered: this.#abandoned.size }, 'the router stopped answering the pipeline; reconnecting')
      this.#socket?.terminate()
    }
  }

  /** Ends the socket and any reconnect. Calls still on it are the client's to settle. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    clearTimeout(this.#retryTimer)
    this.#opening?.abort(new SwitchboardApiError('closed', 'the client is closed'))
    this.#settleWaiters(new SwitchboardApiError('closed', 'the client is closed'))
    this.#sent.clear()
    this.#parked.drain()
    await this.#socket?.close(1000, 'client closed')
  }

  #open(): void {
    if (this.#state === 'idle') this.#state = 'connecting'
    const { apiKey, handshakeTimeoutMs, pingIntervalMs } = this.#options
    const opening = (this.#opening = new AbortController())
    PipelineSocket.open(
      { url: this.#url, apiKey, handshakeTimeoutMs, pingIntervalMs },
      {
        answer: (answer) => this.#onAnswer(answer),
        malformed: (text) => this.#options.log.warn({ frame: text.slice(0, 200) }, 'the router sent a pipeline frame that is not an answer'),
        closed: (code, reason) => this.#onClosed(code, reason),
      },
      opening.signal,
    )
      .finally(() => {
        if (this.#opening === opening) this.#opening = undefined
      })
      .then(
        (socket) => this.#onOpen(socket),
        (err: Error) => this.#onFailed(err),
      )
  }

  #onOpen(socket: PipelineSocket): void {
    if (this.#state === 'closed') {
      void socket.close(1000, 'client closed')
      return
    }
    this.#socket = socket
    this.#state = 'connected'
    this.#openedAt = Date.now()
    this.#refusal = undefined
    this.#options.log.info({ url: this.#url }, 'pipeline connected')
    this.#settleWaiters()
  }

  #onFailed(err: Error): void {
    if (this.#state === 'closed') return
    const { log, backoff } = this.#options
    if (err instanceof UpgradeRefused && err.status === 404) {
      this.#state = 'unsupported'
      log.info({ url: this.#url }, 'the router has no pipelined ingress; using HTTP')
      this.#settleWaiters()
      return
    }
    if (err instanceof UpgradeRefused && err.status === 401) {
      // A configuration error: calls reject at once, and the key is tried again only rarely
      // (it may be added to the router's keys), never in a tight loop.
      this.#state = 'unauthorized'
      this.#refusal = new SwitchboardApiError('unauthorized', `the router refused the API key: ${err.error?.message ?? 'HTTP 401 at the pipeline upgrade'}`, { status: 401 })
      log.warn({ url: this.#url, retryInMs: backoff.capMs }, 'the router refused the API key')
      this.#settleWaiters(this.#refusal)
      this.#scheduleOpen(backoff.capMs)
      return
    }
    this.#state = 'disconnected'
    const delayMs = this.#backoff.next()
    log.warn({ url: this.#url, err: err.message, retryInMs: delayMs }, 'cannot open the pipeline; using HTTP meanwhile')
    this.#settleWaiters(new SwitchboardApiError('unavailable', `cannot open the pipeline: ${err.message}`, { cause: err, ...(err instanceof UpgradeRefused ? { status: err.status } : {}) }))
    this.#scheduleOpen(delayMs)
  }

  #onAnswer(answer: PipelineAnswer): void {
    if (answer.id === null) {
      // Only a frame the router could not read gets no id; this client sends none such.
      this.#options.log.warn({ status: answer.status, body: answer.body }, 'the router could not read a pipeline request')
      return
    }
    const req = this.#sent.get(answer.id)
    if (req === undefined) {
      this.#abandoned.delete(answer.id) // the late answer of a timed-out call
      this.#unparkOne()
      return
    }
    this.#sent.delete(answer.id)
    if (answer.status === 429 && isRateLimited(answer.body) && this.#sent.size + this.#abandoned.size > 0) {
      this.#parked.push(req)
      return
    }
    this.#handler.answered(req, answer)
    this.#unparkOne()
  }

  /** An answer freed a place at the router: the oldest parked call takes it. */
  #unparkOne(): void {
    for (let req = this.#parked.shift(); req; req = this.#parked.shift()) {
      if (req.isSettled) continue
      if (!this.trySend(req)) this.#handler.returned(req)
      return
    }
  }

  #onClosed(code: number, reason: string): void {
    this.#socket = undefined
    if (this.#state === 'closed') return
    this.#state = 'disconnected'
    const sent = [...this.#sent.values()]
    this.#sent.clear()
    this.#abandoned.clear()
    const parked = this.#parked.drain()
    if (Date.now() - this.#openedAt >= STABLE_MS) this.#backoff.reset()
    const delayMs = this.#backoff.next()
    const fields = { url: this.#url, code, reason, unanswered: sent.length, retryInMs: delayMs }
    if (code === 1001) this.#options.log.info(fields, 'the router is shutting down the pipeline; reconnecting')
    else if (code === PipelineClose.tooSlow) this.#options.log.warn(fields, 'the router closed the pipeline: answers were not read fast enough; reconnecting')
    else this.#options.log.warn(fields, 'pipeline lost; reconnecting')
    for (const req of parked) if (!req.isSettled) this.#handler.returned(req)
    for (const req of sent) {
      if (req.isSettled) continue
      const message = `the pipeline closed (${code}${reason ? ` ${reason}` : ''}) before the answer came; the router may have carried the request out`
      this.#handler.lost(req, new SwitchboardApiError('connection_lost', message, { requestId: req.id }))
    }
    this.#scheduleOpen(delayMs)
  }

  #scheduleOpen(delayMs: number): void {
    // Unref'ed: a pending reconnect alone does not keep the process alive.
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      if (this.#state !== 'closed') this.#open()
    }, delayMs).unref()
  }

  #settleWaiters(error?: SwitchboardApiError): void {
    for (const waiter of this.#waiters.splice(0)) {
      if (error) waiter.reject(error)
      else waiter.resolve()
    }
  }
}

function isRateLimited(body: unknown): boolean {
  return (body as { error?: { code?: unknown } } | null)?.error?.code === 'rate_limited'
}

import type { Socket } from 'node:net'
import type WebSocket from 'ws'
import type { PipelineAnswer } from '@switchboard/protocol'

export interface PipelineSocketOptions {
  /** `ws(s)://<router>/v1/pipeline` */
  url: string
  apiKey: string
  /** ms for the TCP connection and the upgrade together. */
  handshakeTimeoutMs: number
  /** ms between pings; a socket that heard nothing for two intervals is dropped. */
  pingIntervalMs: number
}

export interface PipelineSocketEvents {
  answer(answer: PipelineAnswer): void
  /** A frame that is not an answer: the router and this client disagree on the protocol. */
  malformed(text: string): void
  /** Once, when the open socket ends (not for a failed opening: `openPipelineSocket` rejects then). */
  closed(code: number, reason: string): void
}

/** The router refused the upgrade with an HTTP answer (401, 404, a proxy's 502...). */
export class UpgradeRefused extends Error {
  override readonly name = 'UpgradeRefused'
  constructor(
    readonly status: number,
    /** The router's error code and message, when the answer carried them. */
    readonly error: { code: string; message: string } | undefined,
  ) {
    super(`the router refused the pipeline upgrade with HTTP ${status}${error ? ` ${error.code}: ${error.message}` : ''}`)
  }
}

/** Bytes of a refusal's body read for its error message. */
const MAX_REFUSAL_BYTES = 4_096
/** ms given to the closing handshake before the socket is cut. */
const CLOSE_TIMEOUT_MS = 1_000

/**
 * One open pipelined-ingress websocket: frames out, answers in. Frames sent in one turn of
 * the event loop leave in one write (the TCP socket is corked until the turn ends), so a
 * burst of pushes costs one syscall and, often, one packet.
 *
 * The socket itself does not keep the process alive (it is unref'ed, as undici does with an
 * idle keep-alive socket); a call in progress does, through its timeout timer.
 */
export class PipelineSocket {
  readonly #ws: WebSocket
  readonly #tcp: Socket
  readonly #heartbeat: NodeJS.Timeout
  #isCorked = false
  #lastHeardAt = Date.now()
  #closed: Promise<void>

  private constructor(ws: WebSocket, tcp: Socket, options: PipelineSocketOptions, events: PipelineSocketEvents) {
    this.#ws = ws
    this.#tcp = tcp
    const heard = () => (this.#lastHeardAt = Date.now())
    ws.on('pong', heard)
    ws.on('message', (data: Buffer) => {
      heard()
      const text = data.toString('utf8')
      let answer: PipelineAnswer
      try {
        answer = JSON.parse(text) as PipelineAnswer
      } catch {
        return events.malformed(text)
      }
      if (answer === null || typeof answer !== 'object' || typeof answer.status !== 'number' || !(typeof answer.id === 'string' || answer.id === null)) {
        return events.malformed(text)
      }
      events.answer(answer)
    })
    // A silently dead TCP connection (a router host gone without a FIN) would otherwise hold
    // every call on it until its timeout.
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastHeardAt > 2 * options.pingIntervalMs) ws.terminate()
      else ws.ping()
    }, options.pingIntervalMs).unref()
    this.#closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        clearInterval(this.#heartbeat)
        events.closed(code, reason.toString('utf8'))
        resolve()
      }),
    )
  }

  /**
   * Opens the websocket; rejects with UpgradeRefused for an HTTP refusal, with the network
   * error, or with the abort reason once `signal` aborts (the half-open socket is cut).
   */
  static async open(options: PipelineSocketOptions, events: PipelineSocketEvents, signal: AbortSignal): Promise<PipelineSocket> {
    // Loaded at the first pipeline: an HTTP-only user (the CLI) does not pay for it at startup.
    const { default: WebSocketClass } = await import('ws')
    signal.throwIfAborted()
    const ws = new WebSocketClass(options.url, {
      headers: { authorization: `Bearer ${options.apiKey}` },
      handshakeTimeout: options.handshakeTimeoutMs,
      // Answers are small JSON on a fast network: compression would cost more CPU than it saves.
      perMessageDeflate: false,
      closeTimeout: CLOSE_TIMEOUT_MS,
    } as WebSocket.ClientOptions)
    let tcp: Socket | undefined
    ws.once('upgrade', (res) => {
      tcp = res.socket as Socket
      tcp.unref()
    })
    return new Promise<PipelineSocket>((resolve, reject) => {
      const onAbort = () => {
        ws.terminate()
        reject(signal.reason)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      const onError = (err: Error) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      }
      ws.on('error', onError)
      ws.once('unexpected-response', (req, res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_REFUSAL_BYTES) chunks.push(chunk)
          size += chunk.length
        })
        const refuse = () => {
          signal.removeEventListener('abort', onAbort)
          reject(new UpgradeRefused(res.statusCode ?? 0, refusalError(Buffer.concat(chunks).toString('utf8'))))
          req.destroy()
        }
        res.once('end', refuse)
        res.once('error', refuse)
      })
      ws.once('open', () => {
        signal.removeEventListener('abort', onAbort)
        ws.off('error', onError)
        // After the open, a socket error is followed by 'close', which is what counts.
        ws.on('error', () => undefined)
        resolve(new PipelineSocket(ws, tcp!, options, events))
      })
    })
  }

  /** False from the moment either side starts closing: a frame sent then would be lost unsent. */
  get isOpen(): boolean {
    return this.#ws.readyState === this.#ws.OPEN
  }

  /** Queues one text frame; it leaves when the current event-loop turn ends. */
  send(frame: string): void {
    if (!this.#isCorked) {
      this.#isCorked = true
      this.#tcp.cork()
      setImmediate(this.#uncork)
    }
    this.#ws.send(frame)
  }

  readonly #uncork = () => {
    this.#isCorked = false
    this.#tcp.uncork()
  }

  /** Closes with a handshake (cut after CLOSE_TIMEOUT_MS) and resolves once the socket is gone. */
  close(code = 1000, reason = ''): Promise<void> {
    this.#ws.close(code, reason)
    return this.#closed
  }

  /** Cuts the socket at once. */
  terminate(): void {
    this.#ws.terminate()
  }
}

function refusalError(text: string): { code: string; message: string } | undefined {
  try {
    const error = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error
    if (typeof error?.code === 'string') return { code: error.code, message: typeof error.message === 'string' ? error.message : error.code }
  } catch {
    // Not the router's JSON (a proxy's page, say): the status alone is reported.
  }
  return undefined
}

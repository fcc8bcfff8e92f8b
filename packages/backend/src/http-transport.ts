import { Pool } from 'undici'
import { SwitchboardApiError } from './errors.js'
import { httpCallOf, type Operation } from './operations.js'
import type { Answer } from './pending-request.js'

export interface HttpTransportOptions {
  /** The router's base URL (http or https, with an optional path prefix). */
  url: URL
  apiKey: string
  /** Keep-alive connections to the router. */
  connections: number
  /** ms to establish one connection. */
  connectTimeoutMs: number
}

/** Errors raised before a request could be written: nothing reached the router. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT'])

/**
 * The router's HTTP API over one keep-alive pool. It answers with the status and parsed
 * body whatever the status; only a failed exchange or a body that is not JSON rejects.
 */
export class HttpTransport {
  readonly #pool: Pool
  readonly #basePath: string
  readonly #authorization: string

  constructor(options: HttpTransportOptions) {
    this.#pool = new Pool(options.url.origin, {
      connections: options.connections,
      connectTimeout: options.connectTimeoutMs,
      // Below the router's keep-alive timeout, so a request never goes out on a socket the
      // router is closing (a write lost that way could not be told apart from one delivered).
      keepAliveTimeout: 4_000,
    })
    this.#basePath = options.url.pathname.replace(/\/+$/, '')
    this.#authorization = `Bearer ${options.apiKey}`
  }

  async send(operation: Operation, requestId: string, signal: AbortSignal): Promise<Answer> {
    const call = httpCallOf(operation)
    const headers: Record<string, string> = { authorization: this.#authorization, 'x-request-id': requestId }
    if (call.body !== undefined) headers['content-type'] = 'application/json'
    if (operation.idempotencyKey !== undefined) headers['idempotency-key'] = operation.idempotencyKey
    let status: number
    let text: string
    try {
      const res = await this.#pool.request({ method: call.method, path: this.#basePath + call.path, headers, body: call.body, signal })
      status = res.statusCode
      text = await res.body.text()
    } catch (err) {
      const code = (err as { code?: string }).code ?? ''
      const isNotSent = NOT_SENT.has(code)
      throw new SwitchboardApiError(
        isNotSent ? 'unavailable' : 'connection_lost',
        `${isNotSent ? 'cannot reach the router' : 'the connection to the router failed'}: ${(err as Error).message}`,
        { requestId, cause: err },
      )
    }
    try {
      return { status, body: JSON.parse(text) as unknown }
    } catch {
      throw new SwitchboardApiError('bad_answer', `the router answered ${status} with a body that is not JSON: ${text.slice(0, 200)}`, { status, requestId })
    }
  }

  /** Ends every connection at once; calls still in progress reject. */
  close(): Promise<void> {
    return this.#pool.destroy()
  }
}

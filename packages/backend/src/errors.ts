import type { ErrorCode } from '@switchboard/protocol'

/**
 * Codes the client gives itself, next to the router's own (`ErrorCode`: `invalid_request`,
 * `unauthorized`, `payload_too_large`, `rate_limited`, `registry_unavailable`, ...), each
 * with what it means. What matters for a retry is whether the request may have been carried out.
 */
export const clientErrorCodes = {
  timeout: 'no answer within the call\'s timeoutMs; a write may still have been carried out',
  connection_lost: 'the connection ended after the request was sent; a write may have been carried out, so it is never resent (reads are retried once over HTTP first)',
  unavailable: 'the router could not be reached and nothing was sent: a retry is safe',
  closed: 'close() was called before the answer came',
  bad_answer: 'the router\'s answer was not the API\'s JSON (a proxy\'s error page, say)',
  invalid_argument: 'a bad argument or option, caught before anything was sent',
} as const satisfies Record<string, string>
export type ClientErrorCode = keyof typeof clientErrorCodes

/** The router's codes, the client's, and (for routers newer than this client) any other string. */
export type BackendErrorCode = ErrorCode | ClientErrorCode | (string & {})

export interface SwitchboardApiErrorOptions extends ErrorOptions {
  /** HTTP status of the router's answer, when there was one. */
  status?: number
  requestId?: string
}

/**
 * The one error every call rejects with. `code` is stable (branch on it, not on the
 * message); `status` is the router's HTTP status when it answered.
 */
export class SwitchboardApiError extends Error {
  override readonly name = 'SwitchboardApiError'
  readonly code: BackendErrorCode
  readonly status: number | undefined
  /** The request id of the call (X-Request-Id, or the pipeline's `id`): find it in the router's logs. */
  readonly requestId: string | undefined

  constructor(code: BackendErrorCode, message: string, options: SwitchboardApiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = options.status
    this.requestId = options.requestId
  }
}

/** The API error of a non-2xx answer: the router's `{"error":{"code","message"}}`. */
export function errorOfAnswer(status: number, body: unknown, requestId: string): SwitchboardApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error
  if (typeof error?.code === 'string') {
    return new SwitchboardApiError(error.code, typeof error.message === 'string' ? error.message : error.code, { status, requestId })
  }
  return new SwitchboardApiError('bad_answer', `the router answered ${status} without an error code: ${JSON.stringify(body).slice(0, 200)}`, { status, requestId })
}

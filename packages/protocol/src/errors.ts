import { CloseReasons, type CloseReason } from '@switchboard/wire'

export { CloseCode, CloseReasons, closeReasonOf, shouldReconnect, type CloseReason, type CloseThen } from '@switchboard/wire'

/** The close rows of the catalogue, from the wire's table of endings: one per ending, by its name. */
type CloseErrors = { readonly [R in CloseReason]: { readonly close: (typeof CloseReasons)[R]['code'] } }
const closeErrors = Object.fromEntries(Object.entries(CloseReasons).map(([reason, r]) => [reason, { close: r.code }])) as CloseErrors

/**
 * One table: each stable error code, the HTTP status the router answers with, and the
 * websocket close code an edge uses for it (from CloseReasons; `rate_limited` is both: 429 from
 * the router, 4009 from an edge). Close 4000-4499: the client reconnects with
 * backoff and jitter; 4500-4999: it must not reconnect.
 */
export const errorTable = {
  ...closeErrors,
  invalid_request: { http: 400 },
  unauthorized: { http: 401 },
  forbidden: { http: 403 },
  // The admin web: a POST without the CSRF token of a live session (its session expired or
  // its router restarted); the page takes a fresh token and retries, a wrong password is 401.
  csrf_invalid: { http: 403 },
  not_found: { http: 404 },
  idempotency_in_flight: { http: 409 },
  cursor_expired: { http: 410 },
  idempotency_mismatch: { http: 422 },
  payload_too_large: { http: 413 },
  rate_limited: { http: 429, close: CloseReasons.rate_limited.code },
  internal: { http: 500 },
  registry_unavailable: { http: 503 },
  edge_unavailable: { http: 503 },
  not_ready: { http: 503 },
} as const satisfies Record<string, { http?: number; close?: number }>

export type ErrorCode = keyof typeof errorTable

export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError'
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string }
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } }
}

/** HTTP status for a code; codes without one (close-only) map to 500. */
export function httpStatus(code: ErrorCode): number {
  const entry = errorTable[code]
  return 'http' in entry ? entry.http : 500
}

/**
 * One table: each stable error code, the HTTP status the router answers with, and the
 * websocket close code an edge uses for it. Close 4000-4499: the client reconnects with
 * backoff and jitter; 4500-4999: it must not reconnect.
 */
export const errorTable = {
  invalid_request: { http: 400 },
  unauthorized: { http: 401 },
  forbidden: { http: 403 },
  not_found: { http: 404 },
  cursor_expired: { http: 410 },
  payload_too_large: { http: 413 },
  rate_limited: { http: 429 },
  internal: { http: 500 },
  registry_unavailable: { http: 503 },
  not_ready: { http: 503 },
  going_away: { close: 1001 },
  protocol_violation: { close: 1008 },
  message_too_big: { close: 1009 },
  too_slow: { close: 4008 },
  kicked: { close: 4500 },
  replaced: { close: 4501 },
  too_many_connections: { close: 4502 },
} as const satisfies Record<string, { http?: number; close?: number }>

export type ErrorCode = keyof typeof errorTable

/** Close codes an edge sends, by meaning. */
export const CloseCode = {
  draining: errorTable.going_away.close,
  protocolViolation: errorTable.protocol_violation.close,
  messageTooBig: errorTable.message_too_big.close,
  tooSlow: errorTable.too_slow.close,
  kicked: errorTable.kicked.close,
  replaced: errorTable.replaced.close,
  tooManyConnections: errorTable.too_many_connections.close,
} as const

/** 4000-4499 and 1001: reconnect after a random delay; 4500-4999: do not reconnect. */
export function shouldReconnect(closeCode: number): boolean {
  return !(closeCode >= 4500 && closeCode <= 4999)
}

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

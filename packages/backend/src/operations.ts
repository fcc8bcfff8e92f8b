import { OPERATIONS, fillPath, pathParamsOf, type PipelineOp } from '@switchboard/protocol'

/** One API call as both transports carry it. `body` is the pipeline's (`presence`: `{userId}`). */
export interface Operation {
  op: PipelineOp
  body?: unknown
  /** `body` serialized, when the caller has it already. */
  bodyJson?: string | undefined
  /** push and broadcast: the Idempotency-Key that makes a resend safe. */
  idempotencyKey?: string | undefined
}

/**
 * Reads change nothing on the router, so one that was lost with its connection can be sent
 * again. Writes are never resent: the router may already have delivered them.
 */
export function isRead(op: PipelineOp): boolean {
  return OPERATIONS[op].isRead
}

/** Whether the op takes an Idempotency-Key (push and broadcast). */
export function isIdempotent(op: PipelineOp): boolean {
  return OPERATIONS[op].isIdempotent
}

export interface HttpCall {
  method: 'GET' | 'POST' | 'DELETE'
  /** Path under the router's base URL, parameters percent-encoded (a query op's other body fields as its query). */
  path: string
  /** JSON text; undefined for GET and DELETE. */
  body: string | undefined
}

/**
 * The HTTP call that has the operation's semantics, from the protocol's table: the path's
 * parameters (`:userId`, `:room`) come from the body's fields of the same names, and the
 * other fields are the HTTP body of a POST, or the query of an op that takes one.
 */
export function httpCallOf({ op, body, bodyJson }: Operation): HttpCall {
  const { method, path: template, input } = OPERATIONS[op]
  const names = pathParamsOf(template)
  if (names.length === 0) return { method, path: template, body: method === 'POST' ? (bodyJson ?? JSON.stringify(body ?? {})) : undefined }
  const rest: Record<string, unknown> = { ...(body as Record<string, unknown> | undefined) }
  for (const name of names) delete rest[name]
  const path = fillPath(template, (body ?? {}) as Record<string, unknown>)
  if (method === 'POST') return { method, path, body: JSON.stringify(rest) }
  if (input !== 'query') return { method, path, body: undefined }
  const query = new URLSearchParams(Object.entries(rest).map(([k, v]): [string, string] => [k, String(v)])).toString()
  return { method, path: query ? `${path}?${query}` : path, body: undefined }
}

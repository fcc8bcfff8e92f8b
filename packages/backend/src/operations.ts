import { PIPELINE_OPS, type PipelineOp } from '@switchboard/protocol'

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
const READS: ReadonlySet<PipelineOp> = new Set(['presence', 'presence.query', 'nodes', 'room.members', 'room.info', 'room.presence'])

export function isRead(op: PipelineOp): boolean {
  return READS.has(op)
}

export interface HttpCall {
  method: 'GET' | 'POST' | 'DELETE'
  /** Path under the router's base URL, parameters percent-encoded (a GET's other body fields as its query). */
  path: string
  /** JSON text; undefined for GET and DELETE. */
  body: string | undefined
}

/**
 * The HTTP call that has the operation's semantics, taken from the protocol's own table: the
 * path's `:userId` or `:room` comes from the body, and a room op's other fields are the HTTP
 * body (or a GET's query).
 */
export function httpCallOf({ op, body, bodyJson }: Operation): HttpCall {
  const [method, template] = PIPELINE_OPS[op].split(' ') as ['GET' | 'POST' | 'DELETE', string]
  const fields = (body ?? {}) as Record<string, unknown>
  if (!template.includes(':room')) {
    const path = template.replace(':userId', () => encodeURIComponent(String(fields.userId ?? '')))
    return { method, path, body: method === 'GET' ? undefined : (bodyJson ?? JSON.stringify(body ?? {})) }
  }
  const { room, ...rest } = fields
  const path = template.replace(':room', () => encodeURIComponent(String(room ?? '')))
  if (method === 'POST') return { method, path, body: JSON.stringify(rest) }
  const query = new URLSearchParams(Object.entries(rest).map(([k, v]): [string, string] => [k, String(v)])).toString()
  return { method, path: query ? `${path}?${query}` : path, body: undefined }
}

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
const READS: ReadonlySet<PipelineOp> = new Set(['presence', 'presence.query', 'nodes'])

export function isRead(op: PipelineOp): boolean {
  return READS.has(op)
}

export interface HttpCall {
  method: 'GET' | 'POST'
  /** Path under the router's base URL, parameters percent-encoded. */
  path: string
  /** JSON text; undefined for GET. */
  body: string | undefined
}

/** The HTTP call that has the operation's semantics, taken from the protocol's own table. */
export function httpCallOf({ op, body, bodyJson }: Operation): HttpCall {
  const [method, template] = PIPELINE_OPS[op].split(' ') as ['GET' | 'POST', string]
  const path = template.replace(':userId', () => encodeURIComponent(String((body as { userId?: unknown } | undefined)?.userId ?? '')))
  return { method, path, body: method === 'GET' ? undefined : (bodyJson ?? JSON.stringify(body ?? {})) }
}

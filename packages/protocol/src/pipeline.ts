import type { OperationName } from './operations.js'

/**
 * The pipelined ingress: one websocket from a busy backend to a router, on the router's
 * port, carrying many API requests without waiting for answers. Each request gets exactly
 * one answer, with the HTTP API's status, body, limits and error messages; answers may come
 * back in any order and are matched by `id`.
 *
 * Upgrade: `GET ws://<router>/v1/pipeline` with `authorization: Bearer <API key>` (or, for
 * clients that cannot set headers, the subprotocol `bearer.<API key>` next to
 * `switchboard.pipeline.v1`). A missing or unknown key is refused with 401 before the upgrade.
 *
 * Request (a text frame, JSON):  {"id":"r1","op":"push","body":{"to":["u1"],"event":"e","data":1}}
 * Answer (a text frame, JSON):   {"id":"r1","status":200,"body":{"id":"…","delivered":["u1"],"offline":[],"failed":[]}}
 *
 * `id` is the request id (1 to 128 of `A-Za-z0-9_.:@/+=-`): it is the answer's key and
 * plays X-Request-Id's part in the logs. `op` names a row of OPERATIONS (operations.ts), and
 * `body` is its HTTP call's body, with the path's parameters as fields of the same names
 * (`presence` takes `{"userId":"u1"}`, `nodes` none; the room ops take the path's room in
 * `"room"`, and `room.members` its query's `cursor` and `limit`). A frame the router cannot read as a request is answered
 * with `"id":null` and a 400 (or with its id, when it had a valid one).
 *
 * The idempotent ops (`push` and `broadcast`) take an optional `"idempotencyKey"` (the Idempotency-Key header's
 * part, scoped by the connection's API key); an answer replayed for it has `"replayed":true`.
 */
import { CloseReasons } from '@switchboard/wire'
export const PIPELINE_PATH = '/v1/pipeline'
export const PIPELINE_PROTOCOL = 'switchboard.pipeline.v1'

/** The pipeline's `op`: an operation's name in the one table (operations.ts). */
export type PipelineOp = OperationName

export interface PipelineRequest {
  id: string
  op: PipelineOp
  body?: unknown
  idempotencyKey?: string
}

export interface PipelineAnswer<B = unknown> {
  id: string | null
  status: number
  body: B
  /** The answer of an earlier request with the same idempotencyKey. */
  replayed?: true
}

/** Request ids, on both ingresses: short, and safe in logs and in a comma-separated header. */
export const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/

/** Close codes of the pipelined ingress, beyond the websocket ones (1001 router shutting down, 1009 frame too big). */
export const PipelineClose = {
  /** The backend does not read its answers: past the router's bound of unsent bytes. */
  tooSlow: CloseReasons.too_slow.code,
} as const

import { OPERATIONS, SwitchboardError, pathParamsOf, type OperationName } from '@switchboard/protocol'
import type { Api } from './api.js'
import type { Idempotent } from './idempotency.js'
import { parseJsonBody } from './json-body.js'

/**
 * An operation's input as an ingress hands it over: the path's parameters and the rest (the
 * HTTP body or query; the pipeline body's other fields). `params` is undefined for a pipeline
 * body that is not an object, which is passed on whole as `body`.
 */
export interface OperationCall {
  params: Readonly<Record<string, unknown>> | undefined
  body: unknown
}

type Handler = (api: Api, call: OperationCall, requestId: string) => Promise<unknown>

/** Each operation of the protocol's table (OPERATIONS) and the `Api` method that runs it, for both ingresses. */
export const HANDLERS: { readonly [op in OperationName]: Handler } = {
  push: (api, { body }, requestId) => api.push(body, requestId),
  broadcast: (api, { body }, requestId) => api.broadcast(body, requestId),
  presence: (api, call) => api.presence(withParams(call)),
  'presence.query': (api, { body }) => api.presenceQuery(body),
  disconnect: (api, { body }, requestId) => api.disconnect(body, requestId),
  'user.revoke': (api, call, requestId) => api.revoke(withParams(call), requestId),
  nodes: (api) => api.nodes(),
  'room.add': (api, call, requestId) => api.rooms.add(roomOf(call), call.body, requestId),
  'room.remove': (api, call, requestId) => api.rooms.remove(roomOf(call), call.body, requestId),
  'room.members': (api, call) => api.rooms.members(roomOf(call), call.body),
  'room.info': (api, call) => api.rooms.info(roomOf(call)),
  'room.presence': (api, call, requestId) => api.rooms.presence(roomOf(call), requestId),
  'room.clear': (api, call, requestId) => api.rooms.clear(roomOf(call), requestId),
  'room.delete': (api, call, requestId) => api.rooms.delete(roomOf(call), requestId),
}

const NO_PARAMS: Readonly<Record<string, unknown>> = Object.freeze({})
const PARAMS = Object.fromEntries(Object.entries(OPERATIONS).map(([op, row]) => [op, pathParamsOf(row.path)])) as Record<OperationName, string[]>

/** A pipeline body as an operation's input: the fields named like the path's parameters are its params. */
export function pipelineCall(op: OperationName, body: unknown): OperationCall {
  const names = PARAMS[op]
  if (names.length === 0) return { params: NO_PARAMS, body }
  if (!isObject(body)) return { params: undefined, body }
  const params: Record<string, unknown> = {}
  const rest = { ...body }
  for (const name of names) {
    if (!Object.hasOwn(rest, name)) continue
    params[name] = rest[name]
    delete rest[name]
  }
  return { params, body: rest }
}

/** An HTTP request as an operation's input: the path's parameters, and what the row's `input` says the request carries. */
export function httpCall(op: OperationName, params: Readonly<Record<string, string>>, body: Buffer | undefined, query: string): OperationCall {
  switch (OPERATIONS[op].input) {
    case 'body':
      return { params, body: parseJsonBody(body) }
    case 'optional-body':
      return { params, body: body === undefined || body.length === 0 ? undefined : parseJsonBody(body) }
    case 'query':
      return { params, body: Object.fromEntries(new URLSearchParams(query)) }
    case 'none':
      return { params, body: undefined }
  }
}

/**
 * Runs one operation. An idempotent one (push, broadcast) given a key runs once per (scope,
 * key): a repeat gets the first answer, `replayed`. Other operations ignore the key.
 */
export async function runOperation(
  deps: { api: Api; idempotent: Idempotent },
  op: OperationName,
  call: OperationCall,
  requestId: string,
  idempotency: { scope: string; key: string } | undefined,
): Promise<{ value: unknown; replayed: boolean }> {
  const run = () => HANDLERS[op](deps.api, call, requestId)
  if (idempotency === undefined || !OPERATIONS[op].isIdempotent) return { value: await run(), replayed: false }
  return deps.idempotent(idempotency.scope, idempotency.key, op, call.body, run)
}

/** For the Api methods that read the path's parameters as fields of their input (presence, revoke). */
function withParams({ params, body }: OperationCall): unknown {
  if (params === undefined) return body
  if (body === undefined) return params
  return isObject(body) ? { ...body, ...params } : body
}

function roomOf({ params }: OperationCall): unknown {
  if (params === undefined) throw new SwitchboardError('invalid_request', 'body: must be a JSON object with "room"')
  return params.room
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// One operation table (OPERATIONS): HTTP routing, the pipeline's dispatch, the backend
// client's HTTP fallback and the README's API tables all follow from it, so an operation is
// declared once. This walks the table through each of them.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { z } from 'zod'
import { OPERATIONS, OPERATION_NAMES, SwitchboardError, fillPath, pathParamsOf, type OperationName } from '@switchboard/protocol'
import type { Api } from '@switchboard/router'
import { routeOf } from '../../apps/router/src/http-routes.js'
import { httpCall, pipelineCall, runOperation, type OperationCall } from '../../apps/router/src/operations.js'
import { httpCallOf, isRead } from '../../packages/backend/src/operations.js'

/** A pipeline body for each operation (path parameters as fields); awkward names, so encoding shows. */
const SAMPLES: Record<OperationName, unknown> = {
  push: { to: ['ann'], event: 'e', data: { n: 1 } },
  broadcast: { event: 'e', data: 1 },
  presence: { userId: 'ann/é 1' },
  'presence.query': { userIds: ['ann', 'bob'] },
  disconnect: { userId: 'ann', reason: 'bye' },
  'user.revoke': { userId: 'ann/é 1', reason: 'signed out' },
  nodes: undefined,
  'room.add': { room: 'm/42 x', userIds: ['ann'], idleTtlS: 60 },
  'room.remove': { room: 'm/42 x', userIds: ['ann'] },
  'room.members': { room: 'm/42 x', cursor: 'ann', limit: '10' },
  'room.info': { room: 'm/42 x' },
  'room.presence': { room: 'm/42 x' },
  'room.clear': { room: 'm/42 x' },
  'room.delete': { room: 'm/42 x' },
}

/** The Api method each operation must reach, and the arguments it gets for its sample (the request id last, where it takes one). */
const EXPECTED: Record<OperationName, [method: string, ...args: unknown[]]> = {
  push: ['push', SAMPLES.push, 'r1'],
  broadcast: ['broadcast', SAMPLES.broadcast, 'r1'],
  presence: ['presence', { userId: 'ann/é 1' }],
  'presence.query': ['presenceQuery', SAMPLES['presence.query']],
  disconnect: ['disconnect', SAMPLES.disconnect, 'r1'],
  'user.revoke': ['revoke', { userId: 'ann/é 1', reason: 'signed out' }, 'r1'],
  nodes: ['nodes'],
  'room.add': ['rooms.add', 'm/42 x', { userIds: ['ann'], idleTtlS: 60 }, 'r1'],
  'room.remove': ['rooms.remove', 'm/42 x', { userIds: ['ann'] }, 'r1'],
  'room.members': ['rooms.members', 'm/42 x', { cursor: 'ann', limit: '10' }],
  'room.info': ['rooms.info', 'm/42 x'],
  'room.presence': ['rooms.presence', 'm/42 x', 'r1'],
  'room.clear': ['rooms.clear', 'm/42 x', 'r1'],
  'room.delete': ['rooms.delete', 'm/42 x', 'r1'],
}

/** An Api that records which method was called with what, and answers its name. */
function recordingApi(): { api: Api; calls: unknown[][] } {
  const calls: unknown[][] = []
  const record = (method: string) => async (...args: unknown[]) => {
    calls.push([method, ...args])
    return { method }
  }
  const names = ['push', 'broadcast', 'presence', 'presenceQuery', 'disconnect', 'revoke', 'nodes']
  const roomNames = ['push', 'add', 'remove', 'members', 'info', 'presence', 'clear', 'delete']
  const api = {
    ...Object.fromEntries(names.map((m) => [m, record(m)])),
    rooms: Object.fromEntries(roomNames.map((m) => [m, record(`rooms.${m}`)])),
  } as unknown as Api
  return { api, calls }
}

const notIdempotent = () => Promise.reject(new Error('not an idempotent call'))

/** Runs `call` of `op` on a recording Api; answers the one Api call it made. */
async function apiCallOf(op: OperationName, call: OperationCall): Promise<unknown[]> {
  const { api, calls } = recordingApi()
  await runOperation({ api, idempotent: notIdempotent }, op, call, 'r1', undefined)
  if (calls.length !== 1) throw new Error(`${op}: ${calls.length} Api calls`)
  return calls[0]!
}

t.test('each row is well formed, and its schemas are real zod a generator can read', async (t) => {
  t.same(OPERATION_NAMES, Object.keys(SAMPLES), 'every operation has a sample here')
  const calls = OPERATION_NAMES.map((op) => `${OPERATIONS[op].method} ${OPERATIONS[op].path}`)
  t.equal(new Set(calls).size, calls.length, 'one operation per HTTP route')
  for (const op of OPERATION_NAMES) {
    const row = OPERATIONS[op] as (typeof OPERATIONS)[OperationName] & { params?: z.ZodObject; body?: z.ZodType }
    t.same(row.params ? Object.keys(row.params.shape) : [], pathParamsOf(row.path), `${op}: params schema names the path's parameters`)
    t.equal(row.body !== undefined, row.input !== 'none', `${op}: a body schema exactly when it takes input`)
    if (row.isIdempotent) t.notOk(row.isRead, `${op}: an Idempotency-Key is for writes`)
    if (row.method === 'GET') t.ok(row.isRead, `${op}: a GET is a read`)
    t.equal(isRead(op), row.isRead, `${op}: the backend client resends exactly the reads`)
    for (const schema of [row.params, row.body]) if (schema) t.type(z.toJSONSchema(schema, { io: 'input' }), 'object')
  }
  t.same(OPERATION_NAMES.filter((op) => OPERATIONS[op].isIdempotent), ['push', 'broadcast'])
})

t.test('every operation has exactly one HTTP route, and HEAD is GET', async (t) => {
  const params = { userId: 'ann/é 1', room: 'm/42 x' }
  for (const op of OPERATION_NAMES) {
    const { method, path } = OPERATIONS[op]
    const route = routeOf(method, fillPath(path, params))
    t.same(route, { name: op, params: Object.fromEntries(pathParamsOf(path).map((p) => [p, params[p as keyof typeof params]])) }, `${method} ${path}`)
    if (method === 'GET') t.match(routeOf('HEAD', fillPath(path, params)), { name: op })
    for (const other of ['GET', 'POST', 'DELETE', 'PUT'].filter((m) => m !== method)) {
      const elsewhere = routeOf(other, fillPath(path, params))
      t.not(elsewhere && !(elsewhere instanceof SwitchboardError) ? elsewhere.name : undefined, op, `${other} ${path} is not ${op}`)
    }
  }
  t.same(routeOf('GET', '/v1/presence/events'), { name: 'presence.events', params: {} }, 'a reserved presence id')
  t.same(routeOf('HEAD', '/v1/presence/snapshot'), { name: 'presence.snapshot', params: {} }, 'a reserved presence id')
  t.equal(routeOf('POST', '/v1/presence/events'), undefined)
})

t.test('both ingresses reach the same Api handler with the same input', async (t) => {
  for (const op of OPERATION_NAMES) {
    const sample = SAMPLES[op]
    const viaPipeline = await apiCallOf(op, pipelineCall(op, sample))
    t.same(viaPipeline, EXPECTED[op], `${op} over the pipeline`)
    // The backend client's HTTP fallback for the same call, routed and read as the router does.
    const http = httpCallOf({ op, body: sample })
    const [path, query = ''] = http.path.split('?')
    const route = routeOf(http.method, path!)
    if (route === undefined || route instanceof SwitchboardError) {
      t.fail(`${op}: ${http.method} ${http.path} is not routed`)
      continue
    }
    t.equal(route.name, op, `${op}: the client's ${http.method} ${http.path} routes back to it`)
    const body = http.body === undefined ? undefined : Buffer.from(http.body)
    t.same(await apiCallOf(op, httpCall(op, route.params, body, query)), EXPECTED[op], `${op} over HTTP`)
  }
})

t.test('the HTTP forms the pipeline has no equivalent for', async (t) => {
  t.same(await apiCallOf('user.revoke', httpCall('user.revoke', { userId: 'ann' }, undefined, '')), ['revoke', { userId: 'ann' }, 'r1'], 'revoke: the body is optional')
  t.same(await apiCallOf('user.revoke', httpCall('user.revoke', { userId: 'ann' }, Buffer.from('{"userId":"bob"}'), '')), ['revoke', { userId: 'ann' }, 'r1'], 'revoke: the path names the user')
  t.same(await apiCallOf('room.clear', httpCall('room.clear', { room: 'm' }, Buffer.from('not json'), '')), ['rooms.clear', 'm', 'r1'], 'clear: a body is ignored')
  t.throws(() => httpCall('push', {}, undefined, ''), { code: 'invalid_request', message: 'body: required' })
})

t.test('a pipeline body that is not an object reaches the Api whole, or is refused for a room', async (t) => {
  t.same(await apiCallOf('presence', pipelineCall('presence', 'ann')), ['presence', 'ann'])
  t.same(await apiCallOf('user.revoke', pipelineCall('user.revoke', undefined)), ['revoke', undefined, 'r1'])
  await t.rejects(apiCallOf('room.add', pipelineCall('room.add', [1])), { code: 'invalid_request', message: 'body: must be a JSON object with "room"' })
})

t.test('only an idempotent operation given a key runs through idempotency', async (t) => {
  for (const op of OPERATION_NAMES) {
    const { api } = recordingApi()
    const keys: unknown[] = []
    const idempotent = async <T>(scope: string, key: string | undefined, name: string, body: unknown, run: () => Promise<T>) => {
      keys.push([scope, key, name, body])
      return { value: await run(), replayed: true }
    }
    const answer = await runOperation({ api, idempotent }, op, pipelineCall(op, SAMPLES[op]), 'r1', { scope: 's', key: 'k' })
    if (OPERATIONS[op].isIdempotent) {
      t.same(keys, [['s', 'k', op, SAMPLES[op]]], `${op}: keyed by scope, op and key; the body is the fingerprint`)
      t.equal(answer.replayed, true)
    } else {
      t.same(keys, [], `${op}: the key is ignored`)
      t.equal(answer.replayed, false)
    }
  }
})

t.test('the README lists exactly these operations', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const section = (title: string) => {
    const start = readme.indexOf(`\n## ${title}`)
    t.ok(start >= 0, `README has "## ${title}"`)
    return readme.slice(start, readme.indexOf('\n## ', start + 1))
  }
  const calls = new Set(OPERATION_NAMES.map((op) => `${OPERATIONS[op].method} ${OPERATIONS[op].path}`))
  // The HTTP API: a heading per user operation, a row per room operation.
  const http = section('HTTP API (router)')
  const documented = new Set([...http.matchAll(/^(?:### |\| )`((?:GET|POST|DELETE) \/v1\/[^`]*)`/gm)].map((m) => m[1]!))
  t.same([...documented].sort(), [...calls].sort(), 'the HTTP API section documents each operation\'s call, and no other')
  // The pipeline: one row per op, with the HTTP call it stands for.
  const rows = [...section('Pipelined ingress').matchAll(/^\| `([\w.]+)` \| `(\w+ [^`]+)` \|/gm)].map((m) => [m[1]!, m[2]!])
  t.same(rows, OPERATION_NAMES.map((op) => [op, `${OPERATIONS[op].method} ${OPERATIONS[op].path}`]), 'the pipeline\'s op table, in the table\'s order')
})

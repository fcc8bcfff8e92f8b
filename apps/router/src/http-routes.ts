import { OPERATIONS, OPERATION_NAMES, SwitchboardError, type OperationName } from '@switchboard/protocol'

/** An operation of the table, a probe, or one of the HTTP-only presence reads (the events stream and the snapshot). */
export type RouteName = OperationName | 'healthz' | 'readyz' | 'metrics' | 'presence.events' | 'presence.snapshot'

export interface Route {
  name: RouteName
  /** The path's `:name` segments, percent-decoded (shared and frozen for a route without any). */
  params: Readonly<Record<string, string>>
}

interface Template {
  name: RouteName
  /** Literal segments, or undefined where a parameter is. */
  literals: (string | undefined)[]
  params: (string | undefined)[]
}

/**
 * Every route, by `METHOD segment-count` (HEAD is GET). Within a key the first that matches
 * wins: the presence reads come before `GET /v1/presence/:userId`, so "events" and "snapshot"
 * are reserved user ids (those users are looked up with POST /v1/presence/query).
 */
const ROUTES = new Map<string, Template[]>()
/** The routes without parameters, by `METHOD path`: a push or a presence query is routed with one lookup. */
const STATIC = new Map<string, Route>()
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({})
for (const [name, method, path] of [
  ['healthz', 'GET', '/healthz'],
  ['readyz', 'GET', '/readyz'],
  ['metrics', 'GET', '/metrics'],
  ['presence.events', 'GET', '/v1/presence/events'],
  ['presence.snapshot', 'GET', '/v1/presence/snapshot'],
  ...OPERATION_NAMES.map((op) => [op, OPERATIONS[op].method, OPERATIONS[op].path] as const),
] as const) {
  const segments = path.split('/').slice(1)
  const template = {
    name,
    literals: segments.map((s) => (s.startsWith(':') ? undefined : s)),
    params: segments.map((s) => (s.startsWith(':') ? s.slice(1) : undefined)),
  }
  const key = `${method} ${segments.length}`
  ROUTES.set(key, [...(ROUTES.get(key) ?? []), template])
  if (!path.includes(':')) STATIC.set(`${method} ${path}`, { name, params: NO_PARAMS })
}

/**
 * Which route serves `method path`: undefined for none (404), a SwitchboardError for a path
 * that cannot be decoded. Segments are percent-decoded before matching, so `/%76%31/nodes`
 * is `/v1/nodes`, and an escaped `/` inside a segment never splits it.
 */
export function routeOf(method: string, path: string): Route | SwitchboardError | undefined {
  const known = STATIC.get(`${method === 'HEAD' ? 'GET' : method} ${path}`)
  if (known !== undefined) return known
  const raw = path.split('/')
  if (raw[0] !== '') return undefined
  const segments: string[] = []
  for (let i = 1; i < raw.length; i++) {
    const decoded = decode(raw[i]!)
    if (decoded instanceof SwitchboardError) return decoded
    segments.push(decoded)
  }
  const templates = ROUTES.get(`${method === 'HEAD' ? 'GET' : method} ${segments.length}`)
  const template = templates?.find((t) => t.literals.every((literal, i) => literal === undefined || literal === segments[i]))
  if (template === undefined) return undefined
  const params: Record<string, string> = {}
  template.params.forEach((name, i) => {
    if (name !== undefined) params[name] = segments[i]!
  })
  return { name: template.name, params }
}

function decode(segment: string): string | SwitchboardError {
  if (!segment.includes('%')) return segment
  try {
    return decodeURIComponent(segment)
  } catch {
    return new SwitchboardError('invalid_request', 'path: not a valid URL')
  }
}

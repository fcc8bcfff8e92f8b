import { SwitchboardApiError } from './errors.js'
import { silentLogger, type BackendLogger } from './logger.js'

/** Every option, its unit and its default; the package README has the same table. */
export interface BackendOptions {
  /** The router's base URL, `http(s)://host:port`, optionally with a path prefix. The pipeline is `ws(s)://` at the same address. */
  url: string
  /** One of the router's ROUTER_API_KEYS. */
  apiKey: string
  /**
   * `pipeline` (default): calls go over one websocket, HTTP only while it is not connected.
   * `http`: every call is one HTTP request (right for a one-shot command).
   */
  transport?: 'pipeline' | 'http'
  /** Calls outstanding at once, over either transport; more wait in the client, first in first out. Default 1000; keep it at or under the router's ROUTER_PIPELINE_MAX_IN_FLIGHT (1024). */
  maxInFlight?: number
  /** ms from the call to its answer: time waiting for an in-flight slot and a read's retry included. Default 10000. */
  timeoutMs?: number
  /** ms to open the pipeline (TCP and upgrade) or one HTTP connection. Default 5000. */
  connectTimeoutMs?: number
  /** ms: the cap of the first reconnect delay, doubled at each failure in a row. Default 250. */
  reconnectBaseDelayMs?: number
  /** ms: the longest reconnect delay, and the interval at which a refused API key is tried again. Default 30000. */
  reconnectMaxDelayMs?: number
  /** ms between websocket pings; a pipeline that heard nothing for two intervals is dropped and reopened. Default 15000. */
  pingIntervalMs?: number
  /** HTTP keep-alive connections to the router. Default 16. */
  httpConnections?: number
  /** bytes: a call whose pipeline frame is larger goes over HTTP. Default 1048576 (the router's default ROUTER_BODY_LIMIT_BYTES). */
  maxPipelineFrameBytes?: number
  /** A pino logger (or anything with its debug/info/warn signature) for connection changes. Default: none. */
  log?: BackendLogger
}

export type ResolvedOptions = Required<Omit<BackendOptions, 'url'>> & { url: URL }

const LIMITS = {
  maxInFlight: [1, 100_000, 1_000],
  timeoutMs: [1, 86_400_000, 10_000],
  connectTimeoutMs: [1, 600_000, 5_000],
  reconnectBaseDelayMs: [1, 3_600_000, 250],
  reconnectMaxDelayMs: [1, 3_600_000, 30_000],
  pingIntervalMs: [100, 3_600_000, 15_000],
  httpConnections: [1, 10_000, 16],
  maxPipelineFrameBytes: [64, 1 << 30, 1 << 20],
} as const satisfies Record<string, readonly [min: number, max: number, fallback: number]>

/** Options with defaults filled in; a bad one throws `invalid_argument` naming it. */
export function resolveOptions(options: BackendOptions): ResolvedOptions {
  let url: URL
  try {
    url = new URL(options.url)
  } catch (err) {
    throw new SwitchboardApiError('invalid_argument', `url: not a URL: ${String(options.url)}`, { cause: err })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SwitchboardApiError('invalid_argument', `url: must be http(s), not ${url.protocol}`)
  if (typeof options.apiKey !== 'string' || options.apiKey.length === 0) throw new SwitchboardApiError('invalid_argument', 'apiKey: required')
  const transport = options.transport ?? 'pipeline'
  if (transport !== 'pipeline' && transport !== 'http') throw new SwitchboardApiError('invalid_argument', `transport: must be "pipeline" or "http", not ${String(transport)}`)
  const numbers = Object.fromEntries(
    Object.entries(LIMITS).map(([name, [min, max, fallback]]) => [name, wholeNumber(name, options[name as keyof typeof LIMITS], min, max, fallback)]),
  ) as Record<keyof typeof LIMITS, number>
  return { url, apiKey: options.apiKey, transport, log: options.log ?? silentLogger, ...numbers }
}

export function wholeNumber(name: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new SwitchboardApiError('invalid_argument', `${name}: must be a whole number from ${min} to ${max}, not ${String(value)}`)
  }
  return value
}

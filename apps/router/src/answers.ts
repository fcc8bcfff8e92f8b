import type { Logger } from 'pino'
import { SwitchboardError, errorBody, httpStatus, type ErrorBody } from '@switchboard/protocol'
import type { RouterMetrics } from './metrics.js'

/**
 * The contract's error answer for anything a request threw, on both ingresses: a
 * SwitchboardError keeps its code and message; 5xx get a generic message, and the cause is
 * logged once, here, with the request's id.
 */
export function errorAnswer(err: unknown, context: { log: Logger; metrics: RouterMetrics; requestId: string | null; what: string }): { status: number; body: ErrorBody } {
  const e = err instanceof SwitchboardError ? err : new SwitchboardError('internal', 'internal error', { cause: err })
  const status = httpStatus(e.code)
  if (status < 500) return { status, body: errorBody(e.code, e.message) }
  if (e.code === 'registry_unavailable') context.metrics.registryErrors.inc()
  context.log.error({ err, url: context.what, reqId: context.requestId }, 'request failed')
  return { status, body: errorBody(e.code, e.code === 'registry_unavailable' ? 'registry unavailable, retry later' : 'internal error') }
}

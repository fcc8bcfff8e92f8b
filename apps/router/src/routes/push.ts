import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import {
  BroadcastRequest,
  PushRequest,
  parseOrThrow,
  pushFrame,
  timeCall,
  type BroadcastResponse,
  type PushResponse,
} from '@switchboard/protocol'
import type { RouteDeps } from '../app.js'
import { planDelivery, settleDelivery, type EdgeOutcome } from '../plan.js'

const RESULTS = ['delivered', 'offline', 'failed'] as const
type Result = (typeof RESULTS)[number]
type Counter = { inc(n: number): void }

export const pushRoutes = (deps: RouteDeps) => async (app: FastifyInstance) => {
  const { registry, edges, metrics, log } = deps
  const recipientsBy = Object.fromEntries(RESULTS.map((r) => [r, metrics.recipients.labels(r)])) as Record<Result, Counter>

  /** Calls `call` on one edge; a failure is logged (with the request's id) and counted, never thrown. */
  function forward<T>(req: FastifyRequest, url: string, call: () => Promise<T>): Promise<T | undefined> {
    return timeCall(metrics.forward.start(url), call()).catch((err: unknown) => {
      req.log.warn({ err, edge: url }, 'edge call failed')
      return undefined
    })
  }

  app.post('/v1/push', async (req): Promise<PushResponse> => {
    const body = parseOrThrow(PushRequest, req.body)
    deps.limits.recipients(body.to)
    deps.limits.event(body.event)
    const id = body.id ?? randomUUID()
    const frame = pushFrame(id, body.event, body.data, Date.now())
    const recipients = new Set(body.to)
    const plan = planDelivery(recipients, await registry.locate([...recipients]))
    const outcomes = await Promise.all(
      [...plan.byEdge].map(async ([url, users]): Promise<EdgeOutcome> => {
        const answer = await forward(req, url, () => edges.deliver(url, frame, users, req.id))
        return answer ? { users, delivered: answer.delivered } : { users, failed: true }
      }),
    )
    const settled = settleDelivery(recipients, outcomes)
    metrics.pushes.inc()
    for (const result of RESULTS) if (settled[result].length > 0) recipientsBy[result].inc(settled[result].length)
    if (log.isLevelEnabled('debug')) {
      req.log.debug({ pushId: id, edges: plan.byEdge.size, delivered: settled.delivered.length, offline: settled.offline.length, failed: settled.failed.length }, 'push')
    }
    return { id, ...settled }
  })

  app.post('/v1/broadcast', async (req): Promise<BroadcastResponse> => {
    const body = parseOrThrow(BroadcastRequest, req.body)
    deps.limits.event(body.event)
    const id = body.id ?? randomUUID()
    const frame = pushFrame(id, body.event, body.data, Date.now())
    const nodes = await registry.liveNodes()
    const answers = await Promise.all(nodes.map((n) => forward(req, n.url, () => edges.broadcast(n.url, frame, req.id))))
    const reached = answers.filter((a) => a !== undefined)
    return { id, nodes: reached.length, connections: reached.reduce((sum, a) => sum + a.connections, 0) }
  })
}

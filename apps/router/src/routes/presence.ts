import type { FastifyInstance } from 'fastify'
import {
  DisconnectRequest,
  PresenceParams,
  PresenceQuery,
  parseOrThrow,
  type DisconnectResponse,
  type PresenceQueryResponse,
  type PresenceResponse,
} from '@switchboard/protocol'
import type { RouteDeps } from '../app.js'

export const presenceRoutes = (deps: RouteDeps) => async (app: FastifyInstance) => {
  const { registry, edges, metrics } = deps
  const singleQueries = metrics.presenceQueries.labels('single')
  const batchQueries = metrics.presenceQueries.labels('batch')

  app.get('/v1/presence/:userId', async (req): Promise<PresenceResponse> => {
    const { userId } = parseOrThrow(PresenceParams, req.params, 'userId')
    deps.limits.userId('userId', userId)
    singleQueries.inc()
    metrics.presenceUsers.inc()
    const conns = (await registry.locate([userId])).get(userId) ?? []
    return {
      userId,
      online: conns.length > 0,
      connections: conns.map(({ connId, nodeId, since }) => ({ connId, nodeId, since })),
    }
  })

  app.post('/v1/presence/query', async (req): Promise<PresenceQueryResponse> => {
    const { userIds } = parseOrThrow(PresenceQuery, req.body)
    deps.limits.presenceBatch(userIds)
    const unique = [...new Set(userIds)]
    batchQueries.inc()
    metrics.presenceUsers.inc(unique.length)
    const found = await registry.locate(unique)
    return { online: unique.filter((u) => found.has(u)), offline: unique.filter((u) => !found.has(u)) }
  })

  app.post('/v1/disconnect', async (req): Promise<DisconnectResponse> => {
    const { userId, reason } = parseOrThrow(DisconnectRequest, req.body)
    deps.limits.userId('userId', userId)
    const urls = new Set((await registry.locate([userId])).get(userId)?.map((c) => c.url))
    const answers = await Promise.all(
      [...urls].map((url) =>
        edges.disconnect(url, reason === undefined ? { userId } : { userId, reason }, req.id).catch((err: unknown) => {
          // That edge's sockets stay open; its lease lapses if it is dead. Report what was closed.
          req.log.warn({ err, edge: url }, 'disconnect call failed')
          return { closed: 0 }
        }),
      ),
    )
    return { closed: answers.reduce((sum, a) => sum + a.closed, 0) }
  })
}

import type { FastifyInstance } from 'fastify'
import type { RouteDeps } from '../app.js'

export const healthRoutes = (deps: RouteDeps) => async (app: FastifyInstance) => {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_req, reply) => {
    try {
      await deps.registry.liveNodes()
      return { ready: true, registry: 'ok' }
    } catch (err) {
      deps.log.warn({ err }, 'not ready: registry unavailable')
      return reply.code(503).send({ ready: false, registry: 'unavailable' })
    }
  })

  app.get('/metrics', async (_req, reply) => {
    const text = await deps.promRegistry.metrics()
    return reply.type(deps.promRegistry.contentType).send(text)
  })
}

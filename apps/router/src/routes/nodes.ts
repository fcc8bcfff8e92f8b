import type { FastifyInstance } from 'fastify'
import type { NodesResponse } from '@switchboard/protocol'
import type { RouteDeps } from '../app.js'

export const nodeRoutes = (deps: RouteDeps) => async (app: FastifyInstance) => {
  app.get('/v1/nodes', async (): Promise<NodesResponse> => {
    const live = await deps.registry.liveNodes()
    const nodes = live
      .map(({ nodeId, connections, draining, startedAt }) => ({ nodeId, connections, draining, startedAt }))
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
    return { nodes }
  })
}

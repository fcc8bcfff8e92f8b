import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import {
  BroadcastRequest,
  CloseCode,
  DisconnectRequest,
  MAX_CLOCK_TOLERANCE_S,
  PresenceParams,
  RevokeRequest,
  PresenceQuery,
  PushRequest,
  parseOrThrow,
  pushFrame,
  type BroadcastResponse,
  type InternalDisconnect,
  type DisconnectResponse,
  type NodesResponse,
  type PresenceQueryResponse,
  type PresenceResponse,
  type Position,
  type AckedPushResponse,
  type PushResponse,
  type RevokeResponse,
  type RoomPushResponse,
  type RoutedPushResponse,
} from '@switchboard/protocol'
import type { Inbox, Revocations, RoomStore } from '@switchboard/registry'
import type { EdgeClient } from './edge-client.js'
import type { LimitChecks } from './limits.js'
import { RECIPIENT_RESULTS, type RecipientResult, type RouterMetrics, type TimedRegistry } from './metrics.js'
import { planDelivery, settleDelivery, settleReceipts, type EdgeOutcome } from './plan.js'
import { createRoomApi, type RoomApi } from './rooms-api.js'

export interface ApiDeps {
  registry: TimedRegistry
  edges: EdgeClient
  metrics: RouterMetrics
  limits: LimitChecks
  log: Logger
  /** Where kept pushes are appended before they are forwarded. */
  inbox: Inbox
  /** Whether a push that does not say `keep` is kept (PUSH_KEEP_DEFAULT). */
  keepByDefault: boolean
  /** Durable room memberships and the rooms' edge indexes. */
  rooms: RoomStore
  roomLimits: { maxNameLength: number; listMax: number }
  /** Where revocations are written (the registry). */
  revocations: Revocations
  /** TOKEN_MAX_LIFETIME_S: a revocation is kept this long plus the largest clock tolerance an edge may allow. */
  tokenMaxLifetimeS: number
}

/**
 * The router's operations, whatever the transport: HTTP (http-api.ts) and the pipelined
 * ingress (pipeline.ts) both parse a request, call one of these through its operation's
 * handler (operations.ts) and map the answer or the SwitchboardError it throws. So both have the same validation, limits and messages.
 * `requestId` is the caller's request id, for the logs here and on the edges.
 */
export interface Api {
  /**
   * A push to users (`to`; `routed` instead of `delivered` with `wait: "routed"`, `acked` and
   * `unacked` with `ack`), or to a room (`room`).
   */
  push(body: unknown, requestId: string): Promise<PushResponse | RoutedPushResponse | AckedPushResponse | RoomPushResponse>
  broadcast(body: unknown, requestId: string): Promise<BroadcastResponse>
  presence(params: unknown): Promise<PresenceResponse>
  presenceQuery(body: unknown): Promise<PresenceQueryResponse>
  disconnect(body: unknown, requestId: string): Promise<DisconnectResponse>
  /** "Sign out everywhere": the user's tokens issued until now are refused, and their sockets closed (4503). */
  revoke(body: unknown, requestId: string): Promise<RevokeResponse>
  nodes(): Promise<NodesResponse>
  rooms: RoomApi
}

export function createApi(deps: ApiDeps): Api {
  const { registry, edges, metrics, limits, log, inbox, keepByDefault } = deps
  const recipientsBy = Object.fromEntries(RECIPIENT_RESULTS.map((r) => [r, metrics.recipients.labels(r)])) as Record<RecipientResult, { inc(n: number): void }>
  const singleQueries = metrics.presenceQueries.labels('single')
  const batchQueries = metrics.presenceQueries.labels('batch')

  /** Calls `call` on one edge; a failure is logged (with the request's id) and counted, never thrown. */
  function forward<T>(requestId: string, url: string, call: () => Promise<T>): Promise<T | undefined> {
    return metrics.forward.time(url, call()).catch((err: unknown) => {
      log.warn({ err, edge: url, reqId: requestId }, 'edge call failed')
      return undefined
    })
  }

  /**
   * Hands a routed push to one edge: true once its frame is queued on the link. A failure is
   * logged and counted (router_forward_failures_total) as a delivery call's; nothing is timed,
   * there being no answer to wait for.
   */
  function handOver(requestId: string, url: string, call: () => Promise<void>): Promise<boolean> {
    return call().then(
      () => true,
      (err: unknown) => {
        metrics.forward.failed(err)
        log.warn({ err, edge: url, reqId: requestId }, 'edge call failed')
        return false
      },
    )
  }

  /** Each recipient's inbox position of the push; an inbox that cannot be written fails the push (503): nothing is sent. */
  async function keepFor(recipients: string[], frame: string): Promise<Map<string, Position>> {
    const positions = await inbox.append(recipients, frame)
    return new Map(recipients.map((u, i) => [u, positions[i]!]))
  }

  /** Asks every edge holding a connection of the user to close it; answers how many closed (an edge that fails closes none). */
  async function closeEverywhere(userId: string, body: InternalDisconnect, requestId: string): Promise<number> {
    const urls = new Set((await registry.locate([userId])).get(userId)?.map((c) => c.url))
    const answers = await Promise.all(
      [...urls].map((url) =>
        edges.disconnect(url, body, requestId).catch((err: unknown) => {
          // That edge's sockets stay open; its lease lapses if it is dead. Report what was closed.
          log.warn({ err, edge: url, reqId: requestId }, 'disconnect call failed')
          return { closed: 0 }
        }),
      ),
    )
    return answers.reduce((sum, a) => sum + a.closed, 0)
  }

  const rooms = createRoomApi({ rooms: deps.rooms, inbox, registry, edges, metrics, limits, roomLimits: deps.roomLimits, forward })

  return {
    rooms,

    async push(input, requestId) {
      if (isRoomPush(input)) return rooms.push(input, requestId)
      const body = parseOrThrow(PushRequest, input)
      limits.recipients(body.to)
      limits.event(body.event)
      const id = body.id ?? randomUUID()
      const frame = pushFrame(id, body.event, body.data, Date.now(), body.ack !== undefined)
      const recipients = [...new Set(body.to)]
      // A kept push is in every recipient's inbox before it is forwarded, and the lookup comes
      // after: a client whose registration the lookup misses resumes from the inbox instead.
      const kept = (body.keep ?? keepByDefault) ? await keepFor(recipients, frame) : undefined
      const plan = planDelivery(recipients, await registry.locate(recipients))
      // A routed push is settled once each edge's link took its frame: a user one of whose edges
      // took it is `routed`, as one an edge wrote to is `delivered`.
      const isRouted = body.wait === 'routed'
      const ack = body.ack
      /** A kept push's inbox positions of one edge's users, in their order. */
      const positionsOf = (users: readonly string[]) => kept && users.map((u) => kept.get(u)!)
      /** Each edge's answer (or, routed, its link's hand-over), settled: `routed` instead of `delivered` for a routed push. */
      const settleWritten = async () => {
        const outcomes = await Promise.all(
          [...plan.byEdge].map(async ([url, users]): Promise<EdgeOutcome> => {
            const at = positionsOf(users)
            if (isRouted) return (await handOver(requestId, url, () => edges.route(url, frame, users, requestId, at))) ? { users, delivered: users } : { users, failed: true }
            const answer = await forward(requestId, url, () => edges.deliver(url, frame, users, requestId, at))
            return answer ? { users, delivered: answer.delivered } : { users, failed: true }
          }),
        )
        const { delivered, offline, failed } = settleDelivery(recipients, outcomes)
        return isRouted ? { routed: delivered, offline, failed } : { delivered, offline, failed }
      }
      const settled = ack
        ? await settleReceipts(recipients, plan, async (url, users) => {
            const answer = await forward(requestId, url, () => edges.deliverAcked(url, { id, timeoutMs: ack.timeoutMs, frame, to: users, at: positionsOf(users) }, requestId))
            return answer ? { users, delivered: [...answer.acked, ...answer.unacked], acked: answer.acked } : { users, failed: true }
          })
        : await settleWritten()
      const { offline, failed } = settled
      metrics.pushes.inc()
      if (isRouted) metrics.routedPushes.inc()
      for (const result of RECIPIENT_RESULTS) {
        const n = (settled as Partial<Record<RecipientResult, string[]>>)[result]?.length
        if (n) recipientsBy[result].inc(n)
      }
      if (log.isLevelEnabled('debug')) {
        log.debug({ reqId: requestId, pushId: id, edges: plan.byEdge.size, ...counts(settled) }, 'push')
      }
      if (!kept) return { id, ...settled }
      metrics.kept.inc()
      // Not written now, waiting in the inbox: the backend may still send an OS notification.
      return { id, ...settled, kept: [...offline, ...failed] }
    },

    async broadcast(input, requestId) {
      const body = parseOrThrow(BroadcastRequest, input)
      limits.event(body.event)
      const id = body.id ?? randomUUID()
      const frame = pushFrame(id, body.event, body.data, Date.now())
      const nodes = await registry.liveNodes()
      const answers = await Promise.all(nodes.map((n) => forward(requestId, n.url, () => edges.broadcast(n.url, frame, requestId))))
      const reached = answers.filter((a) => a !== undefined)
      return { id, nodes: reached.length, connections: reached.reduce((sum, a) => sum + a.connections, 0) }
    },

    async presence(params) {
      const { userId } = parseOrThrow(PresenceParams, params, 'userId')
      limits.userId('userId', userId)
      singleQueries.inc()
      metrics.presenceUsers.inc()
      const conns = (await registry.locate([userId])).get(userId) ?? []
      return {
        userId,
        online: conns.length > 0,
        connections: conns.map(({ connId, nodeId, since }) => ({ connId, nodeId, since })),
      }
    },

    async presenceQuery(input) {
      const { userIds } = parseOrThrow(PresenceQuery, input)
      limits.presenceBatch(userIds)
      const unique = [...new Set(userIds)]
      batchQueries.inc()
      metrics.presenceUsers.inc(unique.length)
      const found = await registry.locate(unique)
      return { online: unique.filter((u) => found.has(u)), offline: unique.filter((u) => !found.has(u)) }
    },

    async disconnect(input, requestId) {
      const { userId, reason } = parseOrThrow(DisconnectRequest, input)
      limits.userId('userId', userId)
      return { closed: await closeEverywhere(userId, reason === undefined ? { userId } : { userId, reason }, requestId) }
    },

    async revoke(input, requestId) {
      const { userId, reason = 'token revoked' } = parseOrThrow(RevokeRequest, input)
      limits.userId('userId', userId)
      // The cutoff first: a connection registering from now on with an older token is refused by
      // its own registration; one registered before is found by the lookup below and closed.
      const revokedBefore = await deps.revocations.revoke(userId, (deps.tokenMaxLifetimeS + MAX_CLOCK_TOLERANCE_S) * 1_000)
      const closed = await closeEverywhere(userId, { userId, reason, code: CloseCode.revoked }, requestId)
      log.info({ reqId: requestId, userId, revokedBefore, closed }, 'tokens revoked')
      return { userId, revokedBefore, closed }
    },

    async nodes() {
      const live = await registry.liveNodes()
      const nodes = live
        .map(({ nodeId, connections, draining, startedAt }) => ({ nodeId, connections, draining, startedAt }))
        .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      return { nodes }
    },
  }
}

/** Each list's length, for a log line. */
function counts(lists: Record<string, readonly string[] | undefined>): Record<string, number> {
  return Object.fromEntries(Object.entries(lists).map(([k, v]) => [k, v?.length ?? 0]))
}

/** A push naming a `room` (and no `to`: a body with both is refused by the room push's schema). */
function isRoomPush(input: unknown): boolean {
  return typeof input === 'object' && input !== null && Object.hasOwn(input, 'room')
}

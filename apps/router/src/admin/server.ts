import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import fastifyCookie from '@fastify/cookie'
import fastifyCsrf from '@fastify/csrf-protection'
import fastifyHelmet from '@fastify/helmet'
import fastifySession from '@fastify/session'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { SwitchboardError, errorBody, httpStatus, type ErrorCode } from '@switchboard/protocol'
import type { PresenceReader, RouterRegistry } from '@switchboard/registry'
import type { Api } from '../api.js'
import type { RelayStatus } from '../presence/relay.js'
import { BoundedSessionStore } from './session-store.js'
import type { TrafficSample } from './traffic.js'

export interface AdminOptions {
  /** The admin's own credential (ROUTER_ADMIN_PASSWORD), distinct from the backends' API keys. */
  password: string
  /** A session lasts this long from its login, then the operator logs in again. */
  sessionTtlMs: number
  /** For the edges' lease age. */
  leaseTtlMs: number
  /** Its reads fail with `registry_unavailable` when Redis is down (RedisGateway), answered 503 as the API does. */
  registry: Pick<RouterRegistry, 'liveNodes' | 'locate'> & Pick<PresenceReader, 'recentFeed' | 'workers'>
  /** The router's own operations: the admin's pushes, lookups and disconnects are the API's, validated and counted alike. */
  api: Pick<Api, 'presence' | 'push' | 'disconnect' | 'rooms'>
  /** This router's presence delivery (the webhook endpoints' state). */
  presence: { status(): RelayStatus }
  traffic: { samples(): readonly TrafficSample[] }
  log: Logger
}

/** Failed logins a router takes per LOGIN_WINDOW_MS, from anyone; past that every login gets 429 until the oldest leaves the window. */
export const LOGIN_FAILURES_MAX = 10
export const LOGIN_WINDOW_MS = 60_000
/** A user's recent presence events are looked for among the cluster's last this many. */
export const USER_EVENTS_SCAN = 1_000
/** ... and the newest this many of them shown. */
export const USER_EVENTS_SHOWN = 20
/** Durable members listed in a room's view (the first ones in name order). */
export const ROOM_MEMBERS_SHOWN = 100
/** Events in the live tail. */
export const EVENTS_TAIL = 50

declare module 'fastify' {
  interface Session {
    /** ms epoch of the login; absent before it. */
    loggedInAt?: number
  }
}

/** The page's sources, served as they are (no build step, no CDN): apps/router/admin-web. */
const WEB_ROOT = fileURLToPath(new URL('../../admin-web/', import.meta.url))
const COOKIE = 'sb_admin'

/**
 * The admin web (README "Admin"): fastify and its plugins for what a web app needs — static
 * files, a session cookie, CSRF tokens on every state-changing call, security headers with a
 * strict Content-Security-Policy (no inline script or style) — on its own port, off unless
 * configured. Its API is JSON under /api; every route but the session probe and the login
 * needs a logged-in session. Nothing secret is ever in a page or a log line: the password is
 * compared by hash, the session cookie is HttpOnly and SameSite=Strict.
 */
export interface AdminServer {
  /** Resolves with the port bound (0: any free one). */
  listen(host: string, port: number): Promise<number>
  close(): Promise<void>
}

export async function buildAdmin(options: AdminOptions): Promise<AdminServer> {
  const { password, sessionTtlMs, leaseTtlMs, registry, api, log } = options
  const startedAt = Date.now()
  const app = Fastify({
    // fastify's own lines (one per request at info) only from warn up; the admin's are logged below.
    loggerInstance: log.child({ service: 'admin' }, { level: 'warn' }),
    bodyLimit: 16 << 10,
    // A user id or room name past fastify's 100 characters reaches the API, which says what is wrong with it.
    routerOptions: { maxParamLength: 4_096 },
  })
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
  })
  await app.register(fastifyCookie)
  await app.register(fastifySession, {
    // Sessions live in this router's memory, bounded: they end with it (log in again), and are per router.
    secret: createHmac('sha256', password).update('switchboard admin session').digest('base64url'),
    cookieName: COOKIE,
    // Not Secure: the admin port is internal, reached over a port-forward in plain HTTP ('auto' would drop SameSite to Lax there).
    cookie: { httpOnly: true, sameSite: 'strict', secure: false, path: '/', maxAge: sessionTtlMs },
    saveUninitialized: false,
    store: new BoundedSessionStore(sessionTtlMs),
  })
  await app.register(fastifyCsrf, { sessionPlugin: '@fastify/session' })
  await app.register(fastifyStatic, { root: WEB_ROOT, prefix: '/', index: 'index.html' })

  const expected = createHash('sha256').update(password).digest()
  const isPassword = (given: unknown) => typeof given === 'string' && timingSafeEqual(createHash('sha256').update(given).digest(), expected)
  const isLoggedIn = (request: FastifyRequest) => {
    const at = request.session.get('loggedInAt')
    return typeof at === 'number' && Date.now() - at < sessionTtlMs
  }
  const requireLogin = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!isLoggedIn(request)) return reply.code(401).send(errorBody('unauthorized', 'log in first (the session is missing or expired)'))
  }

  app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
    if (err instanceof SwitchboardError) {
      // The API's own answer (a bad user id, a body over a limit, Redis down), as the HTTP API gives it.
      const status = httpStatus(err.code)
      if (status >= 500 && err.code !== 'registry_unavailable') log.error({ err }, 'admin request failed')
      return reply.code(status).send(errorBody(err.code, status < 500 ? err.message : err.code === 'registry_unavailable' ? 'Redis is unavailable: retry once it is back' : 'internal error'))
    }
    const status = err.statusCode ?? 500
    if (status >= 500) log.error({ err }, 'admin request failed')
    // A CSRF failure has its own code, so the page can tell it from a wrong password: its session
    // (which holds the CSRF secret) expired or its router restarted, and a fresh token mends it.
    if (isCsrfError(err)) return reply.code(403).send(errorBody('csrf_invalid', `${err.message}: take a fresh token (GET /api/session) and retry`))
    const code: ErrorCode = status === 403 ? 'forbidden' : status === 404 ? 'not_found' : status === 413 ? 'payload_too_large' : status < 500 ? 'invalid_request' : 'internal'
    // A 500 never leaks its message.
    return reply.code(status).send(errorBody(code, status >= 500 ? 'internal error' : err.message))
  })
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(errorBody('not_found', 'no such page')))

  /** Whether this browser is logged in, and a CSRF token for its next state-changing call. */
  app.get('/api/session', async (request, reply) => ({ authenticated: isLoggedIn(request), csrfToken: reply.generateCsrf() }))

  /** When recent failed logins happened, oldest first (this router's, whoever sent them). */
  const failures: number[] = []
  app.post('/api/login', { onRequest: app.csrfProtection }, async (request, reply) => {
    const now = Date.now()
    while (failures.length > 0 && failures[0]! <= now - LOGIN_WINDOW_MS) failures.shift()
    if (failures.length >= LOGIN_FAILURES_MAX) {
      // Checked before the password: a guesser learns nothing more until the window moves.
      const waitS = Math.ceil((failures[0]! + LOGIN_WINDOW_MS - now) / 1_000)
      log.warn({ ip: request.ip }, 'admin login refused: too many failed logins')
      return reply.code(429).header('retry-after', String(waitS)).send(errorBody('rate_limited', `too many failed logins: try again in ${waitS} s`))
    }
    const given = (request.body as { password?: unknown } | undefined)?.password
    if (!isPassword(given)) {
      failures.push(now)
      log.warn({ ip: request.ip }, 'admin login refused')
      return reply.code(401).send(errorBody('unauthorized', 'wrong password'))
    }
    // A new session id at login: a session fixed before it is worth nothing.
    await request.session.regenerate()
    request.session.set('loggedInAt', Date.now())
    log.info({ ip: request.ip }, 'admin logged in')
    return { authenticated: true, csrfToken: reply.generateCsrf() }
  })

  /** Reads need a session; writes a session and the CSRF token. */
  const read = { onRequest: requireLogin }
  const write = { onRequest: [app.csrfProtection, requireLogin] }

  app.post('/api/logout', write, async (request) => {
    await request.session.destroy()
    return { authenticated: false }
  })

  /**
   * Every live edge with its lease's health; every live router (its presence worker's claim,
   * renewed every second while it runs) with its share of the presence partitions; and
   * whether this router reaches the registry.
   */
  app.get('/api/cluster', read, async () => {
    const self = options.presence.status()
    const router = { workerId: self.workerId, startedAt, presence: { owned: self.owned, partitions: self.partitions } }
    try {
      const now = Date.now()
      const [live, workers] = await Promise.all([registry.liveNodes(), registry.workers()])
      const nodes = live
        .map((n) => ({ nodeId: n.nodeId, connections: n.connections, draining: n.draining, startedAt: n.startedAt, leaseAgeMs: Math.max(0, leaseTtlMs - (n.expiresAt - now)), leaseTtlMs }))
        .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      return { registry: 'ok', nodes, routers: workers, router }
    } catch (err) {
      log.warn({ err }, 'admin: registry unavailable')
      return { registry: 'unavailable', nodes: [], routers: [], router }
    }
  })

  /** The charts' points: connections, and this router's recipients per second by result. */
  app.get('/api/traffic', read, async () => ({ samples: options.traffic.samples() }))

  /** A user: online or not, each connection, and their recent presence events. */
  app.get<{ Params: { userId: string } }>('/api/users/:userId', read, async (request) => {
    const presence = await api.presence({ userId: request.params.userId })
    const recent = await registry.recentFeed(USER_EVENTS_SCAN)
    const events = recent.filter((e) => e.event.userId === presence.userId).slice(0, USER_EVENTS_SHOWN).map((e) => e.event)
    return { ...presence, events, eventsScanned: USER_EVENTS_SCAN }
  })

  /** Closes every connection of the user (the disconnect API): the operator gives a reason, the log keeps who and why. */
  app.post<{ Params: { userId: string }; Body: { reason?: unknown } | undefined }>('/api/users/:userId/disconnect', write, async (request) => {
    const requestId = `admin-${randomUUID()}`
    const reason = request.body?.reason
    const answer = await api.disconnect(reason === undefined || reason === '' ? { userId: request.params.userId } : { userId: request.params.userId, reason }, requestId)
    log.info({ reqId: requestId, userId: request.params.userId, closed: answer.closed, ip: request.ip }, 'admin: user disconnected')
    return { requestId, ...answer }
  })

  /** A test push to users: the API's push, with its answer per recipient and the request id to find in the logs. */
  app.post<{ Body: { to?: unknown; event?: unknown; data?: unknown } | undefined }>('/api/push', write, async (request) => {
    const requestId = `admin-${randomUUID()}`
    const { to, event, data } = request.body ?? {}
    // Users only: a room or broadcast push is not a test push.
    const answer = await api.push({ to, event, data }, requestId)
    log.info({ reqId: requestId, recipients: Array.isArray(to) ? to.length : 0, ip: request.ip }, 'admin: test push sent')
    return { requestId, ...answer }
  })

  /** The live tail of presence events (newest first) and this router's webhook endpoints' state. */
  app.get('/api/events', read, async () => {
    const events = await registry.recentFeed(EVENTS_TAIL)
    return { events: events.map((e) => e.event), delivery: options.presence.status() }
  })

  /** A room: whether it exists, its members, who is online and on which edges. */
  app.get<{ Params: { room: string } }>('/api/rooms/:room', read, async (request) => {
    const requestId = `admin-${randomUUID()}`
    const { room } = request.params
    const info = await api.rooms.info(room)
    const presence = await api.rooms.presence(room, requestId)
    const page = await api.rooms.members(room, { limit: String(ROOM_MEMBERS_SHOWN) })
    const online = presence.users ?? []
    const located = online.length > 0 ? await registry.locate(online) : new Map<string, { nodeId: string }[]>()
    return {
      room,
      exists: info.exists,
      members: info.members,
      online: presence.online,
      // Listed when the room is small enough to list (ROOM_PUSH_LIST_MAX); counts otherwise.
      users: presence.users && online.map((userId) => ({ userId, nodes: [...new Set((located.get(userId) ?? []).map((c) => c.nodeId))].sort() })),
      offline: presence.offline,
      firstMembers: page.userIds,
      moreMembers: page.cursor !== undefined,
    }
  })

  return {
    async listen(host, port) {
      await app.listen({ host, port })
      const address = app.server.address()
      return typeof address === 'object' && address ? address.port : port
    },
    close: () => app.close(),
  }
}

/** @fastify/csrf-protection's refusals: no secret in the session (none, or expired), or a token that does not match it. */
const CSRF_ERRORS = new Set(['FST_CSRF_MISSING_SECRET', 'FST_CSRF_INVALID_TOKEN'])
const isCsrfError = (err: Error & { code?: unknown }) => typeof err.code === 'string' && CSRF_ERRORS.has(err.code)

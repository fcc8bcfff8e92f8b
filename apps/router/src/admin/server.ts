import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import fastifyCookie from '@fastify/cookie'
import fastifyCsrf from '@fastify/csrf-protection'
import fastifyHelmet from '@fastify/helmet'
import fastifySession from '@fastify/session'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { RouterRegistry } from '@switchboard/registry'

export interface AdminOptions {
  /** The admin's own credential (ROUTER_ADMIN_PASSWORD), distinct from the backends' API keys. */
  password: string
  /** A session lasts this long from its login, then the operator logs in again. */
  sessionTtlMs: number
  /** For the edges' lease age. */
  leaseTtlMs: number
  registry: Pick<RouterRegistry, 'liveNodes'>
  log: Logger
}

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
  const { password, sessionTtlMs, leaseTtlMs, registry, log } = options
  const app = Fastify({ loggerInstance: log.child({ service: 'admin' }), disableRequestLogging: true, bodyLimit: 16 << 10 })
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
    // Sessions live in this router's memory: they end with it (log in again), and are per router.
    secret: createHmac('sha256', password).update('switchboard admin session').digest('base64url'),
    cookieName: COOKIE,
    // Not Secure: the admin port is internal, reached over a port-forward in plain HTTP ('auto' would drop SameSite to Lax there).
    cookie: { httpOnly: true, sameSite: 'strict', secure: false, path: '/', maxAge: sessionTtlMs },
    saveUninitialized: false,
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

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _request, reply) => {
    const status = err.statusCode ?? 500
    if (status >= 500) log.error({ err }, 'admin request failed')
    const code = status === 403 ? 'forbidden' : status === 400 ? 'invalid_request' : status === 404 ? 'not_found' : 'internal'
    // A CSRF failure names itself; a 500 never leaks its message.
    return reply.code(status).send(errorBody(code, status >= 500 ? 'internal error' : err.message))
  })
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(errorBody('not_found', 'no such page')))

  /** Whether this browser is logged in, and a CSRF token for its next state-changing call. */
  app.get('/api/session', async (request, reply) => ({ authenticated: isLoggedIn(request), csrfToken: reply.generateCsrf() }))

  app.post('/api/login', { onRequest: app.csrfProtection }, async (request, reply) => {
    const given = (request.body as { password?: unknown } | undefined)?.password
    if (!isPassword(given)) {
      log.warn({ ip: request.ip }, 'admin login refused')
      return reply.code(401).send(errorBody('unauthorized', 'wrong password'))
    }
    // A new session id at login: a session fixed before it is worth nothing.
    await request.session.regenerate()
    request.session.set('loggedInAt', Date.now())
    log.info({ ip: request.ip }, 'admin logged in')
    return { authenticated: true, csrfToken: reply.generateCsrf() }
  })

  app.post('/api/logout', { onRequest: [app.csrfProtection, requireLogin] }, async (request) => {
    await request.session.destroy()
    return { authenticated: false }
  })

  /** Every live edge with its lease's health, and whether this router reaches the registry. */
  app.get('/api/cluster', { onRequest: requireLogin }, async () => {
    try {
      const now = Date.now()
      const nodes = (await registry.liveNodes())
        .map((n) => ({ nodeId: n.nodeId, connections: n.connections, draining: n.draining, startedAt: n.startedAt, leaseAgeMs: Math.max(0, leaseTtlMs - (n.expiresAt - now)), leaseTtlMs }))
        .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      return { registry: 'ok', nodes }
    } catch (err) {
      log.warn({ err }, 'admin: registry unavailable')
      return { registry: 'unavailable', nodes: [] }
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

function errorBody(code: string, message: string) {
  return { error: { code, message } }
}

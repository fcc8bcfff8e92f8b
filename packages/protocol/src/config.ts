import { createPublicKey, randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { z } from 'zod'
import { MAX_CONNECTIONS_PER_USER } from './internal.js'

const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback)
const ms = (fallback: number, min = 1) => z.coerce.number().int().min(min).max(86_400_000).default(fallback)
const bytes = (fallback: number) => z.coerce.number().int().min(64).max(1 << 30).default(fallback)
const secret = (minLength: number) => z.string().min(minLength, `must be at least ${minLength} characters`)
const list = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0))
const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')
const redisUrl = z.url({ protocol: /^rediss?$/ }).optional()
const hostPorts = list.pipe(
  z
    .array(
      z
        .string()
        .regex(/^[^\s:/]+:\d{1,5}$/, 'each entry must be host:port')
        .transform((hp) => ({ host: hp.slice(0, hp.lastIndexOf(':')), port: Number(hp.slice(hp.lastIndexOf(':') + 1)) })),
    )
    .min(1, 'needs at least one host:port'),
)

export interface HostPort {
  host: string
  port: number
}

/** Where the registry lives: one server (or a Sentinel-managed one by URL), a Cluster, or Sentinel. */
export type RedisTarget =
  | { kind: 'url'; url: string }
  | { kind: 'cluster'; nodes: HostPort[]; username?: string; password?: string }
  | { kind: 'sentinel'; sentinels: HostPort[]; name: string; username?: string; password?: string }

/** Client-token algorithms the edge can verify; anything else (`none` included) is refused. */
export const TokenAlgorithm = z.enum(['HS256', 'RS256', 'ES256'])
export type TokenAlgorithm = z.output<typeof TokenAlgorithm>

/** A PEM public key (RSA, or EC P-256); `\n` escapes are accepted for one-line env files. */
const publicKeyPem = z
  .string()
  .transform((s) => s.replace(/\\n/g, '\n'))
  .refine((pem) => {
    try {
      const key = createPublicKey(pem)
      return key.asymmetricKeyType === 'rsa' || key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
    } catch {
      return false // not a PEM public key: reported as the variable's error
    }
  }, 'must be a PEM public key (RSA, or EC P-256)')

/** Settings both services share. */
/** Default bounds of each user's inbox of kept pushes (INBOX_MAX_LEN, INBOX_TTL_S). */
export const DEFAULT_INBOX = { maxLen: 100, ttlMs: 300_000 } as const

/** Default room limits (ROOMS_MAX_MEMBERS, ROOMS_MAX_PER_USER, ROOM_NAME_MAX_LENGTH, ROOM_PUSH_LIST_MAX). */
export const DEFAULT_ROOMS = { maxMembers: 100_000, maxRoomsPerUser: 1_000, maxNameLength: 128, listMax: 1_000 } as const

/** TOKEN_MAX_LIFETIME_S's default: the longest a client token may be valid, and so a revocation kept. */
export const DEFAULT_TOKEN_MAX_LIFETIME_S = 86_400

const Shared = {
  REDIS_URL: redisUrl,
  REDIS_CLUSTER_NODES: hostPorts.optional(),
  REDIS_SENTINELS: hostPorts.optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).default('mymaster'),
  REDIS_USERNAME: z.string().min(1).optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
  REDIS_COMMAND_TIMEOUT_MS: ms(1_000),
  REGISTRY_PREFIX: z.string().max(64).regex(/^[\w:.-]*$/).default('sb:'),
  SWITCHBOARD_INTERNAL_TOKEN: secret(16),
  LEASE_TTL_MS: ms(10_000, 300),
  LOG_LEVEL: logLevel,
  PRESENCE_OFFLINE_GRACE_MS: ms(5_000, 0),
  PRESENCE_RETENTION_MS: z.coerce.number().int().min(1_000).max(30 * 86_400_000).default(25 * 3_600_000),
  INBOX_MAX_LEN: z.coerce.number().int().min(1).max(10_000).default(DEFAULT_INBOX.maxLen),
  INBOX_TTL_S: z.coerce.number().int().min(1).max(7 * 86_400).default(DEFAULT_INBOX.ttlMs / 1_000),
  ROOMS_MAX_MEMBERS: z.coerce.number().int().min(2).max(1_000_000).default(DEFAULT_ROOMS.maxMembers),
  ROOMS_MAX_PER_USER: z.coerce.number().int().min(1).max(100_000).default(DEFAULT_ROOMS.maxRoomsPerUser),
  ROOM_NAME_MAX_LENGTH: z.coerce.number().int().min(1).max(256).default(DEFAULT_ROOMS.maxNameLength),
  ROOM_PUSH_LIST_MAX: z.coerce.number().int().min(0).max(10_000).default(DEFAULT_ROOMS.listMax),
  TOKEN_MAX_LIFETIME_S: z.coerce.number().int().min(60).max(30 * 86_400).default(DEFAULT_TOKEN_MAX_LIFETIME_S),
}

/** The ceiling of EDGE_JWT_CLOCK_TOLERANCE_S: a revocation outlives every token it covers by this much more. */
export const MAX_CLOCK_TOLERANCE_S = 300

type SharedEnv = z.output<z.ZodObject<typeof Shared>>

/** At most one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS. */
const hasOneRedisTarget = (e: SharedEnv) => [e.REDIS_URL, e.REDIS_CLUSTER_NODES, e.REDIS_SENTINELS].filter((v) => v !== undefined).length <= 1
const ONE_REDIS_TARGET = { path: ['REDIS_URL'], message: 'set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS' }

function redisTarget(e: SharedEnv): RedisTarget | undefined {
  const auth = { username: e.REDIS_USERNAME, password: e.REDIS_PASSWORD }
  if (e.REDIS_URL) return { kind: 'url', url: e.REDIS_URL }
  if (e.REDIS_CLUSTER_NODES) return { kind: 'cluster', nodes: e.REDIS_CLUSTER_NODES, ...auth }
  if (e.REDIS_SENTINELS) return { kind: 'sentinel', sentinels: e.REDIS_SENTINELS, name: e.REDIS_SENTINEL_NAME, ...auth }
  return undefined
}

function sharedSettings(e: SharedEnv) {
  return {
    /** Unset: no Redis configured (only `npm start` runs without one). */
    redis: redisTarget(e),
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    registryPrefix: e.REGISTRY_PREFIX,
    internalToken: e.SWITCHBOARD_INTERNAL_TOKEN,
    leaseTtlMs: e.LEASE_TTL_MS,
    logLevel: e.LOG_LEVEL,
    /** Every process writing the registry must use the same (they are applied where the registry is written). */
    presence: { offlineGraceMs: e.PRESENCE_OFFLINE_GRACE_MS, retentionMs: e.PRESENCE_RETENTION_MS },
    /** Bounds of each user's inbox of kept pushes: routers append, edges create empty ones for connecting clients. */
    inbox: { maxLen: e.INBOX_MAX_LEN, ttlMs: e.INBOX_TTL_S * 1_000 },
    /** Room limits (routers enforce them; edges only read rooms). listMax: rooms up to this size get per-member lists in a push's answer. */
    rooms: { maxMembers: e.ROOMS_MAX_MEMBERS, maxRoomsPerUser: e.ROOMS_MAX_PER_USER, maxNameLength: e.ROOM_NAME_MAX_LENGTH, listMax: e.ROOM_PUSH_LIST_MAX },
    /**
     * Client tokens: edges refuse one whose lifetime (`exp` - `iat`, or `exp` - now without
     * `iat`) is longer; routers keep a revocation this long plus MAX_CLOCK_TOLERANCE_S, so it
     * outlives every token it covers.
     */
    tokenMaxLifetimeS: e.TOKEN_MAX_LIFETIME_S,
  }
}

const EdgeEnvShape = z.object({
  ...Shared,
  EDGE_HOST: z.string().min(1).default('0.0.0.0'),
  EDGE_PORT: port(8080),
  EDGE_INTERNAL_HOST: z.string().min(1).default('0.0.0.0'),
  EDGE_INTERNAL_PORT: port(8081),
  EDGE_NODE_ID: z.string().min(1).max(128).regex(/^[\w.-]+$/).optional(),
  EDGE_ADVERTISE_URL: z.url({ protocol: /^https?$/ }).optional(),
  EDGE_JWT_SECRET: secret(32).optional(),
  EDGE_JWT_PUBLIC_KEY: publicKeyPem.optional(),
  EDGE_JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  EDGE_JWT_ALGORITHMS: list.pipe(z.array(TokenAlgorithm).min(1)).optional(),
  EDGE_JWT_ISSUER: z.string().min(1).optional(),
  EDGE_JWT_AUDIENCE: z.string().min(1).optional(),
  EDGE_JWT_CLOCK_TOLERANCE_S: z.coerce.number().int().min(0).max(MAX_CLOCK_TOLERANCE_S).default(5),
  EDGE_TOKEN_MAX_ROOMS: z.coerce.number().int().min(0).max(1_000).default(100),
  EDGE_ALLOWED_ORIGINS: list.default(['*']),
  EDGE_DRAIN_MS: ms(10_000, 0),
  EDGE_MAX_FRAME_BYTES: bytes(4_096),
  EDGE_MAX_BACKPRESSURE_BYTES: bytes(1 << 20),
  EDGE_IDLE_TIMEOUT_S: z.coerce.number().int().min(8).max(960).default(120),
  EDGE_MAX_HANDSHAKES_PER_IP_PER_S: z.coerce.number().int().min(0).max(100_000).default(0),
  EDGE_MAX_FRAMES_PER_S: z.coerce.number().int().min(1).max(10_000).default(20),
  EDGE_MAX_CONNECTIONS_PER_USER: z.coerce.number().int().min(1).max(MAX_CONNECTIONS_PER_USER).default(16),
  EDGE_SESSION_POLICY: z.enum(['multi', 'single']).default('multi'),
})

/** Every variable the edge reads (anything else in its environment is ignored). */
export const EDGE_ENV_NAMES: readonly string[] = Object.keys(EdgeEnvShape.shape)

export const EdgeEnv = EdgeEnvShape
  .refine(hasOneRedisTarget, ONE_REDIS_TARGET)
  .refine((e) => e.EDGE_JWT_SECRET || e.EDGE_JWT_PUBLIC_KEY || e.EDGE_JWT_JWKS_URL, {
    path: ['EDGE_JWT_SECRET'],
    message: 'required: set EDGE_JWT_SECRET (HS256), EDGE_JWT_PUBLIC_KEY (RS256/ES256) or EDGE_JWT_JWKS_URL',
  })
  .transform((e) => ({
    ...sharedSettings(e),
    host: e.EDGE_HOST,
    port: e.EDGE_PORT,
    internalHost: e.EDGE_INTERNAL_HOST,
    internalPort: e.EDGE_INTERNAL_PORT,
    nodeId: e.EDGE_NODE_ID ?? `${hostname()}-${randomBytes(3).toString('hex')}`,
    /** Undefined means `http://127.0.0.1:<internal port actually bound>`. */
    advertiseUrl: e.EDGE_ADVERTISE_URL?.replace(/\/+$/, ''),
    jwt: {
      secret: e.EDGE_JWT_SECRET,
      publicKeyPem: e.EDGE_JWT_PUBLIC_KEY,
      jwksUrl: e.EDGE_JWT_JWKS_URL,
      /** Default: what the configured keys can verify. */
      algorithms: e.EDGE_JWT_ALGORITHMS ?? defaultAlgorithms(e.EDGE_JWT_SECRET, e.EDGE_JWT_PUBLIC_KEY, e.EDGE_JWT_JWKS_URL),
      issuer: e.EDGE_JWT_ISSUER,
      audience: e.EDGE_JWT_AUDIENCE,
      clockToleranceS: e.EDGE_JWT_CLOCK_TOLERANCE_S,
      /** The `rooms` claim: at most this many names, each at most ROOM_NAME_MAX_LENGTH. */
      maxRooms: e.EDGE_TOKEN_MAX_ROOMS,
      maxRoomNameLength: e.ROOM_NAME_MAX_LENGTH,
      maxLifetimeS: e.TOKEN_MAX_LIFETIME_S,
    },
    allowedOrigins: e.EDGE_ALLOWED_ORIGINS,
    drainMs: e.EDGE_DRAIN_MS,
    maxFrameBytes: e.EDGE_MAX_FRAME_BYTES,
    maxBackpressureBytes: e.EDGE_MAX_BACKPRESSURE_BYTES,
    idleTimeoutS: e.EDGE_IDLE_TIMEOUT_S,
    /** Client frames per second per socket, averaged over a 1 s window; beyond it, close 4009 (rate limited). */
    maxFramesPerS: e.EDGE_MAX_FRAMES_PER_S,
    /** 0: off. Behind a load balancer every client shares its few addresses, so leave it off there. */
    maxHandshakesPerIpPerS: e.EDGE_MAX_HANDSHAKES_PER_IP_PER_S,
    /** Cluster-wide, enforced atomically in the registry: a new connection evicts the user's oldest beyond it. */
    maxConnectionsPerUser: e.EDGE_SESSION_POLICY === 'single' ? 1 : e.EDGE_MAX_CONNECTIONS_PER_USER,
    sessionPolicy: e.EDGE_SESSION_POLICY,
  }))
export type EdgeConfig = Readonly<z.output<typeof EdgeEnv>>

function defaultAlgorithms(secret?: string, publicKeyPem?: string, jwksUrl?: string): TokenAlgorithm[] {
  const algs: TokenAlgorithm[] = []
  if (secret) algs.push('HS256')
  if (publicKeyPem) algs.push(createPublicKey(publicKeyPem).asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256')
  if (jwksUrl) algs.push('RS256', 'ES256')
  return [...new Set(algs)]
}

const RouterEnvShape = z.object({
  ...Shared,
  ROUTER_HOST: z.string().min(1).default('0.0.0.0'),
  ROUTER_PORT: port(3000),
  ROUTER_API_KEYS: list.pipe(z.array(secret(16)).min(1, 'needs at least one key')),
  ROUTER_FORWARD_TIMEOUT_MS: ms(2_000, 10),
  ROUTER_BODY_LIMIT_BYTES: bytes(1 << 20),
  ROUTER_MAX_RECIPIENTS: z.coerce.number().int().min(1).max(10_000).default(10_000),
  ROUTER_MAX_PRESENCE_BATCH: z.coerce.number().int().min(1).max(10_000).default(10_000),
  ROUTER_MAX_USER_ID_LENGTH: z.coerce.number().int().min(1).max(256).default(256),
  ROUTER_MAX_EVENT_LENGTH: z.coerce.number().int().min(1).max(256).default(256),
  ROUTER_PIPELINE_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(100_000).default(1_024),
  ROUTER_PIPELINE_MAX_BACKPRESSURE_BYTES: bytes(8 << 20),
  ROUTER_IDEMPOTENCY_RETENTION_MS: z.coerce.number().int().min(1_000).max(30 * 86_400_000).default(86_400_000),
  REGISTRY_REAP_GRACE_MS: ms(0, 0),
  PRESENCE_WEBHOOK_URL: list.pipe(z.array(z.url({ protocol: /^https?$/ }))).optional(),
  PRESENCE_WEBHOOK_SECRET: z
    .string()
    .transform((s) => s.split(/[\s,]+/).filter((x) => x.length > 0))
    .pipe(z.array(z.string().refine(isWebhookSecret, 'each secret must be whsec_ followed by the base64 of 24 to 64 bytes')).min(1))
    .optional(),
  PRESENCE_WEBHOOK_TIMEOUT_MS: ms(5_000, 10),
  PRESENCE_WEBHOOK_BATCH_MAX: z.coerce.number().int().min(1).max(1_000).default(100),
  PRESENCE_WEBHOOK_BATCH_MS: ms(250, 0),
  PRESENCE_WEBHOOK_RETRY_FOR_MS: z.coerce.number().int().min(1_000).max(30 * 86_400_000).default(86_400_000),
  PRESENCE_WEBHOOK_RETRY_MAX_MS: z.coerce.number().int().min(500).max(3_600_000).default(300_000),
  PRESENCE_POLL_MS: ms(250, 10),
  PUSH_KEEP_DEFAULT: z.enum(['true', 'false']).default('false'),
  ROUTER_ADMIN_PORT: z.coerce.number().int().min(0).max(65_535).optional(),
  ROUTER_ADMIN_HOST: z.string().min(1).default('0.0.0.0'),
  ROUTER_ADMIN_PASSWORD: secret(16).optional(),
  ROUTER_ADMIN_SESSION_TTL_S: z.coerce.number().int().min(1).max(7 * 86_400).default(3_600),
})

/** `whsec_` and the base64 of a 24 to 64 byte key (the Standard Webhooks secret format). */
function isWebhookSecret(s: string): boolean {
  if (!/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(s)) return false
  const bytes = Buffer.from(s.slice(6), 'base64').length
  return bytes >= 24 && bytes <= 64
}

/** Every variable the router reads (anything else in its environment is ignored). */
export const ROUTER_ENV_NAMES: readonly string[] = Object.keys(RouterEnvShape.shape)

export const RouterEnv = RouterEnvShape
  .refine(hasOneRedisTarget, ONE_REDIS_TARGET)
  .refine((e) => !e.PRESENCE_WEBHOOK_URL?.length || e.PRESENCE_WEBHOOK_SECRET, {
    path: ['PRESENCE_WEBHOOK_SECRET'],
    message: 'required with PRESENCE_WEBHOOK_URL: one or more whsec_ secrets',
  })
  .refine((e) => e.ROUTER_ADMIN_PORT === undefined || e.ROUTER_ADMIN_PASSWORD !== undefined, {
    path: ['ROUTER_ADMIN_PASSWORD'],
    message: 'required with ROUTER_ADMIN_PORT: the admin web\'s password (at least 16 characters)',
  })
  .refine((e) => e.PRESENCE_RETENTION_MS >= e.PRESENCE_WEBHOOK_RETRY_FOR_MS, {
    path: ['PRESENCE_RETENTION_MS'],
    message: 'must be at least PRESENCE_WEBHOOK_RETRY_FOR_MS, or retried events could be trimmed first',
  })
  .transform((e) => ({
    ...sharedSettings(e),
    host: e.ROUTER_HOST,
    port: e.ROUTER_PORT,
    apiKeys: e.ROUTER_API_KEYS,
    forwardTimeoutMs: e.ROUTER_FORWARD_TIMEOUT_MS,
    bodyLimitBytes: e.ROUTER_BODY_LIMIT_BYTES,
    maxRecipients: e.ROUTER_MAX_RECIPIENTS,
    maxPresenceBatch: e.ROUTER_MAX_PRESENCE_BATCH,
    maxUserIdLength: e.ROUTER_MAX_USER_ID_LENGTH,
    maxEventLength: e.ROUTER_MAX_EVENT_LENGTH,
    /** Requests a pipelined-ingress connection may have unanswered; more are answered 429 at once. */
    pipelineMaxInFlight: e.ROUTER_PIPELINE_MAX_IN_FLIGHT,
    /** Unsent answer bytes a pipelined-ingress connection may queue; past it, close 4008. */
    pipelineMaxBackpressureBytes: e.ROUTER_PIPELINE_MAX_BACKPRESSURE_BYTES,
    reapGraceMs: e.REGISTRY_REAP_GRACE_MS,
    /** How long the answer of a push or broadcast sent with an Idempotency-Key is replayed. */
    idempotencyRetentionMs: e.ROUTER_IDEMPOTENCY_RETENTION_MS,
    webhooks: {
      urls: e.PRESENCE_WEBHOOK_URL ?? [],
      secrets: e.PRESENCE_WEBHOOK_SECRET ?? [],
      timeoutMs: e.PRESENCE_WEBHOOK_TIMEOUT_MS,
      batchMax: e.PRESENCE_WEBHOOK_BATCH_MAX,
      batchMs: e.PRESENCE_WEBHOOK_BATCH_MS,
      retryForMs: e.PRESENCE_WEBHOOK_RETRY_FOR_MS,
      /** The ceiling of a retry's jittered delay: how long a recovered endpoint may wait at most for the next attempt. */
      retryMaxMs: e.PRESENCE_WEBHOOK_RETRY_MAX_MS,
    },
    /** How often a router's delivery worker settles held offlines and reads its partitions. */
    presencePollMs: e.PRESENCE_POLL_MS,
    /** Whether a push that does not say `keep` is kept for recovery. */
    keepByDefault: e.PUSH_KEEP_DEFAULT === 'true',
    /** The admin web on its own port; undefined (off) unless ROUTER_ADMIN_PORT is set. */
    admin:
      e.ROUTER_ADMIN_PORT === undefined
        ? undefined
        : { port: e.ROUTER_ADMIN_PORT, host: e.ROUTER_ADMIN_HOST, password: e.ROUTER_ADMIN_PASSWORD!, sessionTtlMs: e.ROUTER_ADMIN_SESSION_TTL_S * 1_000 },
  }))
export type RouterConfig = Readonly<z.output<typeof RouterEnv>>

/** Parses the environment; a bad value throws one error naming every bad variable. */
export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): Readonly<z.output<S>> {
  // An empty variable means "unset", as in most deployment tools.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''))
  const r = schema.safeParse(cleaned)
  if (r.success) return Object.freeze(r.data)
  const lines = r.error.issues.map((i) => `  ${i.path.join('.') || 'environment'}: ${i.message}`)
  throw new Error(`invalid configuration:\n${lines.join('\n')}`)
}

import { z } from 'zod'
import { DEFAULT_TOKEN_MAX_LIFETIME_S } from '@switchboard/protocol'
import { DEFAULT_INBOX, DEFAULT_ROOMS, type RedisTarget } from '@switchboard/registry'

export { configOrExit, exitOnSignal } from './signals.js'

/**
 * Reading a service's environment: the field types, the variables every service reads (the
 * registry's, the internal token, the log level, the tokens' longest lifetime) and
 * `loadConfig`; and a service's ending on SIGTERM (`exitOnSignal`). Each app declares its own
 * variables beside it (apps/edge, apps/router config.ts).
 */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback)
export const ms = (fallback: number, min = 1) => z.coerce.number().int().min(min).max(86_400_000).default(fallback)
export const bytes = (fallback: number) => z.coerce.number().int().min(64).max(1 << 30).default(fallback)
export const secret = (minLength: number) => z.string().min(minLength, `must be at least ${minLength} characters`)
export const list = z
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

/** The variables both services read. */
export const SharedEnv = {
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

type SharedEnv = z.output<z.ZodObject<typeof SharedEnv>>

/** At most one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS. */
export const hasOneRedisTarget = (e: SharedEnv) => [e.REDIS_URL, e.REDIS_CLUSTER_NODES, e.REDIS_SENTINELS].filter((v) => v !== undefined).length <= 1
export const ONE_REDIS_TARGET = { path: ['REDIS_URL'], message: 'set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS' }

function redisTarget(e: SharedEnv): RedisTarget | undefined {
  const auth = { username: e.REDIS_USERNAME, password: e.REDIS_PASSWORD }
  if (e.REDIS_URL) return { kind: 'url', url: e.REDIS_URL }
  if (e.REDIS_CLUSTER_NODES) return { kind: 'cluster', nodes: e.REDIS_CLUSTER_NODES, ...auth }
  if (e.REDIS_SENTINELS) return { kind: 'sentinel', sentinels: e.REDIS_SENTINELS, name: e.REDIS_SENTINEL_NAME, ...auth }
  return undefined
}

/** The settings both services take from `SharedEnv`. */
export function sharedSettings(e: SharedEnv) {
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

/** Parses the environment; a bad value throws one error naming every bad variable. */
export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): Readonly<z.output<S>> {
  // An empty variable means "unset", as in most deployment tools.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''))
  const r = schema.safeParse(cleaned)
  if (r.success) return Object.freeze(r.data)
  const lines = r.error.issues.map((i) => `  ${i.path.join('.') || 'environment'}: ${i.message}`)
  throw new Error(`invalid configuration:\n${lines.join('\n')}`)
}

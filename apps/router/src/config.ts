import { z } from 'zod'
import { ONE_REDIS_TARGET, SharedEnv, bytes, hasOneRedisTarget, list, loadConfig, ms, port, secret, sharedSettings } from '@switchboard/config'

const RouterEnvShape = z.object({
  ...SharedEnv,
  ROUTER_HOST: z.string().min(1).default('0.0.0.0'),
  ROUTER_PORT: port(3000),
  ROUTER_API_KEYS: list.pipe(z.array(secret(16)).min(1, 'needs at least one key')),
  ROUTER_FORWARD_TIMEOUT_MS: ms(2_000, 10),
  ROUTER_COALESCE_MS: z.coerce.number().int().min(0).max(10).default(1),
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
    /** How long a push's registry lookup waits for others to share its Redis call, link frames and answer frame (0: one turn). */
    coalesceMs: e.ROUTER_COALESCE_MS,
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


export function loadRouterConfig(env: Record<string, string | undefined>): RouterConfig {
  return loadConfig(RouterEnv, env)
}

import { createPublicKey, randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { z } from 'zod'
import { ONE_REDIS_TARGET, SharedEnv, bytes, hasOneRedisTarget, list, loadConfig, ms, port, secret, sharedSettings } from '@switchboard/config'
import { MAX_CLOCK_TOLERANCE_S, MAX_CONNECTIONS_PER_USER } from '@switchboard/protocol'

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

const EdgeEnvShape = z.object({
  ...SharedEnv,
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


export function loadEdgeConfig(env: Record<string, string | undefined>): EdgeConfig {
  return loadConfig(EdgeEnv, env)
}

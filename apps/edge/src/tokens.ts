import { createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import type { Logger } from 'pino'
import { DEFAULT_TOKEN_MAX_LIFETIME_S, RoomName, UserId } from '@switchboard/protocol'
import type { TokenAlgorithm } from './config.js'

/** What a valid client token says: who, until when, since when, and the rooms its connection joins (the `rooms` claim). */
export interface VerifiedToken {
  userId: string
  /** s epoch: the connection is closed (4002) once it passes, with the clock tolerance, unless refreshed. */
  exp: number
  /** s epoch, possibly fractional; undefined when the token has no `iat` (refused while its user has a revocation). */
  iat: number | undefined
  rooms: readonly string[]
}

/** Verifies a client token; throws `TokenError` on anything else. */
export type TokenVerifier = (token: string) => VerifiedToken

export class TokenError extends Error {
  override readonly name = 'TokenError'
  /**
   * Said to the client when set: a validly signed token whose claims are out of bounds (never
   * why a signature or an expiry failed, which stays 'invalid or expired token').
   */
  readonly publicMessage: string | undefined
  constructor(message: string, publicMessage?: string) {
    super(message)
    this.publicMessage = publicMessage
  }
}

const NO_ROOMS: readonly string[] = Object.freeze([])

export interface TokenRules {
  /** Explicit allow-list: a token whose header names another algorithm (`none` included) is refused. */
  algorithms: readonly TokenAlgorithm[]
  issuer?: string | undefined
  audience?: string | undefined
  clockToleranceS: number
  /** The `rooms` claim's bounds (EDGE_TOKEN_MAX_ROOMS, ROOM_NAME_MAX_LENGTH); default 100 and 128. */
  maxRooms?: number
  maxRoomNameLength?: number
  /**
   * TOKEN_MAX_LIFETIME_S: a token valid for longer (`exp` - `iat`, or `exp` - now without `iat`)
   * is refused, so a revocation kept that long outlives every token it covers. Default 24 h.
   */
  maxLifetimeS?: number
}

export interface TokenKeys {
  /** HS256 only. */
  secret?: string | undefined
  /** RS256 (RSA) or ES256 (EC P-256). */
  publicKey?: KeyObject | undefined
  /** Keys by `kid`, for tokens that name one. */
  jwks?: { get(kid: string): KeyObject | undefined } | undefined
}

/**
 * Synchronous on purpose: uWS v20 may close a socket upgraded after an await
 * (uNetworking/uWebSockets#1929, fixed upstream after the build we use), so the edge
 * verifies inside the upgrade handler and upgrades there. jose parses the token;
 * node:crypto checks the signature. Each algorithm takes only its own kind of key, so an
 * HS256 token "signed" with a public key, or an RS256 header over an HMAC, never passes.
 * `exp` and `sub` are required, `nbf`, `iss` and `aud` are checked, with a small tolerance.
 * A token without `exp` is always refused: it would outlive any expiry check on live sockets
 * and any revocation (README, "Token lifetime").
 */
export function createTokenVerifier(keys: TokenKeys, rules: TokenRules, nowS = () => Date.now() / 1000): TokenVerifier {
  const allowed = new Set<string>(rules.algorithms)
  return (token) => {
    const parts = token.split('.')
    if (parts.length !== 3) throw new TokenError('malformed token')
    const [header = '', payload = '', signature = ''] = parts
    const { alg, kid } = decodeProtectedHeader(token)
    if (!alg || !allowed.has(alg)) throw new TokenError('algorithm not allowed')
    if (!isSignedBy(alg as TokenAlgorithm, `${header}.${payload}`, signature, keys, kid)) throw new TokenError('bad signature')

    const claims = decodeJwt(token)
    const now = nowS()
    const tolerance = rules.clockToleranceS
    if (typeof claims.exp !== 'number') throw new TokenError('exp required')
    if (claims.exp <= now - tolerance) throw new TokenError('expired')
    if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf > now + tolerance)) throw new TokenError('not yet valid')
    if (rules.issuer !== undefined && claims.iss !== rules.issuer) throw new TokenError('wrong issuer')
    if (rules.audience !== undefined && !(Array.isArray(claims.aud) ? claims.aud.includes(rules.audience) : claims.aud === rules.audience)) {
      throw new TokenError('wrong audience')
    }
    const iat = claims.iat
    if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat))) throw new TokenError('bad iat')
    const maxLifetimeS = rules.maxLifetimeS ?? DEFAULT_TOKEN_MAX_LIFETIME_S
    if (claims.exp - (iat ?? now) > maxLifetimeS) {
      throw new TokenError('lifetime too long', `token: valid for longer than the edge accepts (at most ${maxLifetimeS} s from iat to exp)`)
    }
    const sub = UserId.safeParse(claims.sub)
    if (!sub.success) throw new TokenError('sub required')
    return { userId: sub.data, exp: claims.exp, iat, rooms: claims.rooms === undefined ? NO_ROOMS : roomsClaim(claims.rooms, rules) }
  }
}

/** The `rooms` claim: an array of distinct room names within the configured bounds, else the token is refused with a clear message. */
function roomsClaim(value: unknown, rules: TokenRules): readonly string[] {
  const maxRooms = rules.maxRooms ?? 100
  const maxLength = rules.maxRoomNameLength ?? 128
  const ok =
    Array.isArray(value) &&
    value.length <= maxRooms &&
    value.every((r) => RoomName.safeParse(r).success && (r as string).length <= maxLength)
  if (!ok) throw new TokenError('bad rooms claim', `token: rooms must be an array of at most ${maxRooms} room names of 1 to ${maxLength} printable characters`)
  return [...new Set(value as string[])]
}

function isSignedBy(alg: TokenAlgorithm, signingInput: string, signature: string, keys: TokenKeys, kid: string | undefined): boolean {
  if (alg === 'HS256') {
    if (!keys.secret) return false
    // Compared as canonical base64url, so no other spelling of the same bytes passes.
    return equalStrings(signature, createHmac('sha256', keys.secret).update(signingInput).digest('base64url'))
  }
  const key = (kid === undefined ? undefined : keys.jwks?.get(kid)) ?? keys.publicKey
  if (!key || !fitsAlgorithm(key, alg)) return false
  const bytes = Buffer.from(signature, 'base64url')
  if (bytes.toString('base64url') !== signature) return false
  const data = Buffer.from(signingInput)
  return alg === 'RS256' ? verify('sha256', data, key, bytes) : verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, bytes)
}

function fitsAlgorithm(key: KeyObject, alg: TokenAlgorithm): boolean {
  if (key.type !== 'public') return false
  if (alg === 'RS256') return key.asymmetricKeyType === 'rsa'
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
}

function equalStrings(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export interface JwksOptions {
  url: string
  log: Logger
  /** Regular refresh. */
  refreshMs?: number
  /** An unknown `kid` triggers a refresh, at most this often (the token is refused meanwhile). */
  minRefreshGapMs?: number
  timeoutMs?: number
}

/**
 * Public keys from a JWKS URL, cached by `kid` so verification stays synchronous. Refreshed
 * in the background; a token naming an unknown `kid` is refused and triggers an early
 * refresh (rate-limited), so a rotated-in key is picked up within seconds.
 */
export class JwksCache {
  #keys = new Map<string, KeyObject>()
  #fetchedAt = 0
  #fetching: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(private readonly options: JwksOptions) {}

  /** Fetches once (a failure is logged, not thrown: tokens are refused until a fetch succeeds) and keeps refreshing. */
  async start(): Promise<void> {
    await this.refresh()
    this.#timer = setInterval(() => void this.refresh(), this.options.refreshMs ?? 600_000)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  get size(): number {
    return this.#keys.size
  }

  get(kid: string): KeyObject | undefined {
    const key = this.#keys.get(kid)
    if (!key && Date.now() - this.#fetchedAt >= (this.options.minRefreshGapMs ?? 30_000)) void this.refresh()
    return key
  }

  refresh(): Promise<void> {
    this.#fetching ??= this.#fetch().finally(() => (this.#fetching = undefined))
    return this.#fetching
  }

  async #fetch(): Promise<void> {
    this.#fetchedAt = Date.now()
    try {
      const res = await fetch(this.options.url, { signal: AbortSignal.timeout(this.options.timeoutMs ?? 5_000) })
      if (!res.ok) throw new Error(`JWKS answered ${res.status}`)
      const body = (await res.json()) as { keys?: unknown }
      if (!Array.isArray(body.keys)) throw new Error('JWKS has no keys array')
      const keys = new Map<string, KeyObject>()
      for (const jwk of body.keys as { kid?: unknown; use?: unknown }[]) {
        if (typeof jwk.kid !== 'string' || jwk.use === 'enc') continue
        try {
          keys.set(jwk.kid, createPublicKey({ key: jwk as never, format: 'jwk' }))
        } catch (err) {
          this.options.log.warn({ err, kid: jwk.kid }, 'skipping a JWKS key that cannot be imported')
        }
      }
      this.#keys = keys
      this.options.log.info({ keys: keys.size }, 'JWKS loaded')
    } catch (err) {
      this.options.log.warn({ err, url: this.options.url }, 'JWKS fetch failed; keeping the keys we had')
    }
  }
}

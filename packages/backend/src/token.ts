import { createPrivateKey, type KeyObject } from 'node:crypto'
import type { JWTPayload } from 'jose'
import { SwitchboardApiError } from './errors.js'

export interface ClientTokenOptions {
  /** The user id: the token's `sub`, which the edge takes as the connection's user. */
  userId: string
  /** How long the token is valid: a jose time span (`"15m"`, `"1h"`, `"7d"`) or seconds as a number. Default `"1h"`. Edges refuse tokens without `exp`. */
  expiresIn?: string | number
  /** HS256: the edge's EDGE_JWT_SECRET (at least 32 characters). Give this or `privateKey`. */
  secret?: string | Uint8Array
  /** RS256/ES256: a PEM private key (or KeyObject) whose public half the edge has (EDGE_JWT_PUBLIC_KEY or JWKS). */
  privateKey?: string | KeyObject
  /** Default: HS256 with `secret`; RS256 or ES256 (P-256) from the key's type with `privateKey`. */
  algorithm?: 'HS256' | 'RS256' | 'ES256'
  /** `kid` header, for an edge that verifies against a JWKS. */
  keyId?: string
  /** `iss`, if the edge checks EDGE_JWT_ISSUER. */
  issuer?: string
  /** `aud`, if the edge checks EDGE_JWT_AUDIENCE. */
  audience?: string | string[]
  /** More claims, for the app's own use. */
  claims?: JWTPayload
}

/** The shortest HS256 secret an edge accepts (EDGE_JWT_SECRET). */
const MIN_SECRET_LENGTH = 32

/**
 * A client token for `userId`, signed the way the edges verify it. Mint it in the backend
 * that authenticated the user and hand it to the user's app, which connects to
 * `ws://<edge>/v1/ws?token=<token>`.
 */
export async function mintClientToken(options: ClientTokenOptions): Promise<string> {
  const { userId, secret, privateKey } = options
  if (typeof userId !== 'string' || userId.length === 0) throw invalid('userId: required')
  if ((secret === undefined) === (privateKey === undefined)) throw invalid('give exactly one of secret (HS256) and privateKey (RS256/ES256)')
  let key: Uint8Array | KeyObject
  let algorithm = options.algorithm
  if (secret !== undefined) {
    key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
    if (key.length < MIN_SECRET_LENGTH) throw invalid(`secret: must be at least ${MIN_SECRET_LENGTH} bytes, as the edge requires of EDGE_JWT_SECRET`)
    algorithm ??= 'HS256'
    if (algorithm !== 'HS256') throw invalid(`algorithm: a secret signs HS256, not ${algorithm}`)
  } else {
    try {
      key = typeof privateKey === 'string' ? createPrivateKey(privateKey.replace(/\\n/g, '\n')) : privateKey!
    } catch (err) {
      throw invalid('privateKey: not a PEM private key', err)
    }
    algorithm ??= key.asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256'
    if (algorithm === 'HS256') throw invalid('algorithm: a private key signs RS256 or ES256, not HS256')
  }
  // Loaded at the first token, so that importing the package stays cheap for callers that mint none.
  const { SignJWT } = await import('jose')
  const jwt = new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: algorithm, typ: 'JWT', ...(options.keyId ? { kid: options.keyId } : {}) })
    .setSubject(userId)
    // In ms precision: a token minted right after a revocation (POST /v1/users/:userId/revoke) is not covered by it.
    .setIssuedAt(Date.now() / 1_000)
    // jose reads a number as an absolute time; here it is a span, like the strings.
    .setExpirationTime(typeof options.expiresIn === 'number' ? Math.floor(Date.now() / 1000) + options.expiresIn : (options.expiresIn ?? '1h'))
  if (options.issuer !== undefined) jwt.setIssuer(options.issuer)
  if (options.audience !== undefined) jwt.setAudience(options.audience)
  try {
    return await jwt.sign(key)
  } catch (err) {
    throw invalid(`cannot sign the token: ${(err as Error).message}`, err)
  }
}

function invalid(message: string, cause?: unknown): SwitchboardApiError {
  return new SwitchboardApiError('invalid_argument', message, { cause })
}

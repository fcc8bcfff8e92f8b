import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'

export interface DevSecrets {
  jwtSecret: string
  apiKey: string
  internalToken: string
}

/** Fresh secrets for one local run: nothing is hard-coded, nothing outlives the run. */
export function generateSecrets(): DevSecrets {
  const hex = (n: number) => randomBytes(n).toString('hex')
  return { jwtSecret: hex(32), apiKey: `sk_dev_${hex(16)}`, internalToken: hex(24) }
}

export function mintDevToken(jwtSecret: string, userId: string, expiresIn = '24h'): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(jwtSecret))
}

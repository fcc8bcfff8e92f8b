import { SignJWT } from 'jose'

/** An HS256 client token for `userId`, as an app's own backend would mint one. */
export function mintDevToken(jwtSecret: string, userId: string, expiresIn = '24h'): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt(Date.now() / 1_000) // ms precision: not covered by a revocation just before it
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(jwtSecret))
}

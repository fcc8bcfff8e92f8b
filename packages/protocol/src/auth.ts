import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Checks an `Authorization` header against `Bearer <secret>` for any of `secrets`, in
 * constant time: the presented value is hashed and compared with every secret, so neither
 * timing nor the number of secrets says which one matched.
 */
export function createBearerCheck(secrets: readonly string[]): (authorization: string) => boolean {
  const expected = secrets.map((s) => digest(`Bearer ${s}`))
  return (authorization) => {
    const presented = digest(authorization)
    let ok = false
    for (const e of expected) ok = timingSafeEqual(presented, e) || ok
    return ok
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

import { randomBytes } from 'node:crypto'

/**
 * Request ids unique within one client: a random prefix, which also tells this client's
 * requests apart from other backends' in the router's logs, and a base-36 counter. Every
 * character is in REQUEST_ID's alphabet, and ids stay short (about 10 characters).
 */
export function createRequestIds(): () => string {
  const prefix = randomBytes(4).toString('base64url')
  let next = 0
  return () => `${prefix}.${(next++).toString(36)}`
}

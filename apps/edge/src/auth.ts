import { BEARER_PROTOCOL_PREFIX, SUBPROTOCOL } from '@switchboard/protocol'

/** `*` allows any origin; a request without Origin (not a browser) is always allowed. */
export function createOriginCheck(allowed: readonly string[]): (origin: string) => boolean {
  if (allowed.includes('*')) return () => true
  const set = new Set(allowed)
  return (origin) => origin === '' || set.has(origin)
}

/**
 * A browser cannot set headers on a websocket, so a client may offer its token as a
 * subprotocol `bearer.<JWT>` next to `switchboard.v1`. Returns the token and the
 * subprotocol to select: never the token itself, so it is not echoed into logs or proxies.
 */
export function tokenFromProtocols(header: string): { token: string | undefined; selected: string } {
  let token: string | undefined
  const others: string[] = []
  for (const p of header.split(',')) {
    const value = p.trim()
    if (value.startsWith(BEARER_PROTOCOL_PREFIX)) token ??= value.slice(BEARER_PROTOCOL_PREFIX.length)
    else if (value) others.push(value)
  }
  return { token, selected: others.includes(SUBPROTOCOL) ? SUBPROTOCOL : (others[0] ?? '') }
}

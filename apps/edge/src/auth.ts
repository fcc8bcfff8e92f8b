import { BEARER_PROTOCOL_PREFIX, RESUME_PROTOCOL_PREFIX, SUBPROTOCOL, parseResumeProtocol, type Position } from '@switchboard/protocol'

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
 * A client that wants recovery also offers `resume.<epoch>.<offset>` or `resume.start` (never
 * selected; a malformed one is ignored, so the client just gets no replay).
 */
export function tokenFromProtocols(header: string): { token: string | undefined; selected: string; resume: { from: Position | undefined } | undefined } {
  let token: string | undefined
  let resume: { from: Position | undefined } | undefined
  const others: string[] = []
  for (const p of header.split(',')) {
    const value = p.trim()
    if (value.startsWith(BEARER_PROTOCOL_PREFIX)) token ??= value.slice(BEARER_PROTOCOL_PREFIX.length)
    else if (value.startsWith(RESUME_PROTOCOL_PREFIX)) resume ??= parseResumeProtocol(value)
    else if (value) others.push(value)
  }
  return { token, resume, selected: others.includes(SUBPROTOCOL) ? SUBPROTOCOL : (others[0] ?? '') }
}

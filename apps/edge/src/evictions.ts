import type { Logger } from 'pino'
import { CloseCode, linkOps, type CloseCause, type InternalDisconnect } from '@switchboard/protocol'
import type { Evicted, RouterRegistry } from '@switchboard/registry'

/**
 * How an evicted socket is closed under each session policy: 4501 when a newer session
 * replaced it (single), 4502 past the per-user limit (multi), and the cause its removal carries.
 */
export const evictionCloses = {
  single: { code: CloseCode.replaced, reason: 'replaced by a newer session', cause: 'replaced' },
  multi: { code: CloseCode.tooManyConnections, reason: 'too many connections for this user', cause: 'evicted' },
} as const satisfies Record<string, { code: 4501 | 4502; reason: string; cause: CloseCause }>

export interface EvictionDeps {
  /** To find the edges holding evicted connections. */
  registry: Pick<RouterRegistry, 'liveNodes'>
  internalToken: string
  log: Logger
  policy: keyof typeof evictionCloses
  /** Closes the socket if it is on this edge; false if it is not here. */
  closeLocal: (connId: string, code: number, reason: string, cause: CloseCause) => boolean
  timeoutMs?: number
}

/**
 * Closes the sockets whose entries the registry evicted to keep a user within the limit:
 * here directly, elsewhere through the holding edge's internal disconnect call. The entry
 * is already gone, so a socket that cannot be reached only misses pushes until it closes.
 */
export function createEvictor(deps: EvictionDeps): (evicted: readonly Evicted[]) => Promise<void> {
  const { registry, log } = deps
  const { code, reason, cause } = evictionCloses[deps.policy]
  return async (evicted) => {
    // A socket on another edge is closed by that edge's disconnect call, so there its cause is
    // disconnect_api; the registry already removed the entry, so no offline event carries it.
    // A revoked one is always this edge's own (its write was refused), never written: 4503.
    const remote = evicted.filter((e) =>
      e.revoked ? (deps.closeLocal(e.connId, CloseCode.revoked, 'token revoked', 'revoked'), false) : !deps.closeLocal(e.connId, code, reason, cause),
    )
    if (remote.length === 0) return
    const urls = new Map((await registry.liveNodes()).map((n) => [n.incId, n.url]))
    // One call per (edge, user): edge URL -> userId -> connIds.
    const byEdge = new Map<string, Map<string, string[]>>()
    for (const e of remote) {
      const url = urls.get(e.incId)
      if (!url) continue // its edge is gone, and the socket with it
      const users = byEdge.get(url) ?? new Map<string, string[]>()
      users.set(e.userId, [...(users.get(e.userId) ?? []), e.connId])
      byEdge.set(url, users)
    }
    const calls = [...byEdge].flatMap(([url, users]) =>
      [...users].map(([userId, connIds]): [string, InternalDisconnect] => [url, { userId, connIds, code, reason }]),
    )
    await Promise.all(
      calls.map(async ([url, body]) => {
        try {
          const res = await fetch(url + linkOps.disconnect.http, {
            method: 'POST',
            headers: { authorization: `Bearer ${deps.internalToken}`, 'content-type': 'application/json' },
            body: linkOps.disconnect.encode(body),
            signal: AbortSignal.timeout(deps.timeoutMs ?? 2_000),
          })
          if (!res.ok) throw new Error(`edge answered ${res.status}`)
        } catch (err) {
          log.warn({ err, edge: url, userId: body.userId }, 'closing an evicted connection failed')
        }
      }),
    )
  }
}

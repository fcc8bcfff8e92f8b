import type { Logger } from 'pino'
import { CloseReasons, linkOps, type CloseReason, type InternalDisconnect } from '@switchboard/protocol'
import type { Evicted, RouterRegistry } from '@switchboard/registry'

/** How an evicted socket is closed under each session policy: replaced by a newer session (single), past the per-user limit (multi). */
export const evictionCloses = {
  single: 'replaced',
  multi: 'too_many_connections',
} as const satisfies Record<string, CloseReason>

export interface EvictionDeps {
  /** To find the edges holding evicted connections. */
  registry: Pick<RouterRegistry, 'liveNodes'>
  internalToken: string
  log: Logger
  policy: keyof typeof evictionCloses
  /** Closes the socket if it is on this edge; false if it is not here. */
  closeLocal: (connId: string, reason: CloseReason) => boolean
  timeoutMs?: number
}

/**
 * Closes the sockets whose entries the registry evicted to keep a user within the limit:
 * here directly, elsewhere through the holding edge's internal disconnect call. The entry
 * is already gone, so a socket that cannot be reached only misses pushes until it closes.
 */
export function createEvictor(deps: EvictionDeps): (evicted: readonly Evicted[]) => Promise<void> {
  const { registry, log } = deps
  const reason = evictionCloses[deps.policy]
  const { code, text } = CloseReasons[reason]
  return async (evicted) => {
    // A socket on another edge is closed by that edge's disconnect call, so there its cause is
    // disconnect_api; the registry already removed the entry, so no offline event carries it.
    // A revoked one is always this edge's own (its write was refused), never written: 4503.
    const remote = evicted.filter((e) =>
      e.revoked ? (deps.closeLocal(e.connId, 'revoked'), false) : !deps.closeLocal(e.connId, reason),
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
      [...users].map(([userId, connIds]): [string, InternalDisconnect] => [url, { userId, connIds, code, reason: text }]),
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

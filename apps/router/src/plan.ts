import type { Located } from '@switchboard/registry'

export interface DeliveryPlan {
  /** Recipients by edge URL, each user once per edge. */
  byEdge: Map<string, string[]>
  /** Recipients without a live connection. */
  offline: string[]
}

export function planDelivery(to: Iterable<string>, where: ReadonlyMap<string, readonly Located[]>): DeliveryPlan {
  const byEdge = new Map<string, string[]>()
  const offline: string[] = []
  for (const userId of to) {
    const conns = where.get(userId)
    if (!conns?.length) {
      offline.push(userId)
      continue
    }
    for (const url of new Set(conns.map((c) => c.url))) {
      const ids = byEdge.get(url)
      if (ids) ids.push(userId)
      else byEdge.set(url, [userId])
    }
  }
  return { byEdge, offline }
}

/** One edge's answer for its share of the recipients: the users it wrote to, or a failure. */
export type EdgeOutcome = { users: readonly string[]; delivered: readonly string[] } | { users: readonly string[]; failed: true }

/**
 * Every recipient in exactly one list: `delivered` if any edge wrote to one of its sockets,
 * else `failed` if any of its edges could not answer, else `offline`.
 */
export function settleDelivery(recipients: Iterable<string>, outcomes: readonly EdgeOutcome[]) {
  const delivered = new Set<string>()
  const failed = new Set<string>()
  for (const o of outcomes) {
    if ('failed' in o) for (const u of o.users) failed.add(u)
    else for (const u of o.delivered) delivered.add(u)
  }
  const answer = { delivered: [] as string[], offline: [] as string[], failed: [] as string[] }
  for (const u of recipients) {
    if (delivered.has(u)) answer.delivered.push(u)
    else if (failed.has(u)) answer.failed.push(u)
    else answer.offline.push(u)
  }
  return answer
}

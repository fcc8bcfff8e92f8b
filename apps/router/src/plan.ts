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

/**
 * One edge's answer for its share of the recipients: the users it wrote to (and, for a push
 * asking for receipts, those of them who acknowledged it), or a failure.
 */
export type EdgeOutcome = { users: readonly string[]; delivered: readonly string[]; acked?: readonly string[] } | { users: readonly string[]; failed: true }

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

/**
 * A push asking for receipts, settled as early as its recipients are: a user is `acked` as soon
 * as one edge says so (its other edges' answers are not waited for), and otherwise once all of
 * its edges answered, as `settleDelivery` says. Resolves once every recipient is settled, so
 * one device that acknowledges ends the wait for its user even while another waits out the
 * timeout; the calls still running finish unheeded.
 */
export function settleReceipts(
  recipients: readonly string[],
  plan: DeliveryPlan,
  callEdge: (url: string, users: readonly string[]) => Promise<EdgeOutcome>,
): Promise<{ acked: string[]; unacked: string[]; offline: string[]; failed: string[] }> {
  return new Promise((resolve) => {
    const edgesLeft = new Map<string, number>()
    for (const users of plan.byEdge.values()) for (const u of users) edgesLeft.set(u, (edgesLeft.get(u) ?? 0) + 1)
    const outcomes: EdgeOutcome[] = []
    let unsettled = edgesLeft.size
    const finish = () => {
      // `delivered` split: acked if a connection on any edge acknowledged it, else unacked.
      const { delivered, offline, failed } = settleDelivery(recipients, outcomes)
      const acked = new Set(outcomes.flatMap((o) => ('failed' in o ? [] : (o.acked ?? []))))
      resolve({ acked: delivered.filter((u) => acked.has(u)), unacked: delivered.filter((u) => !acked.has(u)), offline, failed })
    }
    if (unsettled === 0) return finish()
    const settled = (u: string) => {
      if (edgesLeft.get(u) === 0) return
      edgesLeft.set(u, 0)
      if (--unsettled === 0) finish()
    }
    for (const [url, users] of plan.byEdge) {
      void callEdge(url, users).then((outcome) => {
        if (unsettled === 0) return // answered already
        outcomes.push(outcome)
        if (!('failed' in outcome)) for (const u of outcome.acked ?? []) settled(u)
        for (const u of users) {
          const left = edgesLeft.get(u)!
          if (left === 0) continue
          if (left === 1) settled(u)
          else edgesLeft.set(u, left - 1)
        }
      })
    }
  })
}

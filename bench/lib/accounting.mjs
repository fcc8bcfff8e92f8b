// The soak's accounting: every push the publisher sent, against the frames the clients got.
// A kept push must arrive (live, or replayed by a resume) exactly once after the SDK's dedupe
// by id; a plain push answered `delivered` must arrive once; one answered `offline` or `failed`
// must fall in a reconnect of its recipient (the only time a user here is not connected).

/** What the router answered for user push n: its recipient's list, or an error; KEPT is or-ed in for a kept push. */
export const Answer = { delivered: 1, offline: 2, failed: 3, error: 4, KEPT: 8 }
const RESULT = { [Answer.delivered]: 'delivered', [Answer.offline]: 'offline', [Answer.failed]: 'failed' }

/** Frames received per push number, from the load generators' lists (one entry per frame). */
export function framesPerPush(count, lists) {
  const frames = new Uint16Array(count)
  for (const list of lists) for (const n of list) frames[n]++
  return frames
}

/** User pushes: what the router answered, and whether each arrived as its answer says it must. */
export function userPushAccount(answers, frames) {
  const a = { sent: answers.length, delivered: 0, offline: 0, failed: 0, errors: 0, kept: 0, keptMissing: 0, keptDuplicateFrames: 0, deliveredMissing: 0, duplicateFrames: 0, arrivedThoughNotDelivered: 0 }
  answers.forEach((code, n) => {
    if (code === Answer.error) return a.errors++
    a[RESULT[code & ~Answer.KEPT]]++
    const got = frames[n]
    if (code & Answer.KEPT) {
      a.kept++
      if (got === 0) a.keptMissing++
      a.keptDuplicateFrames += Math.max(0, got - 1) // dropped by the SDK's dedupe by id: a replay of what came live
      return
    }
    if ((code & ~Answer.KEPT) === Answer.delivered) {
      if (got === 0) a.deliveredMissing++
      a.duplicateFrames += Math.max(0, got - 1)
    } else if (got > 0) a.arrivedThoughNotDelivered++
  })
  a.isWhole = a.errors === 0 && a.keptMissing === 0 && a.deliveredMissing === 0 && a.duplicateFrames === 0 && a.arrivedThoughNotDelivered === 0
  return a
}

/** Answers `offline`/`failed` ([n, userId, sentUs, answeredUs]) outside every reconnect of that user ([userId, closingUs, welcomedUs]). */
export function notDeliveredOutsideReconnects(notDelivered, gaps) {
  const byUser = new Map()
  for (const [userId, fromUs, toUs] of gaps) byUser.set(userId, [...(byUser.get(userId) ?? []), [fromUs, toUs]])
  return notDelivered.filter(([, userId, sentUs, answeredUs]) => !(byUser.get(userId) ?? []).some(([fromUs, toUs]) => fromUs <= answeredUs && toUs >= sentUs)).length
}

/** Room pushes: users the router said each reached (one socket each here) against frames received. */
export function roomPushAccount(reached, frames) {
  const a = { sent: reached.length, errors: 0, reached: 0, frames: 0, missingFrames: 0, extraFrames: 0 }
  reached.forEach((count, r) => {
    const got = frames.get(r) ?? 0
    a.frames += got
    if (count < 0) return a.errors++
    a.reached += count
    a.missingFrames += Math.max(0, count - got)
    a.extraFrames += Math.max(0, got - count)
  })
  a.isWhole = a.errors === 0 && a.missingFrames === 0 && a.extraFrames === 0
  return a
}

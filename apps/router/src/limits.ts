import { SwitchboardError } from '@switchboard/protocol'
import type { RouterConfig } from './config.js'

export type ApiLimits = Pick<RouterConfig, 'maxRecipients' | 'maxPresenceBatch' | 'maxUserIdLength' | 'maxEventLength'>

/**
 * The configured limits, within the hard ones the schemas enforce. Each throws
 * `invalid_request` naming the field, like schema errors.
 */
export function createLimitChecks(limits: ApiLimits) {
  const tooLong = (field: string, max: number) => new SwitchboardError('invalid_request', `${field}: at most ${max} characters`)
  const userIds = (field: string, ids: readonly string[], maxCount: number) => {
    if (ids.length > maxCount) throw new SwitchboardError('invalid_request', `${field}: at most ${maxCount} ids`)
    if (limits.maxUserIdLength >= 256) return // the schema's own bound
    const i = ids.findIndex((id) => id.length > limits.maxUserIdLength)
    if (i >= 0) throw tooLong(`${field}.${i}`, limits.maxUserIdLength)
  }
  return {
    recipients: (to: readonly string[]) => userIds('to', to, limits.maxRecipients),
    presenceBatch: (ids: readonly string[]) => userIds('userIds', ids, limits.maxPresenceBatch),
    userId: (field: string, id: string) => userIds(field, [id], 1),
    /** Ids whose count the schema bounds: only their configured length. */
    userIds: (field: string, ids: readonly string[]) => userIds(field, ids, Infinity),
    event: (event: string) => {
      if (event.length > limits.maxEventLength) throw tooLong('event', limits.maxEventLength)
    },
  }
}
export type LimitChecks = ReturnType<typeof createLimitChecks>

import { SwitchboardError, type PresenceEvent } from '@switchboard/protocol'
import { comparePositions, type PresenceReader } from '@switchboard/registry'

export interface PullApiDeps {
  registry: PresenceReader
  /** How often a waiting request looks for new events. */
  pollMs: number
  /** Read while waiting: a closing router answers at once with what it has. */
  isClosing: () => boolean
}

export interface EventsPage {
  events: PresenceEvent[]
  /** Pass as `after` to get the events that follow. */
  next: string
}

export interface SnapshotResponse {
  users: { userId: string; connections: number }[]
  /** Pass as `cursor` for the next page; null when the snapshot is complete. */
  next: string | null
  /** On the first page: read the events after this cursor and apply them on top of the snapshot. */
  eventsAfter?: string
}

export const MAX_EVENTS_LIMIT = 1_000
export const MAX_WAIT_S = 30
const POSITION = /^\d{1,20}-\d{1,20}$/
const SNAPSHOT_CURSOR = /^(\d{1,3}):(\d{1,20})$/

/**
 * The presence stream for backends that cannot expose an endpoint: `events` pages through the
 * feed from any retained cursor and long-polls for up to `wait` seconds when there is nothing
 * new; `snapshot` pages through the users announced online, partition by partition.
 */
export function createPullApi(deps: PullApiDeps) {
  const { registry } = deps

  async function events(query: URLSearchParams): Promise<EventsPage> {
    const after = query.get('after') ?? '0-0'
    if (!POSITION.test(after)) throw new SwitchboardError('invalid_request', 'after: not a cursor from this API')
    const limit = intParam(query, 'limit', 100, 1, MAX_EVENTS_LIMIT)
    const deadline = Date.now() + intParam(query, 'wait', 0, 0, MAX_WAIT_S) * 1_000
    for (;;) {
      const page = await registry.readFeed(after, limit)
      if (after !== '0-0' && comparePositions(after, page.trimmed) < 0) {
        throw new SwitchboardError('cursor_expired', 'after: events past this cursor were trimmed (PRESENCE_RETENTION_MS); take a snapshot and resume from its eventsAfter')
      }
      if (page.events.length > 0 || Date.now() >= deadline || deps.isClosing()) {
        return { events: page.events.map((e) => e.event), next: page.events.at(-1)?.position ?? maxPosition(after, page.trimmed) }
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(deps.pollMs, Math.max(0, deadline - Date.now()))))
    }
  }

  async function snapshot(query: URLSearchParams): Promise<SnapshotResponse> {
    const cursor = query.get('cursor')
    const limit = intParam(query, 'limit', 1_000, 1, 10_000)
    let partition = 0
    let scan = '0'
    let eventsAfter: string | undefined
    if (cursor === null) {
      eventsAfter = (await registry.readFeed('0-0', 1)).newest
    } else {
      const m = SNAPSHOT_CURSOR.exec(cursor)
      if (!m || Number(m[1]) >= registry.partitions) throw new SwitchboardError('invalid_request', 'cursor: not a cursor from this API')
      partition = Number(m[1])
      scan = m[2]!
    }
    const users: SnapshotResponse['users'] = []
    while (users.length < limit && partition < registry.partitions) {
      const page = await registry.snapshot(partition, scan, limit - users.length)
      users.push(...page.users)
      scan = page.cursor
      if (scan === '0') partition++
    }
    const next = partition < registry.partitions ? `${partition}:${scan}` : null
    return eventsAfter === undefined ? { users, next } : { users, next, eventsAfter }
  }

  return { events, snapshot }
}
export type PullApi = ReturnType<typeof createPullApi>

function intParam(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name)
  if (raw === null) return fallback
  const n = Number(raw)
  if (!/^\d+$/.test(raw) || n < min || n > max) throw new SwitchboardError('invalid_request', `${name}: an integer from ${min} to ${max}`)
  return n
}

function maxPosition(a: string, b: string): string {
  return comparePositions(a, b) >= 0 ? a : b
}

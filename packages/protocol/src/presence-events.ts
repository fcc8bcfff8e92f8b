/**
 * Presence events: the wire format backends receive (webhooks and the pull stream). A user is
 * online while at least one live connection of theirs exists anywhere in the cluster.
 */
import { CloseReasons, type CloseReason } from '@switchboard/wire'

export const PRESENCE_EVENT_TYPES = ['user.online', 'user.offline'] as const
export type PresenceEventType = (typeof PRESENCE_EVENT_TYPES)[number]

/** Why a connection closed, as recorded by the edge that closed it (or saw it close). */
export const CLOSE_CAUSES = ['close', 'disconnect_api', 'replaced', 'evicted', 'drain', 'token_expired', 'revoked'] as const
export type CloseCause = (typeof CLOSE_CAUSES)[number]

/** The cause a close for `reason` records (the table's, typed here: a cause outside CLOSE_CAUSES does not compile). */
export function causeOf(reason: CloseReason): CloseCause {
  return CloseReasons[reason].cause
}

/**
 * Why a transition happened: `connect` and `resync` (an edge re-registered its connections
 * after losing its lease or the registry's data) bring a user online; the close causes and
 * `edge_lost` (the edge holding the user's last connection died) take them offline.
 */
export const PRESENCE_CAUSES = ['connect', 'resync', ...CLOSE_CAUSES, 'edge_lost'] as const
export type PresenceCause = (typeof PRESENCE_CAUSES)[number]

export interface PresenceEvent {
  /** Unique per transition; a retried delivery carries the same id. */
  id: string
  type: PresenceEventType
  userId: string
  /** Strictly increasing per user, across Redis restarts too: keep the highest seen. */
  ver: number
  cause: PresenceCause
  /** The user's live connections after the transition (0 for an offline). */
  connections: number
  /** ms epoch (registry clock) of the transition. */
  ts: number
}

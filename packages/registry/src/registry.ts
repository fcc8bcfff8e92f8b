import type { CloseCause, PresenceEvent } from '@switchboard/protocol'

/** What an edge announces about itself; kept with its lease. */
export interface NodeInfo {
  /** Stable name (`EDGE_NODE_ID`); a restart under the same name supersedes the old incarnation. */
  nodeId: string
  /** Where routers reach the edge's internal port, e.g. `http://10.0.0.7:8081`. */
  url: string
  /** ms epoch of the process start. */
  startedAt: number
}

/** One incarnation of a node: every (re)start, or rejoin after the lease was lost, gets a new `incId`. */
export interface Lease extends NodeInfo {
  readonly incId: string
  readonly ttlMs: number
}

/** What an edge reports at each renewal. */
export interface NodeStatus {
  connections: number
  draining: boolean
}

export interface ConnectionInfo {
  userId: string
  /** Unique for all time; the fencing token of the entry. */
  connId: string
  /** ms epoch when the socket opened: of two sessions, the one with the later `since` is the newer, however they were written. */
  since: number
  /** Its token's `iat` (s epoch); without it, the connection is refused while its user has a revocation. */
  iat?: number
}

/** A connection removed to keep its user within the per-user limit: its socket must be closed. */
export interface Evicted {
  userId: string
  connId: string
  /** The incarnation that registered it, to find the edge that holds the socket. */
  incId: string
  /** Not written at all: its token was issued at or before its user's revocation (close it 4503). */
  revoked?: true
}

export { MAX_CONNECTIONS_PER_USER } from '@switchboard/protocol'

/** A live connection as seen by routers. */
export interface Located {
  connId: string
  since: number
  nodeId: string
  incId: string
  url: string
}

export interface LiveNode extends NodeInfo, NodeStatus {
  incId: string
  /** ms epoch (registry clock) when the lease lapses unless renewed. */
  expiresAt: number
}

/** What an edge writes: its lease and its connections' entries. */
export interface EdgeRegistry {
  /** Starts a new incarnation. Supersedes any earlier incarnation with the same nodeId: its entries are dead at once and queued for clean-up. */
  openLease(node: NodeInfo, ttlMs: number): Promise<Lease>
  /**
   * Extends the lease by its TTL: O(1) commands whatever the number of connections.
   * Returns false when the registry no longer knows this incarnation (superseded, reaped,
   * or Redis lost its data); the caller opens a new lease and calls `resync`.
   */
  renew(lease: Lease, status: NodeStatus): Promise<boolean>
  /** Ends the incarnation now and removes its entries (their users' offline cause: 'drain'). */
  closeLease(lease: Lease): Promise<void>
  /**
   * Registers connections of this incarnation; idempotent per connId. Atomically per user,
   * the connections beyond `maxPerUser` (default and ceiling MAX_CONNECTIONS_PER_USER) that
   * connected first (least `since`) are removed and returned, wherever they are, so their
   * sockets can be closed: with 1, a new session replaces the old one, of two racing sessions
   * exactly one survives, and an old socket written again (resync) never displaces a newer one.
   * A connection whose token a revocation covers (`iat` at or before the user's cutoff, or no
   * `iat` while there is one) is not written, and is returned with `revoked`, in the same
   * script: the check costs no round trip. A user who had no entry goes online (cause 'connect').
   */
  addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number): Promise<Evicted[]>
  /**
   * Removes only this connId: a newer connection of the same user, here or elsewhere, survives.
   * Returns whether it was there. `cause` (default 'close') is the cause of the user's offline
   * event if this was their last connection.
   */
  removeConnection(lease: Lease, userId: string, connId: string, cause?: CloseCause): Promise<boolean>
  /** Re-writes every given connection under `lease` (after the lease was lost or Redis restarted empty). Idempotent; evicts as `addConnections`; onlines it causes say 'resync'. */
  resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number): Promise<Evicted[]>
  /**
   * Names the server(s) holding the registry now: on Redis, the master's `run_id` (every
   * master's, on a Cluster). It changes when a failover promotes a replica or a server
   * restarts, the moments when acknowledged writes can be lost while leases survive; an
   * edge that sees it change re-registers everything it holds.
   */
  serverIdentity(): Promise<string>
  /** The user's revocation cutoff (ms epoch, registry clock), if one is in force: a refresh token issued at or before it is refused. */
  revokedBefore(userId: string): Promise<number | undefined>
}

/**
 * Whether a token issued at `iat` (s epoch) is covered by a revocation at `cutoffMs` (ms epoch,
 * registry clock); a token without `iat` always is. add.lua applies the same rule in Redis.
 */
export function isRevoked(iat: number | undefined, cutoffMs: number | undefined): boolean {
  return cutoffMs !== undefined && (iat === undefined || iat * 1_000 <= cutoffMs)
}

/** "Sign out everywhere": what a router writes before it closes a user's sockets. */
export interface Revocations {
  /**
   * Every token of the user issued until now (registry clock) is refused from now on, at the
   * handshake's registration and at a refresh, for `ttlMs` (the longest such a token can stay
   * valid). A later revocation never moves the cutoff back. Returns the cutoff (ms epoch).
   */
  revoke(userId: string, ttlMs: number): Promise<number>
}

/** What a router reads to route pushes and answer presence queries. */
export interface RouterRegistry {
  /** Live connections of each user; users without any are absent from the map. Entries of lapsed leases are left out. */
  locate(userIds: readonly string[]): Promise<Map<string, Located[]>>
  /** Nodes whose lease has not lapsed. */
  liveNodes(): Promise<LiveNode[]>
  /** Those of `incIds` whose lease has not lapsed (room edge indexes name incarnations), by incId. */
  incarnations(incIds: readonly string[]): Promise<Map<string, LiveNode>>
}

/**
 * When a lapsed lease proves its edge dead. A lease lapses when its edge dies, but also when
 * nobody could reach Redis (down, restarted, failed over, cut off): edges then renew once it is
 * back, and must get the chance first. So a lapsed lease is judged at once only if it was last
 * renewed after the registry's epoch: since its data has been continuous on the server(s)
 * holding it now (a restart or failover starts a new one, as does data lost), and since the
 * caller's own access to it returned (`accessMs`). Older ones wait until that epoch is
 * `settleMs` old. A router that just started judges at once every lease renewed since then.
 */
export interface ReapGuard {
  /** How old the epoch must be before every lapsed lease is judged (LEASE_TTL_MS + the edges' longest retry). */
  settleMs: number
  /** How long ago the caller's latest failed registry call was (ms); absent if none failed since it started. */
  accessMs?: number
}

/** Clean-up after dead edges: any router runs it, idempotently. */
export interface RegistryJanitor {
  /**
   * Forgets incarnations whose lease lapsed more than `graceMs` ago and removes their (and
   * superseded incarnations') entries; users left without a connection go offline with cause
   * 'edge_lost'. With a `guard`, only the lapsed leases it lets be judged. Returns the number
   * of incarnations cleaned.
   */
  reap(graceMs: number, guard?: ReapGuard): Promise<number>
}

/** A presence event as stored: its partition and its position in the partition's stream. */
export interface StoredEvent extends PresenceEvent {
  partition: number
  /** Stream position, increasing within the partition; `id` is made of it and the partition. */
  position: string
}

/** Where the events feed is: positions are opaque, increasing strings. */
export interface FeedPage {
  events: { position: string; event: PresenceEvent }[]
  /** The oldest position still retained ('' when the feed is empty). */
  oldest: string
  /** The newest position ('0-0' when the feed is empty). */
  newest: string
  /** The newest position trimmed away ('0-0' if none): a cursor before it may have missed events. */
  trimmed: string
}

/** A page of the users announced online in one partition. */
export interface SnapshotPage {
  users: { userId: string; connections: number }[]
  /** Scan cursor within the partition; '0' when the partition is done. */
  cursor: string
}

/** A router's presence delivery worker, as `PresenceLog.workers` lists it. */
export interface PresenceWorker {
  workerId: string
  /** Partitions it holds now. */
  partitions: number
  /** Until its claim lapses unless renewed. */
  expiresInMs: number
}

/** Where a worker stands after a turn at sharing the partitions (`PresenceLog.claimPartitions`). */
export interface PartitionClaim {
  /** The partitions this worker owns until the turn's `ttlMs` has passed: no other worker delivers them. */
  owned: number[]
  /**
   * Of `owned`, those another worker is short of: start no new batch of theirs, and release
   * them (a later turn's `release`) once no batch of theirs is in flight.
   */
  giving: number[]
  /** This worker holds less than its share while another holds more: it takes released partitions at its next turn, so that turn should come soon. */
  isWaiting: boolean
  /** The membership stamp as of this turn (see `membership()`). */
  membership: string
}

/**
 * What the routers' delivery workers need of the presence events the edges' and the
 * janitor's writes record: partitions shared among workers, held offlines settled, per-sink
 * acknowledgements, and the merged feed appended to.
 */
export interface PresenceDelivery {
  /** Number of event partitions (events of one user are always in the same one). */
  readonly partitions: number
  /**
   * One turn of this worker at sharing the partitions: it stays (or becomes) a live worker for
   * `ttlMs`, releases the partitions of `release` it owns, keeps or takes up to its share of the
   * others and renews them for `ttlMs`. A partition changes hands with one owner at any moment:
   * a worker over its share is told to give some (`giving`) and keeps owning them until it
   * releases them at a later turn; a worker under its share takes released ones at its next turn.
   */
  claimPartitions(workerId: string, ttlMs: number, release?: readonly number[]): Promise<PartitionClaim>
  /** A worker stopping: it leaves the workers and releases `release` of its partitions at once; any other it owns lapses with its claim. */
  leavePartitions(workerId: string, release: readonly number[]): Promise<void>
  /** Changes whenever a worker joins or leaves (one GET), so a worker can take its turn early. */
  membership(): Promise<string>
  /** Turns the partition's due held offlines into events, then reads up to `count` events after `after` ('0-0': from the start). */
  pump(partition: number, after: string, count: number): Promise<{ events: StoredEvent[]; nextHoldInMs: number | undefined }>
  /** Each partition's last version: it changes whenever an event or a held offline is recorded there. */
  versions(partitions: readonly number[]): Promise<(string | undefined)[]>
  /** The last position each sink acknowledged in the partition (undefined: none yet). */
  acknowledged(partition: number, sinkIds: readonly string[]): Promise<(string | undefined)[]>
  acknowledge(partition: number, sinkId: string, position: string): Promise<void>
  /** Appends events to the merged feed (the pull API's), trimming it to the retention. */
  appendFeed(events: readonly PresenceEvent[]): Promise<void>
}

/** What the pull API (`/v1/presence/events`, `/snapshot`) and the admin read of presence. */
export interface PresenceReader {
  /** Number of event partitions (events of one user are always in the same one). */
  readonly partitions: number
  readFeed(after: string, count: number): Promise<FeedPage>
  /** The newest `count` events of the feed, newest first (the admin's tail). */
  recentFeed(count: number): Promise<FeedPage['events']>
  snapshot(partition: number, cursor: string, count: number): Promise<SnapshotPage>
  /** The workers (routers) whose claim is alive, by id, with the partitions each holds and the ms until their claim lapses unless renewed. */
  workers(): Promise<PresenceWorker[]>
  /** How many events the partition retains, the oldest one's time, and the newest position ('0-0' if none). */
  backlog(partition: number): Promise<{ length: number; oldestTs: number | undefined; newest: string }>
}

/** The presence log, both sides: the stores implement it. */
export interface PresenceLog extends PresenceDelivery, PresenceReader {}

export interface PresenceSettings {
  /** An offline is held this long and cancelled if the user is back (0: announced at once). */
  offlineGraceMs: number
  /** Events older than this are trimmed from the partitions and the feed. */
  retentionMs: number
}

export const DEFAULT_PRESENCE: PresenceSettings = { offlineGraceMs: 5_000, retentionMs: 25 * 3_600_000 }

/**
 * The whole registry, as the stores implement it. Apps never take it whole: an edge takes
 * `EdgeRegistry` (and `liveNodes`, to find an evicted socket's edge), the router's API
 * `RouterRegistry` and `Revocations`, its reaper `RegistryJanitor`, its delivery workers
 * `PresenceDelivery`, its pull API and admin `PresenceReader`.
 */
export interface Registry extends EdgeRegistry, RouterRegistry, RegistryJanitor, PresenceLog, Revocations {
  /** Stops timers; does not close a client it was given. */
  close(): Promise<void>
}

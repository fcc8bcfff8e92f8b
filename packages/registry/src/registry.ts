import type { CloseCause } from '@switchboard/protocol'

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
  /** ms epoch when the socket opened. */
  since: number
}

/** A connection removed to keep its user within the per-user limit: its socket must be closed. */
export interface Evicted {
  userId: string
  connId: string
  /** The incarnation that registered it, to find the edge that holds the socket. */
  incId: string
}

/** Most connections a user may hold across the cluster; the oldest beyond it are evicted. */
export const MAX_CONNECTIONS_PER_USER = 64

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

export interface Registry {
  /** Starts a new incarnation. Supersedes any earlier incarnation with the same nodeId: its entries are dead at once and queued for clean-up. */
  openLease(node: NodeInfo, ttlMs: number): Promise<Lease>
  /**
   * Extends the lease by its TTL: O(1) commands whatever the number of connections.
   * Returns false when the registry no longer knows this incarnation (superseded, reaped,
   * or Redis lost its data); the caller opens a new lease and calls `resync`.
   */
  renew(lease: Lease, status: NodeStatus): Promise<boolean>
  /** Ends the incarnation now and removes its entries. */
  closeLease(lease: Lease): Promise<void>
  /**
   * Registers connections of this incarnation; idempotent per connId. Atomically per user,
   * the oldest connections beyond `maxPerUser` (default and ceiling MAX_CONNECTIONS_PER_USER)
   * are removed and returned, wherever they are, so their sockets can be closed: with 1, a
   * new session replaces the old one, and of two racing sessions exactly one survives.
   */
  addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number): Promise<Evicted[]>
  /**
   * Removes only this connId: a newer connection of the same user, here or elsewhere, survives.
   * Returns whether it was there. `cause` (default 'close') is the cause of the user's offline
   * event if this was their last connection.
   */
  removeConnection(lease: Lease, userId: string, connId: string, cause?: CloseCause): Promise<boolean>
  /** Re-writes every given connection under `lease` (after the lease was lost or Redis restarted empty). Idempotent; evicts as `addConnections`. */
  resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number): Promise<Evicted[]>
  /** Live connections of each user; users without any are absent from the map. Entries of lapsed leases are left out. */
  locate(userIds: readonly string[]): Promise<Map<string, Located[]>>
  /** Nodes whose lease has not lapsed. */
  liveNodes(): Promise<LiveNode[]>
  /**
   * Names the server(s) holding the registry now: on Redis, the master's `run_id` (every
   * master's, on a Cluster). It changes when a failover promotes a replica or a server
   * restarts, the moments when acknowledged writes can be lost while leases survive; an
   * edge that sees it change re-registers everything it holds.
   */
  serverIdentity(): Promise<string>
  /**
   * Clean-up: forgets incarnations whose lease lapsed more than `graceMs` ago and removes
   * their (and superseded incarnations') entries. Returns the number of incarnations cleaned.
   */
  reap(graceMs: number): Promise<number>
  /** Stops timers; does not close a client it was given. */
  close(): Promise<void>
}

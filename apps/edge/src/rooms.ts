import type { RoomHolding, UserRoom } from '@switchboard/registry'

/** What the edge needs of the room store: its users' rooms, and its own fields of the edge index. */
export interface RoomIndexStore {
  /** Each user's durable rooms, in `userIds` order. */
  roomsOfMany(userIds: readonly string[]): Promise<UserRoom[][]>
  setEdgeRooms(incId: string, changes: readonly RoomHolding[]): Promise<void>
}

export interface LocalRoomsDeps {
  store: RoomIndexStore
  /** This edge's incarnation now; undefined before its lease is opened. */
  incId: () => string | undefined
  /**
   * A read or a write failed: the index may be missing this edge, or a user's rooms unknown. The
   * edge resyncs its registry entries, then calls `rewrite`.
   */
  onFailure: (err: unknown) => void
}

/** A user with at least one socket here. */
interface Present {
  sockets: number
  /** Its durable rooms here, with the generation each was joined in; undefined while it has none (most users: no Map per idle user). */
  rooms: Map<string, string> | undefined
  /** While its rooms are being read: the rooms joined or left meanwhile (newer than what the read may return). */
  changedWhileReading: Set<string> | undefined
  /** Until its rooms are read and the index written: resolves then. Undefined afterwards (no settled promise kept per user). */
  ready: Promise<void> | undefined
}

/** A room's local members: users by durable membership (with its generation), sockets by their token's `rooms` claim. */
interface Members<S> {
  users: Map<string, string>
  sockets: Map<S, string>
}

/** The local members a room push is written to. */
export interface RoomTargets<S> {
  /** Durable members of the push's generation: every socket of theirs. */
  users: string[]
  /** Token members whose user is not in `users`: only these sockets. */
  sockets: S[]
}

/**
 * The rooms of this edge's users and sockets, and this edge's fields in the rooms' edge indexes
 * (docs/design/rooms.md). Two kinds of membership, delivered together:
 * - durable (backends): per user. A user is present from its first socket's registration
 *   (`arrive`) to its last socket's close (`depart`); on arrival its rooms are read from its
 *   reverse index, and membership calls (`join`, `leave`) change present users at once;
 * - token (the `rooms` claim): per socket, for its life.
 * A room's field is written when it gets its first local member and cleared when it loses its
 * last (and written again at every join, so a room deleted and created anew gets it back); the
 * writes of one event-loop turn go together, and the calls that caused them resolve once they
 * are written.
 */
export class LocalRooms<S> {
  readonly #deps: LocalRoomsDeps
  readonly #users = new Map<string, Present>()
  readonly #rooms = new Map<string, Members<S>>()
  /** Users whose rooms could not be read: read again by `rewrite`. */
  readonly #unread = new Set<string>()
  #dirty = new Set<string>()
  #flushed: Promise<void> | undefined
  /** This turn's reads of users' rooms: one store call for all of them (a connect storm arrives in batches). */
  #reads: { userId: string; resolve(rooms: UserRoom[]): void; reject(err: unknown): void }[] = []

  constructor(deps: LocalRoomsDeps) {
    this.#deps = deps
  }

  /** Rooms with a local member. */
  get size(): number {
    return this.#rooms.size
  }

  /**
   * A socket of `userId` is registered: it joins its token's rooms, and its user its durable
   * rooms. Resolves once those are known and indexed (then the socket may be welcomed).
   */
  arrive(userId: string, socket: S, tokenRooms: readonly string[]): Promise<void> {
    for (const room of tokenRooms) this.#members(room).sockets.set(socket, userId)
    const present = this.#users.get(userId)
    if (present) {
      present.sockets++
      const indexed = tokenRooms.length > 0 ? this.#flush() : Promise.resolve()
      return present.ready ? Promise.all([present.ready, indexed]).then(() => undefined) : indexed
    }
    const p: Present = { sockets: 1, rooms: undefined, changedWhileReading: undefined, ready: undefined }
    this.#users.set(userId, p)
    const ready = this.#read(userId, p)
      .then(() => this.#flush())
      .then(() => {
        p.ready = undefined
      })
    p.ready = ready
    return ready
  }

  /**
   * An arrived socket's token was refreshed with another `rooms` claim: it leaves the rooms only
   * `before` names and joins those only `after` names. Resolves once the index is written.
   */
  retoken(socket: S, userId: string, before: readonly string[], after: readonly string[]): Promise<void> {
    const kept = new Set(after)
    for (const room of before) {
      if (kept.has(room)) continue
      const members = this.#rooms.get(room)
      if (members?.sockets.delete(socket)) this.#dropIfEmpty(room, members)
    }
    const had = new Set(before)
    for (const room of after) if (!had.has(room)) this.#members(room).sockets.set(socket, userId)
    return this.#flush()
  }

  /** A socket that arrived closed. The user's last socket takes it out of its durable rooms. */
  depart(userId: string, socket: S, tokenRooms: readonly string[]): void {
    for (const room of tokenRooms) {
      const members = this.#rooms.get(room)
      if (members?.sockets.delete(socket)) this.#dropIfEmpty(room, members)
    }
    const p = this.#users.get(userId)
    if (p && --p.sockets === 0) {
      this.#users.delete(userId)
      this.#unread.delete(userId)
      for (const room of p.rooms?.keys() ?? []) this.#dropUser(room, userId)
    }
    if (this.#dirty.size > 0) void this.#flush()
  }

  /** Adds the present ones of `userIds` to `room`; resolves with their number once the index is written. */
  async join(room: string, generation: string, userIds: readonly string[]): Promise<number> {
    let changed = 0
    for (const userId of userIds) {
      const p = this.#users.get(userId)
      if (!p) continue
      p.changedWhileReading?.add(room)
      this.#addUser(room, userId, generation, p)
      changed++
    }
    if (changed > 0) this.#dirty.add(room) // written again even if it has members: see the class comment
    await this.#flush()
    return changed
  }

  /**
   * Drops `userIds` (every local member if undefined) from `room`, by both kinds of membership:
   * their sockets leave it too, for their life. Resolves with how many users were here, once
   * the index is written.
   */
  async leave(room: string, userIds?: readonly string[]): Promise<number> {
    const members = this.#rooms.get(room)
    const users = new Set(userIds ?? [...(members?.users.keys() ?? []), ...(members?.sockets.values() ?? [])])
    let changed = 0
    for (const userId of users) {
      const p = this.#users.get(userId)
      if (!p) continue
      changed++
      p.changedWhileReading?.add(room)
      if (leftRoom(p, room)) this.#dropUser(room, userId)
    }
    if (members) {
      for (const [socket, userId] of members.sockets) if (users.has(userId)) members.sockets.delete(socket)
      this.#dropIfEmpty(room, members)
    }
    await this.#flush()
    return changed
  }

  /** Where a push to `room` in `generation` goes here: durable members of that generation and token members, but `except`. */
  targets(room: string, generation: string, except?: ReadonlySet<string>): RoomTargets<S> {
    const out: RoomTargets<S> = { users: [], sockets: [] }
    const members = this.#rooms.get(room)
    if (!members) return out
    for (const [userId, g] of members.users) if (g === generation && !except?.has(userId)) out.users.push(userId)
    if (members.sockets.size === 0) return out
    const reached = new Set(out.users)
    for (const [socket, userId] of members.sockets) if (!reached.has(userId) && !except?.has(userId)) out.sockets.push(socket)
    return out
  }

  /**
   * After a resync (a new lease: Redis back empty, or a failover that may have lost writes):
   * reads every present user's durable rooms again, now that its connections are registered
   * again, and writes every field. A membership added while this edge's entries were missing
   * was not sent here (the router found no connection); reading after re-registering, as at
   * arrival, cannot miss it. Rooms the read no longer has (lost with Redis' data) are left.
   */
  async rewrite(): Promise<void> {
    this.#unread.clear()
    await Promise.all([...this.#users].map(([userId, p]) => this.#read(userId, p, true)))
    for (const room of this.#rooms.keys()) this.#dirty.add(room)
    await this.#flush()
  }

  /**
   * Reads the user's durable rooms and joins them (the caller writes the index). `replace`: the
   * read is the whole truth, so rooms it does not have are left (but those changed meanwhile).
   */
  async #read(userId: string, p: Present, replace = false): Promise<void> {
    let rooms: UserRoom[]
    p.changedWhileReading ??= new Set()
    try {
      rooms = await this.#roomsOf(userId)
    } catch (err) {
      p.changedWhileReading = undefined
      this.#unread.add(userId)
      return this.#deps.onFailure(err)
    }
    const changed = p.changedWhileReading
    p.changedWhileReading = undefined
    if (this.#users.get(userId) !== p) return // gone meanwhile
    if (replace) {
      const now = new Set(rooms.map((r) => r.room))
      for (const room of [...(p.rooms?.keys() ?? [])]) if (!now.has(room) && !changed.has(room) && leftRoom(p, room)) this.#dropUser(room, userId)
    }
    for (const { room, generation } of rooms) if (!changed.has(room)) this.#addUser(room, userId, generation, p)
  }

  /** Reads the user's rooms with the others of this turn. */
  #roomsOf(userId: string): Promise<UserRoom[]> {
    return new Promise((resolve, reject) => {
      if (this.#reads.push({ userId, resolve, reject }) > 1) return
      setImmediate(() => {
        const reads = this.#reads
        this.#reads = []
        this.#deps.store.roomsOfMany(reads.map((r) => r.userId)).then(
          (rooms) => reads.forEach((r, i) => r.resolve(rooms[i] ?? [])),
          (err: unknown) => reads.forEach((r) => r.reject(err)),
        )
      })
    })
  }

  #members(room: string): Members<S> {
    let members = this.#rooms.get(room)
    if (!members) {
      members = { users: new Map(), sockets: new Map() }
      this.#rooms.set(room, members)
      this.#dirty.add(room)
    }
    return members
  }

  #addUser(room: string, userId: string, generation: string, p: Present): void {
    p.rooms ??= new Map()
    p.rooms.set(room, generation)
    this.#members(room).users.set(userId, generation)
  }

  #dropUser(room: string, userId: string): void {
    const members = this.#rooms.get(room)
    if (members?.users.delete(userId)) this.#dropIfEmpty(room, members)
  }

  #dropIfEmpty(room: string, members: Members<S>): void {
    if (members.users.size > 0 || members.sockets.size > 0 || this.#rooms.get(room) !== members) return
    this.#rooms.delete(room)
    this.#dirty.add(room)
  }

  /** Writes the dirty rooms' fields at the end of this turn; resolves when written (or failed: see onFailure). */
  #flush(): Promise<void> {
    if (this.#dirty.size === 0) return Promise.resolve()
    this.#flushed ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      this.#flushed = undefined
      const rooms = this.#dirty
      this.#dirty = new Set()
      const incId = this.#deps.incId()
      try {
        if (!incId) throw new Error('no lease yet')
        // Whether the room has a local member now, whatever happened during the turn.
        await this.#deps.store.setEdgeRooms(incId, [...rooms].map((room) => ({ room, holds: this.#rooms.has(room) })))
      } catch (err) {
        this.#deps.onFailure(err)
      }
    })
    return this.#flushed
  }
}

/** Takes `room` out of the user's durable rooms; false if it was not in them. The Map goes with the last room. */
function leftRoom(p: Present, room: string): boolean {
  if (!p.rooms?.delete(room)) return false
  if (p.rooms.size === 0) p.rooms = undefined
  return true
}

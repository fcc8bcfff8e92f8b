import type { RoomHolding, UserRoom } from '@switchboard/registry'

/** What the edge needs of the room store: its users' rooms, and its own fields of the edge index. */
export interface RoomIndexStore {
  roomsOf(userId: string): Promise<UserRoom[]>
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
  /** Its rooms here, with the generation each was joined in. */
  rooms: Map<string, string>
  /** While its rooms are being read: the rooms joined or left meanwhile (newer than what the read may return). */
  changedWhileReading: Set<string> | undefined
  /** Resolves once its rooms are read and the index written. */
  ready: Promise<void>
}

/**
 * The rooms of this edge's users, and this edge's fields in the rooms' edge indexes
 * (docs/design/rooms.md). A user is present from its first socket's registration (`arrive`) to
 * its last socket's close (`depart`). On arrival its durable rooms are read from its reverse
 * index; membership calls (`join`, `leave`) change present users at once. A room's field is
 * written when the room gets its first local member or loses its last (and on every join, so a
 * room deleted and created again gets it back); the writes of one event-loop turn go together,
 * and the calls that caused them resolve once they are written.
 */
export class LocalRooms {
  readonly #deps: LocalRoomsDeps
  readonly #users = new Map<string, Present>()
  /** room -> local member -> generation. */
  readonly #rooms = new Map<string, Map<string, string>>()
  /** Users whose rooms could not be read: read again by `rewrite`. */
  readonly #unread = new Set<string>()
  #dirty = new Set<string>()
  #flushed: Promise<void> | undefined

  constructor(deps: LocalRoomsDeps) {
    this.#deps = deps
  }

  /** Rooms with a local member. */
  get size(): number {
    return this.#rooms.size
  }

  /** A socket of `userId` is registered: resolves once the user's rooms are read and indexed. */
  arrive(userId: string): Promise<void> {
    const present = this.#users.get(userId)
    if (present) {
      present.sockets++
      return present.ready
    }
    const p: Present = { sockets: 1, rooms: new Map(), changedWhileReading: new Set(), ready: Promise.resolve() }
    this.#users.set(userId, p)
    p.ready = this.#read(userId, p).then(() => this.#flush())
    return p.ready
  }

  /** A socket of `userId` closed (one that arrived). Its last socket takes it out of its rooms. */
  depart(userId: string): void {
    const p = this.#users.get(userId)
    if (!p || --p.sockets > 0) return
    this.#users.delete(userId)
    this.#unread.delete(userId)
    for (const room of p.rooms.keys()) this.#drop(room, userId)
    if (this.#dirty.size > 0) void this.#flush()
  }

  /** Adds the present ones of `userIds` to `room`; resolves with their number once the index is written. */
  async join(room: string, generation: string, userIds: readonly string[]): Promise<number> {
    let changed = 0
    for (const userId of userIds) {
      const p = this.#users.get(userId)
      if (!p) continue
      p.changedWhileReading?.add(room)
      this.#add(room, userId, generation, p)
      changed++
    }
    if (changed > 0) this.#dirty.add(room) // written again even if it has members: see the class comment
    await this.#flush()
    return changed
  }

  /** Drops `userIds` (all local members if undefined) from `room`; resolves once the index is written. */
  async leave(room: string, userIds?: readonly string[]): Promise<number> {
    let changed = 0
    for (const userId of userIds ?? [...(this.#rooms.get(room)?.keys() ?? [])]) {
      const p = this.#users.get(userId)
      if (!p) continue
      p.changedWhileReading?.add(room)
      if (p.rooms.delete(room)) this.#drop(room, userId)
      changed++
    }
    await this.#flush()
    return changed
  }

  /** The local members of `room` in `generation`, but those in `except`. */
  members(room: string, generation: string, except?: ReadonlySet<string>): string[] {
    const out: string[] = []
    const members = this.#rooms.get(room)
    if (!members) return out
    for (const [userId, g] of members) if (g === generation && !except?.has(userId)) out.push(userId)
    return out
  }

  /** After a resync (a new lease, or Redis back empty): reads the rooms it could not, then writes every field again. */
  async rewrite(): Promise<void> {
    const unread = [...this.#unread]
    this.#unread.clear()
    await Promise.all(unread.map((u) => this.#users.has(u) && this.#read(u, this.#users.get(u)!)))
    for (const room of this.#rooms.keys()) this.#dirty.add(room)
    await this.#flush()
  }

  /** Reads the user's durable rooms and joins them (the caller writes the index). */
  async #read(userId: string, p: Present): Promise<void> {
    let rooms: UserRoom[] = []
    p.changedWhileReading ??= new Set()
    try {
      rooms = await this.#deps.store.roomsOf(userId)
    } catch (err) {
      this.#unread.add(userId)
      this.#deps.onFailure(err)
    }
    const changed = p.changedWhileReading
    p.changedWhileReading = undefined
    if (this.#users.get(userId) !== p) return // gone meanwhile
    for (const { room, generation } of rooms) if (!changed.has(room)) this.#add(room, userId, generation, p)
  }

  #add(room: string, userId: string, generation: string, p: Present): void {
    p.rooms.set(room, generation)
    const members = this.#rooms.get(room)
    if (members) members.set(userId, generation)
    else {
      this.#rooms.set(room, new Map([[userId, generation]]))
      this.#dirty.add(room)
    }
  }

  #drop(room: string, userId: string): void {
    const members = this.#rooms.get(room)
    if (!members?.delete(userId) || members.size > 0) return
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

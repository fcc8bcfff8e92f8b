import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'

/** A Lua script and its SHA; RedisGateway.script runs it. */
export class LuaScript {
  readonly sha: string
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

// The scripts live in packages/registry/lua, beside src/ and dist/; each is prefixed with lib.lua.
const dir = new URL('../../lua/', import.meta.url)
const lib = readFileSync(new URL('lib.lua', dir), 'utf8')
const load = (name: string) => new LuaScript(`${lib}\n${readFileSync(new URL(`${name}.lua`, dir), 'utf8')}`)

// Control scripts: KEYS in the {ctl} slot.
export const join = load('join')
export const renew = load('renew')
export const leave = load('leave')
export const live = load('live')
export const check = load('check')
export const reap = load('reap')
export const claimGc = load('claim-gc')
export const own = load('own')
export const disown = load('disown')
export const workers = load('workers')
// Idempotency keys: one key each.
export const idemBegin = load('idem-begin')
export const idemEnd = load('idem-end')
// The feed: KEYS in the {feed} slot.
export const feed = load('feed')
// Partition scripts: KEYS users, index, events, holds, hold causes, last version ({pN} slot);
// pump and add take several partitions' on one server, ack their cursors.
export const add = load('add')
export const revoke = load('revoke')
export const revokedBefore = load('revoked-before')
export const remove = load('remove')
export const collect = load('collect')
export const pump = load('pump')
export const ack = load('ack')
export const snapshot = load('snapshot')
// Inboxes (inbox.ts): KEYS meta, stream per user, all in one partition's slot.
export const keep = load('keep')
export const inboxRead = load('inbox-read')
export const inboxHeads = load('inbox-heads')
// Rooms (rooms.ts): KEYS in the room's slot, or users' reverse indexes in one partition's slot.
export const roomAdd = load('room-add')
export const roomRemove = load('room-remove')
export const userRoomsAdd = load('user-rooms-add')
export const roomRoute = load('room-route')
export const roomIndex = load('room-index')
export const userRoomsRead = load('user-rooms-read')

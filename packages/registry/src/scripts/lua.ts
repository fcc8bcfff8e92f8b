import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'

export type RedisClient = Redis | Cluster

/** A Lua script sent by SHA, and in full once if the server does not have it (restart, flush). */
export class LuaScript {
  readonly sha: string
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run(client: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return client.eval(this.source, keys.length, ...keys, ...args)
    }
  }
}

// Redis clock in ms; scripts are effect-replicated (Redis >= 5), so TIME is allowed.
const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

// Entries are "connId:incId:since" separated by spaces; connIds and incIds are [0-9a-z.].
const INC_OF = `local function inc_of(e) return string.match(e, '^[^:]*:([^:]*):') end`

/** KEYS nodes inc names gcq; ARGV incId nodeId info ttlMs. Supersedes the name's previous incarnation. Returns Redis now. */
export const join = new LuaScript(`${NOW}
local old = redis.call('HGET', KEYS[3], ARGV[2])
if old and old ~= ARGV[1] then
  redis.call('ZREM', KEYS[1], old)
  redis.call('HDEL', KEYS[2], old)
  redis.call('ZADD', KEYS[4], now, old)
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
return now`)

/** KEYS nodes inc; ARGV incId info ttlMs. O(1). Returns 0 when the incarnation is unknown, else Redis now. */
export const renew = new LuaScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
${NOW}
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return now`)

/** KEYS nodes inc names gcq; ARGV incId nodeId. Ends the incarnation and queues its clean-up now. */
export const leave = new LuaScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[3], ARGV[2]) end
redis.call('ZADD', KEYS[4], 0, ARGV[1])
return 1`)

/** KEYS nodes inc; no ARGV. Returns [now, incId, expiry, info, ...] for unexpired leases. */
export const live = new LuaScript(`${NOW}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local out = { now }
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i]) or ''
end
return out`)

/** KEYS nodes inc; ARGV incIds. Returns [now, expiry-or-'', info-or-'', ...] in ARGV order. */
export const check = new LuaScript(`${NOW}
local out = { now }
for i = 1, #ARGV do
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[i])
  out[#out + 1] = exp or ''
  out[#out + 1] = exp and (redis.call('HGET', KEYS[2], ARGV[i]) or '') or ''
end
return out`)

/** KEYS nodes inc names gcq; ARGV graceMs limit. Forgets lapsed incarnations, queues their clean-up. Returns how many. */
export const reap = new LuaScript(`${NOW}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
for _, inc in ipairs(dead) do
  local info = redis.call('HGET', KEYS[2], inc)
  if info then
    local ok, node = pcall(cjson.decode, info)
    if ok and type(node) == 'table' and node.nodeId and redis.call('HGET', KEYS[3], node.nodeId) == inc then
      redis.call('HDEL', KEYS[3], node.nodeId)
    end
  end
  redis.call('ZREM', KEYS[1], inc)
  redis.call('HDEL', KEYS[2], inc)
  redis.call('ZADD', KEYS[4], now, inc)
end
return #dead`)

/** KEYS gcq; ARGV visibilityMs. Claims one due clean-up job (re-due after visibilityMs if the claimer dies). */
export const claim = new LuaScript(`${NOW}
local job = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)[1]
if not job then return '' end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), job)
return job`)

/**
 * KEYS users index; ARGV incId maxPerUser then (userId connId since)*.
 * Upserts each connection under incId: an existing connId moves to incId (resync), a new one
 * is appended. Beyond maxPerUser the oldest entries are removed and returned as
 * [userId, entry, userId, entry, ...] so their sockets can be closed.
 */
export const add = new LuaScript(`
local inc, max = ARGV[1], tonumber(ARGV[2])
local evicted = {}
for i = 3, #ARGV, 3 do
  local uid, conn = ARGV[i], ARGV[i + 1]
  local entry = conn .. ':' .. inc .. ':' .. ARGV[i + 2]
  local head = conn .. ':'
  local out, found = {}, false
  local v = redis.call('HGET', KEYS[1], uid)
  if v then
    for e in string.gmatch(v, '%S+') do
      if string.sub(e, 1, #head) == head then found = true out[#out + 1] = entry else out[#out + 1] = e end
    end
  end
  if not found then out[#out + 1] = entry end
  while #out > max do
    evicted[#evicted + 1] = uid
    evicted[#evicted + 1] = table.remove(out, 1)
  end
  redis.call('HSET', KEYS[1], uid, table.concat(out, ' '))
  redis.call('SADD', KEYS[2], uid)
end
return evicted`)

/** KEYS users index(lease incId); ARGV userId connId incId. Removes exactly connId; returns 1 if it was there. */
export const remove = new LuaScript(`${INC_OF}
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local head = ARGV[2] .. ':'
local out, found, keep_index = {}, false, false
for e in string.gmatch(v, '%S+') do
  if string.sub(e, 1, #head) == head then found = true
  else
    out[#out + 1] = e
    if inc_of(e) == ARGV[3] then keep_index = true end
  end
end
if not found then return 0 end
if #out == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, ' ')) end
if not keep_index then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1`)

/** KEYS users index; ARGV incId batch. Strips incId's entries from up to batch users; returns how many remain. */
export const collect = new LuaScript(`${INC_OF}
local uids = redis.call('SPOP', KEYS[2], tonumber(ARGV[2]))
for _, uid in ipairs(uids) do
  local v = redis.call('HGET', KEYS[1], uid)
  if v then
    local out = {}
    for e in string.gmatch(v, '%S+') do
      if inc_of(e) ~= ARGV[1] then out[#out + 1] = e end
    end
    if #out == 0 then redis.call('HDEL', KEYS[1], uid) else redis.call('HSET', KEYS[1], uid, table.concat(out, ' ')) end
  end
end
return redis.call('SCARD', KEYS[2])`)

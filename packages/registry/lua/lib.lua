-- Prepended to every script. Redis clock; scripts are effect-replicated (Redis >= 5), so TIME is allowed.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Entries are "connId:incId:since" separated by spaces; connIds and incIds are [0-9a-z.].
local function inc_of(e) return string.match(e, '^[^:]*:([^:]*):') end

-- Presence. Partition scripts get KEYS users, index, events, holds, hold causes, last version
-- (one slot: the partition's tag) and these settings in ARGV, parsed by presence_settings.
local P = { grace = 0, retention = 0 }
-- The partition keys the functions below write: KEYS, or in a script over several partitions
-- (pump.lua on one server) each partition's in turn, set by use_partition.
local PK = KEYS
local function use_partition(keys) PK = keys end
local function presence_settings(grace_ms, retention_ms)
  P.grace, P.retention = tonumber(grace_ms), tonumber(retention_ms)
end

-- Takes the partition's next version: strictly increasing (so per user), following the clock
-- in us, so it keeps increasing after Redis lost its data. Delivery workers poll this key to
-- know a partition has something new (an event, or an offline held).
local function next_ver()
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local v = string.format('%.0f', math.max(tonumber(redis.call('GET', PK[6]) or '0') + 1, us))
  redis.call('SET', PK[6], v)
  return v, us
end

-- Records one transition in the partition's stream.
local function emit(uid, online, cause, conns)
  local v, us = next_ver()
  local oldest = math.floor(us / 1000) - P.retention
  redis.call('XADD', PK[3], 'MINID', '~', oldest, '*', 'u', uid, 't', online and '1' or '0', 'v', v, 'c', cause, 'n', conns)
end

-- The user's last entry is gone: offline now, or held for the grace (cancelled by a return).
local function went_empty(uid, cause)
  if P.grace > 0 then
    redis.call('ZADD', PK[4], now_ms() + P.grace, uid)
    redis.call('HSET', PK[5], uid, cause)
    next_ver()
  else
    emit(uid, false, cause, 0)
  end
end

-- The user had no entry and now has `conns`: online, unless an offline was being held.
local function went_live(uid, cause, conns)
  if redis.call('ZREM', PK[4], uid) == 1 then
    redis.call('HDEL', PK[5], uid)
  else
    emit(uid, true, cause, conns)
  end
end

local function count(v)
  local n = 0
  for _ in string.gmatch(v, '%S+') do n = n + 1 end
  return n
end

-- Revocations: per partition a HASH userId -> "<cutoff ms> <expiry ms>" (revoke.lua). The
-- user's cutoff in force at `now`, or nil; an expired field is dropped.
local function revoked_cutoff(key, uid, now)
  local v = redis.call('HGET', key, uid)
  if not v then return nil end
  local sp = string.find(v, ' ', 1, true)
  if tonumber(string.sub(v, sp + 1)) <= now then
    redis.call('HDEL', key, uid)
    return nil
  end
  return tonumber(string.sub(v, 1, sp - 1))
end

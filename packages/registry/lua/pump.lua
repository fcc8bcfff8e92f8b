-- Partition script. ARGV limit graceMs retentionMs after count.
-- Settles held offlines that are due (a user back in the meantime cancelled theirs), then
-- reads up to `count` events after stream id `after`.
-- Returns [ms until the next hold is due or -1, id, fields, id, fields, ...].
presence_settings(ARGV[2], ARGV[3])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, uid in ipairs(due) do
  redis.call('ZREM', KEYS[4], uid)
  local cause = redis.call('HGET', KEYS[5], uid) or 'close'
  redis.call('HDEL', KEYS[5], uid)
  if redis.call('HEXISTS', KEYS[1], uid) == 0 then emit(uid, false, cause, 0) end
end
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')[2]
local out = { first and math.max(0, tonumber(first) - now) or -1 }
for _, e in ipairs(redis.call('XRANGE', KEYS[3], '(' .. ARGV[4], '+', 'COUNT', tonumber(ARGV[5]))) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2]
end
return out

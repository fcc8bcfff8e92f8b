-- Partition script, over one or more partitions (on one server, a turn's pumps go in one call):
-- KEYS six per partition, ARGV limit graceMs retentionMs then (after count) per partition.
-- In each partition: settles held offlines that are due (a user back in the meantime cancelled
-- theirs), then reads up to `count` events after stream id `after`.
-- Returns per partition [ms until the next hold is due or -1, id, fields, id, fields, ...].
presence_settings(ARGV[2], ARGV[3])
local replies = {}
for g = 0, #KEYS / 6 - 1 do
  local k = { unpack(KEYS, g * 6 + 1, g * 6 + 6) }
  use_partition(k)
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', k[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
  for _, uid in ipairs(due) do
    redis.call('ZREM', k[4], uid)
    local cause = redis.call('HGET', k[5], uid) or 'close'
    redis.call('HDEL', k[5], uid)
    if redis.call('HEXISTS', k[1], uid) == 0 then emit(uid, false, cause, 0) end
  end
  local first = redis.call('ZRANGE', k[4], 0, 0, 'WITHSCORES')[2]
  local out = { first and math.max(0, tonumber(first) - now) or -1 }
  for _, e in ipairs(redis.call('XRANGE', k[3], '(' .. ARGV[4 + g * 2], '+', 'COUNT', tonumber(ARGV[5 + g * 2]))) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2]
  end
  replies[g + 1] = out
end
return replies

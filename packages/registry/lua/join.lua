-- KEYS nodes inc names gcq epoch; ARGV incId nodeId info ttlMs.
-- Starts an incarnation, superseding the name's previous one. Returns Redis now.
local now = now_ms()
-- The first lease in a registry without an epoch (new, or its data lost) starts it (reap.lua).
redis.call('HSETNX', KEYS[5], 'since', now)
local old = redis.call('HGET', KEYS[3], ARGV[2])
if old and old ~= ARGV[1] then
  redis.call('ZREM', KEYS[1], old)
  redis.call('HDEL', KEYS[2], old)
  redis.call('ZADD', KEYS[4], now, old)
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
return now

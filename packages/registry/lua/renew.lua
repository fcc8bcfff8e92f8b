-- KEYS nodes inc; ARGV incId info ttlMs. O(1). Returns 0 when the incarnation is unknown, else Redis now.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
local now = now_ms()
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return now

-- KEYS gcq; ARGV visibilityMs. Claims one due clean-up job (due again after visibilityMs if its claimer dies).
local now = now_ms()
local job = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)[1]
if not job then return '' end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), job)
return job

-- KEYS owners workers.
-- The live presence workers (one per router) and how many partitions each holds now:
-- flat [worker, partitions, ms until its registration lapses, ...].
local now = now_ms()
local owned = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local owner, exp = string.match(flat[i + 1], '^(%S+) (%d+)$')
  if owner and tonumber(exp) > now then owned[owner] = (owned[owner] or 0) + 1 end
end
local out = {}
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #live, 2 do
  out[#out + 1] = live[i]
  out[#out + 1] = owned[live[i]] or 0
  out[#out + 1] = math.floor(tonumber(live[i + 1]) - now)
end
return out

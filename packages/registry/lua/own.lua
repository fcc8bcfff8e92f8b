-- KEYS owners workers; ARGV worker ttlMs partitions handoverMs.
-- Shares the event partitions among the live workers (routers): each keeps or takes up to its
-- share, renewing its claims for ttlMs. A partition it gives up stays unclaimed for handoverMs,
-- so its batch in flight ends before another worker resends from the last acknowledged event.
-- Returns the partitions this worker owns.
local now = now_ms()
local me, ttl, count, handover = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZADD', KEYS[2], now + ttl, me)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local share = math.ceil(count / redis.call('ZCARD', KEYS[2]))
local owners = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do owners[tonumber(flat[i])] = flat[i + 1] end
local mine, free = {}, {}
for p = 0, count - 1 do
  local owner, exp = string.match(owners[p] or '', '^(%S+) (%d+)$')
  if owner == me then mine[#mine + 1] = p
  elseif not owner or tonumber(exp) <= now then free[#free + 1] = p end
end
while #mine > share do
  redis.call('HSET', KEYS[1], table.remove(mine), '~ ' .. (now + handover))
end
for _, p in ipairs(free) do
  if #mine >= share then break end
  mine[#mine + 1] = p
end
for _, p in ipairs(mine) do redis.call('HSET', KEYS[1], p, me .. ' ' .. (now + ttl)) end
return mine

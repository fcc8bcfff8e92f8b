-- KEYS owners workers membership; ARGV worker ttlMs partitions [released partition ...].
-- One worker's turn at sharing the event partitions among the live workers (routers): each
-- keeps or takes up to its share, renewing its claims for ttlMs. A partition changes hands
-- with one owner at any moment and no gap: a worker over its share is told to give some (the
-- reply's second list) and keeps owning them while its batches of them end; it releases them
-- at a later turn (ARGV[4...]), and a worker under its share takes them at its next turn.
-- Returns {owned, giving, waiting (1: under its share while another is over it), membership}.
local now = now_ms()
local me, ttl, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
-- A worker joining or lapsing changes every share: the membership stamp tells the others.
local changed = redis.call('ZADD', KEYS[2], now + ttl, me) + redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if changed > 0 then redis.call('INCR', KEYS[3]) end
for i = 4, #ARGV do
  if string.match(redis.call('HGET', KEYS[1], ARGV[i]) or '', '^(%S+) ') == me then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
local share = math.ceil(count / redis.call('ZCARD', KEYS[2]))
local owners, held = {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do owners[tonumber(flat[i])] = flat[i + 1] end
local mine, free = {}, {}
for p = 0, count - 1 do
  local owner, exp = string.match(owners[p] or '', '^(%S+) (%d+)$')
  if owner == me then mine[#mine + 1] = p
  elseif not owner or tonumber(exp) <= now then free[#free + 1] = p
  else held[owner] = (held[owner] or 0) + 1 end
end
local giving = {}
for i = share + 1, #mine do giving[#giving + 1] = mine[i] end
for _, p in ipairs(free) do
  if #mine >= share then break end
  mine[#mine + 1] = p
end
for _, p in ipairs(mine) do redis.call('HSET', KEYS[1], p, me .. ' ' .. (now + ttl)) end
local waiting = 0
if #mine < share then
  for _, n in pairs(held) do
    if n > share then waiting = 1 end
  end
end
return {mine, giving, waiting, redis.call('GET', KEYS[3]) or '0'}

-- KEYS members generation; ARGV maxMembers idleTtlMs(0: none) newGeneration user1 user2 ...
-- (users distinct). Adds users to a room (idempotent), all or none: past maxMembers nothing is
-- added. The generation STRING is "<generation> <idleTtlMs>": the room's life, which begins
-- here when the room has none (new, expired, deleted); an idle TTL, once set, is kept and
-- refreshed by every change. Returns {1, generation, size, added1, ...}, or {0, '', size}
-- when the batch would pass maxMembers.
local g = redis.call('GET', KEYS[2])
if not g and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[1]) -- members of a life whose generation is gone (evicted alone)
end
local size = redis.call('ZCARD', KEYS[1])
local fresh = {}
for i = 4, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then fresh[#fresh + 1] = ARGV[i] end
end
if size + #fresh > tonumber(ARGV[1]) then return {0, '', size} end
local ttl = tonumber(ARGV[2])
local generation = ARGV[3]
if g then
  generation = string.match(g, '^%S+')
  if ttl == 0 then ttl = tonumber(string.match(g, ' (%d+)$')) end
end
redis.call('SET', KEYS[2], generation .. ' ' .. ttl)
for _, u in ipairs(fresh) do redis.call('ZADD', KEYS[1], 0, u) end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  if size + #fresh > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
local out = {1, generation, size + #fresh}
for _, u in ipairs(fresh) do out[#out + 1] = u end
return out

-- KEYS members generation edges; ARGV listMax. What a room push needs, in one call in the
-- room's slot: {generation or '', size, {incId1, incId2, ...}, {member1, ...} (all of them when size <= listMax)}.
-- The edge index (HASH incId -> 1) names the incarnations holding a connection of a member;
-- the caller keeps those with a live lease.
local g = redis.call('GET', KEYS[2])
local size = redis.call('ZCARD', KEYS[1])
local members = {}
if g and size <= tonumber(ARGV[1]) then members = redis.call('ZRANGE', KEYS[1], 0, -1) end
return {g and string.match(g, '^%S+') or '', size, redis.call('HKEYS', KEYS[3]), members}

-- KEYS rooms1 rooms2 ... (users' reverse indexes: one partition's slot on a Cluster, any keys on
-- one server). Returns each user's {room1, generation1, room2, generation2, ...}, in KEYS order:
-- the rooms of a turn's arriving users in one call.
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out

-- KEYS rooms1 rooms2 ... (users' reverse indexes, one partition's slot); ARGV room generation
-- maxRoomsPerUser. Records the room (with its generation) for each user under the limit; a
-- user already in it is updated. Returns the indexes (1-based) of the users refused.
local refused = {}
for i, key in ipairs(KEYS) do
  if redis.call('HEXISTS', key, ARGV[1]) == 1 or redis.call('HLEN', key) < tonumber(ARGV[3]) then
    redis.call('HSET', key, ARGV[1], ARGV[2])
  else
    refused[#refused + 1] = i
  end
end
return refused

-- KEYS roomsOfIncarnation edges1 edges2 ...; ARGV incId room1 holds1 room2 holds2 ... (rooms of
-- one partition, KEYS[i + 1] the edge index of the i-th). Sets (holds 1) or clears (0) the
-- incarnation's field in each room's edge index; the SET of the rooms it set, per partition,
-- lets the janitor clear them all once the incarnation is dead.
local inc = ARGV[1]
for i = 2, #KEYS do
  local room, holds = ARGV[2 * i - 2], ARGV[2 * i - 1]
  if holds == '1' then
    redis.call('HSET', KEYS[i], inc, 1)
    redis.call('SADD', KEYS[1], room)
  else
    redis.call('HDEL', KEYS[i], inc)
    redis.call('SREM', KEYS[1], room)
  end
end
return #KEYS - 1

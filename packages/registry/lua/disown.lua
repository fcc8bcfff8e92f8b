-- KEYS owners workers membership; ARGV worker [released partition ...].
-- A worker stopping: it leaves the live workers and releases the partitions it has no batch
-- in flight for, so the others take them at their next turn instead of when its claim lapses.
local me = ARGV[1]
for i = 2, #ARGV do
  if string.match(redis.call('HGET', KEYS[1], ARGV[i]) or '', '^(%S+) ') == me then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
if redis.call('ZREM', KEYS[2], me) > 0 then redis.call('INCR', KEYS[3]) end
return 0

-- KEYS the cursors of one or more partitions (on one server, a turn's acknowledgements go in one
-- call); ARGV sinkId position for each key in turn. Stores each sink's acknowledged position.
for i, key in ipairs(KEYS) do redis.call('HSET', key, ARGV[2 * i - 1], ARGV[2 * i]) end
return #KEYS

-- KEYS nodes inc names gcq (epoch); ARGV incId nodeId. Ends the incarnation and queues its clean-up now.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[3], ARGV[2]) end
redis.call('ZADD', KEYS[4], 0, ARGV[1])
return 1

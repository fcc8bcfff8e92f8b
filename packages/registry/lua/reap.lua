-- KEYS nodes inc names gcq; ARGV graceMs limit.
-- Forgets incarnations whose lease lapsed more than graceMs ago and queues their clean-up. Returns how many.
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
for _, inc in ipairs(dead) do
  local info = redis.call('HGET', KEYS[2], inc)
  if info then
    local ok, node = pcall(cjson.decode, info)
    if ok and type(node) == 'table' and node.nodeId and redis.call('HGET', KEYS[3], node.nodeId) == inc then
      redis.call('HDEL', KEYS[3], node.nodeId)
    end
  end
  redis.call('ZREM', KEYS[1], inc)
  redis.call('HDEL', KEYS[2], inc)
  redis.call('ZADD', KEYS[4], now, inc)
end
return #dead

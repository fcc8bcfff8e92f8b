-- KEYS nodes inc names gcq epoch; ARGV graceMs limit settleMs accessMs identity.
-- Forgets incarnations whose lease lapsed more than graceMs ago and queues their clean-up. Returns how many.
--
-- A lapse proves an edge dead only if the edge could have renewed: if its last renewal (expiry
-- minus its TTL) came after the registry's data became continuous and after the caller's own
-- access to it returned. A lease last renewed before that epoch may have lapsed because nobody
-- could reach Redis; it is judged only once the epoch is settleMs old, so its edge renews first.
-- settleMs < 0: no such guard, every lapsed lease is judged. accessMs < 0: the caller's access
-- never failed. identity: the server(s) holding the registry now; a change (restart, failover)
-- restarts the epoch, since leases may have lapsed meanwhile.
local now = now_ms()
local settle = tonumber(ARGV[3])
local epoch = nil
if settle >= 0 then
  local held = redis.call('HMGET', KEYS[5], 'since', 'id')
  local since = tonumber(held[1])
  if not since or (held[2] and held[2] ~= ARGV[5]) then since = now end
  -- Written only when it changes: no write per reap otherwise.
  if since ~= tonumber(held[1]) or held[2] ~= ARGV[5] then redis.call('HSET', KEYS[5], 'since', since, 'id', ARGV[5]) end
  epoch = since
  local access = tonumber(ARGV[4])
  if access >= 0 and now - access > epoch then epoch = now - access end
  if now - epoch >= settle then epoch = nil end
end
-- A lease renewed after the epoch expires after it too: earlier expiries wait for the settle.
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], epoch or '-inf', now - tonumber(ARGV[1]), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local reaped = 0
for i = 1, #dead, 2 do
  local inc, expiry = dead[i], tonumber(dead[i + 1])
  local info = redis.call('HGET', KEYS[2], inc)
  local ok, node = false, nil
  if info then ok, node = pcall(cjson.decode, info) end
  local valid = ok and type(node) == 'table'
  -- A lease without its TTL (written by an older edge) cannot tell when it was renewed: it waits.
  local judged = epoch == nil or (valid and tonumber(node.ttlMs) ~= nil and expiry - tonumber(node.ttlMs) >= epoch)
  if judged then
    if valid and node.nodeId and redis.call('HGET', KEYS[3], node.nodeId) == inc then
      redis.call('HDEL', KEYS[3], node.nodeId)
    end
    redis.call('ZREM', KEYS[1], inc)
    redis.call('HDEL', KEYS[2], inc)
    redis.call('ZADD', KEYS[4], now, inc)
    reaped = reaped + 1
  end
end
return reaped

-- KEYS key; ARGV fingerprint answer ttlMs. Stores the answer of the pending request (answer '':
-- it failed, so the key is freed for a retry). Only the request that began it can end it.
local v = redis.call('GET', KEYS[1])
if v ~= 'p ' .. ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], 'd ' .. ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
end
return 1

-- KEYS members generation; ARGV user1 user2 ... Removes users from a room. Returns
-- {size, removed1, ...}. An emptied room keeps its generation (and its idle TTL, if any).
local out = {0}
for _, u in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], u) == 1 then out[#out + 1] = u end
end
out[1] = redis.call('ZCARD', KEYS[1])
return out

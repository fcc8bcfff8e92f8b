-- Partition script (KEYS[2]: the index of the caller's incarnation).
-- ARGV userId connId incId cause graceMs retentionMs. Removes exactly connId; returns 1 if it was there.
-- The user's last entry going takes them offline with `cause` (after the grace).
presence_settings(ARGV[5], ARGV[6])
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local head = ARGV[2] .. ':'
local out, found, keep_index = {}, false, false
for e in string.gmatch(v, '%S+') do
  if string.sub(e, 1, #head) == head then found = true
  else
    out[#out + 1] = e
    if inc_of(e) == ARGV[3] then keep_index = true end
  end
end
if not found then return 0 end
if not keep_index then redis.call('SREM', KEYS[2], ARGV[1]) end
if #out == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  went_empty(ARGV[1], ARGV[4])
else
  redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, ' '))
end
return 1

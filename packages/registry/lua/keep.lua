-- KEYS meta1 list1 meta2 list2 ... (one user's inbox per pair, all of one partition's slot);
-- ARGV frame maxLen ttlMs notAfter. Appends the frame to each user's inbox; returns epoch1
-- offset1 ... Past notAfter (ms; 0: none) it appends nothing and returns {}: the router has
-- answered 503 by then ("sent nowhere"), so a call delayed by a partition or a reconnect must
-- not keep the push later, out of order with the pushes kept since.
--
-- An inbox is a LIST of frames, oldest first, and a meta STRING "<epoch> <last offset>".
-- Offsets are dense from 1, so the list holds offsets last-len+1 .. last (a LIST grows with
-- its entries; a STREAM would allocate a whole 4 KB node for the first one). The epoch names
-- one life of the inbox: a new one begins whenever the meta is missing (never kept, expired,
-- evicted, Redis restarted empty), so a position from an earlier life never matches. It is
-- the Redis clock in ms and 8 hex digits of the hash of the user's meta key, so two users'
-- inboxes born in the same ms still differ. inbox-read.lua creates the same (empty) meta when
-- a client connects.
local max_len, ttl = tonumber(ARGV[2]), ARGV[3]
local not_after = tonumber(ARGV[4] or '0')
if not_after > 0 and now_ms() > not_after then return {} end
local out = {}
for i = 1, #KEYS, 2 do
  local meta, list = KEYS[i], KEYS[i + 1]
  local m = redis.call('GET', meta)
  local epoch, offset
  if m then
    local sp = string.find(m, ' ', 1, true)
    epoch, offset = string.sub(m, 1, sp - 1), tonumber(string.sub(m, sp + 1)) + 1
  else
    -- A new life: entries of an earlier one (meta evicted alone) must not carry over.
    redis.call('DEL', list)
    epoch, offset = string.format('%.0f', now_ms()) .. string.sub(redis.sha1hex(meta), 1, 8), 1
  end
  local o = string.format('%.0f', offset)
  if redis.call('RPUSH', list, ARGV[1]) > max_len then redis.call('LTRIM', list, -max_len, -1) end
  redis.call('SET', meta, epoch .. ' ' .. o, 'PX', ttl)
  redis.call('PEXPIRE', list, ttl)
  out[#out + 1] = epoch
  out[#out + 1] = o
end
return out

-- KEYS meta1 stream1 meta2 stream2 ... (one user's inbox per pair, all of one partition's slot);
-- ARGV frame maxLen ttlMs. Appends the frame to each user's inbox; returns epoch1 offset1 ...
--
-- An inbox is a STREAM of entries with ids 0-<offset> (offsets dense from 1) and a meta STRING
-- "<epoch> <last offset>". The epoch names one life of the inbox: a new one begins whenever the
-- meta is missing (never kept, expired, evicted, Redis restarted empty), so a position from
-- an earlier life never matches. It is the Redis clock in ms and 8 hex digits of the hash of
-- the user's key, so two users' inboxes born in the same ms still differ. inbox-read.lua
-- creates the same (empty) meta when a client connects.
local max_len, ttl = ARGV[2], ARGV[3]
local out = {}
for i = 1, #KEYS, 2 do
  local meta, stream = KEYS[i], KEYS[i + 1]
  local m = redis.call('GET', meta)
  local epoch, offset
  if m then
    local sp = string.find(m, ' ', 1, true)
    epoch, offset = string.sub(m, 1, sp - 1), tonumber(string.sub(m, sp + 1)) + 1
  else
    -- A new life: entries of an earlier one (meta evicted alone) must not carry over.
    redis.call('DEL', stream)
    epoch, offset = string.format('%.0f', now_ms()) .. string.sub(redis.sha1hex(meta), 1, 8), 1
  end
  local o = string.format('%.0f', offset)
  redis.call('XADD', stream, 'MAXLEN', max_len, '0-' .. o, 'f', ARGV[1])
  redis.call('SET', meta, epoch .. ' ' .. o, 'PX', ttl)
  redis.call('PEXPIRE', stream, ttl)
  out[#out + 1] = epoch
  out[#out + 1] = o
end
return out

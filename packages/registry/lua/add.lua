-- Partition script. ARGV incId maxPerUser cause graceMs retentionMs then (userId connId since)*.
-- Upserts each connection under incId: an existing connId moves to incId (resync), a new one is
-- appended. Beyond maxPerUser the oldest entries are removed and returned as
-- [userId, entry, userId, entry, ...] so their sockets can be closed. A user who had no entry
-- goes online with `cause`.
presence_settings(ARGV[4], ARGV[5])
local inc, max, cause = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local evicted = {}
for i = 6, #ARGV, 3 do
  local uid, conn = ARGV[i], ARGV[i + 1]
  local entry = conn .. ':' .. inc .. ':' .. ARGV[i + 2]
  local head = conn .. ':'
  local out, found = {}, false
  local v = redis.call('HGET', KEYS[1], uid)
  if v then
    for e in string.gmatch(v, '%S+') do
      if string.sub(e, 1, #head) == head then found = true out[#out + 1] = entry else out[#out + 1] = e end
    end
  end
  if not found then out[#out + 1] = entry end
  while #out > max do
    evicted[#evicted + 1] = uid
    evicted[#evicted + 1] = table.remove(out, 1)
  end
  redis.call('HSET', KEYS[1], uid, table.concat(out, ' '))
  redis.call('SADD', KEYS[2], uid)
  if not v then went_live(uid, cause, #out) end
end
return evicted

-- Partition script (KEYS[2]: the index of the incarnation collected).
-- ARGV incId batch cause graceMs retentionMs. Strips incId's entries from up to batch users;
-- a user left without entries goes offline with `cause`. Returns how many users remain.
presence_settings(ARGV[4], ARGV[5])
local uids = redis.call('SPOP', KEYS[2], tonumber(ARGV[2]))
for _, uid in ipairs(uids) do
  local v = redis.call('HGET', KEYS[1], uid)
  if v then
    local out = {}
    for e in string.gmatch(v, '%S+') do
      if inc_of(e) ~= ARGV[1] then out[#out + 1] = e end
    end
    if #out == 0 then
      redis.call('HDEL', KEYS[1], uid)
      went_empty(uid, ARGV[3])
    elseif #out < count(v) then
      redis.call('HSET', KEYS[1], uid, table.concat(out, ' '))
    end
  end
end
return redis.call('SCARD', KEYS[2])

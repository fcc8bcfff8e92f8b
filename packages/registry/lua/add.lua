-- Partition script, over one or more partitions (on one server, a turn's registrations go in
-- one call). KEYS seven per partition: users, index, events, holds, hold causes, last version,
-- revocations. ARGV incId maxPerUser cause graceMs retentionMs validUntil, then per partition (in
-- KEYS order) its count n and n times (userId connId since iat), iat in s epoch ('' when the
-- token has none). validUntil (Redis clock, ms; 0: none) fences a
-- late write: past it the lease may have lapsed (the write was delayed by a partition, or
-- retried after a reconnect), so nothing is written and the script answers {{}, {}, 1}: the
-- edge resyncs instead, under its current lease. A write never moves an entry to a dead one.
-- Upserts each connection under incId: an existing connId moves to incId (resync), a new one is
-- appended. A connection whose token was issued at or before its user's revocation (cutoff in
-- ms; a token without iat is covered by any) is not written and is returned in the second
-- list; a partition without revocations costs one EXISTS. Beyond maxPerUser the entries that connected first (least
-- `since`) are removed, whatever the order they were written in (a resync re-writes an old
-- socket: it never counts as a newer session), and returned in the first list as
-- [userId, entry, userId, entry, ...] so their sockets can be closed. A user who had no entry
-- goes online with `cause`.
presence_settings(ARGV[4], ARGV[5])
local inc, max, cause = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local valid_until = tonumber(ARGV[6])
if valid_until > 0 and now_ms() > valid_until then return { {}, {}, 1 } end
local evicted, revoked = {}, {}
local function since_of(e) return tonumber(string.match(e, ':(%d+)$')) end
local a = 7
for g = 0, #KEYS / 7 - 1 do
  local k = { unpack(KEYS, g * 7 + 1, g * 7 + 7) }
  use_partition(k)
  local now = redis.call('EXISTS', k[7]) == 1 and now_ms()
  local last = a + 4 * tonumber(ARGV[a])
  for i = a + 1, last, 4 do
    local uid, conn, iat = ARGV[i], ARGV[i + 1], ARGV[i + 3]
    local cutoff = now and revoked_cutoff(k[7], uid, now)
    if cutoff and (iat == '' or tonumber(iat) * 1000 <= cutoff) then
      revoked[#revoked + 1] = conn
    else
      local entry = conn .. ':' .. inc .. ':' .. ARGV[i + 2]
      local head = conn .. ':'
      local out, found = {}, false
      local v = redis.call('HGET', k[1], uid)
      if v then
        for e in string.gmatch(v, '%S+') do
          if string.sub(e, 1, #head) == head then found = true out[#out + 1] = entry else out[#out + 1] = e end
        end
      end
      if not found then out[#out + 1] = entry end
      while #out > max do
        local first = 1
        for j = 2, #out do
          if since_of(out[j]) < since_of(out[first]) then first = j end
        end
        evicted[#evicted + 1] = uid
        evicted[#evicted + 1] = table.remove(out, first)
      end
      redis.call('HSET', k[1], uid, table.concat(out, ' '))
      redis.call('SADD', k[2], uid)
      if not v then went_live(uid, cause, #out) end
    end
  end
  a = last + 1
end
return { evicted, revoked }

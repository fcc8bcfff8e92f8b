-- Partition script. ARGV hscanCursor count.
-- Users announced online in this partition: those with an entry, and those whose offline is
-- held. Returns [next cursor, userId, connections, userId, connections, ...].
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local out = { page[1] }
for i = 1, #page[2], 2 do
  out[#out + 1] = page[2][i]
  out[#out + 1] = count(page[2][i + 1])
end
if page[1] == '0' then
  for _, uid in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    out[#out + 1] = uid
    out[#out + 1] = 0
  end
end
return out

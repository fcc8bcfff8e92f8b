-- KEYS meta stream; ARGV epoch offset ttlMs. What a (re)connecting client is owed, and where
-- the inbox is now. The inbox is created empty when missing, so a client has a position to
-- resume from even before its first kept push. Returns
--   {2, epoch, last}               no position given (ARGV epoch ''): the head only;
--   {1, epoch, last, o1, f1, ...}  the entries after the position, when the inbox holds them all;
--   {0, epoch, last}               it does not (another life, a position it never reached,
--                                  entries trimmed or expired).
local m = redis.call('GET', KEYS[1])
if not m then
  redis.call('DEL', KEYS[2])
  m = string.format('%.0f', now_ms()) .. string.sub(redis.sha1hex(KEYS[1]), 1, 8) .. ' 0'
  redis.call('SET', KEYS[1], m, 'PX', ARGV[3])
end
local sp = string.find(m, ' ', 1, true)
local epoch, last = string.sub(m, 1, sp - 1), tonumber(string.sub(m, sp + 1))
local head = string.format('%.0f', last)
if ARGV[1] == '' then return {2, epoch, head} end
local after = tonumber(ARGV[2])
if epoch ~= ARGV[1] or after > last then return {0, epoch, head} end
if after == last then return {1, epoch, head} end
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[2], '+')
if #entries ~= last - after then return {0, epoch, head} end
local out = {1, epoch, head}
for _, e in ipairs(entries) do
  out[#out + 1] = string.sub(e[1], 3)
  out[#out + 1] = e[2][2]
end
return out

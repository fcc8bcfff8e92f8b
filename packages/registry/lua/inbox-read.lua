-- KEYS meta stream; ARGV epoch offset. The entries after the position, oldest first, when the
-- inbox still holds every one of them: {1, offset1, frame1, ...}; {0} when it does not (another
-- life of the inbox, a position it never reached, or entries trimmed or expired).
local m = redis.call('GET', KEYS[1])
if not m then return {0} end
local sp = string.find(m, ' ', 1, true)
if string.sub(m, 1, sp - 1) ~= ARGV[1] then return {0} end
local last, after = tonumber(string.sub(m, sp + 1)), tonumber(ARGV[2])
if after > last then return {0} end
if after == last then return {1} end
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[2], '+')
if #entries ~= last - after then return {0} end
local out = {1}
for _, e in ipairs(entries) do
  out[#out + 1] = string.sub(e[1], 3)
  out[#out + 1] = e[2][2]
end
return out

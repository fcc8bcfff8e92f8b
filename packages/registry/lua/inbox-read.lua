-- KEYS meta list; ARGV epoch offset ttlMs. What a (re)connecting client is owed, and where the
-- inbox is now (keep.lua says how an inbox is laid out). The inbox is created empty when
-- missing, so a client has a position to resume from even before its first kept push. Returns
--   {2, epoch, last}               no position given (ARGV epoch ''): the head only;
--   {1, epoch, last, f1, f2, ...}  the frames after the position, oldest first, when the inbox
--                                  holds them all (offsets follow the position: o+1, o+2, ...);
--   {0, epoch, 0, f1, f2, ...}     the position is of another life (the inbox expired, or Redis
--                                  lost it, and a push started it anew) and this life still
--                                  holds all of its frames: the client saw none of them (each
--                                  kept frame carries its position), so it is owed them all,
--                                  from before the first; what it missed of the old life is lost;
--   {0, epoch, last}               it does not (another life trimmed already, a position it
--                                  never reached, entries trimmed or expired).
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
if epoch ~= ARGV[1] then
  if last > 0 and redis.call('LLEN', KEYS[2]) == last then
    local out = {0, epoch, '0'}
    for _, f in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do out[#out + 1] = f end
    return out
  end
  return {0, epoch, head}
end
if after > last then return {0, epoch, head} end
local missed = last - after
if missed == 0 then return {1, epoch, head} end
if redis.call('LLEN', KEYS[2]) < missed then return {0, epoch, head} end
local out = {1, epoch, head}
for _, f in ipairs(redis.call('LRANGE', KEYS[2], -missed, -1)) do out[#out + 1] = f end
return out

-- KEYS the user's revocation key. ARGV ttlMs. Revokes every token of the user issued until now
-- (Redis clock, ms): the cutoff never moves back, and lives ttlMs (the longest a token it
-- covers can stay valid). Returns the cutoff.
local now = now_ms()
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local cutoff = string.format('%.0f', math.max(now, old))
redis.call('SET', KEYS[1], cutoff, 'PX', ARGV[1])
return cutoff

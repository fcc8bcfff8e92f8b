-- KEYS the revocations HASH of the user's partition (userId -> "<cutoff ms> <expiry ms>").
-- ARGV userId ttlMs. Revokes every token of the user issued until now (Redis clock, ms): the
-- cutoff never moves back, and lives ttlMs (the longest a token it covers can stay valid).
-- Expired fields are dropped when read (revoked_cutoff) and, ten random ones at a time, here;
-- the hash expires whole once no revocation was made in the partition for ttlMs.
local now = now_ms()
local old = revoked_cutoff(KEYS[1], ARGV[1], now) or 0
local cutoff = math.max(now, old)
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f %.0f', cutoff, now + ttl))
for _, field in ipairs(redis.call('HRANDFIELD', KEYS[1], 10)) do revoked_cutoff(KEYS[1], field, now) end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return string.format('%.0f', cutoff)

-- KEYS the revocations HASH of the user's partition. ARGV userId. The user's cutoff (ms), or nil.
local cutoff = revoked_cutoff(KEYS[1], ARGV[1], now_ms())
return cutoff and string.format('%.0f', cutoff)

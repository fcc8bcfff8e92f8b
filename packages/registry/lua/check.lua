-- KEYS nodes inc; ARGV incIds. Returns [now, expiry-or-'', info-or-'', ...] in ARGV order.
local out = { now_ms() }
for i = 1, #ARGV do
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[i])
  out[#out + 1] = exp or ''
  out[#out + 1] = exp and (redis.call('HGET', KEYS[2], ARGV[i]) or '') or ''
end
return out

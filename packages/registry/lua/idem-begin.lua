-- KEYS key; ARGV fingerprint pendingTtlMs.
-- Starts a request under an idempotency key, or says what became of the first one:
-- {'new'} (now pending), {'in_flight'}, {'mismatch'} (another body), {'done', answer}.
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'p ' .. ARGV[1], 'PX', ARGV[2])
  return { 'new' }
end
local state, fp = string.match(v, '^(%a) (%S+)')
if fp ~= ARGV[1] then return { 'mismatch' } end
if state == 'p' then return { 'in_flight' } end
return { 'done', string.sub(v, #fp + 4) }

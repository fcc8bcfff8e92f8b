-- KEYS meta1 meta2 ... (users of one partition's slot). Each inbox's position now: returns
-- epoch1 last1 epoch2 last2 ..., '' '' for a user without an inbox (none is created).
local out = {}
for i = 1, #KEYS do
  local m = redis.call('GET', KEYS[i])
  if m then
    local sp = string.find(m, ' ', 1, true)
    out[#out + 1] = string.sub(m, 1, sp - 1)
    out[#out + 1] = string.sub(m, sp + 1)
  else
    out[#out + 1] = ''
    out[#out + 1] = ''
  end
end
return out

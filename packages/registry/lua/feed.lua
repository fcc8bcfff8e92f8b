-- KEYS feed, trimmed; ARGV oldestMs then one JSON event per entry.
-- Trims the feed to the retention, remembering the newest id it removed (a cursor before it
-- may have missed events), then appends the events.
local cut = ARGV[1] .. '-0'
local last = redis.call('XREVRANGE', KEYS[1], '(' .. cut, '-', 'COUNT', 1)[1]
if last then
  redis.call('SET', KEYS[2], last[1])
  redis.call('XTRIM', KEYS[1], 'MINID', cut)
end
for i = 2, #ARGV do redis.call('XADD', KEYS[1], '*', 'e', ARGV[i]) end
return #ARGV - 1

-- KEYS[1] the namespace's budget or members hash; ARGV: holder, alive (ms), channel ('' for
-- none). Marks the holder alive, forgets the holders gone quiet, and returns how many are
-- alive. A holder new to the hash tells the channel the count ('m <n>'), so the others count
-- it at once, not at their next heartbeat.
local hash, holder, alive, channel = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local new = redis.call('HSET', hash, holder, now + alive)
local all = redis.call('HGETALL', hash)
local n = 0
for i = 1, #all, 2 do
  local until_ms = tonumber(all[i + 1])
  if not until_ms or until_ms <= now then
    redis.call('HDEL', hash, all[i])
  else
    n = n + 1
  end
end
redis.call('PEXPIRE', hash, alive)
if new == 1 and channel and channel ~= '' then
  redis.call(PUBLISH, channel, 'm ' .. n)
end
return n

-- KEYS[1] the namespace's budget hash; ARGV: holder, alive (ms). Marks the holder alive,
-- forgets the holders gone quiet, and returns how many are alive.
local hash, holder, alive = KEYS[1], ARGV[1], tonumber(ARGV[2])
redis.call('HSET', hash, holder, now + alive)
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
return n

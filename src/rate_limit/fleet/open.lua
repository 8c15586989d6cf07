-- KEYS[1] the hash; ARGV: field, holder, channel. Only the lease holder's answer opens.
local hash, field, holder, channel = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local g = get(hash, field)
if not g or g.holder ~= holder then return 0 end
redis.call('HDEL', hash, field)
redis.call(PUBLISH, channel, 'o ' .. field)
return 1

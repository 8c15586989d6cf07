-- KEYS[1] the hash; ARGV: field, holder. The holder's probe got no answer: the lease is free.
local hash, field, holder = KEYS[1], ARGV[1], ARGV[2]
local g = get(hash, field)
if not g or g.holder ~= holder then return 0 end
g.holder = ''
g.lease = 0
redis.call('HSET', hash, field, encode(g))
return 1

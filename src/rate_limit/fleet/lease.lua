-- KEYS[1] the hash; ARGV: field, holder, lease (ms). Returns {0, 0} when the caller may
-- probe (the gate is open fleet-wide, or its time is up and the lease is now the caller's),
-- {1, left, rejections, last} while it is closed, {2, left} while another holds the lease.
local hash, field, holder, lease = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local g = get(hash, field)
if not g then return { 0, 0 } end
if g.untl > now then return { 1, g.untl - now, g.rej, g.last } end
if g.holder ~= '' and g.holder ~= holder and g.lease > now then
  return { 2, g.lease - now }
end
g.holder = holder
g.lease = now + lease
redis.call('HSET', hash, field, encode(g))
return { 0, 0 }

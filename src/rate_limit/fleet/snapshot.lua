-- KEYS[1] the hash. Every gate not yet forgotten: field, time left (ms), rejections, last,
-- out, flattened. Forgets the expired ones on the way.
local hash = KEYS[1]
local all = redis.call('HGETALL', hash)
local out = {}
for i = 1, #all, 2 do
  local g = parse(all[i + 1])
  if not g or expired(g) then
    redis.call('HDEL', hash, all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = math.max(g.untl - now, 0)
    out[#out + 1] = g.rej
    out[#out + 1] = g.last
    out[#out + 1] = g.out
  end
end
return out

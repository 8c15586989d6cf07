-- KEYS[1] the hash; ARGV: field, wait (ms), holder ('' unless the caller's probe holds the
-- lease), max_keys, channel, out (1: closed for an outage). Publishes and returns 1 when the
-- gate changed.
local hash, field, wait, holder = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_keys, channel, out = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]) == 1 and 1 or 0
local g = get(hash, field)
if not g then
  if max_keys <= 0 then return 0 end
  -- Room for a new gate: the expired ones go first, then the one that opens soonest.
  while redis.call('HLEN', hash) >= max_keys do
    local all = redis.call('HGETALL', hash)
    local soonest, soonest_until = nil, nil
    local dropped = false
    for i = 1, #all, 2 do
      local o = parse(all[i + 1])
      if not o or expired(o) then
        redis.call('HDEL', hash, all[i])
        dropped = true
      elseif not soonest_until or o.untl < soonest_until then
        soonest, soonest_until = all[i], o.untl
      end
    end
    if not dropped then
      if not soonest then break end
      redis.call('HDEL', hash, soonest)
    end
  end
  g = { untl = now + wait, rej = 1, last = wait, holder = '', lease = 0, out = out }
elseif holder ~= '' and g.holder == holder then
  -- The probe that holds the lease was rejected: one more consecutive rejection.
  g.untl = math.max(g.untl, now + wait)
  g.rej = g.rej + 1
  g.last = wait
  g.holder = ''
  g.lease = 0
  g.out = math.max(g.out, out)
elseif now + wait > g.untl or out > g.out then
  -- Anybody else's rejection only extends, or marks the closure an outage.
  g.untl = math.max(g.untl, now + wait)
  g.out = math.max(g.out, out)
else
  return 0
end
redis.call('HSET', hash, field, encode(g))
redis.call(PUBLISH, channel,
  string.format('c %s %d %d %d %d', field, g.untl - now, g.rej, g.last, g.out))
return 1

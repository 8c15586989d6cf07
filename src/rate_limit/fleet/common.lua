-- Shared by every script of the fleet store (prepended to each).
-- A gate is one field of the namespace's hash: "until|rejections|last|holder|lease|out",
-- times in milliseconds of this server's own clock (TIME), so no machine's clock matters;
-- out is 1 for a gate closed for an outage (only a probe's answer that is no outage signal
-- opens it), else 0.
local LINGER = 30000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function parse(v)
  if not v then return nil end
  local u, r, l, h, e, o = string.match(v, '^(%d+)|(%d+)|(%d+)|([^|]*)|(%d+)|([01])$')
  if not u then return nil end
  return {
    untl = tonumber(u), rej = tonumber(r), last = tonumber(l), holder = h, lease = tonumber(e),
    out = tonumber(o),
  }
end
local function encode(g)
  return string.format('%d|%d|%d|%s|%d|%d', g.untl, g.rej, g.last, g.holder, g.lease, g.out)
end
-- Expired a LINGER ago, and nobody holds its probe lease: the gate may be forgotten.
local function expired(g)
  return g.untl + LINGER <= now and (g.holder == '' or g.lease <= now)
end
local function get(hash, field)
  local g = parse(redis.call('HGET', hash, field))
  if g and expired(g) then
    redis.call('HDEL', hash, field)
    return nil
  end
  return g
end

-- KEYS[1] the gates' hash (it names the slot); ARGV: holder, field, remaining, reset (ms),
-- limit (-1: none), window (ms, -1: none), channel. Tells the fleet of a quota a process was
-- announced.
local holder, field, remaining, reset = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, window, channel = ARGV[5], ARGV[6], ARGV[7]
redis.call(PUBLISH, channel,
  string.format('q %s %s %s %s %s %s', field, remaining, reset, limit, window, holder))
return 1

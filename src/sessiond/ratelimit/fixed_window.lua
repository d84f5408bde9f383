-- sessiond fixed-window rate limit counter (see sessiond/ratelimit/base.py).
-- KEYS[1]: the key's counter; ARGV[1]: the window in milliseconds.
-- Returns {count including this hit, milliseconds until the window ends}.
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- the first hit of a window (or a counter that somehow lost its expiry)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}

-- sessiond fixed-window rate limit counters (see sessiond/ratelimit/base.py).
-- KEYS: the counters one request hits; ARGV[1]: the window in milliseconds.
-- Returns {count, ttl, count, ttl, ...}: per key, its count including this hit and the
-- milliseconds until its window ends.
local window = tonumber(ARGV[1])
local replies = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    -- the first hit of a window (or a counter that somehow lost its expiry)
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  replies[2 * i - 1] = count
  replies[2 * i] = ttl
end
return replies

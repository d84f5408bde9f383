-- sessiond: write one session record and its subject's index entry, atomically
-- (see sessiond/sessions/redis.py).
-- KEYS[1]: the session record; KEYS[2]: the subject's index (zset: sid -> ends_at in ms).
-- ARGV[1]: "1" to write only if the record still holds ARGV[2] (compare and set), "0" to
--          write whatever it holds (inside a MULTI/EXEC that WATCHes what it read);
-- ARGV[2]: the value the record must hold when ARGV[1] is "1";
-- ARGV[3]: the record's new value, or "" to delete it; ARGV[4]: its expiry, ms since epoch;
-- ARGV[5]: now in ms: index members scored at or before it are dead and pruned;
-- ARGV[6]: the session id; ARGV[7...]: ids of more sessions to drop from the index.
-- The index then expires with its last member, or is deleted once empty.
-- Returns 1 once written, 0 if the record did not hold ARGV[2] (nothing written).
if ARGV[1] == '1' and redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[6])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
end
for i = 7, #ARGV do
  redis.call('ZREM', KEYS[2], ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[2], last[2])
else
  redis.call('DEL', KEYS[2])
end
return 1

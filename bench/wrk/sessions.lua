-- wrk script of `python -m bench authority`: session create or refresh, with the tokens of one
-- run carried into the next through a file.
--
--   wrk ... -s sessions.lua URL -- create PREFIX FILE   POST /v1/sessions, subject PREFIX-<n>
--                                                       (a new one per request); each new
--                                                       session's refresh token is appended to
--                                                       FILE when the run ends
--   wrk ... -s sessions.lua URL -- refresh FILE         POST /v1/tokens/refresh: takes the
--                                                       oldest token of the pool read from FILE,
--                                                       puts the successor from the answer at
--                                                       the back; FILE is rewritten with the
--                                                       pool when the run ends
--
-- The pool is a chain per token: every answer's token is presented again later, so every
-- refresh rotates a live token. wrk tells request() and response() nothing of the connection,
-- so the chains are the thread's, not one per connection; a pool larger than the connections
-- never runs dry. Tokens in flight when the run stops are lost (their sessions are not used
-- again). Headers (the credential, Content-Type) come from wrk's -H options.

-- Globals, so that done() can read them from the thread (thread:get).
mode, prefix, file = nil, nil, nil
pool, head, tail = {}, 1, 0
local n = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  if mode == "create" then
    prefix, file = args[2], args[3]
  else
    file = args[2]
    for line in io.lines(file) do
      tail = tail + 1
      pool[tail] = line
    end
  end
end

function request()
  if mode == "create" then
    n = n + 1
    local body = '{"subject":"' .. prefix .. "-" .. n .. '","device":{"label":"bench"}}'
    return wrk.format("POST", "/v1/sessions", nil, body)
  end
  local token = "empty-pool"
  if head <= tail then
    token = pool[head]
    pool[head] = nil
    head = head + 1
  end
  return wrk.format("POST", "/v1/tokens/refresh", nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token and (status == 200 or status == 201) then
    tail = tail + 1
    pool[tail] = token
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local kept, first, last = thread:get("pool"), thread:get("head"), thread:get("tail")
    local out = assert(io.open(thread:get("file"), thread:get("mode") == "create" and "a" or "w"))
    for i = first, last do
      if kept[i] then
        out:write(kept[i], "\n")
      end
    end
    out:close()
  end
end

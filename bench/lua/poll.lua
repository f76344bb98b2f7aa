-- RFC 8628 token polls: POST BENCH_PATH with grant_type=device_code for the device codes in
-- the file BENCH_CODES (one a line, made up front and never approved), each thread cycling
-- through its own share of them (every BENCH_THREADS-th line), so each code is polled once
-- per (codes / polls per second) seconds. BENCH_CLIENT_ID goes in the body (public client).
-- Counts the replies by their error: authorization_pending, slow_down, anything else.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

local path = os.getenv("BENCH_PATH")
local nthreads = tonumber(os.getenv("BENCH_THREADS"))
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local next_id = 0
local bodies, at = {}, 0
pending, slow, other = 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  local prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
    .. "&client_id=" .. os.getenv("BENCH_CLIENT_ID") .. "&device_code="
  local i = 0
  for code in io.lines(os.getenv("BENCH_CODES")) do
    if i % nthreads == tid then table.insert(bodies, prefix .. code) end
    i = i + 1
  end
end

function request()
  at = at % #bodies + 1
  return wrk.format("POST", path, headers, bodies[at])
end

function response(status, headers, body)
  if body:find("authorization_pending", 1, true) then
    pending = pending + 1
  elseif body:find("slow_down", 1, true) then
    slow = slow + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local p, s, o = 0, 0, 0
  for _, t in ipairs(threads) do
    p = p + (t:get("pending") or 0)
    s = s + (t:get("slow") or 0)
    o = o + (t:get("other") or 0)
  end
  bench_summary(summary, latency, { pending = p, slow_down = s, other = o })
end

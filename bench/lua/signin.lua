-- One complete qrlogin sign-in after another on each connection:
--   create -> scan -> approve -> exchange
-- Run with as many threads as connections, so each thread's state is one connection's flow.
-- BENCH_TOKEN is the approver's access token.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

local token = os.getenv("BENCH_TOKEN")
local json = { ["Content-Type"] = "application/json" }
local state, id, secret, handle = "create", nil, nil, nil
completed = 0
failed = 0

function request()
  if state == "create" then
    return wrk.format("POST", "/api/v1/login-requests", json, "{}")
  elseif state == "scan" then
    return wrk.format("GET", "/api/v1/scan/" .. handle, { Authorization = "Bearer " .. token })
  elseif state == "approve" then
    return wrk.format("POST", "/api/v1/scan/" .. handle .. "/approve",
      { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" }, "")
  else
    return wrk.format("POST", "/api/v1/login-requests/" .. id .. "/session",
      { Authorization = "Bearer " .. secret, ["Content-Type"] = "application/json" }, "{}")
  end
end

local function fail()
  failed = failed + 1
  state = "create"
end

function response(status, headers, body)
  if state == "create" then
    if status ~= 201 then return fail() end
    id = body:match('"id"%s*:%s*"([^"]+)"')
    secret = body:match('"secret"%s*:%s*"([^"]+)"')
    handle = body:match('"qr_url"%s*:%s*"[^"]*/q/([^"]+)"')
    if id and secret and handle then state = "scan" else fail() end
  elseif state == "scan" then
    if status == 200 then state = "approve" else fail() end
  elseif state == "approve" then
    if status == 200 then state = "exchange" else fail() end
  else
    if status == 200 then completed = completed + 1 else failed = failed + 1 end
    state = "create"
  end
end

function done(summary, latency, requests)
  local c, f = 0, 0
  for _, t in ipairs(threads) do
    c = c + (t:get("completed") or 0)
    f = f + (t:get("failed") or 0)
  end
  bench_summary(summary, latency, { completed = c, failed = f })
end

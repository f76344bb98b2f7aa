-- POST one fixed body to one path: login-request / device-authorization creation.
-- BENCH_PATH, BENCH_BODY and BENCH_CTYPE choose the target.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH")
wrk.body = os.getenv("BENCH_BODY") or ""
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE") or "application/json"

function done(summary, latency, requests)
  bench_summary(summary, latency, nil)
end

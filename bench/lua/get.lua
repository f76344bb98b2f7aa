-- GET one path (BENCH_PATH): the web stack's ceiling, on an endpoint that does no work.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH")

function done(summary, latency, requests)
  bench_summary(summary, latency, nil)
end

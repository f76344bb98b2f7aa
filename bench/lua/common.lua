-- Shared by the bench's wrk scripts: one JSON line of results for python -m bench to read.
threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function bench_summary(summary, latency, extra)
  local e = summary.errors
  local parts = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"non2xx":%d', e.status),
    string.format('"socket_errors":%d', e.connect + e.read + e.write + e.timeout),
    string.format('"p50_us":%d', latency:percentile(50)),
    string.format('"p99_us":%d', latency:percentile(99)),
    string.format('"max_us":%d', latency.max),
  }
  for k, v in pairs(extra or {}) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  io.write("BENCH {" .. table.concat(parts, ",") .. "}\n")
end

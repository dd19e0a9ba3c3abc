-- wrk script: POST the course's customer to /predict; print one result line for benchmarks/serving.py.
-- The body is the file named by BENCHMARK_BODY_FILE. With BENCHMARK_DELAY_MS, each connection waits that
-- many milliseconds after an answer before its next request: a paced load, for latencies without queueing.
local body_file = assert(os.getenv("BENCHMARK_BODY_FILE"), "BENCHMARK_BODY_FILE is not set")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local delay_ms = tonumber(os.getenv("BENCHMARK_DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non_2xx = 0
end

-- wrk's own status count misses 1xx and 3xx answers; any of them would make the figures meaningless.
function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local non_2xx_total = 0
  for _, thread in ipairs(threads) do
    non_2xx_total = non_2xx_total + (thread:get("non_2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHMARK_RESULT {"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, "non_2xx": %.0f, '
      .. '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}, '
      .. '"latency_us": {"p50": %.0f, "p90": %.0f, "p99": %.0f, "mean": %.1f, "max": %.0f}}\n',
    summary.duration, summary.requests, summary.bytes, non_2xx_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max
  ))
end

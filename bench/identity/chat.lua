-- wrk script for bench/identity/run.sh: a small chat completion POST to the
-- echo upstream, with the credential in BENCH_AUTH ("" = none: the anonymous
-- route) and the model in BENCH_MODEL (which picks the route).
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "gpt-4o-mini") ..
           '","messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH") or ""
if auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end

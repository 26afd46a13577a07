-- wrk script for bench/proxy/run.sh: the same small chat completion POST for
-- every request, and a machine-readable summary line (latencies in µs).
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
-- aigis needs a caller (run.sh exports the bench agent's API key); nginx
-- and the fake upstream ignore the header.
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end

-- wrk script for bench/identity/run.sh: POST /oauth2/token, client_credentials
-- with client_secret_basic (RFC 6749 §2.3.1) on keep-alive connections, and a
-- machine-readable summary line (latencies in µs). The Basic credentials come
-- from the environment (BENCH_BASIC = base64 of "client_id:client_secret").
wrk.method = "POST"
wrk.path = "/oauth2/token"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("BENCH_BASIC") or "")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end

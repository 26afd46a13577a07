-- wrk script for bench/mcp/run.sh: a tools/call of echo for every request
-- (MCP_SESSION: the Mcp-Session-Id, MCP_AUTH: the bearer, both optional),
-- and a machine-readable summary line (latencies in µs).
wrk.method = "POST"
-- Every call's text differs (a counter), as real arguments do: nothing on
-- the way may answer from a cache.
local n = 0
local function body()
  n = n + 1
  return '{"jsonrpc":"2.0","id":' .. n .. ',"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello from the benchmark, call ' .. n .. '"}}}'
end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
local session = os.getenv("MCP_SESSION")
if session and session ~= "" then wrk.headers["Mcp-Session-Id"] = session end
local auth = os.getenv("MCP_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end

function request()
  return wrk.format(nil, nil, nil, body())
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d err_status=%d err_other=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end

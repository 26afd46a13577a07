#!/usr/bin/env bash
# MCP benchmark: tools/call round trips through aigis vs. directly to the
# same upstream, in one run.
#
#   wrk ──> aigis /mcp/bench (authn, authz Check, pin state, guard on the
#           arguments and the result, audit record) ──┐
#   wrk ──> nginx (proxy_pass, keep-alive) ───────────┤  the cost of a proxy hop alone
#   wrk ──────────────────────────────────────────────┴─> aigis_fake_mcp_server
#
# The upstream is bench/mcp/fake_mcp_server.cc (no MCP SDK: it answers at
# once, so the difference is what aigis adds). Latency at -c1 (rounds
# alternating direct and aigis; medians reported) and throughput at
# -c$BENCH_CONNECTIONS. aigis (one I/O thread) and nginx (one worker) run on
# core 0, the upstream and wrk on core 1. Writes bench/results/mcp.md.
#
# Knobs: BENCH_DURATION=5 (throughput runs, s), BENCH_LAT_DURATION=3,
# BENCH_LAT_ROUNDS=3, BENCH_CONNECTIONS=16, BENCH_OUT, BENCH_KEEP=0,
# BENCH_PROFILE=0 (1: perf profile of aigis during an extra throughput run, top
# symbols into $WORK/perf.txt and printed),
# BENCH_PIN=1 (0: no taskset), BENCH_AUDIT=true, BENCH_ACCESS_LOG=file (or off), BENCH_GUARD=true,
# BENCH_PROFILE_CONNECTIONS (default BENCH_CONNECTIONS), BENCH_NOTES_FILE,
# AIGIS_BIN=build/aigis,
# FAKE_BIN=build/bench/mcp/aigis_fake_mcp_server.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AIGIS_BIN=${AIGIS_BIN:-$ROOT/build/aigis}
FAKE_BIN=${FAKE_BIN:-$ROOT/build/bench/mcp/aigis_fake_mcp_server}
BENCH_DURATION=${BENCH_DURATION:-5}
BENCH_LAT_DURATION=${BENCH_LAT_DURATION:-3}
BENCH_LAT_ROUNDS=${BENCH_LAT_ROUNDS:-3}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-16}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/results/mcp.md}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_PROFILE=${BENCH_PROFILE:-0}
BENCH_NOTES_FILE=${BENCH_NOTES_FILE:-}     # markdown appended to the report
BENCH_AUDIT=${BENCH_AUDIT:-true}           # false: without the audit log (to see its share)
BENCH_ACCESS_LOG=${BENCH_ACCESS_LOG:-file}  # file | off
BENCH_GUARD=${BENCH_GUARD:-true}           # false: without the guard (to see its share)
GOAL_ADDED_P50=100  # µs, with authz and screening on

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
for tool in wrk curl taskset nginx; do command -v "$tool" >/dev/null || die "'$tool' not found"; done
[[ -x $AIGIS_BIN ]] || die "$AIGIS_BIN not found: make build"
[[ -x $FAKE_BIN ]] || die "$FAKE_BIN not found: make build (Google Benchmark must be installed for bench/)"

PIN_AIGIS=(taskset -c 0) PIN_OTHER=(taskset -c 1)
(( $(nproc) >= 2 && ${BENCH_PIN:-1} )) || { PIN_AIGIS=(); PIN_OTHER=(); }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aigis-bench-mcp.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  if (( BENCH_KEEP )); then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ------------------------------------------------------------ upstream
"${PIN_OTHER[@]}" "$FAKE_BIN" >"$WORK/fake.port" 2>"$WORK/fake.err" &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $WORK/fake.port ]] && break; sleep 0.05; done
FAKE_PORT=$(head -1 "$WORK/fake.port")
[[ -n $FAKE_PORT ]] || die "the fake MCP server did not start: $(cat "$WORK/fake.err")"

# --------------------------------------------------------------- nginx
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 10000000;
    upstream fake_mcp { server 127.0.0.1:$FAKE_PORT; keepalive 16; keepalive_requests 10000000; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { proxy_pass http://fake_mcp; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
NGINX
"${PIN_AIGIS[@]}" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx.err" &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.05; done

# --------------------------------------------------------------- aigis
cat >"$WORK/aigis.yaml" <<YAML
listeners:
  proxy: {address: "127.0.0.1:0"}
  admin: {address: "127.0.0.1:0"}
data_dir: "$WORK/data"
log: {level: warn, access_log: "$( [[ $BENCH_ACCESS_LOG == off ]] && echo off || echo "$WORK/access.log")"}
audit: {enabled: $BENCH_AUDIT}
reload: {watch: false}
server: {threads: 1}
identity:
  master_key: "\${env:AIGIS_MASTER_KEY}"
  bootstrap_agent: {id: bench-agent, name: bench, scopes: [tools:call], api_key_file: "$WORK/agent.key"}
authz:
  enabled: true
  seed_tuples: ["tool:bench/*#can_call@agent:bench-agent"]
guard:
  enabled: $BENCH_GUARD
mcp:
  servers:
    - name: bench
      url: http://127.0.0.1:$FAKE_PORT/mcp
      auto_approve: true
YAML
AIGIS_MASTER_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=') \
AIGIS_ADMIN_TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '=+/') \
  "${PIN_AIGIS[@]}" "$AIGIS_BIN" serve --config "$WORK/aigis.yaml" --ports-file "$WORK/ports.json" >"$WORK/aigis.out" 2>"$WORK/aigis.err" &
AIGIS_PID=$!
PIDS+=($!)
for _ in $(seq 400); do [[ -s $WORK/ports.json ]] && break; sleep 0.05; done
[[ -s $WORK/ports.json ]] || die "aigis did not start: $(tail -5 "$WORK/aigis.err")"
PROXY_PORT=$(sed -E 's/.*"proxy":([0-9]+).*/\1/' "$WORK/ports.json")
KEY=$(cat "$WORK/agent.key")

SESSION=$(curl -s -D - -o /dev/null -X POST "http://127.0.0.1:$PROXY_PORT/mcp/bench" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
  | tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
[[ -n $SESSION ]] || die "initialize through aigis failed"
check=$(curl -s -X POST "http://127.0.0.1:$PROXY_PORT/mcp/bench" -H "Authorization: Bearer $KEY" -H "Mcp-Session-Id: $SESSION" \
  -H 'Content-Type: application/json' -H 'Accept: application/json' -H 'MCP-Protocol-Version: 2025-06-18' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello from the benchmark"}}}')
[[ $check == *'"text":"hello from the benchmark"'* ]] || die "a tools/call through aigis did not work: $check"

run_wrk() {  # run_wrk direct|aigis CONNECTIONS SECONDS -> the BENCH line
  local target=$1 c=$2 d=$3 url session="" auth=""
  case $target in
    direct) url="http://127.0.0.1:$FAKE_PORT/mcp" ;;
    nginx) url="http://127.0.0.1:$NGINX_PORT/mcp" ;;
    *) url="http://127.0.0.1:$PROXY_PORT/mcp/bench"; session=$SESSION; auth=$KEY ;;
  esac
  MCP_SESSION=$session MCP_AUTH=$auth "${PIN_OTHER[@]}" wrk -t1 -c"$c" -d"${d}s" --latency -s "$HERE/call.lua" "$url" | grep '^BENCH'
}
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

log "warm-up"
for t in direct nginx aigis; do run_wrk $t 1 1 >/dev/null; done
declare -a DP50 DP99 NP50 NP99 AP50 AP99
for ((i = 0; i < BENCH_LAT_ROUNDS; i++)); do
  d=$(run_wrk direct 1 "$BENCH_LAT_DURATION"); n=$(run_wrk nginx 1 "$BENCH_LAT_DURATION"); a=$(run_wrk aigis 1 "$BENCH_LAT_DURATION")
  log "latency round $((i + 1)): direct $d"
  log "latency round $((i + 1)): nginx  $n"
  log "latency round $((i + 1)): aigis  $a"
  [[ $(field err_status "$a") == 0 ]] || die "aigis answered errors: $a"
  DP50+=("$(field p50_us "$d")"); DP99+=("$(field p99_us "$d")")
  NP50+=("$(field p50_us "$n")"); NP99+=("$(field p99_us "$n")")
  AP50+=("$(field p50_us "$a")"); AP99+=("$(field p99_us "$a")")
done
dp50=$(printf '%s\n' "${DP50[@]}" | median); dp99=$(printf '%s\n' "${DP99[@]}" | median)
np50=$(printf '%s\n' "${NP50[@]}" | median); np99=$(printf '%s\n' "${NP99[@]}" | median)
ap50=$(printf '%s\n' "${AP50[@]}" | median); ap99=$(printf '%s\n' "${AP99[@]}" | median)
dt=$(run_wrk direct "$BENCH_CONNECTIONS" "$BENCH_DURATION"); nt=$(run_wrk nginx "$BENCH_CONNECTIONS" "$BENCH_DURATION")
at=$(run_wrk aigis "$BENCH_CONNECTIONS" "$BENCH_DURATION")
log "throughput: direct $dt"
log "throughput: nginx  $nt"
log "throughput: aigis  $at"
[[ $(field err_status "$at") == 0 ]] || die "aigis answered errors: $at"
drps=$(field rps "$dt"); nrps=$(field rps "$nt"); arps=$(field rps "$at")
added50=$((ap50 - dp50)); added99=$((ap99 - dp99))
hop50=$((np50 - dp50)); hop99=$((np99 - dp99))
over50=$((ap50 - np50)); over99=$((ap99 - np99))
met=$([[ $added50 -le $GOAL_ADDED_P50 ]] && echo yes || echo "**no**")
records=$(grep -c '"mcp_method":"tools/call"' "$WORK/access.log" || true)

if (( BENCH_PROFILE )); then
  log "profiling aigis (perf, 4 s at -c${BENCH_PROFILE_CONNECTIONS:-$BENCH_CONNECTIONS})"
  perf record -q -g -F 1999 -p "$AIGIS_PID" -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
  run_wrk aigis "${BENCH_PROFILE_CONNECTIONS:-$BENCH_CONNECTIONS}" 4 >/dev/null
  wait "$perf_pid" || true
  perf report -i "$WORK/perf.data" --no-children --percent-limit 0.7 --stdio 2>/dev/null | grep -v '^$' | head -120 >"$WORK/perf.txt" || true
  cat "$WORK/perf.txt" >&2
fi

mkdir -p "$(dirname "$BENCH_OUT")"
cat >"$BENCH_OUT" <<MD
# MCP gateway benchmark (bench/mcp/run.sh)

$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $("$AIGIS_BIN" version 2>/dev/null | head -1).
One tools/call (\`echo\`, a ~35-byte argument that differs in every call) per request, over one keep-alive
connection per wrk connection. Through aigis: API key authentication, an
authorization Check (\`tool:bench/echo\` with the server-wide parent tuple),
the pin state, the guard rules on the arguments and on the result, an audit
record (async) and an access-log line per call. The upstream is
\`aigis_fake_mcp_server\` (no SDK; answers at once). aigis has one I/O
thread on core 0; the upstream and wrk share core 1.

| | direct | through nginx (a bare proxy hop) | through aigis | aigis − direct | aigis − nginx |
|---|---:|---:|---:|---:|---:|
| p50 latency, -c1 (µs, median of $BENCH_LAT_ROUNDS rounds) | $dp50 | $np50 | $ap50 | **$added50** | $over50 |
| p99 latency, -c1 (µs) | $dp99 | $np99 | $ap99 | $added99 | $over99 |
| calls/s, -c$BENCH_CONNECTIONS | $drps | $nrps | $arps | ratio $(awk -v a="$arps" -v d="$drps" 'BEGIN{printf "%.2f", a/d}') | ratio $(awk -v a="$arps" -v d="$nrps" 'BEGIN{printf "%.2f", a/d}') |

A proxy hop alone (nginx) adds $hop50 µs at p50 here ($hop99 at p99): on these
VMs every cross-core wake-up is expensive (see bench/results/proxy.md).
Audit log: $BENCH_AUDIT; access log: $BENCH_ACCESS_LOG; guard: $BENCH_GUARD.

Goal: ≤ $GOAL_ADDED_P50 µs added at p50 (aigis − direct) with authz and screening on — met: $met.
Calls recorded in the access log during the run: $records.
MD
if [[ -n $BENCH_NOTES_FILE ]]; then printf '\n' >>"$BENCH_OUT"; cat "$BENCH_NOTES_FILE" >>"$BENCH_OUT"; fi
cat "$BENCH_OUT"

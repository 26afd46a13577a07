#!/usr/bin/env bash
# Proxy load benchmark: aigis against nginx as the baseline, in the same run.
#
#   wrk ──> nginx (proxy_pass, upstream keep-alive) ──┐
#   wrk ──> aigis (openai upstream)                  ──┴─> fake upstream (nginx `return 200`)
#
# Both proxies get the same request (a small chat completion POST, chat.lua),
# the same wrk connections/threads/duration, the same number of worker
# threads, and the same core (taskset); wrk and the fake upstream share the
# other core. Scenarios: throughput (-c32) and latency (-c1), plus RSS idle
# and under load. When a goal is missed it also profiles aigis (perf
# cpu-clock) and counts syscalls per request for both (strace -c). Writes
# bench/results/proxy.md and prints its tables; about 75 s with the defaults
# (about 50 s when both goals are met and nothing is profiled).
# `make bench` runs this after building the release binary. Everything
# listens on 127.0.0.1 (ports picked at run time), lives in a temp dir, and
# is stopped on exit.
#
# Knobs (environment):
#   BENCH_DURATION=10       seconds of each measured high-concurrency run
#   BENCH_LAT_DURATION=3    seconds of each low-concurrency (-c1) latency run
#   BENCH_LAT_ROUNDS=3      latency rounds, nginx and aigis alternating; medians are reported
#   BENCH_WARMUP=2          seconds of warm-up per server before measuring
#   BENCH_CONNECTIONS=32    wrk connections of the throughput scenario
#   BENCH_WRK_THREADS=1     wrk threads of the throughput scenario
#   BENCH_THREADS=1         aigis server.threads == nginx worker_processes
#   BENCH_PROXY_CPUS=0      cores for the proxies under test (taskset -c)
#   BENCH_WRK_CPUS=1        cores for wrk
#   BENCH_UPSTREAM_CPUS=1   cores for the fake upstream
#   BENCH_DIRECT=1          also run wrk straight at the fake upstream (ceiling)
#   BENCH_PROFILE=auto      profile aigis + count syscalls: auto = when a goal is missed, 1 = always, 0 = never
#   BENCH_PROFILE_DURATION=5
#   BENCH_OUT=bench/results/proxy.md
#   BENCH_WAIT_QUIET=0      wait up to this many seconds for the machine to be < 10% busy first
#   BENCH_NOTES_FILE=       markdown appended to the report under "Notes on this run"
#   BENCH_KEEP=0            1 keeps the temp dir (configs, logs, wrk output)
#   AIGIS_BIN=build/aigis   (falls back to build/src/cli/aigis)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [[ -z ${AIGIS_BIN:-} ]]; then  # build/aigis, or where CMake puts it by default
  AIGIS_BIN=$ROOT/build/aigis
  [[ -x $AIGIS_BIN ]] || AIGIS_BIN=$ROOT/build/src/cli/aigis
fi
BENCH_DURATION=${BENCH_DURATION:-10}
BENCH_LAT_DURATION=${BENCH_LAT_DURATION:-3}
BENCH_LAT_ROUNDS=${BENCH_LAT_ROUNDS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-32}
BENCH_WRK_THREADS=${BENCH_WRK_THREADS:-1}
BENCH_THREADS=${BENCH_THREADS:-1}
BENCH_DIRECT=${BENCH_DIRECT:-1}
BENCH_PROFILE=${BENCH_PROFILE:-auto}
BENCH_PROFILE_DURATION=${BENCH_PROFILE_DURATION:-5}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/results/proxy.md}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_WAIT_QUIET=${BENCH_WAIT_QUIET:-0}

GOAL_RATIO=0.8      # aigis throughput / nginx throughput, at least
GOAL_ADDED_P50=50   # aigis p50 - nginx p50 at -c1, at most (µs)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for v in BENCH_DURATION BENCH_LAT_DURATION BENCH_LAT_ROUNDS BENCH_WARMUP BENCH_CONNECTIONS BENCH_WRK_THREADS \
         BENCH_THREADS BENCH_PROFILE_DURATION BENCH_WAIT_QUIET; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
(( BENCH_DURATION >= 1 && BENCH_LAT_DURATION >= 1 && BENCH_LAT_ROUNDS >= 1 && BENCH_CONNECTIONS >= 1 )) || die "durations and connections must be >= 1"
(( BENCH_THREADS >= 1 )) || die "BENCH_THREADS must be >= 1"
(( BENCH_WRK_THREADS >= 1 && BENCH_WRK_THREADS <= BENCH_CONNECTIONS )) || die "need 1 <= BENCH_WRK_THREADS <= BENCH_CONNECTIONS"

for tool in nginx wrk curl taskset ss timeout pgrep getconf; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install nginx-light wrk curl util-linux iproute2 coreutils procps)"
done
[[ -x $AIGIS_BIN ]] || die "$AIGIS_BIN not found: build it first (make build)"

NCPU=$(nproc)
if (( NCPU >= 2 )); then
  PROXY_CPUS=${BENCH_PROXY_CPUS:-0}
  WRK_CPUS=${BENCH_WRK_CPUS:-1}
  UPSTREAM_CPUS=${BENCH_UPSTREAM_CPUS:-1}
  PINNED=1
else
  PINNED=0
fi
# Command prefixes that pin to a core (empty without pinning). Used as
# "${PIN_X[@]}" cmd so that a backgrounded cmd's $! is the process itself.
PIN_PROXY=() PIN_WRK=() PIN_UPSTREAM=()
if (( PINNED )); then
  # shellcheck disable=SC2034  # PIN_UPSTREAM is used through a nameref
  PIN_PROXY=(taskset -c "$PROXY_CPUS") PIN_WRK=(taskset -c "$WRK_CPUS") PIN_UPSTREAM=(taskset -c "$UPSTREAM_CPUS")
fi

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aigis-bench.XXXXXX")
chmod 755 "$WORK"  # nginx workers may run as another user
SERVER_PIDS=()     # long-lived servers (nginx masters, aigis)
AUX_PIDS=()        # samplers, perf, wrk

our_child() {  # true while PID runs as a child of this script (never signal a reused pid)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }  # "STATE PPID ..."
  [[ ${stat%% *} != Z && $(cut -d' ' -f2 <<<"$stat") == "$$" ]]
}
stop_pid() {  # stop_pid PID SIGNAL: signal, wait up to 5 s, then SIGKILL
  local pid=$1 sig=$2 i
  our_child "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    our_child "$pid" || break
    sleep 0.1
  done
  if our_child "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${AUX_PIDS[@]}"; do stop_pid "$pid" TERM; done
  for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid" TERM; done
  if [[ $BENCH_KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
calc() { awk "BEGIN { $1 }"; }
listening() { [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }

free_port() {  # prints a TCP port nothing listens on (bounded tries)
  local i p
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 40000))
    listening "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

wait_listen() {  # wait_listen PID PORT: up to 10 s for PID to listen on PORT
  local pid=$1 port=$2 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    listening "$port" && return 0
    sleep 0.1
  done
  return 1
}

rss_kb() {  # total VmRSS (kB) of the given pids
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# shellcheck disable=SC2046
nginx_pids() { echo "$1" $(pgrep -P "$1" || true); }  # master + workers
server_pids() {  # server_pids upstream|nginx|aigis
  case $1 in
    aigis) echo "$AIGIS_PID" ;;
    nginx) nginx_pids "$NGINX_PID" ;;
    upstream) nginx_pids "$UPSTREAM_PID" ;;
  esac
}
cpu_time_ticks() {  # "user system" clock ticks of the given pids (all their threads)
  local pid
  for pid in "$@"; do cat "/proc/$pid/stat" 2>/dev/null || true; done |
    awk '{sub(/^.*\) /, ""); u += $12; s += $13} END {print u + 0, s + 0}'
}
CLK_TCK=$(getconf CLK_TCK)

start_sampler() {  # start_sampler NAME OUTFILE SECONDS: max RSS every 0.1 s
  local name=$1 out=$2 secs=$3
  (
    max=0
    for ((i = 0; i < secs * 10 + 50; i++)); do
      # shellcheck disable=SC2046
      r=$(rss_kb $(server_pids "$name"))
      (( r > max )) && max=$r && echo "$max" >"$out"
      sleep 0.1
    done
  ) &
  SAMPLER_PID=$!
  AUX_PIDS+=("$SAMPLER_PID")
}

cpu_ticks() {  # "busy total" jiffies of one core from /proc/stat
  awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}

start_nginx() {  # start_nginx NAME TEMPLATE PIN_ARRAY_NAME WORKERS -> NGX_PID NGX_PORT
  local name=$1 tmpl=$2 workers=$4 dir="$WORK/$1" attempt port pid
  local -n pinc=$3
  mkdir -p "$dir"
  for ((attempt = 0; attempt < 5; attempt++)); do
    port=$(free_port)
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$workers|g" \
        -e "s|@UPSTREAM_PORT@|${UPSTREAM_PORT:-0}|g" -e "s|@BODY@|$UPSTREAM_BODY|g" \
        "$HERE/$tmpl" >"$dir/nginx.conf"
    "${pinc[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    pid=$!
    if wait_listen "$pid" "$port"; then
      SERVER_PIDS+=("$pid")
      NGX_PID=$pid NGX_PORT=$port
      return 0
    fi
    stop_pid "$pid" TERM
    log "nginx ($name) did not come up on port $port; retrying"
  done
  cat "$dir/error.log" "$dir/stdout.log" >&2 2>/dev/null || true
  die "nginx ($name) failed to start"
}

# The fake upstream's answer: a small OpenAI chat completion with usage.
UPSTREAM_BODY='{"id":"chatcmpl-bench0001","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}'
REQUEST_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'

# ---------------------------------------------------------------- servers
# Whatever else runs on the machine skews the numbers: measure it first.
all_ticks() { awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }
background_busy() {  # % of all CPUs busy over one second
  local b0 t0 b1 t1
  read -r b0 t0 < <(all_ticks); sleep 1; read -r b1 t1 < <(all_ticks)
  echo $(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
}
BACKGROUND_BUSY=$(background_busy)
if (( BACKGROUND_BUSY >= 10 && BENCH_WAIT_QUIET > 0 )); then
  log "machine ${BACKGROUND_BUSY}% busy; waiting up to ${BENCH_WAIT_QUIET}s for 5 quiet seconds in a row"
  quiet=0
  for ((i = 0; i < BENCH_WAIT_QUIET && quiet < 5; i++)); do
    BACKGROUND_BUSY=$(background_busy)
    if (( BACKGROUND_BUSY < 10 )); then quiet=$((quiet + 1)); else quiet=0; fi
  done
  (( quiet >= 5 )) || log "still busy after ${BENCH_WAIT_QUIET}s; running anyway"
fi
(( BACKGROUND_BUSY < 10 )) || log "warning: the machine is already ${BACKGROUND_BUSY}% busy before the benchmark; results will be noisy"
log "temp dir $WORK; proxies on cpu ${PROXY_CPUS:-any}, wrk on cpu ${WRK_CPUS:-any}, upstream on cpu ${UPSTREAM_CPUS:-any}"

start_nginx upstream upstream.nginx.conf.in PIN_UPSTREAM 1
UPSTREAM_PID=$NGX_PID UPSTREAM_PORT=$NGX_PORT
log "fake upstream (nginx) pid $UPSTREAM_PID on 127.0.0.1:$UPSTREAM_PORT"

start_nginx nginx proxy.nginx.conf.in PIN_PROXY "$BENCH_THREADS"
NGINX_PID=$NGX_PID NGINX_PORT=$NGX_PORT
sleep 0.3  # let the workers map their memory before the idle sample
# shellcheck disable=SC2046
NGINX_RSS_IDLE=$(rss_kb $(nginx_pids "$NGINX_PID"))
log "baseline nginx pid $NGINX_PID on 127.0.0.1:$NGINX_PORT (workers: $(pgrep -P "$NGINX_PID" | tr '\n' ' '))"

mkdir -p "$WORK/aigis"
sed -e "s|@DIR@|$WORK/aigis|g" -e "s|@THREADS@|$BENCH_THREADS|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
    "$HERE/aigis.yaml.in" >"$WORK/aigis/aigis.yaml"
AIGIS_MASTER_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=') \
AIGIS_ADMIN_TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '=+/') \
  "${PIN_PROXY[@]}" "$AIGIS_BIN" serve --config "$WORK/aigis/aigis.yaml" --ports-file "$WORK/aigis/ports.json" \
  >"$WORK/aigis/aigis.log" 2>&1 &
AIGIS_PID=$!
SERVER_PIDS+=("$AIGIS_PID")
for ((i = 0; i < 100; i++)); do
  [[ -s $WORK/aigis/ports.json ]] && break
  kill -0 "$AIGIS_PID" 2>/dev/null || { cat "$WORK/aigis/aigis.log" >&2; die "aigis exited during start"; }
  sleep 0.1
done
[[ -s $WORK/aigis/ports.json ]] || { cat "$WORK/aigis/aigis.log" >&2; die "aigis did not write its ports file within 10 s"; }
AIGIS_PORT=$(sed -n 's/.*"proxy":\([0-9]*\).*/\1/p' "$WORK/aigis/ports.json")
[[ -n $AIGIS_PORT ]] || die "cannot read the proxy port from $(cat "$WORK/aigis/ports.json")"
[[ -s $WORK/aigis/agent.key ]] || die "aigis did not write the bench agent's API key"
BENCH_KEY=$(cat "$WORK/aigis/agent.key")
export BENCH_KEY  # chat.lua sends it
sleep 0.3
AIGIS_RSS_IDLE=$(rss_kb "$AIGIS_PID")
log "aigis pid $AIGIS_PID on 127.0.0.1:$AIGIS_PORT"

# Every path must answer 200 with the upstream's JSON before we time anything.
check() {  # check NAME PORT
  local out code
  out=$(curl -sS --max-time 5 -o "$WORK/check-$1.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $BENCH_KEY" \
        --data "$REQUEST_BODY" "http://127.0.0.1:$2/v1/chat/completions" 2>&1) || true
  code=${out: -3}
  if [[ $code != 200 ]] || ! grep -q '"usage"' "$WORK/check-$1.json" 2>/dev/null; then
    log "$1: expected 200 with a chat completion, got: $out $(head -c 300 "$WORK/check-$1.json" 2>/dev/null)"
    [[ $1 == aigis ]] && tail -n 20 "$WORK/aigis/aigis.log" >&2
    die "$1 does not proxy the request"
  fi
}
check upstream "$UPSTREAM_PORT"
check nginx "$NGINX_PORT"
check aigis "$AIGIS_PORT"
RESPONSE_BYTES=$(wc -c <"$WORK/check-aigis.json")

# ---------------------------------------------------------------- load
COMMANDS=()
declare -A R  # R[scenario.target.key]

run_wrk() {  # run_wrk SCENARIO TARGET PORT THREADS CONNS SECONDS [record]
  local sc=$1 tgt=$2 port=$3 t=$4 c=$5 d=$6 rec=${7:-}
  local out="$WORK/wrk-$sc-$tgt.txt" rssf="$WORK/rss-$sc-$tgt" b0 b1 t0 t1 w0 w1 u0 u1 cu0 cs0 cu1 cs1 ns0 ns1 n line k
  local -a pids
  local cmd=(wrk "-t$t" "-c$c" "-d${d}s" --latency -s "$HERE/chat.lua" "http://127.0.0.1:$port/v1/chat/completions")
  if [[ -n $rec ]]; then
    local prefix=
    (( PINNED )) && prefix="taskset -c $WRK_CPUS "
    COMMANDS+=("$prefix${cmd[*]/#$ROOT\//}   # $sc, $tgt")
  fi
  SAMPLER_PID=
  [[ $tgt == aigis || $tgt == nginx ]] && start_sampler "$tgt" "$rssf" "$d"
  read -ra pids < <(server_pids "$tgt")
  read -r w0 u0 < <(cpu_ticks "${WRK_CPUS:-0}")
  read -r b0 t0 < <(cpu_ticks "${PROXY_CPUS:-0}")
  read -r cu0 cs0 < <(cpu_time_ticks "${pids[@]}"); ns0=$(date +%s%N)
  # In the background + wait, so that a signal interrupts the run at once.
  "${PIN_WRK[@]}" timeout $((d + 30)) "${cmd[@]}" >"$out" 2>&1 &
  local wrk_pid=$!
  AUX_PIDS+=("$wrk_pid")
  wait "$wrk_pid" || { cat "$out" >&2; die "wrk failed ($sc, $tgt)"; }
  read -r cu1 cs1 < <(cpu_time_ticks "${pids[@]}"); ns1=$(date +%s%N)
  read -r w1 u1 < <(cpu_ticks "${WRK_CPUS:-0}")
  read -r b1 t1 < <(cpu_ticks "${PROXY_CPUS:-0}")
  [[ -n $SAMPLER_PID ]] && stop_pid "$SAMPLER_PID" TERM
  [[ -n $rec ]] || return 0
  line=$(grep '^BENCH ' "$out") || { cat "$out" >&2; die "no summary from wrk ($sc, $tgt)"; }
  for k in requests rps p50_us p90_us p99_us max_us err_connect err_read err_write err_status err_timeout; do
    R[$sc.$tgt.$k]=$(sed -n "s/.* $k=\([0-9.]*\).*/\1/p" <<<"$line")
  done
  R[$sc.$tgt.non2xx]=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
  R[$sc.$tgt.non2xx]=${R[$sc.$tgt.non2xx]:-0}
  R[$sc.$tgt.rss]=$(cat "$rssf" 2>/dev/null || echo 0)
  # CPU the server itself used: % of one core over the run, and per request
  n=${R[$sc.$tgt.requests]}
  R[$sc.$tgt.server_cpu]=$(calc "printf \"%.0f\", ($cu1 + $cs1 - $cu0 - $cs0) / $CLK_TCK * 1e9 * 100 / ($ns1 - $ns0)")
  R[$sc.$tgt.cpu_us_per_req]=$(calc "printf \"%.1f\", ($cu1 + $cs1 - $cu0 - $cs0) / $CLK_TCK * 1e6 / ($n > 0 ? $n : 1)")
  R[$sc.$tgt.user_us]=$(calc "printf \"%.1f\", ($cu1 - $cu0) / $CLK_TCK * 1e6 / ($n > 0 ? $n : 1)")
  R[$sc.$tgt.sys_us]=$(calc "printf \"%.1f\", ($cs1 - $cs0) / $CLK_TCK * 1e6 / ($n > 0 ? $n : 1)")
  R[$sc.$tgt.cpu_user_sys]="${R[$sc.$tgt.user_us]} / ${R[$sc.$tgt.sys_us]}"
  # Noise: what else kept the proxies' core busy (only meaningful when pinned
  # to one core; for the direct run that core is idle apart from noise).
  R[$sc.$tgt.other_cpu]=$(calc "o = ($b1 - $b0) * 100 / ($t1 - $t0 > 0 ? $t1 - $t0 : 1) - ($tgt == \"upstream\" ? 0 : ${R[$sc.$tgt.server_cpu]}); printf \"%.0f\", o < 0 ? 0 : o")
  R[$sc.$tgt.wrk_cpu]=$(( (w1 - w0) * 100 / (u1 - u0 > 0 ? u1 - u0 : 1) ))
  log "$(printf '%-10s %-8s %8.0f req/s  p50 %6d us  p99 %6d us  cpu %3d%% %6.1f us/req  errors %d/%d/%d/%d/%d non-2xx %d' \
    "$sc" "$tgt" "${R[$sc.$tgt.rps]}" "${R[$sc.$tgt.p50_us]}" "${R[$sc.$tgt.p99_us]}" \
    "${R[$sc.$tgt.server_cpu]}" "${R[$sc.$tgt.cpu_us_per_req]}" \
    "${R[$sc.$tgt.err_connect]}" "${R[$sc.$tgt.err_read]}" "${R[$sc.$tgt.err_write]}" \
    "${R[$sc.$tgt.err_status]}" "${R[$sc.$tgt.err_timeout]}" "${R[$sc.$tgt.non2xx]}")"
}

if (( BENCH_WARMUP > 0 )); then
  log "warm-up (${BENCH_WARMUP}s each)"
  run_wrk warmup nginx "$NGINX_PORT" "$BENCH_WRK_THREADS" "$BENCH_CONNECTIONS" "$BENCH_WARMUP"
  run_wrk warmup aigis "$AIGIS_PORT" "$BENCH_WRK_THREADS" "$BENCH_CONNECTIONS" "$BENCH_WARMUP"
fi
TP=throughput LAT=latency
log "throughput: -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_DURATION}s"
(( BENCH_DIRECT )) && run_wrk $TP upstream "$UPSTREAM_PORT" "$BENCH_WRK_THREADS" "$BENCH_CONNECTIONS" "$BENCH_DURATION" rec
run_wrk $TP nginx "$NGINX_PORT" "$BENCH_WRK_THREADS" "$BENCH_CONNECTIONS" "$BENCH_DURATION" rec
run_wrk $TP aigis "$AIGIS_PORT" "$BENCH_WRK_THREADS" "$BENCH_CONNECTIONS" "$BENCH_DURATION" rec
# Low-concurrency latency is sensitive to whatever else the host does at that
# moment, so nginx and aigis alternate over a few short rounds and each
# figure is the median over the rounds (the rounds are listed in the report).
log "latency: -t1 -c1 -d${BENCH_LAT_DURATION}s, $BENCH_LAT_ROUNDS rounds"
(( BENCH_DIRECT )) && run_wrk lat1 upstream "$UPSTREAM_PORT" 1 1 "$BENCH_LAT_DURATION" rec
for ((r = 1; r <= BENCH_LAT_ROUNDS; r++)); do
  run_wrk "lat$r" nginx "$NGINX_PORT" 1 1 "$BENCH_LAT_DURATION" rec
  run_wrk "lat$r" aigis "$AIGIS_PORT" 1 1 "$BENCH_LAT_DURATION" rec
done
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
LAT_ROUNDS_TEXT=
for tgt in upstream nginx aigis; do
  [[ -n ${R[lat1.$tgt.rps]:-} ]] || continue
  for k in requests rps p50_us p90_us p99_us max_us err_connect err_read err_write err_status err_timeout non2xx rss \
           server_cpu cpu_us_per_req user_us sys_us wrk_cpu other_cpu; do
    vals=()
    for ((r = 1; r <= BENCH_LAT_ROUNDS; r++)); do [[ -n ${R[lat$r.$tgt.$k]:-} ]] && vals+=("${R[lat$r.$tgt.$k]}"); done
    case $k in
      requests | err_* | non2xx) R[$LAT.$tgt.$k]=$(( $(printf '%s+' "${vals[@]}")0 )) ;;
      *) R[$LAT.$tgt.$k]=$(median "${vals[@]}") ;;
    esac
  done
  R[$LAT.$tgt.cpu_user_sys]="${R[$LAT.$tgt.user_us]} / ${R[$LAT.$tgt.sys_us]}"
done
for ((r = 1; r <= BENCH_LAT_ROUNDS; r++)); do
  LAT_ROUNDS_TEXT+="${LAT_ROUNDS_TEXT:+; }round $r: nginx ${R[lat$r.nginx.p50_us]}, aigis ${R[lat$r.aigis.p50_us]} (+$(( ${R[lat$r.aigis.p50_us]} - ${R[lat$r.nginx.p50_us]} )))"
done

AIGIS_ALIVE=yes
kill -0 "$AIGIS_PID" 2>/dev/null || AIGIS_ALIVE=no

# ---------------------------------------------------------------- verdict
RATIO=$(calc "printf \"%.2f\", ${R[$TP.aigis.rps]} / ${R[$TP.nginx.rps]}")
ADDED_P50_LAT=$(( ${R[$LAT.aigis.p50_us]} - ${R[$LAT.nginx.p50_us]} ))
TP_MET=$(calc "print (${R[$TP.aigis.rps]} >= $GOAL_RATIO * ${R[$TP.nginx.rps]}) ? \"met\" : \"not met\"")
LAT_MET=$( (( ADDED_P50_LAT <= GOAL_ADDED_P50 )) && echo met || echo "not met")
# A verdict from runs that other processes disturbed (>10% of the proxies'
# core taken by others) is not one: the throughput runs, or most latency rounds.
if (( PINNED )) && [[ $PROXY_CPUS != "$UPSTREAM_CPUS" ]]; then
  if (( ${R[$TP.nginx.other_cpu]} > 10 || ${R[$TP.aigis.other_cpu]} > 10 )); then
    TP_MET="inconclusive (machine busy)"
  fi
  noisy_rounds=0
  for ((r = 1; r <= BENCH_LAT_ROUNDS; r++)); do
    (( ${R[lat$r.nginx.other_cpu]} > 10 || ${R[lat$r.aigis.other_cpu]} > 10 )) && noisy_rounds=$((noisy_rounds + 1))
  done
  (( noisy_rounds * 2 > BENCH_LAT_ROUNDS )) && LAT_MET="inconclusive (machine busy)"
fi
ERRORS=0
for sc in $TP $LAT; do
  for tgt in nginx aigis; do
    for k in err_connect err_read err_write err_status err_timeout non2xx; do
      ERRORS=$((ERRORS + ${R[$sc.$tgt.$k]:-0}))
    done
  done
done

# ---------------------------------------------------------------- profile
PROFILE_TEXT=
want_profile=0
case $BENCH_PROFILE in
  1) want_profile=1 ;;
  auto) [[ $TP_MET == met && $LAT_MET == met ]] || want_profile=1 ;;
esac
if (( want_profile )) && [[ $AIGIS_ALIVE == yes ]]; then
  if command -v perf >/dev/null && perf record -q -e cpu-clock -o "$WORK/perf-probe.data" -- true >/dev/null 2>&1; then
    log "profiling aigis with perf (cpu-clock, ${BENCH_PROFILE_DURATION}s at -c$BENCH_CONNECTIONS)"
    perf record -q -e cpu-clock -F 1999 -p "$AIGIS_PID" -o "$WORK/perf.data" -- sleep "$((BENCH_PROFILE_DURATION + 1))" \
      >"$WORK/perf-record.log" 2>&1 &
    PERF_PID=$!
    AUX_PIDS+=("$PERF_PID")
    sleep 0.5
    run_wrk profile aigis "$AIGIS_PORT" "$BENCH_WRK_THREADS" "$BENCH_CONNECTIONS" "$BENCH_PROFILE_DURATION" rec
    for ((i = 0; i < 100; i++)); do kill -0 "$PERF_PID" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$PERF_PID" INT
    perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -F overhead,dso,symbol 2>/dev/null \
      | grep -v '^#' | sed -e '/^$/d' -e 's/ *-  *- *$//' -e 's/ *$//' >"$WORK/perf-flat.txt" || true
    # Where the time goes, by component: the aigis binary is split by namespace.
    PROF_GROUPS=$(awk '
      { p = $1; sub(/%/, "", p); dso = $2; sym = $0; sub(/^ *[0-9.]+% +[^ ]+ +\[.\] +/, "", sym)
        if (dso == "[kernel.kallsyms]") k = "kernel (TCP/IP, syscalls, wake-ups, scheduling)"
        else if (dso ~ /^libc\./) k = (sym ~ /malloc|free|_int_|unlink_chunk|consolidate|tcache|cfree|realloc|calloc/) ? "libc: malloc/free" : (sym ~ /mem(cpy|move|set|cmp)|str/) ? "libc: memcpy/memmove/str*" : "libc: other (syscall wrappers, tolower, ...)"
        else if (dso == "aigis") {
          if (sym ~ /^(void )?boost::(beast|mp11)::/) k = "aigis binary: boost::beast (HTTP parse/serialize, buffers)"
          else if (sym ~ /^(void )?boost::asio::/) k = "aigis binary: boost::asio (event loop, coroutines, sockets)"
          else if (sym ~ /^aigis::gateway/) k = "aigis binary: aigis::gateway"
          else if (sym ~ /^aigis::net/) k = "aigis binary: aigis::net"
          else if (sym ~ /^aigis::/) k = "aigis binary: aigis (core/config)"
          else if (sym ~ /spdlog|fmt::/) k = "aigis binary: spdlog/fmt"
          else if (sym ~ /^std::/) k = "aigis binary: std::"
          else k = "aigis binary: other"
        }
        else if (dso ~ /boost_json/) k = "libboost_json (JSON parse/serialize)"
        else if (dso ~ /libcrypto|libssl/) k = "libcrypto/libssl"
        else if (dso ~ /libstdc\+\+/) k = "libstdc++"
        else k = "other (" dso ")"
        t[k] += p }
      END { for (k in t) printf "%6.2f%%  %5.1f µs/req  %s\n", t[k], t[k] * us / 100, k }' \
      us="${R[profile.aigis.cpu_us_per_req]:-0}" "$WORK/perf-flat.txt" | sort -rn)
    PROF_SYM=$(sort -rn "$WORK/perf-flat.txt" | head -n 25 | cut -c1-150 || true)
    [[ -s $WORK/perf-flat.txt ]] && PROFILE_TEXT=$(printf 'By component (share of the samples in the aigis process; µs/req = share × the %s CPU µs aigis used per request in this run):\n\n%s\n\nTop symbols:\n\n%s\n' "${R[profile.aigis.cpu_us_per_req]:-?}" "$PROF_GROUPS" "$PROF_SYM")
  else
    log "perf cannot sample here; skipping the profile (try: valgrind --tool=callgrind build/aigis serve ...)"
  fi
fi

# Syscalls per request (strace -c), nginx next to aigis, when profiling.
SYSCALL_TEXT=
if [[ -n $PROFILE_TEXT ]] && command -v strace >/dev/null; then
  log "counting syscalls per request (strace -c, 3s at -c$BENCH_CONNECTIONS each)"
  for tgt in nginx aigis; do
    if [[ $tgt == aigis ]]; then pids=("$AIGIS_PID"); else mapfile -t pids < <(pgrep -P "$NGINX_PID" || true); fi
    sargs=()
    for pid in "${pids[@]}"; do sargs+=(-p "$pid"); done
    timeout 60 strace -c -f "${sargs[@]}" -o "$WORK/strace-$tgt.txt" 2>/dev/null &
    STRACE_PID=$!
    AUX_PIDS+=("$STRACE_PID")
    sleep 0.5
    port=$NGINX_PORT; [[ $tgt == aigis ]] && port=$AIGIS_PORT
    run_wrk syscalls "$tgt" "$port" "$BENCH_WRK_THREADS" "$BENCH_CONNECTIONS" 3 rec
    stop_pid "$STRACE_PID" INT
  done
  if [[ -s $WORK/strace-nginx.txt && -s $WORK/strace-aigis.txt ]]; then
    SYSCALL_TEXT=$(awk -v nn="${R[syscalls.nginx.requests]}" -v na="${R[syscalls.aigis.requests]}" '
      FNR == 1 { t = (FILENAME ~ /nginx/) ? "n" : "a" }
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { c[t, $NF] += $4; e[t, $NF] += (NF == 6 ? $5 : 0); names[$NF] = 1 }
      END {
        for (s in names) {
          x = c["n", s] / (nn > 0 ? nn : 1); y = c["a", s] / (na > 0 ? na : 1)
          ex = e["n", s] / (nn > 0 ? nn : 1); ey = e["a", s] / (na > 0 ? na : 1)
          tn += x; ta += y
          fx = (ex >= 0.01) ? sprintf(" (%.2f failed)", ex) : ""
          fy = (ey >= 0.01) ? sprintf(" (%.2f failed)", ey) : ""
          if (x >= 0.02 || y >= 0.02) printf("| %s | %.2f%s | %.2f%s |\n", s, x, fx, y, fy)
        }
        printf "| **total** | **%.2f** | **%.2f** |\n", tn, ta
      }' "$WORK/strace-nginx.txt" "$WORK/strace-aigis.txt" | sort -t'|' -k4 -rn)
  fi
fi

# ---------------------------------------------------------------- report
GIT_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && GIT_COMMIT="$GIT_COMMIT (working tree modified)"
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
AIGIS_VERSION=$("$AIGIS_BIN" version 2>/dev/null || echo unknown)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 {print $1, $2}')
mib() { calc "printf \"%.1f MiB\", $1 / 1024"; }
num() { calc "printf \"%.0f\", $1"; }

scenario_table() {  # scenario_table SCENARIO
  local sc=$1 tgt
  echo "| target | requests/s | p50 (µs) | p90 (µs) | p99 (µs) | errors | server CPU | CPU µs/request (user / sys) | wrk core busy |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for tgt in upstream nginx aigis; do
    [[ -n ${R[$sc.$tgt.rps]:-} ]] || continue
    local err=0 k label=$tgt
    for k in err_connect err_read err_write err_status err_timeout non2xx; do err=$((err + ${R[$sc.$tgt.$k]:-0})); done
    [[ $tgt == upstream ]] && label="fake upstream, direct (ceiling)"
    [[ $tgt == nginx ]] && label="nginx (baseline proxy)"
    printf '| %s | %s | %s | %s | %s | %s | %s%% | %s (%s) | %s%% |\n' "$label" "$(num "${R[$sc.$tgt.rps]}")" \
      "${R[$sc.$tgt.p50_us]}" "${R[$sc.$tgt.p90_us]}" "${R[$sc.$tgt.p99_us]}" "$err" \
      "${R[$sc.$tgt.server_cpu]}" "${R[$sc.$tgt.cpu_us_per_req]}" "${R[$sc.$tgt.cpu_user_sys]}" "${R[$sc.$tgt.wrk_cpu]}"
  done
  echo
  echo "aigis / nginx throughput: **$(calc "printf \"%.2f\", ${R[$sc.aigis.rps]} / ${R[$sc.nginx.rps]}")×**;" \
       "added p50 (aigis − nginx): **$(( ${R[$sc.aigis.p50_us]} - ${R[$sc.nginx.p50_us]} )) µs**;" \
       "CPU per request: aigis uses **$(calc "printf \"%.2f\", ${R[$sc.aigis.cpu_us_per_req]} / ${R[$sc.nginx.cpu_us_per_req]}")×** nginx's"
}

TABLES=$(
  echo "### Throughput: wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_DURATION}s"
  echo
  scenario_table $TP
  echo
  echo "### Latency: wrk -t1 -c1 -d${BENCH_LAT_DURATION}s, median of $BENCH_LAT_ROUNDS alternating rounds"
  echo
  scenario_table $LAT
  echo
  echo "p50 per round (µs): ${LAT_ROUNDS_TEXT//+-/-}"
  echo
  echo "### Memory (VmRSS; nginx = master + workers)"
  echo
  echo "| | idle (after start) | max under load (throughput run) |"
  echo "|---|---:|---:|"
  echo "| nginx | $(mib "$NGINX_RSS_IDLE") | $(mib "${R[$TP.nginx.rss]}") |"
  echo "| aigis | $(mib "$AIGIS_RSS_IDLE") | $(mib "${R[$TP.aigis.rss]}") |"
  echo
  echo "### Goals"
  echo
  echo "| goal | result | |"
  echo "|---|---:|---|"
  echo "| throughput ≥ $GOAL_RATIO× nginx (-c$BENCH_CONNECTIONS) | ${RATIO}× | **$TP_MET** |"
  echo "| added p50 ≤ $GOAL_ADDED_P50 µs (-c1) | $ADDED_P50_LAT µs | **$LAT_MET** |"
  echo
  echo "Cross-check that does not depend on how busy the machine was: at -c$BENCH_CONNECTIONS nginx needs" \
       "${R[$TP.nginx.cpu_us_per_req]} CPU µs per request and aigis ${R[$TP.aigis.cpu_us_per_req]}, so with both CPU-bound on one core" \
       "aigis could reach about **$(calc "printf \"%.2f\", ${R[$TP.nginx.cpu_us_per_req]} / ${R[$TP.aigis.cpu_us_per_req]}")×** nginx's throughput."
  echo "Of aigis's extra $(calc "printf \"%.1f\", ${R[$TP.aigis.cpu_us_per_req]} - ${R[$TP.nginx.cpu_us_per_req]}") CPU µs per request," \
       "$(calc "printf \"%.1f\", ${R[$TP.aigis.user_us]} - ${R[$TP.nginx.user_us]}") µs are in user space" \
       "(aigis ${R[$TP.aigis.user_us]} vs nginx ${R[$TP.nginx.user_us]}) and $(calc "printf \"%.1f\", ${R[$TP.aigis.sys_us]} - ${R[$TP.nginx.sys_us]}") µs in the kernel" \
       "(${R[$TP.aigis.sys_us]} vs ${R[$TP.nginx.sys_us]})."
)

mkdir -p "$(dirname "$BENCH_OUT")"
{
  echo "# Proxy benchmark: aigis vs nginx"
  echo
  echo "Generated by \`bench/proxy/run.sh\` (\`make bench\`); do not edit by hand."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: $NCPU CPUs, $CPU_MODEL, $(uname -sr)"
  echo "- commit: $GIT_COMMIT; $AIGIS_VERSION (${AIGIS_BIN#"$ROOT"/})"
  echo "- tools: nginx $NGINX_VERSION, $WRK_VERSION"
  if (( PINNED )); then
    echo "- pinning: proxies under test on cpu $PROXY_CPUS, wrk on cpu $WRK_CPUS, fake upstream on cpu $UPSTREAM_CPUS (taskset)"
  else
    echo "- pinning: none (fewer than 2 CPUs)"
  fi
  echo "- proxies: aigis \`server.threads: $BENCH_THREADS\`, nginx \`worker_processes $BENCH_THREADS\`; both keep-alive to the upstream; access logs off"
  echo "- request: \`POST /v1/chat/completions\` $REQUEST_BODY (${#REQUEST_BODY} bytes);" \
       "response: a fixed chat completion with \`usage\` ($RESPONSE_BYTES bytes) from an nginx \`return 200\`"
  echo "- warm-up: ${BENCH_WARMUP}s per proxy at -c$BENCH_CONNECTIONS before measuring"
  echo "- background load: ${BACKGROUND_BUSY}% of all CPUs busy in the second before the servers started$( (( BACKGROUND_BUSY < 10 )) || echo " — **WARNING: a busy machine; treat these numbers as noisy**")"
  if (( ERRORS > 0 )); then
    echo "- **WARNING: $ERRORS socket errors / non-2xx responses during the measured runs** (see the error columns)"
  fi
  [[ $AIGIS_ALIVE == yes ]] || echo "- **WARNING: aigis exited during the run**"
  NOISY=
  for sc in $TP $(seq -f 'lat%.0f' 1 "$BENCH_LAT_ROUNDS"); do
    for tgt in nginx aigis; do
      (( ${R[$sc.$tgt.other_cpu]} > 10 )) && NOISY+="${NOISY:+, }$sc/$tgt ${R[$sc.$tgt.other_cpu]}%"
    done
  done
  if [[ -n $NOISY && $PINNED == 1 && $PROXY_CPUS != "$UPSTREAM_CPUS" ]]; then
    echo "- **WARNING: other processes took CPU on the proxies' core during some runs (${NOISY# }): those runs'" \
         "requests/s and latencies are disturbed; CPU µs/request is the more robust comparison. Rerun on a quiet machine.**"
  fi
  if (( ${R[$TP.nginx.wrk_cpu]} >= 85 && ${R[$TP.nginx.server_cpu]} < 90 && ${R[$TP.nginx.other_cpu]} <= 10 )); then
    echo "- **Note: during the nginx throughput run wrk's core (wrk + fake upstream) was ${R[$TP.nginx.wrk_cpu]}% busy while nginx" \
         "used ${R[$TP.nginx.server_cpu]}% of its core: the baseline was partly limited by the load generator, which flatters" \
         "the aigis/nginx throughput ratio (see the CPU-per-request cross-check below)**"
  fi
  echo
  echo "## Results"
  echo
  echo "Goal: aigis throughput ≥ ${GOAL_RATIO}× nginx, and aigis adds ≤ ${GOAL_ADDED_P50} µs to the p50 latency."
  echo "Latencies are wrk's (from request write to full response), in µs."
  echo "\"server CPU\" is the CPU time (user + system, all threads/workers) the server under test used, in % of one core over the run, and per request;"
  echo "below ~95% at -c$BENCH_CONNECTIONS the server was not the bottleneck. \"wrk core busy\" is the non-idle share of wrk's core (wrk + fake upstream): near 100% there means the load generator limited the run."
  echo
  echo "$TABLES"
  echo
  echo "## Commands"
  echo
  echo "Servers (\$TMP is a fresh \`mktemp -d\`; the configs are bench/proxy/*.in with ports filled in):"
  echo
  echo '```'
  p() { if (( PINNED )); then printf 'taskset -c %s ' "$1"; fi; }
  echo "$(p "$UPSTREAM_CPUS")nginx -p \$TMP/upstream -c \$TMP/upstream/nginx.conf -e \$TMP/upstream/error.log   # fake upstream, bench/proxy/upstream.nginx.conf.in"
  echo "$(p "$PROXY_CPUS")nginx -p \$TMP/nginx -c \$TMP/nginx/nginx.conf -e \$TMP/nginx/error.log   # baseline, bench/proxy/proxy.nginx.conf.in"
  echo "$(p "$PROXY_CPUS")${AIGIS_BIN#"$ROOT"/} serve --config \$TMP/aigis/aigis.yaml --ports-file \$TMP/aigis/ports.json   # bench/proxy/aigis.yaml.in"
  echo '```'
  echo
  echo "Load (bench/proxy/chat.lua sets the POST body and prints the summary):"
  echo
  echo '```'
  (( BENCH_WARMUP > 0 )) && echo "$(p "$WRK_CPUS")wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_WARMUP}s --latency -s bench/proxy/chat.lua URL   # warm-up, each proxy"
  printf '%s\n' "${COMMANDS[@]}" | sed "s|$WORK|\$TMP|g"
  echo '```'
  echo
  echo "Reproduce: \`make bench\`, or \`bench/proxy/run.sh\` with BENCH_DURATION, BENCH_LAT_DURATION, BENCH_CONNECTIONS, BENCH_THREADS, ... (see its header)."
  if [[ -n $PROFILE_TEXT ]]; then
    echo
    echo "## Profile of aigis under load"
    echo
    echo "\`perf record -e cpu-clock -F 1999 -p <aigis pid>\` during \`wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_PROFILE_DURATION}s\`"
    echo "(software clock sampling, no hardware counters needed); flat profile, self time:"
    if (( ${R[profile.aigis.other_cpu]:-0} > 10 )); then
      echo "**Other processes took ${R[profile.aigis.other_cpu]}% of aigis's core during the profile: the shares hold, the µs/req are inflated.**"
    fi
    echo
    echo '```'
    echo "$PROFILE_TEXT"
    echo '```'
  fi
  if [[ -n $SYSCALL_TEXT ]]; then
    echo
    echo "Syscalls per request at -c$BENCH_CONNECTIONS (\`strace -c -f -p <pid>\` during a 3 s wrk run each; nginx = its workers;" \
         "strace slows the servers, the counts per request are what matters):"
    echo
    echo "| syscall | nginx / request | aigis / request |"
    echo "|---|---:|---:|"
    echo "$SYSCALL_TEXT"
  fi
  if [[ -n ${BENCH_NOTES_FILE:-} && -s ${BENCH_NOTES_FILE:-} ]]; then
    echo
    echo "## Notes on this run"
    echo
    cat "$BENCH_NOTES_FILE"
  fi
} >"$BENCH_OUT"

echo
echo "$TABLES"
echo
echo "report: ${BENCH_OUT#"$ROOT"/}"

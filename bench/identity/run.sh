#!/usr/bin/env bash
# Identity load benchmark: token issuance over HTTP and the authenticate
# stage's cost under load, with nginx as the baseline in the same run; plus
# the identity micro-benchmarks (Google Benchmark) when their binary exists.
#
#   wrk ──POST /oauth2/token (Basic, keep-alive)──> aigis (EdDSA), aigis (ES256)
#   wrk ──POST /oauth2/token──────────────────────> nginx `return 200` of a captured aigis token response
#   wrk ──POST /v1/chat/completions───────────────> aigis (echo upstream): anonymous route,
#                                                    bearer access token (cached), API key
#
# One aigis per signing algorithm (identity.signing_algorithm), each with its
# own data dir; an agent, a client secret and an API key are created through
# the admin API (curl). Everything shares the machine's cores unpinned (the
# goal is "tokens/s on 2 cores", and wrk needs cores too): besides requests/s
# the report gives the CPU time the server used per request, so that the
# capacity of 2 dedicated cores (2 s of CPU per second / CPU per request)
# can be read independently of wrk's share. Each measurement runs
# BENCH_ROUNDS times, targets alternating. When the token goal is missed it
# profiles aigis (perf cpu-clock) during issuance and groups the samples by
# component. Writes bench/results/identity.md and prints its tables; about
# 3 minutes with the defaults. `make bench-identity` runs this after building
# the release binary. Everything listens on 127.0.0.1 (ports picked at run
# time), lives in a temp dir, and is stopped on exit.
#
# Knobs (environment):
#   BENCH_DURATION=10        seconds of each measured run
#   BENCH_WARMUP=2           seconds of warm-up per server before measuring
#   BENCH_ROUNDS=2           rounds of every measurement (reported each, and the mean)
#   BENCH_CONNECTIONS=32     wrk connections
#   BENCH_WRK_THREADS=2      wrk threads
#   BENCH_THREADS=2          aigis server.threads == nginx worker_processes
#   BENCH_ALGS="EdDSA ES256" signing algorithms to measure (RS256 works too)
#   BENCH_GOAL_TPS=15000     token issuance goal (tokens/s)
#   BENCH_PROFILE=auto       auto = profile when the token goal is missed, 1 = always, 0 = never
#   BENCH_PROFILE_DURATION=5
#   BENCH_MICRO=1            run the Google Benchmark binary too (if built)
#   BENCH_MICRO_REPS=3       its --benchmark_repetitions (medians are reported)
#   BENCH_OUT=bench/results/identity.md
#   BENCH_WAIT_QUIET=0       wait up to this many seconds for the machine to be < 10% busy first
#   BENCH_NOTES_FILE=        markdown appended to the report under "Notes on this run"
#   BENCH_KEEP=0             1 keeps the temp dir (configs, logs, wrk output)
#   AIGIS_BIN=build/aigis    (falls back to build/src/cli/aigis)
#   IDENTITY_BENCH_BIN=build/src/identity/aigis_identity_benchmark (falls back to build-bench/...)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [[ -z ${AIGIS_BIN:-} ]]; then
  AIGIS_BIN=$ROOT/build/aigis
  [[ -x $AIGIS_BIN ]] || AIGIS_BIN=$ROOT/build/src/cli/aigis
fi
if [[ -z ${IDENTITY_BENCH_BIN:-} ]]; then
  IDENTITY_BENCH_BIN=$ROOT/build/src/identity/aigis_identity_benchmark
  [[ -x $IDENTITY_BENCH_BIN ]] || IDENTITY_BENCH_BIN=$ROOT/build-bench/src/identity/aigis_identity_benchmark
fi
BENCH_DURATION=${BENCH_DURATION:-10}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-32}
BENCH_WRK_THREADS=${BENCH_WRK_THREADS:-2}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_ALGS=${BENCH_ALGS:-EdDSA ES256}
BENCH_GOAL_TPS=${BENCH_GOAL_TPS:-15000}
BENCH_PROFILE=${BENCH_PROFILE:-auto}
BENCH_PROFILE_DURATION=${BENCH_PROFILE_DURATION:-5}
BENCH_MICRO=${BENCH_MICRO:-1}
BENCH_MICRO_REPS=${BENCH_MICRO_REPS:-3}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/results/identity.md}
BENCH_WAIT_QUIET=${BENCH_WAIT_QUIET:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
GOAL_CACHED_NS=2000  # Authenticate on a cached token, at most

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for v in BENCH_DURATION BENCH_WARMUP BENCH_ROUNDS BENCH_CONNECTIONS BENCH_WRK_THREADS BENCH_THREADS BENCH_GOAL_TPS \
         BENCH_PROFILE_DURATION BENCH_MICRO_REPS BENCH_WAIT_QUIET; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
(( BENCH_DURATION >= 1 && BENCH_ROUNDS >= 1 && BENCH_CONNECTIONS >= 1 && BENCH_THREADS >= 1 )) || die "durations, rounds, connections and threads must be >= 1"
(( BENCH_WRK_THREADS >= 1 && BENCH_WRK_THREADS <= BENCH_CONNECTIONS )) || die "need 1 <= BENCH_WRK_THREADS <= BENCH_CONNECTIONS"
read -ra ALGS <<<"$BENCH_ALGS"
(( ${#ALGS[@]} >= 1 )) || die "BENCH_ALGS is empty"
for a in "${ALGS[@]}"; do [[ $a =~ ^(EdDSA|ES256|RS256)$ ]] || die "unknown algorithm '$a' in BENCH_ALGS"; done

for tool in nginx wrk curl ss timeout pgrep getconf base64 od; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install nginx-light wrk curl iproute2 coreutils procps)"
done
[[ -x $AIGIS_BIN ]] || die "$AIGIS_BIN not found: build it first (make build)"

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aigis-bench-identity.XXXXXX")
chmod 755 "$WORK"  # nginx workers may run as another user
SERVER_PIDS=()
AUX_PIDS=()

our_child() {  # true while PID runs as a child of this script (never signal a reused pid)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
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
free_port() {
  local i p
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 40000))
    listening "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}
wait_listen() {  # wait_listen PID PORT: up to 10 s
  local pid=$1 port=$2 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    listening "$port" && return 0
    sleep 0.1
  done
  return 1
}
cpu_time_ticks() {  # "user system" clock ticks of the given pids (all threads)
  local pid
  for pid in "$@"; do cat "/proc/$pid/stat" 2>/dev/null || true; done |
    awk '{sub(/^.*\) /, ""); u += $12; s += $13} END {print u + 0, s + 0}'
}
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
all_ticks() { awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }
background_busy() {  # % of all CPUs busy over one second
  local b0 t0 b1 t1
  read -r b0 t0 < <(all_ticks); sleep 1; read -r b1 t1 < <(all_ticks)
  echo $(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
}
# CPU seconds (user+sys) of this shell's waited-for children, from the
# `times` output in FILE (`times` must run in this shell, not a subshell).
times_children() {
  awk 'NR == 2 {
    n = split($0, f, " "); s = 0
    for (i = 1; i <= n; i++) { v = f[i]; m = v; sub(/m.*/, "", m); sec = v; sub(/^[0-9]+m/, "", sec); sub(/s$/, "", sec); s += m * 60 + sec }
    printf "%.3f\n", s }' "$1"
}
json_str() {  # json_str FIELD FILE: a plain string field of a flat JSON object
  sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$2" | head -n 1
}

# ---------------------------------------------------------------- quiet?
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
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temp dir $WORK; load average $LOADAVG_START; ${BACKGROUND_BUSY}% busy"

# ---------------------------------------------------------------- aigis
MASTER_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
ADMIN_TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
declare -A PORT ADMIN_PORT PID BASIC TOKEN APIKEY

start_aigis() {  # start_aigis ALG
  local alg=$1 dir="$WORK/aigis-$1" i
  mkdir -p "$dir"
  sed -e "s|@DIR@|$dir|g" -e "s|@THREADS@|$BENCH_THREADS|g" -e "s|@ALG@|$alg|g" \
      "$HERE/aigis.yaml.in" >"$dir/aigis.yaml"
  AIGIS_MASTER_KEY=$MASTER_KEY AIGIS_ADMIN_TOKEN=$ADMIN_TOKEN \
    "$AIGIS_BIN" serve --config "$dir/aigis.yaml" --ports-file "$dir/ports.json" >"$dir/aigis.log" 2>&1 &
  PID[$alg]=$!
  SERVER_PIDS+=("${PID[$alg]}")
  for ((i = 0; i < 100; i++)); do
    [[ -s $dir/ports.json ]] && break
    kill -0 "${PID[$alg]}" 2>/dev/null || { cat "$dir/aigis.log" >&2; die "aigis ($alg) exited during start"; }
    sleep 0.1
  done
  [[ -s $dir/ports.json ]] || { cat "$dir/aigis.log" >&2; die "aigis ($alg) did not write its ports file within 10 s"; }
  PORT[$alg]=$(sed -n 's/.*"proxy":\([0-9]*\).*/\1/p' "$dir/ports.json")
  ADMIN_PORT[$alg]=$(sed -n 's/.*"admin":\([0-9]*\).*/\1/p' "$dir/ports.json")
  [[ -n ${PORT[$alg]} && -n ${ADMIN_PORT[$alg]} ]] || die "cannot read the ports from $(cat "$dir/ports.json")"

  # An agent, its client secret and an API key, through the admin API.
  admin() {  # admin PATH BODY OUT
    local code
    code=$(curl -sS --max-time 10 -o "$3" -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" \
           -H 'Content-Type: application/json' --data "$2" "http://127.0.0.1:${ADMIN_PORT[$alg]}$1") || true
    [[ $code == 20[01] ]] || { cat "$3" >&2 2>/dev/null; die "admin POST $1 answered $code"; }
  }
  admin /admin/v1/agents '{"name":"bench agent","owner":"bench","scopes":["llm:chat"]}' "$dir/agent.json"
  local agent_id client_id secret
  agent_id=$(json_str id "$dir/agent.json")
  admin "/admin/v1/agents/$agent_id/credentials" '{}' "$dir/secret.json"
  client_id=$(json_str client_id "$dir/secret.json")
  secret=$(json_str client_secret "$dir/secret.json")
  admin /admin/v1/api-keys "{\"agent_id\":\"$agent_id\",\"scopes\":[\"llm:chat\"]}" "$dir/apikey.json"
  APIKEY[$alg]=$(json_str api_key "$dir/apikey.json")
  BASIC[$alg]=$(printf '%s:%s' "$client_id" "$secret" | base64 | tr -d '\n')
  [[ -n $agent_id && -n $client_id && -n $secret && -n ${APIKEY[$alg]} ]] || die "admin API answers lack fields"

  # One token by hand: 200 with an access token.
  local code
  code=$(curl -sS --max-time 5 -o "$dir/token.json" -w '%{http_code}' -H "Authorization: Basic ${BASIC[$alg]}" \
         -H 'Content-Type: application/x-www-form-urlencoded' --data 'grant_type=client_credentials' \
         "http://127.0.0.1:${PORT[$alg]}/oauth2/token") || true
  TOKEN[$alg]=$(json_str access_token "$dir/token.json")
  [[ $code == 200 && -n ${TOKEN[$alg]} ]] || { cat "$dir/token.json" >&2; die "aigis ($alg): /oauth2/token answered $code"; }
  log "aigis ($alg) pid ${PID[$alg]} on 127.0.0.1:${PORT[$alg]} (admin ${ADMIN_PORT[$alg]}); agent $agent_id"
}
for alg in "${ALGS[@]}"; do start_aigis "$alg"; done
A0=${ALGS[0]}  # the instance the authenticate scenarios run against

# Each chat scenario must answer 200 from the echo upstream, and the
# authenticated route must refuse a caller without credentials.
check_chat() {  # check_chat NAME MODEL AUTH
  local code hdr=()
  [[ -n $3 ]] && hdr=(-H "Authorization: Bearer $3")
  code=$(curl -sS --max-time 5 -o "$WORK/check-$1.json" -w '%{http_code}' "${hdr[@]}" -H 'Content-Type: application/json' \
         --data "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}" \
         "http://127.0.0.1:${PORT[$A0]}/v1/chat/completions") || true
  echo "$code"
}
[[ $(check_chat anonymous anon-model "") == 200 ]] || { cat "$WORK/check-anonymous.json" >&2; die "anonymous route does not answer 200"; }
[[ $(check_chat token gpt-4o-mini "${TOKEN[$A0]}") == 200 ]] || { cat "$WORK/check-token.json" >&2; die "token route does not answer 200"; }
[[ $(check_chat apikey gpt-4o-mini "${APIKEY[$A0]}") == 200 ]] || { cat "$WORK/check-apikey.json" >&2; die "API key does not answer 200"; }
[[ $(check_chat noauth gpt-4o-mini "") == 401 ]] || die "the authenticated route admits a caller without credentials"
CHAT_RESPONSE_BYTES=$(wc -c <"$WORK/check-token.json")

# ---------------------------------------------------------------- nginx
TOKEN_BODY=$(cat "$WORK/aigis-$A0/token.json")
[[ $TOKEN_BODY != *"'"* ]] || die "unexpected quote in the token response"
NGX_DIR=$WORK/nginx
mkdir -p "$NGX_DIR"
for ((attempt = 0; attempt < 5; attempt++)); do
  NGINX_PORT=$(free_port)
  sed -e "s|@DIR@|$NGX_DIR|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@WORKERS@|$BENCH_THREADS|g" -e "s|@BODY@|$TOKEN_BODY|g" \
      "$HERE/token.nginx.conf.in" >"$NGX_DIR/nginx.conf"
  nginx -p "$NGX_DIR" -c "$NGX_DIR/nginx.conf" -e "$NGX_DIR/error.log" >"$NGX_DIR/stdout.log" 2>&1 &
  NGINX_PID=$!
  if wait_listen "$NGINX_PID" "$NGINX_PORT"; then SERVER_PIDS+=("$NGINX_PID"); break; fi
  stop_pid "$NGINX_PID" TERM
  NGINX_PID=
done
[[ -n ${NGINX_PID:-} ]] || { cat "$NGX_DIR/error.log" >&2; die "nginx failed to start"; }
code=$(curl -sS --max-time 5 -o "$WORK/check-nginx.json" -w '%{http_code}' -H "Authorization: Basic ${BASIC[$A0]}" \
       -H 'Content-Type: application/x-www-form-urlencoded' --data 'grant_type=client_credentials' \
       "http://127.0.0.1:$NGINX_PORT/oauth2/token") || true
[[ $code == 200 ]] && cmp -s "$WORK/check-nginx.json" "$WORK/aigis-$A0/token.json" || die "nginx baseline does not answer the captured token response"
TOKEN_RESPONSE_BYTES=$(wc -c <"$WORK/check-nginx.json")
log "nginx pid $NGINX_PID on 127.0.0.1:$NGINX_PORT (workers: $(pgrep -P "$NGINX_PID" | tr '\n' ' '))"

# ---------------------------------------------------------------- load
COMMANDS=()
declare -A R  # R[scenario.round.key]

server_pids() {  # server_pids TARGET
  # shellcheck disable=SC2046
  case $1 in
    nginx) echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true) ;;
    *) echo "${PID[$1]}" ;;
  esac
}
# run_wrk ID TARGET(nginx|ALG) PORT LUA SECONDS [ROUND] [ENV=VALUE...]: with ROUND, records R[ID.ROUND.*]
run_wrk() {
  local id=$1 tgt=$2 port=$3 lua=$4 d=$5 round=${6:-} out k n line
  shift 6 || shift $#
  local path=/oauth2/token
  [[ $lua == chat.lua ]] && path=/v1/chat/completions
  out="$WORK/wrk-$id-${round:-x}.txt"
  local cmd=(wrk "-t$BENCH_WRK_THREADS" "-c$BENCH_CONNECTIONS" "-d${d}s" --latency -s "$HERE/$lua" "http://127.0.0.1:$port$path")
  local -a pids
  read -ra pids < <(server_pids "$tgt")
  local cu0 cs0 cu1 cs1 b0 t0 b1 t1 w0 w1 ns0 ns1
  read -r cu0 cs0 < <(cpu_time_ticks "${pids[@]}")
  read -r b0 t0 < <(all_ticks)
  times >"$WORK/times0"; ns0=$(date +%s%N)
  env "$@" timeout $((d + 30)) "${cmd[@]}" >"$out" 2>&1 &
  local wrk_pid=$!
  AUX_PIDS+=("$wrk_pid")
  wait "$wrk_pid" || { cat "$out" >&2; die "wrk failed ($id)"; }
  read -r cu1 cs1 < <(cpu_time_ticks "${pids[@]}")
  read -r b1 t1 < <(all_ticks)
  times >"$WORK/times1"; ns1=$(date +%s%N)
  w0=$(times_children "$WORK/times0"); w1=$(times_children "$WORK/times1")
  [[ -n $round ]] || return 0
  local envtxt=
  for k in "$@"; do
    case $k in
      BENCH_BASIC=*) envtxt+="BENCH_BASIC=<base64 client_id:secret> " ;;
      BENCH_AUTH=aig_*) envtxt+="BENCH_AUTH=<API key> " ;;
      BENCH_AUTH=?*) envtxt+="BENCH_AUTH=<access token> " ;;
      *) envtxt+="$k " ;;
    esac
  done
  (( round == 1 )) && COMMANDS+=("$envtxt${cmd[*]/#$ROOT\//}   # $id")
  line=$(grep '^BENCH ' "$out") || { cat "$out" >&2; die "no summary from wrk ($id)"; }
  local p="$id.$round"
  for k in requests rps p50_us p90_us p99_us max_us err_connect err_read err_write err_status err_timeout; do
    R[$p.$k]=$(sed -n "s/.* $k=\([0-9.]*\).*/\1/p" <<<"$line")
  done
  R[$p.non2xx]=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
  R[$p.non2xx]=${R[$p.non2xx]:-0}
  R[$p.errors]=$(( ${R[$p.err_connect]} + ${R[$p.err_read]} + ${R[$p.err_write]} + ${R[$p.err_status]} + ${R[$p.err_timeout]} + ${R[$p.non2xx]} ))
  n=${R[$p.requests]}
  (( n > 0 )) || n=1
  local wall_s
  wall_s=$(calc "printf \"%.6f\", ($ns1 - $ns0) / 1e9")
  R[$p.server_cores]=$(calc "printf \"%.2f\", ($cu1 + $cs1 - $cu0 - $cs0) / $CLK_TCK / $wall_s")
  R[$p.cpu_us]=$(calc "printf \"%.1f\", ($cu1 + $cs1 - $cu0 - $cs0) / $CLK_TCK * 1e6 / $n")
  R[$p.user_us]=$(calc "printf \"%.1f\", ($cu1 - $cu0) / $CLK_TCK * 1e6 / $n")
  R[$p.sys_us]=$(calc "printf \"%.1f\", ($cs1 - $cs0) / $CLK_TCK * 1e6 / $n")
  R[$p.wrk_cores]=$(calc "printf \"%.2f\", ($w1 - $w0) / $wall_s")
  # Cores the rest of the machine (other processes) took during the run.
  R[$p.other_cores]=$(calc "o = ($b1 - $b0) / ($t1 - $t0 > 0 ? $t1 - $t0 : 1) * $NCPU - ${R[$p.server_cores]} - ${R[$p.wrk_cores]}; printf \"%.2f\", o < 0 ? 0 : o")
  # What 2 cores given to the server alone would sustain at this CPU cost.
  R[$p.capacity]=$(calc "printf \"%.0f\", 2e6 / (${R[$p.cpu_us]} > 0 ? ${R[$p.cpu_us]} : 1)")
  log "$(printf '%-14s r%d %8.0f req/s  p50 %6d us  p99 %6d us  server %4.2f cores %6.1f us/req  wrk %4.2f  others %4.2f  errors %d' \
    "$id" "$round" "${R[$p.rps]}" "${R[$p.p50_us]}" "${R[$p.p99_us]}" "${R[$p.server_cores]}" "${R[$p.cpu_us]}" \
    "${R[$p.wrk_cores]}" "${R[$p.other_cores]}" "${R[$p.errors]}")"
}

# scenario id -> "target port lua env..."
SCENARIOS=(token-nginx)
declare -A SC_TGT SC_PORT SC_LUA SC_ENV SC_LABEL
SC_TGT[token-nginx]=nginx SC_PORT[token-nginx]=$NGINX_PORT SC_LUA[token-nginx]=token.lua
SC_ENV[token-nginx]="BENCH_BASIC=${BASIC[$A0]}"
SC_LABEL[token-nginx]="nginx, fixed token response (baseline)"
for alg in "${ALGS[@]}"; do
  s=token-$alg
  SCENARIOS+=("$s")
  SC_TGT[$s]=$alg SC_PORT[$s]=${PORT[$alg]} SC_LUA[$s]=token.lua SC_ENV[$s]="BENCH_BASIC=${BASIC[$alg]}"
  SC_LABEL[$s]="aigis, $alg tokens"
done
for s in chat-anonymous chat-token chat-apikey; do
  SCENARIOS+=("$s")
  SC_TGT[$s]=$A0 SC_PORT[$s]=${PORT[$A0]} SC_LUA[$s]=chat.lua
done
SC_ENV[chat-anonymous]="BENCH_MODEL=anon-model BENCH_AUTH="
SC_ENV[chat-token]="BENCH_MODEL=gpt-4o-mini BENCH_AUTH=${TOKEN[$A0]}"
SC_ENV[chat-apikey]="BENCH_MODEL=gpt-4o-mini BENCH_AUTH=${APIKEY[$A0]}"
SC_LABEL[chat-anonymous]="anonymous route (no authenticate work)"
SC_LABEL[chat-token]="Bearer access token ($A0, cached after the first call)"
SC_LABEL[chat-apikey]="Bearer API key (HMAC per request)"

run_scenario() {  # run_scenario ID SECONDS [ROUND]
  local s=$1
  # shellcheck disable=SC2086
  run_wrk "$s" "${SC_TGT[$s]}" "${SC_PORT[$s]}" "${SC_LUA[$s]}" "$2" "${3:-}" ${SC_ENV[$s]}
}

if (( BENCH_WARMUP > 0 )); then
  log "warm-up (${BENCH_WARMUP}s each)"
  for s in "${SCENARIOS[@]}"; do run_scenario "$s" "$BENCH_WARMUP"; done
fi
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  log "round $r of $BENCH_ROUNDS: wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_DURATION}s per scenario"
  for s in "${SCENARIOS[@]}"; do run_scenario "$s" "$BENCH_DURATION" "$r"; done
done
for alg in "${ALGS[@]}"; do kill -0 "${PID[$alg]}" 2>/dev/null || die "aigis ($alg) exited during the run"; done

mean() {  # mean SCENARIO KEY [FORMAT]
  local s=$1 k=$2 fmt=${3:-%.1f} r sum=0
  for ((r = 1; r <= BENCH_ROUNDS; r++)); do sum=$(calc "print $sum + ${R[$s.$r.$k]}"); done
  calc "printf \"$fmt\", $sum / $BENCH_ROUNDS"
}
for s in "${SCENARIOS[@]}"; do
  for k in rps cpu_us user_us sys_us server_cores wrk_cores other_cores p50_us p99_us; do R[$s.mean.$k]=$(mean "$s" "$k"); done
  R[$s.mean.capacity]=$(calc "printf \"%.0f\", 2e6 / ${R[$s.mean.cpu_us]}")
  e=0
  for ((r = 1; r <= BENCH_ROUNDS; r++)); do e=$((e + ${R[$s.$r.errors]})); done
  R[$s.total.errors]=$e
done

# ---------------------------------------------------------------- verdicts
NOISY=0
for s in "${SCENARIOS[@]}"; do
  for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    (( $(calc "print (${R[$s.$r.other_cores]} > 0.2) ? 1 : 0") )) && NOISY=1
  done
done
declare -A TOKEN_MET
for alg in "${ALGS[@]}"; do
  s=token-$alg
  if (( $(calc "print (${R[$s.mean.rps]} >= $BENCH_GOAL_TPS) ? 1 : 0") )); then
    TOKEN_MET[$alg]="met"
  elif (( $(calc "print (${R[$s.mean.capacity]} >= $BENCH_GOAL_TPS) ? 1 : 0") )); then
    TOKEN_MET[$alg]="met on CPU cost only (the server alone on 2 cores); not with wrk on the same cores"
  else
    TOKEN_MET[$alg]="not met"
  fi
done

# ---------------------------------------------------------------- profile
PROFILE_TEXT=
want_profile=0
case $BENCH_PROFILE in
  1) want_profile=1 ;;
  auto) for alg in "${ALGS[@]}"; do [[ ${TOKEN_MET[$alg]} == met ]] || want_profile=1; done ;;
esac
profile_alg() {  # profile_alg ALG: perf during token issuance, grouped by component
  local alg=$1 out="$WORK/perf-$1"
  # DWARF call graphs: the release binary has no frame pointers.
  perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "${PID[$alg]}" -o "$out.data" -- sleep "$((BENCH_PROFILE_DURATION + 1))" \
    >"$out.log" 2>&1 &
  local perf_pid=$! i
  AUX_PIDS+=("$perf_pid")
  sleep 0.5
  run_wrk "profile-$alg" "$alg" "${PORT[$alg]}" token.lua "$BENCH_PROFILE_DURATION" 1 "BENCH_BASIC=${BASIC[$alg]}"
  for ((i = 0; i < 100; i++)); do kill -0 "$perf_pid" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$perf_pid" INT
  perf report -i "$out.data" --stdio --no-children --sort dso,symbol -F overhead,dso,symbol -g none 2>/dev/null \
    | grep -v '^#' | sed -e '/^$/d' -e 's/ *$//' >"$out-flat.txt" || true
  [[ -s $out-flat.txt ]] || return 0
  local us=${R[profile-$alg.1.cpu_us]}
  # Self time by component. libcrypto holds the signature (and the secret's
  # HMAC, and the jti's random bytes); the HTTP side is the kernel (TCP),
  # asio/beast and the gateway; form parsing and JSON are named.
  local groups
  groups=$(awk '
    { p = $1; sub(/%/, "", p); dso = $2; sym = $0; sub(/^ *[0-9.]+% +[^ ]+ +\[.\] +/, "", sym)
      if (dso == "[kernel.kallsyms]") k = "HTTP: kernel (TCP/IP, epoll, syscalls, scheduling)"
      else if (dso ~ /libcrypto|libssl/) k = "signing etc.: libcrypto (signature, secret HMAC, RAND for jti)"
      else if (dso ~ /boost_json/) k = "JSON: libboost_json (claims + response serialize)"
      else if (dso ~ /^libc\./) k = (sym ~ /malloc|free|_int_|unlink_chunk|consolidate|tcache|cfree|realloc|calloc/) ? "libc: malloc/free" : (sym ~ /mem(cpy|move|set|cmp|chr)|str/) ? "libc: memcpy/memmove/str*" : "libc: other (syscall wrappers, ...)"
      else if (dso == "aigis") {
        if (sym ~ /ParseForm|FormDecode|Param\(/) k = "form parsing: aigis::identity ParseForm/FormDecode"
        else if (sym ~ /^(void )?boost::(beast|mp11)::/) k = "HTTP: boost::beast (parse/serialize, buffers)"
        else if (sym ~ /^(void )?boost::asio::/) k = "HTTP: boost::asio (event loop, coroutines, sockets)"
        else if (sym ~ /^aigis::(gateway|net)/) k = "HTTP: aigis::gateway / aigis::net"
        else if (sym ~ /^aigis::crypto/) k = "signing etc.: aigis::crypto (JOSE, base64url)"
        else if (sym ~ /^aigis::identity/) k = "identity: aigis::identity (other)"
        else if (sym ~ /^aigis::/) k = "aigis: other namespaces"
        else if (sym ~ /spdlog|fmt::/) k = "spdlog/fmt"
        else if (sym ~ /^std::|^operator/) k = "aigis binary: std::"
        else k = "aigis binary: other"
      }
      else if (dso ~ /libstdc\+\+/) k = "libstdc++"
      else k = "other (" dso ")"
      t[k] += p }
    END { for (k in t) printf "%6.2f%%  %6.1f µs/token  %s\n", t[k], t[k] * us / 100, k }' us="$us" "$out-flat.txt" | sort -rn)
  # Inclusive time (children) of the stages of a token request, from the call graphs.
  perf report -i "$out.data" --stdio --children --sort symbol -g none 2>/dev/null \
    | grep -v '^#' | sed -e '/^$/d' -e 's/ *-  *- *$//' -e 's/ *$//' >"$out-children.txt" || true
  local stages
  stages=$(awk -v us="$us" '
    function show(label, re,    i) { for (i = 1; i <= n; i++) if (sym[i] ~ re) { printf "%6.2f%%  %6.1f µs/token  %s\n", ch[i], ch[i] * us / 100, label; return ch[i] } return -1 }
    { c = $1; sub(/%/, "", c); s = $0; sub(/^ *[0-9.]+% +[0-9.]+% +\[.\] +/, "", s); n++; ch[n] = c; sym[n] = s }
    END {
      t = show("Identity::Token (the whole endpoint, no HTTP)", "^aigis::identity::Identity::Token$")
      show("  SignToken (claims serialize + sign)", "^aigis::identity::Identity::Impl::SignToken")
      show("    crypto::Key::Sign (OpenSSL EVP_DigestSignInit + EVP_DigestSign)", "^aigis::crypto::Key::Sign")
      show("      EVP_DigestSignInit (per-call context setup and fetches)", "^EVP_DigestSignInit$")
      show("  AuthenticateClient (Basic decode, secret check)", "AuthenticateClient")
      show("    HMAC-SHA256 of the secret (EVP_Q_mac one-shot)", "^EVP_Q_mac$")
      show("  RandomId (jti: RAND_bytes)", "^aigis::identity::RandomId")
      show("  ParseForm (form parsing)", "^aigis::identity::ParseForm")
      show("  boost::json::serialize (claims, response)", "^boost::json::serialize")
      if (t >= 0) printf "%6.2f%%  %6.1f µs/token  %s\n", 100 - t, (100 - t) * us / 100, "everything else: HTTP (kernel TCP, asio, beast, aigis::net/gateway), allocation"
    }' "$out-children.txt")
  local top
  top=$(sort -rn "$out-flat.txt" | head -n 20 | cut -c1-150 | sed 's/ *$//' || true)
  PROFILE_TEXT+=$(printf '### %s: %s tokens/s, %s CPU µs per token in aigis during the profile\n\nSelf time by component (share of aigis samples; µs/token = share × CPU µs per token):\n\n```\n%s\n```\n\nInclusive time of the token path (DWARF call graphs; libcrypto has no symbols for its internals, so its time shows under the nearest named caller):\n\n```\n%s\n```\n\nTop symbols (self):\n\n```\n%s\n```\n\n' \
    "$alg" "$(calc "printf \"%.0f\", ${R[profile-$alg.1.rps]}")" "$us" "$groups" "${stages:-(no call graphs)}" "$top")$'\n\n'
}
if (( want_profile )); then
  if command -v perf >/dev/null && perf record -q -e cpu-clock -o "$WORK/perf-probe.data" -- true >/dev/null 2>&1; then
    for alg in "${ALGS[@]}"; do
      log "profiling aigis ($alg) with perf (cpu-clock, ${BENCH_PROFILE_DURATION}s of token issuance)"
      profile_alg "$alg"
    done
  else
    log "perf cannot sample here; skipping the profile"
  fi
fi

# ---------------------------------------------------------------- micro-benchmarks
MICRO_TEXT=
declare -A M  # M[name] = "real_ns cpu_ns calls_per_s"
if (( BENCH_MICRO )) && [[ ! -x $IDENTITY_BENCH_BIN ]]; then
  log "no ${IDENTITY_BENCH_BIN#"$ROOT"/} (needs Google Benchmark: apt-get install libbenchmark-dev); skipping the micro-benchmarks"
fi
if (( BENCH_MICRO )) && [[ -x $IDENTITY_BENCH_BIN ]]; then
  log "micro-benchmarks: ${IDENTITY_BENCH_BIN#"$ROOT"/} (${BENCH_MICRO_REPS} repetitions, medians)"
  timeout 600 "$IDENTITY_BENCH_BIN" --benchmark_repetitions="$BENCH_MICRO_REPS" --benchmark_report_aggregates_only=true \
    --benchmark_format=csv >"$WORK/micro.csv" 2>"$WORK/micro.err" || { cat "$WORK/micro.err" >&2; die "micro-benchmarks failed"; }
  # name,iterations,real_time,cpu_time,time_unit,...
  while IFS=, read -r name _ real cpu unit _ ips _; do
    name=${name//\"/}
    [[ $name == *_median ]] || continue
    name=${name%_median}
    case $unit in us) f=1000 ;; ms) f=1000000 ;; *) f=1 ;; esac
    M[$name]="$(calc "printf \"%.0f\", $real * $f") $(calc "printf \"%.0f\", $cpu * $f") ${ips:-}"
  done < <(grep -v '^[A-Za-z -]*:' "$WORK/micro.csv" | grep '^"BM_')
  micro_row() {  # micro_row NAME LABEL
    local v=${M[$1]:-}
    [[ -n $v ]] || return 0
    read -r real cpu ips <<<"$v"
    [[ -n ${ips:-} ]] && ips=$(calc "printf \"%.2f M\", $ips / 1e6")
    printf '| %s | `%s` | %s | %s | %s |\n' "$2" "$1" "$real" "$cpu" "${ips:-}"
  }
  MICRO_TEXT=$(
    echo "| what | benchmark | real ns | CPU ns | calls/s (all threads) |"
    echo "|---|---|---:|---:|---:|"
    for alg in EdDSA ES256; do micro_row "BM_AuthenticateCachedToken/$alg" "Authenticate, cached $alg token"; done
    micro_row "BM_AuthenticateCachedToken/EdDSA/real_time/threads:2" "Authenticate, cached token, 2 threads, same token"
    micro_row "BM_AuthenticateCachedTokenPerThread/EdDSA/real_time/threads:2" "Authenticate, cached token, 2 threads, a token each"
    for alg in EdDSA ES256; do micro_row "BM_AuthenticateUncachedToken/$alg" "Authenticate, uncached $alg token (verify path)"; done
    micro_row "BM_AuthenticateApiKey" "Authenticate, API key"
    for alg in EdDSA ES256 RS256; do micro_row "BM_TokenEndpointClientCredentials/$alg" "Identity::Token, client_credentials, $alg"; done
    micro_row "BM_TokenPart_ParseForm" "  part: form parsing"
    micro_row "BM_TokenPart_BasicDecode" "  part: Basic credentials base64 decode"
    micro_row "BM_TokenPart_SecretHmac" "  part: client secret HMAC-SHA256"
    for alg in EdDSA ES256 RS256; do micro_row "BM_TokenPart_SerializeAndSign/$alg" "  part: claims serialize + $alg sign"; done
    micro_row "BM_TokenPart_RandomJti" "  part: random jti"
  )
  CACHED_NS=$(read -r _ c _ <<<"${M[BM_AuthenticateCachedToken/EdDSA]:-0 0}"; echo "$c")
fi

# ---------------------------------------------------------------- report
GIT_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && GIT_COMMIT="$GIT_COMMIT (working tree modified)"
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
AIGIS_VERSION=$("$AIGIS_BIN" version 2>/dev/null || echo unknown)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 {print $1, $2}')
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
num() { calc "printf \"%.0f\", $1"; }

rounds_table() {  # rounds_table SCENARIO...
  local s r p
  echo "| scenario | round | requests/s | p50 µs | p99 µs | errors | aigis/nginx cores | CPU µs/request (user / sys) | wrk cores | other processes' cores |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in "$@"; do
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
      p=$s.$r
      printf '| %s | %d | %s | %s | %s | %s | %s | %s (%s / %s) | %s | %s |\n' "${SC_LABEL[$s]}" "$r" "$(num "${R[$p.rps]}")" \
        "${R[$p.p50_us]}" "${R[$p.p99_us]}" "${R[$p.errors]}" "${R[$p.server_cores]}" "${R[$p.cpu_us]}" \
        "${R[$p.user_us]}" "${R[$p.sys_us]}" "${R[$p.wrk_cores]}" "${R[$p.other_cores]}"
    done
  done
}

TOKEN_SUMMARY=$(
  echo "| target | tokens/s (mean of $BENCH_ROUNDS) | vs nginx | CPU µs/token | CPU vs nginx | 2 dedicated cores would sustain | goal ≥ $BENCH_GOAL_TPS/s |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  n=token-nginx
  printf '| %s | %s | 1.00× | %s | 1.00× | %s | |\n' "${SC_LABEL[$n]}" "$(num "${R[$n.mean.rps]}")" "${R[$n.mean.cpu_us]}" "${R[$n.mean.capacity]}"
  for alg in "${ALGS[@]}"; do
    s=token-$alg
    printf '| %s | **%s** | %s× | %s | %s× | %s | **%s** |\n' "${SC_LABEL[$s]}" "$(num "${R[$s.mean.rps]}")" \
      "$(calc "printf \"%.2f\", ${R[$s.mean.rps]} / ${R[$n.mean.rps]}")" "${R[$s.mean.cpu_us]}" \
      "$(calc "printf \"%.1f\", ${R[$s.mean.cpu_us]} / ${R[$n.mean.cpu_us]}")" "${R[$s.mean.capacity]}" "${TOKEN_MET[$alg]}"
  done
)
AUTH_SUMMARY=$(
  echo "| request | requests/s (mean) | CPU µs/request | added CPU µs/request vs anonymous | p50 µs | p99 µs |"
  echo "|---|---:|---:|---:|---:|---:|"
  for s in chat-anonymous chat-token chat-apikey; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "${SC_LABEL[$s]}" "$(num "${R[$s.mean.rps]}")" "${R[$s.mean.cpu_us]}" \
      "$(calc "printf \"%+.1f\", ${R[$s.mean.cpu_us]} - ${R[chat-anonymous.mean.cpu_us]}")" \
      "$(num "${R[$s.mean.p50_us]}")" "$(num "${R[$s.mean.p99_us]}")"
  done
)
TOTAL_ERRORS=0
for s in "${SCENARIOS[@]}"; do TOTAL_ERRORS=$((TOTAL_ERRORS + ${R[$s.total.errors]})); done

TABLES=$(
  echo "### Token issuance: POST /oauth2/token, wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_DURATION}s"
  echo
  echo "$TOKEN_SUMMARY"
  echo
  echo "### Authenticate under load: POST /v1/chat/completions to the echo upstream, wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_DURATION}s"
  echo
  echo "$AUTH_SUMMARY"
  echo
  echo "### Every run"
  echo
  rounds_table "${SCENARIOS[@]}"
  if [[ -n $MICRO_TEXT ]]; then
    echo
    echo "### Micro-benchmarks (Google Benchmark, median of $BENCH_MICRO_REPS repetitions)"
    echo
    echo "$MICRO_TEXT"
    echo
    if [[ -n ${CACHED_NS:-} && $CACHED_NS != 0 ]]; then
      echo "Goal: Authenticate on a cached token ≤ $GOAL_CACHED_NS ns: $CACHED_NS ns (EdDSA) — **$( (( CACHED_NS <= GOAL_CACHED_NS )) && echo met || echo "not met")**."
    fi
  fi
)

mkdir -p "$(dirname "$BENCH_OUT")"
{
  echo "# Identity benchmark: token issuance and authentication"
  echo
  echo "Generated by \`bench/identity/run.sh\` (\`make bench-identity\`); do not edit by hand."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: $NCPU CPUs, $CPU_MODEL, $(uname -sr)"
  echo "- commit: $GIT_COMMIT; $AIGIS_VERSION (${AIGIS_BIN#"$ROOT"/})"
  echo "- tools: nginx $NGINX_VERSION, $WRK_VERSION, $(openssl version 2>/dev/null || echo 'openssl ?')"
  echo "- servers: aigis \`server.threads: $BENCH_THREADS\` (one instance per signing algorithm, each with a fresh data dir), nginx \`worker_processes $BENCH_THREADS\`; access logs off; no pinning: servers and wrk share the $NCPU CPUs"
  echo "- token request: \`POST /oauth2/token\` \`grant_type=client_credentials\` with \`Authorization: Basic\` (client_secret_basic), keep-alive; response $TOKEN_RESPONSE_BYTES bytes (nginx returns a captured aigis response, byte for byte)"
  echo "- chat request: \`POST /v1/chat/completions\` to aigis's built-in echo upstream (response $CHAT_RESPONSE_BYTES bytes); model \`anon-model\` hits the \`anonymous: true\` route, \`gpt-4o-mini\` the authenticated one"
  echo "- warm-up: ${BENCH_WARMUP}s per scenario; then $BENCH_ROUNDS rounds of every scenario, in turn"
  echo "- background: ${BACKGROUND_BUSY}% of all CPUs busy in the second before the start; load average $LOADAVG_START at the start, $LOADAVG_END at the end$( (( BACKGROUND_BUSY < 10 )) || echo " — **WARNING: a busy machine; treat requests/s as noisy, CPU µs/request is the robust figure**")"
  (( NOISY )) && echo "- **WARNING: other processes took more than 0.2 cores during some runs (last column of \"Every run\"); those runs' requests/s are depressed**"
  (( TOTAL_ERRORS > 0 )) && echo "- **WARNING: $TOTAL_ERRORS socket errors / non-2xx responses during the measured runs**"
  echo
  echo "## Results"
  echo
  echo "Goals: ≥ $BENCH_GOAL_TPS tokens/s on 2 cores (Keycloak publishes about 120 client-credentials grants/s per vCPU); Authenticate on a cached token ≤ 2 µs."
  echo "\"CPU µs/request\" is the CPU time (user + system, all threads) the server used per request over the run, from /proc;"
  echo "\"2 dedicated cores would sustain\" is 2 000 000 / that, the server's throughput if it had both cores to itself (here wrk takes a share of them)."
  echo "\"wrk cores\" and \"other processes' cores\" are what the load generator and the rest of the machine used meanwhile."
  echo
  echo "$TABLES"
  echo
  echo "## Commands"
  echo
  echo "Servers (\$TMP is a fresh \`mktemp -d\`; configs are bench/identity/*.in with the placeholders filled in; AIGIS_MASTER_KEY and AIGIS_ADMIN_TOKEN are random per run):"
  echo
  echo '```'
  for alg in "${ALGS[@]}"; do
    echo "AIGIS_MASTER_KEY=... AIGIS_ADMIN_TOKEN=... ${AIGIS_BIN#"$ROOT"/} serve --config \$TMP/aigis-$alg/aigis.yaml --ports-file \$TMP/aigis-$alg/ports.json   # identity.signing_algorithm: $alg"
  done
  echo "nginx -p \$TMP/nginx -c \$TMP/nginx/nginx.conf -e \$TMP/nginx/error.log   # bench/identity/token.nginx.conf.in"
  echo "curl -X POST admin:/admin/v1/agents, /admin/v1/agents/<id>/credentials, /admin/v1/api-keys   # per aigis"
  echo '```'
  echo
  echo "Load:"
  echo
  echo '```'
  printf '%s\n' "${COMMANDS[@]}" | sed "s|$WORK|\$TMP|g"
  echo '```'
  echo
  [[ -n $MICRO_TEXT ]] && echo "Micro-benchmarks: \`${IDENTITY_BENCH_BIN#"$ROOT"/} --benchmark_repetitions=$BENCH_MICRO_REPS --benchmark_report_aggregates_only=true\` (src/identity/identity_benchmark.cc)." && echo
  echo "Reproduce: \`make bench-identity\`, or \`bench/identity/run.sh\` with BENCH_DURATION, BENCH_ROUNDS, BENCH_ALGS, ... (see its header)."
  if [[ -n $PROFILE_TEXT ]]; then
    echo
    echo "## Profile of aigis issuing tokens"
    echo
    echo "\`perf record -e cpu-clock -F 999 --call-graph dwarf -p <aigis pid>\` during \`wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_PROFILE_DURATION}s\` on /oauth2/token."
    echo
    echo "$PROFILE_TEXT"
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

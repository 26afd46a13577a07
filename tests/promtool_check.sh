#!/usr/bin/env bash
# Starts aigis, sends a few exchanges (so every metric family has samples),
# then has Prometheus' own promtool check the /metrics exposition.
set -euo pipefail
BIN=${1:?usage: promtool_check.sh AIGIS_BIN}
command -v promtool >/dev/null || { echo "promtool not installed (Debian package prometheus)"; exit 1; }
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/aigis.yaml" <<YAML
listeners: {proxy: {address: "127.0.0.1:0"}, admin: {address: "127.0.0.1:0"}}
data_dir: $dir/data
log: {access_log: off, level: warn}
model_aliases: {fast: echo}
identity:
  bootstrap_agent: {id: promtool-agent, scopes: [llm:chat], api_key_file: $dir/agent.key}
YAML
AIGIS_MASTER_KEY=$(openssl rand -base64 32) AIGIS_ADMIN_TOKEN=$(openssl rand -hex 24) "$BIN" serve --config "$dir/aigis.yaml" --ports-file "$dir/ports" 2>"$dir/stderr" &
pid=$!
for _ in $(seq 1 200); do [ -s "$dir/ports" ] && break; sleep 0.1; done
[ -s "$dir/ports" ] || { echo "aigis did not start"; cat "$dir/stderr"; exit 1; }
proxy=$(sed 's/.*"proxy":\([0-9]*\).*/\1/' "$dir/ports")
admin=$(sed 's/.*"admin":\([0-9]*\).*/\1/' "$dir/ports")
key=$(cat "$dir/agent.key")
for body in '{"model":"echo","messages":[{"role":"user","content":"hi"}]}' \
            '{"model":"fast","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a \"quoted\" model"}]}' \
            '{"model":"echo"'; do
  curl -s -o /dev/null "http://127.0.0.1:$proxy/v1/chat/completions" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d "$body"
done
curl -s -o /dev/null "http://127.0.0.1:$proxy/nope"
curl -sf "http://127.0.0.1:$admin/metrics" > "$dir/metrics"
grep -q '^aigis_requests_total{route="default",status="200"} 2$' "$dir/metrics" || { echo "missing request counts"; cat "$dir/metrics"; exit 1; }
grep -q '^aigis_tokens_total{direction="input",model="echo"}' "$dir/metrics" || { echo "missing token counts"; exit 1; }
grep -q '^aigis_auth_token_cache_total{outcome="hit"} ' "$dir/metrics" || { echo "missing identity counters"; exit 1; }
promtool check metrics < "$dir/metrics"
echo "promtool: /metrics accepted ($(grep -vc '^#' "$dir/metrics") samples)"
kill -TERM $pid
wait $pid

#include "gateway/metrics.h"

#include <fmt/format.h>

#include <set>

namespace aigis::gateway {
namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string Esc(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

Metrics::Metrics(int shards) {
  for (int i = 0; i < std::max(1, shards); ++i) shards_.push_back(std::make_unique<Shard>());
}

void Metrics::Histogram::Observe(double v) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (v <= kBuckets[i]) ++buckets[i];
  }
  ++count;
  sum += v;
}

void Metrics::Histogram::Merge(const Histogram& o) {
  for (size_t i = 0; i < kBuckets.size(); ++i) buckets[i] += o.buckets[i];
  count += o.count;
  sum += o.sum;
}

void Metrics::ObserveRequest(int shard, std::string_view route, int status, double seconds) {
  Shard& s = *shards_[static_cast<size_t>(shard) % shards_.size()];
  std::lock_guard lock(s.mu);
  auto key = std::make_pair(std::string(route), status);
  ++s.requests[key];
  auto it = s.request_seconds.find(route);
  if (it == s.request_seconds.end()) it = s.request_seconds.emplace(std::string(route), Histogram{}).first;
  it->second.Observe(seconds);
}

void Metrics::ObserveUpstream(int shard, std::string_view upstream, std::string_view outcome, double seconds) {
  Shard& s = *shards_[static_cast<size_t>(shard) % shards_.size()];
  std::lock_guard lock(s.mu);
  ++s.upstream_attempts[std::make_pair(std::string(upstream), std::string(outcome))];
  auto it = s.upstream_seconds.find(upstream);
  if (it == s.upstream_seconds.end()) it = s.upstream_seconds.emplace(std::string(upstream), Histogram{}).first;
  it->second.Observe(seconds);
}

void Metrics::AddTokens(int shard, std::string_view model, int64_t input, int64_t output) {
  Shard& s = *shards_[static_cast<size_t>(shard) % shards_.size()];
  std::lock_guard lock(s.mu);
  std::string m(model);
  if (!s.tokens.count({m, "input"})) {
    if (s.model_labels >= kMaxModelLabels) m = "other";
    else ++s.model_labels;
  }
  if (input > 0) s.tokens[{m, "input"}] += static_cast<uint64_t>(input);
  if (output > 0) s.tokens[{m, "output"}] += static_cast<uint64_t>(output);
  s.tokens.try_emplace({m, "input"}, 0);
}

void Metrics::ObserveMcpCall(int shard, std::string_view server, std::string_view tool, std::string_view outcome) {
  Shard& s = *shards_[static_cast<size_t>(shard) % shards_.size()];
  std::lock_guard lock(s.mu);
  auto key = std::make_tuple(std::string(server), std::string(tool), std::string(outcome));
  auto it = s.mcp_calls.find(key);
  if (it == s.mcp_calls.end()) {
    if (s.tool_labels >= kMaxModelLabels) std::get<1>(key) = "other";
    else ++s.tool_labels;
    it = s.mcp_calls.try_emplace(std::move(key), 0).first;
  }
  ++it->second;
}

std::string Metrics::Render(const Gauges& g, std::string_view version, std::string_view commit) const {
  std::map<std::pair<std::string, int>, uint64_t> requests;
  std::map<std::string, Histogram> request_seconds, upstream_seconds;
  std::map<std::pair<std::string, std::string>, uint64_t> attempts, tokens;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> mcp_calls;
  for (const auto& sp : shards_) {
    std::lock_guard lock(sp->mu);
    for (const auto& [k, v] : sp->mcp_calls) mcp_calls[k] += v;
    for (const auto& [k, v] : sp->requests) requests[k] += v;
    for (const auto& [k, v] : sp->request_seconds) request_seconds[k].Merge(v);
    for (const auto& [k, v] : sp->upstream_seconds) upstream_seconds[k].Merge(v);
    for (const auto& [k, v] : sp->upstream_attempts) attempts[k] += v;
    for (const auto& [k, v] : sp->tokens) tokens[k] += v;
  }
  std::string out;
  auto header = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto histogram = [&](std::string_view name, std::string_view label, const std::map<std::string, Histogram>& m) {
    for (const auto& [k, h] : m) {
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        out += fmt::format("{}_bucket{{{}=\"{}\",le=\"{}\"}} {}\n", name, label, Esc(k), kBuckets[i], h.buckets[i]);
      }
      out += fmt::format("{}_bucket{{{}=\"{}\",le=\"+Inf\"}} {}\n", name, label, Esc(k), h.count);
      out += fmt::format("{}_sum{{{}=\"{}\"}} {}\n", name, label, Esc(k), h.sum);
      out += fmt::format("{}_count{{{}=\"{}\"}} {}\n", name, label, Esc(k), h.count);
    }
  };

  header("aigis_build_info", "gauge", "Build information; the value is always 1.");
  out += fmt::format("aigis_build_info{{version=\"{}\",commit=\"{}\"}} 1\n", Esc(version), Esc(commit));

  header("aigis_requests_total", "counter", "Exchanges answered by the proxy listener, by route and HTTP status.");
  for (const auto& [k, v] : requests) {
    out += fmt::format("aigis_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", Esc(k.first), k.second, v);
  }
  header("aigis_request_duration_seconds", "histogram", "Time from request received to response complete, by route.");
  histogram("aigis_request_duration_seconds", "route", request_seconds);

  header("aigis_upstream_duration_seconds", "histogram", "Time from upstream request sent to response headers, by upstream.");
  histogram("aigis_upstream_duration_seconds", "upstream", upstream_seconds);

  header("aigis_upstream_attempts_total", "counter", "Upstream attempts by upstream and outcome (ok, refused, timeout, status_5xx, status_429, ...).");
  for (const auto& [k, v] : attempts) {
    out += fmt::format("aigis_upstream_attempts_total{{upstream=\"{}\",outcome=\"{}\"}} {}\n", Esc(k.first), Esc(k.second), v);
  }

  header("aigis_tokens_total", "counter", "Tokens reported by upstreams, by direction (input, output) and model.");
  for (const auto& [k, v] : tokens) {
    out += fmt::format("aigis_tokens_total{{direction=\"{}\",model=\"{}\"}} {}\n", k.second, Esc(k.first), v);
  }

  if (g.mcp || !mcp_calls.empty()) {
    header("aigis_mcp_calls_total", "counter",
           "MCP tools/call requests by server, tool and outcome (ok, denied, blocked, not_approved, upstream_error, tool_error, error).");
    for (const auto& [k, v] : mcp_calls) {
      out += fmt::format("aigis_mcp_calls_total{{server=\"{}\",tool=\"{}\",outcome=\"{}\"}} {}\n", Esc(std::get<0>(k)),
                         Esc(std::get<1>(k)), Esc(std::get<2>(k)), v);
    }
  }
  if (g.mcp) {
    header("aigis_mcp_sessions", "gauge", "MCP client sessions held.");
    out += fmt::format("aigis_mcp_sessions {}\n", g.mcp_sessions);
    header("aigis_mcp_stdio_servers_running", "gauge", "Stdio MCP servers running and initialized.");
    out += fmt::format("aigis_mcp_stdio_servers_running {}\n", g.mcp_stdio_running);
    header("aigis_mcp_stdio_restarts_total", "counter", "Restarts of stdio MCP servers after they exited.");
    out += fmt::format("aigis_mcp_stdio_restarts_total {}\n", g.mcp_stdio_restarts);
  }
  header("aigis_inflight_requests", "gauge", "Exchanges being handled right now.");
  out += fmt::format("aigis_inflight_requests {}\n", inflight.load());
  header("aigis_client_connections", "gauge", "Open client connections on the proxy listener.");
  out += fmt::format("aigis_client_connections {}\n", g.client_connections);
  header("aigis_upstream_connections", "gauge", "Upstream connections by state (active = carrying a request, idle = pooled).");
  out += fmt::format("aigis_upstream_connections{{state=\"active\"}} {}\n", g.upstream_open - g.upstream_idle);
  out += fmt::format("aigis_upstream_connections{{state=\"idle\"}} {}\n", g.upstream_idle);
  header("aigis_upstream_connections_reused_total", "counter", "Upstream requests sent on a pooled keep-alive connection.");
  out += fmt::format("aigis_upstream_connections_reused_total {}\n", g.upstream_reused);
  header("aigis_http_rejected_total", "counter", "Requests the HTTP layer refused itself (bad framing, header too large, connection limit).");
  out += fmt::format("aigis_http_rejected_total {}\n", g.rejected_by_server);
  header("aigis_config_reloads_total", "counter", "Config reloads by result.");
  out += fmt::format("aigis_config_reloads_total{{result=\"success\"}} {}\n", reloads_ok.load());
  out += fmt::format("aigis_config_reloads_total{{result=\"failure\"}} {}\n", reloads_failed.load());
  header("aigis_config_last_reload_timestamp_seconds", "gauge", "Unix time the serving config was loaded.");
  out += fmt::format("aigis_config_last_reload_timestamp_seconds {:.3f}\n", g.config_loaded_at);
  if (g.identity) {
    header("aigis_auth_token_cache_total", "counter", "Bearer JWT verifications by cache outcome.");
    out += fmt::format("aigis_auth_token_cache_total{{outcome=\"hit\"}} {}\n", g.auth_cache_hits);
    out += fmt::format("aigis_auth_token_cache_total{{outcome=\"miss\"}} {}\n", g.auth_cache_misses);
    header("aigis_auth_failures_total", "counter",
           "Credentials refused (data-plane authentication and OAuth client authentication).");
    out += fmt::format("aigis_auth_failures_total {}\n", g.auth_failures);
    header("aigis_oauth_tokens_issued_total", "counter", "Access tokens issued by the token endpoint.");
    out += fmt::format("aigis_oauth_tokens_issued_total {}\n", g.tokens_issued);
  }
  if (g.authz) {
    header("aigis_authz_checks_total", "counter",
           "Relationship checks of the authorize stage by result (error: could not be decided, denied).");
    out += fmt::format("aigis_authz_checks_total{{result=\"allow\"}} {}\n", g.authz_allowed);
    out += fmt::format("aigis_authz_checks_total{{result=\"deny\"}} {}\n", g.authz_denied);
    out += fmt::format("aigis_authz_checks_total{{result=\"error\"}} {}\n", g.authz_errors);
    header("aigis_authz_check_cache_hits_total", "counter", "Checks of the authorize stage answered from the cache.");
    out += fmt::format("aigis_authz_check_cache_hits_total {}\n", g.authz_cache_hits);
  }
  if (g.audit) {
    header("aigis_audit_records_total", "counter", "Records the audit log made durable.");
    out += fmt::format("aigis_audit_records_total {}\n", g.audit_appended);
    header("aigis_audit_record_failures_total", "counter", "Records the audit log refused (the exchange was answered 503 in sync mode).");
    out += fmt::format("aigis_audit_record_failures_total {}\n", audit_failures.load());
    header("aigis_audit_batches_total", "counter", "Group commits (one fdatasync per file each).");
    out += fmt::format("aigis_audit_batches_total {}\n", g.audit_batches);
    header("aigis_audit_syncs_total", "counter", "fdatasync calls made by the audit log.");
    out += fmt::format("aigis_audit_syncs_total {}\n", g.audit_syncs);
    header("aigis_audit_bytes_total", "counter", "Record bytes written to the audit log.");
    out += fmt::format("aigis_audit_bytes_total {}\n", g.audit_bytes);
    header("aigis_audit_queue_records", "gauge", "Records waiting for the audit log's writer.");
    out += fmt::format("aigis_audit_queue_records {}\n", g.audit_queued);
    header("aigis_audit_checkpoints_total", "counter", "Signed checkpoints issued.");
    out += fmt::format("aigis_audit_checkpoints_total {}\n", g.audit_checkpoints);
    header("aigis_audit_healthy", "gauge", "1 while the audit log takes records; 0 means requests are refused.");
    out += fmt::format("aigis_audit_healthy {}\n", g.audit_healthy ? 1 : 0);
    if (!g.audit_sinks.empty()) {
      header("aigis_audit_sink_records_total", "counter", "Records per audit sink: delivered, or dropped (queue full, retries exhausted).");
      for (const auto& k : g.audit_sinks) {
        out += fmt::format("aigis_audit_sink_records_total{{sink=\"{}\",result=\"delivered\"}} {}\n", Esc(k.name), k.delivered);
        out += fmt::format("aigis_audit_sink_records_total{{sink=\"{}\",result=\"dropped\"}} {}\n", Esc(k.name), k.dropped);
      }
      header("aigis_audit_sink_failures_total", "counter", "Failed delivery attempts per audit sink (each is retried with backoff).");
      for (const auto& k : g.audit_sinks) out += fmt::format("aigis_audit_sink_failures_total{{sink=\"{}\"}} {}\n", Esc(k.name), k.failures);
      header("aigis_audit_sink_queue_records", "gauge", "Records waiting per audit sink.");
      for (const auto& k : g.audit_sinks) out += fmt::format("aigis_audit_sink_queue_records{{sink=\"{}\"}} {}\n", Esc(k.name), k.queued);
    }
  }
  return out;
}

}  // namespace aigis::gateway

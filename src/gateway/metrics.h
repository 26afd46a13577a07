// Internal to gateway: every metric aigis exports, declared in this one
// place (names, help, labels, buckets) and rendered in Prometheus text format.
//
// Writes go to a per-worker shard whose mutex only the scrape ever contends
// for, so the request path takes no global lock. Label values that callers
// control (model names) are capped per shard; the rest fold into "other".
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace aigis::gateway {

class Metrics {
 public:
  static constexpr std::array<double, 14> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  static constexpr size_t kMaxModelLabels = 200;

  explicit Metrics(int shards);

  void ObserveRequest(int shard, std::string_view route, int status, double seconds);
  void ObserveUpstream(int shard, std::string_view upstream, std::string_view outcome, double seconds);
  void AddTokens(int shard, std::string_view model, int64_t input, int64_t output);
  // One MCP tools/call: outcome ok | denied | blocked | not_approved |
  // upstream_error | tool_error | error. Tool labels are capped like models.
  void ObserveMcpCall(int shard, std::string_view server, std::string_view tool, std::string_view outcome);

  std::atomic<int64_t> inflight{0};
  std::atomic<uint64_t> reloads_ok{0};
  std::atomic<uint64_t> reloads_failed{0};
  std::atomic<uint64_t> audit_failures{0};  // records the log refused

  // Point-in-time gauges the gateway reads from net's stats when scraped.
  struct Gauges {
    int64_t client_connections = 0;
    int64_t upstream_open = 0;
    int64_t upstream_idle = 0;
    uint64_t upstream_reused = 0;
    uint64_t rejected_by_server = 0;
    double config_loaded_at = 0;
    bool identity = false;  // the identity counters below are rendered
    uint64_t auth_cache_hits = 0, auth_cache_misses = 0, auth_failures = 0, tokens_issued = 0;
    bool authz = false;  // the authorization counters below are rendered
    uint64_t authz_allowed = 0, authz_denied = 0, authz_errors = 0, authz_cache_hits = 0;
    bool audit = false;  // the audit log's counters below are rendered
    uint64_t audit_appended = 0, audit_batches = 0, audit_syncs = 0, audit_bytes = 0, audit_queued = 0;
    uint64_t audit_checkpoints = 0;
    bool audit_healthy = true;
    struct Sink {
      std::string name;
      uint64_t delivered = 0, dropped = 0, failures = 0, queued = 0;
    };
    std::vector<Sink> audit_sinks;
    bool mcp = false;  // the MCP gauges below are rendered
    int64_t mcp_sessions = 0, mcp_stdio_running = 0;
    uint64_t mcp_stdio_restarts = 0;
  };
  std::string Render(const Gauges& g, std::string_view version, std::string_view commit) const;

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
    void Observe(double v);
    void Merge(const Histogram& o);
  };
  struct Shard {
    std::mutex mu;
    std::map<std::pair<std::string, int>, uint64_t, std::less<>> requests;
    std::map<std::string, Histogram, std::less<>> request_seconds;
    std::map<std::string, Histogram, std::less<>> upstream_seconds;
    std::map<std::pair<std::string, std::string>, uint64_t, std::less<>> upstream_attempts;
    std::map<std::pair<std::string, std::string>, uint64_t, std::less<>> tokens;
    size_t model_labels = 0;
    std::map<std::tuple<std::string, std::string, std::string>, uint64_t, std::less<>> mcp_calls;
    size_t tool_labels = 0;
  };
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace aigis::gateway

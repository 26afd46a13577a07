// Internal to the gateway module: the MCP gateway (mcp.cc, docs/mcp.md).
//
//   client --Streamable HTTP--> /mcp/<server> or /mcp (federated)
//     authenticate -> session (Mcp-Session-Id, bound to the principal)
//     tools/list:  upstream list (all pages) -> pins (registry::ToolPins)
//                  -> description screen -> ListObjects filter -> page
//     tools/call:  pin state -> Check can_call -> screen arguments (mask)
//                  -> upstream -> screen result -> answer
//   upstreams: Streamable HTTP (one upstream session per client session)
//              or stdio (one supervised process per server, shared; aigis
//              numbers the requests and routes the answers back)
//
// Every request is one Exchange (protocol kMcp): one audit record, one
// access event; JSON-RPC errors carry a code in data.code and, for
// authorization denies, the decision id.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/gateway.h"
#include "net/net.h"

namespace aigis::registry {
class ToolPins;
}

namespace aigis::gateway {

class Metrics;

struct McpHooks {
  std::shared_ptr<authz::Service> authz;      // null: nothing to filter by (authz off)
  std::shared_ptr<registry::ToolPins> pins;   // required
  std::function<std::shared_ptr<const guard::RuleSet>()> rules;  // the guard rules now
  // Runs the authenticate stages; false (and `deny` set) when they refuse.
  std::function<bool(Exchange&, Decision&)> authenticate;
  // Runs `fn` on the blocking pool (store reads and writes) and resumes the
  // calling coroutine on its own executor.
  std::function<net::Task<void>(std::function<void()>)> blocking;
  // An alert event (tool changed, tool poisoned, tool waiting for approval):
  // an audit record of kind "alert" and an event of kind "alert".
  std::function<void(const Exchange&, const std::string& kind, const std::string& detail)> alert;
  // The authorization server aigis is ("" = none: no RFC 9728 metadata).
  std::function<std::string()> issuer;
  std::string version;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
};

class McpGateway {
 public:
  // Starts the thread that serves the stdio servers' pipes.
  explicit McpGateway(McpHooks hooks);
  ~McpGateway();

  // "/mcp", "/mcp/<server>" (a trailing '/' tolerated).
  static bool Serves(std::string_view path);
  // One request on an MCP endpoint (any method). `ex` is set up by the
  // gateway (request id, snapshot, time) and recorded by it afterwards.
  net::Task<void> Handle(Exchange& ex, net::Request& req, net::ResponseWriter& w, net::HttpClient& client);

  // RFC 9728 metadata for GET /.well-known/oauth-protected-resource[/mcp[/<server>]].
  HttpResponse ResourceMetadata(std::string_view path, const config::Config& cfg) const;

  // Matches the servers to `cfg` (Start and every reload): stdio servers are
  // spawned, restarted with their new settings when they changed, stopped
  // when removed. Errors: a server URL that does not parse.
  Status Configure(const config::McpConfig& cfg);
  // Ends the sessions' event streams (first thing at shutdown: they would
  // hold the drain until its deadline).
  void EndStreams();
  // Stops the stdio servers (SIGTERM, then SIGKILL after 2 s). From a
  // thread that is not an I/O thread.
  void Shutdown();

  struct Stats {
    int64_t sessions = 0;
    int64_t stdio_running = 0;
    uint64_t stdio_restarts = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace aigis::gateway

// gateway: the one request pipeline every call flows through.
//
//   client -> listener -> Exchange -> authenticate -> authorize -> admit ->
//   screen request -> forward -> upstream -> screen response (per chunk /
//   per SSE event) -> client, and record for every exchange.
//
// An Exchange is one request/response. A Stage looks at it and returns a
// Decision; stages never touch sockets. A deny becomes the protocol's own
// error (OpenAI {"error":{...}}, Anthropic {"type":"error",...}) with the
// Decision's HTTP status. This issue ships the mechanism, the forward stage,
// the meter (token usage) and the record; later issues add their stages with
// Gateway::AddStage.
//
// Configuration is an immutable snapshot: each Exchange keeps the snapshot it
// started with, so a reload never changes a request in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/core.h"
#include "identity/identity.h"

namespace aigis::authz {
class Service;
}
namespace aigis::guard {
class RuleSet;
}
namespace aigis::audit {
class Log;
}
namespace aigis::registry {
class ToolPins;
}

namespace aigis::gateway {

enum class Protocol { kOpenAI, kAnthropic, kMcp };
std::string_view ProtocolName(Protocol p);
enum class Endpoint { kChatCompletions, kResponses, kEmbeddings, kModels, kMessages, kMcp };
std::string_view EndpointName(Endpoint e);

struct Decision {
  enum class Kind { kContinue, kDeny };
  Kind kind = Kind::kContinue;
  int status = 0;       // HTTP status for a deny
  std::string code;     // machine-readable, e.g. "prompt_injection"
  std::string reason;   // human-readable, shown to the caller
  std::vector<Header> headers;  // sent with a deny (e.g. WWW-Authenticate)

  static Decision Continue() { return {}; }
  static Decision Deny(int status, std::string code, std::string reason) {
    return {Kind::kDeny, status, std::move(code), std::move(reason), {}};
  }
  bool denied() const { return kind == Kind::kDeny; }
};

// Who is calling: filled by the authenticate stage (anonymous until then).
using identity::Principal;

struct Usage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  bool reported = false;  // the upstream said how many (vs. nothing known)
};

// One message of the protocol-neutral view of a request.
struct Message {
  std::string role;     // system | user | assistant | tool | input
  std::string text;     // concatenated text parts
  std::string pointer;  // JSON pointer of its content in the request body ("/messages/2/content")
};

struct StageRecord {
  std::string stage;
  std::string outcome;  // "deny" (continues are not listed)
  std::string code;
  std::string reason;
};

// One relationship check the authorize stage made for an exchange.
struct AuthzRecord {
  std::string decision_id;  // "<request id>.authz.<n>": quoted in a deny
  bool allowed = false;
  std::string user, relation, object;
  std::vector<std::string> explanation;  // the granting chain, or what was tried
  std::string model_id;                  // authorization model version
  uint64_t revision = 0;                 // tuple store revision it saw
  bool cached = false;
  std::string error;  // why it could not be answered (then it denies)
};

// What the guard screens found, without the matched text.
struct GuardRecord {
  bool screened = false;
  std::string policy;              // the guard policy that applied ("" = the guard-wide one)
  double score = 0;
  std::string outcome;             // pass | alert | block | monitor (would have blocked or masked)
  std::vector<std::string> rules;  // ids of the rules that matched
  std::vector<std::string> fields; // "RULE-ID@/json/pointer" of each finding in the request
  // Masked values, as placeholder -> SHA-256 prefix: the values themselves
  // are never recorded.
  std::vector<std::pair<std::string, std::string>> masked;
  std::string classifier;          // "" (not asked) | safe | unsafe | error
  std::string classifier_categories;
  // The response screen.
  bool response_screened = false;
  double response_score = 0;
  std::string response_outcome;    // pass | alert | block | monitor
  std::vector<std::string> response_rules;
};

// One MCP request (JSON-RPC over Streamable HTTP, gateway/mcp.cc).
struct McpRecord {
  std::string method;   // JSON-RPC method ("" for a notification batch or a response)
  std::string server;   // the upstream server ("" = none, or several for a federated list)
  std::string tool;     // tools/call: the upstream tool's name; resources/read: its URI; prompts/get: its name
  std::string session;  // SHA-256 prefix of the Mcp-Session-Id (the id itself is a credential)
  std::string rpc_id;   // the request's JSON-RPC id, as JSON text
  int error_code = 0;   // the JSON-RPC error aigis answered with (0 = a result)
  std::string error;    // its message
  std::string upstream_error;  // what went wrong upstream, when something did
  std::vector<std::string> alerts;  // alert events raised by this request (tool changed, poisoned)
};

struct ScreenState;  // the guard screens' per-exchange state (screen.cc)

struct Exchange {
  // Set by the gateway before any stage runs.
  std::string request_id;
  std::string tenant = "default";
  Protocol protocol = Protocol::kOpenAI;
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string method;
  std::string path;
  std::string remote;
  std::string_view raw_body;      // as received
  const Headers* request_headers = nullptr;  // as received
  std::string model;              // as requested
  std::string upstream_model;     // after model_aliases
  bool stream = false;
  std::vector<Message> messages;  // protocol-neutral view of the prompt
  std::string forward_body;       // what goes upstream: the parsed body re-serialized (masking rewrites it)
  WallTime time{};
  MonoTime start{};
  const config::Config* config = nullptr;  // the snapshot this exchange runs under

  // Filled as the pipeline runs.
  Principal principal;
  std::string principal_token;  // signed principal header for upstreams that ask
  std::string route;
  bool route_anonymous = false;  // the route admits callers without credentials
  std::string upstream;
  int upstream_status = 0;
  int attempts = 0;
  int status = 0;
  bool client_gone = false;
  Usage usage;
  std::vector<StageRecord> decisions;
  std::vector<AuthzRecord> authz;  // every check of the authorize stage
  GuardRecord guard;               // the request and response screens (MCP: tool arguments and result)
  McpRecord mcp;                   // protocol kMcp only
  std::shared_ptr<ScreenState> screen;
  std::chrono::microseconds upstream_latency{0};
  bool audited = false;  // its audit record is appended
};

// A request-side stage.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string_view name() const = 0;
  virtual Decision OnRequest(Exchange& ex) = 0;
};

// A response-side stage. It sees every streamed SSE event, or the whole body
// of a non-streamed response (bounded by server.max_response_bytes), before
// the client does. `data` may be rewritten in place (masking); a deny ends
// the response with the protocol's error.
class ResponseStage {
 public:
  virtual ~ResponseStage() = default;
  virtual std::string_view name() const = 0;
  virtual Decision OnEvent(Exchange& ex, std::string_view event, std::string& data) { return Decision::Continue(); }
  virtual Decision OnBody(Exchange& ex, std::string& body) { return Decision::Continue(); }
};

enum class Phase { kAuthenticate, kAuthorize, kAdmit, kScreenRequest };

struct Ports {
  uint16_t proxy = 0;
  uint16_t admin = 0;
};

// A plain HTTP endpoint next to the LLM API (OAuth2, JWKS, admin REST).
struct HttpRequest {
  std::string_view method;
  std::string_view path;
  std::string_view query;  // after '?', "" if none
  const Headers* headers = nullptr;
  std::string_view body;
  std::string_view remote;
};
struct HttpResponse {
  int status = 200;
  Headers headers;  // Content-Type defaults to application/json
  std::string body;
};
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
enum class Listener { kProxy, kAdmin };

struct GatewayOptions {
  std::string version = "dev";
  std::string commit = "unknown";
  const Clock* clock = nullptr;     // default: system clock
  std::shared_ptr<EventSink> events;  // access events; default: per log.access_log
  // When set: the authenticate stage runs first on every LLM request, and
  // the proxy listener serves /oauth2/* and /.well-known/* from it.
  std::shared_ptr<identity::Identity> identity;
  // When set: the authorize stage runs after authenticate, with the checks
  // of the config's `authz` section (when authz.enabled).
  std::shared_ptr<authz::Service> authz;
  // The request screen's rules (config `guard`; it screens only when
  // guard.enabled, and refuses requests if enabled without rules);
  // Gateway::SetGuardRules swaps them on reload.
  std::shared_ptr<const guard::RuleSet> guard_rules;
  // When set (config `audit`, enabled by default in `aigis serve`): one
  // record per exchange, per admin call that changes something (admin
  // listener, and the proxy's identity endpoints) and per config reload.
  // While the log cannot take records, requests are refused (503).
  std::shared_ptr<audit::Log> audit;
  // When set: the MCP gateway serves /mcp and /mcp/<server> (config `mcp`,
  // docs/mcp.md), with tools pinned here.
  std::shared_ptr<registry::ToolPins> tool_pins;
};

class Gateway {
 public:
  // Compiles the config (upstream URLs, TLS files) or fails with a message.
  static Result<std::unique_ptr<Gateway>> Create(const config::Config& config, GatewayOptions options);
  ~Gateway();

  // Before Start(): appends a stage to a phase (stages run in the order added).
  void AddStage(Phase phase, std::shared_ptr<Stage> stage);
  void AddResponseStage(std::shared_ptr<ResponseStage> stage);
  // Before Start(): serves `path` on a listener. A path ending in '/' is a
  // prefix. `blocking` handlers (store writes) run on the gateway's blocking
  // thread pool, never on an I/O thread.
  void Handle(Listener listener, std::string path, HttpHandler handler, bool blocking);
  // Fetches a URL with the gateway's HTTP client (GET, bounded time and
  // size). Blocks the calling thread: never call it from an I/O thread.
  Result<std::string> FetchBlocking(const std::string& url, std::chrono::milliseconds timeout);
  // Sends one request (any method) the same way; the response whatever its
  // status (body bounded to 1 MiB). For the audit log's webhook sink.
  Result<HttpResponse> SendBlocking(std::string_view method, const std::string& url, const Headers& headers,
                                    std::string body, std::chrono::milliseconds timeout);

  // Starts the I/O threads and both listeners; returns the bound ports.
  Result<Ports> Start();
  // Swaps in a new config if it compiles; the old one keeps serving otherwise.
  // Listener addresses and thread count need a restart (reported, not applied).
  Status Reload(const config::Config& next);
  // Swaps in new guard rules (a reload that compiled them).
  void SetGuardRules(std::shared_ptr<const guard::RuleSet> rules);
  // Counts a reload whose file did not even parse (the caller logged why).
  // (`why` goes to the audit record.)
  void NoteReloadFailure(std::string_view why = "");
  // Graceful stop: refuse new connections, let in-flight exchanges finish
  // until `deadline`, then close what is left and stop the threads.
  void Shutdown(std::chrono::milliseconds deadline);

  std::string RenderMetrics() const;
  int64_t inflight() const;
  std::shared_ptr<const config::Config> config() const;

 private:
  Gateway();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aigis::gateway

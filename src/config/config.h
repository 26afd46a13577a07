// config: aigis.yaml parsed once into typed, validated, immutable structs.
//
// Every key has a documented default (docs/config.md is the reference, and
// each field below names its default). Loading never stops at the first
// problem: it collects every error as "file:line: message" so that
// `aigis check-config` shows them all at once. Unknown keys are errors.
//
// Secrets are written as ${env:NAME} or ${file:PATH} (PATH relative to the
// config file) and held in Secret, which has no printer: they never reach a log.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/core.h"

namespace aigis::config {

using std::chrono::milliseconds;

// A value that must never be logged. Only Reveal() gives the text.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string v) : value_(std::move(v)) {}
  const std::string& Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  bool operator==(const Secret&) const = default;

 private:
  std::string value_;
};

struct TlsServerConfig {
  std::string cert_file;  // PEM certificate chain (required when tls is set)
  std::string key_file;   // PEM private key (required when tls is set)
  bool operator==(const TlsServerConfig&) const = default;
};

struct ListenerConfig {
  std::string host;  // IP literal to bind
  uint16_t port = 0; // 0 picks a free port (tests)
  std::optional<TlsServerConfig> tls;
  bool operator==(const ListenerConfig&) const = default;
};

struct ServerConfig {
  int threads = 0;                           // I/O threads; 0 = one per core
  size_t max_header_bytes = 16 * 1024;       // request line + headers
  size_t max_body_bytes = 10 * 1024 * 1024;  // request body
  size_t max_response_bytes = 64 * 1024 * 1024;  // buffered (non-streamed) upstream body
  size_t max_sse_event_bytes = 1024 * 1024;  // one streamed event
  size_t max_connections = 10000;            // concurrent client connections
  milliseconds header_timeout{10'000};       // to read a request's headers
  milliseconds body_timeout{30'000};         // to read a request's body
  milliseconds idle_timeout{60'000};         // keep-alive idle connection
  milliseconds write_timeout{30'000};        // one write to a client
  milliseconds shutdown_timeout{15'000};     // drain in-flight on SIGTERM
};

struct LogConfig {
  std::string level = "info";        // trace|debug|info|warn|error
  std::string access_log = "stdout"; // stdout | off | a file path
};

struct ReloadConfig {
  bool watch = true;             // reload when the file changes (and on SIGHUP)
  milliseconds interval{1'000};  // how often the file is checked
};

enum class Provider { kOpenAI, kAnthropic, kEcho };
std::string_view ProviderName(Provider p);

struct UpstreamTlsConfig {
  bool verify = true;       // verify the server certificate and host name
  std::string ca_file;      // extra CA bundle (PEM); system CAs are always used
  std::string server_name;  // SNI / verified name; default: the URL's host
  bool operator==(const UpstreamTlsConfig&) const = default;
};

struct UpstreamConfig {
  std::string name;
  Provider provider = Provider::kOpenAI;
  // Base URL the client SDK would use, including the version prefix:
  // default https://api.openai.com/v1 (openai), https://api.anthropic.com/v1
  // (anthropic). A request for /v1/<x> goes to <base_url>/<x>.
  std::string base_url;
  Secret api_key;                           // injected by aigis; clients never send it
  std::map<std::string, Secret> headers;    // extra headers sent upstream
  std::string anthropic_version = "2023-06-01";  // sent when the client did not
  milliseconds connect_timeout{5'000};
  milliseconds response_timeout{120'000};   // until response headers arrive
  milliseconds idle_timeout{120'000};       // between body bytes
  size_t max_idle_connections = 64;         // per I/O thread
  UpstreamTlsConfig tls;
  bool send_principal = false;  // add X-Aigis-Principal (signed JWS of the caller)
  int line = 0;                             // where it was declared
};

struct RouteConfig {
  std::string name;
  std::vector<std::string> paths;      // default: every LLM endpoint
  std::vector<std::string> models;     // glob patterns; default ["*"]
  std::vector<std::string> upstreams;  // tried in order (fallback)
  bool anonymous = false;  // callers without credentials are admitted (explicit opt-in)
  int line = 0;
};

struct TrustedIssuerConfig {
  std::string name;
  std::string issuer;     // exact "iss" of the IdP's tokens (required)
  std::string jwks_url;   // required
  std::vector<std::string> audiences;  // required: tokens must name one
  std::vector<std::string> algorithms{"RS256", "ES256", "EdDSA"};
  milliseconds clock_skew{60'000};
  std::string tenant = "default";  // tenant of the users it vouches for
  std::string subject_claim = "sub";
  std::string email_claim = "email";
  std::string groups_claim = "groups";
  std::string scope_claim = "scope";
  std::vector<std::string> default_scopes;  // when a token carries no scope
  milliseconds refresh_interval{300'000};
  milliseconds max_stale{3'600'000};  // keys served while the IdP is down
  milliseconds min_refetch_interval{10'000};  // on unknown kid
  int line = 0;
};

struct BootstrapAgentConfig {
  std::string id;  // created on first start when it does not exist
  std::string name;
  std::vector<std::string> scopes;
  std::string api_key_file;  // its API key is written here (mode 0600)
};

struct IdentityConfig {
  std::string issuer;  // default: http(s)://<proxy listener address>
  std::string audience = "aigis";
  Secret master_key;   // default ${env:AIGIS_MASTER_KEY}; required
  std::string signing_algorithm = "EdDSA";  // EdDSA | ES256 | RS256
  milliseconds token_ttl{900'000};
  milliseconds rotate_every{30LL * 24 * 3'600'000};
  milliseconds clock_skew{60'000};
  milliseconds secret_grace{24LL * 3'600'000};
  milliseconds assertion_max_lifetime{300'000};
  int max_delegation_depth = 3;
  // Client-supplied identity headers removed before forwarding
  // (case-insensitive globs).
  std::vector<std::string> strip_headers{"X-Aigis-*", "X-Forwarded-User", "X-Forwarded-Email",
                                         "X-Forwarded-Groups", "X-Auth-Request-*", "X-Remote-User"};
  milliseconds principal_header_ttl{60'000};
  std::vector<TrustedIssuerConfig> trusted_issuers;
  std::optional<BootstrapAgentConfig> bootstrap_agent;
};

// One relationship check of the authorize stage (docs/authz.md). The fields
// are templates: {principal.id}, {principal.kind}, {principal.tenant},
// {subject}, {request.model}, {request.upstream_model}, {route}. {subject}
// stands for the caller as "type:id" (its kind is the type: agent:<id>,
// user:<sub>) and, when it acts on behalf of someone, each actor of its
// `act` chain as agent:<id>: the check is repeated for each and all must
// pass.
struct AuthzCheckConfig {
  std::string user = "{subject}";
  std::string relation;
  std::string object;
  // Added to this check only: "object#relation@user" templates.
  std::vector<std::string> contextual_tuples;
  int line = 0;
  bool operator==(const AuthzCheckConfig&) const = default;
};

struct AuthzConfig {
  bool enabled = false;         // when on, every request needs its grants
  std::string store = "aigis";  // OpenFGA store (by name) in each tenant
  std::string model_file;       // "" = the built-in rules/authz/model.fga
  // Written at start into the default tenant's store when missing:
  // "object#relation@user".
  std::vector<std::string> seed_tuples;
  // Checks per route kind. Kinds: llm (default: {subject} can_use
  // llm_model:{request.model}).
  std::map<std::string, std::vector<AuthzCheckConfig>> checks;
};

// A guard policy for some routes and/or principals: the first policy that
// matches an exchange replaces the guard-wide mode and thresholds.
struct GuardPolicyConfig {
  std::string name;
  std::vector<std::string> routes;      // route names; empty = any route
  std::vector<std::string> principals;  // globs on "kind:id" (agent:ci-*); empty = anyone
  std::string mode = "enforce";
  double block_threshold = 0.70;
  double alert_threshold = 0.30;
  std::vector<std::string> disabled_rules;  // rule ids or categories not applied
  int line = 0;
  bool operator==(const GuardPolicyConfig&) const = default;
};

// An external guard model (OpenAI-compatible), asked after the rules pass.
struct GuardClassifierConfig {
  std::string url;               // "" = none; .../v1/moderations or .../v1/chat/completions
  std::string kind = "moderation";  // moderation (OpenAI moderations) | chat (Llama Guard: "safe" / "unsafe\nS1")
  std::string model;             // sent as "model"
  Secret api_key;                // sent as a bearer token
  milliseconds timeout{2'000};
  std::string failure_mode = "closed";  // closed: an error or timeout blocks (503) | open: it passes, recorded
  bool operator==(const GuardClassifierConfig&) const = default;
};

struct GuardConfig {
  bool enabled = false;          // screen requests with the rule packs
  std::string mode = "enforce";  // enforce | monitor (log only) | off
  bool builtin_rules = true;     // the packs shipped in rules/guard (compiled in)
  std::vector<std::string> rules;  // more pack files or directories (relative to the config file)
  double block_threshold = 0.70;   // risk score that blocks
  double alert_threshold = 0.30;   // risk score that alerts
  bool screen_responses = true;    // scan (and mask) what upstreams answer, streamed too
  std::vector<GuardPolicyConfig> policies;
  GuardClassifierConfig classifier;
  bool operator==(const GuardConfig&) const = default;
};

// The audit log (src/audit, docs/audit.md): every exchange and admin
// action, in a Merkle tree per tenant with signed checkpoints.
// Where audit records also go, once durable (docs/audit.md, "Sinks").
struct AuditSinkConfig {
  std::string type;                    // file | webhook | syslog
  std::string path;                    // file: JSON lines (relative to the config file)
  size_t max_bytes = 100u << 20;       // file: rotate beyond this
  int keep = 5;                        // file: rotated files kept
  std::string url;                     // webhook: http(s) URL, POSTed batches
  Secret secret;                       // webhook: HMAC-SHA256 key of X-Aigis-Signature
  milliseconds timeout{5'000};         // webhook: per POST
  std::string address;                 // syslog: udp://ip:port | tcp://ip:port
  std::string app_name = "aigis";      // syslog APP-NAME
  int facility = 16;                   // syslog facility (16 = local0)
  size_t max_queue = 100'000;          // records waiting; beyond, dropped and counted
  bool operator==(const AuditSinkConfig&) const = default;
};

struct AuditConfig {
  bool enabled = true;
  // async: the response does not wait (the record is durable within one
  // group commit); sync: the response completes only once its record is
  // durable. Applies per exchange, so a reload changes it.
  std::string mode = "async";
  std::string origin = "aigis.local/audit";  // checkpoint origin prefix and key name (restart)
  milliseconds checkpoint_interval{10'000};   // sign a checkpoint this often when the log grew (restart)
  size_t max_queue = 200'000;                 // records waiting for the disk; beyond, requests get 503 (restart)
  bool capture_bodies = false;                // also store the (masked) request and response bodies
  // async mode: a record may wait this long to be written, and again to be
  // synced, so that one write and one fdatasync cover many (restart).
  milliseconds async_linger{5};
  std::vector<AuditSinkConfig> sinks;         // (restart)
  bool operator==(const AuditConfig&) const = default;
};

// One MCP server behind aigis (docs/mcp.md): over Streamable HTTP (`url`)
// or spawned by aigis and spoken to over stdio (`command`). Exactly one of
// the two.
struct McpServerConfig {
  std::string name;  // [a-z0-9_-]+, without the separator: /mcp/<name>, tools "<name><sep><tool>"
  std::string url;   // http(s) URL of its MCP endpoint
  std::map<std::string, Secret> headers;  // sent with every request (e.g. its API key)
  UpstreamTlsConfig tls;
  std::string command;                      // stdio: program (searched in PATH)
  std::vector<std::string> args;            // stdio: its arguments
  std::map<std::string, Secret> env;        // stdio: its environment (besides PATH, HOME, LANG)
  std::string cwd;                          // stdio: working directory ("" = aigis's)
  milliseconds restart_backoff{250};        // stdio: first restart delay, doubled per failed start
  milliseconds max_restart_backoff{30'000};
  bool auto_approve = false;  // tools seen for the first time are callable without an admin's approval
  milliseconds connect_timeout{5'000};
  milliseconds timeout{60'000};  // one request, until its answer
  int line = 0;
  bool operator==(const McpServerConfig&) const = default;
};

struct McpConfig {
  std::string separator = "__";   // federated /mcp: "<server><separator><tool>"
  size_t page_size = 100;         // items per page of aigis's list answers
  size_t max_sessions = 10'000;   // client sessions held; beyond, the idlest is ended
  milliseconds session_idle_timeout{30 * 60'000};
  milliseconds catalog_ttl{30'000};  // a server's tool list is re-read at least this often for calls
  std::vector<McpServerConfig> servers;
  const McpServerConfig* Find(std::string_view name) const;
  bool operator==(const McpConfig&) const = default;
};

// The template variables an authz check may use.
const std::vector<std::string>& AuthzTemplateVariables();

struct Config {
  std::string source;  // file the config came from ("" = built-in defaults)
  ListenerConfig proxy{"127.0.0.1", 8080, std::nullopt};
  ListenerConfig admin{"127.0.0.1", 8081, std::nullopt};
  ServerConfig server;
  std::string data_dir = "./data";
  LogConfig log;
  ReloadConfig reload;
  std::vector<UpstreamConfig> upstreams;           // default: one "echo" upstream
  std::map<std::string, std::string> model_aliases;  // public name -> model sent upstream
  std::vector<RouteConfig> routes;                 // default: "*" -> echo
  IdentityConfig identity;
  AuthzConfig authz;
  GuardConfig guard;
  AuditConfig audit;
  McpConfig mcp;

  const UpstreamConfig* FindUpstream(std::string_view name) const;
};

// The endpoints a route's `paths` may name.
const std::vector<std::string>& KnownLlmPaths();

struct LoadResult {
  std::optional<Config> config;     // set when errors is empty
  std::vector<std::string> errors;  // "file:line: message", in file order
};

// Parses and validates a config file. Never throws.
LoadResult LoadFile(const std::string& path);
// Same, from text (name is used in error messages; relative ${file:} paths
// resolve against base_dir).
LoadResult LoadString(const std::string& text, const std::string& name, const std::string& base_dir = ".");
// The built-in defaults (what `aigis serve` uses with no --config).
Config Defaults();

// Cheap change detection for hot reload (mtime, size, inode).
struct FileStamp {
  int64_t mtime_ns = 0;
  int64_t size = -1;
  uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp StampOf(const std::string& path);

}  // namespace aigis::config

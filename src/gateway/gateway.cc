// The gateway: listeners, the per-exchange pipeline, forwarding with
// fallback, streamed response relay, record, reload and shutdown.
#include "net/pch.h"
#include "gateway/gateway.h"

#include <boost/asio/thread_pool.hpp>
#include <openssl/rand.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <future>
#include <thread>

#include "audit/audit.h"
#include "crypto/crypto.h"
#include "gateway/authorize.h"
#include "gateway/llm.h"
#include "gateway/record.h"
#include "gateway/screen.h"
#include "gateway/mcp.h"
#include "gateway/metrics.h"
#include "net/net.h"

namespace aigis::gateway {

namespace asio = boost::asio;
namespace json = boost::json;
using net::Task;
using identity::OAuthResponse;

std::string_view EndpointName(Endpoint e) {
  switch (e) {
    case Endpoint::kChatCompletions: return "chat.completions";
    case Endpoint::kResponses: return "responses";
    case Endpoint::kEmbeddings: return "embeddings";
    case Endpoint::kModels: return "models";
    case Endpoint::kMessages: return "messages";
    case Endpoint::kMcp: return "mcp";
  }
  return "unknown";
}

std::string_view ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kOpenAI: return "openai";
    case Protocol::kAnthropic: return "anthropic";
    case Protocol::kMcp: return "mcp";
  }
  return "unknown";
}

namespace {

// ------------------------------------------------------------- Runtime ----
// The compiled, immutable form of a Config: what the request path reads.

struct UpstreamRt {
  const config::UpstreamConfig* cfg = nullptr;
  net::Endpoint endpoint;
  net::ClientOptions client;
};

struct RouteRt {
  const config::RouteConfig* cfg = nullptr;
  std::vector<const UpstreamRt*> chain;
  bool Serves(std::string_view path) const {
    for (const auto& p : cfg->paths) {
      if (p == path) return true;
    }
    return false;
  }
};

struct ClassifierRt {
  net::Endpoint endpoint;
  net::ClientOptions client;
};

struct Runtime {
  config::Config config;
  std::optional<ClassifierRt> classifier;  // guard.classifier
  std::vector<UpstreamRt> upstreams;
  std::vector<RouteRt> routes;
  std::vector<std::string> strip_globs;  // identity.strip_headers, lower case
  bool models_anonymous = false;         // every route admits anonymous callers
  WallTime loaded_at;

  // Client-supplied identity headers never reach an upstream.
  bool StripHeader(std::string_view name) const {
    std::string lower = ToLowerAscii(name);
    for (const auto& g : strip_globs) {
      if (GlobMatch(g, lower)) return true;
    }
    return false;
  }
};

bool Speaks(config::Provider provider, Protocol p) {
  switch (provider) {
    case config::Provider::kEcho: return true;
    case config::Provider::kOpenAI: return p == Protocol::kOpenAI;
    case config::Provider::kAnthropic: return p == Protocol::kAnthropic;
  }
  return false;
}

// First route that serves the path, whose model patterns match, and that has
// at least one upstream able to speak the protocol.
const RouteRt* MatchRoute(const Runtime& rt, std::string_view path, std::string_view model, Protocol protocol) {
  for (const auto& r : rt.routes) {
    if (!r.Serves(path)) continue;
    bool speaks = false;
    for (const auto* u : r.chain) speaks = speaks || Speaks(u->cfg->provider, protocol);
    if (!speaks) continue;
    for (const auto& pattern : r.cfg->models) {
      if (GlobMatch(pattern, model)) return &r;
    }
  }
  return nullptr;
}

Result<std::shared_ptr<const Runtime>> Compile(const config::Config& cfg, const Clock& clock) {
  auto rt = std::make_shared<Runtime>();
  rt->config = cfg;
  rt->loaded_at = clock.Now();
  rt->upstreams.reserve(rt->config.upstreams.size());
  for (const auto& u : rt->config.upstreams) {
    UpstreamRt ur;
    ur.cfg = &u;
    if (u.provider != config::Provider::kEcho) {
      auto ep = net::Endpoint::Parse(u.base_url);
      if (!ep.ok()) return InvalidArgument(fmt::format("upstream '{}': {}", u.name, ep.status().message()));
      ur.endpoint = *ep;
    }
    if (!u.tls.ca_file.empty() && ::access(u.tls.ca_file.c_str(), R_OK) != 0) {
      return InvalidArgument(fmt::format("upstream '{}': cannot read tls.ca_file '{}'", u.name, u.tls.ca_file));
    }
    ur.client.connect_timeout = u.connect_timeout;
    ur.client.response_timeout = u.response_timeout;
    ur.client.idle_timeout = u.idle_timeout;
    ur.client.max_idle_connections = u.max_idle_connections;
    ur.client.tls_verify = u.tls.verify;
    ur.client.ca_file = u.tls.ca_file;
    ur.client.server_name = u.tls.server_name;
    rt->upstreams.push_back(std::move(ur));
  }
  for (const auto& r : rt->config.routes) {
    RouteRt rr;
    rr.cfg = &r;
    for (const auto& name : r.upstreams) {
      for (const auto& u : rt->upstreams) {
        if (u.cfg->name == name) rr.chain.push_back(&u);
      }
    }
    if (rr.chain.empty()) return InvalidArgument(fmt::format("route '{}' has no upstream", r.name));
    rt->routes.push_back(std::move(rr));
  }
  for (const auto& g : rt->config.identity.strip_headers) rt->strip_globs.push_back(ToLowerAscii(g));
  if (const auto& k = rt->config.guard.classifier; rt->config.guard.enabled && !k.url.empty()) {
    auto ep = net::Endpoint::Parse(k.url);
    if (!ep.ok()) return InvalidArgument(fmt::format("guard.classifier.url: {}", ep.status().message()));
    ClassifierRt c;
    c.endpoint = *ep;
    c.client.connect_timeout = c.client.response_timeout = c.client.idle_timeout = k.timeout;
    rt->classifier = std::move(c);
  }
  rt->models_anonymous = !rt->routes.empty();
  for (const auto& r : rt->routes) rt->models_anonymous = rt->models_anonymous && r.cfg->anonymous;
  return std::shared_ptr<const Runtime>(std::move(rt));
}

// --------------------------------------------------------- access log ----

// Writes events as JSON lines from a background thread (spdlog async, with
// a bounded queue that blocks rather than drops: the access log is a record).
// The access log: JSON lines appended to a file (or stdout) by a thread of
// its own. Emit appends to a buffer; the thread writes whatever accumulated
// with one write(2). While busy it looks at the buffer every 5 ms instead of
// being woken per line (on these machines a wake-up costs more than the
// line: written by hand for that, where spdlog's async logger signals its
// thread for every message); when idle, the next line wakes it. Lines are
// never dropped: past 16 MiB pending, Emit waits for the thread.
class JsonLinesSink final : public EventSink {
 public:
  static Result<std::shared_ptr<JsonLinesSink>> Open(const std::string& target) {
    int fd = target == "stdout" ? ::fcntl(1, F_DUPFD_CLOEXEC, 3)
                                : ::open(target.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return InvalidArgument(fmt::format("cannot open access log '{}': {}", target, std::strerror(errno)));
    return std::make_shared<JsonLinesSink>(fd, target);
  }
  JsonLinesSink(int fd, std::string name) : fd_(fd), name_(std::move(name)), thread_([this] { Run(); }) {}
  ~JsonLinesSink() override {
    {
      std::lock_guard l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    ::close(fd_);
  }

  void Emit(const Event& e) override {
    json::object o;
    o["time"] = FormatRfc3339(e.time);
    o["kind"] = e.kind;
    o["tenant"] = e.tenant;
    o["request_id"] = e.request_id;
    for (const auto& [k, v] : e.fields) {
      std::visit([&](const auto& x) { o[k] = x; }, v);
    }
    std::string line = json::serialize(o);
    line.push_back('\n');
    bool wake;
    {
      std::unique_lock l(mu_);
      room_cv_.wait(l, [&] { return pending_.size() < kMaxPending || stop_; });
      wake = !polling_ && pending_.empty();
      pending_ += line;
    }
    if (wake) cv_.notify_one();
  }

 private:
  static constexpr size_t kMaxPending = 16u << 20;
  static constexpr size_t kWriteAt = 256u << 10;  // pending bytes that wake a polling writer early

  void Run() {
    std::string out;
    for (;;) {
      {
        std::unique_lock l(mu_);
        if (polling_) {
          cv_.wait_for(l, std::chrono::milliseconds(5), [&] { return stop_ || pending_.size() >= kWriteAt; });
          if (pending_.empty()) polling_ = false;
        }
        if (!polling_) cv_.wait(l, [&] { return stop_ || !pending_.empty(); });
        if (pending_.empty() && stop_) return;
        out.swap(pending_);
        polling_ = true;
      }
      room_cv_.notify_all();
      for (size_t done = 0; done < out.size();) {
        ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          spdlog::error("access log '{}': write failed: {}", name_, std::strerror(errno));
          break;
        }
        done += static_cast<size_t>(n);
      }
      out.clear();
    }
  }

  int fd_;
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_, room_cv_;
  std::string pending_;
  bool polling_ = false;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is set up
};

class NullSink final : public EventSink {
 public:
  void Emit(const Event&) override {}
};

// ------------------------------------------------------------- helpers ----

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != ':') return false;
  }
  return true;
}

// Request ids must be unique and hard to guess, not secret keys. A per-worker
// SplitMix64 stream seeded from the OS CSPRNG costs nothing per request,
// where RAND_bytes costs a getpid() syscall (OpenSSL's fork check) each time.
class RequestIdGenerator {
 public:
  RequestIdGenerator() {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&state_), sizeof state_) != 1) {
      state_ = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               reinterpret_cast<uintptr_t>(this);
    }
  }
  std::string Next() {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s(32, '0');
    for (int half = 0; half < 2; ++half) {
      uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      z ^= z >> 31;
      for (int i = 0; i < 16; ++i) s[static_cast<size_t>(half * 16 + i)] = kHex[(z >> (60 - 4 * i)) & 15];
    }
    return s;
  }

 private:
  uint64_t state_ = 0;
};

// Headers a client sends that must not reach an upstream: the client's own
// credentials (the gateway injects the provider's), framing, and encodings
// the response screen could not read.
bool DropRequestHeader(std::string_view name) {
  static constexpr std::string_view kDrop[] = {"host", "content-length", "authorization", "x-api-key", "api-key",
                                               "cookie", "x-request-id", "accept-encoding", "expect",
                                               "forwarded", "x-forwarded-for", "x-forwarded-host",
                                               "x-forwarded-proto", "x-real-ip"};
  for (auto d : kDrop) {
    if (EqualsIgnoreCase(name, d)) return true;
  }
  return false;
}

bool DropResponseHeader(std::string_view name) {
  static constexpr std::string_view kDrop[] = {"content-length", "x-request-id", "set-cookie", "server", "date"};
  for (auto d : kDrop) {
    if (EqualsIgnoreCase(name, d)) return true;
  }
  return false;
}

// The built-in provider, shaped like an upstream response.
class EchoResponse final : public net::UpstreamResponse {
 public:
  explicit EchoResponse(llm::EchoReply reply) : chunks_(std::move(reply.chunks)) {
    status = reply.status;
    headers.Add("Content-Type", reply.content_type);
  }
  Task<Result<std::string_view>> Read() override {
    if (next_ >= chunks_.size()) co_return std::string_view();
    co_return std::string_view(chunks_[next_++]);
  }

 private:
  std::vector<std::string> chunks_;
  size_t next_ = 0;
};

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// RFC 6750 §3: error_description is limited to printable ASCII without '"'
// and '\\'.
std::string ChallengeText(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) {
    if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') out.push_back(c);
  }
  return out;
}

// The authenticate stage: bearer JWT (aigis or a trusted IdP) or API key
// (Authorization: Bearer, or x-api-key as Anthropic clients send it).
class AuthenticateStage final : public Stage {
 public:
  explicit AuthenticateStage(std::shared_ptr<identity::Identity> id) : id_(std::move(id)) {}
  std::string_view name() const override { return "authenticate"; }

  Decision OnRequest(Exchange& ex) override {
    std::string_view auth, key;
    int auth_count = 0, key_count = 0;
    if (ex.request_headers) {
      for (const auto& h : *ex.request_headers) {
        if (EqualsIgnoreCase(h.name, "authorization")) {
          auth = h.value;
          ++auth_count;
        } else if (EqualsIgnoreCase(h.name, "x-api-key")) {
          key = h.value;
          ++key_count;
        }
      }
    }
    // Two credentials of one kind: a proxy in front may read the other one,
    // so neither is trusted.
    if (auth_count > 1 || key_count > 1) {
      return Challenge("invalid_request", "send one Authorization or x-api-key header, not several");
    }
    std::string_view bearer;
    if (auth_count == 1) {
      std::string_view scheme = auth.substr(0, auth.find(' '));
      if (!EqualsIgnoreCase(scheme, "bearer")) {
        return Challenge("invalid_request", "the Authorization header must use the Bearer scheme");
      }
      bearer = TrimWhitespace(auth.substr(scheme.size()));
      if (bearer.empty()) return Challenge("invalid_request", "the Authorization header has an empty bearer token");
    }
    if (key_count == 1 && TrimWhitespace(key).empty()) {
      return Challenge("invalid_request", "the x-api-key header is empty");
    }
    key = TrimWhitespace(key);
    if (bearer.empty() && key.empty()) {
      if (ex.route_anonymous) return Decision::Continue();
      return Challenge("", "authentication required: send 'Authorization: Bearer <access token or API key>' "
                           "or 'x-api-key: <API key>'");
    }
    auto p = id_->Authenticate(bearer, key);
    if (!p.ok()) return Challenge("invalid_token", p.status().message());
    ex.principal = std::move(p).value();
    ex.tenant = ex.principal.tenant;
    return Decision::Continue();
  }

 private:
  static Decision Challenge(std::string_view error, std::string_view message) {
    Decision d = Decision::Deny(401, error.empty() ? "authentication_required" : std::string(error),
                                std::string(message));
    std::string value = "Bearer realm=\"aigis\"";
    if (!error.empty()) {
      value += fmt::format(", error=\"{}\", error_description=\"{}\"", error, ChallengeText(message));
    }
    d.headers.push_back({"WWW-Authenticate", std::move(value)});
    return d;
  }
  std::shared_ptr<identity::Identity> id_;
};

struct Mount {
  std::string path;  // exact, or a prefix when it ends with '/'
  HttpHandler handler;
  bool blocking = false;
  Listener listener = Listener::kProxy;
  bool Matches(std::string_view p) const {
    return path.back() == '/' ? StartsWith(p, path) : p == path;
  }
};

}  // namespace

// -------------------------------------------------------------- Impl ------

struct Gateway::Impl {
  Impl(GatewayOptions o, std::shared_ptr<const Runtime> rt, const config::Config& cfg)
      : options(std::move(o)),
        clock(options.clock ? options.clock : &system_clock),
        pool(cfg.server.threads),
        metrics(pool.size()),
        runtime(std::move(rt)) {
    for (int i = 0; i < pool.size(); ++i) clients.push_back(std::make_unique<net::HttpClient>(pool.context(i), &client_stats));
    request_ids.resize(static_cast<size_t>(pool.size()));
  }

  std::shared_ptr<const Runtime> Snapshot() const { return runtime.load(std::memory_order_acquire); }

  Task<void> HandleProxy(net::Request& req, net::ResponseWriter& w);
  Task<void> HandleExchange(Exchange& ex, const Runtime& rt, net::Request& req, net::ResponseWriter& w);
  Task<void> HandleAdmin(net::Request& req, net::ResponseWriter& w);
  Task<void> Forward(Exchange& ex, const llm::RequestInfo& info, const RouteRt& route, const Runtime& rt,
                     const net::Request& req, std::string body, net::ResponseWriter& w);
  Task<void> Relay(Exchange& ex, const Runtime& rt, std::unique_ptr<net::UpstreamResponse> resp,
                   net::ResponseWriter& w);
  Task<void> SendError(Exchange& ex, net::ResponseWriter& w, int status, std::string_view code,
                       std::string_view message, const std::vector<Header>* extra = nullptr);
  Task<void> SendDeny(Exchange& ex, net::ResponseWriter& w, const Decision& d) {
    return SendError(ex, w, d.status, d.code, d.reason, &d.headers);
  }
  const Mount* FindMount(Listener l, std::string_view path) const {
    for (const auto& m : mounts[static_cast<size_t>(l)]) {
      if (m.Matches(path)) return &m;
    }
    return nullptr;
  }
  Task<void> Serve(const Mount& m, net::Request& req, net::ResponseWriter& w);
  Task<void> SendModels(Exchange& ex, const Runtime& rt, const net::Request& req, net::ResponseWriter& w);
  class AuditWriter;
  void Record(Exchange& ex, int worker, AuditWriter* aw);
  // Appends the exchange's record (once); its index.
  Result<uint64_t> AppendRecord(Exchange& ex, int status, AuditWriter* aw);
  // In sync mode, before the response's last bytes: the record, durable.
  Task<Status> Commit(Exchange& ex, AuditWriter& aw);
  Result<uint64_t> RecordAction(ActionRecord a);
  void RecordReload(bool ok, std::string_view detail) {
    ActionRecord a;
    a.kind = "config";
    a.request_id = request_ids[0].Next();
    a.time = clock->Now();
    a.status = ok ? 200 : 400;
    a.action = ok ? "config reload" : "config reload rejected";
    a.principal = "aigis";
    a.detail = std::string(detail);
    (void)RecordAction(std::move(a));
  }
  std::string RenderMetrics() const;
  // True (and noted on the exchange) once the client has gone away.
  static bool ClientLeft(Exchange& ex, net::ResponseWriter& w) {
    if (!w.cancellation().cancelled()) return false;
    ex.client_gone = true;
    return true;
  }
  bool RunStages(Exchange& ex, const std::vector<std::shared_ptr<Stage>>& stages, Decision& deny);
  Task<bool> AskClassifier(Exchange& ex, const Runtime& rt, int worker, Decision& deny);

  std::unique_ptr<McpGateway> MakeMcp() {
    McpHooks h;
    h.authz = options.authz;
    h.pins = options.tool_pins;
    h.rules = [this] { return screen->rules(); };
    h.authenticate = [this](Exchange& ex, Decision& deny) {
      return RunStages(ex, stages[static_cast<size_t>(Phase::kAuthenticate)], deny);
    };
    h.blocking = [this](std::function<void()> fn) -> Task<void> {
      // (No temporary with a destructor in the co_await: GCC 12.)
      auto run = [&fn]() -> Task<void> {
        fn();
        co_return;
      };
      co_await asio::co_spawn(blocking.get_executor(), run, asio::use_awaitable);
    };
    h.alert = [this](const Exchange& ex, const std::string& kind, const std::string& detail) {
      ActionRecord a;
      a.kind = "alert";
      a.tenant = ex.tenant;
      a.request_id = ex.request_id;
      a.time = clock->Now();
      a.status = 200;
      a.action = kind;
      a.principal = "aigis";
      a.detail = detail;
      spdlog::warn("alert {} (request {}): {}", kind, ex.request_id, detail);
      if (events_enabled) {
        Event e;
        e.kind = "alert";
        e.time = a.time;
        e.tenant = ex.tenant;
        e.request_id = ex.request_id;
        e.Set("alert", kind).Set("detail", detail);
        events->Emit(e);
      }
      if (audit) (void)RecordAction(std::move(a));
    };
    auto id = options.identity;
    h.issuer = [id] { return id ? id->issuer() : std::string(); };
    h.version = options.version;
    h.metrics = &metrics;
    h.clock = clock;
    return std::make_unique<McpGateway>(std::move(h));
  }

  GatewayOptions options;
  SystemClock system_clock;
  const Clock* clock;
  // Declared before the pool: coroutine frames destroyed with the pool's
  // io_contexts may still release upstream connections that count here.
  net::ClientStats client_stats;
  net::IoPool pool;
  Metrics metrics;
  std::vector<std::unique_ptr<net::HttpClient>> clients;  // one per worker
  std::vector<RequestIdGenerator> request_ids;            // one per worker
  std::atomic<std::shared_ptr<const Runtime>> runtime;
  std::shared_ptr<EventSink> events;
  std::shared_ptr<audit::Log> audit;  // null: no records (tests, check-config)
  bool events_enabled = true;  // false with log.access_log: off and no injected sink
  std::unique_ptr<net::Server> proxy, admin;
  std::atomic<bool> ready{false};

  std::array<std::vector<std::shared_ptr<Stage>>, 4> stages;  // by Phase
  std::shared_ptr<AuthorizeStage> authorize;                  // also in stages, when authz is set
  std::shared_ptr<ScreenRequestStage> screen;                 // also in stages
  std::unique_ptr<McpGateway> mcp;                            // when options.tool_pins is set
  std::vector<std::shared_ptr<ResponseStage>> response_stages;
  std::array<std::vector<Mount>, 2> mounts;  // by Listener
  // Handlers that block (store writes) run here, never on an I/O thread.
  asio::thread_pool blocking{2};
};

namespace {
// Waits, without blocking the I/O thread, for the log's writer to say the
// record is durable (its callback runs on the writer thread).
Task<Status> AwaitDurable(audit::Log& log, const std::string& tenant, uint64_t index) {
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Status)>(
      [&log, &tenant, index](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto ex = asio::get_associated_executor(*h);
        log.OnDurable(tenant, index, [h, ex](Status st) {
          asio::post(ex, [h, st = std::move(st)]() mutable { (*h)(std::move(st)); });
        });
      },
      asio::use_awaitable);
}
}  // namespace

Task<void> Gateway::Impl::Serve(const Mount& m, net::Request& req, net::ResponseWriter& w) {
  HttpResponse resp;
  if (!req.body_status.ok()) {
    resp.status = HttpStatusFor(req.body_status.code());
    resp.body = json::serialize(json::object{
        {"error", json::object{{"code", CodeName(req.body_status.code())}, {"message", req.body_status.message()}}}});
  } else {
    HttpRequest hr{req.method, req.path(), req.query(), &req.headers, req.body, req.remote};
    auto run = [&]() {
      try {
        resp = m.handler(hr);
      } catch (const std::exception& e) {
        spdlog::error("handler for {} threw: {}", m.path, e.what());
        resp = HttpResponse{500, {}, R"({"error":{"code":"internal","message":"internal error"}})"};
      }
    };
    if (m.blocking) {
      co_await asio::co_spawn(blocking.get_executor(), [&]() -> Task<void> {
        run();
        co_return;
      }, asio::use_awaitable);
    } else {
      run();
    }
  }
  if (audit && req.method != "GET" && req.method != "HEAD") {
    // What changed state (or tried to): admin calls, tokens issued.
    ActionRecord a;
    a.kind = m.listener == Listener::kAdmin ? "admin" : "identity";
    std::string_view tenant = req.headers.Get("x-aigis-tenant");
    a.tenant = tenant.empty() ? "default" : std::string(tenant);
    std::string_view rid = req.headers.Get("x-request-id");
    a.request_id = ValidRequestId(rid) ? std::string(rid) : request_ids[static_cast<size_t>(req.worker)].Next();
    a.time = clock->Now();
    a.method = req.method;
    a.path = std::string(req.path());
    a.remote = req.remote;
    a.status = resp.status;
    a.action = fmt::format("{} {}", req.method, req.path());
    a.principal = a.kind == "admin" ? (resp.status == 401 ? "unauthenticated" : "admin") : "oauth_client";
    a.request_sha256 = crypto::HexEncode(crypto::Sha256(req.body));
    std::string tenant_dir = audit::ValidTenant(a.tenant) ? a.tenant : "default";
    auto idx = RecordAction(std::move(a));
    // Sync mode: the caller learns of the change only once it is recorded.
    if (Snapshot()->config.audit.mode == "sync") {
      Status st = idx.status();
      if (idx.ok()) st = co_await AwaitDurable(*audit, tenant_dir, *idx);
      if (!st.ok()) spdlog::error("admin {} {}: not recorded: {}", req.method, req.path(), st.message());
    }
  }
  net::Response r;
  r.status = resp.status;
  r.headers = std::move(resp.headers);
  if (!r.headers.Find("content-type")) r.headers.Add("Content-Type", "application/json");
  if (req.method != "HEAD") r.body = std::move(resp.body);
  (void)co_await w.Send(std::move(r));
}

// Wraps the client's writer: hashes (and, with capture_bodies, keeps) what
// the client is sent, and in sync mode makes the exchange's record durable
// before the response's last bytes go out, so that a client holding a
// complete response knows its record survives a crash. If the record cannot
// be made durable, a whole response becomes a 503 and a stream is cut
// before its end (fail closed).
class Gateway::Impl::AuditWriter final : public net::ResponseWriter {
 public:
  AuditWriter(Gateway::Impl& g, Exchange& ex, net::ResponseWriter& inner, bool sync, bool capture)
      : g_(g), ex_(ex), inner_(inner), sync_(sync), capture_(capture) {}

  Task<Status> Send(net::Response r) override {
    hasher_.Update(r.body);
    if (capture_) body_ = r.body;
    if (sync_) {
      if (Status st = co_await g_.Commit(ex_, *this); !st.ok()) {
        spdlog::error("request {}: not recorded, answering 503: {}", ex_.request_id, st.message());
        ex_.status = 503;
        r = net::Response{};
        r.status = 503;
        r.headers.Add("Content-Type", "application/json");
        r.headers.Add("X-Request-Id", ex_.request_id);
        r.body = llm::ErrorBody(ex_.protocol, 503, "audit_unavailable", "the audit log cannot record this request");
      }
    }
    co_return co_await inner_.Send(std::move(r));
  }
  Task<Status> Start(int status, net::Headers headers) override { return inner_.Start(status, std::move(headers)); }
  Task<Status> Write(std::string_view data) override {
    hasher_.Update(data);
    if (capture_) body_.append(data);
    return inner_.Write(data);
  }
  Task<Status> Finish() override {
    if (sync_) {
      if (Status st = co_await g_.Commit(ex_, *this); !st.ok()) {
        spdlog::error("request {}: not recorded, cutting the stream: {}", ex_.request_id, st.message());
        co_return st;
      }
    }
    co_return co_await inner_.Finish();
  }
  bool started() const override { return inner_.started(); }
  net::Cancellation& cancellation() override { return inner_.cancellation(); }

  // Hex SHA-256 of what was sent ("" if nothing was); computed once.
  const std::string& response_sha256() {
    if (!hashed_) {
      hashed_ = true;
      if (!hasher_.empty()) sha_ = crypto::HexEncode(hasher_.Final());
    }
    return sha_;
  }
  const std::string* body() const { return capture_ ? &body_ : nullptr; }
  bool capture() const { return capture_; }

 private:
  Gateway::Impl& g_;
  Exchange& ex_;
  net::ResponseWriter& inner_;
  bool sync_, capture_;
  crypto::Sha256Hasher hasher_;
  bool hashed_ = false;
  std::string sha_, body_;
};


Result<uint64_t> Gateway::Impl::AppendRecord(Exchange& ex, int status, AuditWriter* aw) {
  ex.audited = true;
  RecordInputs in;
  in.status = status;
  in.latency = std::chrono::duration_cast<std::chrono::microseconds>(clock->Monotonic() - ex.start);
  if (aw != nullptr) {
    in.response_sha256 = aw->response_sha256();
    in.capture_bodies = aw->capture();
    in.response_body = aw->body();
  }
  audit::Entry e;
  e.tenant = ex.tenant;
  e.request_id = ex.request_id;
  e.time = ex.time;
  e.json = ExchangeRecord(ex, in);
  auto idx = audit->Append(std::move(e));
  if (!idx.ok()) {
    metrics.audit_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("request {}: audit record refused: {}", ex.request_id, idx.status().message());
  }
  return idx;
}

Task<Status> Gateway::Impl::Commit(Exchange& ex, AuditWriter& aw) {
  if (ex.audited) co_return Status::Ok();
  auto idx = AppendRecord(ex, ex.status, &aw);
  if (!idx.ok()) co_return idx.status();
  co_return co_await AwaitDurable(*audit, ex.tenant, *idx);
}

Result<uint64_t> Gateway::Impl::RecordAction(ActionRecord a) {
  if (!audit) return Status(Code::kFailedPrecondition, "no audit log");
  audit::Entry e;
  e.tenant = audit::ValidTenant(a.tenant) ? a.tenant : "default";
  a.tenant = e.tenant;
  e.request_id = a.request_id;
  e.time = a.time;
  e.json = AdminRecord(a);
  auto idx = audit->Append(std::move(e));
  if (!idx.ok()) {
    metrics.audit_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("audit record of {} refused: {}", a.action, idx.status().message());
  }
  return idx;
}

bool Gateway::Impl::RunStages(Exchange& ex, const std::vector<std::shared_ptr<Stage>>& list, Decision& deny) {
  for (const auto& s : list) {
    Decision d = s->OnRequest(ex);
    if (d.denied()) {
      ex.decisions.push_back({std::string(s->name()), "deny", d.code, d.reason});
      deny = std::move(d);
      return false;
    }
  }
  return true;
}

Task<void> Gateway::Impl::SendError(Exchange& ex, net::ResponseWriter& w, int status, std::string_view code,
                                    std::string_view message, const std::vector<Header>* extra) {
  ex.status = status;
  net::Response r;
  r.status = status;
  r.headers.Add("Content-Type", "application/json");
  r.headers.Add("X-Request-Id", ex.request_id);
  if (extra) {
    for (const auto& h : *extra) r.headers.Add(h.name, h.value);
  }
  r.body = llm::ErrorBody(ex.protocol, status, code, message);
  if (!(co_await w.Send(std::move(r))).ok()) ex.client_gone = true;
}

Task<void> Gateway::Impl::HandleProxy(net::Request& req, net::ResponseWriter& w) {
  if (const Mount* m = FindMount(Listener::kProxy, req.path())) {
    co_await Serve(*m, req, w);
    co_return;
  }
  metrics.inflight.fetch_add(1, std::memory_order_relaxed);
  auto rt = Snapshot();  // this exchange's config, whatever reloads happen meanwhile
  Exchange ex;
  ex.start = clock->Monotonic();
  ex.time = clock->Now();
  std::string_view rid = req.headers.Get("x-request-id");
  ex.request_id = ValidRequestId(rid) ? std::string(rid) : request_ids[static_cast<size_t>(req.worker)].Next();
  ex.method = req.method;
  ex.path = std::string(req.path());
  ex.remote = req.remote;
  ex.raw_body = req.body;
  ex.request_headers = &req.headers;
  ex.config = &rt->config;
  std::optional<AuditWriter> audit_writer;
  if (audit) {
    audit_writer.emplace(*this, ex, w, rt->config.audit.mode == "sync", rt->config.audit.capture_bodies);
  }
  net::ResponseWriter& out = audit_writer ? static_cast<net::ResponseWriter&>(*audit_writer) : w;
  co_await HandleExchange(ex, *rt, req, out);
  Record(ex, req.worker, audit_writer ? &*audit_writer : nullptr);
  metrics.inflight.fetch_sub(1, std::memory_order_relaxed);
}

Task<void> Gateway::Impl::HandleExchange(Exchange& ex, const Runtime& rt_ref, net::Request& req, net::ResponseWriter& w) {
  const Runtime* rt = &rt_ref;
  do {
    if (audit) {
      // Fail closed: an exchange that cannot be recorded is not served.
      if (Status st = audit->Healthy(); !st.ok()) {
        co_await SendError(ex, w, 503, "audit_unavailable", "the audit log cannot take records: " + st.message());
        break;
      }
    }
    if (mcp && McpGateway::Serves(req.path())) {
      co_await mcp->Handle(ex, req, w, *clients[static_cast<size_t>(req.worker)]);
      break;
    }
    auto match = llm::Classify(req.method, req.path());
    if (!match) {
      ex.protocol = llm::GuessProtocol(req.path());
      co_await SendError(ex, w, 404, "unknown_url", fmt::format("aigis does not serve {} {}", req.method, ex.path));
      break;
    }
    ex.protocol = match->protocol;
    ex.endpoint = match->endpoint;
    ex.path = std::string(match->path);
    if (!match->method_allowed) {
      co_await SendError(ex, w, 405, "method_not_allowed", fmt::format("{} is not allowed on {}", req.method, ex.path));
      break;
    }
    if (!req.body_status.ok()) {
      int status = HttpStatusFor(req.body_status.code());
      co_await SendError(ex, w, status, status == 413 ? "request_too_large" : "invalid_request",
                         req.body_status.message());
      break;
    }
    Decision deny;
    if (ex.endpoint == Endpoint::kModels) {
      ex.route_anonymous = rt->models_anonymous;
      bool ok = true;
      for (size_t p = 0; ok && p < stages.size(); ++p) ok = RunStages(ex, stages[p], deny);
      if (!ok) co_await SendDeny(ex, w, deny);
      else co_await SendModels(ex, *rt, req, w);
      break;
    }
    llm::RequestInfo info;
    if (Status st = llm::ParseRequest(req.body, rt->config.model_aliases, ex, info, &ex.forward_body); !st.ok()) {
      co_await SendError(ex, w, 400, "invalid_request", st.message());
      break;
    }
    const RouteRt* route = MatchRoute(*rt, ex.path, ex.upstream_model, ex.protocol);
    if (!route) {
      co_await SendError(ex, w, 404, "model_not_found",
                         fmt::format("no route serves model '{}' on {}", ex.model, ex.path));
      break;
    }
    ex.route = route->cfg->name;
    ex.route_anonymous = route->cfg->anonymous;
    // authenticate -> authorize -> admit -> screen request
    bool ok = true;
    for (size_t p = 0; ok && p < stages.size(); ++p) ok = RunStages(ex, stages[p], deny);
    if (ok && rt->classifier) ok = co_await AskClassifier(ex, *rt, req.worker, deny);
    if (!ok) {
      co_await SendDeny(ex, w, deny);
      break;
    }
    // The record keeps the (masked) body only with capture_bodies. (A local,
    // not a temporary in the co_await: GCC 12 destroys such temporaries twice.)
    std::string body;
    if (rt->config.audit.capture_bodies) body = ex.forward_body;
    else body = std::move(ex.forward_body);
    co_await Forward(ex, info, *route, *rt, req, std::move(body), w);
  } while (false);
}

// The external guard classifier, after the rules passed: bounded by its
// timeout; what an error means is JudgeClassifier's (failure_mode).
Task<bool> Gateway::Impl::AskClassifier(Exchange& ex, const Runtime& rt, int worker, Decision& deny) {
  auto body = ClassifierRequestBody(ex);
  if (!body) co_return true;
  const auto& k = rt.config.guard.classifier;
  net::ClientRequest creq;
  creq.method = "POST";
  creq.target = rt.classifier->endpoint.base_path.empty() ? "/" : rt.classifier->endpoint.base_path;
  creq.headers.Add("Content-Type", "application/json");
  creq.headers.Add("Accept", "application/json");
  if (!k.api_key.empty()) creq.headers.Add("Authorization", "Bearer " + k.api_key.Reveal());
  creq.headers.Add("X-Request-Id", ex.request_id);
  creq.body = std::move(*body);
  Result<ClassifierAnswer> answer = Unavailable("no answer");
  auto resp = co_await clients[static_cast<size_t>(worker)]->Send(rt.classifier->endpoint, rt.classifier->client,
                                                                   std::move(creq));
  if (!resp.ok()) {
    answer = resp.status();
  } else {
    auto text = co_await (*resp)->ReadAll(1 << 20);
    if (!text.ok()) answer = text.status();
    else answer = ClassifierAnswer{(*resp)->status, std::move(text).value()};
  }
  Decision d = JudgeClassifier(ex, answer);
  if (!d.denied()) co_return true;
  ex.decisions.push_back({"guard_classifier", "deny", d.code, d.reason});
  deny = std::move(d);
  co_return false;
}

Task<void> Gateway::Impl::SendModels(Exchange& ex, const Runtime& rt, const net::Request& req,
                                     net::ResponseWriter& w) {
  // Names a client can ask for: aliases and literal (non-glob) route models.
  std::vector<std::string> ids;
  for (const auto& [alias, target] : rt.config.model_aliases) ids.push_back(alias);
  for (const auto& r : rt.routes) {
    for (const auto& m : r.cfg->models) {
      if (m.find_first_of("*?") == std::string::npos) ids.push_back(m);
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  json::array data;
  bool anthropic = req.headers.Find("anthropic-version") != nullptr;
  for (const auto& id : ids) {
    if (anthropic) {
      data.push_back(json::object{{"type", "model"}, {"id", id}, {"display_name", id},
                                  {"created_at", FormatRfc3339(rt.loaded_at)}});
    } else {
      data.push_back(json::object{{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "aigis"}});
    }
  }
  json::object body;
  if (anthropic) {
    body = {{"data", data}, {"has_more", false},
            {"first_id", ids.empty() ? json::value(nullptr) : json::value(ids.front())},
            {"last_id", ids.empty() ? json::value(nullptr) : json::value(ids.back())}};
  } else {
    body = {{"object", "list"}, {"data", data}};
  }
  ex.status = 200;
  net::Response r;
  r.headers.Add("Content-Type", "application/json");
  r.headers.Add("X-Request-Id", ex.request_id);
  r.body = json::serialize(body);
  if (!(co_await w.Send(std::move(r))).ok()) ex.client_gone = true;
}

Task<void> Gateway::Impl::Forward(Exchange& ex, const llm::RequestInfo& info, const RouteRt& route,
                                  const Runtime& rt, const net::Request& req, std::string body,
                                  net::ResponseWriter& w) {
  Status last = Unavailable("no upstream could be reached");
  std::unique_ptr<net::UpstreamResponse> final_resp;
  size_t candidates = 0;
  for (const UpstreamRt* up : route.chain) candidates += Speaks(up->cfg->provider, ex.protocol) ? 1 : 0;
  size_t tried = 0;
  for (const UpstreamRt* up : route.chain) {
    if (!Speaks(up->cfg->provider, ex.protocol)) continue;
    bool has_next = ++tried < candidates;
    ex.upstream = up->cfg->name;
    ++ex.attempts;
    auto t0 = clock->Monotonic();
    std::unique_ptr<net::UpstreamResponse> resp;
    std::string outcome;
    if (up->cfg->provider == config::Provider::kEcho) {
      resp = std::make_unique<EchoResponse>(llm::Echo(ex, info, clock->Now()));
    } else {
      net::ClientRequest creq;
      creq.method = req.method;
      std::string_view suffix = ex.path;
      suffix.remove_prefix(3);  // "/v1"
      creq.target = up->endpoint.base_path + std::string(suffix);
      if (!req.query().empty()) creq.target += "?" + std::string(req.query());
      for (const auto& h : req.headers) {
        if (!net::IsHopByHop(h.name, req.headers) && !DropRequestHeader(h.name) && !rt.StripHeader(h.name)) {
          creq.headers.Add(h.name, h.value);
        }
      }
      if (up->cfg->send_principal && options.identity && ex.principal.kind != "anonymous") {
        if (ex.principal_token.empty()) {
          auto tok = options.identity->SignPrincipal(
              ex.principal, std::chrono::duration_cast<std::chrono::seconds>(rt.config.identity.principal_header_ttl));
          if (tok.ok()) ex.principal_token = std::move(*tok);
          else spdlog::error("cannot sign the principal header: {}", tok.status().ToString());
        }
        if (!ex.principal_token.empty()) creq.headers.Set("X-Aigis-Principal", ex.principal_token);
      }
      const auto& key = up->cfg->api_key.Reveal();
      if (up->cfg->provider == config::Provider::kOpenAI) {
        if (!key.empty()) creq.headers.Set("Authorization", "Bearer " + key);
      } else {
        if (!key.empty()) creq.headers.Set("x-api-key", key);
        if (!creq.headers.Find("anthropic-version")) creq.headers.Add("anthropic-version", up->cfg->anthropic_version);
      }
      for (const auto& [name, value] : up->cfg->headers) creq.headers.Set(name, value.Reveal());
      creq.headers.Set("X-Request-Id", ex.request_id);
      creq.headers.Set("Accept-Encoding", "identity");
      creq.body = has_next ? body : std::move(body);
      auto r = co_await clients[static_cast<size_t>(req.worker)]->Send(up->endpoint, up->client, std::move(creq),
                                                                       &w.cancellation());
      if (r.ok()) {
        resp = std::move(r).value();
      } else {
        last = r.status();
        outcome = last.code() == Code::kDeadlineExceeded ? "timeout" : "unavailable";
      }
    }
    auto elapsed = clock->Monotonic() - t0;
    ex.upstream_latency += std::chrono::duration_cast<std::chrono::microseconds>(elapsed);
    if (resp) {
      ex.upstream_status = resp->status;
      outcome = resp->status >= 500 ? "status_5xx" : resp->status == 429 ? "status_429" : "ok";
    }
    if (ClientLeft(ex, w)) co_return;  // no fallback, no answer; the record says 499
    metrics.ObserveUpstream(req.worker, up->cfg->name, outcome, Seconds(elapsed));
    if (!resp) {
      spdlog::warn("request {}: upstream '{}' failed: {}", ex.request_id, up->cfg->name, last.message());
      continue;
    }
    // Fallback on 429 and 5xx, before any byte reached the client.
    if ((resp->status == 429 || resp->status >= 500) && has_next) {
      spdlog::warn("request {}: upstream '{}' answered {}, trying the next", ex.request_id, up->cfg->name, resp->status);
      continue;
    }
    final_resp = std::move(resp);
    break;
  }
  if (!final_resp) {
    int status = HttpStatusFor(last.code() == Code::kDeadlineExceeded ? Code::kDeadlineExceeded : Code::kUnavailable);
    co_await SendError(ex, w, status, status == 504 ? "upstream_timeout" : "upstream_unavailable",
                       fmt::format("upstream failed: {}", last.message()));
    co_return;
  }
  if (final_resp->status >= 500) {
    co_await SendError(ex, w, 502, "upstream_error",
                       fmt::format("upstream '{}' answered HTTP {}", ex.upstream, final_resp->status));
    co_return;
  }
  co_await Relay(ex, rt, std::move(final_resp), w);
}

Task<void> Gateway::Impl::Relay(Exchange& ex, const Runtime& rt, std::unique_ptr<net::UpstreamResponse> resp,
                                net::ResponseWriter& w) {
  bool sse = StartsWith(ToLowerAscii(resp->headers.Get("content-type")), "text/event-stream");
  net::Headers headers;
  for (auto& h : resp->headers) {
    // Safe to move while iterating: IsHopByHop reads the Connection header,
    // which is itself hop-by-hop and so never moved.
    if (!net::IsHopByHop(h.name, resp->headers) && !DropResponseHeader(h.name)) {
      headers.Add(std::move(h.name), std::move(h.value));
    }
  }
  headers.Add("X-Request-Id", ex.request_id);
  bool ok_status = resp->status >= 200 && resp->status < 300;

  if (!sse) {
    auto body = co_await resp->ReadAll(rt.config.server.max_response_bytes);
    if (ClientLeft(ex, w)) co_return;
    if (!body.ok()) {
      int status = HttpStatusFor(body.status().code() == Code::kDeadlineExceeded ? Code::kDeadlineExceeded : Code::kUnavailable);
      co_await SendError(ex, w, status, "upstream_error", body.status().message());
      co_return;
    }
    if (ok_status) llm::UsageFromBody(*body, ex.usage);
    for (const auto& s : response_stages) {
      Decision d = s->OnBody(ex, *body);
      if (d.denied()) {
        ex.decisions.push_back({std::string(s->name()), "deny", d.code, d.reason});
        co_await SendError(ex, w, d.status, d.code, d.reason);
        co_return;
      }
    }
    ex.status = resp->status;
    net::Response r;
    r.status = resp->status;
    r.headers = std::move(headers);
    r.body = std::move(body).value();
    if (!(co_await w.Send(std::move(r))).ok()) ex.client_gone = true;
    co_return;
  }

  // Streamed: event by event, never the whole body.
  ex.status = resp->status;
  if (!(co_await w.Start(resp->status, std::move(headers))).ok()) {
    ex.client_gone = true;
    co_return;
  }
  net::SseParser parser(rt.config.server.max_sse_event_bytes);
  std::string out, data;
  Decision deny;
  std::string deny_stage;
  for (;;) {
    auto piece = co_await resp->Read();
    if (ClientLeft(ex, w)) co_return;
    if (!piece.ok()) {
      // Upstream failed mid-stream: the status is sent already, so end the
      // stream with the protocol's error event.
      out += llm::ErrorEvent(ex.protocol, 502, "upstream_error", piece.status().message());
      ex.decisions.push_back({"forward", "error", "upstream_error", piece.status().message()});
      (void)co_await w.Write(out);
      (void)co_await w.Finish();
      co_return;
    }
    if (piece->empty()) {
      out.append(parser.pending());
      break;
    }
    Status st = parser.Feed(*piece, [&](const net::SseEvent& ev) {
      if (deny.denied()) return;
      if (ok_status) llm::UsageFromEvent(ex.protocol, ev.event, ev.data, ex.usage);
      bool rewritten = false;
      if (!response_stages.empty()) {
        data = ev.data;
        for (const auto& s : response_stages) {
          Decision d = s->OnEvent(ex, ev.event, data);
          if (d.denied()) {
            deny = std::move(d);
            deny_stage = s->name();
            return;
          }
        }
        rewritten = data != ev.data;
      }
      if (!rewritten) {
        out.append(ev.raw);
      } else {
        if (!ev.event.empty()) out.append("event: ").append(ev.event).append("\n");
        size_t pos = 0;
        while (pos <= data.size()) {
          size_t nl = data.find('\n', pos);
          out.append("data: ").append(data, pos, nl == std::string::npos ? std::string::npos : nl - pos).append("\n");
          if (nl == std::string::npos) break;
          pos = nl + 1;
        }
        out.append("\n");
      }
    });
    if (!st.ok() || deny.denied()) {
      if (deny.denied()) {
        ex.decisions.push_back({deny_stage, "deny", deny.code, deny.reason});
        out += llm::ErrorEvent(ex.protocol, deny.status, deny.code, deny.reason);
      } else {
        ex.decisions.push_back({"forward", "error", "upstream_error", st.message()});
        out += llm::ErrorEvent(ex.protocol, 502, "upstream_error", st.message());
      }
      (void)co_await w.Write(out);
      (void)co_await w.Finish();
      co_return;  // resp is destroyed: the upstream connection closes
    }
    if (!out.empty()) {
      if (!(co_await w.Write(out)).ok()) {
        ex.client_gone = true;
        co_return;  // the client left: dropping resp closes the upstream request
      }
      out.clear();
    }
  }
  if (!out.empty() && !(co_await w.Write(out)).ok()) {
    ex.client_gone = true;
    co_return;
  }
  if (!(co_await w.Finish()).ok()) ex.client_gone = true;
}

void Gateway::Impl::Record(Exchange& ex, int worker, AuditWriter* aw) {
  auto elapsed = clock->Monotonic() - ex.start;
  int status = ex.client_gone ? 499 : ex.status;  // as nginx: the client closed before the end
  if (audit && !ex.audited) (void)AppendRecord(ex, status, aw);
  metrics.ObserveRequest(worker, ex.route.empty() ? "none" : ex.route, status, Seconds(elapsed));
  if (ex.usage.reported) {
    metrics.AddTokens(worker, ex.upstream_model, ex.usage.input_tokens, ex.usage.output_tokens);
  }
  if (!events_enabled) return;
  Event e;
  e.kind = "access";
  e.time = ex.time;
  e.tenant = ex.tenant;
  e.request_id = ex.request_id;
  e.Set("method", ex.method).Set("path", ex.path).Set("remote", ex.remote).Set("status", int64_t{status});
  e.Set("protocol", std::string(ProtocolName(ex.protocol)));
  e.Set("principal", ex.principal.kind + (ex.principal.id.empty() ? "" : ":" + ex.principal.id));
  if (!ex.route.empty()) e.Set("route", ex.route);
  if (!ex.model.empty()) e.Set("model", ex.model);
  if (ex.upstream_model != ex.model) e.Set("upstream_model", ex.upstream_model);
  if (!ex.upstream.empty()) {
    e.Set("upstream", ex.upstream).Set("upstream_status", int64_t{ex.upstream_status}).Set("attempts", int64_t{ex.attempts});
    e.Set("upstream_us", static_cast<int64_t>(ex.upstream_latency.count()));
  }
  e.Set("stream", ex.stream);
  if (ex.protocol == Protocol::kMcp) {
    e.Set("mcp_method", ex.mcp.method);
    if (!ex.mcp.server.empty()) e.Set("mcp_server", ex.mcp.server);
    if (!ex.mcp.tool.empty()) e.Set("mcp_tool", ex.mcp.tool);
    if (ex.mcp.error_code != 0) e.Set("mcp_error", int64_t{ex.mcp.error_code}).Set("mcp_error_message", ex.mcp.error);
    if (!ex.mcp.upstream_error.empty()) e.Set("mcp_upstream_error", ex.mcp.upstream_error);
  }
  if (ex.usage.reported) {
    e.Set("input_tokens", ex.usage.input_tokens).Set("output_tokens", ex.usage.output_tokens);
  }
  for (const auto& d : ex.decisions) {
    e.Set("decision", fmt::format("{}:{}:{}", d.stage, d.outcome, d.code));
    e.Set("reason", d.reason);
  }
  if (!ex.authz.empty()) {
    // Every check, then the details of the deciding one (the last).
    std::string checks;
    for (const auto& a : ex.authz) {
      checks += fmt::format("{}{} {} {} {}", checks.empty() ? "" : "; ", a.allowed ? "allow" : "deny", a.user,
                            a.relation, a.object);
    }
    const AuthzRecord& last = ex.authz.back();
    e.Set("authz", checks).Set("authz_decision_id", last.decision_id).Set("authz_model", last.model_id);
    e.Set("authz_revision", static_cast<int64_t>(last.revision)).Set("authz_cached", last.cached);
    std::string why;
    for (const auto& step : last.explanation) why += (why.empty() ? "" : " | ") + step;
    if (!last.error.empty()) why = last.error;
    e.Set("authz_explanation", why);
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
  };
  if (!ex.guard.policy.empty()) e.Set("guard_policy", ex.guard.policy);
  if (ex.guard.screened) {
    e.Set("guard", ex.guard.outcome).Set("guard_score", std::round(ex.guard.score * 1000) / 1000);
    if (!ex.guard.rules.empty()) e.Set("guard_rules", join(ex.guard.rules));
    if (!ex.guard.fields.empty()) e.Set("guard_fields", join(ex.guard.fields));
    // Placeholders and hashes only: a masked value never reaches a log.
    std::string masked;
    for (const auto& [p, h] : ex.guard.masked) masked += (masked.empty() ? "" : ",") + p + "=" + h;
    if (!masked.empty()) e.Set("guard_masked", masked);
  }
  if (!ex.guard.classifier.empty()) {
    e.Set("guard_classifier", ex.guard.classifier);
    if (!ex.guard.classifier_categories.empty()) e.Set("guard_classifier_categories", ex.guard.classifier_categories);
  }
  if (ex.guard.response_screened) {
    e.Set("guard_response", ex.guard.response_outcome)
        .Set("guard_response_score", std::round(ex.guard.response_score * 1000) / 1000);
    if (!ex.guard.response_rules.empty()) e.Set("guard_response_rules", join(ex.guard.response_rules));
  }
  if (ex.client_gone) e.Set("client_gone", true);
  e.Set("duration_us", static_cast<int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));
  events->Emit(e);
}

std::string Gateway::Impl::RenderMetrics() const {
  Metrics::Gauges g;
  g.client_connections = proxy ? proxy->stats().open_connections.load() : 0;
  g.upstream_open = client_stats.open_connections.load();
  g.upstream_idle = client_stats.idle_connections.load();
  g.upstream_reused = client_stats.reused_connections.load();
  g.rejected_by_server = proxy ? proxy->stats().rejected_requests.load() : 0;
  g.config_loaded_at = std::chrono::duration<double>(Snapshot()->loaded_at.time_since_epoch()).count();
  if (audit) {
    audit::LogStats a = audit->stats();
    g.audit = true;
    g.audit_appended = a.appended;
    g.audit_batches = a.batches;
    g.audit_syncs = a.syncs;
    g.audit_bytes = a.bytes;
    g.audit_queued = a.queued;
    g.audit_checkpoints = a.checkpoints;
    g.audit_healthy = audit->Healthy().ok();
    for (const auto& sink : audit->Sinks()) {
      audit::Sink::Stats st = sink->stats();
      g.audit_sinks.push_back({sink->name(), st.delivered, st.dropped, st.failures, st.queued});
    }
  }
  if (options.identity) {
    auto st = options.identity->stats();
    g.identity = true;
    g.auth_cache_hits = st.cache_hits;
    g.auth_cache_misses = st.cache_misses;
    g.auth_failures = st.auth_failures;
    g.tokens_issued = st.tokens_issued;
  }
  if (authorize) {
    auto st = authorize->stats();
    g.authz = true;
    g.authz_allowed = st.allowed;
    g.authz_denied = st.denied;
    g.authz_errors = st.errors;
    g.authz_cache_hits = st.cache_hits;
  }
  if (mcp) {
    auto st = mcp->stats();
    g.mcp = true;
    g.mcp_sessions = st.sessions;
    g.mcp_stdio_running = st.stdio_running;
    g.mcp_stdio_restarts = st.stdio_restarts;
  }
  return metrics.Render(g, options.version, options.commit);
}

Task<void> Gateway::Impl::HandleAdmin(net::Request& req, net::ResponseWriter& w) {
  if (const Mount* m = FindMount(Listener::kAdmin, req.path())) {
    co_await Serve(*m, req, w);
    co_return;
  }
  net::Response r;
  std::string_view path = req.path();
  if (req.method != "GET" && req.method != "HEAD") {
    r.status = 405;
    r.body = "method not allowed\n";
  } else if (path == "/healthz") {
    r.body = "ok\n";
  } else if (path == "/readyz") {
    bool is_ready = ready.load();
    r.status = is_ready ? 200 : 503;
    r.body = is_ready ? "ready\n" : "not ready\n";
  } else if (path == "/metrics") {
    r.body = RenderMetrics();
    r.headers.Add("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  if (r.headers.empty()) r.headers.Add("Content-Type", "text/plain; charset=utf-8");
  (void)co_await w.Send(std::move(r));
}

// ------------------------------------------------------------ Gateway -----

Gateway::Gateway() = default;
Gateway::~Gateway() {
  if (impl_) impl_->pool.Stop();
}

Result<std::unique_ptr<Gateway>> Gateway::Create(const config::Config& cfg, GatewayOptions options) {
  SystemClock sc;
  auto rt = Compile(cfg, options.clock ? *options.clock : sc);
  if (!rt.ok()) return rt.status();
  std::unique_ptr<Gateway> g(new Gateway());
  g->impl_ = std::make_unique<Impl>(std::move(options), std::move(rt).value(), cfg);
  if (auto id = g->impl_->options.identity) {
    g->impl_->stages[static_cast<size_t>(Phase::kAuthenticate)].push_back(std::make_shared<AuthenticateStage>(id));
  }
  if (auto az = g->impl_->options.authz) {
    g->impl_->authorize = MakeAuthorizeStage(az);
    g->impl_->stages[static_cast<size_t>(Phase::kAuthorize)].push_back(g->impl_->authorize);
  }
  // Always present: it does nothing while guard is disabled, and fails
  // closed if guard is enabled without rules.
  g->impl_->screen = MakeScreenRequestStage(g->impl_->options.guard_rules);
  g->impl_->stages[static_cast<size_t>(Phase::kScreenRequest)].push_back(g->impl_->screen);
  g->impl_->response_stages.push_back(MakeScreenResponseStage());
  g->impl_->audit = g->impl_->options.audit;
  if (g->impl_->options.tool_pins) g->impl_->mcp = g->impl_->MakeMcp();
  if (g->impl_->options.events) {
    g->impl_->events = g->impl_->options.events;
  } else if (cfg.log.access_log == "off") {
    g->impl_->events = std::make_shared<NullSink>();
    g->impl_->events_enabled = false;
  } else {
    auto sink = JsonLinesSink::Open(cfg.log.access_log);
    if (!sink.ok()) return sink.status();
    g->impl_->events = std::move(sink).value();
  }
  return g;
}

void Gateway::SetGuardRules(std::shared_ptr<const guard::RuleSet> rules) { impl_->screen->SetRules(std::move(rules)); }

void Gateway::AddStage(Phase phase, std::shared_ptr<Stage> stage) {
  impl_->stages[static_cast<size_t>(phase)].push_back(std::move(stage));
}
void Gateway::AddResponseStage(std::shared_ptr<ResponseStage> stage) {
  impl_->response_stages.push_back(std::move(stage));
}

void Gateway::Handle(Listener listener, std::string path, HttpHandler handler, bool blocking) {
  impl_->mounts[static_cast<size_t>(listener)].push_back({std::move(path), std::move(handler), blocking, listener});
}

Result<std::string> Gateway::FetchBlocking(const std::string& url, std::chrono::milliseconds timeout) {
  Headers h;
  h.Add("Accept", "application/json");
  ASSIGN_OR_RETURN(HttpResponse r, SendBlocking("GET", url, h, "", timeout));
  if (r.status != 200) return Unavailable(fmt::format("GET {} answered {}", url, r.status));
  return std::move(r.body);
}

Result<HttpResponse> Gateway::SendBlocking(std::string_view method, const std::string& url, const Headers& headers,
                                           std::string body, std::chrono::milliseconds timeout) {
  auto ep = net::Endpoint::Parse(url);
  if (!ep.ok()) return InvalidArgument(fmt::format("{}: {}", url, ep.status().message()));
  auto done = std::make_shared<std::promise<Result<HttpResponse>>>();
  auto fut = done->get_future();
  Impl* impl = impl_.get();
  asio::co_spawn(
      impl->pool.context(0),
      [impl, done, ep = *ep, method = std::string(method), headers, body = std::move(body), timeout]() mutable -> Task<void> {
        net::ClientOptions o;
        o.connect_timeout = o.response_timeout = o.idle_timeout = timeout;
        o.max_idle_connections = 0;
        net::ClientRequest r;
        r.method = method;
        r.target = ep.base_path.empty() ? "/" : ep.base_path;
        r.headers = std::move(headers);
        r.body = std::move(body);
        auto resp = co_await impl->clients[0]->Send(ep, o, std::move(r));
        if (!resp.ok()) {
          done->set_value(resp.status());
          co_return;
        }
        int status = (*resp)->status;
        auto text = co_await (*resp)->ReadAll(1 << 20);
        if (!text.ok()) {
          done->set_value(text.status());
          co_return;
        }
        HttpResponse out;
        out.status = status;
        out.body = std::move(text).value();
        done->set_value(std::move(out));
      },
      asio::detached);
  if (fut.wait_for(timeout * 4) != std::future_status::ready) {
    return DeadlineExceeded(fmt::format("{} {} timed out", method, url));
  }
  return fut.get();
}

Result<Ports> Gateway::Start() {
  const auto& cfg = impl_->Snapshot()->config;
  auto server_options = [&](const config::ListenerConfig& l, std::string name) {
    net::ServerOptions o;
    o.name = std::move(name);
    o.host = l.host;
    o.port = l.port;
    if (l.tls) {
      o.tls_cert_file = l.tls->cert_file;
      o.tls_key_file = l.tls->key_file;
    }
    o.max_header_bytes = cfg.server.max_header_bytes;
    o.max_body_bytes = cfg.server.max_body_bytes;
    o.max_connections = cfg.server.max_connections;
    o.header_timeout = cfg.server.header_timeout;
    o.body_timeout = cfg.server.body_timeout;
    o.idle_timeout = cfg.server.idle_timeout;
    o.write_timeout = cfg.server.write_timeout;
    return o;
  };
  Impl* impl = impl_.get();
  impl_->proxy = std::make_unique<net::Server>(impl_->pool, server_options(cfg.proxy, "proxy"),
                                               [impl](net::Request& r, net::ResponseWriter& w) { return impl->HandleProxy(r, w); });
  auto admin_opts = server_options(cfg.admin, "admin");
  admin_opts.max_body_bytes = 1 << 20;
  impl_->admin = std::make_unique<net::Server>(impl_->pool, admin_opts,
                                               [impl](net::Request& r, net::ResponseWriter& w) { return impl->HandleAdmin(r, w); });
  if (auto id = impl_->options.identity) {
    auto oauth = [id](OAuthResponse (identity::Identity::*fn)(const identity::OAuthRequest&)) {
      return [id, fn](const HttpRequest& r) {
        identity::OAuthRequest o{std::string(r.method), std::string(r.headers->Get("authorization")),
                                 std::string(r.headers->Get("content-type")), std::string(r.body)};
        identity::OAuthResponse out = ((*id).*fn)(o);
        HttpResponse h;
        h.status = out.status;
        for (auto& hd : out.headers) h.headers.Add(std::move(hd.name), std::move(hd.value));
        h.body = std::move(out.body);
        return h;
      };
    };
    Handle(Listener::kProxy, "/oauth2/token", oauth(&identity::Identity::Token), false);
    Handle(Listener::kProxy, "/oauth2/introspect", oauth(&identity::Identity::Introspect), false);
    Handle(Listener::kProxy, "/oauth2/revoke", oauth(&identity::Identity::Revoke), true);
    auto document = [](std::function<std::string()> body) {
      return [body = std::move(body)](const HttpRequest& r) {
        HttpResponse h;
        if (r.method != "GET" && r.method != "HEAD") {
          h.status = 405;
          h.headers.Add("Allow", "GET, HEAD");
          h.body = R"({"error":"invalid_request","error_description":"use GET"})";
          return h;
        }
        h.headers.Add("Content-Type", "application/json");
        h.headers.Add("Cache-Control", "public, max-age=300");
        h.body = body();
        return h;
      };
    };
    Handle(Listener::kProxy, "/.well-known/jwks.json", document([id] { return id->JwksJson(); }), false);
    Handle(Listener::kProxy, "/.well-known/oauth-authorization-server",
           document([id] { return id->MetadataJson(); }), false);
  }
  if (impl_->mcp) {
    if (Status st = impl_->mcp->Configure(cfg.mcp); !st.ok()) return st;
    McpGateway* mcp = impl_->mcp.get();
    auto metadata = [mcp, impl](const HttpRequest& r) {
      if (r.method != "GET" && r.method != "HEAD") {
        HttpResponse h;
        h.status = 405;
        h.headers.Add("Allow", "GET, HEAD");
        h.body = R"({"error":{"code":"method_not_allowed","message":"use GET"}})";
        return h;
      }
      return mcp->ResourceMetadata(r.path, impl->Snapshot()->config);
    };
    Handle(Listener::kProxy, "/.well-known/oauth-protected-resource", metadata, false);
    Handle(Listener::kProxy, "/.well-known/oauth-protected-resource/", metadata, false);
  }
  Ports ports;
  auto p = impl_->proxy->Listen();
  if (!p.ok()) return p.status();
  ports.proxy = *p;
  if (impl_->options.identity && impl_->options.identity->issuer().empty()) {
    // No issuer configured: the proxy listener's own URL, known only now
    // (port 0), set before the first request can be served.
    std::string host = cfg.proxy.host.find(':') != std::string::npos ? "[" + cfg.proxy.host + "]" : cfg.proxy.host;
    impl_->options.identity->SetIssuer(fmt::format("{}://{}:{}", cfg.proxy.tls ? "https" : "http", host, ports.proxy));
  }
  auto a = impl_->admin->Listen();
  if (!a.ok()) return a.status();
  ports.admin = *a;
  impl_->pool.Start();
  impl_->ready.store(true);
  return ports;
}

Status Gateway::Reload(const config::Config& next) {
  auto current = impl_->Snapshot();
  auto rt = Compile(next, *impl_->clock);
  if (!rt.ok()) {
    impl_->metrics.reloads_failed.fetch_add(1);
    impl_->RecordReload(false, rt.status().message());
    return rt.status();
  }
  const auto& old = current->config;
  if (!(old.proxy == next.proxy) || !(old.admin == next.admin) || old.server.threads != next.server.threads) {
    spdlog::warn("config reload: listener and thread changes take effect after a restart");
  }
  if (impl_->mcp) {
    if (Status st = impl_->mcp->Configure(next.mcp); !st.ok()) {
      impl_->metrics.reloads_failed.fetch_add(1);
      impl_->RecordReload(false, st.message());
      return st;
    }
  }
  impl_->runtime.store(std::move(rt).value(), std::memory_order_release);
  impl_->metrics.reloads_ok.fetch_add(1);
  impl_->RecordReload(true, next.source);
  return Status::Ok();
}

void Gateway::NoteReloadFailure(std::string_view why) {
  impl_->metrics.reloads_failed.fetch_add(1);
  impl_->RecordReload(false, why);
}

void Gateway::Shutdown(std::chrono::milliseconds deadline) {
  impl_->ready.store(false);
  if (impl_->mcp) impl_->mcp->EndStreams();
  if (impl_->proxy) impl_->proxy->Drain();
  if (impl_->admin) impl_->admin->Drain();
  auto until = std::chrono::steady_clock::now() + deadline;
  while (impl_->metrics.inflight.load() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (impl_->metrics.inflight.load() > 0) {
    spdlog::warn("shutdown deadline reached with {} exchanges in flight; closing them", impl_->metrics.inflight.load());
  }
  if (impl_->mcp) impl_->mcp->Shutdown();  // stdio servers: SIGTERM, then SIGKILL
  if (impl_->proxy) impl_->proxy->CloseAll();
  if (impl_->admin) impl_->admin->CloseAll();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let cancelled coroutines unwind
  impl_->pool.Stop();
}

std::string Gateway::RenderMetrics() const { return impl_->RenderMetrics(); }
int64_t Gateway::inflight() const { return impl_->metrics.inflight.load(); }
std::shared_ptr<const config::Config> Gateway::config() const {
  auto rt = impl_->Snapshot();
  return std::shared_ptr<const config::Config>(rt, &rt->config);
}

}  // namespace aigis::gateway

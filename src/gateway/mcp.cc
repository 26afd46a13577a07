// The MCP gateway (docs/mcp.md): aigis as an MCP server over Streamable
// HTTP in front of MCP servers reached over Streamable HTTP or stdio.
#include "net/pch.h"
#include "gateway/mcp.h"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <deque>
#include <future>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <variant>

#include "authz/authz.h"
#include "crypto/crypto.h"
#include "gateway/authorize.h"
#include "gateway/metrics.h"
#include "gateway/screen.h"
#include "registry/registry.h"

namespace aigis::gateway {

namespace asio = boost::asio;
namespace json = boost::json;
using net::Task;
using std::chrono::milliseconds;

namespace {

// Newest first: what aigis speaks, as server and as client.
const std::vector<std::string_view> kVersions = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                                                 "2024-10-07"};
bool Supported(std::string_view v) { return std::find(kVersions.begin(), kVersions.end(), v) != kVersions.end(); }

// JSON-RPC error codes: the standard ones, and aigis's (server range).
constexpr int kParseError = -32700, kInvalidRequest = -32600, kMethodNotFound = -32601, kInvalidParams = -32602,
              kInternalError = -32603;
// ToolsFor's error when guard is on without rules (the caller fails closed).
constexpr std::string_view kGuardUnavailable = "guard is enabled but its rules are not loaded";

constexpr int kPermissionDenied = -32001, kContentBlocked = -32002, kToolNotApproved = -32003,
              kUpstreamFailed = -32004;

// A JSON-RPC error aigis answers with.
struct RpcError {
  int code = kInternalError;
  std::string message;
  json::object data;      // data.code: machine-readable, as for LLM errors
  bool upstream = false;  // the server's own error, passed through
};

RpcError Err(int code, std::string_view tag, std::string message) {
  RpcError e{code, std::move(message), {}};
  e.data["code"] = tag;
  return e;
}

std::string Str(const json::value* v) {
  if (v == nullptr || !v->is_string()) return "";
  return std::string(v->get_string());
}

json::value ParseJson(std::string_view text, std::error_code& ec) {
  json::parse_options opts;
  opts.max_depth = 64;
  return json::parse(json::string_view(text.data(), text.size()), ec, {}, opts);
}

// An object id for the authorization model: "<type>:<server>/<name>", with
// the characters OpenFGA ids cannot hold (':', '#', '@', space, controls)
// and '%' itself percent-encoded: mcp_resource:files/docs%3A//readme.
std::string ObjectId(std::string_view type, std::string_view server, std::string_view name) {
  std::string out = fmt::format("{}:{}/", type, server);
  for (unsigned char c : name) {
    if (c <= 0x20 || c == '#' || c == '%' || c == ':' || c == '@' || c >= 0x7f) out += fmt::format("%{:02X}", c);
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

// ------------------------------------------------------------ upstreams ----

// One upstream answer: the JSON-RPC response message (result or error).
using Answer = Result<json::object>;

// A server's tool list as read, shared by whoever reads it (never with a
// tenant's or principal's verdicts in it: those are worked out per request).
struct Catalog {
  json::array listed;  // the tools as the server listed them
  std::vector<std::pair<std::string, std::string>> listing;  // name, fingerprint (same order)
  MonoTime fetched{};
};

// One tool of a catalog as the caller sees it.
struct ToolEntry {
  const json::object* def = nullptr;  // in the catalog
  std::string name;
  std::string fingerprint;
  registry::ToolState state = registry::ToolState::kPending;
  bool poisoned = false;
  std::string poison_rule;
};
struct Tools {
  std::shared_ptr<const Catalog> catalog;  // keeps `def`s alive
  std::vector<ToolEntry> entries;
};

// A stdio server: one supervised process per configured server, in its own
// process group. Everything but the atomics runs on the stdio context's one
// thread (Start and Stop post there), so launching, signalling and reaping
// never race.
class StdioProcess : public std::enable_shared_from_this<StdioProcess> {
 public:
  StdioProcess(asio::io_context& ctx, config::McpServerConfig cfg, std::string version, const Clock* clock)
      : ctx_(ctx), cfg_(std::move(cfg)), version_(std::move(version)), clock_(clock), backoff_(cfg_.restart_backoff) {}

  const config::McpServerConfig& cfg() const { return cfg_; }
  void Start() {
    asio::post(ctx_, [self = shared_from_this()] { self->Launch(); });
  }
  // No restart; SIGTERM to the process group, SIGKILL 2 s later. Returns
  // once the process is reaped (or after 3 s). Not from the stdio thread.
  void Stop() {
    auto done = std::make_shared<std::promise<void>>();
    auto reaped = done->get_future();
    asio::post(ctx_, [self = shared_from_this(), done] { self->StopHere(done); });
    reaped.wait_for(std::chrono::seconds(3));
  }
  bool running() const { return ready_.load(); }
  uint64_t restarts() const { return restarts_.load(); }

  // A request on this server (the caller's `id` is replaced by aigis's).
  // On the stdio context.
  Task<Answer> Call(json::object msg, milliseconds timeout, bool initializing = false) {
    if (!initializing && !ready_.load()) {
      co_return Unavailable(fmt::format("MCP server '{}' (stdio) is not running; aigis is restarting it", cfg_.name));
    }
    int64_t id = next_id_++;
    msg["id"] = id;
    asio::steady_timer timer(ctx_);
    timer.expires_after(timeout);
    Pending p{&timer, std::nullopt};
    pending_[id] = &p;
    Send(json::serialize(msg));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    pending_.erase(id);
    if (p.answer) co_return std::move(*p.answer);
    co_return Status(Code::kDeadlineExceeded,
                     fmt::format("MCP server '{}' did not answer within {} ms", cfg_.name, timeout.count()));
  }
  void Notify(json::object msg) { Send(json::serialize(msg)); }

  // The tool catalog, shared by every session (the process is); null until
  // read and after list_changed or an exit.
  std::mutex mu;
  std::shared_ptr<const Catalog> catalog;
  std::function<void(const std::string& server, std::string_view method)> on_notification;

 private:
  struct Pending {
    asio::steady_timer* timer;
    std::optional<Answer> answer;
  };

  void Send(std::string line) {
    if (!in_) return;
    line.push_back('\n');
    out_queue_.push_back(std::move(line));
    if (!writing_) asio::co_spawn(ctx_, WriteLoop(incarnation_), asio::detached);
  }
  Task<void> WriteLoop(uint64_t inc) {
    auto self = shared_from_this();
    writing_ = true;
    while (!out_queue_.empty() && in_ && inc == incarnation_) {
      std::string line = std::move(out_queue_.front());
      out_queue_.pop_front();
      boost::system::error_code ec;
      co_await asio::async_write(*in_, asio::buffer(line), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;  // the read loop sees the exit
    }
    writing_ = false;
  }

  // Resolves the command like execvp, before forking (the child only calls
  // async-signal-safe functions).
  std::string Resolve() const {
    if (cfg_.command.find('/') != std::string::npos) return cfg_.command;
    const char* path = std::getenv("PATH");
    std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!dirs.empty()) {
      size_t colon = dirs.find(':');
      std::string dir(dirs.substr(0, colon));
      dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
      std::string full = (dir.empty() ? "." : dir) + "/" + cfg_.command;
      if (::access(full.c_str(), X_OK) == 0) return full;
    }
    return "";
  }

  Status Spawn() {
    std::string exe = Resolve();
    if (exe.empty()) return NotFound(fmt::format("command '{}' not found in PATH", cfg_.command));
    std::vector<std::string> args{cfg_.command};
    args.insert(args.end(), cfg_.args.begin(), cfg_.args.end());
    std::vector<std::string> env;
    for (const char* keep : {"PATH", "HOME", "LANG", "TMPDIR"}) {
      if (const char* v = std::getenv(keep); v && !cfg_.env.count(keep)) env.push_back(fmt::format("{}={}", keep, v));
    }
    for (const auto& [k, v] : cfg_.env) env.push_back(k + "=" + v.Reveal());
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return Internal("pipe failed");
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]), ::close(in[1]);
      return Internal("pipe failed");
    }
    if (::pipe2(err, O_CLOEXEC) != 0) {
      ::close(in[0]), ::close(in[1]), ::close(out[0]), ::close(out[1]);
      return Internal("pipe failed");
    }
    // Every pipe end above 2, so that dup2 onto 0-2 never meets one of them.
    for (int* fd : {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]}) {
      if (*fd > 2) continue;
      int moved = ::fcntl(*fd, F_DUPFD_CLOEXEC, 3);
      ::close(*fd);
      *fd = moved;
    }
    if (std::min({in[0], in[1], out[0], out[1], err[0], err[1]}) < 0) {
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) if (fd >= 0) ::close(fd);
      return Internal("fcntl failed");
    }
    pid_t parent = ::getpid();
    const char* cwd = cfg_.cwd.empty() ? nullptr : cfg_.cwd.c_str();
    pid_t pid = ::fork();
    if (pid < 0) {
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
      return Internal("fork failed");
    }
    if (pid == 0) {
      // The child: async-signal-safe calls only. It dies with aigis.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);  // aigis blocks signals in its threads
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &dfl, nullptr);  // aigis ignores it
      ::setpgid(0, 0);
      if (cwd != nullptr && ::chdir(cwd) != 0) ::_exit(126);
      ::execve(exe.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // as the child does: whichever runs first
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    in_.emplace(ctx_, in[1]);
    out_.emplace(ctx_, out[0]);
    err_.emplace(ctx_, err[0]);
    pid_ = pid;
    started_ = std::chrono::steady_clock::now();
    return Status::Ok();
  }

  void Launch() {
    if (stopping_.load()) return;
    ++incarnation_;
    if (Status st = Spawn(); !st.ok()) {
      spdlog::error("mcp server '{}': cannot start: {}", cfg_.name, st.message());
      ScheduleRestart();
      return;
    }
    spdlog::info("mcp server '{}': started (pid {})", cfg_.name, pid_);
    asio::co_spawn(ctx_, ReadLoop(incarnation_), asio::detached);
    asio::co_spawn(ctx_, DrainStderr(incarnation_), asio::detached);
    asio::co_spawn(ctx_, Initialize(incarnation_), asio::detached);
  }

  Task<void> Initialize(uint64_t inc) {
    auto self = shared_from_this();
    json::object msg{{"jsonrpc", "2.0"},
                     {"method", "initialize"},
                     {"params",
                      {{"protocolVersion", kVersions.front()},
                       {"capabilities", json::object()},
                       {"clientInfo", {{"name", "aigis"}, {"version", version_}}}}}};
    auto answer = co_await Call(std::move(msg), cfg_.timeout, /*initializing=*/true);
    if (inc != incarnation_) co_return;
    std::string problem;
    if (!answer.ok()) {
      problem = answer.status().message();
    } else if (const auto* r = answer->if_contains("result"); r == nullptr || !r->is_object()) {
      problem = "its initialize answer has no result";
    } else if (!Supported(Str(r->get_object().if_contains("protocolVersion")))) {
      problem = fmt::format("it speaks MCP '{}', which aigis does not",
                            Str(r->get_object().if_contains("protocolVersion")));
    }
    if (!problem.empty()) {
      spdlog::error("mcp server '{}': initialize failed: {}; restarting it", cfg_.name, problem);
      Kill();
      co_return;
    }
    Notify(json::object{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
    ready_.store(true);
    spdlog::info("mcp server '{}': ready", cfg_.name);
  }

  Task<void> ReadLoop(uint64_t inc) {
    auto self = shared_from_this();
    asio::streambuf buf(16 * 1024 * 1024);  // one message at most 16 MiB
    for (;;) {
      boost::system::error_code ec;
      size_t n = co_await asio::async_read_until(*out_, buf, '\n', asio::redirect_error(asio::use_awaitable, ec));
      if (ec || inc != incarnation_) break;
      std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
      buf.consume(n);
      std::error_code jec;
      json::value v = ParseJson(line, jec);
      auto* o = v.if_object();
      if (jec || o == nullptr) {
        spdlog::warn("mcp server '{}': not a JSON-RPC message on stdout, ignored", cfg_.name);
        continue;
      }
      const json::value* id = o->if_contains("id");
      bool response = id != nullptr && id->is_int64() && !o->contains("method");
      if (response) {
        if (auto it = pending_.find(id->get_int64()); it != pending_.end()) {
          it->second->answer = std::move(*o);
          it->second->timer->cancel();
        }
        continue;
      }
      std::string method = Str(o->if_contains("method"));
      if (id != nullptr) {
        // A request from the server (sampling, roots, elicitation): a
        // shared process cannot say for which client, so aigis declines.
        Notify(json::object{{"jsonrpc", "2.0"},
                            {"id", *id},
                            {"error", {{"code", kMethodNotFound},
                                       {"message", "aigis does not relay server-initiated requests from a stdio server"}}}});
        continue;
      }
      if (method == "notifications/tools/list_changed") {
        std::lock_guard lock(mu);
        catalog.reset();
      }
      if (on_notification) on_notification(cfg_.name, method);
    }
    if (inc == incarnation_) OnExit();
  }

  Task<void> DrainStderr(uint64_t inc) {
    auto self = shared_from_this();
    asio::streambuf buf(64 * 1024);
    for (;;) {
      boost::system::error_code ec;
      size_t n = co_await asio::async_read_until(*err_, buf, '\n', asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::not_found) {  // a line longer than the buffer: log what there is
        n = buf.size();
      } else if (ec || inc != incarnation_) {
        break;
      }
      std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
      buf.consume(n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      spdlog::info("mcp server '{}' stderr: {}", cfg_.name, line);
    }
  }

  // The whole group: launchers (npx, uvx, sh -c) run the server as a
  // grandchild that keeps the pipes open.
  void Signal(int sig) {
    if (pid_ > 0) ::kill(-pid_, sig);
  }
  void Kill() { Signal(SIGKILL); }

  void StopHere(std::shared_ptr<std::promise<void>> done) {
    stopping_.store(true);
    if (pid_ <= 0) {
      done->set_value();
      return;
    }
    stop_waiters_.push_back(std::move(done));
    Signal(SIGTERM);
    auto timer = std::make_shared<asio::steady_timer>(ctx_);
    timer->expires_after(std::chrono::seconds(2));
    timer->async_wait([self = shared_from_this(), timer, inc = incarnation_](const boost::system::error_code&) {
      if (self->incarnation_ == inc) self->Kill();
    });
  }

  void OnExit() {
    ready_.store(false);
    ++incarnation_;
    // Stdout is closed: the process exited or is about to; whatever is left
    // of its group is killed, then it is reaped (quick after SIGKILL).
    Kill();
    int status = 0;
    if (pid_ > 0) ::waitpid(pid_, &status, 0);
    pid_ = -1;
    for (auto& w : stop_waiters_) w->set_value();
    stop_waiters_.clear();
    in_.reset();
    out_.reset();
    err_.reset();
    out_queue_.clear();
    std::string how = WIFEXITED(status) ? fmt::format("exited with status {}", WEXITSTATUS(status))
                                        : fmt::format("was killed by signal {}", WTERMSIG(status));
    for (auto& [id, p] : pending_) {
      p->answer = Status(Code::kUnavailable,
                         fmt::format("MCP server '{}' (stdio) {} while the request was in flight", cfg_.name, how));
      p->timer->cancel();
    }
    {
      std::lock_guard lock(mu);
      catalog.reset();
    }
    if (stopping_.load()) return;
    spdlog::warn("mcp server '{}' {}; restarting in {} ms", cfg_.name, how, backoff_.count());
    restarts_.fetch_add(1);
    ScheduleRestart();
  }

  void ScheduleRestart() {
    if (stopping_.load()) return;
    // A process that ran for a while starts again soon; one that keeps
    // failing waits longer each time.
    if (std::chrono::steady_clock::now() - started_ > std::chrono::seconds(30)) backoff_ = cfg_.restart_backoff;
    auto delay = backoff_;
    backoff_ = std::min(backoff_ * 2, cfg_.max_restart_backoff);
    auto timer = std::make_shared<asio::steady_timer>(ctx_);
    timer->expires_after(delay);
    timer->async_wait([self = shared_from_this(), timer](const boost::system::error_code& ec) {
      if (!ec) self->Launch();
    });
  }

  asio::io_context& ctx_;
  config::McpServerConfig cfg_;
  std::string version_;
  const Clock* clock_;
  std::optional<asio::posix::stream_descriptor> in_, out_, err_;
  pid_t pid_ = -1;  // -1 once reaped
  std::vector<std::shared_ptr<std::promise<void>>> stop_waiters_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> restarts_{0};
  uint64_t incarnation_ = 0;
  int64_t next_id_ = 1;
  std::unordered_map<int64_t, Pending*> pending_;
  std::deque<std::string> out_queue_;
  bool writing_ = false;
  milliseconds backoff_;
  std::chrono::steady_clock::time_point started_{};
};

// A configured server as the request path sees it.
struct ServerRt {
  config::McpServerConfig cfg;
  net::Endpoint endpoint;         // http
  net::ClientOptions client;      // http
  std::shared_ptr<StdioProcess> stdio;  // stdio
};
using Servers = std::map<std::string, std::shared_ptr<const ServerRt>, std::less<>>;

// ------------------------------------------------------------- sessions ----

// An upstream HTTP session that aigis holds for one client session.
struct UpstreamSession {
  bool initialized = false;
  bool opening = false;  // a request is opening it
  std::string id;       // its Mcp-Session-Id ("" when the server keeps none)
  std::string version;  // negotiated with it
  std::shared_ptr<const Catalog> catalog;
};

// A pending event of a session's GET stream.
struct StreamEvent {
  uint64_t id = 0;
  std::string data;
};

struct Session {
  std::string id;
  std::string owner;  // tenant \0 kind \0 id: only its principal may use it
  std::string scope;  // the server of /mcp/<server>, "" for /mcp
  std::string version;
  std::mutex mu;
  std::map<std::string, UpstreamSession> upstreams;  // http servers, by name
  std::map<std::string, std::string> resource_servers;  // federated: resource URI -> server that listed it
  MonoTime last_used{};
  bool closed = false;
  // The GET stream: events not yet sent, and the last ones sent (for
  // Last-Event-ID), bounded.
  std::deque<StreamEvent> queue, sent;
  uint64_t next_event = 1;
  std::shared_ptr<asio::steady_timer> stream_wake;  // the open stream's timer
  uint64_t stream_generation = 0;
};

std::string OwnerOf(const Exchange& ex) {
  return ex.tenant + '\0' + ex.principal.kind + '\0' + ex.principal.id;
}

std::string Cursor(size_t offset) { return crypto::Base64UrlEncode(fmt::format("aigis:{}", offset)); }
std::optional<size_t> FromCursor(std::string_view c) {
  auto raw = crypto::Base64UrlDecode(c);
  if (!raw.ok() || !StartsWith(*raw, "aigis:")) return std::nullopt;
  size_t v = 0;
  auto [p, ec] = std::from_chars(raw->data() + 6, raw->data() + raw->size(), v);
  if (ec != std::errc() || p != raw->data() + raw->size()) return std::nullopt;
  return v;
}

}  // namespace

// Relays a server's notifications about a request in flight (progress, log
// messages) to the client while the request runs: the answer becomes an SSE
// stream at the first one (only for a client that accepts text/event-stream).
struct Relay {
  Exchange& ex;
  net::ResponseWriter& w;
  std::string session_id;
  bool started = false;
  bool failed = false;
  std::vector<std::string> pending;  // JSON-RPC notifications to write

  static bool Relays(std::string_view method) {
    return method == "notifications/progress" || method == "notifications/message";
  }
  Task<void> Flush() {
    if (pending.empty() || failed) co_return;
    if (!started) {
      started = true;
      ex.status = 200;
      Headers h;
      h.Add("Content-Type", "text/event-stream");
      h.Add("Cache-Control", "no-cache");
      h.Add("Mcp-Session-Id", session_id);
      h.Add("X-Request-Id", ex.request_id);
      if (!(co_await w.Start(200, std::move(h))).ok()) {
        failed = true;
        co_return;
      }
    }
    std::string out;
    for (const auto& e : pending) out += fmt::format("event: message\ndata: {}\n\n", e);
    pending.clear();
    if (!(co_await w.Write(out)).ok()) failed = true;
  }
};

// ----------------------------------------------------------------- Impl ----

struct McpGateway::Impl : std::enable_shared_from_this<McpGateway::Impl> {
  // The stdio servers' pipes, timers and process supervision: one thread of
  // their own (a blocking waitpid or a slow server never stalls a worker).
  net::IoPool stdio_pool{1};
  asio::io_context& stdio_ctx = stdio_pool.context(0);
  McpHooks hooks;
  SystemClock system_clock;
  const Clock* clock;

  std::mutex servers_mu;
  std::shared_ptr<const Servers> servers = std::make_shared<Servers>();
  std::atomic<int64_t> next_rpc_id{1};

  mutable std::mutex sessions_mu;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions;

  // Pin statuses per tenant and server, as last observed in the store.
  struct PinCache {
    std::vector<std::pair<std::string, std::string>> listing;  // name, fingerprint
    std::weak_ptr<const Catalog> catalog;                      // the one it was last matched with
    std::shared_ptr<const std::vector<registry::ToolStatus>> statuses;  // first_seen cleared
    MonoTime at{};
    uint64_t generation = 0;
  };
  std::mutex pins_mu;
  std::map<std::string, PinCache> pin_cache;
  // Description screens by fingerprint (a definition is screened once).
  struct Poison {
    bool block = false;
    std::string rule;
  };
  std::map<std::string, Poison> poison_cache;        // fingerprint, principal, route -> verdict
  std::shared_ptr<const guard::RuleSet> poison_rules;  // what poison_cache was screened with
  // authorization store ids by tenant
  std::mutex store_mu;
  std::map<std::string, std::string> store_ids;

  explicit Impl(McpHooks h) : hooks(std::move(h)), clock(hooks.clock ? hooks.clock : &system_clock) {
    stdio_pool.Start();
  }

  std::shared_ptr<const Servers> Snapshot() {
    std::lock_guard lock(servers_mu);
    return servers;
  }

  // ---------------------------------------------------------- responses --

  static json::object Reply(const json::value& id, json::value result) {
    return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
  }
  static json::object ReplyError(const json::value& id, const RpcError& e) {
    json::object err{{"code", e.code}, {"message", e.message}};
    if (!e.data.empty()) err["data"] = e.data;
    return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
  }

  // (GCC 12 destroys temporaries of a co_await expression twice: callers
  // pass locals, and headers by pointer.)
  static Task<void> SendJson(Exchange& ex, net::ResponseWriter& w, int status, const json::object& body,
                             Headers* extra) {
    ex.status = status;
    net::Response r;
    r.status = status;
    if (extra != nullptr) r.headers = std::move(*extra);
    r.headers.Add("Content-Type", "application/json");
    r.headers.Add("X-Request-Id", ex.request_id);
    r.body = json::serialize(body);
    if (!(co_await w.Send(std::move(r))).ok()) ex.client_gone = true;
  }
  // A bodiless answer: 200 to DELETE, 202 to notifications and responses.
  static Task<void> SendEmpty(Exchange& ex, net::ResponseWriter& w, int status) {
    ex.status = status;
    net::Response r;
    r.status = status;
    r.headers.Add("X-Request-Id", ex.request_id);
    if (!(co_await w.Send(std::move(r))).ok()) ex.client_gone = true;
  }
  // An error outside any JSON-RPC exchange (HTTP-level), or for a request
  // whose id is known.
  static Task<void> SendError(Exchange& ex, net::ResponseWriter& w, int status, const json::value& id,
                              const RpcError& e, Headers* extra) {
    ex.mcp.error_code = e.code;
    ex.mcp.error = e.message;
    json::object body = ReplyError(id, e);
    co_await SendJson(ex, w, status, body, extra);
  }

  void Deny(Exchange& ex, std::string stage, const RpcError& e) {
    ex.decisions.push_back({std::move(stage), "deny", Str(e.data.if_contains("code")), e.message});
  }

  // ---------------------------------------------------------- upstreams --

  // POSTs one JSON-RPC message to an HTTP server; the response to it (an
  // empty object for a notification). `session_id` is updated from the
  // answer's header when given.
  Task<Answer> HttpPost(const ServerRt& s, net::HttpClient& client, const std::string& session_id,
                        const std::string& version, const json::object& msg, net::Cancellation* cancel,
                        std::string* new_session, Relay* relay = nullptr) {
    net::ClientRequest creq;
    creq.method = "POST";
    creq.target = s.endpoint.base_path.empty() ? "/" : s.endpoint.base_path;
    creq.headers.Add("Content-Type", "application/json");
    creq.headers.Add("Accept", "application/json, text/event-stream");
    if (!session_id.empty()) creq.headers.Add("Mcp-Session-Id", session_id);
    if (!version.empty()) creq.headers.Add("MCP-Protocol-Version", version);
    for (const auto& [k, v] : s.cfg.headers) creq.headers.Set(k, v.Reveal());
    creq.body = json::serialize(msg);
    auto sent = co_await client.Send(s.endpoint, s.client, std::move(creq), cancel);
    if (!sent.ok()) co_return sent.status();
    auto resp = std::move(sent).value();
    if (new_session != nullptr) *new_session = std::string(resp->headers.Get("mcp-session-id"));
    if (!msg.contains("id")) {
      (void)co_await resp->ReadAll(64 * 1024);
      if (resp->status == 202 || resp->status == 200) co_return json::object();
      co_return Unavailable(fmt::format("MCP server '{}' answered HTTP {} to a notification", s.cfg.name, resp->status));
    }
    if (resp->status == 404 && !session_id.empty()) {
      (void)co_await resp->ReadAll(64 * 1024);
      co_return NotFound("upstream session expired");
    }
    if (resp->status != 200) {
      auto body = co_await resp->ReadAll(64 * 1024);
      // A JSON-RPC error in a 4xx body is the server's answer.
      if (body.ok() && resp->status >= 400 && resp->status < 500) {
        std::error_code ec;
        json::value v = ParseJson(*body, ec);
        if (!ec && v.is_object() && v.get_object().contains("error")) co_return v.get_object();
      }
      co_return Unavailable(fmt::format("MCP server '{}' answered HTTP {}", s.cfg.name, resp->status));
    }
    const json::value& want = msg.at("id");
    std::string_view type = resp->headers.Get("content-type");
    if (StartsWith(ToLowerAscii(type), "text/event-stream")) {
      net::SseParser parser(16 << 20);
      std::optional<json::object> found;
      for (;;) {
        auto piece = co_await resp->Read();
        if (!piece.ok()) co_return piece.status();
        if (piece->empty()) break;
        Status st = parser.Feed(*piece, [&](const net::SseEvent& ev) {
          if (found || ev.data.empty()) return;
          std::error_code ec;
          json::value v = ParseJson(ev.data, ec);
          auto* o = v.if_object();
          if (ec || o == nullptr) return;
          if (o->contains("method")) {
            // Notifications about this request go to the client when it
            // streams; server requests (sampling...) are not relayed.
            if (relay != nullptr && !o->contains("id") && Relay::Relays(Str(o->if_contains("method")))) {
              relay->pending.push_back(ev.data);
            }
            return;
          }
          if (const auto* id = o->if_contains("id"); id && *id == want) found = std::move(*o);
        });
        if (!st.ok()) co_return st;
        if (relay != nullptr) co_await relay->Flush();
        if (found) break;
      }
      if (found) co_return std::move(*found);
      co_return Unavailable(fmt::format("MCP server '{}' ended its event stream without answering", s.cfg.name));
    }
    auto body = co_await resp->ReadAll(64u << 20);
    if (!body.ok()) co_return body.status();
    std::error_code ec;
    json::value v = ParseJson(*body, ec);
    if (ec || !v.is_object()) co_return Unavailable(fmt::format("MCP server '{}' answered with a body that is not a JSON-RPC message", s.cfg.name));
    co_return std::move(v.get_object());
  }

  // Opens the client session's upstream session with an HTTP server.
  // Requests of one client session may run at once on several threads: one
  // of them opens the upstream session, the others wait for it (briefly
  // polling: this happens once per session and server).
  Task<Status> EnsureHttpSession(Session& sess, const ServerRt& s, net::HttpClient& client, net::Cancellation* cancel) {
    auto exec = co_await asio::this_coro::executor;
    asio::steady_timer wait(exec);
    auto deadline = std::chrono::steady_clock::now() + s.cfg.timeout;
    for (;;) {
      {
        std::lock_guard lock(sess.mu);
        auto& up = sess.upstreams[s.cfg.name];
        if (up.initialized) co_return Status::Ok();
        if (!up.opening) {
          up.opening = true;
          break;
        }
      }
      if ((cancel != nullptr && cancel->cancelled()) || std::chrono::steady_clock::now() > deadline) {
        co_return Unavailable(fmt::format("MCP server '{}': the upstream session did not open in time", s.cfg.name));
      }
      wait.expires_after(std::chrono::milliseconds(2));
      boost::system::error_code ec;
      co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    Status st = co_await OpenHttpSession(sess, s, client, cancel);
    std::lock_guard lock(sess.mu);
    sess.upstreams[s.cfg.name].opening = false;
    co_return st;
  }

  Task<Status> OpenHttpSession(Session& sess, const ServerRt& s, net::HttpClient& client, net::Cancellation* cancel) {
    json::object init{{"jsonrpc", "2.0"},
                      {"id", 0},
                      {"method", "initialize"},
                      {"params",
                       {{"protocolVersion", sess.version},
                        {"capabilities", json::object()},
                        {"clientInfo", {{"name", "aigis"}, {"version", hooks.version}}}}}};
    std::string upstream_session;
    std::string none;
    auto answer = co_await HttpPost(s, client, none, none, init, cancel, &upstream_session);
    if (!answer.ok()) co_return answer.status();
    const auto* result = answer->if_contains("result");
    if (result == nullptr || !result->is_object()) {
      co_return Unavailable(fmt::format("MCP server '{}' refused to initialize: {}", s.cfg.name,
                                        answer->contains("error") ? json::serialize(answer->at("error")) : "no result"));
    }
    std::string version = Str(result->get_object().if_contains("protocolVersion"));
    if (!Supported(version)) {
      co_return Unavailable(fmt::format("MCP server '{}' speaks protocol version '{}', which aigis does not", s.cfg.name, version));
    }
    json::object note{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
    auto noted = co_await HttpPost(s, client, upstream_session, version, note, cancel, nullptr);
    if (!noted.ok()) co_return noted.status();
    std::lock_guard lock(sess.mu);
    auto& up = sess.upstreams[s.cfg.name];
    up.initialized = true;
    up.id = upstream_session;
    up.version = version;
    co_return Status::Ok();
  }

  // A stdio request, run on the stdio thread (co_spawn's result must be
  // default-constructible: an optional).
  static Task<std::optional<Answer>> OnStdio(std::shared_ptr<StdioProcess> proc, json::object msg, milliseconds timeout) {
    auto answer = co_await proc->Call(std::move(msg), timeout);
    co_return std::optional<Answer>(std::move(answer));
  }

  // One request to a server on behalf of a client session.
  Task<Answer> Call(Session& sess, const ServerRt& s, net::HttpClient& client, net::Cancellation* cancel,
                    std::string_view method, json::value params, Relay* relay = nullptr) {
    // Unique ids: an upstream session may carry several requests at once,
    // and servers route answers (and cancellations) by id.
    json::object msg{{"jsonrpc", "2.0"}, {"id", next_rpc_id.fetch_add(1, std::memory_order_relaxed)}, {"method", method}};
    if (!params.is_null()) msg["params"] = std::move(params);
    if (s.stdio) {
      auto proc = s.stdio;
      milliseconds timeout = s.cfg.timeout;
      // co_spawn's result must be default-constructible: an optional.
      auto task = OnStdio(proc, std::move(msg), timeout);
      std::optional<Answer> answer = co_await asio::co_spawn(stdio_ctx, std::move(task), asio::use_awaitable);
      co_return std::move(*answer);
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (Status st = co_await EnsureHttpSession(sess, s, client, cancel); !st.ok()) co_return st;
      std::string id, version;
      {
        std::lock_guard lock(sess.mu);
        const auto& up = sess.upstreams[s.cfg.name];
        id = up.id;
        version = up.version;
      }
      auto answer = co_await HttpPost(s, client, id, version, msg, cancel, nullptr, relay);
      if (answer.ok() || answer.status().code() != Code::kNotFound || attempt == 1) co_return answer;
      // The server forgot the session (it restarted): open a new one, once.
      std::lock_guard lock(sess.mu);
      sess.upstreams[s.cfg.name] = UpstreamSession{};
    }
    co_return Unavailable("unreachable");
  }

  // Every page of a list method, items of `key` concatenated (bounded).
  Task<Result<json::array>> ListAll(Session& sess, const ServerRt& s, net::HttpClient& client, net::Cancellation* cancel,
                                    std::string_view method, std::string_view key) {
    json::array items;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      json::object params;
      if (!cursor.empty()) params["cursor"] = cursor;
      json::value pv = std::move(params);
      auto answer = co_await Call(sess, s, client, cancel, method, std::move(pv));
      if (!answer.ok()) co_return answer.status();
      if (const auto* err = answer->if_contains("error")) {
        // A server without the capability has nothing to list.
        const auto* code = err->is_object() ? err->get_object().if_contains("code") : nullptr;
        if (code && code->is_int64() && code->get_int64() == kMethodNotFound) co_return items;
        co_return Status(Code::kFailedPrecondition, fmt::format("{} failed: {}", method, json::serialize(*err)));
      }
      const auto* result = answer->if_contains("result");
      const auto* list = result && result->is_object() ? result->get_object().if_contains(key) : nullptr;
      if (list == nullptr || !list->is_array()) {
        co_return Unavailable(fmt::format("MCP server '{}' answered {} without a '{}' list", s.cfg.name, method, key));
      }
      for (const auto& item : list->get_array()) items.push_back(item);
      cursor = Str(result->get_object().if_contains("nextCursor"));
      if (cursor.empty()) co_return items;
    }
    co_return items;
  }

  // ------------------------------------------------------------ catalog --

  // The server's tools with the caller's pin states and poisoning verdicts;
  // the list is re-read from the server when `refresh`, when older than
  // catalog_ttl, or after list_changed.
  // `only`: the one tool the caller needs (others are not built, but their
  // alerts are still raised).
  Task<Result<Tools>> ToolsFor(Exchange& ex, Session& sess, const ServerRt& s, net::HttpClient& client,
                               net::Cancellation* cancel, bool refresh, std::string_view only = {}) {
    milliseconds ttl = ex.config->mcp.catalog_ttl;
    std::shared_ptr<const Catalog> cat;
    if (!refresh) {
      std::lock_guard lock(s.stdio ? s.stdio->mu : sess.mu);
      cat = s.stdio ? s.stdio->catalog : sess.upstreams[s.cfg.name].catalog;
      if (cat && clock->Monotonic() - cat->fetched >= ttl) cat.reset();
    }
    if (!cat) {
      auto listed = co_await ListAll(sess, s, client, cancel, "tools/list", "tools");
      if (!listed.ok()) co_return listed.status();
      auto fresh = std::make_shared<Catalog>();
      for (const auto& t : *listed) {
        if (!t.is_object()) co_return Unavailable(fmt::format("MCP server '{}' listed a tool that is not an object", s.cfg.name));
        auto fp = registry::ToolFingerprint(json::serialize(t));
        if (!fp.ok()) co_return Unavailable(fmt::format("MCP server '{}' listed a bad tool: {}", s.cfg.name, fp.status().message()));
        fresh->listing.emplace_back(Str(t.get_object().if_contains("name")), *fp);
      }
      fresh->listed = std::move(listed).value();
      fresh->fetched = clock->Monotonic();
      cat = fresh;
      std::lock_guard lock(s.stdio ? s.stdio->mu : sess.mu);
      (s.stdio ? s.stdio->catalog : sess.upstreams[s.cfg.name].catalog) = cat;
    }
    // Per tenant (pins) and per caller (the guard policy): never cached with
    // the list, which other tenants share.
    auto statuses = co_await Pins(ex, s, cat);
    if (!statuses.ok()) co_return statuses.status();
    auto rules = hooks.rules ? hooks.rules() : nullptr;
    bool screen = ex.config->guard.enabled;
    if (screen && rules == nullptr) co_return Status(Code::kFailedPrecondition, std::string(kGuardUnavailable));
    Tools out{cat, {}};
    for (size_t i = 0; i < cat->listing.size(); ++i) {
      const registry::ToolStatus& st = (**statuses)[i];
      if (!only.empty() && cat->listing[i].first != only && !st.first_seen) continue;
      ToolEntry e;
      e.def = &cat->listed[i].get_object();
      e.name = cat->listing[i].first;
      e.fingerprint = cat->listing[i].second;
      e.state = st.state;
      if (st.first_seen && e.state == registry::ToolState::kQuarantined) {
        json::array changes;
        for (const auto& c : st.changes) {
          changes.push_back(json::object{{"pointer", c.pointer}, {"before", c.before}, {"after", c.after}});
        }
        json::object detail{{"server", s.cfg.name},
                            {"tool", e.name},
                            {"approved_fingerprint", st.approved_fingerprint},
                            {"fingerprint", e.fingerprint},
                            {"changes", std::move(changes)}};
        Alert(ex, "mcp_tool_changed", json::serialize(detail));
      } else if (st.first_seen && e.state == registry::ToolState::kPending) {
        Alert(ex, "mcp_tool_pending",
              json::serialize(json::object{{"server", s.cfg.name}, {"tool", e.name}, {"fingerprint", e.fingerprint}}));
      }
      if (screen) {
        Poison p = Screened(ex, rules, s.cfg.name, e);
        e.poisoned = p.block;
        e.poison_rule = p.rule;
      }
      out.entries.push_back(std::move(e));
    }
    co_return out;
  }

  // A definition screened for poisoning, once per fingerprint and caller
  // (the guard policy depends on the principal) while the rules stay the same.
  Poison Screened(Exchange& ex, const std::shared_ptr<const guard::RuleSet>& rules, const std::string& server,
                  const ToolEntry& e) {
    std::string key = fmt::format("{}\x1f{}:{}\x1f{}", e.fingerprint, ex.principal.kind, ex.principal.id, ex.route);
    {
      std::lock_guard lock(pins_mu);
      if (poison_rules != rules) {
        poison_cache.clear();
        poison_rules = rules;
      }
      if (auto it = poison_cache.find(key); it != poison_cache.end()) return it->second;
    }
    guard::Verdict v = ScreenToolDefinition(ex, *rules, json::serialize(*e.def));
    Poison p;
    p.block = v.block;
    if (v.top) p.rule = v.top->id;
    if (v.block) {
      Alert(ex, "mcp_tool_poisoned",
            json::serialize(json::object{{"server", server},
                                         {"tool", e.name},
                                         {"fingerprint", e.fingerprint},
                                         {"rule", p.rule},
                                         {"category", v.top ? v.top->category : ""},
                                         {"score_milli", static_cast<int64_t>(v.score * 1000)}}));
    }
    std::lock_guard lock(pins_mu);
    if (poison_cache.size() > 100'000) poison_cache.clear();
    poison_cache[key] = p;
    return p;
  }

  void Alert(Exchange& ex, const std::string& kind, const std::string& detail) {
    ex.mcp.alerts.push_back(kind);
    if (hooks.alert) hooks.alert(ex, kind, detail);
  }

  // The pin statuses of a listing, from the store (on the blocking pool)
  // unless the same listing was observed in the last seconds.
  using Statuses = std::shared_ptr<const std::vector<registry::ToolStatus>>;
  Task<Result<Statuses>> Pins(Exchange& ex, const ServerRt& s, const std::shared_ptr<const Catalog>& catalog) {
    const Catalog& cat = *catalog;
    const auto& listing = cat.listing;
    std::string key = ex.tenant + '\0' + s.cfg.name;
    uint64_t gen = hooks.pins->generation();
    {
      std::lock_guard lock(pins_mu);
      auto it = pin_cache.find(key);
      if (it != pin_cache.end() && it->second.generation == gen &&
          clock->Monotonic() - it->second.at < std::chrono::seconds(5)) {
        // The same catalog object (no compare), or an equal listing.
        const auto& seen = it->second.catalog;
        bool same = !seen.owner_before(catalog) && !catalog.owner_before(seen) && !seen.expired();
        if (same || it->second.listing == listing) {
          if (!same) it->second.catalog = catalog;
          co_return it->second.statuses;
        }
      }
    }
    Result<std::vector<registry::ToolStatus>> out = Status(Code::kInternal, "not run");
    std::string text = json::serialize(cat.listed);
    registry::PinPolicy policy{s.cfg.auto_approve};
    std::string tenant = ex.tenant, server = s.cfg.name;
    auto pins = hooks.pins;
    std::function<void()> job = [&] { out = pins->Observe(tenant, server, text, policy); };
    co_await hooks.blocking(std::move(job));
    if (!out.ok()) co_return Status(Code::kUnavailable, "tool registry: " + out.status().message());
    auto cached = std::make_shared<std::vector<registry::ToolStatus>>(*out);
    for (auto& st : *cached) st.first_seen = false;  // alerts are raised once, by this caller
    {
      std::lock_guard lock(pins_mu);
      pin_cache[key] = PinCache{listing, catalog, cached, clock->Monotonic(), gen};
    }
    co_return Statuses(std::make_shared<const std::vector<registry::ToolStatus>>(std::move(out).value()));
  }

  // -------------------------------------------------------------- authz --

  // For each subject (the caller, each actor), the objects of `type` it has
  // `relation` on; nullopt when authorization is off (everything goes).
  using Grants = std::optional<std::vector<std::set<std::string, std::less<>>>>;
  Result<Grants> ListGrants(Exchange& ex, std::string_view type, std::string_view relation) {
    if (!hooks.authz || !ex.config->authz.enabled) return Grants();
    auto store = StoreId(ex);
    if (!store.ok()) return store.status();
    auto view = hooks.authz->View(ex.tenant, *store, "");
    if (!view.ok()) {
      ForgetStore(ex);  // deleted and created again: look it up next time
      return view.status();
    }
    std::vector<std::set<std::string, std::less<>>> out;
    for (const auto& subject : SubjectsOf(ex.principal)) {
      auto objects = view->engine->ListObjects(view->tuples, type, relation, subject, {}, ConditionContext(*view->engine, ex));
      if (!objects.ok()) return objects.status();
      AuthzRecord& rec = ex.authz.emplace_back();
      rec.decision_id = fmt::format("{}.authz.{}", ex.request_id, ex.authz.size() - 1);
      rec.allowed = true;
      rec.user = subject;
      rec.relation = std::string(relation);
      rec.object = std::string(type) + ":";
      rec.model_id = view->model_id;
      rec.revision = view->tuples.revision();
      for (size_t i = 0; i < objects->size() && i < 64; ++i) rec.explanation.push_back("list_objects: " + (*objects)[i]);
      out.emplace_back(objects->begin(), objects->end());
    }
    return Grants(std::move(out));
  }
  static bool Granted(const Grants& g, std::string_view type, std::string_view server, std::string_view name) {
    if (!g) return true;
    std::string exact = ObjectId(type, server, name);
    std::string wide = fmt::format("{}:{}/*", type, server);
    for (const auto& set : *g) {
      if (!set.count(exact) && !set.count(wide)) return false;
    }
    return true;
  }
  static bool AnyGrant(const Grants& g, std::string_view server) {
    if (!g) return true;
    std::string prefix = fmt::format("{}/", server);
    for (const auto& set : *g) {
      bool any = false;
      for (const auto& o : set) {
        size_t colon = o.find(':');
        if (colon != std::string::npos && std::string_view(o).substr(colon + 1).starts_with(prefix)) any = true;
      }
      if (!any) return false;
    }
    return true;
  }

  // Check one item for every subject: the deny (with decision id), or none.
  std::optional<RpcError> CheckItem(Exchange& ex, std::string_view type, std::string_view relation,
                                    std::string_view server, std::string_view name) {
    if (!hooks.authz || !ex.config->authz.enabled) return std::nullopt;
    auto store = StoreId(ex);
    std::string object = ObjectId(type, server, name);
    auto fail = [&](AuthzRecord& rec, std::string why) {
      RpcError e = Err(kPermissionDenied, "permission_denied", fmt::format("{} (decision {})", why, rec.decision_id));
      e.data["decision_id"] = rec.decision_id;
      Deny(ex, "authorize", e);
      return e;
    };
    auto add = [&](const std::string& user) -> AuthzRecord& {
      AuthzRecord& rec = ex.authz.emplace_back();
      rec.decision_id = fmt::format("{}.authz.{}", ex.request_id, ex.authz.size() - 1);
      rec.user = user;
      rec.relation = std::string(relation);
      rec.object = object;
      return rec;
    };
    if (!store.ok()) {
      AuthzRecord& rec = add("");
      rec.error = store.status().message();
      return fail(rec, "authorization could not be decided: " + rec.error);
    }
    for (const auto& subject : SubjectsOf(ex.principal)) {
      authz::CheckRequest req;
      req.tuple.user = subject;
      req.tuple.relation = std::string(relation);
      req.tuple.object = object;
      req.explain = true;
      authz::TupleKey parent;
      parent.object = object;
      parent.relation = "parent";
      parent.user = fmt::format("{}:{}/*", type, server);
      req.contextual_tuples.push_back(std::move(parent));
      auto out = hooks.authz->Check(ex.tenant, *store, "", req);
      AuthzRecord& rec = add(subject);
      if (!out.ok()) {
        ForgetStore(ex);
        rec.error = out.status().message();
        return fail(rec, "authorization could not be decided: " + rec.error);
      }
      rec.allowed = out->result.allowed;
      rec.explanation = std::move(out->result.explanation);
      rec.model_id = out->model_id;
      rec.revision = out->revision;
      rec.cached = out->cached;
      if (!rec.allowed) return fail(rec, fmt::format("{} may not {} {}", subject, relation, object));
    }
    return std::nullopt;
  }

  void ForgetStore(const Exchange& ex) {
    std::lock_guard lock(store_mu);
    store_ids.erase(ex.tenant + '\0' + ex.config->authz.store);
  }

  Result<std::string> StoreId(const Exchange& ex) {
    const std::string& name = ex.config->authz.store;
    std::string key = ex.tenant + '\0' + name;
    {
      std::lock_guard lock(store_mu);
      if (auto it = store_ids.find(key); it != store_ids.end()) return it->second;
    }
    auto found = hooks.authz->FindStoreByName(ex.tenant, name);
    if (!found.ok()) return NotFound(fmt::format("tenant '{}' has no authorization store '{}'", ex.tenant, name));
    std::lock_guard lock(store_mu);
    store_ids[key] = found->id;
    return found->id;
  }

  // ------------------------------------------------------------ methods --

  struct Ctx {
    Exchange& ex;
    Session& sess;
    const Servers& servers;
    net::HttpClient& client;
    net::Cancellation* cancel;
    std::string sep;
    Relay* relay = nullptr;  // set when the client accepts an SSE answer
    bool federated() const { return sess.scope.empty(); }
    // The servers a request may reach: the session's one, or all.
    std::vector<std::shared_ptr<const ServerRt>> Reach() const {
      std::vector<std::shared_ptr<const ServerRt>> out;
      if (!federated()) {
        if (auto it = servers.find(sess.scope); it != servers.end()) out.push_back(it->second);
        return out;
      }
      for (const auto& [name, s] : servers) out.push_back(s);
      return out;
    }
    // A namespaced name -> (server, name on that server).
    std::optional<std::pair<std::shared_ptr<const ServerRt>, std::string>> Route(std::string_view name) const {
      if (!federated()) {
        auto it = servers.find(sess.scope);
        if (it == servers.end()) return std::nullopt;
        return std::make_pair(it->second, std::string(name));
      }
      size_t at = name.find(sep);
      if (at == std::string_view::npos) return std::nullopt;
      auto it = servers.find(name.substr(0, at));
      if (it == servers.end()) return std::nullopt;
      return std::make_pair(it->second, std::string(name.substr(at + sep.size())));
    }
  };

  using Outcome = std::variant<json::value, RpcError>;

  // Guard on without rules: nothing is listed or called (fail closed).
  RpcError GuardUnavailable(Exchange& ex) {
    RpcError e = Err(kInternalError, "guard_unavailable",
                     "the guard rules are not loaded: tool definitions cannot be screened");
    Deny(ex, "screen_tool", e);
    return e;
  }

  // The server's own JSON-RPC error, passed through (and noted).
  static RpcError ServerError(Exchange& ex, const ServerRt& s, const json::value& err) {
    ex.mcp.upstream_error = fmt::format("{}: {}", s.cfg.name, json::serialize(err));
    RpcError e;
    e.upstream = true;
    const auto* eo = err.if_object();
    const auto* code = eo ? eo->if_contains("code") : nullptr;
    e.code = code && code->is_int64() ? static_cast<int>(code->get_int64()) : kInternalError;
    e.message = eo ? Str(eo->if_contains("message")) : "";
    if (eo && eo->contains("data") && eo->at("data").is_object()) e.data = eo->at("data").get_object();
    return e;
  }

  static RpcError UpstreamError(Exchange& ex, const ServerRt& s, const Status& st) {
    ex.mcp.upstream_error = fmt::format("{}: {}", s.cfg.name, st.message());
    return Err(kUpstreamFailed, st.code() == Code::kDeadlineExceeded ? "upstream_timeout" : "upstream_unavailable",
               fmt::format("MCP server '{}' failed: {}", s.cfg.name, st.message()));
  }

  // One page of `items` from `cursor` (aigis's own cursors: offsets).
  Outcome Page(const Ctx& c, json::array items, const json::object* params, std::string_view key) {
    size_t offset = 0;
    if (params) {
      if (const auto* cur = params->if_contains("cursor"); cur && !cur->is_null()) {
        auto at = cur->is_string() ? FromCursor(cur->get_string()) : std::nullopt;
        if (!at) return Err(kInvalidParams, "invalid_cursor", "invalid cursor: pass the nextCursor of the previous page");
        offset = *at;
      }
    }
    size_t size = c.ex.config->mcp.page_size;
    json::array page;
    for (size_t i = offset; i < items.size() && i < offset + size; ++i) page.push_back(std::move(items[i]));
    json::object result{{std::string(key), std::move(page)}};
    if (offset + size < items.size()) result["nextCursor"] = Cursor(offset + size);
    return json::value(std::move(result));
  }

  // ListGrants, or the deny to answer with (fail closed).
  std::variant<Grants, RpcError> GrantsOrDeny(Exchange& ex, std::string_view type, std::string_view relation) {
    auto grants = ListGrants(ex, type, relation);
    if (grants.ok()) return std::move(grants).value();
    RpcError e = Err(kPermissionDenied, "authz_error", "authorization could not be decided: " + grants.status().message());
    Deny(ex, "authorize", e);
    return e;
  }

  Task<Outcome> ListTools(Ctx& c, const json::object* params) {
    auto granted = GrantsOrDeny(c.ex, "tool", "can_call");
    if (auto* e = std::get_if<RpcError>(&granted)) co_return *e;
    const Grants& grants = std::get<Grants>(granted);
    json::array out;
    for (const auto& s : c.Reach()) {
      if (!AnyGrant(grants, s->cfg.name)) continue;  // nothing there for this caller: not even asked
      auto tools = co_await ToolsFor(c.ex, c.sess, *s, c.client, c.cancel, /*refresh=*/true);
      if (!tools.ok() && tools.status().message() == kGuardUnavailable) co_return GuardUnavailable(c.ex);
      if (!tools.ok()) {
        if (!c.federated()) co_return UpstreamError(c.ex, *s, tools.status());
        c.ex.mcp.upstream_error += fmt::format("{}{}: {}", c.ex.mcp.upstream_error.empty() ? "" : "; ", s->cfg.name,
                                               tools.status().message());
        continue;  // the others still answer
      }
      for (const auto& t : tools->entries) {
        if (t.state != registry::ToolState::kApproved || t.poisoned) continue;
        if (!Granted(grants, "tool", s->cfg.name, t.name)) continue;
        json::object def = *t.def;
        if (c.federated()) def["name"] = s->cfg.name + c.sep + t.name;
        out.push_back(std::move(def));
      }
    }
    co_return Page(c, std::move(out), params, "tools");
  }

  Task<Outcome> CallTool(Ctx& c, json::object params) {
    std::string name = Str(params.if_contains("name"));
    if (name.empty()) co_return Err(kInvalidParams, "invalid_params", "tools/call needs params.name (a string)");
    auto route = c.Route(name);
    if (!route) co_return Err(kInvalidParams, "unknown_tool", fmt::format("Unknown tool: {}", name));
    const ServerRt& s = *route->first;
    const std::string& tool = route->second;
    c.ex.mcp.server = s.cfg.name;
    c.ex.mcp.tool = tool;
    c.ex.upstream = s.cfg.name;
    if (auto denied = CheckItem(c.ex, "tool", "can_call", s.cfg.name, tool)) co_return *denied;
    auto tools = co_await ToolsFor(c.ex, c.sess, s, c.client, c.cancel, /*refresh=*/false, tool);
    if (!tools.ok() && tools.status().message() == kGuardUnavailable) co_return GuardUnavailable(c.ex);
    if (!tools.ok()) co_return UpstreamError(c.ex, s, tools.status());
    const ToolEntry* entry = nullptr;
    for (const auto& t : tools->entries) {
      if (t.name == tool) entry = &t;
    }
    if (entry == nullptr) co_return Err(kInvalidParams, "unknown_tool", fmt::format("Unknown tool: {}", name));
    if (entry->poisoned) {
      RpcError e = Err(kContentBlocked, "tool_poisoned",
                       fmt::format("tool '{}' is withheld: its definition was flagged by guardrail rule {}", name,
                                   entry->poison_rule));
      Deny(c.ex, "screen_tool", e);
      co_return e;
    }
    if (entry->state != registry::ToolState::kApproved) {
      bool changed = entry->state == registry::ToolState::kQuarantined;
      RpcError e = Err(kToolNotApproved, changed ? "tool_quarantined" : "tool_pending",
                       changed ? fmt::format("tool '{}' is quarantined: its definition changed since it was approved; "
                                             "an admin must approve the new version", name)
                               : fmt::format("tool '{}' is waiting for an admin's approval", name));
      e.data["fingerprint"] = entry->fingerprint;
      Deny(c.ex, "pin", e);
      co_return e;
    }
    json::value args = params.contains("arguments") ? params["arguments"] : json::value(json::object());
    if (!args.is_object()) co_return Err(kInvalidParams, "invalid_params", "tools/call params.arguments must be an object");
    auto rules = hooks.rules ? hooks.rules() : nullptr;
    if (Decision d = ScreenToolJson(c.ex, rules, guard::Where::kToolArgs, args); d.denied()) {
      RpcError e = Err(d.status == 400 ? kContentBlocked : kInternalError, d.code, d.reason);
      Deny(c.ex, "screen_request", e);
      co_return e;
    }
    params["name"] = tool;
    params["arguments"] = std::move(args);
    auto t0 = clock->Monotonic();
    json::value pv = std::move(params);
    auto answer = co_await Call(c.sess, s, c.client, c.cancel, "tools/call", std::move(pv), c.relay);
    c.ex.upstream_latency += std::chrono::duration_cast<std::chrono::microseconds>(clock->Monotonic() - t0);
    ++c.ex.attempts;
    if (!answer.ok()) co_return UpstreamError(c.ex, s, answer.status());
    c.ex.upstream_status = 200;
    if (const auto* err = answer->if_contains("error")) co_return ServerError(c.ex, s, *err);
    json::value result = answer->contains("result") ? (*answer)["result"] : json::value(json::object());
    if (Decision d = ScreenToolJson(c.ex, rules, guard::Where::kToolResult, result); d.denied()) {
      RpcError e = Err(d.status == 400 ? kContentBlocked : kInternalError, d.code, d.reason);
      Deny(c.ex, "screen_response", e);
      co_return e;
    }
    co_return result;
  }

  // resources/list, resources/templates/list, prompts/list.
  Task<Outcome> ListOther(Ctx& c, const json::object* params, std::string_view method, std::string_view key) {
    bool prompts = method == "prompts/list";
    std::string type = prompts ? "mcp_prompt" : "mcp_resource";
    std::string relation = prompts ? "can_get" : "can_read";
    auto granted = GrantsOrDeny(c.ex, type, relation);
    if (auto* e = std::get_if<RpcError>(&granted)) co_return *e;
    const Grants& grants = std::get<Grants>(granted);
    json::array out;
    for (const auto& s : c.Reach()) {
      if (!AnyGrant(grants, s->cfg.name)) continue;
      auto items = co_await ListAll(c.sess, *s, c.client, c.cancel, method, key);
      if (!items.ok()) {
        if (!c.federated()) co_return UpstreamError(c.ex, *s, items.status());
        continue;
      }
      for (auto& item : *items) {
        auto* o = item.if_object();
        if (o == nullptr) continue;
        // Templates are covered by the server-wide grant only.
        std::string id = key == "resourceTemplates" ? "*" : Str(o->if_contains(prompts ? "name" : "uri"));
        if (!Granted(grants, type, s->cfg.name, id)) continue;
        if (c.federated() && prompts) (*o)["name"] = s->cfg.name + c.sep + id;
        if (c.federated() && key == "resources") {
          std::lock_guard lock(c.sess.mu);
          if (c.sess.resource_servers.size() < 100'000) c.sess.resource_servers[id] = s->cfg.name;
        }
        out.push_back(std::move(item));
      }
    }
    co_return Page(c, std::move(out), params, key);
  }

  // resources/read, resources/subscribe, resources/unsubscribe (by uri),
  // prompts/get (by name), completion/complete (by ref).
  Task<Outcome> Forward(Ctx& c, std::string_view method, json::object params) {
    bool prompt = method == "prompts/get";
    std::string id;
    json::object* ref = nullptr;
    if (method == "completion/complete") {
      ref = params.contains("ref") && params["ref"].is_object() ? &params["ref"].get_object() : nullptr;
      if (ref == nullptr) co_return Err(kInvalidParams, "invalid_params", "completion/complete needs params.ref");
      prompt = Str(ref->if_contains("type")) == "ref/prompt";
      id = Str(ref->if_contains(prompt ? "name" : "uri"));
    } else {
      id = Str(params.if_contains(prompt ? "name" : "uri"));
    }
    if (id.empty()) co_return Err(kInvalidParams, "invalid_params", fmt::format("{} needs params.{}", method, prompt ? "name" : "uri"));
    std::shared_ptr<const ServerRt> server;
    std::string upstream_id = id;
    if (prompt) {
      auto route = c.Route(id);
      if (!route) co_return Err(kInvalidParams, "unknown_prompt", fmt::format("Unknown prompt: {}", id));
      server = route->first;
      upstream_id = route->second;
    } else if (!c.federated()) {
      auto reach = c.Reach();
      if (reach.empty()) co_return Err(kInvalidParams, "unknown_server", "the session's server is no longer configured");
      server = reach.front();
    } else {
      std::string name;
      {
        std::lock_guard lock(c.sess.mu);
        if (auto it = c.sess.resource_servers.find(id); it != c.sess.resource_servers.end()) name = it->second;
      }
      if (auto it = c.servers.find(name); !name.empty() && it != c.servers.end()) server = it->second;
      if (!server) {
        co_return Err(kInvalidParams, "unknown_resource",
                      fmt::format("Resource not found: {} (list resources in this session first)", id));
      }
    }
    c.ex.mcp.server = server->cfg.name;
    c.ex.mcp.tool = upstream_id;
    c.ex.upstream = server->cfg.name;
    if (auto denied = CheckItem(c.ex, prompt ? "mcp_prompt" : "mcp_resource", prompt ? "can_get" : "can_read",
                                server->cfg.name, upstream_id)) {
      co_return *denied;
    }
    if (ref) (*ref)[prompt ? "name" : "uri"] = upstream_id;
    else params[prompt ? "name" : "uri"] = upstream_id;
    if (method == "prompts/get" && params.contains("arguments")) {
      // Prompt arguments go into what the model reads: screened (and
      // masked) as tool arguments.
      json::value args = params["arguments"];
      auto rules = hooks.rules ? hooks.rules() : nullptr;
      if (Decision d = ScreenToolJson(c.ex, rules, guard::Where::kToolArgs, args); d.denied()) {
        RpcError e = Err(d.status == 400 ? kContentBlocked : kInternalError, d.code, d.reason);
        Deny(c.ex, "screen_request", e);
        co_return e;
      }
      params["arguments"] = std::move(args);
    }
    json::value pv = std::move(params);
    auto answer = co_await Call(c.sess, *server, c.client, c.cancel, method, std::move(pv), c.relay);
    if (!answer.ok()) co_return UpstreamError(c.ex, *server, answer.status());
    c.ex.upstream_status = 200;
    if (const auto* err = answer->if_contains("error")) co_return ServerError(c.ex, *server, *err);
    json::value result = answer->contains("result") ? (*answer)["result"] : json::value(json::object());
    if (method == "resources/read" || method == "prompts/get") {
      // What a resource or prompt carries reaches the model: screened as a tool result.
      auto rules = hooks.rules ? hooks.rules() : nullptr;
      if (Decision d = ScreenToolJson(c.ex, rules, guard::Where::kToolResult, result); d.denied()) {
        RpcError e = Err(d.status == 400 ? kContentBlocked : kInternalError, d.code, d.reason);
        Deny(c.ex, "screen_response", e);
        co_return e;
      }
    }
    co_return result;
  }

  Task<Outcome> Dispatch(Ctx& c, const std::string& method, json::object* params) {
    static const json::object kEmpty;
    if (method == "ping") co_return json::value(json::object());
    if (method == "tools/list") co_return co_await ListTools(c, params);
    if (method == "tools/call") {
      if (params == nullptr) co_return Err(kInvalidParams, "invalid_params", "tools/call needs params");
      co_return co_await CallTool(c, *params);
    }
    if (method == "resources/list") co_return co_await ListOther(c, params, method, "resources");
    if (method == "resources/templates/list") co_return co_await ListOther(c, params, method, "resourceTemplates");
    if (method == "prompts/list") co_return co_await ListOther(c, params, method, "prompts");
    if (method == "resources/read" || method == "prompts/get" || method == "completion/complete" ||
        method == "resources/subscribe" || method == "resources/unsubscribe") {
      if (params == nullptr) co_return Err(kInvalidParams, "invalid_params", method + " needs params");
      co_return co_await Forward(c, method, *params);
    }
    if (method == "logging/setLevel") {
      for (const auto& s : c.Reach()) {
        if (s->stdio) continue;  // shared: one client may not set the level for all
        json::value pv = params ? json::value(*params) : json::value();
        auto answer = co_await Call(c.sess, *s, c.client, c.cancel, method, std::move(pv));
        if (!answer.ok()) co_return UpstreamError(c.ex, *s, answer.status());
      }
      co_return json::value(json::object());
    }
    co_return Err(kMethodNotFound, "method_not_found", fmt::format("Method not found: {}", method));
  }

  // ------------------------------------------------------------ sessions --

  std::shared_ptr<Session> NewSession(const Exchange& ex, std::string scope, std::string version) {
    auto s = std::make_shared<Session>();
    s->id = crypto::HexEncode(crypto::RandomBytes(16));
    s->owner = OwnerOf(ex);
    s->scope = std::move(scope);
    s->version = std::move(version);
    s->last_used = clock->Monotonic();
    std::vector<std::shared_ptr<Session>> ended;
    {
      std::lock_guard lock(sessions_mu);
      auto now = clock->Monotonic();
      for (auto it = sessions.begin(); it != sessions.end();) {
        if (now - it->second->last_used > ex.config->mcp.session_idle_timeout) {
          ended.push_back(it->second);
          it = sessions.erase(it);
        } else {
          ++it;
        }
      }
      // Full: the caller's own idlest session makes room; a caller cannot
      // end other principals' sessions by opening many.
      bool refused = false;
      while (sessions.size() >= ex.config->mcp.max_sessions && !refused) {
        auto idlest = sessions.end();
        for (auto it = sessions.begin(); it != sessions.end(); ++it) {
          if (it->second->owner != s->owner) continue;
          if (idlest == sessions.end() || it->second->last_used < idlest->second->last_used) idlest = it;
        }
        if (idlest == sessions.end()) {
          refused = true;
        } else {
          ended.push_back(idlest->second);
          sessions.erase(idlest);
        }
      }
      if (!refused) sessions[s->id] = s;
      else s.reset();
    }
    for (auto& e : ended) Close(*e);
    return s;  // null: no room
  }

  std::shared_ptr<Session> FindSession(const Exchange& ex, std::string_view id) {
    std::lock_guard lock(sessions_mu);
    auto it = sessions.find(std::string(id));
    if (it == sessions.end() || it->second->owner != OwnerOf(ex)) return nullptr;
    it->second->last_used = clock->Monotonic();
    return it->second;
  }

  // The live session the request names, on this endpoint (null: none);
  // notes it (as a hash: the id is a bearer secret) on the exchange.
  std::shared_ptr<Session> SessionFor(Exchange& ex, const net::Request& req, const std::string& scope) {
    auto s = FindSession(ex, req.headers.Get("mcp-session-id"));
    if (s && s->scope != scope) s.reset();
    if (s) ex.mcp.session = SessionTag(*s);
    return s;
  }
  // SessionFor, or the error answered (400 without a session id, 404 for
  // one that is unknown, ended, another principal's or another endpoint's).
  Task<std::shared_ptr<Session>> RequireSession(Exchange& ex, const net::Request& req, net::ResponseWriter& w,
                                                const std::string& scope, const json::value& id) {
    if (req.headers.Get("mcp-session-id").empty()) {
      RpcError e = Err(kInvalidRequest, "session_required", "Bad Request: send the Mcp-Session-Id that initialize returned");
      co_await SendError(ex, w, 400, id, e, nullptr);
      co_return nullptr;
    }
    auto s = SessionFor(ex, req, scope);
    if (!s) {
      RpcError e = Err(kInvalidRequest, "session_not_found", "Session not found: it ended or expired; initialize again");
      co_await SendError(ex, w, 404, id, e, nullptr);
    }
    co_return s;
  }
  static std::string SessionTag(const Session& s) { return crypto::HexEncode(crypto::Sha256(s.id)).substr(0, 16); }

  static void Close(Session& s) {
    std::shared_ptr<asio::steady_timer> wake;
    {
      std::lock_guard lock(s.mu);
      s.closed = true;
      wake = s.stream_wake;
    }
    if (wake) asio::post(wake->get_executor(), [wake] { wake->cancel(); });
  }

  // A notification for the GET streams of the sessions that reach `server`.
  void Broadcast(const std::string& server, std::string_view method) {
    if (method != "notifications/tools/list_changed" && method != "notifications/resources/list_changed" &&
        method != "notifications/prompts/list_changed") {
      return;  // others belong to one client: a shared process cannot say whose
    }
    std::string data = json::serialize(json::object{{"jsonrpc", "2.0"}, {"method", method}});
    std::vector<std::shared_ptr<Session>> all;
    {
      std::lock_guard lock(sessions_mu);
      for (const auto& [id, s] : sessions) all.push_back(s);
    }
    for (const auto& s : all) {
      if (!s->scope.empty() && s->scope != server) continue;
      Push(*s, data);
    }
  }

  static void Push(Session& s, std::string data) {
    std::shared_ptr<asio::steady_timer> wake;
    {
      std::lock_guard lock(s.mu);
      if (s.queue.size() >= 1000) s.queue.pop_front();
      s.queue.push_back({s.next_event++, std::move(data)});
      wake = s.stream_wake;
    }
    if (wake) asio::post(wake->get_executor(), [wake] { wake->cancel(); });
  }

  // GET: the session's stream of server-initiated messages (SSE), with
  // event ids; Last-Event-ID replays what was sent after it.
  Task<void> Stream(Exchange& ex, Session& s, const net::Request& req, net::ResponseWriter& w) {
    auto exec = co_await asio::this_coro::executor;
    auto wake = std::make_shared<asio::steady_timer>(exec);
    uint64_t generation = 0;
    std::shared_ptr<asio::steady_timer> previous;
    {
      std::lock_guard lock(s.mu);
      previous = s.stream_wake;
      s.stream_wake = wake;
      generation = ++s.stream_generation;
      std::string_view last = req.headers.Get("last-event-id");
      uint64_t after = 0;
      if (!last.empty()) std::from_chars(last.data(), last.data() + last.size(), after);
      if (after > 0) {
        std::deque<StreamEvent> replay;
        for (const auto& e : s.sent) {
          if (e.id > after) replay.push_back(e);
        }
        s.queue.insert(s.queue.begin(), replay.begin(), replay.end());
      }
    }
    if (previous) asio::post(previous->get_executor(), [previous] { previous->cancel(); });  // one stream at a time
    Headers h;
    h.Add("Content-Type", "text/event-stream");
    h.Add("Cache-Control", "no-cache");
    h.Add("Mcp-Session-Id", s.id);
    ex.status = 200;
    if (!(co_await w.Start(200, std::move(h))).ok()) co_return;
    if (!(co_await w.Write(": aigis event stream\n\n")).ok()) co_return;
    w.cancellation().OnCancel([wake] { wake->cancel(); });
    for (;;) {
      std::string out;
      bool end = false;
      {
        std::lock_guard lock(s.mu);
        end = s.closed || s.stream_generation != generation;
        while (!end && !s.queue.empty()) {
          StreamEvent e = std::move(s.queue.front());
          s.queue.pop_front();
          out += fmt::format("id: {}\ndata: {}\n\n", e.id, e.data);
          s.sent.push_back(std::move(e));
          if (s.sent.size() > 100) s.sent.pop_front();
        }
      }
      if (end || w.cancellation().cancelled()) break;
      {
        std::lock_guard lock(sessions_mu);  // an open stream keeps its session alive
        s.last_used = clock->Monotonic();
      }
      if (!out.empty() && !(co_await w.Write(out)).ok()) break;
      wake->expires_after(std::chrono::seconds(15));
      boost::system::error_code ec;
      co_await wake->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec != asio::error::operation_aborted && !(co_await w.Write(": keep-alive\n\n")).ok()) break;
    }
    w.cancellation().Clear();
    (void)co_await w.Finish();
  }

  // ------------------------------------------------------------- entry ---

  Task<void> Handle(Exchange& ex, net::Request& req, net::ResponseWriter& w, net::HttpClient& client) {
    ex.protocol = Protocol::kMcp;
    ex.endpoint = Endpoint::kMcp;
    ex.mcp.method = "";
    auto servers_now = Snapshot();
    std::string_view path = req.path();
    std::string scope(path.substr(std::min<size_t>(4, path.size())));
    while (!scope.empty() && scope.front() == '/') scope.erase(0, 1);
    while (!scope.empty() && scope.back() == '/') scope.pop_back();
    ex.route = scope.empty() ? "mcp" : "mcp/" + scope;
    ex.mcp.server = scope;
    const json::value null_id;
    // Who is calling, first: which servers exist is not told to strangers.
    // A 401 points at the protected-resource metadata (RFC 9728) so that an
    // MCP client can find the authorization server.
    Decision deny;
    if (!hooks.authenticate(ex, deny)) {
      ex.decisions.push_back({"authenticate", "deny", deny.code, deny.reason});
      Headers h;
      std::string issuer = hooks.issuer ? hooks.issuer() : "";
      for (auto& hd : deny.headers) {
        if (EqualsIgnoreCase(hd.name, "www-authenticate") && !issuer.empty()) {
          hd.value += fmt::format(", resource_metadata=\"{}/.well-known/oauth-protected-resource/{}\"", issuer, ex.route);
        }
        h.Add(hd.name, hd.value);
      }
      RpcError e = Err(-32001, deny.code, deny.reason);
      co_await SendError(ex, w, deny.status, null_id, e, &h);
      co_return;
    }
    if (!scope.empty() && !servers_now->count(scope)) {
      RpcError e = Err(kInvalidRequest, "unknown_server", fmt::format("no MCP server '{}' is configured", scope));
      co_await SendError(ex, w, 404, null_id, e, nullptr);
      co_return;
    }
    if (req.method == "DELETE") {
      ex.mcp.method = "session/delete";
      auto s = co_await RequireSession(ex, req, w, scope, null_id);
      if (!s) co_return;
      {
        std::lock_guard lock(sessions_mu);
        sessions.erase(s->id);
      }
      Close(*s);
      co_await EndUpstreamSessions(*s, *servers_now, client);
      co_await SendEmpty(ex, w, 200);
      co_return;
    }
    if (req.method == "GET") {
      ex.mcp.method = "session/stream";
      std::string accept = ToLowerAscii(req.headers.Get("accept"));
      if (accept.find("text/event-stream") == std::string::npos) {
        RpcError e = Err(kInvalidRequest, "not_acceptable", "GET opens an event stream: send Accept: text/event-stream");
        co_await SendError(ex, w, 406, null_id, e, nullptr);
        co_return;
      }
      auto s = co_await RequireSession(ex, req, w, scope, null_id);
      if (!s) co_return;
      co_await Stream(ex, *s, req, w);
      co_return;
    }
    if (req.method != "POST") {
      Headers h;
      h.Add("Allow", "GET, POST, DELETE");
      RpcError e = Err(kInvalidRequest, "method_not_allowed", fmt::format("{} is not allowed on {}", req.method, ex.path));
      co_await SendError(ex, w, 405, null_id, e, &h);
      co_return;
    }
    co_await Post(ex, req, w, client, *servers_now, scope);
  }

  Task<void> EndUpstreamSessions(Session& s, const Servers& servers, net::HttpClient& client) {
    std::vector<std::pair<std::string, std::string>> ups;
    {
      std::lock_guard lock(s.mu);
      for (const auto& [name, up] : s.upstreams) {
        if (!up.id.empty()) ups.emplace_back(name, up.id);
      }
    }
    for (const auto& [name, id] : ups) {
      auto it = servers.find(name);
      if (it == servers.end() || it->second->stdio) continue;
      const ServerRt& rt = *it->second;
      net::ClientRequest creq;
      creq.method = "DELETE";
      creq.target = rt.endpoint.base_path.empty() ? "/" : rt.endpoint.base_path;
      creq.headers.Add("Mcp-Session-Id", id);
      for (const auto& [k, v] : rt.cfg.headers) creq.headers.Set(k, v.Reveal());
      auto sent = co_await client.Send(rt.endpoint, rt.client, std::move(creq), nullptr);
      if (sent.ok()) (void)co_await (*sent)->ReadAll(64 * 1024);
    }
  }

  // A JSON-RPC batch: allowed by protocol version 2025-03-26 (and not
  // after it), inside a session (initialize cannot be batched). Requests run
  // one after the other; the answers come back as one JSON array (202 when
  // the batch held only notifications and responses).
  Task<void> Batch(Exchange& ex, net::Request& req, net::ResponseWriter& w, net::HttpClient& client,
                   const Servers& servers_now, const std::string& scope, json::array& batch) {
    const json::value null_id;
    ex.mcp.method = "batch";
    auto s = co_await RequireSession(ex, req, w, scope, null_id);
    if (!s) co_return;
    if (s->version > "2025-03-26" || batch.empty() || batch.size() > 100) {
      RpcError e = Err(kInvalidRequest, "batch_not_supported",
                       batch.empty() || batch.size() > 100
                           ? "Invalid Request: a batch holds 1 to 100 messages"
                           : fmt::format("JSON-RPC batches were removed after protocol version 2025-03-26 (this "
                                         "session speaks {}): send one message per POST", s->version));
      co_await SendError(ex, w, 400, null_id, e, nullptr);
      co_return;
    }
    Ctx c{ex, *s, servers_now, client, &w.cancellation(), ex.config->mcp.separator};
    json::array answers;
    std::vector<std::string> methods;
    for (auto& item : batch) {
      auto* m = item.if_object();
      const json::value* id = m ? m->if_contains("id") : nullptr;
      std::string method = m ? Str(m->if_contains("method")) : "";
      if (m == nullptr || Str(m->if_contains("jsonrpc")) != "2.0" ||
          (id != nullptr && !id->is_string() && !id->is_int64() && !id->is_uint64()) || method == "initialize") {
        RpcError e = Err(kInvalidRequest, "invalid_request", "Invalid Request: not a JSON-RPC 2.0 message that may be batched");
        answers.push_back(ReplyError(id && (id->is_string() || id->is_int64() || id->is_uint64()) ? *id : null_id, e));
        continue;
      }
      if (id == nullptr || method.empty()) continue;  // notifications and responses
      methods.push_back(method);
      json::value* p = m->if_contains("params");
      if (p != nullptr && !p->is_object()) {
        answers.push_back(ReplyError(*id, Err(kInvalidParams, "invalid_params", "Invalid params: params must be an object")));
        continue;
      }
      json::object* params = p ? &p->get_object() : nullptr;
      Outcome out = co_await Dispatch(c, method, params);
      if (auto* e = std::get_if<RpcError>(&out)) answers.push_back(ReplyError(*id, *e));
      else answers.push_back(Reply(*id, std::move(std::get<json::value>(out))));
      if (w.cancellation().cancelled()) {
        ex.client_gone = true;
        co_return;
      }
    }
    ex.mcp.method = fmt::format("batch:{}", fmt::join(methods, ","));
    if (answers.empty()) {
      co_await SendEmpty(ex, w, 202);
      co_return;
    }
    ex.status = 200;
    net::Response r;
    r.status = 200;
    r.headers.Add("Content-Type", "application/json");
    r.headers.Add("X-Request-Id", ex.request_id);
    r.body = json::serialize(answers);
    if (!(co_await w.Send(std::move(r))).ok()) ex.client_gone = true;
  }

  Task<void> Post(Exchange& ex, net::Request& req, net::ResponseWriter& w, net::HttpClient& client,
                  const Servers& servers_now, const std::string& scope) {
    const json::value null_id;
    if (!req.body_status.ok()) {
      int status = HttpStatusFor(req.body_status.code());
      RpcError e = Err(kInvalidRequest, status == 413 ? "request_too_large" : "invalid_request",
                                                      req.body_status.message());
      co_await SendError(ex, w, status, null_id, e, nullptr);
      co_return;
    }
    std::string ctype = ToLowerAscii(req.headers.Get("content-type"));
    if (!StartsWith(ctype, "application/json")) {
      RpcError e = Err(kInvalidRequest, "unsupported_media_type", "POST a JSON-RPC message with Content-Type: application/json");
      co_await SendError(ex, w, 415, null_id, e, nullptr);
      co_return;
    }
    std::error_code ec;
    json::value v = ParseJson(req.body, ec);
    if (ec) {
      RpcError e = Err(kParseError, "parse_error", "Parse error: " + ec.message());
      co_await SendError(ex, w, 400, null_id, e, nullptr);
      co_return;
    }
    if (v.is_array()) {
      co_await Batch(ex, req, w, client, servers_now, scope, v.get_array());
      co_return;
    }
    auto* msg = v.if_object();
    if (msg == nullptr || Str(msg->if_contains("jsonrpc")) != "2.0") {
      RpcError e = Err(kInvalidRequest, "invalid_request", "Invalid Request: not a JSON-RPC 2.0 message");
      co_await SendError(ex, w, 400, null_id, e, nullptr);
      co_return;
    }
    const json::value* id = msg->if_contains("id");
    const json::value* method_v = msg->if_contains("method");
    if (id != nullptr && !id->is_string() && !id->is_int64() && !id->is_uint64()) {
      RpcError e = Err(kInvalidRequest, "invalid_request", "Invalid Request: id must be a string or an integer");
      co_await SendError(ex, w, 400, null_id, e, nullptr);
      co_return;
    }
    if (method_v != nullptr && !method_v->is_string()) {
      RpcError e = Err(kInvalidRequest, "invalid_request", "Invalid Request: method must be a string");
      co_await SendError(ex, w, 400, null_id, e, nullptr);
      co_return;
    }
    std::string method = Str(method_v);
    ex.mcp.method = method;
    if (id) ex.mcp.rpc_id = json::serialize(*id);
    const json::value& rid = id ? *id : null_id;
    json::object* params = nullptr;
    if (auto* p = msg->if_contains("params")) {
      params = p->if_object();
      if (params == nullptr) {
        RpcError e = Err(kInvalidParams, "invalid_params", "Invalid params: params must be an object");
        co_await SendError(ex, w, 400, rid, e, nullptr);
        co_return;
      }
    }
    std::string_view header_version = req.headers.Get("mcp-protocol-version");
    if (!header_version.empty() && !Supported(header_version)) {
      RpcError e = Err(kInvalidRequest, "unsupported_protocol_version",
                       fmt::format("MCP-Protocol-Version '{}' is not supported; aigis speaks {}", header_version,
                                   fmt::join(kVersions, ", ")));
      co_await SendError(ex, w, 400, rid, e, nullptr);
      co_return;
    }

    if (method == "initialize") {
      if (!id) {
        RpcError e = Err(kInvalidRequest, "invalid_request", "initialize must be a request (with an id)");
        co_await SendError(ex, w, 400, rid, e, nullptr);
        co_return;
      }
      std::string asked = params ? Str(params->if_contains("protocolVersion")) : "";
      std::string version = Supported(asked) ? asked : std::string(kVersions.front());
      auto s = NewSession(ex, scope, version);
      if (!s) {
        RpcError e = Err(kInternalError, "too_many_sessions", "aigis holds as many MCP sessions as it may (mcp.max_sessions); end one or retry later");
        co_await SendError(ex, w, 503, rid, e, nullptr);
        co_return;
      }
      ex.mcp.session = SessionTag(*s);
      json::object caps{{"tools", {{"listChanged", true}}},
                        {"resources", {{"listChanged", true}, {"subscribe", !scope.empty()}}},
                        {"prompts", {{"listChanged", true}}},
                        {"completions", json::object()}};
      if (!scope.empty()) caps["logging"] = json::object();
      json::object result{{"protocolVersion", version},
                          {"capabilities", std::move(caps)},
                          {"serverInfo", {{"name", scope.empty() ? "aigis" : "aigis/" + scope}, {"version", hooks.version}}},
                          {"instructions", scope.empty()
                                               ? fmt::format("Tools of several servers, named <server>{}<tool>.",
                                                             ex.config->mcp.separator)
                                               : fmt::format("The tools of MCP server '{}', through aigis.", scope)}};
      Headers h;
      h.Add("Mcp-Session-Id", s->id);
      json::object body = Reply(*id, std::move(result));
      co_await SendJson(ex, w, 200, body, &h);
      co_return;
    }

    auto s = co_await RequireSession(ex, req, w, scope, rid);
    if (!s) co_return;
    if (id && method.empty() && !msg->contains("result") && !msg->contains("error")) {
      RpcError e = Err(kInvalidRequest, "invalid_request", "Invalid Request: a message with an id needs a method, a result or an error");
      co_await SendError(ex, w, 400, rid, e, nullptr);
      co_return;
    }
    if (!id || method.empty()) {
      // Notifications (initialized, cancelled, roots changed) and answers to
      // server requests: aigis sends no server requests, and it does not
      // forward client notifications to shared upstreams.
      co_await SendEmpty(ex, w, 202);
      co_return;
    }
    Ctx c{ex, *s, servers_now, client, &w.cancellation(), ex.config->mcp.separator};
    Relay relay{ex, w, s->id};
    if (ToLowerAscii(req.headers.Get("accept")).find("text/event-stream") != std::string::npos) c.relay = &relay;
    Outcome out = co_await Dispatch(c, method, params);
    if (ex.client_gone || w.cancellation().cancelled()) {
      ex.client_gone = true;
      co_return;
    }
    std::string outcome = "ok";
    json::object answer;
    if (auto* e = std::get_if<RpcError>(&out)) {
      outcome = e->upstream                   ? "tool_error"
                : e->code == kPermissionDenied ? "denied"
                : e->code == kContentBlocked   ? "blocked"
                : e->code == kToolNotApproved  ? "not_approved"
                : e->code == kUpstreamFailed   ? "upstream_error"
                                               : "error";
      ex.mcp.error_code = e->code;
      ex.mcp.error = e->message;
      answer = ReplyError(*id, *e);
    } else {
      answer = Reply(*id, std::move(std::get<json::value>(out)));
    }
    if (relay.started) {
      // The stream is open: the answer is its last event.
      relay.pending.push_back(json::serialize(answer));
      co_await relay.Flush();
      if (relay.failed || !(co_await w.Finish()).ok()) ex.client_gone = true;
    } else {
      co_await SendJson(ex, w, 200, answer, nullptr);
    }
    if (method == "tools/call" && hooks.metrics && !ex.mcp.server.empty()) {
      hooks.metrics->ObserveMcpCall(req.worker, ex.mcp.server, ex.mcp.tool, outcome);
    }
  }
};

// --------------------------------------------------------------- public ----

McpGateway::McpGateway(McpHooks hooks) : impl_(std::make_shared<Impl>(std::move(hooks))) {}
McpGateway::~McpGateway() = default;

bool McpGateway::Serves(std::string_view path) { return path == "/mcp" || StartsWith(path, "/mcp/"); }

Task<void> McpGateway::Handle(Exchange& ex, net::Request& req, net::ResponseWriter& w, net::HttpClient& client) {
  return impl_->Handle(ex, req, w, client);
}

HttpResponse McpGateway::ResourceMetadata(std::string_view path, const config::Config& cfg) const {
  HttpResponse r;
  r.headers.Add("Content-Type", "application/json");
  r.headers.Add("Cache-Control", "max-age=300");
  std::string_view suffix = path.substr(std::string_view("/.well-known/oauth-protected-resource").size());
  std::string server = suffix.size() > 5 ? std::string(suffix.substr(5)) : "";
  bool known = suffix.empty() || suffix == "/mcp" || (StartsWith(suffix, "/mcp/") && cfg.mcp.Find(server) != nullptr);
  std::string issuer = impl_->hooks.issuer ? impl_->hooks.issuer() : "";
  if (issuer.empty() || !known) {
    r.status = 404;
    r.body = R"({"error":{"code":"not_found","message":"no protected resource here"}})";
    return r;
  }
  std::string resource = issuer + std::string(suffix.empty() ? "/mcp" : suffix);
  json::object doc{{"resource", resource},
                   {"authorization_servers", json::array{json::value(issuer)}},
                   {"bearer_methods_supported", json::array{"header"}},
                   {"resource_name", server.empty() ? "aigis MCP gateway" : "aigis MCP gateway: " + server},
                   {"resource_documentation", "https://github.com/aigis/aigis/blob/main/docs/mcp.md"}};
  r.body = json::serialize(doc);
  return r;
}

Status McpGateway::Configure(const config::McpConfig& cfg) {
  auto next = std::make_shared<Servers>();
  auto prev = impl_->Snapshot();
  std::vector<std::shared_ptr<StdioProcess>> start, stop;
  for (const auto& sc : cfg.servers) {
    auto rt = std::make_shared<ServerRt>();
    rt->cfg = sc;
    if (!sc.url.empty()) {
      auto ep = net::Endpoint::Parse(sc.url);
      if (!ep.ok()) return InvalidArgument(fmt::format("mcp server '{}': {}", sc.name, ep.status().message()));
      rt->endpoint = *ep;
      rt->client.connect_timeout = sc.connect_timeout;
      rt->client.response_timeout = sc.timeout;
      rt->client.idle_timeout = sc.timeout;
      rt->client.tls_verify = sc.tls.verify;
      rt->client.ca_file = sc.tls.ca_file;
      rt->client.server_name = sc.tls.server_name;
    } else {
      auto old = prev->find(sc.name);
      if (old != prev->end() && old->second->stdio && old->second->stdio->cfg() == sc) {
        rt->stdio = old->second->stdio;  // unchanged: keep the running process
      } else {
        rt->stdio = std::make_shared<StdioProcess>(impl_->stdio_ctx, sc, impl_->hooks.version, impl_->clock);
        std::weak_ptr<Impl> weak = impl_;
        rt->stdio->on_notification = [weak](const std::string& server, std::string_view method) {
          if (auto self = weak.lock()) self->Broadcast(server, method);
        };
        start.push_back(rt->stdio);
      }
    }
    (*next)[sc.name] = std::move(rt);
  }
  for (const auto& [name, old] : *prev) {
    auto it = next->find(name);
    if (old->stdio && (it == next->end() || it->second->stdio != old->stdio)) stop.push_back(old->stdio);
  }
  {
    std::lock_guard lock(impl_->servers_mu);
    impl_->servers = next;
  }
  for (auto& p : start) p->Start();
  for (auto& p : stop) p->Stop();
  return Status::Ok();
}

void McpGateway::Shutdown() {
  auto now = impl_->Snapshot();
  for (const auto& [name, s] : *now) {
    if (s->stdio) s->stdio->Stop();
  }
  EndStreams();
}

void McpGateway::EndStreams() {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(impl_->sessions_mu);
    for (const auto& [id, s] : impl_->sessions) all.push_back(s);
  }
  for (auto& s : all) Impl::Close(*s);
}

McpGateway::Stats McpGateway::stats() const {
  Stats st;
  {
    std::lock_guard lock(impl_->sessions_mu);
    st.sessions = static_cast<int64_t>(impl_->sessions.size());
  }
  auto now = impl_->Snapshot();
  for (const auto& [name, s] : *now) {
    if (!s->stdio) continue;
    st.stdio_running += s->stdio->running() ? 1 : 0;
    st.stdio_restarts += s->stdio->restarts();
  }
  return st;
}

}  // namespace aigis::gateway

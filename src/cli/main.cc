// aigis: the command line. `aigis serve`, `aigis check-config`, `aigis version`.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <fstream>
#include <sstream>
#include <pthread.h>
#include <unistd.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "config/config.h"
#include "crypto/crypto.h"
#include "gateway/gateway.h"
#include "guard/guard.h"
#include "authz/authz.h"
#include "identity/identity.h"
#include "registry/registry.h"
#include "store/store.h"

namespace {

using namespace aigis;

constexpr const char* kVersion = AIGIS_VERSION;
constexpr const char* kCommit = AIGIS_GIT_COMMIT;

void PrintErrors(const std::vector<std::string>& errors) {
  for (const auto& e : errors) fmt::print(stderr, "{}\n", e);
}

// The guard rules a config asks for: the built-in packs and/or its own
// (relative to the config file). Errors are "file:line: rule id: reason".
// `cache`: keep compiled databases in <data_dir>/cache/guard (unless
// AIGIS_GUARD_CACHE_DIR names another place), so a restart or a reload of
// unchanged packs does not compile them again.
guard::LoadResult LoadGuardRules(const config::Config& cfg, bool cache) {
  std::vector<std::string> paths;
  for (const auto& p : cfg.guard.rules) {
    std::filesystem::path fp(p);
    if (fp.is_relative() && !cfg.source.empty()) fp = std::filesystem::path(cfg.source).parent_path() / fp;
    paths.push_back(fp.string());
  }
  guard::LoadOptions opts;
  opts.builtin = cfg.guard.builtin_rules;
  if (cache && std::getenv("AIGIS_GUARD_CACHE_DIR") == nullptr) {
    opts.cache_dir = (std::filesystem::path(cfg.data_dir) / "cache" / "guard").string();
  }
  return guard::LoadRules(paths, opts);
}

// The authorization model text: authz.model_file (relative to the config
// file) or the built-in default; `where` names it for messages.
Result<std::string> AuthzModelText(const config::Config& cfg, std::string* where) {
  if (cfg.authz.model_file.empty()) {
    *where = "rules/authz/model.fga (built in)";
    return std::string(authz::DefaultModelDsl());
  }
  std::filesystem::path p(cfg.authz.model_file);
  if (p.is_relative() && !cfg.source.empty()) p = std::filesystem::path(cfg.source).parent_path() / p;
  *where = p.string();
  std::ifstream f(p, std::ios::binary);
  if (!f) return InvalidArgument(fmt::format("cannot read authz.model_file '{}'", p.string()));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// authz.enabled: the store the authorize stage checks against, with the
// configured model (or the built-in default) and the seed tuples, in the
// default tenant. Other tenants create theirs through the OpenFGA API.
Status EnsureAuthz(authz::Service& service, const config::Config& cfg) {
  if (!cfg.authz.enabled) return Status::Ok();
  std::string where;
  ASSIGN_OR_RETURN(std::string dsl, AuthzModelText(cfg, &where));
  auto id = authz::EnsureStore(service, "default", cfg.authz.store, dsl, cfg.authz.seed_tuples);
  if (!id.ok()) return InvalidArgument(fmt::format("{}: {}", where, id.status().message()));
  spdlog::info("authz: store '{}' ({}) in tenant default, model from {}", cfg.authz.store, *id, where);
  return Status::Ok();
}

// Model syntax and semantics, and the seed tuples' form, as `aigis
// check-config` reports them: one "file:line:column: message" per error.
std::vector<std::string> AuthzConfigErrors(const config::Config& cfg) {
  std::vector<std::string> out;
  if (!cfg.authz.enabled) return out;
  std::string where;
  auto dsl = AuthzModelText(cfg, &where);
  if (!dsl.ok()) return {dsl.status().message()};
  std::vector<authz::ModelError> errors;
  auto model = authz::ParseDsl(*dsl, &errors);
  for (const auto& e : errors) out.push_back(fmt::format("{}:{}:{}: {}", where, e.line, e.column, e.message));
  if (!model.ok() && errors.empty()) out.push_back(fmt::format("{}: {}", where, model.status().message()));
  for (const auto& t : cfg.authz.seed_tuples) {
    if (auto k = authz::ParseTupleString(t); !k.ok()) out.push_back("authz.seed_tuples: " + k.status().message());
  }
  return out;
}

int CheckConfig(const std::string& path) {
  auto r = config::LoadFile(path);
  if (!r.errors.empty()) {
    PrintErrors(r.errors);
    fmt::print(stderr, "{}: {} error{}\n", path, r.errors.size(), r.errors.size() == 1 ? "" : "s");
    return 1;
  }
  if (auto k = identity::DecodeMasterKey(r.config->identity.master_key.Reveal()); !k.ok()) {
    fmt::print(stderr, "{}:0: {}\n", path, k.status().message());
    return 1;
  }
  if (r.config->guard.enabled) {
    if (auto g = LoadGuardRules(*r.config, /*cache=*/false); !g.rules) {
      for (const auto& e : g.errors) fmt::print(stderr, "{}\n", e);
      return 1;
    }
  }
  if (auto errors = AuthzConfigErrors(*r.config); !errors.empty()) {
    for (const auto& e : errors) fmt::print(stderr, "{}\n", e);
    return 1;
  }
  // Compiling catches what only the gateway knows (URLs, TLS files).
  gateway::GatewayOptions opts;
  opts.events = nullptr;
  config::Config cfg = *r.config;
  cfg.log.access_log = "off";
  auto g = gateway::Gateway::Create(cfg, opts);
  if (!g.ok()) {
    fmt::print(stderr, "{}:0: {}\n", path, g.status().message());
    return 1;
  }
  fmt::print("{}: ok\n", path);
  return 0;
}

void SetLogLevel(const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level));
}

identity::IdentityOptions IdentityOptionsFrom(const config::IdentityConfig& c) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  identity::IdentityOptions o;
  o.issuer = c.issuer;
  o.audience = c.audience;
  o.master_key = c.master_key.Reveal();
  o.signing_algorithm = c.signing_algorithm;
  o.token_ttl = duration_cast<seconds>(c.token_ttl);
  o.rotate_every = duration_cast<seconds>(c.rotate_every);
  o.clock_skew = duration_cast<seconds>(c.clock_skew);
  o.secret_grace = duration_cast<seconds>(c.secret_grace);
  o.assertion_max_lifetime = duration_cast<seconds>(c.assertion_max_lifetime);
  o.max_delegation_depth = c.max_delegation_depth;
  for (const auto& t : c.trusted_issuers) {
    identity::TrustedIssuer ti;
    ti.name = t.name;
    ti.issuer = t.issuer;
    ti.jwks_url = t.jwks_url;
    ti.audiences = t.audiences;
    ti.algorithms = t.algorithms;
    ti.clock_skew = duration_cast<seconds>(t.clock_skew);
    ti.tenant = t.tenant;
    ti.claims = {t.subject_claim, t.email_claim, t.groups_claim, t.scope_claim};
    ti.default_scopes = t.default_scopes;
    ti.refresh_interval = duration_cast<seconds>(t.refresh_interval);
    ti.max_stale = duration_cast<seconds>(t.max_stale);
    ti.min_refetch_interval = duration_cast<seconds>(t.min_refetch_interval);
    o.trusted_issuers.push_back(std::move(ti));
  }
  return o;
}

// identity.bootstrap_agent: a demo agent and its API key on first start, so
// that the first request works with authentication on.
Status Bootstrap(identity::Identity& id, const config::BootstrapAgentConfig& b) {
  if (id.GetAgent("default", b.id).ok()) {
    if (std::filesystem::exists(b.api_key_file)) {
      spdlog::info("agent '{}': its API key is in {}", b.id, b.api_key_file);
    }
    return {};
  }
  identity::AgentSpec spec;
  spec.id = b.id;
  spec.name = b.name;
  spec.owner = "bootstrap";
  spec.description = "created from identity.bootstrap_agent on first start";
  spec.scopes = b.scopes;
  ASSIGN_OR_RETURN(auto agent, id.CreateAgent(spec));
  identity::ApiKeySpec ks;
  ks.agent_id = agent.id;
  ASSIGN_OR_RETURN(auto key, id.CreateApiKey(ks));
  std::error_code ec;
  if (auto parent = std::filesystem::path(b.api_key_file).parent_path(); !parent.empty()) {
    std::filesystem::create_directories(parent, ec);
  }
  std::string tmp = b.api_key_file + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << key.api_key << "\n";
    if (!f) return Internal("cannot write " + tmp);
  }
  std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace, ec);
  std::filesystem::rename(tmp, b.api_key_file, ec);
  if (ec) return Internal("cannot write " + b.api_key_file + ": " + ec.message());
  spdlog::warn("created agent '{}' with an API key, written to {} (mode 0600)", agent.id, b.api_key_file);
  // The key itself goes only to a terminal (make run), never into a log
  // file or a collector reading stderr.
  if (isatty(STDERR_FILENO)) fmt::print(stderr, "\n  API key of agent '{}': {}\n\n", agent.id, key.api_key);
  return {};
}

// The gateway, for code that outlives or predates it (the audit webhook
// sinks): Use runs `fn` only while the gateway is set, and Set(nullptr)
// waits for a running `fn` to finish.
class GatewayRef {
 public:
  void Set(gateway::Gateway* gw) {
    std::lock_guard l(mu_);
    gw_ = gw;
  }
  template <typename Fn>
  Status Use(Fn fn) {
    std::lock_guard l(mu_);
    if (gw_ == nullptr) return Unavailable("the gateway is not running");
    return fn(*gw_);
  }

 private:
  std::mutex mu_;
  gateway::Gateway* gw_ = nullptr;
};

// One POST per batch: {"records":[<sink line>,...]}, signed with
// X-Aigis-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>
// and X-Aigis-Timestamp (Unix seconds), so a receiver can check origin and
// freshness. Anything but 2xx is retried by the sink.
std::function<Status(const std::vector<std::string>&)> WebhookDelivery(std::shared_ptr<GatewayRef> ref,
                                                                       const config::AuditSinkConfig& k) {
  return [ref, url = k.url, secret = k.secret.Reveal(), timeout = k.timeout](const std::vector<std::string>& lines) {
    std::string body = "{\"records\":[";
    for (size_t i = 0; i < lines.size(); ++i) body += (i ? "," : "") + lines[i];
    body += "]}";
    std::string ts = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch()).count());
    Headers h;
    h.Add("Content-Type", "application/json");
    h.Add("X-Aigis-Timestamp", ts);
    h.Add("X-Aigis-Signature", "sha256=" + crypto::HexEncode(crypto::HmacSha256(secret, ts + "." + body)));
    return ref->Use([&](gateway::Gateway& gw) -> Status {
      auto r = gw.SendBlocking("POST", url, h, body, timeout);
      if (!r.ok()) return r.status();
      if (r->status < 200 || r->status > 299) return Unavailable(fmt::format("webhook {} answered {}", url, r->status));
      return Status::Ok();
    });
  };
}

int Serve(const std::string& config_path, const std::string& ports_file) {
  // Signals are taken synchronously by this thread (sigtimedwait); every
  // other thread inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto logger = spdlog::stderr_color_mt("aigis");
  spdlog::set_default_logger(logger);

  config::Config cfg = config::Defaults();
  if (!config_path.empty()) {
    auto r = config::LoadFile(config_path);
    if (!r.errors.empty()) {
      PrintErrors(r.errors);
      return 2;
    }
    cfg = *r.config;
  }
  SetLogLevel(cfg.log.level);
  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir, ec);
  if (ec) {
    spdlog::error("cannot create data_dir '{}': {}", cfg.data_dir, ec.message());
    return 2;
  }
  bool token_created = false;
  std::string token_path;
  auto admin_token = admin::LoadAdminToken(cfg.data_dir, std::getenv("AIGIS_ADMIN_TOKEN"), &token_created, &token_path);
  if (!admin_token.ok()) {
    spdlog::error("admin token: {}", admin_token.status().message());
    return 2;
  }
  if (token_created) spdlog::warn("AIGIS_ADMIN_TOKEN is not set: generated an admin token into {} (mode 0600)", token_path);
  auto db = store::OpenSqlite({(std::filesystem::path(cfg.data_dir) / "aigis.db").string()});
  if (!db.ok()) {
    spdlog::error("store: {}", db.status().message());
    return 2;
  }
  gateway::Gateway* gw_for_fetch = nullptr;
  // The webhook sinks POST through the gateway's HTTP client once it runs,
  // and stop using it before it shuts down.
  auto webhook_gateway = std::make_shared<GatewayRef>();
  auto id_opts = IdentityOptionsFrom(cfg.identity);
  id_opts.fetcher = [&gw_for_fetch](const std::string& url) -> Result<std::string> {
    if (!gw_for_fetch) return Unavailable("gateway not started");
    return gw_for_fetch->FetchBlocking(url, std::chrono::seconds(5));
  };
  auto ident = identity::Identity::Open(std::move(id_opts), **db);
  if (!ident.ok()) {
    spdlog::error("identity: {}", ident.status().message());
    return 2;
  }
  std::shared_ptr<identity::Identity> id = std::move(ident).value();
  if (cfg.identity.bootstrap_agent) {
    if (Status st = Bootstrap(*id, *cfg.identity.bootstrap_agent); !st.ok()) {
      spdlog::error("identity.bootstrap_agent: {}", st.message());
      return 2;
    }
  }
  auto fga = authz::Service::Open(**db);
  if (!fga.ok()) {
    spdlog::error("authz: {}", fga.status().message());
    return 2;
  }
  std::shared_ptr<authz::Service> authz_service = *fga;
  if (Status st = EnsureAuthz(*authz_service, cfg); !st.ok()) {
    spdlog::error("authz: {}", st.message());
    return 2;
  }
  gateway::GatewayOptions opts;
  opts.version = kVersion;
  opts.commit = kCommit;
  opts.identity = id;
  opts.authz = authz_service;
  std::shared_ptr<audit::Log> audit_log;
  if (cfg.audit.enabled) {
    auto master = identity::DecodeMasterKey(cfg.identity.master_key.Reveal());
    if (!master.ok()) {
      spdlog::error("audit: {}", master.status().message());
      return 2;
    }
    audit::LogOptions lo;
    lo.dir = (std::filesystem::path(cfg.data_dir) / "audit").string();
    lo.origin = cfg.audit.origin;
    lo.master_key = *master;
    lo.checkpoint_interval = cfg.audit.checkpoint_interval;
    lo.max_queue = cfg.audit.max_queue;
    lo.async_linger = cfg.audit.async_linger;
    auto opened = audit::Log::Open(std::move(lo));
    if (!opened.ok()) {
      spdlog::error("{}", opened.status().message());
      return 2;
    }
    audit_log = std::move(opened).value();
    for (const auto& k : cfg.audit.sinks) {
      audit::SinkQueueOptions q;
      q.max_queue = k.max_queue;
      Result<std::shared_ptr<audit::Sink>> sink = InvalidArgument("unknown sink type " + k.type);
      if (k.type == "file") {
        std::filesystem::path fp(k.path);
        if (fp.is_relative() && !cfg.source.empty()) fp = std::filesystem::path(cfg.source).parent_path() / fp;
        sink = audit::MakeFileSink({fp.string(), k.max_bytes, k.keep, q});
      } else if (k.type == "syslog") {
        sink = audit::MakeSyslogSink({k.address, k.app_name, "", k.facility, q});
      } else if (k.type == "webhook") {
        sink = audit::MakeDeliverySink("webhook:" + k.url, q, WebhookDelivery(webhook_gateway, k));
      }
      if (!sink.ok()) {
        spdlog::error("audit.sinks: {}", sink.status().message());
        return 2;
      }
      audit_log->AddSink(std::move(sink).value());
    }
    spdlog::info("audit: log in {} ({} mode), signing key {}", (std::filesystem::path(cfg.data_dir) / "audit").string(),
                 cfg.audit.mode, audit_log->Keys().back().vkey);
    opts.audit = audit_log;
  }
  if (cfg.guard.enabled) {
    auto rules = LoadGuardRules(cfg, /*cache=*/true);
    if (!rules.rules) {
      for (const auto& e : rules.errors) spdlog::error("guard: {}", e);
      return 2;
    }
    spdlog::info("guard: {} rules loaded", rules.rules->rules().size());
    opts.guard_rules = rules.rules;
  }
  // The store outlives everything Serve creates: a non-owning handle.
  auto pins = registry::ToolPins::Open(std::shared_ptr<store::Store>(std::shared_ptr<void>(), db->get()));
  if (!pins.ok()) {
    spdlog::error("mcp tool registry: {}", pins.status().message());
    return 2;
  }
  std::shared_ptr<registry::ToolPins> tool_pins = std::move(pins).value();
  opts.tool_pins = tool_pins;
  auto g = gateway::Gateway::Create(cfg, opts);
  if (!g.ok()) {
    spdlog::error("{}", g.status().message());
    return 2;
  }
  auto& gw = **g;
  admin::InstallMcp(gw, tool_pins, admin::AdminOptions{*admin_token});
  if (audit_log) admin::InstallAudit(gw, audit_log, cfg.audit.origin, admin::AdminOptions{*admin_token});
  admin::Install(gw, id, admin::AdminOptions{*admin_token});
  admin::InstallOpenFga(gw, std::move(fga).value(), admin::AdminOptions{*admin_token});
  auto ports = gw.Start();
  if (!ports.ok()) {
    spdlog::error("{}", ports.status().message());
    return 2;
  }
  gw_for_fetch = &gw;
  webhook_gateway->Set(&gw);
  id->Start();
  spdlog::info("OAuth issuer {}", id->issuer());
  spdlog::info("aigis {} ({}) proxy on {}://{}:{}, admin on http://{}:{}", kVersion, kCommit,
               cfg.proxy.tls ? "https" : "http", cfg.proxy.host, ports->proxy, cfg.admin.host, ports->admin);
  if (!ports_file.empty()) {
    std::string tmp = ports_file + ".tmp";
    std::ofstream(tmp) << fmt::format("{{\"proxy\":{},\"admin\":{}}}\n", ports->proxy, ports->admin);
    std::filesystem::rename(tmp, ports_file, ec);
  }

  config::FileStamp stamp = config_path.empty() ? config::FileStamp{} : config::StampOf(config_path);
  auto reload = [&](const char* why) {
    auto r = config::LoadFile(config_path);
    if (!r.errors.empty()) {
      spdlog::error("config reload ({}) rejected; still serving the previous config:", why);
      for (const auto& e : r.errors) spdlog::error("  {}", e);
      gw.NoteReloadFailure(r.errors.front());
      return;
    }
    if (Status az = EnsureAuthz(*authz_service, *r.config); !az.ok()) {
      spdlog::error("config reload ({}) rejected; still serving the previous config: authz: {}", why, az.message());
      gw.NoteReloadFailure("authz: " + az.message());
      return;
    }
    std::shared_ptr<const guard::RuleSet> guard_rules;
    if (r.config->guard.enabled) {
      auto loaded = LoadGuardRules(*r.config, /*cache=*/true);
      if (!loaded.rules) {
        spdlog::error("config reload ({}) rejected; still serving the previous config and rules:", why);
        for (const auto& e : loaded.errors) spdlog::error("  guard: {}", e);
        gw.NoteReloadFailure("guard: " + (loaded.errors.empty() ? std::string("rules did not load") : loaded.errors.front()));
        return;
      }
      guard_rules = loaded.rules;
    }
    Status st = gw.Reload(*r.config);
    if (guard_rules && st.ok()) gw.SetGuardRules(guard_rules);
    if (!st.ok()) {
      spdlog::error("config reload ({}) rejected; still serving the previous config: {}", why, st.message());
      return;
    }
    SetLogLevel(r.config->log.level);
    spdlog::info("config reloaded ({}) from {}", why, config_path);
  };
  auto next_upkeep = std::chrono::steady_clock::now();
  for (;;) {
    if (std::chrono::steady_clock::now() >= next_upkeep) {
      id->Maintain();
      next_upkeep = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    auto interval = gw.config()->reload.interval;
    timespec ts{static_cast<time_t>(interval.count() / 1000), static_cast<long>((interval.count() % 1000) * 1'000'000)};
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      auto deadline = gw.config()->server.shutdown_timeout;
      spdlog::info("{} received: draining (up to {} ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT", deadline.count());
      gw.Shutdown(deadline);
      // The gateway's HTTP client is gone: webhook batches still queued are
      // dropped (counted); the log and the file and syslog sinks keep all.
      webhook_gateway->Set(nullptr);
      if (audit_log) {
        if (Status st = audit_log->Flush(); !st.ok()) spdlog::error("audit: {}", st.message());
      }
      id->Stop();
      id->Maintain();  // flush API key last-used times
      spdlog::info("stopped");
      return 0;
    }
    if (config_path.empty()) continue;
    if (sig == SIGHUP) {
      stamp = config::StampOf(config_path);
      reload("SIGHUP");
    } else if (gw.config()->reload.watch) {
      auto now = config::StampOf(config_path);
      if (!(now == stamp)) {
        stamp = now;
        reload("file changed");
      }
    }
  }
}

struct GuardEvalArgs {
  std::string file;
  std::vector<std::string> rules;  // packs; empty = the built-in ones
  std::string where = "request";
  bool per_item = false;
  double block_threshold = 0.70, alert_threshold = 0.30;
};

// `aigis guard eval`: scores a labelled data set with the rule packs.
int GuardEval(const GuardEvalArgs& a) {
  auto rules = a.rules.empty() ? guard::LoadBuiltinRules() : guard::LoadRules(a.rules);  // NOLINT
  if (!rules.rules) {
    for (const auto& e : rules.errors) fmt::print(stderr, "{}\n", e);
    return 1;
  }
  std::optional<guard::Where> where;
  for (int w = 0; w < guard::kWhereCount; ++w) {
    if (guard::WhereName(static_cast<guard::Where>(w)) == a.where) where = static_cast<guard::Where>(w);
  }
  if (!where) {
    fmt::print(stderr, "--where must be request, response, tool_args, tool_result or tool_description\n");
    return 1;
  }
  auto data = guard::ReadLabelled(a.file);
  if (!data.ok()) {
    fmt::print(stderr, "{}\n", data.status().message());
    return 1;
  }
  guard::Policy policy;
  policy.block_threshold = a.block_threshold;
  policy.alert_threshold = a.alert_threshold;
  guard::EvalReport report = guard::Evaluate(*rules.rules, *data, policy, *where);
  if (a.per_item) {
    for (const auto& item : report.items) fmt::print("{}\n", guard::FormatItem(item));
  } else {
    fmt::print("{}: {} items, {} rules, {} text\n\n{}", a.file, data->size(), rules.rules->rules().size(), a.where,
               guard::FormatTable(report));
  }
  return 0;
}

// `aigis guard check`: loads packs, runs every rule's examples, and prints
// the errors (file:line: rule id: reason) or the rule count per category.
int GuardCheck(const std::vector<std::string>& paths) {
  auto rules = guard::LoadRules(paths);
  if (!rules.rules) {
    for (const auto& e : rules.errors) fmt::print(stderr, "{}\n", e);
    return 1;
  }
  std::map<std::string, int> per_category;
  for (const auto& r : rules.rules->rules()) ++per_category[r.category];
  fmt::print("{} rules, examples pass\n", rules.rules->rules().size());
  for (const auto& [category, n] : per_category) fmt::print("  {:<26} {}\n", category, n);
  return 0;
}

struct AuditVerifyArgs {
  std::string export_file, data_dir, tenant = "default";
  std::vector<std::string> checkpoints, keys;
};

std::string ReadWhole(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `aigis audit verify`: exit 0 when the log verifies, 1 when it does not
// (the first bad index and the kind of damage are printed), 2 on bad usage.
int AuditVerify(const AuditVerifyArgs& a) {
  if (a.export_file.empty() == a.data_dir.empty()) {
    fmt::print(stderr, "audit verify: give --export FILE (with --checkpoint and --key) or --data-dir DIR\n");
    return 2;
  }
  std::vector<audit::VerifierKey> keys;
  for (const auto& k : a.keys) {
    // A vkey, or a file holding vkeys one per line.
    std::vector<std::string> texts{k};
    bool ok = false;
    if (std::filesystem::is_regular_file(k)) {
      texts.clear();
      std::istringstream lines(ReadWhole(k, &ok));
      for (std::string line; std::getline(lines, line);) {
        if (!line.empty()) texts.push_back(line);
      }
    }
    for (const auto& t : texts) {
      auto key = audit::ParseVerifierKey(t);
      if (!key.ok()) {
        fmt::print(stderr, "audit verify: --key {}: {}\n", k, key.status().message());
        return 2;
      }
      keys.push_back(std::move(key).value());
    }
  }
  audit::VerifyReport r;
  if (!a.export_file.empty()) {
    if (keys.empty()) {
      fmt::print(stderr, "audit verify: --key is required with --export (the log's public key, from GET /admin/v1/audit/keys)\n");
      return 2;
    }
    std::vector<std::string> notes;
    for (const auto& f : a.checkpoints) {
      bool ok = false;
      std::string note = ReadWhole(f, &ok);
      if (!ok) {
        fmt::print(stderr, "audit verify: cannot read {}\n", f);
        return 2;
      }
      notes.push_back(std::move(note));
    }
    std::ifstream in(a.export_file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "audit verify: cannot read {}\n", a.export_file);
      return 2;
    }
    r = audit::VerifyExport(in, notes, keys);
  } else {
    std::filesystem::path dir = a.data_dir;
    if (std::filesystem::exists(dir / "audit" / "keys.json")) dir /= "audit";
    r = audit::VerifyDirectory(dir.string(), a.tenant, keys);
  }
  fmt::print("{}\n", r.ToString());
  return r.ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"aigis: a security gateway for AI agents"};
  app.require_subcommand(1);
  std::string config_path, ports_file, check_path;
  auto* serve = app.add_subcommand("serve", "run the gateway");
  serve->add_option("-c,--config", config_path, "config file (default: built-in defaults)");
  serve->add_option("--ports-file", ports_file, "write the bound ports as JSON here once listening");
  auto* check = app.add_subcommand("check-config", "validate a config file; prints file:line: message per error");
  check->add_option("file", check_path, "config file")->required();
  auto* version = app.add_subcommand("version", "print the version");
  auto* guard_cmd = app.add_subcommand("guard", "guardrail tools");
  GuardEvalArgs eval_args;
  auto* eval = guard_cmd->add_subcommand("eval", "score a labelled data set (JSON lines or CSV: text, label[, category])");
  eval->add_option("file", eval_args.file, "data set (.jsonl or .csv)")->required();
  eval->add_option("--rules", eval_args.rules, "rule pack files or directories (default: the built-in packs)");
  eval->add_option("--where", eval_args.where, "request | response | tool_args | tool_result | tool_description");
  eval->add_flag("--per-item", eval_args.per_item, "one JSON line per input instead of the table");
  eval->add_option("--block-threshold", eval_args.block_threshold, "risk score that blocks (0.70)");
  eval->add_option("--alert-threshold", eval_args.alert_threshold, "risk score that alerts (0.30)");
  std::vector<std::string> check_packs;
  auto* gcheck = guard_cmd->add_subcommand("check", "load rule packs and run every rule's examples");
  gcheck->add_option("packs", check_packs, "rule pack files or directories")->required();
  guard_cmd->require_subcommand(1);
  auto* audit_cmd = app.add_subcommand("audit", "audit log tools");
  AuditVerifyArgs av;
  auto* averify = audit_cmd->add_subcommand(
      "verify", "check an audit log against signed checkpoints; names the first bad index and the kind of damage");
  averify->add_option("--export", av.export_file, "an export (GET /admin/v1/audit/export): JSON lines");
  averify->add_option("--checkpoint", av.checkpoints, "a signed checkpoint (note file); repeatable; the export's own is also used");
  averify->add_option("--key", av.keys, "a verifier key (name+id+key) or a file of them; repeatable");
  averify->add_option("--data-dir", av.data_dir, "verify a log directory instead (aigis data_dir, or its audit/)");
  averify->add_option("--tenant", av.tenant, "with --data-dir: the tenant (default: default)");
  audit_cmd->require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  if (*averify) return AuditVerify(av);
  if (*serve) return Serve(config_path, ports_file);
  if (*check) return CheckConfig(check_path);
  if (*eval) return GuardEval(eval_args);
  if (*gcheck) return GuardCheck(check_packs);
  if (*version) {
    fmt::print("aigis {} ({})\n", kVersion, kCommit);
    return 0;
  }
  return 1;
}

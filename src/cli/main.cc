// aigis: the command line. `aigis serve`, `aigis check-config`, `aigis version`.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <pthread.h>

#include "config/config.h"
#include "gateway/gateway.h"

namespace {

using namespace aigis;

constexpr const char* kVersion = AIGIS_VERSION;
constexpr const char* kCommit = AIGIS_GIT_COMMIT;

void PrintErrors(const std::vector<std::string>& errors) {
  for (const auto& e : errors) fmt::print(stderr, "{}\n", e);
}

int CheckConfig(const std::string& path) {
  auto r = config::LoadFile(path);
  if (!r.errors.empty()) {
    PrintErrors(r.errors);
    fmt::print(stderr, "{}: {} error{}\n", path, r.errors.size(), r.errors.size() == 1 ? "" : "s");
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
  gateway::GatewayOptions opts;
  opts.version = kVersion;
  opts.commit = kCommit;
  auto g = gateway::Gateway::Create(cfg, opts);
  if (!g.ok()) {
    spdlog::error("{}", g.status().message());
    return 2;
  }
  auto& gw = **g;
  auto ports = gw.Start();
  if (!ports.ok()) {
    spdlog::error("{}", ports.status().message());
    return 2;
  }
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
      gw.NoteReloadFailure();
      return;
    }
    Status st = gw.Reload(*r.config);
    if (!st.ok()) {
      spdlog::error("config reload ({}) rejected; still serving the previous config: {}", why, st.message());
      return;
    }
    SetLogLevel(r.config->log.level);
    spdlog::info("config reloaded ({}) from {}", why, config_path);
  };
  for (;;) {
    auto interval = gw.config()->reload.interval;
    timespec ts{static_cast<time_t>(interval.count() / 1000), static_cast<long>((interval.count() % 1000) * 1'000'000)};
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      auto deadline = gw.config()->server.shutdown_timeout;
      spdlog::info("{} received: draining (up to {} ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT", deadline.count());
      gw.Shutdown(deadline);
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
  CLI11_PARSE(app, argc, argv);
  if (*serve) return Serve(config_path, ports_file);
  if (*check) return CheckConfig(check_path);
  if (*version) {
    fmt::print("aigis {} ({})\n", kVersion, kCommit);
    return 0;
  }
  return 1;
}

// The authz engine at organisation scale: Check latency (p50/p99) per kind
// of resolution, cached and uncached; ListObjects over ~10k granted objects;
// memory per tuple; build time of the in-memory TupleSet and load time of a
// Service from SQLite. The organisation (>= 1M tuples over the default model,
// rules/authz/model.fga) is generated deterministically (org.h).
//
// Before the benchmarks run, main() does the one-off measurements, printed
// as "setup:" lines and recorded in the report's context (JSON
// "context" with --benchmark_out): generation, TupleSet build time and
// bytes per tuple (glibc mallinfo2 plus TupleSet::MappedBytes around the
// build), and the SQLite write + load through authz::Service. Then it
// builds, for each kind of Check, a list of queries (half allowed, half
// denied) whose answers the engine confirmed once; the Check benchmarks
// cycle through that list, time every call, and report p50/p90/p99 as
// counters (`wrong` counts answers that differ from the confirmed one: it
// must stay 0). "uncached" calls Engine::Check; "cached" goes through a
// warmed authz::CheckCache.
//
// Flags besides Google Benchmark's:
//   --authz_queries=10000        queries per Check kind
//   --authz_sqlite=1             0 skips the SQLite write/load measurement
//   --authz_sqlite_batch=50000   tuples per Service::Write
//   --authz_sqlite_budget_s=150  stop writing to SQLite after this long (the
//                                load is then measured on what was written)
//
// `make bench-authz` runs it on the release build with
// --benchmark_min_time=1 (2-3 minutes; bench/results/authz.md).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "authz/authz.h"
#include "org.h"
#include "store/store.h"

namespace aigis::authz::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Seconds(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

struct Flags {
  int queries = 10000;
  bool sqlite = true;
  size_t sqlite_batch = 50000;
  double sqlite_budget_s = 150;
};

// A Check request and the answer the engine gave when the list was built.
struct Query {
  CheckRequest request;
  bool allowed = false;
};

struct QuerySet {
  std::string kind;
  std::vector<Query> queries;  // allowed and denied interleaved at random
  size_t discarded = 0;        // generated with an intended answer the engine did not give
};

// Everything the benchmarks share; built once in main() before they run.
struct World {
  Model model;
  std::optional<Engine> engine;
  TupleSet tuples;
  Org org;
  std::vector<QuerySet> kinds;
};

World* world = nullptr;

// Prints a setup result and records it in the benchmark context.
void Report(const std::string& key, const std::string& value) {
  fmt::print("setup: {:<34} {}\n", key, value);
  std::fflush(stdout);
  benchmark::AddCustomContext("authz_" + key, value);
}

[[noreturn]] void Die(const std::string& what) {
  fmt::print(stderr, "aigis_authz_benchmark: {}\n", what);
  std::exit(1);
}

size_t HeapInUse() {
  struct mallinfo2 mi = mallinfo2();
  // arena chunks in use + mmapped chunks + the tuple store's own mappings
  return mi.uordblks + mi.hblkhd + TupleSet::MappedBytes();
}

// ------------------------------------------------------------- setup ----

void BuildTupleSet(World& w) {
  constexpr size_t kBatch = 10000;
  malloc_trim(0);
  const size_t heap_before = HeapInUse();
  const auto t0 = SteadyClock::now();
  const auto& all = w.org.tuples;
  std::vector<TupleKey> batch;
  for (size_t i = 0; i < all.size(); i += kBatch) {
    batch.assign(all.begin() + i, all.begin() + std::min(all.size(), i + kBatch));
    if (Status st = w.tuples.Write(w.model, batch); !st.ok()) Die("TupleSet::Write: " + st.message());
  }
  const double seconds = Seconds(t0, SteadyClock::now());
  const size_t heap_after = HeapInUse();
  if (w.tuples.size() != all.size()) Die(fmt::format("TupleSet has {} tuples, want {}", w.tuples.size(), all.size()));
  const double bytes = static_cast<double>(heap_after) - static_cast<double>(heap_before);
  Report("tupleset_build_s", fmt::format("{:.2f} ({} batches of {}; {:.0f} tuples/s)", seconds,
                                         (all.size() + kBatch - 1) / kBatch, kBatch, all.size() / seconds));
  Report("tupleset_heap_mib", fmt::format("{:.1f}", bytes / (1 << 20)));
  Report("tupleset_bytes_per_tuple", fmt::format("{:.1f} (goal <= 200)", bytes / all.size()));
}

// Writes the organisation through Service::Write into a new SQLite file,
// closes it, and times Service::Open on that file.
void MeasureSqliteLoad(const World& w, const Flags& flags) {
  std::string dir = (std::filesystem::temp_directory_path() / "aigis-authz-bench-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) Die("mkdtemp failed");
  std::error_code ec;
  auto fail = [&](const std::string& what) {  // Die, without leaving a large file in the temp dir
    std::filesystem::remove_all(dir, ec);
    Die(what);
  };
  const std::string path = dir + "/authz.db";
  const std::string tenant = "bench";
  std::string store_id;
  size_t written = 0;
  {
    auto db = store::OpenSqlite({path});
    if (!db.ok()) fail("OpenSqlite: " + db.status().message());
    auto svc = Service::Open(**db);
    if (!svc.ok()) fail("Service::Open: " + svc.status().message());
    auto info = (*svc)->CreateStore(tenant, "org");
    if (!info.ok()) fail("CreateStore: " + info.status().message());
    store_id = info->id;
    auto model_id = (*svc)->WriteModel(tenant, store_id, ToJson(w.model));
    if (!model_id.ok()) fail("WriteModel: " + model_id.status().message());
    const auto& all = w.org.tuples;
    const auto t0 = SteadyClock::now();
    double first_batch = 0, last_batch = 0;
    std::vector<TupleKey> batch;
    for (size_t i = 0; i < all.size(); i += flags.sqlite_batch) {
      if (Seconds(t0, SteadyClock::now()) > flags.sqlite_budget_s) break;
      batch.assign(all.begin() + i, all.begin() + std::min(all.size(), i + flags.sqlite_batch));
      const auto b0 = SteadyClock::now();
      if (Status st = (*svc)->Write(tenant, store_id, *model_id, batch, {}); !st.ok()) {
        fail("Service::Write: " + st.message());
      }
      last_batch = Seconds(b0, SteadyClock::now());
      if (i == 0) first_batch = last_batch;
      written += batch.size();
    }
    const double seconds = Seconds(t0, SteadyClock::now());
    Report("sqlite_write_s", fmt::format("{:.1f} ({} of {} tuples, batches of {}: first {:.2f} s, last {:.2f} s; "
                                         "{:.0f} tuples/s)",
                                         seconds, written, all.size(), flags.sqlite_batch, first_batch, last_batch,
                                         written / seconds));
    if (written < all.size()) Report("sqlite_write_note", fmt::format("stopped at the {:.0f} s budget", flags.sqlite_budget_s));
  }
  uintmax_t file_bytes = 0;  // the database and its WAL
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) file_bytes += entry.file_size(ec);
  Report("sqlite_files_mib", fmt::format("{:.1f}", file_bytes / double(1 << 20)));
  {
    malloc_trim(0);
    const size_t heap_before = HeapInUse();
    const auto t0 = SteadyClock::now();
    auto db = store::OpenSqlite({path});
    if (!db.ok()) fail("OpenSqlite: " + db.status().message());
    auto svc = Service::Open(**db);
    if (!svc.ok()) fail("Service::Open: " + svc.status().message());
    const double seconds = Seconds(t0, SteadyClock::now());
    auto view = (*svc)->View(tenant, store_id, "");
    if (!view.ok()) fail("View: " + view.status().message());
    if (view->tuples.size() != written) fail(fmt::format("loaded {} tuples, wrote {}", view->tuples.size(), written));
    Report("sqlite_load_s", fmt::format("{:.2f} (Service::Open of {} tuples; {:.0f} tuples/s)", seconds, written,
                                        written / seconds));
    // What serving from the Service costs: its snapshot (TupleSet plus the
    // per-tuple write times it keeps for Read) and SQLite's caches.
    const double bytes = static_cast<double>(HeapInUse()) - static_cast<double>(heap_before);
    Report("service_bytes_per_tuple", fmt::format("{:.1f} (heap held by the opened Service)", bytes / written));
  }
  std::filesystem::remove_all(dir, ec);
}

// Generates queries with `make(rng, want_allowed)` until `n/2` allowed and
// `n/2` denied ones are confirmed by the engine; an intended answer the
// engine does not give is discarded (counted).
QuerySet MakeQueries(const World& w, std::string kind, int n,
                     const std::function<CheckRequest(std::mt19937_64&, bool)>& make) {
  QuerySet qs;
  qs.kind = std::move(kind);
  uint64_t seed = w.org.shape.seed;  // FNV-1a over the kind: the same lists with every standard library
  for (char c : qs.kind) seed = (seed ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  std::mt19937_64 rng(seed);
  for (bool want : {true, false}) {
    int got = 0;
    for (int attempts = 0; got < n / 2; ++attempts) {
      if (attempts > 50 * n) Die(fmt::format("{}: cannot generate {} queries", qs.kind, want ? "allowed" : "denied"));
      CheckRequest req = make(rng, want);
      auto r = w.engine->Check(w.tuples, req);
      if (!r.ok()) Die(fmt::format("{}: Check({}) failed: {}", qs.kind, req.tuple.ToString(), r.status().message()));
      if (r->allowed != want) {
        ++qs.discarded;
        continue;
      }
      qs.queries.push_back({std::move(req), want});
      ++got;
    }
  }
  for (size_t i = qs.queries.size(); i > 1; --i) std::swap(qs.queries[i - 1], qs.queries[rng() % i]);  // not std::shuffle: portable
  return qs;
}

int Pick(std::mt19937_64& rng, size_t n) { return static_cast<int>(rng() % n); }

CheckRequest Request(std::string object, std::string relation, std::string user, std::string context = {}) {
  CheckRequest req;
  req.tuple.object = std::move(object);
  req.tuple.relation = std::move(relation);
  req.tuple.user = std::move(user);
  req.context = std::move(context);
  return req;
}

void BuildQueries(World& w, int n) {
  const Org& org = w.org;
  const OrgShape& s = org.shape;
  const int per_root = s.ds_fanout * s.ds_fanout;

  // agent can_use llm_model through a direct tuple (denied: a model the agent
  // was not granted; agents are in no team and no tenant#member).
  w.kinds.push_back(MakeQueries(w, "direct", n, [&](std::mt19937_64& rng, bool allow) {
    const int a = 1 + Pick(rng, s.agents - 1);
    const auto& mine = org.agent_models[a];
    int m = mine[Pick(rng, mine.size())];
    if (!allow) {
      do m = Pick(rng, s.models);
      while (std::find(mine.begin(), mine.end(), m) != mine.end());
    }
    return Request(ModelName(m), "can_use", AgentName(a));
  }));

  // user can_use mcp_server through team#member granted on a team of the
  // second level, the user being a member of a leaf team under it (two
  // userset hops). Denied: a random user and server without a path.
  w.kinds.push_back(MakeQueries(w, "userset", n, [&](std::mt19937_64& rng, bool allow) {
    for (;;) {
      const int sv = Pick(rng, s.servers);
      if (!allow) return Request(ServerName(sv), "can_use", UserName(Pick(rng, s.users)));
      std::vector<int> nested;
      for (int t : org.server_teams[sv]) {
        if (org.team_leaves[t].size() > 1) nested.push_back(t);
      }
      if (nested.empty()) continue;
      const auto& leaves = org.team_leaves[nested[Pick(rng, nested.size())]];
      const auto& users = org.team_users[leaves[Pick(rng, leaves.size())]];
      if (users.empty()) continue;
      return Request(ServerName(sv), "can_use", UserName(users[Pick(rng, users.size())]));
    }
  }));

  // user reader on a leaf data source through a grant on its root: reader
  // from parent (mid) from parent (root), then the direct tuple. The request
  // carries a client_ip (as the gateway's always does) from outside the
  // conditional grants' network: without one, a `from_network` grant met on
  // the way fails the request (validation_error) unless another path grants.
  w.kinds.push_back(MakeQueries(w, "ttu3", n, [&](std::mt19937_64& rng, bool allow) {
    const int root = Pick(rng, s.ds_roots);
    const int leaf = root * per_root + Pick(rng, per_root);
    const auto& readers = org.root_readers[root];
    const int user = allow ? readers[Pick(rng, readers.size())] : Pick(rng, s.users);
    return Request(LeafDataSourceName(s, leaf), "reader", UserName(user), kOutsideContext);
  }));

  // user can_use a public llm_model through llm_model:<m>#can_use@user:*
  // (denied: a model that is not public).
  w.kinds.push_back(MakeQueries(w, "wildcard", n, [&](std::mt19937_64& rng, bool allow) {
    const int m = allow ? Pick(rng, s.public_models) : s.public_models + Pick(rng, s.models - s.public_models);
    return Request(ModelName(m), "can_use", UserName(Pick(rng, s.users)));
  }));

  // agent reader on a leaf through `agent with from_network`: allowed from
  // inside 10.0.0.0/8, denied from outside it.
  w.kinds.push_back(MakeQueries(w, "conditional", n, [&](std::mt19937_64& rng, bool allow) {
    const auto& [leaf, agent] = org.conditional[Pick(rng, org.conditional.size())];
    return Request(LeafDataSourceName(s, leaf), "reader", AgentName(agent), allow ? kInsideContext : kOutsideContext);
  }));

  for (const auto& qs : w.kinds) {
    Report("queries_" + qs.kind, fmt::format("{} ({} discarded while generating)", qs.queries.size(), qs.discarded));
  }
}

// -------------------------------------------------------- benchmarks ----

// The value at quantile p of sorted `v`, in microseconds (0 when empty).
double QuantileUs(const std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] * 1e6;
}

// Times every call (manual time), cycling through the query list, and
// reports latency percentiles, overall and for allowed and denied answers
// apart. `check` returns the Check result.
template <typename CheckFn>
void TimeChecks(benchmark::State& state, const QuerySet& qs, CheckFn&& check) {
  std::vector<double> latencies, allowed_latencies, denied_latencies;
  size_t i = 0, wrong = 0;
  for (auto _ : state) {
    const Query& q = qs.queries[i];
    if (++i == qs.queries.size()) i = 0;
    const auto t0 = SteadyClock::now();
    Result<CheckResult> r = check(q.request);
    const auto t1 = SteadyClock::now();
    benchmark::DoNotOptimize(r);
    if (!r.ok()) {
      state.SkipWithError(("Check failed: " + r.status().message()).c_str());
      break;
    }
    wrong += r->allowed != q.allowed;
    const double s = Seconds(t0, t1);
    state.SetIterationTime(s);
    latencies.push_back(s);
    (r->allowed ? allowed_latencies : denied_latencies).push_back(s);
  }
  if (latencies.empty()) return;
  for (auto* v : {&latencies, &allowed_latencies, &denied_latencies}) std::sort(v->begin(), v->end());
  state.counters["p50_us"] = QuantileUs(latencies, 0.50);
  state.counters["p90_us"] = QuantileUs(latencies, 0.90);
  state.counters["p99_us"] = QuantileUs(latencies, 0.99);
  state.counters["p50_allow_us"] = QuantileUs(allowed_latencies, 0.50);
  state.counters["p50_deny_us"] = QuantileUs(denied_latencies, 0.50);
  state.counters["allowed"] = static_cast<double>(allowed_latencies.size()) / latencies.size();
  state.counters["wrong"] = static_cast<double>(wrong);
}

void BM_CheckUncached(benchmark::State& state, const QuerySet* qs) {
  const Engine& engine = *world->engine;
  const TupleSet& tuples = world->tuples;
  TimeChecks(state, *qs, [&](const CheckRequest& req) { return engine.Check(tuples, req); });
}

// Through authz::CheckCache, warmed with the whole query list first (so the
// timed calls are hits; `hit_ratio` says so).
void BM_CheckCached(benchmark::State& state, const QuerySet* qs) {
  const Engine& engine = *world->engine;
  const TupleSet& tuples = world->tuples;
  static std::map<std::string, std::unique_ptr<CheckCache>> caches;  // one per kind, warmed once
  auto& cache = caches[qs->kind];
  if (!cache) {
    cache = std::make_unique<CheckCache>();
    for (const Query& q : qs->queries) {
      auto r = cache->Check(engine, "bench", tuples, q.request);
      if (!r.ok()) {
        state.SkipWithError(("CheckCache warm-up failed: " + r.status().message()).c_str());
        return;
      }
    }
  }
  size_t hits = 0, calls = 0;
  TimeChecks(state, *qs, [&](const CheckRequest& req) {
    bool hit = false;
    auto r = cache->Check(engine, "bench", tuples, req, &hit);
    hits += hit;
    ++calls;
    return r;
  });
  if (calls > 0) state.counters["hit_ratio"] = static_cast<double>(hits) / calls;
}

// The tools agent:a0 may call: server-wide grants on `lister_servers`
// servers, i.e. lister_servers x tools_per_server tools (plus the
// tool:<s>/* objects themselves).
void BM_ListObjects(benchmark::State& state) {
  const Engine& engine = *world->engine;
  const OrgShape& s = world->org.shape;
  const size_t want = static_cast<size_t>(std::min(s.lister_servers, s.servers)) * (s.tools_per_server + 1);
  size_t objects = 0;
  std::vector<double> latencies;
  for (auto _ : state) {
    const auto t0 = SteadyClock::now();
    auto r = engine.ListObjects(world->tuples, "tool", "can_call", AgentName(0));
    const auto t1 = SteadyClock::now();
    if (!r.ok()) {
      state.SkipWithError(("ListObjects failed: " + r.status().message()).c_str());
      break;
    }
    objects = r->size();
    benchmark::DoNotOptimize(r);
    state.SetIterationTime(Seconds(t0, t1));
    latencies.push_back(Seconds(t0, t1));
  }
  if (latencies.empty()) return;
  std::sort(latencies.begin(), latencies.end());
  state.counters["objects"] = static_cast<double>(objects);
  state.counters["p50_ms"] = latencies[latencies.size() / 2] * 1e3;
  state.counters["max_ms"] = latencies.back() * 1e3;
  if (objects != want) state.SkipWithError(fmt::format("ListObjects returned {} objects, want {}", objects, want).c_str());
}

void RegisterAll(const World& w) {
  for (const QuerySet& qs : w.kinds) {
    benchmark::RegisterBenchmark(("Check/" + qs.kind + "/uncached").c_str(), BM_CheckUncached, &qs)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const QuerySet& qs : w.kinds) {
    benchmark::RegisterBenchmark(("Check/" + qs.kind + "/cached").c_str(), BM_CheckCached, &qs)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("ListObjects/tool/can_call/10k", BM_ListObjects)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

// The cost of the two clock reads around each timed call.
double TimerOverheadNs() {
  constexpr int kRounds = 1000000;
  double total = 0;
  for (int i = 0; i < kRounds; ++i) {
    const auto t0 = SteadyClock::now();
    const auto t1 = SteadyClock::now();
    total += Seconds(t0, t1);
  }
  return total / kRounds * 1e9;
}

// Takes our flags out of argv (Google Benchmark rejects what it does not know).
Flags ParseFlags(int* argc, char** argv) {
  Flags f;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name) -> std::optional<std::string> {
      if (a.size() > name.size() + 1 && a.substr(0, name.size()) == name && a[name.size()] == '=') {
        return std::string(a.substr(name.size() + 1));
      }
      return std::nullopt;
    };
    if (auto v = value("--authz_queries")) {
      f.queries = std::max(2, std::atoi(v->c_str()));
    } else if (auto v = value("--authz_sqlite")) {
      f.sqlite = *v != "0" && *v != "false";
    } else if (auto v = value("--authz_sqlite_batch")) {
      f.sqlite_batch = std::max(1L, std::atol(v->c_str()));
    } else if (auto v = value("--authz_sqlite_budget_s")) {
      f.sqlite_budget_s = std::atof(v->c_str());
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return f;
}

}  // namespace
}  // namespace aigis::authz::bench

int main(int argc, char** argv) {
  using namespace aigis::authz;
  using namespace aigis::authz::bench;
  benchmark::Initialize(&argc, argv);
  const Flags flags = ParseFlags(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  static World w;
  world = &w;
  const std::string model_path = "rules/authz/model.fga (built in)";
  auto model = ParseDsl(DefaultModelDsl());
  if (!model.ok()) Die(model_path + ": " + model.status().message());
  w.model = *model;
  auto engine = Engine::Create(*model);
  if (!engine.ok()) Die("Engine::Create: " + engine.status().message());
  w.engine.emplace(std::move(engine).value());
  Report("model", model_path);

  auto t0 = SteadyClock::now();
  w.org = GenerateOrg();
  Report("generate_s", fmt::format("{:.2f}", Seconds(t0, SteadyClock::now())));
  for (const auto& [category, count] : w.org.counts) Report("tuples: " + category, std::to_string(count));
  Report("tuples", std::to_string(w.org.tuples.size()));

  BuildTupleSet(w);
  if (flags.sqlite) MeasureSqliteLoad(w, flags);

  t0 = SteadyClock::now();
  BuildQueries(w, flags.queries);
  Report("queries_build_s", fmt::format("{:.1f}", Seconds(t0, SteadyClock::now())));

  Report("timer_overhead_ns", fmt::format("{:.0f} (one steady_clock::now() pair, included in every timed call)",
                                          TimerOverheadNs()));
  RegisterAll(w);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

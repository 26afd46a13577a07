// The audit log: appends per second with group commit (async and sync, 2
// threads, ~1 KB records, real fdatasync on this disk), inclusion and
// consistency proofs at 10M leaves, and offline verification speed.
//
// * Append: each of 2 threads appends its share of the records. Async: the
//   threads append as fast as they can and the run ends when everything is
//   durable (Flush). Sync: like the gateway's I/O threads, each thread keeps
//   up to 256 records waiting for durability (OnDurable) and counts a record
//   only once it is durable.
// * Proofs: a log of 10M small records (built once into the build tree and
//   reused), fsync off while building.
// * Verify: VerifyDirectory over a log of 1M ~1 KB records (files in the
//   page cache: this measures the verifier, not the disk).
//
// `make bench-audit`; results in bench/results/audit.md. Logs are written
// under AIGIS_BENCH_DIR (default: ./bench-audit-data), on disk, not tmpfs.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "audit/audit.h"

namespace {

namespace fs = std::filesystem;
using aigis::audit::Log;

std::string BenchDir() {
  const char* d = std::getenv("AIGIS_BENCH_DIR");
  return d != nullptr ? d : "bench-audit-data";
}

aigis::audit::LogOptions Options(const std::string& dir, bool fsync) {
  aigis::audit::LogOptions o;
  o.dir = dir;
  o.master_key = std::string(48, 'b');
  o.checkpoint_interval = std::chrono::milliseconds(0);
  o.fsync = fsync;
  o.max_queue = 10'000'000;
  return o;
}

// A record shaped like a gateway exchange's, about 1 KB.
std::string Record(uint64_t i) {
  return fmt::format(
      R"({{"v":1,"kind":"exchange","time":"2026-11-24T05:00:00.{:06}Z","tenant":"default","request_id":"bench-{:016x}",)"
      R"("principal":{{"kind":"agent","id":"agt_{:020}","issuer":"http://127.0.0.1:8080","credential_id":"cred_{:012}"}},)"
      R"("method":"POST","path":"/v1/chat/completions","remote":"127.0.0.1:{}","protocol":"openai","endpoint":"chat.completions",)"
      R"("route":"default","model":"gpt-4o-mini","stream":false,"status":200,"decision":"allow","stages":[)"
      R"({{"stage":"authenticate","outcome":"allow"}},{{"stage":"authorize","outcome":"allow","checks":[{{"decision_id":"bench-{:016x}.authz.1",)"
      R"("allowed":true,"user":"agent:agt_{:020}","relation":"can_use","object":"model:gpt-4o-mini","model_id":"01JD8X0000000000000000000",)"
      R"("revision":{},"cached":true,"explanation":["agent:agt_{:020} member of team:platform","team:platform#member can_use model:gpt-4o-mini"]}}]}},)"
      R"({{"stage":"screen_request","outcome":"pass","score_milli":0,"rules":[],"fields":[],"masked":[]}}],)"
      R"("upstream":{{"name":"openai","status":200,"attempts":1,"latency_us":{}}},"usage":{{"input_tokens":{},"output_tokens":{}}},)"
      R"("latency_us":{},"request_sha256":"{:064x}","response_sha256":"{:064x}"}})",
      i % 1000000, i, i % 5000, i % 977, 40000 + i % 20000, i, i % 5000, i, i % 5000, 200000 + i % 50000, 100 + i % 900,
      10 + i % 200, 210000 + i % 50000, i * 2654435761u, i * 40503u);
}

void Append(benchmark::State& state, bool sync) {
  const uint64_t per_thread = static_cast<uint64_t>(state.range(0));
  std::string dir = BenchDir() + (sync ? "/append-sync" : "/append-async");
  for (auto _ : state) {
    fs::remove_all(dir);
    // AIGIS_BENCH_NO_FSYNC=1: the same without fdatasync (what the CPU allows).
    auto log = Log::Open(Options(dir, /*fsync=*/std::getenv("AIGIS_BENCH_NO_FSYNC") == nullptr));
    if (!log.ok()) {
      state.SkipWithError(log.status().ToString().c_str());
      return;
    }
    // Canonical, as the gateway writes them (the log then only checks them).
    std::vector<std::string> records;
    for (uint64_t i = 0; i < 2 * per_thread; ++i) records.push_back(*aigis::audit::Canonicalize(Record(i)));
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    std::atomic<bool> failed{false};
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        std::mutex mu;
        std::condition_variable cv;
        uint64_t in_flight = 0;
        for (uint64_t i = 0; i < per_thread; ++i) {
          // A fresh string per record, as the gateway serialises each one.
          auto idx = (*log)->Append({"default", "", {}, records[t * per_thread + i]});
          if (!idx.ok()) {
            failed = true;
            return;
          }
          if (!sync) continue;
          std::unique_lock l(mu);
          cv.wait(l, [&] { return in_flight < 256; });
          ++in_flight;
          l.unlock();
          (*log)->OnDurable("default", *idx, [&](aigis::Status) {
            std::lock_guard g(mu);
            --in_flight;
            cv.notify_one();
          });
        }
        std::unique_lock l(mu);
        cv.wait(l, [&] { return in_flight == 0; });
      });
    }
    for (auto& t : threads) t.join();
    if (!(*log)->Flush().ok() || failed) {
      state.SkipWithError("append failed");
      return;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(secs);
    auto st = (*log)->stats();
    state.counters["appends_per_s"] = static_cast<double>(2 * per_thread) / secs;
    state.counters["records_per_batch"] = static_cast<double>(st.appended) / static_cast<double>(std::max<uint64_t>(st.batches, 1));
    // fdatasync rounds (three files each: records, index, tree).
    state.counters["records_per_sync"] = static_cast<double>(3 * st.appended) / static_cast<double>(std::max<uint64_t>(st.syncs, 1));
    state.counters["record_bytes"] = static_cast<double>(st.bytes) / static_cast<double>(st.appended);
    state.counters["MB_per_s"] = static_cast<double>(st.bytes) / secs / 1e6;
  }
  fs::remove_all(dir);
}

void BM_AppendAsync(benchmark::State& state) { Append(state, false); }
void BM_AppendSync(benchmark::State& state) { Append(state, true); }
BENCHMARK(BM_AppendAsync)->Arg(200'000)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AppendSync)->Arg(50'000)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

// The parts of one append that run on the caller's thread: a record that
// needs rebuilding, and one that is already canonical (the gateway's).
void BM_Canonicalize(benchmark::State& state) {
  std::string rec = Record(42);
  for (auto _ : state) benchmark::DoNotOptimize(aigis::audit::Canonicalize(rec));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * rec.size()));
}
BENCHMARK(BM_Canonicalize);

void BM_CanonicalAlready(benchmark::State& state) {
  std::string rec = *aigis::audit::Canonicalize(Record(42));
  for (auto _ : state) benchmark::DoNotOptimize(aigis::audit::Canonicalize(rec));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * rec.size()));
}
BENCHMARK(BM_CanonicalAlready);

void BM_LeafHash(benchmark::State& state) {
  std::string rec = *aigis::audit::Canonicalize(Record(42));
  for (auto _ : state) benchmark::DoNotOptimize(aigis::audit::LeafHash(rec));
}
BENCHMARK(BM_LeafHash);

// A log of `n` records, built once (fsync off) and reused across runs.
Log& Built(const std::string& name, uint64_t n, bool small) {
  static std::map<std::string, std::unique_ptr<Log>> logs;
  auto& slot = logs[name];
  if (slot) return *slot;
  std::string dir = BenchDir() + "/" + name;
  auto log = Log::Open(Options(dir, /*fsync=*/false));
  if (!log.ok()) {
    fmt::print(stderr, "{}\n", log.status().ToString());
    std::abort();
  }
  uint64_t have = (*log)->Size("default");
  if (have != n) {
    log->reset();  // close (and unlock) before starting over
    fs::remove_all(dir);
    log = Log::Open(Options(dir, false));
    fmt::print(stderr, "building a log of {} records in {} ...\n", n, dir);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        for (uint64_t i = t; i < n; i += 2) {
          std::string rec = small ? fmt::format(R"({{"i":{}}})", i) : Record(i);
          while (!(*log)->Append({"default", "", {}, rec}).ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      });
    }
    for (auto& t : threads) t.join();
    if (!(*log)->Flush().ok()) std::abort();
    fmt::print(stderr, "built in {:.1f} s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (!(*log)->IssueCheckpoint("default").ok()) std::abort();
  slot = std::move(log).value();
  return *slot;
}

constexpr uint64_t kTenMillion = 10'000'000;

void BM_InclusionProof10M(benchmark::State& state) {
  Log& log = Built("ten-million", kTenMillion, /*small=*/true);
  std::mt19937_64 rng(7);
  uint64_t size = log.Size("default");
  auto root = log.RootHash("default", size).value();
  for (auto _ : state) {
    uint64_t i = rng() % size;
    auto p = log.InclusionProof("default", i, size);
    benchmark::DoNotOptimize(p);
  }
  // One proof checked end to end, so the number is of real proofs.
  uint64_t i = size / 3;
  auto p = log.InclusionProof("default", i, size).value();
  auto rec = log.Record("default", i).value();
  if (!aigis::audit::VerifyInclusion(i, size, aigis::audit::LeafHash(rec), p, root).ok()) state.SkipWithError("bad proof");
  state.counters["leaves"] = static_cast<double>(size);
  state.counters["proof_hashes"] = static_cast<double>(p.size());
}
BENCHMARK(BM_InclusionProof10M)->Unit(benchmark::kMicrosecond);

void BM_ConsistencyProof10M(benchmark::State& state) {
  Log& log = Built("ten-million", kTenMillion, true);
  std::mt19937_64 rng(9);
  uint64_t size = log.Size("default");
  for (auto _ : state) {
    uint64_t old = 1 + rng() % (size - 1);
    benchmark::DoNotOptimize(log.ConsistencyProof("default", old, size));
  }
}
BENCHMARK(BM_ConsistencyProof10M)->Unit(benchmark::kMicrosecond);

void BM_Verify(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  Log& log = Built(fmt::format("verify-{}", n), n, /*small=*/false);
  (void)log;
  std::string dir = BenchDir() + fmt::format("/verify-{}", n);
  uint64_t leaves = 0;
  for (auto _ : state) {
    auto r = aigis::audit::VerifyDirectory(dir, "default", {});
    if (!r.ok) state.SkipWithError(r.ToString().c_str());
    leaves += r.records;
  }
  // Per second of wall time (UseRealTime): the verifier uses both cores.
  state.counters["leaves_per_s"] = benchmark::Counter(static_cast<double>(leaves), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Verify)->Arg(1'000'000)->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

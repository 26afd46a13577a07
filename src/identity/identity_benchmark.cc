// Micro-benchmarks for identity's hot paths (bench/results/identity.md):
//
// * Authenticate on a cached token (the per-request cost of the authenticate
//   stage for an agent that reuses its token), alone and from 2 threads;
// * Authenticate on a token that is not cached (parse + signature
//   verification + claims, then the cache insert);
// * Authenticate with an API key (HMAC of the presented secret, no cache);
// * the token endpoint, client_credentials with client_secret_basic, per
//   signing algorithm, and its parts (form parsing, secret HMAC, signing).
//
// Everything runs on an in-memory SQLite store with the system clock; the
// store is touched only by the setup (agents, secrets, keys), never by the
// measured calls.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "crypto/crypto.h"
#include "identity/identity.h"
#include "identity/internal.h"
#include "store/store.h"

namespace aigis::identity {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "identity_benchmark: %s\n", what.c_str());
  std::abort();
}

constexpr std::string_view kForm = "grant_type=client_credentials";

// One store + Identity with an agent, its client secret and an API key.
struct Env {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Identity> id;
  Agent agent;
  IssuedSecret secret;
  std::string basic;  // "Basic base64(client_id:client_secret)"
  std::string api_key;

  OAuthRequest TokenRequest() const {
    return {"POST", basic, "application/x-www-form-urlencoded", std::string(kForm)};
  }
  std::string Issue() const {
    OAuthResponse r = id->Token(TokenRequest());
    if (r.status != 200) Die("token endpoint answered " + std::to_string(r.status) + ": " + r.body);
    auto body = boost::json::parse(r.body);
    return std::string(body.at("access_token").as_string());
  }
};

std::unique_ptr<Env> MakeEnv(const std::string& alg, size_t cache_entries) {
  spdlog::set_level(spdlog::level::warn);  // no "signing key ... is now active"
  auto env = std::make_unique<Env>();
  auto s = store::OpenSqlite({":memory:"});
  if (!s.ok()) Die("store: " + s.status().ToString());
  env->store = std::move(*s);
  IdentityOptions o;
  o.issuer = "http://127.0.0.1:1";
  o.master_key = crypto::Base64Encode(crypto::RandomBytes(32));
  o.signing_algorithm = alg;
  o.token_cache_entries = cache_entries;
  auto id = Identity::Open(std::move(o), *env->store);
  if (!id.ok()) Die("Identity::Open: " + id.status().ToString());
  env->id = std::move(*id);
  AgentSpec spec;
  spec.name = "bench agent";
  spec.owner = "bench";
  spec.scopes = {"llm:chat", "tools:read"};
  auto a = env->id->CreateAgent(spec);
  if (!a.ok()) Die("CreateAgent: " + a.status().ToString());
  env->agent = *a;
  auto sec = env->id->CreateClientSecret("default", env->agent.id, std::nullopt);
  if (!sec.ok()) Die("CreateClientSecret: " + sec.status().ToString());
  env->secret = *sec;
  env->basic = "Basic " + crypto::Base64Encode(sec->client_id + ":" + sec->client_secret);
  ApiKeySpec ks;
  ks.agent_id = env->agent.id;
  ks.scopes = {"llm:chat"};
  auto key = env->id->CreateApiKey(ks);
  if (!key.ok()) Die("CreateApiKey: " + key.status().ToString());
  env->api_key = key->api_key;
  return env;
}

// Shared per (algorithm, cache size); built once, thread-safely (the 2-thread
// benchmarks enter from both threads).
const Env& GetEnv(const std::string& alg, size_t cache_entries = 100000) {
  static std::mutex mu;
  static std::map<std::pair<std::string, size_t>, std::unique_ptr<Env>> envs;
  std::lock_guard lock(mu);
  auto& e = envs[{alg, cache_entries}];
  if (!e) e = MakeEnv(alg, cache_entries);
  return *e;
}

// --------------------------------------------------------- authenticate ----

// The same token every call: after the warm-up call every call is a cache
// hit (checked through stats()).
void BM_AuthenticateCachedToken(benchmark::State& state, const std::string& alg) {
  const Env& env = GetEnv(alg);
  static std::mutex mu;
  static std::map<std::string, std::string> tokens;  // one per alg, shared by threads
  std::string token;
  {
    std::lock_guard lock(mu);
    auto& t = tokens[alg];
    if (t.empty()) {
      t = env.Issue();
      if (!env.id->Authenticate(t, "").ok()) Die("warm-up Authenticate failed");
    }
    token = t;
  }
  auto before = env.id->stats();
  for (auto _ : state) {
    auto p = env.id->Authenticate(token, "");
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());  // calls/s, summed over threads
  auto after = env.id->stats();
  if (state.thread_index() == 0 && state.threads() == 1) {
    if (after.cache_misses != before.cache_misses) Die("cached benchmark missed the cache");
    if (after.auth_failures != before.auth_failures) Die("cached Authenticate failed");
  }
}

// Each thread its own token (so, usually, its own cache shard).
void BM_AuthenticateCachedTokenPerThread(benchmark::State& state, const std::string& alg) {
  const Env& env = GetEnv(alg);
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, std::string> tokens;
  std::string token;
  {
    std::lock_guard lock(mu);
    auto& t = tokens[{alg, state.thread_index()}];
    if (t.empty()) {
      t = env.Issue();
      if (!env.id->Authenticate(t, "").ok()) Die("warm-up Authenticate failed");
    }
    token = t;
  }
  for (auto _ : state) {
    auto p = env.id->Authenticate(token, "");
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// Every call a cache miss: 4096 distinct tokens, cycled through, against an
// Identity whose cache holds 256 (token_cache_entries 16 -> 16 shards of the
// 16-entry minimum; a full shard is cleared). A token comes back after 4095
// others, ~256 of them in its shard, so its entry is always gone. The
// measured cost is the real miss path: parse, signature verification, claims,
// liveness checks, and the insert into the cache. Checked: cache_misses grows
// by exactly the number of iterations.
constexpr size_t kDistinctTokens = 4096;

void BM_AuthenticateUncachedToken(benchmark::State& state, const std::string& alg) {
  const Env& env = GetEnv(alg, 16);
  static std::map<std::string, std::vector<std::string>> pools;
  static std::map<std::string, size_t> cursors;  // continues across the runs Google Benchmark makes
  auto& tokens = pools[alg];
  if (tokens.empty()) {
    for (size_t i = 0; i < kDistinctTokens; ++i) tokens.push_back(env.Issue());
  }
  auto before = env.id->stats();
  size_t& i = cursors[alg];
  for (auto _ : state) {
    auto p = env.id->Authenticate(tokens[i++ % kDistinctTokens], "");
    benchmark::DoNotOptimize(p);
  }
  auto after = env.id->stats();
  uint64_t misses = after.cache_misses - before.cache_misses;
  if (after.auth_failures != before.auth_failures) Die("uncached Authenticate failed");
  if (misses != static_cast<uint64_t>(state.iterations())) {
    Die("expected every call to miss the cache: " + std::to_string(misses) + " misses in " +
        std::to_string(state.iterations()) + " calls");
  }
  // (Not a counter: the CSV reporter wants the same counters in every row.)
  state.SetLabel(std::to_string(tokens.front().size()) + "-byte token; every call a miss");
}

void BM_AuthenticateApiKey(benchmark::State& state) {
  const Env& env = GetEnv("EdDSA");
  if (!env.id->Authenticate("", env.api_key).ok()) Die("API key does not authenticate");
  for (auto _ : state) {
    auto p = env.id->Authenticate("", env.api_key);
    benchmark::DoNotOptimize(p);
  }
}

// ------------------------------------------------------- token endpoint ----

// POST /oauth2/token, client_credentials, client_secret_basic, no scope (the
// agent's scopes): what the gateway's handler calls, without HTTP.
void BM_TokenEndpointClientCredentials(benchmark::State& state, const std::string& alg) {
  const Env& env = GetEnv(alg);
  const OAuthRequest req = env.TokenRequest();
  env.Issue();  // checks the 200
  for (auto _ : state) {
    OAuthResponse r = env.id->Token(req);
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(std::to_string(env.Issue().size()) + "-byte token");
}

// Its parts, to see where the time goes.
void BM_TokenPart_ParseForm(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ParseForm(kForm));
}

void BM_TokenPart_BasicDecode(benchmark::State& state) {
  const Env& env = GetEnv("EdDSA");
  std::string_view b64 = std::string_view(env.basic).substr(6);
  for (auto _ : state) benchmark::DoNotOptimize(crypto::Base64Decode(b64));
}

// The client secret check is one HMAC-SHA256 of "<credential id>:<secret>".
void BM_TokenPart_SecretHmac(benchmark::State& state) {
  const Env& env = GetEnv("EdDSA");
  const std::string key(32, 'k');
  const std::string msg = env.secret.credential.id + ":" + env.secret.client_secret;
  for (auto _ : state) benchmark::DoNotOptimize(crypto::HmacSha256(key, msg));
}

// Claims like the issued token's, serialized and signed.
void BM_TokenPart_SerializeAndSign(benchmark::State& state, crypto::Alg alg) {
  static std::map<crypto::Alg, crypto::Key> keys;
  auto it = keys.find(alg);
  if (it == keys.end()) {
    auto k = crypto::Key::Generate(alg);
    if (!k.ok()) Die("Key::Generate: " + k.status().ToString());
    it = keys.emplace(alg, k->WithKid("0123456789abcdef")).first;
  }
  json::object claims;
  claims["iss"] = "http://127.0.0.1:1";
  claims["aud"] = "aigis";
  claims["client_id"] = "agt_abcdefghijklmnopqrst";
  claims["tenant"] = "default";
  claims["sub"] = "agt_abcdefghijklmnopqrst";
  claims["principal_kind"] = "agent";
  claims["scope"] = "llm:chat tools:read";
  claims["iat"] = 1893452400;
  claims["nbf"] = 1893452400;
  claims["exp"] = 1893453300;
  claims["jti"] = "abcdefghijklmnopqrst";
  for (auto _ : state) {
    benchmark::DoNotOptimize(crypto::SignCompact(it->second, alg, "at+jwt", json::serialize(claims)));
  }
}

void BM_TokenPart_RandomJti(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(RandomId("", 20));
}

BENCHMARK_CAPTURE(BM_AuthenticateCachedToken, EdDSA, std::string("EdDSA"));
BENCHMARK_CAPTURE(BM_AuthenticateCachedToken, ES256, std::string("ES256"));
BENCHMARK_CAPTURE(BM_AuthenticateCachedToken, EdDSA, std::string("EdDSA"))->Threads(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_AuthenticateCachedTokenPerThread, EdDSA, std::string("EdDSA"))->Threads(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_AuthenticateUncachedToken, EdDSA, std::string("EdDSA"));
BENCHMARK_CAPTURE(BM_AuthenticateUncachedToken, ES256, std::string("ES256"));
BENCHMARK(BM_AuthenticateApiKey);
BENCHMARK_CAPTURE(BM_TokenEndpointClientCredentials, EdDSA, std::string("EdDSA"));
BENCHMARK_CAPTURE(BM_TokenEndpointClientCredentials, ES256, std::string("ES256"));
BENCHMARK_CAPTURE(BM_TokenEndpointClientCredentials, RS256, std::string("RS256"));
BENCHMARK(BM_TokenPart_ParseForm);
BENCHMARK(BM_TokenPart_BasicDecode);
BENCHMARK(BM_TokenPart_SecretHmac);
BENCHMARK_CAPTURE(BM_TokenPart_SerializeAndSign, EdDSA, crypto::Alg::kEdDSA);
BENCHMARK_CAPTURE(BM_TokenPart_SerializeAndSign, ES256, crypto::Alg::kES256);
BENCHMARK_CAPTURE(BM_TokenPart_SerializeAndSign, RS256, crypto::Alg::kRS256);
BENCHMARK(BM_TokenPart_RandomJti);

}  // namespace
}  // namespace aigis::identity

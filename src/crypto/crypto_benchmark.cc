// Micro-benchmarks for the request path: JWS verification per algorithm, the
// compact parser, and HMAC-SHA256. Signing is measured for the token issuer.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "crypto/crypto.h"

namespace aigis::crypto {
namespace {

const Key& BenchKey(Alg alg) {
  static const Key kEd = *Key::Generate(Alg::kEdDSA);
  static const Key kEs = *Key::Generate(Alg::kES256);
  static const Key kRs = *Key::Generate(Alg::kRS256);
  static const Key kHs = *Key::Generate(Alg::kHS256);
  switch (alg) {
    case Alg::kEdDSA: return kEd;
    case Alg::kES256: return kEs;
    case Alg::kRS256: return kRs;
    default: return kHs;
  }
}

// A typical access token's claims; the signing input comes to ~300 bytes.
constexpr std::string_view kClaims =
    R"({"iss":"https://idp.example.com/","sub":"user-1234567890","aud":"aigis-gateway",)"
    R"("exp":1893456000,"iat":1893452400,"scope":"llm:chat llm:embed","tenant":"acme"})";

std::string Token(Alg alg) { return *SignCompact(BenchKey(alg).WithKid("bench-key-1"), alg, "JWT", kClaims); }

void BM_Sign(benchmark::State& state, Alg alg) {
  const Key& key = BenchKey(alg);
  const std::string input = ParseCompact(Token(alg))->signing_input;
  for (auto _ : state) benchmark::DoNotOptimize(key.Sign(alg, input));
  state.SetLabel(std::to_string(input.size()) + "-byte input");
}

void BM_Verify(benchmark::State& state, Alg alg) {
  const Key& key = BenchKey(alg);
  const Jws jws = *ParseCompact(Token(alg));
  if (!key.Verify(alg, jws.signing_input, jws.signature)) std::abort();
  for (auto _ : state) benchmark::DoNotOptimize(key.Verify(alg, jws.signing_input, jws.signature));
}

void BM_ParseCompact(benchmark::State& state) {
  const std::string token = Token(Alg::kES256);
  for (auto _ : state) benchmark::DoNotOptimize(ParseCompact(token));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * token.size()));
}

void BM_ParseAndVerifyEs256(benchmark::State& state) {
  const std::string token = Token(Alg::kES256);
  const Key& key = BenchKey(Alg::kES256);
  for (auto _ : state) {
    Result<Jws> jws = ParseCompact(token);
    benchmark::DoNotOptimize(jws.ok() && VerifyJws(*jws, key));
  }
}

void BM_HmacSha256(benchmark::State& state) {
  const std::string key(32, 'k');
  const std::string data(static_cast<size_t>(state.range(0)), 'd');
  for (auto _ : state) benchmark::DoNotOptimize(HmacSha256(key, data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}

BENCHMARK_CAPTURE(BM_Sign, Ed25519, Alg::kEdDSA);
BENCHMARK_CAPTURE(BM_Sign, ES256, Alg::kES256);
BENCHMARK_CAPTURE(BM_Sign, RS256, Alg::kRS256);
BENCHMARK_CAPTURE(BM_Sign, HS256, Alg::kHS256);
BENCHMARK_CAPTURE(BM_Verify, Ed25519, Alg::kEdDSA);
BENCHMARK_CAPTURE(BM_Verify, ES256, Alg::kES256);
BENCHMARK_CAPTURE(BM_Verify, RS256, Alg::kRS256);
BENCHMARK_CAPTURE(BM_Verify, HS256, Alg::kHS256);
BENCHMARK(BM_ParseCompact);
BENCHMARK(BM_ParseAndVerifyEs256);
BENCHMARK(BM_HmacSha256)->Arg(32)->Arg(300)->Arg(4096);

}  // namespace
}  // namespace aigis::crypto

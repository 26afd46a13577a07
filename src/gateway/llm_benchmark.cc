// Per-exchange costs of the LLM adapters: request parsing/validation, usage
// extraction on stream events, error bodies.
#include <benchmark/benchmark.h>

#include "gateway/llm.h"

namespace aigis::gateway::llm {
namespace {

void BM_ParseChatRequest(benchmark::State& state) {
  std::string body = R"({"model":"gpt-4o-mini","stream":true,"messages":[)"
                     R"({"role":"system","content":"You are a helpful assistant."},)"
                     R"({"role":"user","content":"Summarise the quarterly report in three bullet points."}]})";
  for (auto _ : state) {
    Exchange ex;
    RequestInfo info;
    benchmark::DoNotOptimize(ParseRequest(body, ex, info).ok());
  }
}
BENCHMARK(BM_ParseChatRequest);

void BM_UsageFromEvent_NoUsage(benchmark::State& state) {
  std::string data = R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]})";
  for (auto _ : state) {
    Usage u;
    UsageFromEvent(Protocol::kOpenAI, "", data, u);
    benchmark::DoNotOptimize(u.reported);
  }
}
BENCHMARK(BM_UsageFromEvent_NoUsage);

void BM_UsageFromEvent_WithUsage(benchmark::State& state) {
  std::string data = R"({"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})";
  for (auto _ : state) {
    Usage u;
    UsageFromEvent(Protocol::kOpenAI, "", data, u);
    benchmark::DoNotOptimize(u.input_tokens);
  }
}
BENCHMARK(BM_UsageFromEvent_WithUsage);

void BM_ErrorBody(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ErrorBody(Protocol::kAnthropic, 502, "upstream_error", "down"));
}
BENCHMARK(BM_ErrorBody);

}  // namespace
}  // namespace aigis::gateway::llm

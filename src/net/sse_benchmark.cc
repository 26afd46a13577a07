// SSE parsing throughput: the per-byte hot path of every streamed response.
#include <benchmark/benchmark.h>

#include "net/net.h"

namespace aigis::net {
namespace {

std::string OpenAiStream(int events) {
  std::string s;
  for (int i = 0; i < events; ++i) {
    s += R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",)"
         R"("choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]})"
         "\n\n";
  }
  return s + "data: [DONE]\n\n";
}

void BM_SseParse(benchmark::State& state) {
  std::string stream = OpenAiStream(200);
  size_t piece = static_cast<size_t>(state.range(0));
  size_t events = 0;
  for (auto _ : state) {
    SseParser p;
    for (size_t i = 0; i < stream.size(); i += piece) {
      (void)p.Feed(std::string_view(stream).substr(i, piece), [&](const SseEvent& ev) {
        benchmark::DoNotOptimize(ev.raw.data());
        ++events;
      });
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
  state.counters["events"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SseParse)->Arg(64)->Arg(1024)->Arg(16384);

}  // namespace
}  // namespace aigis::net

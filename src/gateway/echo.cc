// The built-in "echo" provider: a deterministic fake LLM for `make run`,
// tests and benchmarks. It answers with the last user message in the shape of
// the API that was called, streamed or not, with plausible usage.
#include <boost/json.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>

#include "gateway/llm.h"

namespace aigis::gateway::llm {
namespace {

namespace json = boost::json;

std::string LastUserText(const Exchange& ex) {
  for (auto it = ex.messages.rbegin(); it != ex.messages.rend(); ++it) {
    if (it->role == "user" || it->role == "input") return it->text;
  }
  return ex.messages.empty() ? std::string() : ex.messages.back().text;
}

int64_t InputTokens(const Exchange& ex) {
  int64_t n = 0;
  for (const auto& m : ex.messages) n += EstimateTokens(m.text) + 3;  // +3: per-message framing
  return n;
}

// Splits text into pieces of one word plus its trailing space, as a model
// would stream tokens.
std::vector<std::string> Pieces(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t sp = text.find(' ', i);
    size_t end = sp == std::string::npos ? text.size() : sp + 1;
    out.push_back(text.substr(i, end - i));
    i = end;
  }
  return out;
}

std::string Data(const json::value& v) { return "data: " + json::serialize(v) + "\n\n"; }
std::string Named(std::string_view event, const json::value& v) {
  return fmt::format("event: {}\ndata: {}\n\n", event, json::serialize(v));
}

std::string ShortId(const Exchange& ex) {
  std::string id;
  for (char c : ex.request_id) {
    if (std::isalnum(static_cast<unsigned char>(c))) id += c;
  }
  return id.substr(0, 24);
}

EchoReply Chat(const Exchange& ex, const RequestInfo& info, int64_t created) {
  std::string text = LastUserText(ex);
  int64_t in = InputTokens(ex), out = std::max<int64_t>(1, EstimateTokens(text));
  std::string id = "chatcmpl-echo" + ShortId(ex);
  json::object usage{{"prompt_tokens", in}, {"completion_tokens", out}, {"total_tokens", in + out}};
  EchoReply r;
  if (!ex.stream) {
    r.content_type = "application/json";
    json::object msg{{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
    json::object body{{"id", id},
                      {"object", "chat.completion"},
                      {"created", created},
                      {"model", ex.upstream_model},
                      {"choices", json::array{json::object{{"index", 0}, {"message", msg}, {"logprobs", nullptr},
                                                           {"finish_reason", "stop"}}}},
                      {"usage", usage},
                      {"system_fingerprint", "aigis-echo"}};
    r.chunks.push_back(json::serialize(body));
    return r;
  }
  r.content_type = "text/event-stream";
  auto chunk = [&](json::object delta, json::value finish) {
    return Data(json::object{{"id", id},
                             {"object", "chat.completion.chunk"},
                             {"created", created},
                             {"model", ex.upstream_model},
                             {"system_fingerprint", "aigis-echo"},
                             {"choices", json::array{json::object{{"index", 0}, {"delta", std::move(delta)},
                                                                  {"logprobs", nullptr}, {"finish_reason", finish}}}}});
  };
  r.chunks.push_back(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
  for (auto& p : Pieces(text)) r.chunks.push_back(chunk({{"content", p}}, nullptr));
  r.chunks.push_back(chunk({}, "stop"));
  if (info.include_usage) {
    r.chunks.push_back(Data(json::object{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created},
                                         {"model", ex.upstream_model}, {"choices", json::array{}}, {"usage", usage}}));
  }
  r.chunks.push_back("data: [DONE]\n\n");
  return r;
}

EchoReply Responses(const Exchange& ex, int64_t created) {
  std::string text = LastUserText(ex);
  int64_t in = InputTokens(ex), out = std::max<int64_t>(1, EstimateTokens(text));
  std::string id = "resp_echo" + ShortId(ex), msg_id = "msg_echo" + ShortId(ex);
  json::object usage{{"input_tokens", in},
                     {"input_tokens_details", {{"cached_tokens", 0}}},
                     {"output_tokens", out},
                     {"output_tokens_details", {{"reasoning_tokens", 0}}},
                     {"total_tokens", in + out}};
  auto part = [&](std::string t) {
    return json::object{{"type", "output_text"}, {"text", std::move(t)}, {"annotations", json::array{}}};
  };
  auto item = [&](std::string_view status, json::array content) {
    return json::object{{"type", "message"}, {"id", msg_id}, {"status", status}, {"role", "assistant"},
                        {"content", std::move(content)}};
  };
  auto response = [&](std::string_view status, json::array output, json::value u) {
    return json::object{{"id", id}, {"object", "response"}, {"created_at", created}, {"status", status},
                        {"model", ex.upstream_model}, {"output", std::move(output)}, {"usage", std::move(u)},
                        {"error", nullptr}, {"incomplete_details", nullptr}};
  };
  EchoReply r;
  if (!ex.stream) {
    r.content_type = "application/json";
    r.chunks.push_back(json::serialize(response("completed", {item("completed", {part(text)})}, usage)));
    return r;
  }
  r.content_type = "text/event-stream";
  int seq = 0;
  auto ev = [&](std::string_view type, json::object o) {
    o["type"] = type;
    o["sequence_number"] = seq++;
    r.chunks.push_back(Named(type, o));
  };
  ev("response.created", {{"response", response("in_progress", {}, nullptr)}});
  ev("response.output_item.added", {{"output_index", 0}, {"item", item("in_progress", {})}});
  ev("response.content_part.added", {{"item_id", msg_id}, {"output_index", 0}, {"content_index", 0}, {"part", part("")}});
  for (auto& p : Pieces(text)) {
    ev("response.output_text.delta", {{"item_id", msg_id}, {"output_index", 0}, {"content_index", 0}, {"delta", p}});
  }
  ev("response.output_text.done", {{"item_id", msg_id}, {"output_index", 0}, {"content_index", 0}, {"text", text}});
  ev("response.content_part.done", {{"item_id", msg_id}, {"output_index", 0}, {"content_index", 0}, {"part", part(text)}});
  ev("response.output_item.done", {{"output_index", 0}, {"item", item("completed", {part(text)})}});
  ev("response.completed", {{"response", response("completed", {item("completed", {part(text)})}, usage)}});
  return r;
}

// Deterministic unit vector from SHA-256 of the input.
std::vector<float> Embed(const std::string& text, int dims) {
  std::vector<float> v(static_cast<size_t>(dims));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  double norm = 0;
  for (int i = 0; i < dims; ++i) {
    if (i % SHA256_DIGEST_LENGTH == 0) {
      std::string seed = text + "#" + std::to_string(i / SHA256_DIGEST_LENGTH);
      SHA256(reinterpret_cast<const unsigned char*>(seed.data()), seed.size(), digest);
    }
    float x = static_cast<float>(digest[i % SHA256_DIGEST_LENGTH]) / 127.5f - 1.0f;
    v[static_cast<size_t>(i)] = x;
    norm += static_cast<double>(x) * x;
  }
  norm = norm > 0 ? std::sqrt(norm) : 1;
  for (auto& x : v) x = static_cast<float>(x / norm);
  return v;
}

EchoReply Embeddings(const Exchange& ex, const RequestInfo& info) {
  int dims = info.dimensions > 0 ? info.dimensions : 16;
  json::array data;
  int64_t tokens = 0;
  for (size_t i = 0; i < info.inputs.size(); ++i) {
    auto vec = Embed(info.inputs[i], dims);
    tokens += EstimateTokens(info.inputs[i]);
    json::value emb;
    if (info.encoding_format == "base64") {
      // Little-endian float32 array, base64 encoded (what the OpenAI SDKs request by default).
      std::string raw(vec.size() * sizeof(float), '\0');
      std::memcpy(raw.data(), vec.data(), raw.size());
      std::string b64(4 * ((raw.size() + 2) / 3) + 1, '\0');
      int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                              reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
      b64.resize(static_cast<size_t>(n));
      emb = json::string(b64);
    } else {
      json::array arr;
      for (float x : vec) arr.push_back(static_cast<double>(x));
      emb = std::move(arr);
    }
    data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(emb)}});
  }
  EchoReply r;
  r.content_type = "application/json";
  r.chunks.push_back(json::serialize(json::object{{"object", "list"},
                                                  {"data", std::move(data)},
                                                  {"model", ex.upstream_model},
                                                  {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}}));
  return r;
}

EchoReply Messages(const Exchange& ex) {
  std::string text = LastUserText(ex);
  int64_t in = InputTokens(ex), out = std::max<int64_t>(1, EstimateTokens(text));
  std::string id = "msg_echo" + ShortId(ex);
  EchoReply r;
  if (!ex.stream) {
    r.content_type = "application/json";
    r.chunks.push_back(json::serialize(json::object{
        {"id", id}, {"type", "message"}, {"role", "assistant"}, {"model", ex.upstream_model},
        {"content", json::array{json::object{{"type", "text"}, {"text", text}}}},
        {"stop_reason", "end_turn"}, {"stop_sequence", nullptr},
        {"usage", {{"input_tokens", in}, {"output_tokens", out}}}}));
    return r;
  }
  r.content_type = "text/event-stream";
  r.chunks.push_back(Named("message_start", json::object{
      {"type", "message_start"},
      {"message", {{"id", id}, {"type", "message"}, {"role", "assistant"}, {"model", ex.upstream_model},
                   {"content", json::array{}}, {"stop_reason", nullptr}, {"stop_sequence", nullptr},
                   {"usage", {{"input_tokens", in}, {"output_tokens", 1}}}}}}));
  r.chunks.push_back(Named("content_block_start", json::object{{"type", "content_block_start"}, {"index", 0},
                                                               {"content_block", {{"type", "text"}, {"text", ""}}}}));
  r.chunks.push_back(Named("ping", json::object{{"type", "ping"}}));
  for (auto& p : Pieces(text)) {
    r.chunks.push_back(Named("content_block_delta", json::object{{"type", "content_block_delta"}, {"index", 0},
                                                                 {"delta", {{"type", "text_delta"}, {"text", p}}}}));
  }
  r.chunks.push_back(Named("content_block_stop", json::object{{"type", "content_block_stop"}, {"index", 0}}));
  r.chunks.push_back(Named("message_delta", json::object{{"type", "message_delta"},
                                                         {"delta", {{"stop_reason", "end_turn"}, {"stop_sequence", nullptr}}},
                                                         {"usage", {{"output_tokens", out}}}}));
  r.chunks.push_back(Named("message_stop", json::object{{"type", "message_stop"}}));
  return r;
}

}  // namespace

EchoReply Echo(const Exchange& ex, const RequestInfo& info, WallTime now) {
  int64_t created = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  switch (ex.endpoint) {
    case Endpoint::kChatCompletions: return Chat(ex, info, created);
    case Endpoint::kResponses: return Responses(ex, created);
    case Endpoint::kEmbeddings: return Embeddings(ex, info);
    case Endpoint::kMessages: return Messages(ex);
    case Endpoint::kModels: break;
  }
  EchoReply r;
  r.status = 404;
  r.content_type = "application/json";
  r.chunks.push_back(ErrorBody(ex.protocol, 404, "not_found", "echo does not serve this endpoint"));
  return r;
}

}  // namespace aigis::gateway::llm

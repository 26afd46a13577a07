#include "gateway/llm.h"

#include <boost/json.hpp>
#include <fmt/format.h>

namespace aigis::gateway::llm {

namespace json = boost::json;

std::optional<EndpointMatch> Classify(std::string_view method, std::string_view path) {
  struct Entry {
    std::string_view path;
    std::string_view method;
    Protocol protocol;
    Endpoint endpoint;
  };
  static constexpr Entry kEntries[] = {
      {"/v1/chat/completions", "POST", Protocol::kOpenAI, Endpoint::kChatCompletions},
      {"/v1/responses", "POST", Protocol::kOpenAI, Endpoint::kResponses},
      {"/v1/embeddings", "POST", Protocol::kOpenAI, Endpoint::kEmbeddings},
      {"/v1/models", "GET", Protocol::kOpenAI, Endpoint::kModels},
      {"/v1/messages", "POST", Protocol::kAnthropic, Endpoint::kMessages},
  };
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  for (const auto& e : kEntries) {
    if (e.path == path) return EndpointMatch{e.protocol, e.endpoint, e.method == method, e.path};
  }
  return std::nullopt;
}

Protocol GuessProtocol(std::string_view path) {
  return StartsWith(path, "/v1/messages") ? Protocol::kAnthropic : Protocol::kOpenAI;
}

namespace {

std::string_view OpenAiType(int status) {
  switch (status) {
    case 400: case 404: case 405: case 413: case 422: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "insufficient_quota";
    case 403: return "permission_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string_view AnthropicType(int status) {
  switch (status) {
    case 400: case 405: case 422: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    case 504: return "timeout_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

json::object ErrorObject(Protocol p, int status, std::string_view code, std::string_view message) {
  if (p == Protocol::kMcp) {
    // A JSON-RPC error for a request aigis could not read an id from
    // (MCP errors with an id are written by gateway/mcp.cc).
    return {{"jsonrpc", "2.0"},
            {"id", nullptr},
            {"error", {{"code", status == 400 ? -32600 : -32000}, {"message", message}, {"data", {{"code", code}}}}}};
  }
  if (p == Protocol::kAnthropic) {
    return {{"type", "error"}, {"error", {{"type", AnthropicType(status)}, {"message", message}}}};
  }
  return {{"error", {{"message", message}, {"type", OpenAiType(status)}, {"param", nullptr}, {"code", code}}}};
}

std::string TextOf(const json::value& content) {
  // A string, or a list of parts: {"type":"text"|"input_text"|"output_text","text":...}.
  if (content.is_string()) return std::string(content.get_string());
  std::string out;
  if (const auto* arr = content.if_array()) {
    for (const auto& part : *arr) {
      if (const auto* obj = part.if_object()) {
        if (const auto* t = obj->if_contains("text"); t && t->is_string()) {
          if (!out.empty()) out += "\n";
          out += t->get_string();
        }
      } else if (part.is_string()) {
        if (!out.empty()) out += "\n";
        out += part.get_string();
      }
    }
  }
  return out;
}

Status Invalid(std::string msg) { return InvalidArgument(std::move(msg)); }

}  // namespace

std::string ErrorBody(Protocol p, int status, std::string_view code, std::string_view message) {
  return json::serialize(ErrorObject(p, status, code, message));
}

std::string ErrorEvent(Protocol p, int status, std::string_view code, std::string_view message) {
  std::string body = ErrorBody(p, status, code, message);
  if (p == Protocol::kAnthropic) return fmt::format("event: error\ndata: {}\n\n", body);
  return fmt::format("data: {}\n\n", body);
}

Status ParseRequest(std::string_view body, const std::map<std::string, std::string>& aliases, Exchange& ex,
                    RequestInfo& info, std::string* forward) {
  if (body.empty()) return Invalid("request body is empty: expected a JSON object");
  json::parse_options opts;
  opts.max_depth = 64;
  std::error_code ec;
  // One arena per parse: the tree is dropped as a whole when we return.
  unsigned char arena[4096];
  json::monotonic_resource mr(arena, sizeof arena);
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec, &mr, opts);
  if (ec) return Invalid(fmt::format("request body is not valid JSON: {}", ec.message()));
  auto* obj = v.if_object();
  if (!obj) return Invalid("request body must be a JSON object");
  auto* model = obj->if_contains("model");
  if (!model || !model->is_string() || model->get_string().empty()) {
    return Invalid("'model' is required and must be a non-empty string");
  }
  if (model->get_string().size() > 256) return Invalid("'model' is longer than 256 characters");
  ex.model = std::string(model->get_string());
  auto alias = aliases.find(ex.model);
  ex.upstream_model = alias == aliases.end() ? ex.model : alias->second;
  if (auto* s = obj->if_contains("stream")) {
    if (!s->is_bool() && !s->is_null()) return Invalid("'stream' must be a boolean");
    ex.stream = s->is_bool() && s->get_bool();
  }
  switch (ex.endpoint) {
    case Endpoint::kChatCompletions:
    case Endpoint::kMessages: {
      auto* msgs = obj->if_contains("messages");
      if (!msgs || !msgs->is_array()) return Invalid("'messages' is required and must be an array");
      if (ex.endpoint == Endpoint::kMessages) {
        if (auto* sys = obj->if_contains("system")) ex.messages.push_back({"system", TextOf(*sys), "/system"});
      }
      size_t index = 0;
      for (const auto& m : msgs->get_array()) {
        std::string pointer = fmt::format("/messages/{}/content", index++);
        const auto* mo = m.if_object();
        if (!mo) return Invalid("each entry of 'messages' must be an object");
        const auto* role = mo->if_contains("role");
        if (!role || !role->is_string()) return Invalid("each message needs a string 'role'");
        const auto* content = mo->if_contains("content");
        ex.messages.push_back({std::string(role->get_string()), content ? TextOf(*content) : std::string(), pointer});
        // Anthropic tool results ride in user messages: each is a message
        // of its own, read as a tool's output.
        if (const auto* parts = content ? content->if_array() : nullptr) {
          for (size_t j = 0; j < parts->size(); ++j) {
            const auto* po = (*parts)[j].if_object();
            const auto* type = po ? po->if_contains("type") : nullptr;
            if (!type || !type->is_string() || type->get_string() != "tool_result") continue;
            const auto* c = po->if_contains("content");
            ex.messages.push_back({"tool", c ? TextOf(*c) : std::string(), fmt::format("{}/{}/content", pointer, j)});
          }
        }
      }
      if (auto* so = obj->if_contains("stream_options"); so && so->is_object()) {
        if (auto* iu = so->get_object().if_contains("include_usage"); iu && iu->is_bool()) {
          info.include_usage = iu->get_bool();
        }
      }
      break;
    }
    case Endpoint::kResponses: {
      auto* input = obj->if_contains("input");
      if (!input) return Invalid("'input' is required");
      if (auto* inst = obj->if_contains("instructions"); inst && inst->is_string()) {
        ex.messages.push_back({"system", std::string(inst->get_string()), "/instructions"});
      }
      if (input->is_string()) {
        ex.messages.push_back({"user", std::string(input->get_string()), "/input"});
      } else if (input->is_array()) {
        size_t index = 0;
        for (const auto& item : input->get_array()) {
          if (const auto* io = item.if_object()) {
            const auto* role = io->if_contains("role");
            const auto* content = io->if_contains("content");
            const auto* output = io->if_contains("output");  // a function call's result
            if (!content && output && output->is_string()) {
              ex.messages.push_back({"tool", std::string(output->get_string()), fmt::format("/input/{}/output", index)});
            } else {
              ex.messages.push_back({role && role->is_string() ? std::string(role->get_string()) : "input",
                                     content ? TextOf(*content) : std::string(), fmt::format("/input/{}/content", index)});
            }
          }
          ++index;
        }
      } else {
        return Invalid("'input' must be a string or an array");
      }
      break;
    }
    case Endpoint::kEmbeddings: {
      auto* input = obj->if_contains("input");
      if (!input) return Invalid("'input' is required");
      if (input->is_string()) {
        info.inputs.emplace_back(input->get_string());
      } else if (input->is_array()) {
        for (const auto& i : input->get_array()) {
          if (i.is_string()) info.inputs.emplace_back(i.get_string());
          else info.inputs.push_back(json::serialize(i));  // token arrays
        }
        if (info.inputs.empty()) return Invalid("'input' must not be empty");
      } else {
        return Invalid("'input' must be a string or an array");
      }
      for (size_t i = 0; i < info.inputs.size(); ++i) {
        ex.messages.push_back({"input", info.inputs[i], input->is_string() ? "/input" : fmt::format("/input/{}", i)});
      }
      if (auto* f = obj->if_contains("encoding_format"); f && f->is_string()) {
        info.encoding_format = std::string(f->get_string());
        if (info.encoding_format != "float" && info.encoding_format != "base64") {
          return Invalid("'encoding_format' must be 'float' or 'base64'");
        }
      }
      if (auto* d = obj->if_contains("dimensions"); d && d->is_int64()) {
        if (d->get_int64() < 1 || d->get_int64() > 4096) return Invalid("'dimensions' must be between 1 and 4096");
        info.dimensions = static_cast<int>(d->get_int64());
      }
      break;
    }
    case Endpoint::kModels:
    case Endpoint::kMcp:  // not an LLM request (mcp.cc screens tool traffic)
      break;
  }
  if (forward) {
    if (ex.upstream_model != ex.model) (*obj)["model"] = ex.upstream_model;
    *forward = json::serialize(v);
  }
  return Status::Ok();
}

namespace {

void ReadUsage(const json::object& u, Usage& usage) {
  auto get = [&](std::string_view k, int64_t& out) {
    if (const auto* v = u.if_contains(k)) {
      if (v->is_int64()) { out = v->get_int64(); usage.reported = true; }
      else if (v->is_uint64()) { out = static_cast<int64_t>(v->get_uint64()); usage.reported = true; }
    }
  };
  get("prompt_tokens", usage.input_tokens);
  get("completion_tokens", usage.output_tokens);
  get("input_tokens", usage.input_tokens);
  get("output_tokens", usage.output_tokens);
}

const json::object* UsageIn(const json::value& v) {
  const auto* obj = v.if_object();
  if (!obj) return nullptr;
  if (const auto* u = obj->if_contains("usage"); u && u->is_object()) return &u->get_object();
  return nullptr;
}

}  // namespace

void UsageFromBody(std::string_view body, Usage& usage) {
  if (body.find("\"usage\"") == std::string_view::npos) return;
  std::error_code ec;
  unsigned char arena[4096];
  json::monotonic_resource mr(arena, sizeof arena);
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec, &mr);
  if (ec) return;
  if (const auto* u = UsageIn(v)) ReadUsage(*u, usage);
}

void UsageFromEvent(Protocol p, std::string_view event, std::string_view data, Usage& usage) {
  // Only events that carry usage are parsed: most stream events do not.
  if (data.find("\"usage\"") == std::string_view::npos) return;
  std::error_code ec;
  unsigned char arena[4096];
  json::monotonic_resource mr(arena, sizeof arena);
  json::value v = json::parse(json::string_view(data.data(), data.size()), ec, &mr);
  if (ec || !v.is_object()) return;
  const auto& obj = v.get_object();
  if (p == Protocol::kAnthropic) {
    // message_start carries {"message":{"usage":...}}; message_delta a
    // cumulative {"usage":{"output_tokens":N}}.
    if (const auto* m = obj.if_contains("message")) {
      if (const auto* u = UsageIn(*m)) ReadUsage(*u, usage);
    }
    if (const auto* u = UsageIn(v)) ReadUsage(*u, usage);
    return;
  }
  // OpenAI chat: a final chunk with "usage"; Responses: response.completed
  // carries {"response":{"usage":...}}.
  if (const auto* u = UsageIn(v)) ReadUsage(*u, usage);
  if (const auto* r = obj.if_contains("response")) {
    if (const auto* u = UsageIn(*r)) ReadUsage(*u, usage);
  }
}

namespace {

// Calls fn on a string value in place; true if it changed.
bool Visit(json::value& v, std::string_view role, const TextRewriter& fn) {
  if (!v.is_string()) return false;
  std::string text(v.get_string());
  if (!fn(text, role)) return false;
  v = text;
  return true;
}

// A content value: a string, or a list of parts whose text is in "text"
// (text / input_text / output_text parts) or, for Anthropic tool results,
// in a nested "content" (read as the tool's).
bool VisitContent(json::value& content, std::string_view role, const TextRewriter& fn) {
  if (content.is_string()) return Visit(content, role, fn);
  bool changed = false;
  if (auto* arr = content.if_array()) {
    for (auto& part : *arr) {
      if (part.is_string()) {
        changed |= Visit(part, role, fn);
        continue;
      }
      auto* po = part.if_object();
      if (!po) continue;
      if (auto* t = po->if_contains("text")) changed |= Visit(*t, role, fn);
      const auto* type = po->if_contains("type");
      if (type && type->is_string() && type->get_string() == "tool_result") {
        if (auto* c = po->if_contains("content")) changed |= VisitContent(*c, "tool", fn);
      }
    }
  }
  return changed;
}

// The content of each chat choice's `member` ("message" in a body, "delta"
// in a stream event).
bool VisitChoices(json::object& obj, std::string_view member, const TextRewriter& fn) {
  bool changed = false;
  if (auto* choices = obj.if_contains("choices"); choices && choices->is_array()) {
    for (auto& ch : choices->get_array()) {
      auto* co = ch.if_object();
      auto* m = co ? co->if_contains(member) : nullptr;
      if (m && m->is_object()) {
        if (auto* c = m->get_object().if_contains("content")) changed |= VisitContent(*c, "assistant", fn);
      }
    }
  }
  return changed;
}

std::string RoleOf(const json::object& o, std::string_view fallback) {
  const auto* role = o.if_contains("role");
  return role && role->is_string() ? std::string(role->get_string()) : std::string(fallback);
}

std::optional<json::value> ParseDoc(std::string_view text) {
  std::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec, {}, opts);
  if (ec) return std::nullopt;
  return v;
}

}  // namespace

std::optional<bool> RewriteRequestText(Endpoint e, std::string* body, const TextRewriter& fn) {
  auto doc = ParseDoc(*body);
  if (!doc || !doc->is_object()) return std::nullopt;
  auto& obj = doc->get_object();
  bool changed = false;
  switch (e) {
    case Endpoint::kChatCompletions:
    case Endpoint::kMessages:
      if (auto* sys = obj.if_contains("system")) changed |= VisitContent(*sys, "system", fn);
      if (auto* msgs = obj.if_contains("messages"); msgs && msgs->is_array()) {
        for (auto& m : msgs->get_array()) {
          auto* mo = m.if_object();
          if (!mo) continue;
          std::string role = RoleOf(*mo, "user");
          if (auto* c = mo->if_contains("content")) changed |= VisitContent(*c, role, fn);
        }
      }
      break;
    case Endpoint::kResponses:
      if (auto* inst = obj.if_contains("instructions")) changed |= Visit(*inst, "system", fn);
      if (auto* input = obj.if_contains("input")) {
        if (input->is_string()) {
          changed |= Visit(*input, "user", fn);
        } else if (auto* arr = input->if_array()) {
          for (auto& item : *arr) {
            auto* io = item.if_object();
            if (!io) continue;
            std::string role = RoleOf(*io, "input");
            if (auto* c = io->if_contains("content")) changed |= VisitContent(*c, role, fn);
            // A function call's result, fed back to the model.
            if (auto* out = io->if_contains("output")) changed |= Visit(*out, "tool", fn);
          }
        }
      }
      break;
    case Endpoint::kEmbeddings:
      if (auto* input = obj.if_contains("input")) {
        if (input->is_string()) {
          changed |= Visit(*input, "input", fn);
        } else if (auto* arr = input->if_array()) {
          for (auto& i : *arr) changed |= Visit(i, "input", fn);
        }
      }
      break;
    case Endpoint::kModels:
    case Endpoint::kMcp:  // not an LLM request (mcp.cc screens tool traffic)
      break;
  }
  if (changed) *body = json::serialize(*doc);
  return changed;
}

std::optional<bool> RewriteResponseText(Protocol p, Endpoint e, std::string* body, const TextRewriter& fn) {
  auto doc = ParseDoc(*body);
  if (!doc || !doc->is_object()) return std::nullopt;
  auto& obj = doc->get_object();
  bool changed = false;
  if (p == Protocol::kAnthropic) {
    // {"content":[{"type":"text","text":...}, {"type":"tool_use",...}]}
    if (auto* c = obj.if_contains("content")) changed |= VisitContent(*c, "assistant", fn);
  } else if (e == Endpoint::kResponses) {
    // {"output":[{"type":"message","content":[{"type":"output_text","text":...}]}]}
    if (auto* out = obj.if_contains("output"); out && out->is_array()) {
      for (auto& item : out->get_array()) {
        if (auto* io = item.if_object()) {
          if (auto* c = io->if_contains("content")) changed |= VisitContent(*c, "assistant", fn);
        }
      }
    }
  } else if (e == Endpoint::kChatCompletions) {
    changed |= VisitChoices(obj, "message", fn);  // {"choices":[{"message":{"content":...}}]}
  }
  if (changed) *body = json::serialize(*doc);
  return changed;
}

std::optional<bool> RewriteEventText(Protocol p, Endpoint e, std::string_view event, std::string* data,
                                     const TextRewriter& fn) {
  if (*data == "[DONE]") return false;
  auto doc = ParseDoc(*data);
  if (!doc || !doc->is_object()) return std::nullopt;
  auto& obj = doc->get_object();
  bool changed = false;
  if (p == Protocol::kAnthropic) {
    // content_block_delta {"delta":{"type":"text_delta","text":...}}
    if (auto* d = obj.if_contains("delta"); d && d->is_object()) {
      if (auto* t = d->get_object().if_contains("text")) changed |= Visit(*t, "assistant", fn);
    }
  } else if (e == Endpoint::kResponses) {
    // response.output_text.delta {"delta": "..."}
    const auto* type = obj.if_contains("type");
    bool text_delta = (type && type->is_string() && type->get_string() == "response.output_text.delta") ||
                      event == "response.output_text.delta";
    if (auto* d = obj.if_contains("delta"); d && text_delta) changed |= Visit(*d, "assistant", fn);
  } else {
    changed |= VisitChoices(obj, "delta", fn);  // {"choices":[{"delta":{"content":...}}]}
  }
  if (changed) *data = json::serialize(*doc);
  return changed;
}

bool IsStreamEnd(Protocol p, std::string_view event, std::string_view data) {
  if (data == "[DONE]") return true;
  if (p == Protocol::kAnthropic) return event == "message_stop" || event == "content_block_stop";
  if (data.find("\"finish_reason\":\"") != std::string_view::npos) return true;  // a chat choice ended
  return event == "response.output_text.done" || event == "response.completed";
}

int64_t EstimateTokens(std::string_view text) {
  return text.empty() ? 0 : static_cast<int64_t>((text.size() + 3) / 4);
}

}  // namespace aigis::gateway::llm

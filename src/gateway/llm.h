// Internal to gateway: the LLM protocol adapters (OpenAI, Anthropic) and the
// built-in echo provider. Pure functions over bytes; no I/O, no Asio.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/gateway.h"

namespace aigis::gateway::llm {

struct EndpointMatch {
  Protocol protocol;
  Endpoint endpoint;
  bool method_allowed;
  std::string_view path;  // canonical ("/v1/chat/completions", no trailing '/')
};
// Maps METHOD + path to an endpoint; nullopt for paths aigis does not serve.
std::optional<EndpointMatch> Classify(std::string_view method, std::string_view path);
// The protocol whose error shape fits a path we could not classify.
Protocol GuessProtocol(std::string_view path);

// The protocol's own error body for an HTTP status.
std::string ErrorBody(Protocol p, int status, std::string_view code, std::string_view message);
// The same error as one SSE event, for failures after a stream started.
std::string ErrorEvent(Protocol p, int status, std::string_view code, std::string_view message);

// What the gateway needs from a request body beyond the Exchange fields.
struct RequestInfo {
  bool include_usage = false;       // OpenAI stream_options.include_usage
  std::string encoding_format;      // embeddings: "float" | "base64"
  int dimensions = 0;               // embeddings
  std::vector<std::string> inputs;  // embeddings inputs
};

// Parses and validates a JSON request body, filling ex.model,
// ex.upstream_model (after `aliases`), ex.stream and ex.messages. Errors are
// kInvalidArgument with a message for the caller.
// `forward`, when given, receives the body to send upstream: the parsed
// document re-serialized, with "model" set to ex.upstream_model. The upstream
// thus reads exactly what aigis inspected; raw bytes could mean something
// else to another parser (with duplicate keys, parsers disagree on which wins).
Status ParseRequest(std::string_view body, const std::map<std::string, std::string>& aliases, Exchange& ex,
                    RequestInfo& info, std::string* forward);
inline Status ParseRequest(std::string_view body, Exchange& ex, RequestInfo& info) {
  return ParseRequest(body, {}, ex, info, nullptr);
}

// The text a guard reads, and may rewrite, in a body: every string field
// that carries content: message contents and their text parts, system,
// instructions, tool results and inputs in requests; the output text in
// responses; the text delta of a stream event. `fn` gets each text with
// the role it came from (system, user, assistant, tool, input) and returns
// true when it rewrote it; then the document is re-serialized into *body.
// Returns whether anything changed, nullopt when the body is not a JSON
// object (the caller decides: a guard treats that as unreadable content).
using TextRewriter = std::function<bool(std::string& text, std::string_view role)>;
std::optional<bool> RewriteRequestText(Endpoint e, std::string* body, const TextRewriter& fn);
std::optional<bool> RewriteResponseText(Protocol p, Endpoint e, std::string* body, const TextRewriter& fn);
std::optional<bool> RewriteEventText(Protocol p, Endpoint e, std::string_view event, std::string* data,
                                     const TextRewriter& fn);
// The event ends a text block: [DONE], a chat choice's finish_reason, an
// Anthropic content block or message stop, a Responses text done.
bool IsStreamEnd(Protocol p, std::string_view event, std::string_view data);

// Token usage from a complete JSON response body / one SSE event. Fields the
// payload does not carry are left as they are.
void UsageFromBody(std::string_view body, Usage& usage);
void UsageFromEvent(Protocol p, std::string_view event, std::string_view data, Usage& usage);

// Response of the built-in deterministic echo provider: it answers with the
// last user message, streamed (one SSE event per chunk) or not.
struct EchoReply {
  int status = 200;
  std::string content_type;
  std::vector<std::string> chunks;
};
EchoReply Echo(const Exchange& ex, const RequestInfo& info, WallTime now);

// Rough token count used by echo ("plausible" usage): ~4 bytes per token.
int64_t EstimateTokens(std::string_view text);

}  // namespace aigis::gateway::llm

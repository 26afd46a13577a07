#include "gateway/llm.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace aigis::gateway::llm {
namespace {

namespace json = boost::json;

TEST(Classify, KnownEndpoints) {
  auto m = Classify("POST", "/v1/chat/completions");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->endpoint, Endpoint::kChatCompletions);
  EXPECT_TRUE(m->method_allowed);
  auto a = Classify("POST", "/v1/messages");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->protocol, Protocol::kAnthropic);
  EXPECT_FALSE(Classify("GET", "/v1/chat/completions")->method_allowed);
  EXPECT_TRUE(Classify("GET", "/v1/models")->method_allowed);
  EXPECT_FALSE(Classify("POST", "/v2/chat"));
  EXPECT_EQ(GuessProtocol("/v1/messages/batches"), Protocol::kAnthropic);
}

TEST(Errors, NativeShapes) {
  auto o = json::parse(ErrorBody(Protocol::kOpenAI, 413, "request_too_large", "too big")).as_object();
  EXPECT_EQ(o.at("error").at("message").as_string(), "too big");
  EXPECT_EQ(o.at("error").at("type").as_string(), "invalid_request_error");
  EXPECT_EQ(o.at("error").at("code").as_string(), "request_too_large");
  auto a = json::parse(ErrorBody(Protocol::kAnthropic, 502, "upstream_error", "down")).as_object();
  EXPECT_EQ(a.at("type").as_string(), "error");
  EXPECT_EQ(a.at("error").at("type").as_string(), "api_error");
  EXPECT_EQ(a.at("error").at("message").as_string(), "down");
  EXPECT_EQ(ErrorEvent(Protocol::kAnthropic, 429, "x", "slow").rfind("event: error\ndata: {", 0), 0u);
  EXPECT_EQ(ErrorEvent(Protocol::kOpenAI, 429, "x", "slow").rfind("data: {\"error\"", 0), 0u);
}

Exchange ChatExchange() {
  Exchange ex;
  ex.endpoint = Endpoint::kChatCompletions;
  ex.request_id = "req-1";
  return ex;
}

TEST(ParseRequest, ChatView) {
  Exchange ex = ChatExchange();
  RequestInfo info;
  ASSERT_TRUE(ParseRequest(R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
      "messages":[{"role":"system","content":"be brief"},
                  {"role":"user","content":[{"type":"text","text":"hello"},{"type":"image_url","image_url":{}}]}]})",
                           ex, info).ok());
  EXPECT_EQ(ex.model, "gpt-4o");
  EXPECT_TRUE(ex.stream);
  EXPECT_TRUE(info.include_usage);
  ASSERT_EQ(ex.messages.size(), 2u);
  EXPECT_EQ(ex.messages[1].role, "user");
  EXPECT_EQ(ex.messages[1].text, "hello");
}

TEST(ParseRequest, RejectsWithAUsefulMessage) {
  struct Case {
    const char* body;
    const char* message;
  } cases[] = {
      {"", "empty"},
      {"{", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"messages":[]})", "'model' is required"},
      {R"({"model":5,"messages":[]})", "'model' is required"},
      {R"({"model":"m","stream":"yes","messages":[]})", "'stream' must be a boolean"},
      {R"({"model":"m"})", "'messages' is required"},
      {R"({"model":"m","messages":[1]})", "must be an object"},
      {R"({"model":"m","messages":[{"content":"x"}]})", "string 'role'"},
      {"{\"model\":\"\xff\",\"messages\":[]}", "not valid JSON"},
  };
  for (const auto& c : cases) {
    Exchange ex = ChatExchange();
    RequestInfo info;
    Status st = ParseRequest(c.body, ex, info);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << c.body;
    EXPECT_NE(st.message().find(c.message), std::string::npos) << c.body << " -> " << st.message();
  }
  Exchange ex = ChatExchange();
  RequestInfo info;
  std::string deep = "{\"model\":\"m\",\"messages\":[],\"x\":" + std::string(10000, '[') + std::string(10000, ']') + "}";
  EXPECT_FALSE(ParseRequest(deep, ex, info).ok());
}

TEST(ParseRequest, ResponsesAndEmbeddingsAndMessages) {
  Exchange r;
  r.endpoint = Endpoint::kResponses;
  RequestInfo ri;
  ASSERT_TRUE(ParseRequest(R"({"model":"m","instructions":"sys","input":"what?"})", r, ri).ok());
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].text, "what?");

  Exchange e;
  e.endpoint = Endpoint::kEmbeddings;
  RequestInfo ei;
  ASSERT_TRUE(ParseRequest(R"({"model":"m","input":["a","b"],"encoding_format":"base64","dimensions":8})", e, ei).ok());
  EXPECT_EQ(ei.inputs.size(), 2u);
  EXPECT_EQ(ei.dimensions, 8);
  EXPECT_FALSE(ParseRequest(R"({"model":"m","input":"a","encoding_format":"hex"})", e, ei).ok());

  Exchange m;
  m.endpoint = Endpoint::kMessages;
  RequestInfo mi;
  ASSERT_TRUE(ParseRequest(R"({"model":"claude","max_tokens":10,"system":"sys",
      "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})", m, mi).ok());
  ASSERT_EQ(m.messages.size(), 2u);
  EXPECT_EQ(m.messages[0].role, "system");
  EXPECT_EQ(m.messages[1].text, "hi");
}

TEST(ParseRequest, ForwardsTheDocumentItInspected) {
  Exchange ex = ChatExchange();
  RequestInfo info;
  std::string forward;
  std::map<std::string, std::string> aliases{{"fast", "gpt-4o-mini"}};
  // Duplicate keys: aigis reads the last one; the upstream must see the same.
  ASSERT_TRUE(ParseRequest(R"({"model":"fast","messages":[{"role":"user","content":"benign","content":"evil"}],"model":"fast"})",
                           aliases, ex, info, &forward).ok());
  EXPECT_EQ(ex.model, "fast");
  EXPECT_EQ(ex.upstream_model, "gpt-4o-mini");
  EXPECT_EQ(ex.messages[0].text, "evil");
  EXPECT_EQ(forward, R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"evil"}]})");
}

TEST(Usage, FromBodiesOfBothApis) {
  Usage u;
  UsageFromBody(R"({"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}})", u);
  EXPECT_TRUE(u.reported);
  EXPECT_EQ(u.input_tokens, 11);
  EXPECT_EQ(u.output_tokens, 7);
  Usage a;
  UsageFromBody(R"({"type":"message","usage":{"input_tokens":5,"output_tokens":9}})", a);
  EXPECT_EQ(a.input_tokens, 5);
  EXPECT_EQ(a.output_tokens, 9);
  Usage none;
  UsageFromBody(R"({"choices":[]})", none);
  EXPECT_FALSE(none.reported);
  UsageFromBody("not json \"usage\"", none);
  EXPECT_FALSE(none.reported);
}

TEST(Usage, FromStreamEvents) {
  Usage a;
  UsageFromEvent(Protocol::kAnthropic, "message_start",
                 R"({"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}})", a);
  UsageFromEvent(Protocol::kAnthropic, "content_block_delta", R"({"type":"content_block_delta"})", a);
  UsageFromEvent(Protocol::kAnthropic, "message_delta", R"({"type":"message_delta","usage":{"output_tokens":15}})", a);
  EXPECT_EQ(a.input_tokens, 25);
  EXPECT_EQ(a.output_tokens, 15);
  Usage o;
  UsageFromEvent(Protocol::kOpenAI, "", R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}})", o);
  EXPECT_EQ(o.input_tokens, 3);
  EXPECT_EQ(o.output_tokens, 4);
  Usage r;
  UsageFromEvent(Protocol::kOpenAI, "response.completed",
                 R"({"type":"response.completed","response":{"usage":{"input_tokens":8,"output_tokens":2}}})", r);
  EXPECT_EQ(r.input_tokens, 8);
  EXPECT_EQ(r.output_tokens, 2);
}

TEST(Echo, AnswersWithTheLastUserMessageInEveryShape) {
  Exchange ex = ChatExchange();
  RequestInfo info;
  ASSERT_TRUE(ParseRequest(R"({"model":"echo","messages":[{"role":"user","content":"first"},
      {"role":"assistant","content":"x"},{"role":"user","content":"hello there world"}]})", ex, info).ok());
  ex.upstream_model = ex.model;
  auto r = Echo(ex, info, WallTime{});
  ASSERT_EQ(r.chunks.size(), 1u);
  auto body = json::parse(r.chunks[0]).as_object();
  EXPECT_EQ(body.at("choices").at(0).at("message").at("content").as_string(), "hello there world");
  Usage u;
  UsageFromBody(r.chunks[0], u);
  EXPECT_GT(u.input_tokens, 0);
  EXPECT_GT(u.output_tokens, 0);

  ex.stream = true;
  info.include_usage = true;
  auto s = Echo(ex, info, WallTime{});
  EXPECT_EQ(s.content_type, "text/event-stream");
  EXPECT_EQ(s.chunks.back(), "data: [DONE]\n\n");
  std::string text;
  Usage su;
  for (const auto& c : s.chunks) {
    if (c == "data: [DONE]\n\n") continue;
    auto v = json::parse(c.substr(6));
    UsageFromEvent(Protocol::kOpenAI, "", c.substr(6), su);
    auto& choices = v.at("choices").as_array();
    if (!choices.empty()) {
      if (auto* content = choices[0].at("delta").as_object().if_contains("content")) text += content->as_string();
    }
  }
  EXPECT_EQ(text, "hello there world");
  EXPECT_EQ(su.output_tokens, u.output_tokens);

  Exchange m;
  m.endpoint = Endpoint::kMessages;
  m.protocol = Protocol::kAnthropic;
  m.stream = true;
  RequestInfo mi;
  ASSERT_TRUE(ParseRequest(R"({"model":"c","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"ping pong"}]})", m, mi).ok());
  auto ms = Echo(m, mi, WallTime{});
  EXPECT_EQ(ms.chunks.front().rfind("event: message_start\n", 0), 0u);
  EXPECT_EQ(ms.chunks.back().rfind("event: message_stop\n", 0), 0u);
}

TEST(Echo, EmbeddingsAreDeterministicUnitVectors) {
  Exchange e;
  e.endpoint = Endpoint::kEmbeddings;
  RequestInfo info;
  ASSERT_TRUE(ParseRequest(R"({"model":"m","input":["a","b"],"dimensions":8})", e, info).ok());
  auto r1 = Echo(e, info, WallTime{});
  auto r2 = Echo(e, info, WallTime{});
  EXPECT_EQ(r1.chunks, r2.chunks);
  auto v = json::parse(r1.chunks[0]).at("data").at(0).at("embedding").as_array();
  ASSERT_EQ(v.size(), 8u);
  double norm = 0;
  for (auto& x : v) norm += x.as_double() * x.as_double();
  EXPECT_NEAR(norm, 1.0, 1e-5);
}

}  // namespace
}  // namespace aigis::gateway::llm

namespace aigis::gateway::llm {
namespace {

// Upper-cases every text it is given and lists it with its role.
struct Upper {
  std::vector<std::string> seen;
  TextRewriter fn() {
    return [this](std::string& t, std::string_view role) {
      seen.push_back(std::string(role) + ":" + t);
      for (auto& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return true;
    };
  }
};

TEST(RewriteText, RequestsOfEveryShape) {
  Upper u;
  std::string anth = R"({"model":"m","system":[{"type":"text","text":"sys"}],"messages":[{"role":"user","content":[
      {"type":"text","text":"hi"},{"type":"image","source":{"data":"abc"}},
      {"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"res"}]}]}]})";
  ASSERT_EQ(RewriteRequestText(Endpoint::kMessages, &anth, u.fn()), true);
  EXPECT_EQ(u.seen, (std::vector<std::string>{"system:sys", "user:hi", "tool:res"}));
  EXPECT_NE(anth.find(R"("data":"abc")"), std::string::npos);  // not content: untouched
  EXPECT_NE(anth.find(R"("text":"RES")"), std::string::npos);

  u.seen.clear();
  std::string resp = R"({"model":"m","instructions":"be","input":[{"role":"user","content":"q"},{"type":"function_call_output","output":"out"}]})";
  ASSERT_EQ(RewriteRequestText(Endpoint::kResponses, &resp, u.fn()), true);
  EXPECT_EQ(u.seen, (std::vector<std::string>{"system:be", "user:q", "tool:out"}));

  u.seen.clear();
  std::string emb = R"({"model":"m","input":["a","b"]})";
  ASSERT_EQ(RewriteRequestText(Endpoint::kEmbeddings, &emb, u.fn()), true);
  EXPECT_EQ(emb, R"({"model":"m","input":["A","B"]})");

  std::string same = R"({"model":"m","messages":[{"role":"user","content":"x"}]})";
  EXPECT_EQ(RewriteRequestText(Endpoint::kChatCompletions, &same, [](std::string&, std::string_view) { return false; }), false);
  EXPECT_EQ(same, R"({"model":"m","messages":[{"role":"user","content":"x"}]})");  // byte for byte
  std::string bad = "not json";
  EXPECT_FALSE(RewriteRequestText(Endpoint::kChatCompletions, &bad, u.fn()).has_value());
}

TEST(RewriteText, ResponsesAndStreamEvents) {
  Upper u;
  std::string chat = R"({"choices":[{"message":{"role":"assistant","content":"a"}},{"message":{"content":null}}]})";
  ASSERT_EQ(RewriteResponseText(Protocol::kOpenAI, Endpoint::kChatCompletions, &chat, u.fn()), true);
  EXPECT_NE(chat.find(R"("content":"A")"), std::string::npos);
  std::string anth = R"({"content":[{"type":"text","text":"b"},{"type":"tool_use","input":{"q":"x"}}]})";
  ASSERT_EQ(RewriteResponseText(Protocol::kAnthropic, Endpoint::kMessages, &anth, u.fn()), true);
  EXPECT_NE(anth.find(R"("q":"x")"), std::string::npos);
  std::string resp = R"({"output":[{"type":"message","content":[{"type":"output_text","text":"c"}]}]})";
  ASSERT_EQ(RewriteResponseText(Protocol::kOpenAI, Endpoint::kResponses, &resp, u.fn()), true);
  EXPECT_NE(resp.find(R"("text":"C")"), std::string::npos);

  std::string d1 = R"({"choices":[{"delta":{"content":"d"}}]})";
  ASSERT_EQ(RewriteEventText(Protocol::kOpenAI, Endpoint::kChatCompletions, "", &d1, u.fn()), true);
  std::string d2 = R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"e"}})";
  ASSERT_EQ(RewriteEventText(Protocol::kAnthropic, Endpoint::kMessages, "content_block_delta", &d2, u.fn()), true);
  std::string d3 = R"({"type":"response.output_text.delta","delta":"f"})";
  ASSERT_EQ(RewriteEventText(Protocol::kOpenAI, Endpoint::kResponses, "response.output_text.delta", &d3, u.fn()), true);
  std::string d4 = R"({"type":"response.created","response":{"id":"r"}})";
  EXPECT_EQ(RewriteEventText(Protocol::kOpenAI, Endpoint::kResponses, "response.created", &d4, u.fn()), false);
  std::string done = "[DONE]";
  EXPECT_EQ(RewriteEventText(Protocol::kOpenAI, Endpoint::kChatCompletions, "", &done, u.fn()), false);
  EXPECT_EQ(u.seen.back(), "assistant:f");

  EXPECT_TRUE(IsStreamEnd(Protocol::kOpenAI, "", "[DONE]"));
  EXPECT_TRUE(IsStreamEnd(Protocol::kOpenAI, "", R"({"choices":[{"delta":{},"finish_reason":"stop"}]})"));
  EXPECT_FALSE(IsStreamEnd(Protocol::kOpenAI, "", R"({"choices":[{"delta":{"content":"x"},"finish_reason":null}]})"));
  EXPECT_TRUE(IsStreamEnd(Protocol::kAnthropic, "message_stop", "{}"));
}

}  // namespace
}  // namespace aigis::gateway::llm

// The pipeline mechanism through the public Gateway API, over loopback with
// plain POSIX sockets (no Asio in the test).
#include "gateway/gateway.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>

namespace aigis::gateway {
namespace {

std::string Http(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::string Post(uint16_t port, const std::string& path, const std::string& body) {
  return Http(port, "POST " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

class CollectingSink : public EventSink {
 public:
  void Emit(const Event& e) override {
    std::lock_guard lock(mu);
    events.push_back(e);
  }
  std::mutex mu;
  std::vector<Event> events;
};

class DenyModel : public Stage {
 public:
  std::string_view name() const override { return "test_policy"; }
  Decision OnRequest(Exchange& ex) override {
    seen_messages = ex.messages.size();
    if (ex.model == "forbidden") return Decision::Deny(403, "model_forbidden", "model 'forbidden' is not allowed");
    return Decision::Continue();
  }
  size_t seen_messages = 0;
};

// Masks a word in streamed events and non-streamed bodies; denies on another.
class Mask : public ResponseStage {
 public:
  std::string_view name() const override { return "test_mask"; }
  Decision OnEvent(Exchange& ex, std::string_view event, std::string& data) override {
    if (data.find("explode") != std::string::npos) return Decision::Deny(400, "unsafe_output", "blocked output");
    Replace(data);
    return Decision::Continue();
  }
  Decision OnBody(Exchange& ex, std::string& body) override {
    Replace(body);
    return Decision::Continue();
  }
  static void Replace(std::string& s) {
    for (size_t p; (p = s.find("secret")) != std::string::npos;) s.replace(p, 6, "******");
  }
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::Config cfg = config::Defaults();
    cfg.proxy.port = 0;
    cfg.admin.port = 0;
    cfg.server.threads = 2;
    GatewayOptions opts;
    opts.events = sink_;
    auto g = Gateway::Create(cfg, opts);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    gw_ = std::move(g).value();
    gw_->AddStage(Phase::kAuthorize, deny_);
    gw_->AddResponseStage(std::make_shared<Mask>());
    auto ports = gw_->Start();
    ASSERT_TRUE(ports.ok()) << ports.status().ToString();
    ports_ = *ports;
  }
  void TearDown() override {
    if (gw_) gw_->Shutdown(std::chrono::milliseconds(1000));
  }
  std::shared_ptr<CollectingSink> sink_ = std::make_shared<CollectingSink>();
  std::shared_ptr<DenyModel> deny_ = std::make_shared<DenyModel>();
  std::unique_ptr<Gateway> gw_;
  Ports ports_;
};

TEST_F(GatewayTest, StageDenyBecomesNativeErrorAndIsRecorded) {
  std::string r = Post(ports_.proxy, "/v1/chat/completions",
                       R"({"model":"forbidden","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(r.rfind("HTTP/1.1 403", 0), 0u) << r;
  EXPECT_NE(r.find(R"({"error":{"message":"model 'forbidden' is not allowed","type":"permission_error")"),
            std::string::npos) << r;
  std::string a = Post(ports_.proxy, "/v1/messages",
                       R"({"model":"forbidden","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(a.rfind("HTTP/1.1 403", 0), 0u) << a;
  EXPECT_NE(a.find(R"({"type":"error","error":{"type":"permission_error")"), std::string::npos) << a;
  EXPECT_EQ(deny_->seen_messages, 1u);
  gw_->Shutdown(std::chrono::milliseconds(1000));  // flushes the record
  std::lock_guard lock(sink_->mu);
  ASSERT_GE(sink_->events.size(), 2u);
  bool found = false;
  for (const auto& f : sink_->events[0].fields) {
    if (f.first == "decision") found = std::get<std::string>(f.second) == "test_policy:deny:model_forbidden";
  }
  EXPECT_TRUE(found);
  gw_.reset();
}

TEST_F(GatewayTest, ResponseStageRewritesBodiesAndStreams) {
  std::string r = Post(ports_.proxy, "/v1/chat/completions",
                       R"({"model":"echo","messages":[{"role":"user","content":"my secret plan"}]})");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("my ****** plan"), std::string::npos) << r;
  EXPECT_EQ(r.find("secret"), std::string::npos) << r;
  std::string s = Post(ports_.proxy, "/v1/chat/completions",
                       R"({"model":"echo","stream":true,"messages":[{"role":"user","content":"a secret b"}]})");
  EXPECT_NE(s.find("text/event-stream"), std::string::npos) << s;
  EXPECT_NE(s.find("******"), std::string::npos) << s;
  EXPECT_EQ(s.find("secret"), std::string::npos) << s;
  EXPECT_NE(s.find("data: [DONE]"), std::string::npos) << s;
}

TEST_F(GatewayTest, ResponseStageDenyEndsStreamWithNativeErrorEvent) {
  std::string s = Post(ports_.proxy, "/v1/messages",
                       R"({"model":"echo","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"now explode"}]})");
  EXPECT_NE(s.find("event: message_start"), std::string::npos) << s;
  EXPECT_NE(s.find("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"blocked output\"}}"),
            std::string::npos) << s;
  EXPECT_EQ(s.find("event: message_stop"), std::string::npos) << s;
}

TEST_F(GatewayTest, RequestIdKeptWhenValidReplacedOtherwise) {
  std::string body = R"({"model":"echo","messages":[{"role":"user","content":"x"}]})";
  auto req = [&](const std::string& id) {
    return Http(ports_.proxy, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: " + id +
                                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  EXPECT_NE(req("client-id-123").find("X-Request-Id: client-id-123\r\n"), std::string::npos);
  std::string bad = req("bad id <script>");
  EXPECT_EQ(bad.find("<script>"), std::string::npos);
  EXPECT_NE(bad.find("X-Request-Id: "), std::string::npos);
}

TEST_F(GatewayTest, ReloadSwapsConfigAndRejectsBadOnes) {
  config::Config next = config::Defaults();
  next.model_aliases["fast"] = "echo-2";
  ASSERT_TRUE(gw_->Reload(next).ok());
  EXPECT_EQ(gw_->config()->model_aliases.at("fast"), "echo-2");
  std::string r = Post(ports_.proxy, "/v1/chat/completions", R"({"model":"fast","messages":[{"role":"user","content":"x"}]})");
  EXPECT_NE(r.find(R"("model":"echo-2")"), std::string::npos) << r;
  config::Config bad = config::Defaults();
  config::UpstreamConfig u;
  u.name = "broken";
  u.provider = config::Provider::kOpenAI;
  u.base_url = "http://";
  bad.upstreams.push_back(u);
  bad.routes[0].upstreams = {"broken"};
  EXPECT_FALSE(gw_->Reload(bad).ok());
  EXPECT_EQ(gw_->config()->model_aliases.at("fast"), "echo-2");  // old one still serving
}

TEST(GatewayRouting, RouteWithoutAnUpstreamForTheProtocolIsNotAMatch) {
  auto loaded = config::LoadString(R"(
listeners: {proxy: {address: "127.0.0.1:0"}, admin: {address: "127.0.0.1:0"}}
log: {access_log: "off"}
upstreams:
  - {name: oa, provider: openai, base_url: "http://127.0.0.1:1/v1"}
routes:
  - {name: only-openai, upstreams: [oa]}
)", "t.yaml");
  ASSERT_TRUE(loaded.config) << loaded.errors[0];
  auto g = Gateway::Create(*loaded.config, {});
  ASSERT_TRUE(g.ok());
  auto ports = (*g)->Start();
  ASSERT_TRUE(ports.ok());
  std::string r = Post(ports->proxy, "/v1/messages",
                       R"({"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(r.rfind("HTTP/1.1 404", 0), 0u) << r;
  EXPECT_NE(r.find(R"({"type":"error","error":{"type":"not_found_error","message":"no route serves model 'claude' on /v1/messages"}})"),
            std::string::npos) << r;
  // The OpenAI endpoint does match; nothing listens upstream, so 502 in OpenAI's shape.
  std::string o = Post(ports->proxy, "/v1/chat/completions", R"({"model":"gpt","messages":[]})");
  EXPECT_EQ(o.rfind("HTTP/1.1 502", 0), 0u) << o;
  EXPECT_NE(o.find(R"("code":"upstream_unavailable")"), std::string::npos) << o;
  (*g)->Shutdown(std::chrono::milliseconds(500));
}

}  // namespace
}  // namespace aigis::gateway

// The gateway with an audit log: in sync mode no client holds a complete
// response before its record is durable (whole bodies and streams); in async
// mode it does not wait; when the log cannot take records, requests are
// refused with 503 (fail closed). The log's writer is held by a test hook.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

#include "audit/audit.h"
#include "gateway/gateway.h"
#include "gateway/record.h"

namespace aigis::gateway {
namespace {

std::string Post(uint16_t port, const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

constexpr const char* kChat = R"({"model":"echo-1","messages":[{"role":"user","content":"hello"}]})";
constexpr const char* kStream = R"({"model":"echo-1","stream":true,"messages":[{"role":"user","content":"hello"}]})";

class AuditGatewayTest : public ::testing::Test {
 protected:
  void Start(const std::string& mode, size_t max_queue = 1000) {
    dir_ = std::filesystem::temp_directory_path() /
           ("aigis-gw-audit-" + std::to_string(::getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    audit::LogOptions lo;
    lo.dir = dir_.string();
    lo.master_key = std::string(40, 'm');
    lo.checkpoint_interval = std::chrono::milliseconds(0);
    lo.max_queue = max_queue;
    lo.fsync = false;
    lo.before_write = [this] {
      while (hold_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    };
    auto log = audit::Log::Open(lo);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(log).value();
    config::Config cfg = config::Defaults();
    cfg.proxy.port = 0;
    cfg.admin.port = 0;
    cfg.server.threads = 2;
    cfg.log.access_log = "off";
    cfg.audit.mode = mode;
    GatewayOptions opts;
    opts.audit = log_;
    auto g = Gateway::Create(cfg, opts);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    gw_ = std::move(g).value();
    auto ports = gw_->Start();
    ASSERT_TRUE(ports.ok());
    port_ = ports->proxy;
  }
  void TearDown() override {
    hold_.store(false);
    if (gw_) gw_->Shutdown(std::chrono::milliseconds(1000));
    gw_.reset();
    log_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Sends `body` while the writer is held; true if the response came back
  // before the writer was released.
  bool AnsweredWhileHeld(const char* body, std::string* response) {
    hold_.store(true);
    auto answer = std::async(std::launch::async, [&] { return Post(port_, body); });
    bool early = answer.wait_for(std::chrono::milliseconds(500)) == std::future_status::ready;
    hold_.store(false);
    *response = answer.get();
    return early;
  }

  std::filesystem::path dir_;
  std::atomic<bool> hold_{false};
  std::shared_ptr<audit::Log> log_;
  std::unique_ptr<Gateway> gw_;
  uint16_t port_ = 0;
};

TEST_F(AuditGatewayTest, SyncModeAnswersOnlyOnceTheRecordIsDurable) {
  Start("sync");
  std::string r;
  EXPECT_FALSE(AnsweredWhileHeld(kChat, &r)) << "a whole response went out before its record was durable";
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  ASSERT_TRUE(log_->Flush().ok());
  EXPECT_EQ(log_->Size("default"), 1u);

  // A stream: the end of the stream waits (the status line may not).
  EXPECT_FALSE(AnsweredWhileHeld(kStream, &r)) << "a stream ended before its record was durable";
  EXPECT_NE(r.find("[DONE]"), std::string::npos) << r;
  ASSERT_TRUE(log_->Flush().ok());
  EXPECT_EQ(log_->Size("default"), 2u);
  auto rec = log_->Record("default", 1);
  ASSERT_TRUE(rec.ok());
  EXPECT_NE(rec->find("\"stream\":true"), std::string::npos) << *rec;
  EXPECT_NE(rec->find("\"response_sha256\":\""), std::string::npos) << *rec;
}

TEST_F(AuditGatewayTest, AsyncModeDoesNotWaitForTheDisk) {
  Start("async");
  std::string r;
  EXPECT_TRUE(AnsweredWhileHeld(kChat, &r));
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  ASSERT_TRUE(log_->Flush().ok());
  EXPECT_EQ(log_->Size("default"), 1u);
}

TEST_F(AuditGatewayTest, RefusesRequestsWhileTheLogCannotTakeThem) {
  Start("sync", /*max_queue=*/1);
  hold_.store(true);
  // The first request's record fills the queue (the writer is held).
  auto first = std::async(std::launch::async, [&] { return Post(port_, kChat); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The writer took it already (it is held inside the batch) or not: either
  // way, fill the queue to its bound with one more append.
  (void)log_->Append({"default", "filler", {}, "{}"});
  std::string r = Post(port_, kChat);
  EXPECT_EQ(r.rfind("HTTP/1.1 503", 0), 0u) << r;
  EXPECT_NE(r.find("audit_unavailable"), std::string::npos) << r;
  hold_.store(false);
  EXPECT_EQ(first.get().rfind("HTTP/1.1 200", 0), 0u);
}

// The gateway writes records already canonical, so the log stores them as
// they are (audit::IsCanonical is the log's cheap path).
TEST(AuditRecord, ExchangeAndAdminRecordsAreCanonical) {
  Exchange ex;
  ex.request_id = "r-1";
  ex.time = WallTime(std::chrono::seconds(1'800'000'000));
  ex.method = "POST";
  ex.path = "/v1/chat/completions";
  ex.model = "m";
  ex.principal.kind = "agent";
  ex.principal.id = "agt_1";
  ex.principal.act = {"agt_2"};
  ex.authz.push_back({"r-1.authz.1", true, "agent:agt_1", "can_use", "model:m", {"why \"quoted\"\n"}, "01J", 7, false, ""});
  ex.guard.screened = true;
  ex.guard.outcome = "block";
  ex.guard.score = 0.8;
  ex.guard.rules = {"PI-1"};
  ex.decisions.push_back({"screen_request", "deny", "content_blocked", "blocked by PI-1 \x01"});
  std::string rec = ExchangeRecord(ex, RecordInputs{400, std::chrono::microseconds(12), "", false, nullptr});
  EXPECT_TRUE(audit::IsCanonical(rec)) << rec;
  EXPECT_NE(rec.find(R"("decision":"deny")"), std::string::npos);
  EXPECT_NE(rec.find(R"("score_milli":800)"), std::string::npos);
  ActionRecord a;
  a.request_id = "r-2";
  a.action = "POST /admin/v1/agents";
  a.status = 201;
  EXPECT_TRUE(audit::IsCanonical(AdminRecord(a))) << AdminRecord(a);
}

// Every part of an exchange record, written canonical as it goes: the same
// bytes Canonicalize would make of it, each stage once, a deny overriding its
// stage's outcome.
TEST(AuditRecord, EveryPartOfAnExchangeRecordIsCanonical) {
  Exchange ex;
  ex.request_id = "r-3";
  ex.tenant = "acme";
  ex.time = WallTime(std::chrono::seconds(1'800'000'000));
  ex.method = "POST";
  ex.path = "/mcp/files";
  ex.remote = "127.0.0.1";
  ex.protocol = Protocol::kMcp;
  ex.route = "files";
  ex.model = "m";
  ex.upstream_model = "m-2025";
  ex.principal = {};
  ex.principal.kind = "agent";
  ex.principal.id = "agt_1";
  ex.principal.issuer = "https://idp";
  ex.principal.client_id = "cli";
  ex.principal.credential_id = "crd";
  ex.authz.push_back({"r-3.authz.1", true, "agent:agt_1", "can_call", "tool:files/*", {"a", "b"}, "01J", 7, true, ""});
  ex.authz.push_back({"r-3.authz.2", false, "user:u", "can_call", "tool:files/rm", {}, "01J", 7, false, "timeout"});
  ex.decisions.push_back({"authorize", "deny", "forbidden", "user:u may not"});
  ex.decisions.push_back({"admit", "deny", "rate_limited", "slow down"});
  ex.guard.screened = true;
  ex.guard.policy = "strict";
  ex.guard.score = 0.25;
  ex.guard.rules = {"SEC-1", "PII-2"};
  ex.guard.fields = {"params.arguments.text"};
  ex.guard.masked = {{"[SECRET_1]", "abcd"}};
  ex.guard.classifier = "unsafe";
  ex.guard.classifier_categories = "S1,S2";
  ex.guard.response_screened = true;
  ex.guard.response_score = 1;
  ex.upstream = "files";
  ex.upstream_status = 200;
  ex.attempts = 2;
  ex.mcp.method = "tools/call";
  ex.mcp.server = "files";
  ex.mcp.tool = "rm";
  ex.mcp.session = "s1";
  ex.mcp.rpc_id = "7";
  ex.mcp.error_code = -32001;
  ex.mcp.error = "denied";
  ex.mcp.upstream_error = "none";
  ex.mcp.alerts = {"mcp_tool_changed"};
  ex.usage.reported = true;
  ex.usage.input_tokens = 3;
  ex.raw_body = "{}";
  ex.forward_body = "{\"masked\":true}";
  std::string response = "ok";
  std::string rec = ExchangeRecord(ex, RecordInputs{403, std::chrono::microseconds(12), "ff", true, &response});
  EXPECT_TRUE(audit::IsCanonical(rec)) << rec;
  auto canonical = audit::Canonicalize(rec);
  ASSERT_TRUE(canonical.ok()) << canonical.status().ToString() << "\n" << rec;
  EXPECT_EQ(*canonical, rec);
  for (const char* part :
       {R"("decision":"deny")", R"("stage":"authorize")", R"("outcome":"deny")", R"("code":"forbidden")",
        R"({"code":"rate_limited","outcome":"deny","reason":"slow down","stage":"admit"})",
        R"("error":"timeout")", R"("masked":[{"placeholder":"[SECRET_1]","sha256_prefix":"abcd"}])",
        R"("categories":"S1,S2","outcome":"flag")", R"("score_milli":1000)", R"("upstream_model":"m-2025")",
        R"("upstream":{"attempts":2,"latency_us":0,"name":"files","status":200})",
        R"("error":{"code":-32001,"message":"denied"})", R"("alerts":["mcp_tool_changed"])",
        R"("usage":{"input_tokens":3,"output_tokens":0})", R"("request_body":"{\"masked\":true}")",
        R"("response_sha256":"ff")",
        R"("code":"forbidden","outcome":"deny","reason":"user:u may not","stage":"authorize")"}) {
    EXPECT_NE(rec.find(part), std::string::npos) << part << " in " << rec;
  }
  EXPECT_EQ(rec.find(R"("act")"), std::string::npos) << "no act chain was set";
}

}  // namespace
}  // namespace aigis::gateway

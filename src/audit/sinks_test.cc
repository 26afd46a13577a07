// Sinks: rotation of the JSON lines file, RFC 5424 syslog over UDP and TCP
// to local sockets, retries with backoff, and a bounded queue that drops
// (counted) instead of blocking the log.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "audit/audit.h"

namespace aigis::audit {
namespace {

namespace fs = std::filesystem;

class SinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("aigis-sinks-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    LogOptions o;
    o.dir = (dir_ / "log").string();
    o.master_key = std::string(32, 's');
    o.checkpoint_interval = std::chrono::milliseconds(0);
    o.fsync = false;
    log_ = std::move(Log::Open(o)).value();
  }
  void TearDown() override {
    log_.reset();
    fs::remove_all(dir_);
  }
  void AppendN(int n) {
    for (int i = 0; i < n; ++i) {
      Entry e;
      e.request_id = "r" + std::to_string(i);
      e.json = R"({"request_id":")" + e.request_id + R"(","pad":")" + std::string(200, 'x') + "\"}";
      ASSERT_TRUE(log_->Append(e).ok());
    }
    ASSERT_TRUE(log_->Flush().ok());
  }
  template <typename Pred>
  static bool Eventually(Pred p) {
    for (int i = 0; i < 500; ++i) {
      if (p()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return p();
  }
  fs::path dir_;
  std::unique_ptr<Log> log_;
};

TEST_F(SinkTest, FileRotatesAndKeepsEveryLine) {
  FileSinkOptions o;
  o.path = (dir_ / "audit.jsonl").string();
  o.max_bytes = 4096;
  o.keep = 100;
  auto sink = MakeFileSink(o);
  ASSERT_TRUE(sink.ok());
  log_->AddSink(*sink);
  AppendN(60);
  ASSERT_TRUE(Eventually([&] { return (*sink)->stats().delivered == 60; }));
  int lines = 0, files = 0;
  std::vector<uint64_t> seen;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().filename().string().rfind("audit.jsonl", 0) != 0) continue;
    ++files;
    EXPECT_LE(fs::file_size(e.path()), 4096u) << e.path();
    std::ifstream in(e.path());
    for (std::string l; std::getline(in, l);) {
      ++lines;
      EXPECT_EQ(l.rfind(R"({"index":)", 0), 0u) << l;
      EXPECT_NE(l.find(R"("tenant":"default")"), std::string::npos);
      seen.push_back(std::stoull(l.substr(9)));
    }
  }
  EXPECT_EQ(lines, 60);
  EXPECT_GT(files, 2);
  std::sort(seen.begin(), seen.end());
  for (uint64_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  EXPECT_EQ((*sink)->stats().dropped, 0u);
}

TEST_F(SinkTest, FileKeepsOnlyTheNewestFiles) {
  FileSinkOptions o;
  o.path = (dir_ / "a.jsonl").string();
  o.max_bytes = 4096;
  o.keep = 2;
  auto sink = MakeFileSink(o).value();
  log_->AddSink(sink);
  AppendN(100);
  ASSERT_TRUE(Eventually([&] { return sink->stats().delivered == 100; }));
  EXPECT_TRUE(fs::exists(dir_ / "a.jsonl"));
  EXPECT_TRUE(fs::exists(dir_ / "a.jsonl.2"));
  EXPECT_FALSE(fs::exists(dir_ / "a.jsonl.3"));
  EXPECT_FALSE(MakeFileSink({"", 1 << 20, 5, {}}).ok());
}

int Listen(int type, uint16_t* port) {
  int fd = ::socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  if (type == SOCK_STREAM) ::listen(fd, 4);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void CheckSyslogMessage(const std::string& m, uint64_t index) {
  // <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG, PRI = local0 (16) * 8 + info (6).
  EXPECT_EQ(m.rfind("<134>1 ", 0), 0u) << m;
  EXPECT_NE(m.find(" aigis-test " + std::to_string(::getpid()) + " audit - {\"index\":" + std::to_string(index)),
            std::string::npos)
      << m;
}

TEST_F(SinkTest, SyslogOverUdp) {
  uint16_t port = 0;
  int fd = Listen(SOCK_DGRAM, &port);
  SyslogSinkOptions o;
  o.address = "udp://127.0.0.1:" + std::to_string(port);
  o.app_name = "aigis-test";
  auto sink = MakeSyslogSink(o);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  log_->AddSink(*sink);
  AppendN(3);
  for (uint64_t i = 0; i < 3; ++i) {
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    CheckSyslogMessage(std::string(buf, static_cast<size_t>(n)), i);
  }
  ::close(fd);
}

TEST_F(SinkTest, SyslogOverTcpWithOctetCounting) {
  uint16_t port = 0;
  int lfd = Listen(SOCK_STREAM, &port);
  SyslogSinkOptions o;
  o.address = "tcp://127.0.0.1:" + std::to_string(port);
  o.app_name = "aigis-test";
  log_->AddSink(MakeSyslogSink(o).value());
  AppendN(3);
  int fd = ::accept(lfd, nullptr, nullptr);
  ASSERT_GE(fd, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string data;
  for (int frames = 0; frames < 3;) {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    data.append(buf, static_cast<size_t>(n));
    // Frames: "<length> <message>".
    frames = 0;
    for (size_t at = 0; at < data.size();) {
      size_t sp = data.find(' ', at);
      if (sp == std::string::npos) break;
      size_t len = std::stoul(data.substr(at, sp - at));
      if (sp + 1 + len > data.size()) break;
      CheckSyslogMessage(data.substr(sp + 1, len), static_cast<uint64_t>(frames));
      ++frames;
      at = sp + 1 + len;
    }
  }
  ::close(fd);
  ::close(lfd);
  EXPECT_FALSE(MakeSyslogSink({"http://x:1", "a", "", 16, {}}).ok());
  EXPECT_FALSE(MakeSyslogSink({"udp://example.com:514", "a", "", 16, {}}).ok());
  EXPECT_FALSE(MakeSyslogSink({"udp://127.0.0.1:99999", "a", "", 16, {}}).ok());
}

TEST_F(SinkTest, RetriesWithBackoffThenDelivers) {
  std::atomic<int> calls{0};
  std::vector<std::string> got;
  std::mutex mu;
  SinkQueueOptions q;
  q.min_backoff = std::chrono::milliseconds(5);
  auto sink = MakeDeliverySink("test", q, [&](const std::vector<std::string>& lines) {
    if (calls.fetch_add(1) < 2) return Unavailable("down");
    std::lock_guard l(mu);
    got.insert(got.end(), lines.begin(), lines.end());
    return Status::Ok();
  });
  log_->AddSink(sink);
  AppendN(5);
  ASSERT_TRUE(Eventually([&] { return sink->stats().delivered == 5; }));
  EXPECT_EQ(sink->stats().failures, 2u);
  std::lock_guard l(mu);
  EXPECT_EQ(got.size(), 5u);
}

TEST_F(SinkTest, AFullQueueDropsAndCountsWithoutBlockingTheLog) {
  std::atomic<bool> release{false};
  SinkQueueOptions q;
  q.max_queue = 10;
  q.max_batch = 1;
  auto sink = MakeDeliverySink("slow", q, [&](const std::vector<std::string>&) {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return Status::Ok();
  });
  log_->AddSink(sink);
  AppendN(50);  // returns: the log never waits for a sink
  EXPECT_EQ(log_->Size("default"), 50u);
  // Sinks are offered a batch just after its appenders are told it is
  // durable, so the drops show up a moment after Flush returns; all while
  // the sink is still stuck.
  EXPECT_TRUE(Eventually([&] { return sink->stats().dropped >= 39; })) << sink->stats().dropped;
  release.store(true);
  ASSERT_TRUE(Eventually([&] { return sink->stats().delivered + sink->stats().dropped == 50; }));
}

TEST_F(SinkTest, GivesUpOnABatchAfterMaxAttempts) {
  SinkQueueOptions q;
  q.min_backoff = std::chrono::milliseconds(1);
  q.max_attempts = 3;
  auto sink = MakeDeliverySink("dead", q, [](const std::vector<std::string>&) { return Unavailable("down"); });
  log_->AddSink(sink);
  AppendN(4);
  ASSERT_TRUE(Eventually([&] { return sink->stats().dropped == 4; }));
  EXPECT_GE(sink->stats().failures, 3u);
}

}  // namespace
}  // namespace aigis::audit

// The server and the client over loopback, for the reads and writes that
// complete at once and the ones that go on asynchronously (net/internal.h):
// bodies larger than a socket buffer arrive whole and in order both ways,
// and requests that arrive together (pipelined) or in pieces are parsed the
// same as requests that arrive one at a time.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "net/internal.h"

namespace aigis::net {
namespace {

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

class NetIoTest : public ::testing::Test {
 protected:
  void StartServer(Handler handler, size_t max_body = 10 * 1024 * 1024) {
    ServerOptions o;
    o.max_body_bytes = max_body;
    server_ = std::make_unique<Server>(pool_, o, std::move(handler));
    auto port = server_->Listen();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    pool_.Start();
  }
  void TearDown() override {
    if (server_) server_->CloseAll();
    pool_.Stop();
  }

  // A blocking client socket with a receive timeout (no test can hang).
  int Connect() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  static void SendAll(int fd, std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0);
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  // Reads until `count` responses with Content-Length bodies are complete.
  static std::vector<std::string> ReadBodies(int fd, int count) {
    std::string in;
    std::vector<std::string> bodies;
    char buf[4096];
    while (static_cast<int>(bodies.size()) < count) {
      size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t cl = in.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) {
          size_t len = std::stoul(in.substr(cl + 16));
          if (in.size() >= end + 4 + len) {
            bodies.push_back(in.substr(end + 4, len));
            in.erase(0, end + 4 + len);
            continue;
          }
        }
      }
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;  // closed or timed out: the caller sees too few bodies
      in.append(buf, static_cast<size_t>(n));
    }
    return bodies;
  }

  IoPool pool_{1};
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(NetIoTest, BodiesLargerThanASocketBufferArriveWholeBothWays) {
  const std::string request_body = Pattern(9 << 20, 1);
  const std::string response_body = Pattern(12 << 20, 2);
  StartServer(
      [&](Request& req, ResponseWriter& w) -> Task<void> {
        Response r;
        r.status = req.body == request_body ? 200 : 400;
        r.body = r.status == 200 ? response_body : "request body damaged";
        co_await w.Send(std::move(r));
      },
      16 << 20);
  std::promise<std::string> got;
  asio::co_spawn(
      pool_.context(0),
      [&]() -> Task<void> {
        HttpClient client(pool_.context(0), nullptr);
        Endpoint ep;
        ep.host = "127.0.0.1";
        ep.port = port_;
        ClientRequest req;
        req.target = "/big";
        req.body = request_body;
        ClientOptions options;  // a local: GCC 12 destroys temporaries in co_await expressions twice
        auto resp = co_await client.Send(ep, options, std::move(req));
        if (!resp.ok()) {
          got.set_value("send: " + resp.status().ToString());
          co_return;
        }
        int status = (*resp)->status;
        auto body = co_await (*resp)->ReadAll(32 << 20);
        got.set_value(!body.ok() ? "read: " + body.status().ToString()
                      : status != 200 ? fmt::format("status {}: {}", status, *body)
                                      : *body);
      },
      asio::detached);
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  std::string body = f.get();
  ASSERT_EQ(body.size(), response_body.size()) << body.substr(0, 200);
  EXPECT_TRUE(body == response_body);
}

TEST_F(NetIoTest, PipelinedAndPiecemealRequestsAreParsedAlike) {
  StartServer([](Request& req, ResponseWriter& w) -> Task<void> {
    Response r;
    r.body = req.method + " " + req.target + " " + req.body;
    co_await w.Send(std::move(r));
  });
  int fd = Connect();
  // Three requests in one write: the second and third are already buffered
  // when the first is answered.
  SendAll(fd,
          "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
          "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
          "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  EXPECT_EQ(ReadBodies(fd, 3), (std::vector<std::string>{"GET /a ", "POST /b hello", "POST /c abcde"}));
  // One request in pieces: the head split mid-line, the body later.
  for (std::string_view piece : {"POST /d HTT", "P/1.1\r\nHost: x\r\nContent-", "Length: 6\r\n\r\n", "wor", "ld!"}) {
    SendAll(fd, piece);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(ReadBodies(fd, 1), (std::vector<std::string>{"POST /d world!"}));
  // A body over the limit still reaches the handler as a request without
  // its body (it answers 413 in its own shape); the connection then closes.
  SendAll(fd, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n");
  std::vector<std::string> refused = ReadBodies(fd, 1);
  EXPECT_EQ(refused, (std::vector<std::string>{"POST /e "})) << "the handler answers a too-large body itself";
  ::close(fd);
}

}  // namespace
}  // namespace aigis::net

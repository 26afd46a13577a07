#include <gtest/gtest.h>

#include "net/internal.h"

namespace aigis::net {
namespace {

TEST(Wire, ResponseHeadFramesAndRefusesInjection) {
  Headers h;
  h.Add("Content-Type", "application/json");
  h.Add("X-Evil", "a\r\nSet-Cookie: x=1");  // value with CRLF: dropped
  h.Add("Bad Name", "v");                   // not a token: dropped
  h.Add("Content-Length", "999");           // framing is ours: dropped
  h.Add("Transfer-Encoding", "gzip");
  h.Add("Connection", "upgrade");
  std::string head = ResponseHead(200, h, true, 42);
  EXPECT_EQ(head, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n");
  EXPECT_EQ(ResponseHead(502, {}, false, std::nullopt),
            "HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
}

TEST(Wire, RequestHead) {
  Headers h;
  h.Add("Authorization", "Bearer sk");
  h.Add("X-Nul", std::string("a\0b", 3));
  EXPECT_EQ(RequestHead("POST", "/v1/chat/completions", "api.example:8443", h, 7),
            "POST /v1/chat/completions HTTP/1.1\r\nHost: api.example:8443\r\nAuthorization: Bearer sk\r\n"
            "Content-Length: 7\r\n\r\n");
  EXPECT_EQ(RequestHead("GET", "/v1/models", "h", {}, 0), "GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n");
}

}  // namespace
}  // namespace aigis::net

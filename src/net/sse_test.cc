#include <gtest/gtest.h>

#include <random>

#include "net/net.h"

namespace aigis::net {
namespace {

struct Collected {
  std::vector<std::string> raw, event, data, id;
};

Status FeedAll(SseParser& p, std::string_view bytes, Collected& c) {
  return p.Feed(bytes, [&](const SseEvent& ev) {
    c.raw.emplace_back(ev.raw);
    c.event.emplace_back(ev.event);
    c.data.push_back(ev.data);
    c.id.emplace_back(ev.id);
  });
}

const std::string kStream =
    "event: message_start\ndata: {\"a\":1}\n\n"
    ": keep-alive comment\n\n"
    "data: line one\r\ndata: line two\r\n\r\n"
    "id: 7\rdata:no-space\r\r"
    "data: [DONE]\n\n";

TEST(SseParser, ParsesFieldsAndAllLineEndings) {
  SseParser p;
  Collected c;
  ASSERT_TRUE(FeedAll(p, kStream, c).ok());
  ASSERT_EQ(c.data.size(), 5u);
  EXPECT_EQ(c.event[0], "message_start");
  EXPECT_EQ(c.data[0], "{\"a\":1}");
  EXPECT_EQ(c.data[1], "");  // comment-only event
  EXPECT_EQ(c.data[2], "line one\nline two");
  EXPECT_EQ(c.id[3], "7");
  EXPECT_EQ(c.data[3], "no-space");
  EXPECT_EQ(c.data[4], "[DONE]");
  std::string joined;
  for (auto& r : c.raw) joined += r;
  EXPECT_EQ(joined, kStream);  // raw bytes are forwarded unchanged
  EXPECT_TRUE(p.pending().empty());
}

TEST(SseParser, SameEventsHoweverTheStreamIsSplit) {
  SseParser whole;
  Collected expect;
  ASSERT_TRUE(FeedAll(whole, kStream, expect).ok());
  std::mt19937 rng(42);
  for (int round = 0; round < 500; ++round) {
    SseParser p;
    Collected got;
    size_t i = 0;
    while (i < kStream.size()) {
      size_t n = std::uniform_int_distribution<size_t>(1, 7)(rng);
      ASSERT_TRUE(FeedAll(p, std::string_view(kStream).substr(i, n), got).ok());
      i += n;
    }
    EXPECT_EQ(got.data, expect.data);
    EXPECT_EQ(got.raw, expect.raw);
  }
}

TEST(SseParser, KeepsUnterminatedEventPending) {
  SseParser p;
  Collected c;
  ASSERT_TRUE(FeedAll(p, "data: a\n\ndata: partial", c).ok());
  ASSERT_EQ(c.data.size(), 1u);
  EXPECT_EQ(p.pending(), "data: partial");
}

TEST(SseParser, BoundsOneEvent) {
  SseParser p(1024);
  Collected c;
  Status st = FeedAll(p, "data: " + std::string(2000, 'x'), c);
  EXPECT_EQ(st.code(), Code::kPayloadTooLarge);
  SseParser ok(1024);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(FeedAll(ok, "data: " + std::string(500, 'y') + "\n\n", c).ok());
}

TEST(Headers, CaseInsensitiveAndHopByHop) {
  Headers h;
  h.Add("Content-Type", "application/json");
  h.Add("Connection", "keep-alive, X-Secret-Hop");
  EXPECT_EQ(h.Get("content-type"), "application/json");
  h.Set("CONTENT-TYPE", "text/plain");
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.Get("Content-Type"), "text/plain");
  EXPECT_TRUE(IsHopByHop("transfer-encoding", h));
  EXPECT_TRUE(IsHopByHop("x-secret-hop", h));
  EXPECT_FALSE(IsHopByHop("x-other", h));
  h.Remove("connection");
  EXPECT_EQ(h.Find("Connection"), nullptr);
}

TEST(Endpoint, ParsesBaseUrls) {
  auto e = Endpoint::Parse("https://api.openai.com/v1/");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(e->host, "api.openai.com");
  EXPECT_EQ(e->port, 443);
  EXPECT_EQ(e->base_path, "/v1");
  auto p = Endpoint::Parse("http://127.0.0.1:9000");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->port, 9000);
  EXPECT_EQ(p->base_path, "");
  auto v6 = Endpoint::Parse("http://[::1]:8080/x");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_FALSE(Endpoint::Parse("ftp://x").ok());
  EXPECT_FALSE(Endpoint::Parse("http://user:pw@x/").ok());
  EXPECT_FALSE(Endpoint::Parse("not a url").ok());
  EXPECT_FALSE(Endpoint::Parse("http://x/?q=1").ok());
}

}  // namespace
}  // namespace aigis::net

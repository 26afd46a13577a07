#include "core/core.h"

#include <gtest/gtest.h>

namespace aigis {
namespace {

TEST(Status, CodesMapToHttpOnce) {
  EXPECT_EQ(HttpStatusFor(Code::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(Code::kPayloadTooLarge), 413);
  EXPECT_EQ(HttpStatusFor(Code::kUnavailable), 502);
  EXPECT_EQ(HttpStatusFor(Code::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusFor(Code::kPaymentRequired), 402);
  Status s = InvalidArgument("bad");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "invalid_argument: bad");
}

Result<int> Half(int v) {
  if (v % 2) return InvalidArgument("odd");
  return v / 2;
}
Result<int> Quarter(int v) {
  ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}

TEST(Result, PropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(Duration, ParsesUnitsAndRejectsBareNumbers) {
  EXPECT_EQ(ParseDuration("250ms")->count(), 250);
  EXPECT_EQ(ParseDuration("10s")->count(), 10'000);
  EXPECT_EQ(ParseDuration("1m30s")->count(), 90'000);
  EXPECT_EQ(ParseDuration("2h")->count(), 7'200'000);
  EXPECT_FALSE(ParseDuration("10").ok());
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
  EXPECT_FALSE(ParseDuration("10x").ok());
  EXPECT_FALSE(ParseDuration("99999999999999999999s").ok());
}

TEST(Glob, Matches) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("gpt-*", "gpt-4o"));
  EXPECT_FALSE(GlobMatch("gpt-*", "claude"));
  EXPECT_TRUE(GlobMatch("claude-?-*", "claude-3-opus"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatch(std::string(50, '*') + "x", std::string(10000, 'a') + "x"));
}

TEST(Utf8, ValidatesStrictly) {
  EXPECT_TRUE(IsValidUtf8("hello"));
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(Strings, CaseInsensitive) {
  EXPECT_TRUE(EqualsIgnoreCase("Content-Type", "content-type"));
  EXPECT_FALSE(EqualsIgnoreCase("Content-Type", "content-typ"));
  EXPECT_EQ(TrimWhitespace("  a b \r\n"), "a b");
}

TEST(Time, FormatsRfc3339) {
  WallTime t = std::chrono::system_clock::from_time_t(0) + std::chrono::microseconds(1500);
  EXPECT_EQ(FormatRfc3339(t), "1970-01-01T00:00:00.001500Z");
}

}  // namespace
}  // namespace aigis

namespace aigis {
namespace {

TEST(ParseUrlEncoded, DecodesPairsInOrderAndBoundsThem) {
  auto p = ParseUrlEncoded("a=1&&b=x+y%21&flag&c=", 8);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::vector<std::pair<std::string, std::string>> want = {{"a", "1"}, {"b", "x y!"}, {"flag", ""}, {"c", ""}};
  EXPECT_EQ(*p, want);
  EXPECT_FALSE(ParseUrlEncoded("a=%zz", 8).ok());
  EXPECT_FALSE(ParseUrlEncoded("a=%4", 8).ok());
  EXPECT_TRUE(ParseUrlEncoded("a=1&b=2", 2).ok());
  auto over = ParseUrlEncoded("a=1&b=2&c=3", 2);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(ParseUrlEncoded("", 0)->empty());
}

}  // namespace
}  // namespace aigis

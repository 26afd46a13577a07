// Canonical records and signed-note checkpoints.
#include <gtest/gtest.h>

#include "audit/audit.h"
#include "crypto/crypto.h"

namespace aigis::audit {
namespace {

TEST(Canonicalize, SortsMembersAndDropsWhitespace) {
  auto c = Canonicalize(R"( { "b" : [ 3, {"z":1, "a": null} ], "a": true, "c": "x" } )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, R"({"a":true,"b":[3,{"a":null,"z":1}],"c":"x"})");
  // Idempotent.
  EXPECT_EQ(*Canonicalize(*c), *c);
}

TEST(Canonicalize, EscapesStringsAsJcs) {
  auto c = Canonicalize("{\"s\":\"q\\\" b\\\\ \\/ \\u0001 \\u001f \\b\\f\\n\\r\\t \\u00e9 \\u20ac \\ud83d\\ude00 \\u007f\"}");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, "{\"s\":\"q\\\" b\\\\ / \\u0001 \\u001f \\b\\f\\n\\r\\t \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \x7F\"}");
}

TEST(CanonicalObject, WritesWhatCanonicalizeWouldAndKeepsTheLastOfANameGivenTwice) {
  const std::string text = "q\" b\\ / \x01 \x1f \b\f\n\r\t \xC3\xA9 \xF0\x9F\x98\x80 \x7F";
  CanonicalObject inner;
  inner.Str("z", "last").Int("a", -9007199254740991).Str("z", "replaced").Bool("m", false);
  CanonicalArray list;
  list.Str(text).Raw(inner.Finish()).Raw("[]");
  CanonicalObject o;
  o.Str("s", text).Raw("list", list.Finish()).Int("b", 7).Strs("e", {}).Strs("a", {"x", "y"}).Bool("t", true);
  o.Int("b", 8).Str("", "empty name");
  std::string got = o.Finish();
  EXPECT_TRUE(IsCanonical(got)) << got;
  std::string unsorted = "{\"s\":\"q\\\" b\\\\ / \\u0001 \\u001f \\b\\f\\n\\r\\t \xC3\xA9 \xF0\x9F\x98\x80 \x7F\","
                         "\"list\":[\"q\\\" b\\\\ / \\u0001 \\u001f \\b\\f\\n\\r\\t \xC3\xA9 \xF0\x9F\x98\x80 \x7F\","
                         "{\"z\":\"replaced\",\"a\":-9007199254740991,\"m\":false},[]],"
                         "\"e\":[],\"a\":[\"x\",\"y\"],\"t\":true,\"b\":8,\"\":\"empty name\"}";
  auto want = Canonicalize(unsorted);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  EXPECT_EQ(got, *want);
  // Finish starts over.
  EXPECT_EQ(o.Finish(), "{}");
  EXPECT_EQ(CanonicalArray().Finish(), "[]");
}

TEST(Canonicalize, OrdersNamesByUtf16CodeUnits) {
  // As in RFC 8785 §3.2.3: U+FB33 sorts after U+1F600 (a surrogate pair
  // starting 0xD83D) in UTF-16, though not in UTF-8 or by code point.
  auto c = Canonicalize("{\"\\ufb33\":1,\"\\ud83d\\ude00\":2,\"\\r\":3,\"1\":4,\"\\u20ac\":5}");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, "{\"\\r\":3,\"1\":4,\"\xE2\x82\xAC\":5,\"\xF0\x9F\x98\x80\":2,\"\xEF\xAC\xB3\":1}");
}

TEST(Canonicalize, RefusesWhatIsNotCanonicalisable) {
  EXPECT_FALSE(Canonicalize(R"({"a":1,"a":2})").ok());           // duplicate
  EXPECT_FALSE(Canonicalize(R"({"a":{"b":1,"b":1}})").ok());     // nested duplicate
  EXPECT_FALSE(Canonicalize(R"({"a":1.5})").ok());               // not an integer
  EXPECT_FALSE(Canonicalize(R"({"a":1e3})").ok());
  EXPECT_FALSE(Canonicalize(R"({"a":9007199254740992})").ok());  // 2^53
  EXPECT_TRUE(Canonicalize(R"({"a":9007199254740991,"b":-9007199254740991})").ok());
  EXPECT_FALSE(Canonicalize("{\"a\":\"\xFF\"}").ok());           // invalid UTF-8
  EXPECT_FALSE(Canonicalize(R"({"a":1} x)").ok());
  EXPECT_FALSE(Canonicalize(R"({"a":1)").ok());
  EXPECT_FALSE(Canonicalize("").ok());
}

TEST(Canonicalize, RecognisesCanonicalTextCheaply) {
  // What Canonicalize writes is recognised as canonical (ASCII names).
  for (const char* in : {R"({"b":1,"a":{"y":[1,2,{"k":null}],"x":"\u0001\n\"q\"\\"}})", R"([])", R"({})", R"("\u00e9")",
                         R"({"n":-9007199254740991,"m":9007199254740991,"z":0})", R"([true,false,null,"é😀"])"}) {
    auto c = Canonicalize(in);
    ASSERT_TRUE(c.ok()) << in;
    EXPECT_TRUE(IsCanonical(*c)) << *c;
    EXPECT_EQ(*Canonicalize(*c), *c);
  }
  // And nothing else is.
  for (const char* in : {R"({"a":1, "b":2})", R"({"b":1,"a":2})", R"({"a":1,"a":1})", R"(["\/"])", R"(["\u0041"])",
                         R"(["\u001F"])", R"(["\u000a"])", R"([-0])", R"([1.0])", R"([01])", R"([9007199254740992])",
                         R"([10000000000000000])", "[\"\xC0\xAF\"]", "[\"\xED\xA0\x80\"]", "[\"\xFF\"]",
                         "[\"a\tb\"]", R"({"a":1)", R"({"a":1}x)", R"( {})", R"([tru])", ""}) {
    EXPECT_FALSE(IsCanonical(in)) << in;
  }
  // Non-ASCII member names: not recognised here, but canonicalized right.
  EXPECT_FALSE(IsCanonical("{\"\xC3\xA9\":1}"));
  EXPECT_EQ(*Canonicalize("{\"\xC3\xA9\":1}"), "{\"\xC3\xA9\":1}");
}

// The example of the signed-note format's reference implementation
// (golang.org/x/mod/sumdb/note): key, key id and signature byte for byte.
constexpr const char* kPeterVkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr const char* kPeterSeed = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";  // 0x01 || seed
constexpr const char* kText =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
constexpr const char* kSig =
    "\xE2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

std::string PemFromSeed(std::string_view seed) {
  // PKCS#8 for Ed25519 (RFC 8410): a fixed prefix, then the 32-byte seed.
  std::string der = crypto::Base64Decode("MC4CAQAwBQYDK2VwBCIEIA==").value().substr(0, 16) + std::string(seed);
  return "-----BEGIN PRIVATE KEY-----\n" + crypto::Base64Encode(der) + "\n-----END PRIVATE KEY-----\n";
}

TEST(Note, MatchesTheReferenceExample) {
  auto vkey = ParseVerifierKey(kPeterVkey);
  ASSERT_TRUE(vkey.ok()) << vkey.status().ToString();
  EXPECT_EQ(vkey->name, "PeterNeumann");
  EXPECT_EQ(vkey->id, 0xc74f20a3u);
  std::string note = std::string(kText) + "\n" + kSig;
  EXPECT_TRUE(VerifyNote(note, {*vkey}).ok());

  auto seed = crypto::Base64Decode(kPeterSeed);
  ASSERT_TRUE(seed.ok());
  auto signer = Signer::FromPem("PeterNeumann", PemFromSeed(seed->substr(1)));
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  EXPECT_EQ(signer->verifier().text, kPeterVkey);
  auto signed_note = signer->Sign(kText);
  ASSERT_TRUE(signed_note.ok());
  EXPECT_EQ(*signed_note, note);
}

TEST(Note, RefusesTamperingAndUnknownKeys) {
  auto vkey = ParseVerifierKey(kPeterVkey).value();
  std::string note = std::string(kText) + "\n" + kSig;
  std::string changed = note;
  changed[3] = 'X';
  EXPECT_FALSE(VerifyNote(changed, {vkey}).ok());
  auto other = Signer::Generate("someone.example/log").value();
  EXPECT_FALSE(VerifyNote(note, {other.verifier()}).ok());  // no known signer
  // A second signature by an unknown key is ignored; a bad one by a known key is not.
  std::string cosigned = note + other.Sign(kText).value().substr(std::string(kText).size() + 1);
  EXPECT_TRUE(VerifyNote(cosigned, {vkey}).ok());
  std::string forged = std::string(kText) + "\n" + "\xE2\x80\x94 PeterNeumann " +
                       crypto::Base64Encode(std::string("\xc7\x4f\x20\xa3", 4) + std::string(64, 'x')) + "\n";
  EXPECT_FALSE(VerifyNote(forged, {vkey}).ok());
  EXPECT_FALSE(VerifyNote(kText, {vkey}).ok());  // no signature at all
  EXPECT_FALSE(ParseVerifierKey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").ok());
  EXPECT_FALSE(ParseVerifierKey("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").ok());
  EXPECT_FALSE(ParseVerifierKey("PeterNeumann+c74f20a3").ok());
}

TEST(Note, CheckpointsParseAndRefuseBadBodies) {
  auto signer = Signer::Generate("example.com/log").value();
  std::string root = crypto::Sha256("x");
  auto note = signer.Sign("example.com/log/default\n42\n" + crypto::Base64Encode(root) + "\n");
  ASSERT_TRUE(note.ok());
  auto cp = ParseCheckpoint(*note);
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  EXPECT_EQ(cp->origin, "example.com/log/default");
  EXPECT_EQ(cp->size, 42u);
  EXPECT_EQ(cp->root, root);
  EXPECT_TRUE(VerifyNote(*note, {signer.verifier()}).ok());
  std::string r64 = crypto::Base64Encode(root);
  for (const std::string& body : std::vector<std::string>{"o\n042\n" + r64 + "\n", "o\n-1\n" + r64 + "\n",
                                                          "o\n1\n" + crypto::Base64Encode("short") + "\n", "o\n1\n",
                                                          "\n1\n" + r64 + "\n"}) {
    auto n = signer.Sign(body);
    if (n.ok()) EXPECT_FALSE(ParseCheckpoint(*n).ok()) << body;
  }
  EXPECT_FALSE(signer.Sign("no final newline").ok());
}

}  // namespace
}  // namespace aigis::audit

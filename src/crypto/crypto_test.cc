#include "crypto/crypto.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace aigis::crypto {
namespace {

constexpr Alg kAllAlgs[] = {Alg::kEdDSA, Alg::kES256, Alg::kES384, Alg::kES512, Alg::kRS256,
                            Alg::kRS384, Alg::kRS512, Alg::kPS256, Alg::kPS384, Alg::kPS512,
                            Alg::kHS256, Alg::kHS384, Alg::kHS512};

std::string B64(std::string_view s) { return Base64UrlEncode(s); }

// RSA generation is slow in a sanitizer build; generate each key once.
const Key& TestKey(Alg alg) {
  static std::map<Alg, Key>* keys = new std::map<Alg, Key>();
  auto it = keys->find(alg);
  if (it == keys->end()) {
    Result<Key> key = Key::Generate(alg);
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    it = keys->emplace(alg, key.ok() ? *key : Key()).first;
  }
  return it->second;
}

std::string Token(std::string_view header_json, std::string_view payload, std::string_view signature) {
  return B64(header_json) + "." + B64(payload) + "." + B64(signature);
}

// ---------------------------------------------------------------- bytes ----

TEST(Base64Url, KnownEncodings) {
  // RFC 4648 §10, url alphabet, no padding.
  EXPECT_EQ(B64(""), "");
  EXPECT_EQ(B64("f"), "Zg");
  EXPECT_EQ(B64("fo"), "Zm8");
  EXPECT_EQ(B64("foo"), "Zm9v");
  EXPECT_EQ(B64("foob"), "Zm9vYg");
  EXPECT_EQ(B64("fooba"), "Zm9vYmE");
  EXPECT_EQ(B64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(B64("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(*Base64UrlDecode("-_-_"), "\xfb\xff\xbf");
  EXPECT_EQ(*Base64UrlDecode("Zm9vYmE"), "fooba");
  EXPECT_EQ(*Base64UrlDecode(""), "");
}

TEST(Base64Url, RejectsNonCanonicalAndForeignInput) {
  for (const char* bad : {"Zg==", "Zg=", "Zm8=", "=", "Z",   "Zm9vY",  // padding, 1 mod 4
                          "Zh", "Zm9", "Zm9vYh", "Zm9vYmF",              // non-zero trailing bits
                          "+/+/", "Zm9v+w", "Zm9/", "Zm 9v", "Zm9v\n", " Zm9v", "Zm9v.", "Zm9\xc3\xa9"}) {
    EXPECT_FALSE(Base64UrlDecode(std::string_view(bad, std::char_traits<char>::length(bad))).ok()) << bad;
  }
  EXPECT_FALSE(Base64UrlDecode(std::string_view("Zm\0v", 4)).ok());
}

TEST(Base64Url, RoundTripsEveryLength) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 100; ++n) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    std::string text = B64(bytes);
    EXPECT_EQ(text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    EXPECT_NE(text.size() % 4, 1u);
    Result<std::string> back = Base64UrlDecode(text);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, bytes);
  }
}

TEST(Base64, StandardAlphabetRequiresPadding) {
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("\xfb\xff\xbf"), "+/+/");
  EXPECT_EQ(*Base64Decode("Zg=="), "f");
  EXPECT_EQ(*Base64Decode("Zm8="), "fo");
  EXPECT_EQ(*Base64Decode("+/+/"), "\xfb\xff\xbf");
  EXPECT_EQ(*Base64Decode(""), "");
  for (const char* bad : {"Zg", "Zg=", "Zm8", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "=Zg=", "-_-_", "Zm 8="}) {
    EXPECT_FALSE(Base64Decode(bad).ok()) << bad;
  }
}

TEST(Bytes, HashesAndHex) {
  EXPECT_EQ(HexEncode(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // The per-thread context must not keep the previous key: an empty key
  // right after a long one (RFC 4231 test case 6, hashed first).
  EXPECT_EQ(HexEncode(HmacSha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(HexEncode(HmacSha256("", "")), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  Sha256Hasher h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(HexEncode(h.Final()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  h.Update("abc");  // starts over after Final
  EXPECT_EQ(HexEncode(h.Final()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(std::string_view("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(RandomBytes(0), "");
  EXPECT_EQ(RandomBytes(48).size(), 48u);
  EXPECT_NE(RandomBytes(32), RandomBytes(32));
  EXPECT_TRUE(ConstantTimeEqual("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEqual("", ""));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abcd"));
}

// -------------------------------------------------------------- sealing ----

TEST(Seal, RoundTripAndTamperDetection) {
  std::string key = RandomBytes(32);
  std::string plaintext = "signing key material";
  Result<std::string> sealed = Seal(key, plaintext, "tenant=a");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), 12 + plaintext.size() + 16);
  EXPECT_EQ(*Open(key, *sealed, "tenant=a"), plaintext);
  // A fresh nonce each time.
  EXPECT_NE(*Seal(key, plaintext, "tenant=a"), *sealed);

  // Flipping any single byte (nonce, ciphertext or tag) is detected.
  for (size_t i = 0; i < sealed->size(); ++i) {
    std::string altered = *sealed;
    altered[i] ^= 0x01;
    Result<std::string> opened = Open(key, altered, "tenant=a");
    EXPECT_FALSE(opened.ok()) << "byte " << i;
    EXPECT_EQ(opened.status().code(), Code::kInvalidArgument);
  }
  EXPECT_FALSE(Open(key, *sealed, "tenant=b").ok());
  EXPECT_FALSE(Open(key, *sealed, "").ok());
  EXPECT_FALSE(Open(RandomBytes(32), *sealed, "tenant=a").ok());
  EXPECT_FALSE(Open(key, sealed->substr(0, sealed->size() - 1), "tenant=a").ok());
  EXPECT_FALSE(Open(key, sealed->substr(0, 27), "tenant=a").ok());
  EXPECT_FALSE(Seal("short", plaintext, "").ok());
  EXPECT_FALSE(Open("short", *sealed, "").ok());

  Result<std::string> empty = Seal(key, "", "");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), 28u);
  EXPECT_EQ(*Open(key, *empty, ""), "");
}

// ----------------------------------------------------------------- keys ----

TEST(Keys, AlgNames) {
  for (Alg alg : kAllAlgs) EXPECT_EQ(ParseAlg(AlgName(alg)), alg);
  for (const char* name : {"none", "None", "NONE", "", "hs256", "ES521", "RSA-OAEP", "A256GCM", "Ed25519"}) {
    EXPECT_FALSE(ParseAlg(name).has_value()) << name;
  }
}

TEST(Keys, GenerateSignVerifyEveryAlg) {
  const std::string data = "eyJhbGciOiJ4In0.eyJzdWIiOiJ0ZXN0In0";
  for (Alg alg : kAllAlgs) {
    SCOPED_TRACE(std::string(AlgName(alg)));
    const Key& key = TestKey(alg);
    ASSERT_FALSE(key.empty());
    EXPECT_TRUE(key.has_private());
    EXPECT_EQ(key.alg(), alg);
    EXPECT_TRUE(key.Allows(alg));
    Result<std::string> sig = key.Sign(alg, data);
    ASSERT_TRUE(sig.ok()) << sig.status().ToString();
    EXPECT_TRUE(key.Verify(alg, data, *sig));
    EXPECT_FALSE(key.Verify(alg, data + "x", *sig));
    std::string altered = *sig;
    altered[altered.size() / 2] ^= 0x20;
    EXPECT_FALSE(key.Verify(alg, data, altered));
    EXPECT_FALSE(key.Verify(alg, data, sig->substr(1)));
    EXPECT_FALSE(key.Verify(alg, data, *sig + '\0'));
    EXPECT_FALSE(key.Verify(alg, data, ""));
    // The key is pinned to its algorithm: no other alg signs or verifies.
    for (Alg other : kAllAlgs) {
      if (other == alg) continue;
      EXPECT_FALSE(key.Allows(other)) << AlgName(other);
      EXPECT_FALSE(key.Verify(other, data, *sig)) << AlgName(other);
      EXPECT_FALSE(key.Sign(other, data).ok()) << AlgName(other);
    }
    // Signature sizes: ES* r||s, RSA modulus, HMAC hash, Ed25519 64.
    size_t expected_size = 0;
    switch (alg) {
      case Alg::kEdDSA: expected_size = 64; break;
      case Alg::kES256: expected_size = 64; break;
      case Alg::kES384: expected_size = 96; break;
      case Alg::kES512: expected_size = 132; break;
      case Alg::kHS256: expected_size = 32; break;
      case Alg::kHS384: expected_size = 48; break;
      case Alg::kHS512: expected_size = 64; break;
      default: expected_size = 256; break;
    }
    EXPECT_EQ(sig->size(), expected_size);

    // The JWS path end to end.
    Result<std::string> token = SignCompact(key.WithKid("k1"), alg, "JWT", "{\"sub\":\"alice\"}");
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    Result<Jws> jws = ParseCompact(*token);
    ASSERT_TRUE(jws.ok()) << jws.status().ToString();
    EXPECT_EQ(jws->alg, alg);
    EXPECT_EQ(jws->kid, "k1");
    EXPECT_EQ(jws->typ, "JWT");
    EXPECT_EQ(jws->payload, "{\"sub\":\"alice\"}");
    EXPECT_EQ(jws->header_json, "{\"alg\":\"" + std::string(AlgName(alg)) + "\",\"kid\":\"k1\",\"typ\":\"JWT\"}");
    EXPECT_TRUE(VerifyJws(*jws, key));
    EXPECT_FALSE(VerifyJws(*jws, Key()));
  }
}

TEST(Keys, PublicHalfVerifiesButCannotSign) {
  for (Alg alg : kAllAlgs) {
    if (alg == Alg::kHS256 || alg == Alg::kHS384 || alg == Alg::kHS512) continue;
    SCOPED_TRACE(std::string(AlgName(alg)));
    const Key& key = TestKey(alg);
    Result<std::string> jwk = key.PublicJwk();
    ASSERT_TRUE(jwk.ok());
    EXPECT_EQ(jwk->find("\"d\""), std::string::npos);
    Result<Key> pub = Key::FromJwk(*jwk);
    ASSERT_TRUE(pub.ok()) << pub.status().ToString() << " " << *jwk;
    EXPECT_FALSE(pub->has_private());
    EXPECT_EQ(pub->alg(), alg);
    EXPECT_EQ(*pub->Thumbprint(), *key.Thumbprint());
    std::string sig = *key.Sign(alg, "data");
    EXPECT_TRUE(pub->Verify(alg, "data", sig));
    EXPECT_TRUE(pub->Allows(alg));
    Result<std::string> forged = pub->Sign(alg, "data");
    EXPECT_FALSE(forged.ok());
    EXPECT_FALSE(pub->PrivatePem().ok());
  }
  // HMAC keys have no public half.
  EXPECT_FALSE(TestKey(Alg::kHS256).PublicJwk().ok());
  EXPECT_TRUE(TestKey(Alg::kHS256).Thumbprint().ok());
  EXPECT_FALSE(TestKey(Alg::kHS256).PrivatePem().ok());
}

TEST(Keys, PemRoundTrip) {
  for (Alg alg : {Alg::kEdDSA, Alg::kES256, Alg::kES384, Alg::kES512, Alg::kRS256, Alg::kPS256}) {
    SCOPED_TRACE(std::string(AlgName(alg)));
    const Key& key = TestKey(alg);
    Result<std::string> private_pem = key.PrivatePem();
    ASSERT_TRUE(private_pem.ok());
    EXPECT_EQ(private_pem->rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);  // PKCS#8
    Result<std::string> public_pem = key.PublicPem();
    ASSERT_TRUE(public_pem.ok());
    EXPECT_EQ(public_pem->rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);

    Result<Key> priv = Key::FromPem(*private_pem);
    ASSERT_TRUE(priv.ok()) << priv.status().ToString();
    EXPECT_TRUE(priv->has_private());
    EXPECT_EQ(priv->type(), key.type());
    EXPECT_FALSE(priv->alg().has_value());  // PEM carries no JOSE metadata
    EXPECT_EQ(*priv->Thumbprint(), *key.Thumbprint());
    Result<Key> pub = Key::FromPem(*public_pem);
    ASSERT_TRUE(pub.ok()) << pub.status().ToString();
    EXPECT_FALSE(pub->has_private());
    EXPECT_EQ(*pub->PublicPem(), *public_pem);

    Result<std::string> sig = priv->Sign(alg, "pem data");
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(key.Verify(alg, "pem data", *sig));
    EXPECT_TRUE(pub->Verify(alg, "pem data", *sig));
    EXPECT_FALSE(pub->Sign(alg, "pem data").ok());
  }
  EXPECT_FALSE(Key::FromPem("").ok());
  EXPECT_FALSE(Key::FromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").ok());
  EXPECT_FALSE(Key::FromPem(std::string(70000, 'A')).ok());
}

TEST(Keys, JwkRoundTripKeepsMetadata) {
  const std::string jwk =
      R"({"kty":"EC","crv":"P-256","kid":"my-key","alg":"ES256","use":"sig",)"
      R"("x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})";
  Result<Key> key = Key::FromJwk(jwk);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->kid(), "my-key");
  EXPECT_EQ(key->alg(), Alg::kES256);
  EXPECT_EQ(key->type(), KeyType::kEc);
  EXPECT_EQ(*key->PublicJwk(),
            R"({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
            R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"my-key","alg":"ES256","use":"sig"})");
  Key renamed = key->WithKid("other");
  EXPECT_EQ(renamed.kid(), "other");
  EXPECT_EQ(key->kid(), "my-key");
  EXPECT_EQ(*renamed.Thumbprint(), *key->Thumbprint());

  // JwksJson publishes public halves; ParseJwks reads them back.
  std::vector<Key> keys = {*key, TestKey(Alg::kEdDSA).WithKid("ed"), TestKey(Alg::kRS256).WithKid("rsa"),
                           TestKey(Alg::kHS256)};
  std::string jwks = JwksJson(keys);
  EXPECT_EQ(jwks.find("\"d\""), std::string::npos);
  EXPECT_EQ(jwks.find("\"k\""), std::string::npos);
  Result<std::vector<Key>> parsed = ParseJwks(jwks);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[1].kid(), "ed");
  EXPECT_EQ(*(*parsed)[2].Thumbprint(), *TestKey(Alg::kRS256).Thumbprint());
}

Result<Key> Jwk(std::string_view json) { return Key::FromJwk(json); }

TEST(Keys, JwkValidation) {
  const std::string x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
  const std::string y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
  const std::string d = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
  auto ec = [&](std::string extra) {
    return R"({"kty":"EC","crv":"P-256","x":")" + x + R"(","y":")" + y + "\"" + extra + "}";
  };
  EXPECT_TRUE(Jwk(ec("")).ok());
  EXPECT_TRUE(Jwk(ec(R"(,"d":")" + d + "\"")).ok());
  // Off the curve (last byte of y changed).
  std::string bad_y = y;
  bad_y[bad_y.size() - 2] = bad_y[bad_y.size() - 2] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(Jwk(R"({"kty":"EC","crv":"P-256","x":")" + x + R"(","y":")" + bad_y + "\"}").ok());
  // Coordinates of another curve's length; unknown curve; missing y.
  EXPECT_FALSE(Jwk(R"({"kty":"EC","crv":"P-384","x":")" + x + R"(","y":")" + y + "\"}").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"EC","crv":"secp256k1","x":")" + x + R"(","y":")" + y + "\"}").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"EC","crv":"P-256","x":")" + x + "\"}").ok());
  // A private scalar that does not belong to the public point.
  std::string other_d = d;
  other_d[5] = other_d[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(Jwk(ec(R"(,"d":")" + other_d + "\"")).ok());
  // alg must be known and fit the key.
  EXPECT_FALSE(Jwk(ec(R"(,"alg":"ES384")")).ok());
  EXPECT_FALSE(Jwk(ec(R"(,"alg":"ES521")")).ok());
  EXPECT_FALSE(Jwk(ec(R"(,"alg":"none")")).ok());
  EXPECT_FALSE(Jwk(ec(R"(,"alg":7)")).ok());
  // use / key_ops.
  Result<Key> enc = Jwk(ec(R"(,"use":"enc")"));
  ASSERT_TRUE(enc.ok());
  EXPECT_FALSE(enc->Allows(Alg::kES256));
  Result<Key> sign_only = Jwk(ec(R"(,"d":")" + d + R"(","key_ops":["sign"])"));
  ASSERT_TRUE(sign_only.ok());
  Result<std::string> sig = sign_only->Sign(Alg::kES256, "m");
  ASSERT_TRUE(sig.ok());
  EXPECT_FALSE(sign_only->Verify(Alg::kES256, "m", *sig));
  Result<Key> verify_only = Jwk(ec(R"(,"d":")" + d + R"(","key_ops":["verify"])"));
  ASSERT_TRUE(verify_only.ok());
  EXPECT_FALSE(verify_only->Sign(Alg::kES256, "m").ok());
  EXPECT_TRUE(verify_only->Verify(Alg::kES256, "m", *sig));
  EXPECT_FALSE(Jwk(ec(R"(,"key_ops":["verify","verify"])")).ok());
  EXPECT_FALSE(Jwk(ec(R"(,"key_ops":"verify")")).ok());
  // Not JSON objects, duplicates, unknown kty.
  EXPECT_FALSE(Jwk("").ok());
  EXPECT_FALSE(Jwk("[]").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"EC","kty":"EC","crv":"P-256"})").ok());
  EXPECT_FALSE(Jwk(ec(R"(,"x":")" + x + "\"")).ok());  // duplicate "x"
  EXPECT_FALSE(Jwk(R"({"kty":"XYZ"})").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"oct"})").ok());
}

TEST(Keys, HmacKeyLength) {
  auto oct = [](size_t n, std::string extra = "") {
    return R"({"kty":"oct","k":")" + B64(std::string(n, 'k')) + "\"" + extra + "}";
  };
  EXPECT_FALSE(Jwk(oct(0)).ok());
  EXPECT_FALSE(Jwk(oct(31)).ok());
  Result<Key> k32 = Jwk(oct(32));
  ASSERT_TRUE(k32.ok());
  EXPECT_TRUE(k32->Allows(Alg::kHS256));
  EXPECT_FALSE(k32->Allows(Alg::kHS384));  // RFC 7518 §3.2: key >= hash size
  EXPECT_FALSE(k32->Sign(Alg::kHS512, "m").ok());
  EXPECT_FALSE(Jwk(oct(47, R"(,"alg":"HS384")")).ok());
  Result<Key> k64 = Jwk(oct(64));
  ASSERT_TRUE(k64.ok());
  EXPECT_TRUE(k64->Allows(Alg::kHS256) && k64->Allows(Alg::kHS384) && k64->Allows(Alg::kHS512));
  EXPECT_FALSE(k64->Allows(Alg::kRS256));
  EXPECT_FALSE(k64->Allows(Alg::kEdDSA));
}

TEST(Keys, RsaAndOkpValidation) {
  // A 1024-bit RSA key (Wycheproof's) is refused.
  EXPECT_FALSE(Jwk(R"({"kty":"RSA","e":"AQAB","n":"rJBIp6T1YK-RtPyvYqFFlcucqewSAA_IReSFchE8qyiQrbARqRlXWkB2DR8j_pJQnIpYELbQWZC5Cd0PTGAU8rMbar2AW6zpmBbi7aQf17lUBdt8XI9M9rq7FPVQ1dDdUXm1SVH_9qqWhvMPR422SbfHBEzCAtzK0ANDRo6qz78"})")
                   .ok());
  // Exponent 1 and even exponents are refused on an otherwise fine modulus.
  Result<std::string> n_jwk = TestKey(Alg::kRS256).PublicJwk();
  ASSERT_TRUE(n_jwk.ok());
  std::string jwk = *n_jwk;
  size_t e_pos = jwk.find("\"e\":\"AQAB\"");
  ASSERT_NE(e_pos, std::string::npos);
  for (const char* e : {"AQ", "Ag", "AQAA"}) {
    std::string altered = jwk;
    altered.replace(e_pos, 10, std::string("\"e\":\"") + e + "\"");
    EXPECT_FALSE(Jwk(altered).ok()) << e;
  }
  // Ed25519: only "Ed25519", 32-byte x, and d must derive x.
  const std::string ed_x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
  const std::string ed_d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
  EXPECT_TRUE(Jwk(R"({"kty":"OKP","crv":"Ed25519","x":")" + ed_x + "\"}").ok());
  EXPECT_TRUE(Jwk(R"({"kty":"OKP","crv":"Ed25519","x":")" + ed_x + R"(","d":")" + ed_d + "\"}").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"OKP","crv":"Ed25519","x":")" + B64(std::string(32, 'x')) + R"(","d":")" + ed_d + "\"}").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"OKP","crv":"Ed448","x":")" + B64(std::string(57, 'x')) + "\"}").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"OKP","crv":"X25519","x":")" + ed_x + "\"}").ok());
  EXPECT_FALSE(Jwk(R"({"kty":"OKP","crv":"Ed25519","x":")" + B64(std::string(31, 'x')) + "\"}").ok());
}

TEST(Keys, EcdsaSignatureMustBeFixedLengthRS) {
  const Key& key = TestKey(Alg::kES256);
  Result<std::string> sig = key.Sign(Alg::kES256, "m");
  ASSERT_TRUE(sig.ok());
  ASSERT_EQ(sig->size(), 64u);
  // The same (r, s) as DER is not a JWS signature.
  std::string der = "\x30\x44\x02\x20" + sig->substr(0, 32) + "\x02\x20" + sig->substr(32);
  EXPECT_FALSE(key.Verify(Alg::kES256, "m", der));
  EXPECT_FALSE(key.Verify(Alg::kES256, "m", std::string(64, '\0')));
  EXPECT_FALSE(key.Verify(Alg::kES256, "m", std::string(1, '\0') + *sig));
}

TEST(Keys, EmptyKeyDoesNothing) {
  Key key;
  EXPECT_TRUE(key.empty());
  EXPECT_FALSE(key.has_private());
  EXPECT_EQ(key.kid(), "");
  for (Alg alg : kAllAlgs) {
    EXPECT_FALSE(key.Allows(alg));
    EXPECT_FALSE(key.Sign(alg, "m").ok());
    EXPECT_FALSE(key.Verify(alg, "m", "sig"));
  }
  EXPECT_FALSE(key.PublicJwk().ok());
  EXPECT_FALSE(key.Thumbprint().ok());
}

// -------------------------------------------------------- alg confusion ----

// An attacker who knows a public key signs an HS256 token using the key's
// text (PEM or JWK, the "stringly typed" verifier bug) as the HMAC secret.
TEST(AlgConfusion, HmacWithPublicKeyBytesNeverVerifies) {
  for (Alg alg : {Alg::kRS256, Alg::kES256, Alg::kEdDSA}) {
    SCOPED_TRACE(std::string(AlgName(alg)));
    Result<Key> pub = Key::FromPem(*TestKey(alg).PublicPem());
    ASSERT_TRUE(pub.ok());
    Result<Key> pub_jwk = Key::FromJwk(*TestKey(alg).PublicJwk());
    ASSERT_TRUE(pub_jwk.ok());
    for (const std::string& secret : {*pub->PublicPem(), *pub_jwk->PublicJwk()}) {
      for (Alg hs : {Alg::kHS256, Alg::kHS384, Alg::kHS512}) {
        std::string header = "{\"alg\":\"" + std::string(AlgName(hs)) + "\",\"typ\":\"JWT\"}";
        std::string input = B64(header) + "." + B64("{\"sub\":\"admin\"}");
        // Build the HMAC with an oct key holding the public key's text.
        Result<Key> hmac_key = Key::FromJwk(R"({"kty":"oct","k":")" + B64(secret) + "\"}");
        ASSERT_TRUE(hmac_key.ok()) << hmac_key.status().ToString();
        std::string token = input + "." + B64(*hmac_key->Sign(hs, input));
        Result<Jws> jws = ParseCompact(token);
        ASSERT_TRUE(jws.ok());
        EXPECT_TRUE(VerifyJws(*jws, *hmac_key));  // the forgery is well-formed...
        EXPECT_FALSE(VerifyJws(*jws, *pub));      // ...and useless against the real key
        EXPECT_FALSE(VerifyJws(*jws, *pub_jwk));
        EXPECT_FALSE(VerifyJws(*jws, TestKey(alg)));
      }
    }
  }
}

// --------------------------------------------------------- ParseCompact ----

TEST(ParseCompact, RejectsNone) {
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    std::string header = std::string("{\"alg\":\"") + alg + "\"}";
    EXPECT_FALSE(ParseCompact(B64(header) + "." + B64("{}") + ".").ok()) << alg;
    EXPECT_FALSE(ParseCompact(Token(header, "{}", "sig")).ok()) << alg;
  }
}

TEST(ParseCompact, HeaderRules) {
  const std::string sig = std::string(32, 's');
  EXPECT_TRUE(ParseCompact(Token(R"({"alg":"HS256"})", "p", sig)).ok());
  EXPECT_TRUE(ParseCompact(Token(R"( { "alg" : "HS256" , "x":{"y":[1,2,{"z":null}]}} )", "p", sig)).ok());
  const char* bad_headers[] = {
      R"({"alg":"HS256","alg":"none"})",          // duplicate member
      R"({"alg":"HS256","\u0061lg":"HS256"})",    // duplicate after unescaping
      R"({"alg":"HS256","x":{"a":1,"a":2}})",     // duplicate in a nested object
      R"(["alg","HS256"])",                       // not an object
      R"("HS256")",
      R"({"alg":256})",                           // alg not a string
      R"({"alg":null})",
      R"({"typ":"JWT"})",                         // no alg
      R"({"alg":"HS256","crit":["exp"],"exp":1})",  // unknown critical extension
      R"({"alg":"HS256","crit":[]})",
      R"({"alg":"HS256","b64":false,"crit":["b64"]})",  // RFC 7797 unencoded payload
      R"({"alg":"HS256","b64":"false"})",
      R"({"alg":"HS256","kid":7})",                // kid not a string
      R"({"alg":"HS256","typ":["JWT"]})",
      R"({"alg":"HS256"} )" "x",                   // trailing garbage
      R"({"alg":"HS256",})",                       // trailing comma
      "{\"alg\":\"HS256\"/*c*/}",                  // comment
      "{\"alg\":\"HS\xff\"}",                      // invalid UTF-8
      "",
  };
  for (const char* header : bad_headers) {
    EXPECT_FALSE(ParseCompact(Token(header, "p", sig)).ok()) << header;
  }
  EXPECT_TRUE(ParseCompact(Token(R"({"alg":"HS256","b64":true})", "p", sig)).ok());
  // Deep nesting is refused, not recursed into.
  std::string deep = R"({"alg":"HS256","x":)" + std::string(200, '[') + std::string(200, ']') + "}";
  EXPECT_FALSE(ParseCompact(Token(deep, "p", sig)).ok());
}

TEST(ParseCompact, Structure) {
  const std::string header = R"({"alg":"ES256","kid":"k","typ":"at+jwt"})";
  std::string token = Token(header, "", std::string(64, 's'));
  Result<Jws> jws = ParseCompact(token);  // an empty payload is allowed
  ASSERT_TRUE(jws.ok()) << jws.status().ToString();
  EXPECT_EQ(jws->payload, "");
  EXPECT_EQ(jws->kid, "k");
  EXPECT_EQ(jws->typ, "at+jwt");
  EXPECT_EQ(jws->signing_input, B64(header) + ".");
  EXPECT_EQ(jws->signature, std::string(64, 's'));

  EXPECT_FALSE(ParseCompact("").ok());
  EXPECT_FALSE(ParseCompact("..").ok());
  EXPECT_FALSE(ParseCompact(B64(header) + "." + B64("p")).ok());
  EXPECT_FALSE(ParseCompact(token + ".").ok());
  EXPECT_FALSE(ParseCompact(token + "." + B64("x")).ok());
  EXPECT_FALSE(ParseCompact("." + B64("p") + "." + B64("s")).ok());
  EXPECT_FALSE(ParseCompact(B64(header) + "." + B64("p") + ".").ok());  // no signature
  EXPECT_FALSE(ParseCompact(B64(header) + "=." + B64("p") + "." + B64("s")).ok());
  EXPECT_FALSE(ParseCompact(B64(header) + ".cA=." + B64("s")).ok());
  EXPECT_FALSE(ParseCompact(B64(header) + ".cB." + B64("s")).ok());  // non-canonical payload
  // Size limit before any decoding.
  std::string big = Token(header, std::string(kMaxJwsBytes, 'p'), "s");
  Result<Jws> too_big = ParseCompact(big);
  EXPECT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("too large"), std::string::npos);
}

TEST(Jwks, DocumentShape) {
  EXPECT_FALSE(ParseJwks("").ok());
  EXPECT_FALSE(ParseJwks("[]").ok());
  EXPECT_FALSE(ParseJwks(R"({"keys":{}})").ok());
  EXPECT_FALSE(ParseJwks(R"({"nokeys":[]})").ok());
  EXPECT_FALSE(ParseJwks(R"({"keys":[],"keys":[]})").ok());
  Result<std::vector<Key>> empty = ParseJwks(R"({"keys":[]})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  // Bad members are skipped, good ones kept.
  std::string good = *TestKey(Alg::kES256).WithKid("good").PublicJwk();
  Result<std::vector<Key>> mixed =
      ParseJwks(R"({"keys":[1,"x",{},{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"oct","k":"AAAA"},)" + good + "]}");
  ASSERT_TRUE(mixed.ok());
  ASSERT_EQ(mixed->size(), 1u);
  EXPECT_EQ((*mixed)[0].kid(), "good");
}

// --------------------------------------------------------------- hostile ----

// Thousands of random and mutated inputs: nothing crashes (ASan/UBSan watch
// the memory), and no mutation of a signed token ever verifies.
TEST(Hostile, MutatedTokensAndKeys) {
  std::mt19937 rng(20240611);
  const Key& key = TestKey(Alg::kES256);
  const std::string original = *SignCompact(key.WithKid("k"), Alg::kES256, "JWT", R"({"sub":"alice","n":1})");
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"\\:,[]\x00\xff";
  auto mutate = [&](std::string s) {
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < edits; ++i) {
      size_t pos = s.empty() ? 0 : rng() % s.size();
      switch (rng() % 5) {
        case 0: if (!s.empty()) s[pos] = alphabet[rng() % alphabet.size()]; break;
        case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: if (!s.empty()) s.erase(pos, 1 + rng() % 8); break;
        case 3: if (!s.empty()) s[pos] ^= static_cast<char>(1 << (rng() % 8)); break;
        case 4: s = s.substr(0, pos); break;
      }
    }
    return s;
  };

  int parsed = 0, verified = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string token = mutate(original);
    Result<Jws> jws = ParseCompact(token);
    if (!jws.ok()) continue;
    ++parsed;
    if (VerifyJws(*jws, key)) {
      ++verified;
      EXPECT_EQ(token, original);
    }
  }
  EXPECT_GT(parsed, 0);  // some mutations survive parsing (payload edits), none verify
  EXPECT_LE(verified, 5);

  // Headers built from random JSON-ish fragments.
  const std::vector<std::string> fragments = {"{", "}", "[", "]", "\"alg\"", ":", ",", "\"HS256\"", "\"none\"",
                                              "\"crit\"", "null", "true", "1e999", "-0", "\"\\u0000\"", "\"kid\""};
  for (int i = 0; i < 2000; ++i) {
    std::string header;
    int n = static_cast<int>(rng() % 12);
    for (int j = 0; j < n; ++j) header += fragments[rng() % fragments.size()];
    (void)ParseCompact(Token(header, "p", "s"));
  }
  // Random bytes.
  for (int i = 0; i < 1000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    EXPECT_FALSE(ParseCompact(junk).ok() && VerifyJws(*ParseCompact(junk), key));
    (void)Key::FromJwk(junk);
    (void)ParseJwks(junk);
    (void)Key::FromPem(junk);
  }
  // Mutated JWKs and JWK Sets: whatever imports must be self-consistent.
  const std::vector<std::string> jwks = {*TestKey(Alg::kES256).PublicJwk(), *TestKey(Alg::kEdDSA).PublicJwk(),
                                         *TestKey(Alg::kRS256).PublicJwk(),
                                         R"({"kty":"oct","k":")" + B64(std::string(32, 'k')) + R"(","alg":"HS256"})"};
  int imported = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string jwk = mutate(jwks[rng() % jwks.size()]);
    Result<Key> k = Key::FromJwk(jwk);
    if (k.ok()) {
      ++imported;
      EXPECT_TRUE(k->Thumbprint().ok());
    }
    (void)ParseJwks("{\"keys\":[" + jwk + "]}");
  }
  EXPECT_GT(imported, 0);
}

}  // namespace
}  // namespace aigis::crypto

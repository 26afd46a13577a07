#include "identity/identity.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <random>

#include <fmt/format.h>

#include "crypto/crypto.h"
#include "store/store.h"

namespace aigis::identity {
namespace {

namespace json = boost::json;
using std::chrono::seconds;

class FakeClock final : public Clock {
 public:
  WallTime Now() const override { return WallTime(seconds(now_.load())); }
  MonoTime Monotonic() const override { return MonoTime(seconds(now_.load())); }
  void Advance(int64_t s) { now_ += s; }
  void Set(int64_t s) { now_ = s; }
  int64_t now() const { return now_.load(); }

 private:
  std::atomic<int64_t> now_{1'800'000'000};
};

std::string MasterKey() { return crypto::Base64Encode(std::string(32, '\0') + "0123456789abcdefghijklmnop"); }

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string out;
  for (const auto& [k, v] : kv) {
    if (!out.empty()) out += '&';
    out += k + "=";
    for (unsigned char c : v) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
      else out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

json::object Claims(const std::string& token) {
  auto jws = crypto::ParseCompact(token);
  EXPECT_TRUE(jws.ok()) << jws.status().ToString();
  return json::parse(jws->payload).as_object();
}

// A part of a compact JWS replaced (0 header, 1 payload, 2 signature).
std::string Replace(const std::string& token, int part, const std::string& b64) {
  size_t d1 = token.find('.'), d2 = token.find('.', d1 + 1);
  std::string p[3] = {token.substr(0, d1), token.substr(d1 + 1, d2 - d1 - 1), token.substr(d2 + 1)};
  p[part] = b64;
  return p[0] + "." + p[1] + "." + p[2];
}

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::OpenSqlite({":memory:"});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    id_ = Open();
    auto a = id_->CreateAgent({"default", "", "billing bot", "alice", "", {"llm:chat", "tools:read"}, "{}", ""});
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    agent_ = *a;
    auto sec = id_->CreateClientSecret("default", agent_.id, std::nullopt);
    ASSERT_TRUE(sec.ok()) << sec.status().ToString();
    secret_ = *sec;
  }

  std::unique_ptr<Identity> Open(std::string audience = "aigis", IdentityOptions extra = {}) {
    IdentityOptions o = std::move(extra);
    o.issuer = "https://aigis.test";
    o.audience = audience;
    o.master_key = MasterKey();
    o.clock = &clock_;
    auto id = Identity::Open(std::move(o), *store_);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? std::move(*id) : nullptr;
  }

  OAuthResponse Post(Identity& id, const std::vector<std::pair<std::string, std::string>>& form,
                     std::string authorization = "") {
    return id.Token({"POST", std::move(authorization), "application/x-www-form-urlencoded", FormEncode(form)});
  }
  std::string Basic(const std::string& id, const std::string& secret) {
    return "Basic " + crypto::Base64Encode(id + ":" + secret);
  }
  std::string Issue(const std::string& scope = "") {
    std::vector<std::pair<std::string, std::string>> f = {{"grant_type", "client_credentials"}};
    if (!scope.empty()) f.emplace_back("scope", scope);
    auto r = Post(*id_, f, Basic(secret_.client_id, secret_.client_secret));
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(json::parse(r.body).at("access_token").as_string());
  }

  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Identity> id_;
  Agent agent_;
  IssuedSecret secret_;
};

TEST(MasterKey, RefusesMissingShortAndPlaceholderKeys) {
  EXPECT_FALSE(DecodeMasterKey("").ok());
  EXPECT_FALSE(DecodeMasterKey(crypto::Base64Encode(std::string(16, 'k'))).ok());        // short
  EXPECT_FALSE(DecodeMasterKey("change-me-change-me-change-me-change-me-00").ok());       // placeholder
  EXPECT_FALSE(DecodeMasterKey(crypto::Base64Encode(std::string(48, 'a'))).ok());        // no variety
  EXPECT_FALSE(DecodeMasterKey("not base64 at all !!!!!!!!!!!!!!!!!!!!!!!!!!").ok());
  auto ok = DecodeMasterKey(crypto::Base64Encode(crypto::RandomBytes(32)));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->size(), 32u);
}

TEST_F(IdentityTest, ClientCredentialsIssuesAnRfc9068Token) {
  auto r = Post(*id_, {{"grant_type", "client_credentials"}, {"scope", "llm:chat"}},
                Basic(secret_.client_id, secret_.client_secret));
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = json::parse(r.body).as_object();
  EXPECT_EQ(body.at("token_type"), "Bearer");
  EXPECT_EQ(body.at("scope"), "llm:chat");
  EXPECT_EQ(body.at("expires_in").as_int64(), 900);
  std::string token(body.at("access_token").as_string());
  auto jws = crypto::ParseCompact(token);
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(jws->typ, "at+jwt");
  EXPECT_EQ(jws->alg, crypto::Alg::kEdDSA);
  EXPECT_FALSE(jws->kid.empty());
  auto c = Claims(token);
  for (const char* k : {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "client_id", "tenant"}) {
    EXPECT_TRUE(c.contains(k)) << k;
  }
  EXPECT_EQ(c.at("iss"), "https://aigis.test");
  EXPECT_EQ(c.at("sub").as_string(), agent_.id);
  EXPECT_EQ(c.at("exp").as_int64(), clock_.now() + 900);

  auto p = id_->Authenticate(token, "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->kind, "agent");
  EXPECT_EQ(p->id, agent_.id);
  EXPECT_EQ(p->tenant, "default");
  EXPECT_EQ(p->scopes, std::vector<std::string>{"llm:chat"});
  // Second call is served from the cache.
  auto before = id_->stats().cache_hits;
  ASSERT_TRUE(id_->Authenticate(token, "").ok());
  EXPECT_EQ(id_->stats().cache_hits, before + 1);
}

TEST_F(IdentityTest, ClientSecretPostAndDefaultScopes) {
  auto r = Post(*id_, {{"grant_type", "client_credentials"},
                       {"client_id", secret_.client_id},
                       {"client_secret", secret_.client_secret}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body).at("scope"), "llm:chat tools:read");
}

TEST_F(IdentityTest, TokenEndpointErrorsFollowRfc6749) {
  auto wrong = Post(*id_, {{"grant_type", "client_credentials"}}, Basic(secret_.client_id, "nope"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(wrong.body.find("invalid_client"), std::string::npos);
  bool challenged = false;
  for (const auto& h : wrong.headers) challenged |= h.name == "WWW-Authenticate";
  EXPECT_TRUE(challenged);

  auto unknown = Post(*id_, {{"grant_type", "client_credentials"}}, Basic("agt_nobody", secret_.client_secret));
  EXPECT_EQ(unknown.status, 401);

  auto scope = Post(*id_, {{"grant_type", "client_credentials"}, {"scope", "llm:chat admin"}},
                    Basic(secret_.client_id, secret_.client_secret));
  EXPECT_EQ(scope.status, 400);
  EXPECT_NE(scope.body.find("invalid_scope"), std::string::npos);

  auto grant = Post(*id_, {{"grant_type", "password"}}, Basic(secret_.client_id, secret_.client_secret));
  EXPECT_EQ(grant.status, 400);
  EXPECT_NE(grant.body.find("unsupported_grant_type"), std::string::npos);

  auto dup = id_->Token({"POST", Basic(secret_.client_id, secret_.client_secret),
                         "application/x-www-form-urlencoded", "grant_type=client_credentials&scope=a&scope=b"});
  EXPECT_EQ(dup.status, 400);
  EXPECT_NE(dup.body.find("invalid_request"), std::string::npos);

  auto two_methods = Post(*id_, {{"grant_type", "client_credentials"}, {"client_secret", secret_.client_secret}},
                          Basic(secret_.client_id, secret_.client_secret));
  EXPECT_EQ(two_methods.status, 400);

  auto json_body = id_->Token({"POST", Basic(secret_.client_id, secret_.client_secret), "application/json",
                               R"({"grant_type":"client_credentials"})"});
  EXPECT_EQ(json_body.status, 400);
}

TEST_F(IdentityTest, RevokedAndRotatedSecrets) {
  auto second = id_->CreateClientSecret("default", agent_.id, std::nullopt);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(id_->RevokeCredential("default", agent_.id, secret_.credential.id).ok());
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(secret_.client_id, secret_.client_secret)).status,
            401);
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(second->client_id, second->client_secret)).status,
            200);

  // Rotation: the new secret works at once, the old one until the grace ends.
  auto rotated = id_->RotateClientSecret("default", agent_.id, second->credential.id, seconds(600));
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(rotated->client_id, rotated->client_secret)).status,
            200);
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(second->client_id, second->client_secret)).status,
            200);
  clock_.Advance(601);
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(second->client_id, second->client_secret)).status,
            401);
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(rotated->client_id, rotated->client_secret)).status,
            200);
  // The store agrees after a restart.
  auto reopened = Open();
  EXPECT_EQ(Post(*reopened, {{"grant_type", "client_credentials"}}, Basic(second->client_id, second->client_secret)).status,
            401);
  EXPECT_EQ(Post(*reopened, {{"grant_type", "client_credentials"}}, Basic(rotated->client_id, rotated->client_secret)).status,
            200);
}

TEST_F(IdentityTest, ExpiredAndNotYetValidTokens) {
  std::string token = Issue();
  clock_.Advance(900 + 60);  // exp + skew
  auto p = id_->Authenticate(token, "");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kUnauthenticated);
  EXPECT_NE(p.status().message().find("expired"), std::string::npos);

  clock_.Set(1'800'000'000);
  std::string fresh = Issue();
  clock_.Advance(-120);  // the verifier's clock is behind the issuer's by more than the skew
  auto early = Open();
  auto q = early->Authenticate(fresh, "");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("not valid yet"), std::string::npos) << q.status().message();
}

TEST_F(IdentityTest, WrongIssuerOrAudienceIsRejected) {
  std::string token = Issue();
  auto other_aud = Open("another-audience");
  EXPECT_FALSE(other_aud->Authenticate(token, "").ok());
  id_->SetIssuer("https://elsewhere.test");
  auto p = id_->Authenticate(token, "");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("not trusted"), std::string::npos) << p.status().message();
}

TEST_F(IdentityTest, ForgedTokensAreRejected) {
  std::string token = Issue();
  auto jws = crypto::ParseCompact(token);
  ASSERT_TRUE(jws.ok());
  std::string payload_b64 = token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1);

  // Tampered signature.
  std::string sig = token.substr(token.rfind('.') + 1);
  sig[5] = sig[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(id_->Authenticate(Replace(token, 2, sig), "").ok());
  // Tampered payload (scope widened).
  auto claims = Claims(token);
  claims["scope"] = "llm:chat tools:read admin";
  EXPECT_FALSE(id_->Authenticate(Replace(token, 1, crypto::Base64UrlEncode(json::serialize(claims))), "").ok());
  // Unknown kid.
  std::string hdr = R"({"alg":"EdDSA","kid":"not-a-key","typ":"at+jwt"})";
  auto unknown = id_->Authenticate(Replace(token, 0, crypto::Base64UrlEncode(hdr)), "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown key"), std::string::npos);
  // alg none, with and without a signature.
  std::string none = crypto::Base64UrlEncode(R"({"alg":"none","typ":"at+jwt","kid":")" + jws->kid + "\"}");
  EXPECT_FALSE(id_->Authenticate(none + "." + payload_b64 + ".", "").ok());
  EXPECT_FALSE(id_->Authenticate(Replace(token, 0, none), "").ok());
  // HS256 "signed" with our public key (JWK text and PEM): algorithm confusion.
  auto jwks = json::parse(id_->JwksJson()).as_object();
  std::string jwk = json::serialize(jwks.at("keys").as_array().at(0));
  auto pub = crypto::Key::FromJwk(jwk);
  ASSERT_TRUE(pub.ok());
  auto pem = pub->PublicPem();
  ASSERT_TRUE(pem.ok());
  std::string raw = *crypto::Base64UrlDecode(json::parse(jwk).at("x").as_string());
  for (const std::string& secret : {jwk, *pem, raw}) {
    std::string h = crypto::Base64UrlEncode(R"({"alg":"HS256","typ":"at+jwt","kid":")" + jws->kid + "\"}");
    std::string input = h + "." + payload_b64;
    std::string forged = input + "." + crypto::Base64UrlEncode(crypto::HmacSha256(secret, input));
    EXPECT_FALSE(id_->Authenticate(forged, "").ok());
  }
  // A principal header (also signed by us) is not an access token.
  Principal pr;
  pr.id = agent_.id;
  pr.kind = "agent";
  auto ph = id_->SignPrincipal(pr, seconds(60));
  ASSERT_TRUE(ph.ok());
  EXPECT_FALSE(id_->Authenticate(*ph, "").ok());
  // Garbage.
  for (const char* bad : {"", "a", "a.b", "a.b.c", "....", "eyJ.eyJ.sig"}) {
    EXPECT_FALSE(id_->Authenticate(bad, "").ok()) << bad;
  }
}

TEST_F(IdentityTest, RevocationAndAgentStatusApplyOnTheNextRequest) {
  std::string token = Issue();
  ASSERT_TRUE(id_->Authenticate(token, "").ok());  // now cached
  auto rv = id_->Revoke({"POST", Basic(secret_.client_id, secret_.client_secret), "application/x-www-form-urlencoded",
                         FormEncode({{"token", token}})});
  EXPECT_EQ(rv.status, 200) << rv.body;
  auto p = id_->Authenticate(token, "");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("revoked"), std::string::npos);
  // The denylist survives a restart.
  EXPECT_FALSE(Open()->Authenticate(token, "").ok());

  std::string t2 = Issue();
  ASSERT_TRUE(id_->Authenticate(t2, "").ok());
  ASSERT_TRUE(id_->SuspendAgent("default", agent_.id).ok());
  EXPECT_FALSE(id_->Authenticate(t2, "").ok());
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(secret_.client_id, secret_.client_secret)).status,
            401);
  ASSERT_TRUE(id_->ReactivateAgent("default", agent_.id).ok());
  EXPECT_TRUE(id_->Authenticate(t2, "").ok());

  auto key = id_->CreateApiKey({"default", agent_.id, "", {}, std::nullopt});
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(id_->Authenticate("", key->api_key).ok());
  ASSERT_TRUE(id_->DecommissionAgent("default", agent_.id).ok());
  EXPECT_FALSE(id_->Authenticate(t2, "").ok());
  EXPECT_FALSE(id_->Authenticate("", key->api_key).ok());
  EXPECT_EQ(Post(*id_, {{"grant_type", "client_credentials"}}, Basic(secret_.client_id, secret_.client_secret)).status,
            401);
  EXPECT_FALSE(id_->ReactivateAgent("default", agent_.id).ok());  // final
  auto creds = id_->ListCredentials("default", agent_.id);
  ASSERT_TRUE(creds.ok());
  for (const auto& c : *creds) EXPECT_TRUE(c.revoked_at.has_value()) << c.id;
}

TEST_F(IdentityTest, SigningKeyRotationKeepsOldTokensValidUntilExpiry) {
  std::string old_token = Issue();
  std::string old_kid = crypto::ParseCompact(old_token)->kid;
  ASSERT_TRUE(id_->RotateSigningKey().ok());
  std::string new_token = Issue();
  std::string new_kid = crypto::ParseCompact(new_token)->kid;
  EXPECT_NE(old_kid, new_kid);
  EXPECT_EQ(id_->PublishedKids(), (std::vector<std::string>{new_kid, old_kid}));
  auto fresh = Open();  // no cache: verification from the stored keys
  EXPECT_TRUE(fresh->Authenticate(old_token, "").ok());
  EXPECT_TRUE(fresh->Authenticate(new_token, "").ok());
  // Once every token the old key could have signed has expired, it leaves the JWKS.
  clock_.Advance(900 + 60 + 1);
  id_->Maintain();
  EXPECT_EQ(id_->PublishedKids(), std::vector<std::string>{new_kid});
  EXPECT_EQ(id_->JwksJson().find(old_kid), std::string::npos);
}

TEST_F(IdentityTest, SealedKeysNeedTheSameMasterKey) {
  IdentityOptions o;
  o.issuer = "https://aigis.test";
  o.master_key = crypto::Base64Encode(crypto::RandomBytes(32));
  o.clock = &clock_;
  auto other = Identity::Open(std::move(o), *store_);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("master_key"), std::string::npos);
}

TEST_F(IdentityTest, ApiKeys) {
  auto key = id_->CreateApiKey({"default", agent_.id, "", {"llm:chat"}, seconds(3600)});
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE(key->api_key.starts_with("aig_"));
  auto p = id_->Authenticate("", key->api_key);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->kind, "agent");
  EXPECT_EQ(p->credential_id, key->credential.id);
  EXPECT_EQ(p->scopes, std::vector<std::string>{"llm:chat"});
  std::string wrong = key->api_key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(id_->Authenticate("", wrong).ok());
  EXPECT_FALSE(id_->CreateApiKey({"default", agent_.id, "", {"admin"}, std::nullopt}).ok());  // beyond the agent

  auto svc = id_->CreateApiKey({"default", "", "ci-runner", {"deploy"}, std::nullopt});
  ASSERT_TRUE(svc.ok());
  EXPECT_EQ(id_->Authenticate(svc->api_key, "")->kind, "service");

  clock_.Advance(3601);
  EXPECT_FALSE(id_->Authenticate("", key->api_key).ok());
  ASSERT_TRUE(id_->RevokeApiKey("default", svc->credential.id).ok());
  EXPECT_FALSE(id_->Authenticate(svc->api_key, "").ok());
}

TEST_F(IdentityTest, PrivateKeyJwtClientAuthentication) {
  auto key = crypto::Key::Generate(crypto::Alg::kES256);
  ASSERT_TRUE(key.ok());
  auto signing = key->WithKid("k1");
  auto jwk = signing.PublicJwk();
  ASSERT_TRUE(jwk.ok());
  AgentPatch patch;
  patch.jwks = R"({"keys":[)" + *jwk + "]}";
  ASSERT_TRUE(id_->UpdateAgent("default", agent_.id, patch).ok());

  auto assertion = [&](const std::string& jti, const std::string& aud, int64_t life) {
    json::object c{{"iss", agent_.id}, {"sub", agent_.id}, {"aud", aud}, {"jti", jti},
                   {"iat", clock_.now()}, {"exp", clock_.now() + life}};
    return *crypto::SignCompact(signing, crypto::Alg::kES256, "", json::serialize(c));
  };
  auto token = [&](const std::string& a) {
    return Post(*id_, {{"grant_type", "client_credentials"},
                       {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
                       {"client_assertion", a}});
  };
  auto ok = token(assertion("j1", "https://aigis.test/oauth2/token", 120));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(token(assertion("j1", "https://aigis.test/oauth2/token", 120)).status, 401);  // replay
  EXPECT_EQ(token(assertion("j2", "https://other.test/token", 120)).status, 401);          // audience
  EXPECT_EQ(token(assertion("j3", "https://aigis.test", 3600)).status, 401);               // lives too long
  EXPECT_EQ(token(assertion("j4", "https://aigis.test", -100)).status, 401);               // expired
  auto stranger = crypto::Key::Generate(crypto::Alg::kES256)->WithKid("k1");
  json::object c{{"iss", agent_.id}, {"sub", agent_.id}, {"aud", "https://aigis.test"}, {"jti", "j5"},
                 {"exp", clock_.now() + 60}};
  EXPECT_EQ(token(*crypto::SignCompact(stranger, crypto::Alg::kES256, "", json::serialize(c))).status, 401);
  // Agents register public keys only.
  AgentPatch secret_key;
  secret_key.jwks = R"({"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]})";
  EXPECT_FALSE(id_->UpdateAgent("default", agent_.id, secret_key).ok());
}

TEST_F(IdentityTest, IntrospectionNeedsAClientAndHidesReasons) {
  std::string token = Issue();
  auto no_auth = id_->Introspect({"POST", "", "application/x-www-form-urlencoded", FormEncode({{"token", token}})});
  EXPECT_EQ(no_auth.status, 401);
  auto r = id_->Introspect({"POST", Basic(secret_.client_id, secret_.client_secret),
                            "application/x-www-form-urlencoded", FormEncode({{"token", token}})});
  ASSERT_EQ(r.status, 200);
  auto body = json::parse(r.body).as_object();
  EXPECT_EQ(body.at("active"), true);
  EXPECT_EQ(body.at("sub").as_string(), agent_.id);
  EXPECT_EQ(body.at("client_id").as_string(), agent_.id);
  auto bad = id_->Introspect({"POST", Basic(secret_.client_id, secret_.client_secret),
                              "application/x-www-form-urlencoded", FormEncode({{"token", "garbage"}})});
  EXPECT_EQ(bad.body, R"({"active":false})");
}

// ------------------------------------------------------- trusted IdPs ----

class TrustedIdpTest : public IdentityTest {
 protected:
  void SetUp() override {
    IdentityTest::SetUp();
    idp_key_ = crypto::Key::Generate(crypto::Alg::kRS256)->WithKid("idp-1");
    jwks_ = R"({"keys":[)" + *idp_key_.PublicJwk() + "]}";
    IdentityOptions o;
    TrustedIssuer t;
    t.name = "keycloak";
    t.issuer = "https://idp.test/realms/acme";
    t.jwks_url = "https://idp.test/jwks";
    t.audiences = {"aigis"};
    t.algorithms = {"RS256"};
    t.default_scopes = {};
    o.trusted_issuers = {t};
    o.fetcher = [this](const std::string& url) -> Result<std::string> {
      ++fetches_;
      if (idp_down_) return Unavailable("connection refused");
      return jwks_;
    };
    trusting_ = Open("aigis", std::move(o));
    trusting_->Start();
    trusting_->Stop();  // no refresher thread: the test drives time itself
  }
  std::string UserToken(json::object extra = {}, const crypto::Key* key = nullptr, crypto::Alg alg = crypto::Alg::kRS256) {
    json::object c{{"iss", "https://idp.test/realms/acme"}, {"sub", "user-42"}, {"aud", "aigis"},
                   {"email", "ann@acme.test"}, {"groups", json::array{"eng", "oncall"}},
                   {"scope", "llm:chat tools:read tools:write"}, {"exp", clock_.now() + 300},
                   {"iat", clock_.now()}};
    for (auto& kv : extra) c[kv.key()] = kv.value();
    return *crypto::SignCompact(key ? *key : idp_key_, alg, "JWT", json::serialize(c));
  }

  crypto::Key idp_key_;
  std::string jwks_;
  std::atomic<int> fetches_{0};
  std::atomic<bool> idp_down_{false};
  std::unique_ptr<Identity> trusting_;
};

TEST_F(TrustedIdpTest, VerifiesAndMapsClaims) {
  EXPECT_EQ(fetches_.load(), 1);
  auto p = trusting_->Authenticate(UserToken(), "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->kind, "user");
  EXPECT_EQ(p->id, "user-42");
  EXPECT_EQ(p->email, "ann@acme.test");
  EXPECT_EQ(p->groups, (std::vector<std::string>{"eng", "oncall"}));
  EXPECT_EQ(p->issuer, "https://idp.test/realms/acme");
}

TEST_F(TrustedIdpTest, RejectsConfusionAndForeignKeys) {
  // HS256 with the IdP's public key as the HMAC secret.
  auto pem = idp_key_.PublicPem();
  ASSERT_TRUE(pem.ok());
  json::object c{{"iss", "https://idp.test/realms/acme"}, {"sub", "x"}, {"aud", "aigis"}, {"exp", clock_.now() + 60}};
  std::string h = crypto::Base64UrlEncode(R"({"alg":"HS256","kid":"idp-1"})");
  std::string input = h + "." + crypto::Base64UrlEncode(json::serialize(c));
  for (const std::string& secret : {*pem, jwks_, *idp_key_.PublicJwk()}) {
    EXPECT_FALSE(trusting_->Authenticate(input + "." + crypto::Base64UrlEncode(crypto::HmacSha256(secret, input)), "").ok());
  }
  // An algorithm the issuer is not configured for, even with a valid key.
  auto ec = crypto::Key::Generate(crypto::Alg::kES256)->WithKid("idp-1");
  EXPECT_FALSE(trusting_->Authenticate(UserToken({}, &ec, crypto::Alg::kES256), "").ok());
  // A key the IdP never published.
  auto other = crypto::Key::Generate(crypto::Alg::kRS256)->WithKid("idp-1");
  EXPECT_FALSE(trusting_->Authenticate(UserToken({}, &other), "").ok());
  // Wrong audience.
  EXPECT_FALSE(trusting_->Authenticate(UserToken({{"aud", "someone-else"}}), "").ok());
}

TEST_F(TrustedIdpTest, StaleKeysFailClosedAfterMaxStale) {
  std::string token = UserToken({{"exp", clock_.now() + 100000}});
  ASSERT_TRUE(trusting_->Authenticate(token, "").ok());
  idp_down_ = true;
  clock_.Advance(300 + 3600 + 1);  // refresh_interval + max_stale
  std::string later = UserToken({{"exp", clock_.now() + 300}});
  auto p = trusting_->Authenticate(later, "");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("stale"), std::string::npos) << p.status().message();
}

TEST_F(TrustedIdpTest, TokenExchangeBuildsTheActChain) {
  std::string user = UserToken();
  auto r = Post(*trusting_, {{"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
                             {"subject_token", user},
                             {"subject_token_type", "urn:ietf:params:oauth:token-type:access_token"},
                             {"scope", "llm:chat"}},
                Basic(secret_.client_id, secret_.client_secret));
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = json::parse(r.body).as_object();
  EXPECT_EQ(body.at("issued_token_type"), "urn:ietf:params:oauth:token-type:access_token");
  std::string token(body.at("access_token").as_string());
  auto c = Claims(token);
  EXPECT_EQ(c.at("sub"), "user-42");
  EXPECT_EQ(c.at("act").at("sub").as_string(), agent_.id);
  EXPECT_EQ(c.at("client_id").as_string(), agent_.id);
  auto p = trusting_->Authenticate(token, "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->kind, "user");
  EXPECT_EQ(p->act, std::vector<std::string>{agent_.id});
  EXPECT_EQ(p->scopes, std::vector<std::string>{"llm:chat"});

  // Scope beyond what the user holds (tools:admin) or the agent holds (tools:write).
  for (const char* scope : {"tools:admin", "tools:write"}) {
    auto bad = Post(*trusting_, {{"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
                                 {"subject_token", user},
                                 {"subject_token_type", "urn:ietf:params:oauth:token-type:access_token"},
                                 {"scope", scope}},
                    Basic(secret_.client_id, secret_.client_secret));
    EXPECT_EQ(bad.status, 400) << scope;
    EXPECT_NE(bad.body.find("invalid_scope"), std::string::npos);
  }

  // A second agent delegating further; depth is bounded (3 by default).
  std::string current = token;
  for (int depth = 2; depth <= 4; ++depth) {
    auto a = trusting_->CreateAgent({"default", "", fmt::format("hop {}", depth), "", "", {"llm:chat"}, "{}", ""});
    auto s = trusting_->CreateClientSecret("default", a->id, std::nullopt);
    auto next = Post(*trusting_, {{"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
                                  {"subject_token", current},
                                  {"subject_token_type", "urn:ietf:params:oauth:token-type:access_token"}},
                     Basic(s->client_id, s->client_secret));
    if (depth <= 3) {
      ASSERT_EQ(next.status, 200) << next.body;
      current = std::string(json::parse(next.body).at("access_token").as_string());
      EXPECT_EQ(trusting_->Authenticate(current, "")->act.size(), static_cast<size_t>(depth));
    } else {
      EXPECT_EQ(next.status, 400) << next.body;
      EXPECT_NE(next.body.find("deeper"), std::string::npos);
    }
  }
  // Suspending the first agent in the chain invalidates the delegated tokens.
  ASSERT_TRUE(trusting_->SuspendAgent("default", agent_.id).ok());
  EXPECT_FALSE(trusting_->Authenticate(token, "").ok());
  EXPECT_FALSE(trusting_->Authenticate(current, "").ok());
}

}  // namespace
}  // namespace aigis::identity

namespace aigis::identity {
namespace {

// Hostile input to every parser on the identity path: form bodies, Basic
// headers, client assertions and bearer tokens. Nothing may crash, and
// nothing malformed may authenticate.
TEST_F(IdentityTest, HostileInputNeverAuthenticates) {
  std::string token = Issue();
  std::mt19937_64 rng(20261123);
  auto mutate = [&](std::string s) {
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[at] = static_cast<char>(rng() % 256); break;
        case 1: s.erase(at, 1 + rng() % 8); break;
        case 2: s.insert(at, std::string(1 + rng() % 3, "%.&=+_-aA\0\xff"[rng() % 12])); break;
        case 3: s = s.substr(0, at); break;
      }
    }
    return s;
  };
  std::string form = FormEncode({{"grant_type", "client_credentials"}, {"scope", "llm:chat"}});
  std::string basic = Basic(secret_.client_id, secret_.client_secret);
  int accepted_tokens = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string t = mutate(token);
    auto p = id_->Authenticate(t, "");
    if (p.ok()) {
      ++accepted_tokens;  // only possible if the mutation was a no-op
      EXPECT_EQ(t, token);
    }
    (void)id_->Authenticate("", mutate("aig_" + std::string(60, 'a')));
    auto r = id_->Token({"POST", i % 2 ? mutate(basic) : basic, "application/x-www-form-urlencoded", mutate(form)});
    EXPECT_TRUE(r.status == 200 || r.status == 400 || r.status == 401) << r.status;
    std::string probe = mutate(token);
    auto in = id_->Introspect({"POST", basic, "application/x-www-form-urlencoded", FormEncode({{"token", probe}})});
    EXPECT_EQ(in.status, probe.empty() ? 400 : 200) << in.body;
    if (in.body.find("\"active\":true") != std::string::npos) {
      EXPECT_EQ(probe, token);
    }
  }
  EXPECT_LT(accepted_tokens, 30);
}

}  // namespace
}  // namespace aigis::identity

// The admin API driven through HandleAdmin (no sockets), over a real
// Identity on an in-memory store; and LoadAdminToken on a temporary dir.
#include "admin/admin.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "crypto/crypto.h"
#include "store/store.h"

namespace aigis::admin {
namespace {

namespace json = boost::json;
using gateway::HttpRequest;
using gateway::HttpResponse;

struct Reply {
  int status = 0;
  json::value body;  // null if the body was empty or not JSON
  HttpResponse raw;

  const json::object& obj() const { return body.as_object(); }
  std::string str(std::string_view key) const {
    const json::value* v = body.is_object() ? body.as_object().if_contains(key) : nullptr;
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  }
  std::string error_code() const {
    const json::value* e = body.is_object() ? body.as_object().if_contains("error") : nullptr;
    return e && e->is_object() ? std::string(e->as_object().at("code").as_string()) : "";
  }
  std::string error_message() const {
    const json::value* e = body.is_object() ? body.as_object().if_contains("error") : nullptr;
    return e && e->is_object() ? std::string(e->as_object().at("message").as_string()) : "";
  }
};

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = store::OpenSqlite({":memory:"});
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(*st);
    identity::IdentityOptions o;
    o.issuer = "http://127.0.0.1:1";
    o.master_key = crypto::Base64Encode(crypto::RandomBytes(32));
    auto id = identity::Identity::Open(std::move(o), *store_);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    id_ = std::move(*id);
    opt_.token = crypto::Base64UrlEncode(crypto::RandomBytes(32));
  }

  // `target` is path[?query]. `auth` is the whole Authorization value;
  // nullopt means the correct bearer token.
  Reply Call(std::string_view method, std::string_view target, std::string_view body = "",
             std::string_view tenant = "", std::optional<std::string> auth = std::nullopt) {
    Headers h;
    std::string authorization = auth ? *auth : "Bearer " + opt_.token;
    if (!authorization.empty()) h.Add("Authorization", authorization);
    if (!tenant.empty()) h.Add("X-Aigis-Tenant", std::string(tenant));
    if (!body.empty()) h.Add("Content-Type", "application/json");
    size_t q = target.find('?');
    HttpRequest req;
    req.method = method;
    req.path = target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    req.headers = &h;
    req.body = body;
    req.remote = "127.0.0.1:5555";
    Reply r;
    r.raw = HandleAdmin(*id_, opt_, req);
    r.status = r.raw.status;
    if (!r.raw.body.empty()) {
      boost::system::error_code ec;
      r.body = json::parse(r.raw.body, ec);
      EXPECT_FALSE(ec) << "response is not JSON: " << r.raw.body;
    }
    return r;
  }

  std::string CreateAgent(std::string_view body, std::string_view tenant = "") {
    Reply r = Call("POST", "/admin/v1/agents", body, tenant);
    EXPECT_EQ(r.status, 201) << r.raw.body;
    return r.str("id");
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<identity::Identity> id_;
  AdminOptions opt_;
};

TEST_F(AdminTest, EveryCallNeedsTheAdminToken) {
  for (std::optional<std::string> auth :
       {std::optional<std::string>(""), std::optional<std::string>("Bearer wrong-token-but-long-enough-000000000"),
        std::optional<std::string>("Basic " + opt_.token), std::optional<std::string>("Bearer"),
        std::optional<std::string>("Bearer " + opt_.token + "x")}) {
    for (auto [method, path] : {std::pair{"GET", "/admin/v1/agents"}, std::pair{"POST", "/admin/v1/signing-keys:rotate"},
                                std::pair{"GET", "/admin/v1/nowhere"}}) {
      Reply r = Call(method, path, "{}", "", auth);
      EXPECT_EQ(r.status, 401) << *auth << " " << path;
      EXPECT_EQ(r.raw.headers.Get("WWW-Authenticate"), "Bearer realm=\"aigis-admin\"");
      EXPECT_EQ(r.error_code(), "unauthenticated");
    }
  }
  // Scheme is case-insensitive; the right token works.
  EXPECT_EQ(Call("GET", "/admin/v1/agents", "", "", "bearer " + opt_.token).status, 200);
  EXPECT_EQ(Call("GET", "/admin/v1/agents").status, 200);

  // An empty configured token admits nobody, not even an empty bearer.
  opt_.token.clear();
  EXPECT_EQ(Call("GET", "/admin/v1/agents", "", "", std::string("Bearer ")).status, 401);
  EXPECT_EQ(Call("GET", "/admin/v1/agents", "", "", std::string("Bearer  ")).status, 401);
}

TEST_F(AdminTest, AgentLifecycle) {
  Reply created = Call("POST", "/admin/v1/agents",
                       R"({"id":"billing-bot","name":"Billing bot","owner":"team-a","description":"pays",
                           "scopes":["llm:chat","llm:embed"],"metadata":{"cost_center":"42"}})");
  ASSERT_EQ(created.status, 201) << created.raw.body;
  EXPECT_EQ(created.raw.headers.Get("Content-Type"), "application/json");
  EXPECT_EQ(created.raw.headers.Get("Cache-Control"), "no-store");
  EXPECT_EQ(created.raw.headers.Get("Location"), "/admin/v1/agents/billing-bot");
  const json::object& a = created.obj();
  EXPECT_EQ(a.at("id"), "billing-bot");
  EXPECT_EQ(a.at("tenant"), "default");
  EXPECT_EQ(a.at("name"), "Billing bot");
  EXPECT_EQ(a.at("owner"), "team-a");
  EXPECT_EQ(a.at("description"), "pays");
  EXPECT_EQ(a.at("scopes"), json::parse(R"(["llm:chat","llm:embed"])"));
  EXPECT_EQ(a.at("metadata"), json::parse(R"({"cost_center":"42"})"));
  EXPECT_TRUE(a.at("jwks").is_null());
  EXPECT_EQ(a.at("status"), "active");
  std::string created_at(a.at("created_at").as_string());
  EXPECT_EQ(created_at.size(), std::string("2026-11-23T14:45:00.000000Z").size()) << created_at;
  EXPECT_EQ(created_at.back(), 'Z');
  EXPECT_EQ(a.at("updated_at"), a.at("created_at"));

  // Same id again: conflict.
  Reply dup = Call("POST", "/admin/v1/agents", R"({"id":"billing-bot","name":"again"})");
  EXPECT_EQ(dup.status, 409) << dup.raw.body;
  EXPECT_EQ(dup.error_code(), "already_exists");

  Reply got = Call("GET", "/admin/v1/agents/billing-bot");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body, created.body);

  // Generated id.
  std::string gen = CreateAgent(R"({"name":"anonymous helper"})");
  EXPECT_EQ(gen.rfind("agt_", 0), 0u) << gen;

  Reply patched = Call("PATCH", "/admin/v1/agents/billing-bot",
                       R"({"name":"Billing bot 2","scopes":["llm:chat"],"metadata":{"k":[1,2]},"owner":"team-b"})");
  ASSERT_EQ(patched.status, 200) << patched.raw.body;
  EXPECT_EQ(patched.obj().at("name"), "Billing bot 2");
  EXPECT_EQ(patched.obj().at("owner"), "team-b");
  EXPECT_EQ(patched.obj().at("description"), "pays");  // untouched
  EXPECT_EQ(patched.obj().at("scopes"), json::parse(R"(["llm:chat"])"));
  EXPECT_EQ(patched.obj().at("metadata"), json::parse(R"({"k":[1,2]})"));

  // An issued secret, to see it die with the agent.
  Reply secret = Call("POST", "/admin/v1/agents/billing-bot/credentials", "");
  ASSERT_EQ(secret.status, 201) << secret.raw.body;

  Reply s1 = Call("POST", "/admin/v1/agents/billing-bot:suspend");
  ASSERT_EQ(s1.status, 200) << s1.raw.body;
  EXPECT_EQ(s1.obj().at("status"), "suspended");
  Reply s2 = Call("POST", "/admin/v1/agents/billing-bot:suspend");
  EXPECT_EQ(s2.status, 409) << s2.raw.body;  // failed_precondition is a conflict here
  EXPECT_EQ(s2.error_code(), "failed_precondition");
  EXPECT_NE(s2.error_message().find("suspend"), std::string::npos);
  Reply listed_suspended = Call("GET", "/admin/v1/agents?status=suspended");
  ASSERT_EQ(listed_suspended.status, 200);
  ASSERT_EQ(listed_suspended.obj().at("agents").as_array().size(), 1u);

  Reply r1 = Call("POST", "/admin/v1/agents/billing-bot:reactivate", "{}");
  ASSERT_EQ(r1.status, 200) << r1.raw.body;
  EXPECT_EQ(r1.obj().at("status"), "active");
  EXPECT_EQ(Call("POST", "/admin/v1/agents/billing-bot:reactivate").status, 409);

  Reply d1 = Call("POST", "/admin/v1/agents/billing-bot:decommission");
  ASSERT_EQ(d1.status, 200) << d1.raw.body;
  EXPECT_EQ(d1.obj().at("status"), "decommissioned");
  for (std::string_view action : {":suspend", ":reactivate", ":decommission"}) {
    Reply again = Call("POST", "/admin/v1/agents/billing-bot" + std::string(action));
    EXPECT_EQ(again.status, 409) << action << " " << again.raw.body;
    EXPECT_LT(again.status, 500);
  }
  EXPECT_EQ(Call("PATCH", "/admin/v1/agents/billing-bot", R"({"name":"zombie"})").status, 409);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/billing-bot/credentials").status, 409);

  // Credentials were revoked with the agent.
  Reply creds = Call("GET", "/admin/v1/agents/billing-bot/credentials");
  ASSERT_EQ(creds.status, 200) << creds.raw.body;
  const json::array& list = creds.obj().at("credentials").as_array();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].at("credential_id"), secret.obj().at("credential_id"));
  EXPECT_TRUE(list[0].at("revoked_at").is_string()) << creds.raw.body;

  EXPECT_EQ(Call("GET", "/admin/v1/agents/nobody-here").status, 404);
}

TEST_F(AdminTest, ListPagingAndFilters) {
  for (int i = 0; i < 7; ++i) {
    CreateAgent(fmt::format(R"({{"id":"agent-{}","name":"{} bot","owner":"{}"}})", i, i % 2 ? "odd" : "even",
                            i % 3 == 0 ? "ops" : "dev"));
  }
  // Walk every page of 3.
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    std::string target = "/admin/v1/agents?page_size=3";
    if (!token.empty()) target += "&page_token=" + token;
    Reply r = Call("GET", target);
    ASSERT_EQ(r.status, 200) << r.raw.body;
    const json::array& agents = r.obj().at("agents").as_array();
    EXPECT_LE(agents.size(), 3u);
    for (const auto& a : agents) seen.emplace_back(a.at("id").as_string());
    const json::value* next = r.obj().if_contains("next_page_token");
    token = next ? std::string(next->as_string()) : "";
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 7u);

  Reply ops = Call("GET", "/admin/v1/agents?owner=ops");
  ASSERT_EQ(ops.status, 200);
  EXPECT_EQ(ops.obj().at("agents").as_array().size(), 3u);  // 0, 3, 6
  EXPECT_FALSE(ops.obj().contains("next_page_token"));

  Reply odd = Call("GET", "/admin/v1/agents?name_prefix=odd%20b");  // percent-decoded
  ASSERT_EQ(odd.status, 200);
  EXPECT_EQ(odd.obj().at("agents").as_array().size(), 3u);  // 1, 3, 5
  Reply odd_plus = Call("GET", "/admin/v1/agents?name_prefix=odd+bot&owner=dev");
  ASSERT_EQ(odd_plus.status, 200);
  EXPECT_EQ(odd_plus.obj().at("agents").as_array().size(), 2u);  // 1, 5

  ASSERT_EQ(Call("POST", "/admin/v1/agents/agent-2:suspend").status, 200);
  Reply active = Call("GET", "/admin/v1/agents?status=active");
  EXPECT_EQ(active.obj().at("agents").as_array().size(), 6u);
  Reply suspended = Call("GET", "/admin/v1/agents?status=suspended");
  ASSERT_EQ(suspended.obj().at("agents").as_array().size(), 1u);
  EXPECT_EQ(suspended.obj().at("agents").as_array()[0].at("id"), "agent-2");
  EXPECT_EQ(Call("GET", "/admin/v1/agents?status=decommissioned").obj().at("agents").as_array().size(), 0u);
}

TEST_F(AdminTest, ClientSecrets) {
  CreateAgent(R"({"id":"worker","name":"worker","scopes":["a","b"]})");
  Reply c1 = Call("POST", "/admin/v1/agents/worker/credentials", R"({"expires_in":3600})");
  ASSERT_EQ(c1.status, 201) << c1.raw.body;
  EXPECT_EQ(c1.obj().at("client_id"), "worker");
  EXPECT_GE(c1.str("client_secret").size(), 43u);
  std::string cid = c1.str("credential_id");
  EXPECT_EQ(cid.rfind("cs_", 0), 0u);
  EXPECT_TRUE(c1.obj().at("created_at").is_string());
  EXPECT_TRUE(c1.obj().at("expires_at").is_string());

  Reply c2 = Call("POST", "/admin/v1/agents/worker/credentials");  // no body: no expiry
  ASSERT_EQ(c2.status, 201) << c2.raw.body;
  EXPECT_FALSE(c2.obj().contains("expires_at"));
  EXPECT_NE(c2.str("client_secret"), c1.str("client_secret"));

  Reply list = Call("GET", "/admin/v1/agents/worker/credentials");
  ASSERT_EQ(list.status, 200);
  const json::array& creds = list.obj().at("credentials").as_array();
  ASSERT_EQ(creds.size(), 2u);
  for (const auto& c : creds) {
    EXPECT_FALSE(c.as_object().contains("client_secret"));
    EXPECT_FALSE(c.as_object().contains("hash"));
    EXPECT_TRUE(c.at("revoked_at").is_null());
  }
  EXPECT_EQ(list.raw.body.find(c1.str("client_secret")), std::string::npos);

  Reply rot = Call("POST", "/admin/v1/agents/worker/credentials/" + cid + ":rotate", R"({"grace":60})");
  ASSERT_EQ(rot.status, 201) << rot.raw.body;
  EXPECT_EQ(rot.str("replaces"), cid);
  EXPECT_NE(rot.str("credential_id"), cid);
  EXPECT_FALSE(rot.str("client_secret").empty());
  Reply after = Call("GET", "/admin/v1/agents/worker/credentials");
  bool found_old = false;
  for (const auto& c : after.obj().at("credentials").as_array()) {
    if (c.at("credential_id") == json::value(cid)) {
      found_old = true;
      EXPECT_EQ(c.at("replaced_by"), json::value(rot.str("credential_id")));
    }
  }
  EXPECT_TRUE(found_old);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/worker/credentials/" + cid + ":rotate", R"({"grace":-5})").status, 400);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/worker/credentials/cs_nope:rotate").status, 404);

  std::string c2id = c2.str("credential_id");
  Reply rv = Call("POST", "/admin/v1/agents/worker/credentials/" + c2id + ":revoke");
  EXPECT_EQ(rv.status, 204) << rv.raw.body;
  EXPECT_TRUE(rv.raw.body.empty());
  EXPECT_EQ(Call("POST", "/admin/v1/agents/worker/credentials/" + c2id + ":revoke").status, 404);
  Reply del = Call("DELETE", "/admin/v1/agents/worker/credentials/" + rot.str("credential_id"));
  EXPECT_EQ(del.status, 204) << del.raw.body;
  EXPECT_EQ(Call("DELETE", "/admin/v1/agents/worker/credentials/" + rot.str("credential_id")).status, 404);

  // Bad TTLs are the caller's fault.
  EXPECT_EQ(Call("POST", "/admin/v1/agents/worker/credentials", R"({"expires_in":1})").status, 400);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/worker/credentials", R"({"expires_in":-1})").status, 400);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/worker/credentials", R"({"expires_in":18446744073709551615})").status,
            400);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/worker/credentials", R"({"expires_in":9223372036854775807})").status,
            400);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/nobody/credentials").status, 404);
  EXPECT_EQ(Call("GET", "/admin/v1/agents/nobody/credentials").status, 404);
}

TEST_F(AdminTest, ApiKeys) {
  CreateAgent(R"({"id":"keyed","name":"keyed","scopes":["read","write"]})");
  Reply k1 = Call("POST", "/admin/v1/api-keys", R"({"agent_id":"keyed","scopes":["read"],"expires_in":86400})");
  ASSERT_EQ(k1.status, 201) << k1.raw.body;
  EXPECT_EQ(k1.str("api_key").rfind("aig_" + k1.str("key_id") + "_", 0), 0u) << k1.raw.body;
  EXPECT_EQ(k1.str("subject"), "keyed");
  EXPECT_EQ(k1.str("subject_kind"), "agent");
  EXPECT_EQ(k1.obj().at("scopes"), json::parse(R"(["read"])"));
  EXPECT_TRUE(k1.obj().at("expires_at").is_string());

  Reply k2 = Call("POST", "/admin/v1/api-keys", R"({"service_account":"ci-runner","scopes":["deploy"]})");
  ASSERT_EQ(k2.status, 201) << k2.raw.body;
  EXPECT_EQ(k2.str("subject_kind"), "service");
  EXPECT_FALSE(k2.obj().contains("expires_at"));

  // Scopes beyond the agent's, both or neither subject: 400.
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys", R"({"agent_id":"keyed","scopes":["admin"]})").status, 400);
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys", R"({"agent_id":"keyed","service_account":"svc"})").status, 400);
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys", R"({})").status, 400);
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys", R"({"agent_id":"nobody"})").status, 404);

  Reply all = Call("GET", "/admin/v1/api-keys");
  ASSERT_EQ(all.status, 200) << all.raw.body;
  ASSERT_EQ(all.obj().at("api_keys").as_array().size(), 2u);
  EXPECT_EQ(all.raw.body.find(k1.str("api_key")), std::string::npos);  // secrets are shown once
  const json::object& first = all.obj().at("api_keys").as_array()[0].as_object();
  for (std::string_view f : {"key_id", "subject", "subject_kind", "scopes", "created_at", "expires_at", "revoked_at",
                             "last_used_at"}) {
    EXPECT_TRUE(first.contains(f)) << f;
  }
  Reply mine = Call("GET", "/admin/v1/api-keys?subject=ci-runner");
  ASSERT_EQ(mine.obj().at("api_keys").as_array().size(), 1u);
  EXPECT_EQ(mine.obj().at("api_keys").as_array()[0].at("key_id"), json::value(k2.str("key_id")));

  EXPECT_EQ(Call("POST", "/admin/v1/api-keys/" + k1.str("key_id") + ":revoke").status, 204);
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys/" + k1.str("key_id") + ":revoke").status, 404);
  EXPECT_EQ(Call("DELETE", "/admin/v1/api-keys/" + k2.str("key_id")).status, 204);
  Reply revoked = Call("GET", "/admin/v1/api-keys?subject=keyed");
  EXPECT_TRUE(revoked.obj().at("api_keys").as_array()[0].at("revoked_at").is_string());

  // The key works for authentication until revoked (and not after).
  Reply k3 = Call("POST", "/admin/v1/api-keys", R"({"agent_id":"keyed"})");
  ASSERT_EQ(k3.status, 201);
  EXPECT_TRUE(id_->Authenticate("", k3.str("api_key")).ok());
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys/" + k3.str("key_id") + ":revoke").status, 204);
  EXPECT_FALSE(id_->Authenticate("", k3.str("api_key")).ok());
}

TEST_F(AdminTest, SigningKeyRotation) {
  Reply before = Call("GET", "/admin/v1/signing-keys");
  ASSERT_EQ(before.status, 200) << before.raw.body;
  size_t n = before.obj().at("kids").as_array().size();
  ASSERT_GE(n, 1u);
  Reply rot = Call("POST", "/admin/v1/signing-keys:rotate");
  ASSERT_EQ(rot.status, 200) << rot.raw.body;
  const json::array& kids = rot.obj().at("kids").as_array();
  EXPECT_EQ(kids.size(), n + 1);
  // The old active key is still published, behind the new one.
  EXPECT_EQ(kids[1], before.obj().at("kids").as_array()[0]);
  EXPECT_EQ(Call("GET", "/admin/v1/signing-keys").body, rot.body);
  EXPECT_EQ(Call("POST", "/admin/v1/signing-keys").status, 405);
  EXPECT_EQ(Call("GET", "/admin/v1/signing-keys:rotate").status, 405);
}

TEST_F(AdminTest, ValidationErrorsNameTheProblem) {
  CreateAgent(R"({"id":"target","name":"t"})");
  struct Case {
    std::string method, target, body, needle;
  };
  std::vector<Case> cases = {
      {"POST", "/admin/v1/agents", "{not json", "not valid JSON"},
      {"POST", "/admin/v1/agents", "[1,2]", "JSON object"},
      {"POST", "/admin/v1/agents", "\"name\"", "JSON object"},
      {"POST", "/admin/v1/agents", R"({"name":"x","colour":"red"})", "'colour'"},
      {"POST", "/admin/v1/agents", R"({"name":42})", "'name'"},
      {"POST", "/admin/v1/agents", R"({"name":"x","scopes":"a b"})", "'scopes'"},
      {"POST", "/admin/v1/agents", R"({"name":"x","scopes":["a",7]})", "'scopes[1]'"},
      {"POST", "/admin/v1/agents", R"({"name":"x","metadata":"{}"})", "'metadata'"},
      {"POST", "/admin/v1/agents", R"({"name":"x","jwks":[1]})", "'jwks'"},
      {"POST", "/admin/v1/agents", R"({"owner":"x"})", "'name'"},
      {"POST", "/admin/v1/agents", R"({"name":"x","id":"Bad Id!"})", "id"},
      {"POST", "/admin/v1/agents", R"({"name":"x","scopes":["has space"]})", "scope"},
      {"POST", "/admin/v1/agents", R"({"name":"x","jwks":{"keys":"no"}})", "jwks"},
      {"PATCH", "/admin/v1/agents/target", R"({"id":"other"})", "'id'"},
      {"PATCH", "/admin/v1/agents/target", R"({"status":"active"})", "'status'"},
      {"PATCH", "/admin/v1/agents/target", R"({"description":null})", "'description'"},
      {"PATCH", "/admin/v1/agents/target", R"({"name":""})", "name"},
      {"POST", "/admin/v1/agents/target:suspend", R"({"now":true})", "'now'"},
      {"POST", "/admin/v1/agents/target/credentials", R"({"expires_in":"1h"})", "'expires_in'"},
      {"POST", "/admin/v1/agents/target/credentials", R"({"expires_in":3600.5})", "'expires_in'"},
      {"POST", "/admin/v1/agents/target/credentials", R"({"ttl":3600})", "'ttl'"},
      {"POST", "/admin/v1/api-keys", R"({"service_account":"svc-1","expires_in":true})", "'expires_in'"},
      {"GET", "/admin/v1/agents?page_size=0", "", "page_size"},
      {"GET", "/admin/v1/agents?page_size=501", "", "page_size"},
      {"GET", "/admin/v1/agents?page_size=abc", "", "page_size"},
      {"GET", "/admin/v1/agents?page_size=10x", "", "page_size"},
      {"GET", "/admin/v1/agents?page_size=", "", "page_size"},
      {"GET", "/admin/v1/agents?status=zombie", "", "status"},
      {"GET", "/admin/v1/agents?colour=red", "", "'colour'"},
      {"GET", "/admin/v1/agents?owner=a&owner=b", "", "repeated"},
      {"GET", "/admin/v1/agents?owner=%zz", "", "percent"},
      {"GET", "/admin/v1/agents?owner=%0a", "", "'owner'"},
      {"GET", "/admin/v1/agents/target?verbose=1", "", "'verbose'"},
  };
  for (const auto& c : cases) {
    Reply r = Call(c.method, c.target, c.body);
    EXPECT_EQ(r.status, 400) << c.method << " " << c.target << " " << c.body << " -> " << r.raw.body;
    EXPECT_EQ(r.error_code(), "invalid_argument") << c.target << " " << c.body;
    EXPECT_NE(r.error_message().find(c.needle), std::string::npos)
        << c.body << " -> " << r.error_message() << " (wanted '" << c.needle << "')";
  }
  // Unknown paths and methods.
  for (std::string_view p : {"/admin/v1/", "/admin/v1/agentz", "/admin/v1/agents/target:explode",
                             "/admin/v1/agents/target/keys", "/admin/v1/agents/target/credentials/cs_x:frob",
                             "/admin/v1/agents//credentials", "/admin/v1/agents/target/", "/admin/v2/agents",
                             "/admin/v1/api-keys/k:burn", "/admin/v1/agents/a/credentials/b/c"}) {
    Reply r = Call("GET", p);
    EXPECT_EQ(r.status, 404) << p << " " << r.raw.body;
    EXPECT_EQ(r.error_code(), "not_found");
  }
  Reply put = Call("PUT", "/admin/v1/agents");
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.raw.headers.Get("Allow"), "GET, POST");
  Reply del = Call("DELETE", "/admin/v1/agents/target");
  EXPECT_EQ(del.status, 405);
  EXPECT_EQ(del.raw.headers.Get("Allow"), "GET, PATCH");
  Reply get_action = Call("GET", "/admin/v1/agents/target:suspend");
  EXPECT_EQ(get_action.status, 405);
  EXPECT_EQ(get_action.raw.headers.Get("Allow"), "POST");
  EXPECT_EQ(Call("GET", "/admin/v1/agents/target/credentials/cs_x").raw.headers.Get("Allow"), "DELETE");
}

TEST_F(AdminTest, TenantsAreIsolated) {
  std::string id = CreateAgent(R"({"id":"tenant-a-bot","name":"a bot"})", "tenant-a");
  ASSERT_EQ(id, "tenant-a-bot");
  Reply in_a = Call("GET", "/admin/v1/agents/tenant-a-bot", "", "tenant-a");
  ASSERT_EQ(in_a.status, 200);
  EXPECT_EQ(in_a.obj().at("tenant"), "tenant-a");
  // The query parameter selects a tenant too.
  EXPECT_EQ(Call("GET", "/admin/v1/agents/tenant-a-bot?tenant=tenant-a").status, 200);

  EXPECT_EQ(Call("GET", "/admin/v1/agents/tenant-a-bot", "", "tenant-b").status, 404);
  EXPECT_EQ(Call("GET", "/admin/v1/agents/tenant-a-bot").status, 404);  // default tenant
  EXPECT_EQ(Call("PATCH", "/admin/v1/agents/tenant-a-bot", R"({"name":"stolen"})", "tenant-b").status, 404);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/tenant-a-bot:suspend", "", "tenant-b").status, 404);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/tenant-a-bot:decommission", "", "tenant-b").status, 404);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/tenant-a-bot/credentials", "", "tenant-b").status, 404);
  EXPECT_EQ(Call("GET", "/admin/v1/agents/tenant-a-bot/credentials", "", "tenant-b").status, 404);
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys", R"({"agent_id":"tenant-a-bot"})", "tenant-b").status, 404);
  EXPECT_EQ(Call("GET", "/admin/v1/agents", "", "tenant-b").obj().at("agents").as_array().size(), 0u);
  EXPECT_EQ(Call("GET", "/admin/v1/agents", "", "tenant-a").obj().at("agents").as_array().size(), 1u);

  // Secrets and keys of tenant a cannot be touched from tenant b.
  Reply secret = Call("POST", "/admin/v1/agents/tenant-a-bot/credentials", "", "tenant-a");
  ASSERT_EQ(secret.status, 201);
  std::string cid = secret.str("credential_id");
  EXPECT_EQ(Call("POST", "/admin/v1/agents/tenant-a-bot/credentials/" + cid + ":revoke", "", "tenant-b").status, 404);
  EXPECT_EQ(Call("POST", "/admin/v1/agents/tenant-a-bot/credentials/" + cid + ":rotate", "", "tenant-b").status, 404);
  Reply key = Call("POST", "/admin/v1/api-keys", R"({"agent_id":"tenant-a-bot"})", "tenant-a");
  ASSERT_EQ(key.status, 201);
  EXPECT_EQ(Call("POST", "/admin/v1/api-keys/" + key.str("key_id") + ":revoke", "", "tenant-b").status, 404);
  EXPECT_EQ(Call("GET", "/admin/v1/api-keys", "", "tenant-b").obj().at("api_keys").as_array().size(), 0u);
  EXPECT_EQ(Call("GET", "/admin/v1/api-keys", "", "tenant-a").obj().at("api_keys").as_array().size(), 1u);

  // Header and query must agree; tenants are bounded.
  EXPECT_EQ(Call("GET", "/admin/v1/agents?tenant=tenant-b", "", "tenant-a").status, 400);
  EXPECT_EQ(Call("GET", "/admin/v1/agents", "", std::string(65, 't')).status, 400);
  EXPECT_EQ(Call("GET", "/admin/v1/agents?tenant=").status, 400);
}

// Random bodies, paths, queries and methods: never a crash, never a 5xx, and
// every response body is JSON (or empty for 204).
TEST_F(AdminTest, HostileInputs) {
  CreateAgent(R"({"id":"victim","name":"victim","scopes":["s"]})");
  std::mt19937 rng(20240611);
  auto pick = [&](const std::vector<std::string>& v) -> const std::string& { return v[rng() % v.size()]; };
  auto random_bytes = [&](size_t max) {
    std::string s(rng() % (max + 1), '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 256);
    return s;
  };
  const std::vector<std::string> methods = {"GET", "POST", "POST", "PATCH", "DELETE", "PUT", "", "get", "POST\r\n"};
  const std::vector<std::string> paths = {
      "/admin/v1/agents", "/admin/v1/agents/victim", "/admin/v1/agents/victim:suspend",
      "/admin/v1/agents/victim:reactivate", "/admin/v1/agents/victim/credentials",
      "/admin/v1/agents/victim/credentials/cs_abc:rotate", "/admin/v1/agents/victim/credentials/cs_abc:revoke",
      "/admin/v1/api-keys", "/admin/v1/api-keys/abc:revoke", "/admin/v1/signing-keys",
      "/admin/v1/agents/%2e%2e/credentials", "/admin/v1/agents/victim::::", "/admin/v1/agents/:suspend",
      "/admin/v1/agents/victim/credentials/:rotate", "/admin/v1/", "/admin/v1", "", "/", "/admin/v1/agents/\xff\xfe",
      "/admin/v1/agents/" + std::string(300, 'a'), "/admin/v1/agents/a/b/c/d/e/f/g"};
  const std::vector<std::string> bodies = {
      "", "{}", "null", "[]", "{\"name\":", R"({"name":"x"})", R"({"name":"x","scopes":[]})",
      R"({"name":"\u0000\ud800"})", R"({"name":"é","metadata":{"a":{"b":{"c":[1,2,3]}}}})",
      std::string(200, '[') + std::string(200, ']'), std::string(100, '{'), R"({"expires_in":1e400})",
      R"({"expires_in":-9223372036854775808})", R"({"grace":9223372036854775807})", R"({"grace":0})",
      R"({"jwks":{"keys":[{"kty":"oct","k":"AAAA"}]},"name":"k"})",
      R"({"jwks":{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]},"name":"k"})", R"({"scopes":[[],{},null]})",
      R"({"name":"x","name":"y"})", R"({"agent_id":"victim","scopes":["s"],"expires_in":60})",
      R"({"service_account":"a"})", "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}"};
  const std::vector<std::string> queries = {"", "page_size=2", "page_size=-1", "page_size=99999999999999999999",
                                            "status=active&owner=%", "name_prefix=%FF", "tenant=%00",
                                            "a=b&a=b", "&&&=&=", "page_token=%27%20OR%201=1--", "subject=victim"};
  const std::vector<std::string> tenants = {"", "default", "other", "\x01", std::string(100, 'x')};

  int statuses[600] = {};
  for (int i = 0; i < 3000; ++i) {
    std::string method = pick(methods);
    std::string path = pick(paths);
    std::string body;
    switch (rng() % 6) {
      case 0:
      case 1:
      case 2: body = pick(bodies); break;
      case 3: body = random_bytes(64); break;
      case 4: {  // a valid body with a byte flipped
        body = pick(bodies);
        if (!body.empty()) body[rng() % body.size()] = static_cast<char>(rng() % 256);
        break;
      }
      default: body = pick(bodies) + random_bytes(4);
    }
    std::string query = rng() % 8 == 0 ? random_bytes(16) : rng() % 2 ? "" : pick(queries);
    if (rng() % 7 == 0) path += random_bytes(8);
    std::string target = path + (query.empty() ? "" : "?" + query);
    Reply r = Call(method, target, body, rng() % 4 == 0 ? pick(tenants) : "");
    ASSERT_GE(r.status, 200) << method << " " << target << " " << body;
    ASSERT_LT(r.status, 500) << method << " " << target << " " << body << " -> " << r.raw.body;
    ++statuses[r.status];
    if (r.status != 204) {
      boost::system::error_code ec;
      json::parse(r.raw.body, ec);
      ASSERT_FALSE(ec) << r.raw.body;
      ASSERT_TRUE(IsValidUtf8(r.raw.body));
    }
    // Unauthenticated variants of the same garbage are always 401.
    if (i % 50 == 0) {
      Reply u = Call(method, target, body, "", std::string("Bearer ") + random_bytes(40));
      ASSERT_EQ(u.status, 401);
    }
  }
  EXPECT_GT(statuses[400], 0);
  EXPECT_GT(statuses[404], 0);
  EXPECT_GT(statuses[405], 0);
  EXPECT_GT(statuses[200] + statuses[201] + statuses[204], 0);
  EXPECT_GT(statuses[409], 0);
}

// Well-formed JSON objects with the endpoints' own field names and values of
// random types and sizes: this reaches Identity's own validation, which must
// answer 4xx (never 5xx) to anything.
TEST_F(AdminTest, HostileFieldValues) {
  CreateAgent(R"({"id":"victim","name":"victim","scopes":["s","t"]})");
  Reply secret = Call("POST", "/admin/v1/agents/victim/credentials");
  ASSERT_EQ(secret.status, 201);
  std::mt19937 rng(7);
  auto random_string = [&]() {
    static const std::vector<std::string> kPieces = {"a", "Z", "0", ".", "_", "-", " ", "\"", "\\", "é", "\u2028",
                                                     "\U0001F600", "\t", "%", ":", "/", "agt_", "victim", "s"};
    std::string out;
    size_t n = rng() % 6 == 0 ? 300 + rng() % 3000 : rng() % 12;
    while (out.size() < n) out += kPieces[rng() % kPieces.size()];
    return out;
  };
  std::function<json::value(int)> random_value = [&](int depth) -> json::value {
    switch (rng() % (depth > 3 ? 6 : 8)) {
      case 0: return nullptr;
      case 1: return rng() % 2 == 0;
      case 2: {
        static const int64_t kInts[] = {0, -1, 1, 59, 60, 3600, 2592000, 2592001, 315360000, 315360001,
                                        INT64_MAX, INT64_MIN};
        return kInts[rng() % std::size(kInts)];
      }
      case 3: return static_cast<double>(rng()) / 7.0;
      case 4:
      case 5: return json::value(random_string());
      case 6: {
        json::array a;
        for (size_t i = rng() % 5; i > 0; --i) a.push_back(rng() % 4 ? json::value(random_string()) : random_value(depth + 1));
        return a;
      }
      default: {
        json::object o;
        for (size_t i = rng() % 4; i > 0; --i) o[rng() % 3 ? "keys" : random_string()] = random_value(depth + 1);
        return o;
      }
    }
  };
  struct Target {
    std::string method, path;
    std::vector<std::string> fields;
  };
  const std::vector<Target> targets = {
      {"POST", "/admin/v1/agents", {"id", "name", "owner", "description", "scopes", "metadata", "jwks"}},
      {"PATCH", "/admin/v1/agents/victim", {"name", "owner", "description", "scopes", "metadata", "jwks"}},
      {"POST", "/admin/v1/agents/victim/credentials", {"expires_in"}},
      {"POST", "/admin/v1/agents/victim/credentials/" + secret.str("credential_id") + ":rotate", {"grace"}},
      {"POST", "/admin/v1/api-keys", {"agent_id", "service_account", "scopes", "expires_in"}},
  };
  int ok = 0;
  for (int i = 0; i < 1500; ++i) {
    const Target& t = targets[rng() % targets.size()];
    json::object body;
    for (const auto& f : t.fields) {
      if (rng() % 2) body[f] = random_value(0);
    }
    if (t.path == "/admin/v1/agents" && rng() % 2) body["name"] = random_string();
    Reply r = Call(t.method, t.path, json::serialize(body));
    ASSERT_GE(r.status, 200);
    ASSERT_LT(r.status, 500) << t.method << " " << t.path << " " << json::serialize(body) << " -> " << r.raw.body;
    if (r.status < 300) ++ok;
    if (r.status >= 400) {
      ASSERT_FALSE(r.error_message().empty());
    }
  }
  EXPECT_GT(ok, 0);
  // The victim is still readable and consistent after all that.
  Reply v = Call("GET", "/admin/v1/agents/victim");
  ASSERT_EQ(v.status, 200);
  EXPECT_TRUE(v.obj().at("metadata").is_object());
}

// ------------------------------------------------------------- the token ----

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/aigis_admin_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TokenTest, EnvironmentValue) {
  bool created = true;
  std::string path;
  auto short_token = LoadAdminToken(dir_, "too-short", &created, &path);
  ASSERT_FALSE(short_token.ok());
  EXPECT_EQ(short_token.status().code(), Code::kInvalidArgument);
  EXPECT_NE(short_token.status().message().find("AIGIS_ADMIN_TOKEN"), std::string::npos);
  EXPECT_NE(short_token.status().message().find("32"), std::string::npos);
  EXPECT_EQ(short_token.status().message().find("too-short"), std::string::npos);  // never echo the token
  EXPECT_FALSE(LoadAdminToken(dir_, "", &created, &path).ok());
  EXPECT_FALSE(LoadAdminToken(dir_, "0123456789 0123456789 0123456789 0123", &created, &path).ok());

  std::string good = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto ok = LoadAdminToken(dir_, good.c_str(), &created, &path);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, good);
  EXPECT_FALSE(created);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/admin.token"));  // env wins, no file
}

TEST_F(TokenTest, GeneratedFileIsPrivateAndStable) {
  std::string data = dir_ + "/nested/data";  // created on demand
  bool created = false;
  std::string path;
  auto first = LoadAdminToken(data, nullptr, &created, &path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(created);
  EXPECT_EQ(path, data + "/admin.token");
  EXPECT_GE(first->size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(data.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);

  auto second = LoadAdminToken(data, nullptr, &created, &path);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(created);
  EXPECT_EQ(*second, *first);
  EXPECT_TRUE(LoadAdminToken(data + "/", nullptr, nullptr, nullptr).ok());  // null outputs are fine
}

TEST_F(TokenTest, RefusesExposedOrWeakFiles) {
  std::string path = dir_ + "/admin.token";
  { std::ofstream(path) << "0123456789abcdefghijklmnopqrstuvwxyz\n"; }
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  bool created = false;
  auto exposed = LoadAdminToken(dir_, nullptr, &created, nullptr);
  ASSERT_FALSE(exposed.ok());
  EXPECT_NE(exposed.status().message().find("chmod 600"), std::string::npos) << exposed.status().message();
  ASSERT_EQ(::chmod(path.c_str(), 0604), 0);
  EXPECT_FALSE(LoadAdminToken(dir_, nullptr, &created, nullptr).ok());

  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto ok = LoadAdminToken(dir_, nullptr, &created, nullptr);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, "0123456789abcdefghijklmnopqrstuvwxyz");  // trailing newline trimmed
  EXPECT_FALSE(created);

  { std::ofstream(path, std::ios::trunc) << "short\n"; }
  auto weak = LoadAdminToken(dir_, nullptr, &created, nullptr);
  ASSERT_FALSE(weak.ok());
  EXPECT_NE(weak.status().message().find("at least 32"), std::string::npos) << weak.status().message();

  std::filesystem::remove(path);
  std::filesystem::create_directory(path);  // not a regular file
  EXPECT_FALSE(LoadAdminToken(dir_, nullptr, &created, nullptr).ok());
}

}  // namespace
}  // namespace aigis::admin

// The authorize stage on its own: an Exchange in, a Decision and the
// recorded checks out, against a real authz::Service on in-memory SQLite.
#include "gateway/authorize.h"

#include <gtest/gtest.h>

#include "store/store.h"

namespace aigis::gateway {
namespace {

class AuthorizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::OpenSqlite({":memory:"});
    ASSERT_TRUE(db.ok());
    db_ = std::move(*db);
    auto svc = authz::Service::Open(*db_);
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    svc_ = *svc;
    auto id = authz::EnsureStore(*svc_, "default", "aigis", authz::DefaultModelDsl(),
                                 {"llm_model:model-a#can_use@agent:bot"});
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    store_id_ = *id;
    cfg_.authz.enabled = true;
    config::AuthzCheckConfig chk;
    chk.relation = "can_use";
    chk.object = "llm_model:{request.model}";
    cfg_.authz.checks["llm"] = {chk};
    stage_ = MakeAuthorizeStage(svc_);
  }

  Exchange Ex(std::string kind, std::string id, std::string model) {
    Exchange ex;
    ex.request_id = "req1";
    ex.config = &cfg_;
    ex.principal.kind = std::move(kind);
    ex.principal.id = std::move(id);
    ex.model = model;
    ex.upstream_model = std::move(model);
    ex.remote = "10.1.2.3:5555";
    return ex;
  }

  void Grant(const std::string& tuple, bool write = true) {
    auto t = authz::ParseTupleString(tuple);
    ASSERT_TRUE(t.ok());
    std::vector<authz::TupleKey> w, d;
    (write ? w : d).push_back(*t);
    ASSERT_TRUE(svc_->Write("default", store_id_, "", w, d).ok());
  }

  std::unique_ptr<store::Store> db_;
  std::shared_ptr<authz::Service> svc_;
  std::string store_id_;
  config::Config cfg_;
  std::shared_ptr<AuthorizeStage> stage_;
};

TEST_F(AuthorizeTest, AllowsTheGrantedModelAndDeniesAnother) {
  Exchange a = Ex("agent", "bot", "model-a");
  EXPECT_FALSE(stage_->OnRequest(a).denied());
  ASSERT_EQ(a.authz.size(), 1u);
  EXPECT_TRUE(a.authz[0].allowed);
  EXPECT_EQ(a.authz[0].user, "agent:bot");
  EXPECT_EQ(a.authz[0].object, "llm_model:model-a");
  EXPECT_EQ(a.authz[0].decision_id, "req1.authz.0");
  EXPECT_FALSE(a.authz[0].model_id.empty());
  EXPECT_GE(a.authz[0].revision, 1u);
  ASSERT_FALSE(a.authz[0].explanation.empty());
  EXPECT_EQ(a.authz[0].explanation.back(), "tuple llm_model:model-a#can_use@agent:bot");

  Exchange b = Ex("agent", "bot", "model-b");
  Decision d = stage_->OnRequest(b);
  ASSERT_TRUE(d.denied());
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.code, "permission_denied");
  EXPECT_EQ(d.reason, "agent:bot may not can_use llm_model:model-b (decision req1.authz.0)");
  ASSERT_EQ(d.headers.size(), 1u);
  EXPECT_EQ(d.headers[0].value, "req1.authz.0");
  ASSERT_EQ(b.authz.size(), 1u);
  EXPECT_FALSE(b.authz[0].allowed);

  // The same question again is answered from the cache, with the same record.
  Exchange again = Ex("agent", "bot", "model-a");
  EXPECT_FALSE(stage_->OnRequest(again).denied());
  EXPECT_TRUE(again.authz[0].cached);
  EXPECT_EQ(again.authz[0].explanation, a.authz[0].explanation);
  auto st = stage_->stats();
  EXPECT_EQ(st.allowed, 2u);
  EXPECT_EQ(st.denied, 1u);
  EXPECT_EQ(st.errors, 0u);
  EXPECT_EQ(st.cache_hits, 1u);
}

TEST_F(AuthorizeTest, OnBehalfOfNeedsTheUserAndEveryActor) {
  Exchange ex = Ex("user", "alice", "model-a");
  ex.principal.act = {"bot"};
  Decision d = stage_->OnRequest(ex);
  ASSERT_TRUE(d.denied()) << "the agent may, the user may not";
  EXPECT_NE(d.reason.find("user:alice may not"), std::string::npos) << d.reason;

  Grant("llm_model:model-a#can_use@user:alice");
  Exchange ok = Ex("user", "alice", "model-a");
  ok.principal.act = {"bot"};
  EXPECT_FALSE(stage_->OnRequest(ok).denied());
  ASSERT_EQ(ok.authz.size(), 2u);
  EXPECT_EQ(ok.authz[0].user, "user:alice");
  EXPECT_EQ(ok.authz[1].user, "agent:bot");

  Grant("llm_model:model-a#can_use@agent:bot", /*write=*/false);
  Exchange revoked = Ex("user", "alice", "model-a");
  revoked.principal.act = {"bot"};
  Decision r = stage_->OnRequest(revoked);
  ASSERT_TRUE(r.denied()) << "revoking the agent's grant is effective on the next request";
  EXPECT_NE(r.reason.find("agent:bot may not"), std::string::npos) << r.reason;
  EXPECT_EQ(r.reason.find("(decision req1.authz.1)") != std::string::npos, true) << r.reason;
}

TEST_F(AuthorizeTest, AnonymousCallersAreThePublic) {
  Exchange ex = Ex("anonymous", "", "model-a");
  EXPECT_TRUE(stage_->OnRequest(ex).denied());
  Grant("llm_model:model-a#can_use@user:*");
  Exchange ok = Ex("anonymous", "", "model-a");
  EXPECT_FALSE(stage_->OnRequest(ok).denied());
  EXPECT_EQ(ok.authz[0].user, "user:*");
}

TEST_F(AuthorizeTest, TemplatesAndContextualTuples) {
  config::AuthzCheckConfig chk;
  chk.user = "agent:{principal.id}";
  chk.relation = "can_call";
  chk.object = "tool:{request.upstream_model}/run";
  chk.contextual_tuples = {"tool:{request.upstream_model}/run#parent@tool:{request.upstream_model}/*"};
  cfg_.authz.checks["llm"] = {chk};
  Grant("tool:srv/*#can_call@agent:bot");
  Exchange ex = Ex("agent", "bot", "srv");
  EXPECT_FALSE(stage_->OnRequest(ex).denied());
  Exchange other = Ex("agent", "bot", "other");
  EXPECT_TRUE(stage_->OnRequest(other).denied());
}

TEST_F(AuthorizeTest, FailsClosed) {
  // An object id the model cannot hold.
  Exchange bad = Ex("agent", "bot", "ft:gpt:acme");
  Decision d = stage_->OnRequest(bad);
  ASSERT_TRUE(d.denied());
  EXPECT_NE(d.reason.find("authorization could not be decided"), std::string::npos) << d.reason;
  ASSERT_EQ(bad.authz.size(), 1u);
  EXPECT_FALSE(bad.authz[0].error.empty());

  // Another tenant without the store.
  Exchange t = Ex("agent", "bot", "model-a");
  t.tenant = "other";
  Decision dt = stage_->OnRequest(t);
  ASSERT_TRUE(dt.denied());
  EXPECT_NE(dt.reason.find("tenant 'other' has no authorization store 'aigis'"), std::string::npos) << dt.reason;

  // The store deleted after it was resolved.
  ASSERT_TRUE(svc_->DeleteStore("default", store_id_).ok());
  Exchange gone = Ex("agent", "bot", "model-a");
  EXPECT_TRUE(stage_->OnRequest(gone).denied());

  // Disabled: no check at all.
  cfg_.authz.enabled = false;
  Exchange off = Ex("agent", "bot", "model-b");
  EXPECT_FALSE(stage_->OnRequest(off).denied());
  EXPECT_TRUE(off.authz.empty());
}

TEST_F(AuthorizeTest, ConditionsGetTheClientAddress) {
  Grant("data_source:x#reader@agent:bot");  // unconditional: a control
  auto t = authz::ParseTupleString("data_source:hr#reader@agent:bot");
  ASSERT_TRUE(t.ok());
  t->condition = "from_network";
  t->condition_context = R"({"cidr":"10.0.0.0/8"})";
  ASSERT_TRUE(svc_->Write("default", store_id_, "", {*t}, {}).ok());
  config::AuthzCheckConfig chk;
  chk.relation = "can_read";
  chk.object = "data_source:{request.model}";
  cfg_.authz.checks["llm"] = {chk};
  Exchange in = Ex("agent", "bot", "hr");
  EXPECT_FALSE(stage_->OnRequest(in).denied());
  Exchange out = Ex("agent", "bot", "hr");
  out.remote = "192.168.0.1:1";
  EXPECT_TRUE(stage_->OnRequest(out).denied());
}

TEST(ExpandTemplate, SubstitutesKnownNames) {
  std::vector<std::pair<std::string_view, std::string>> vars = {{"a", "1"}, {"b.c", "two"}};
  EXPECT_EQ(ExpandTemplate("x:{a}/{b.c}", vars), "x:1/two");
  EXPECT_EQ(ExpandTemplate("{nope}-{a}", vars), "-1");
  EXPECT_EQ(ExpandTemplate("open{a", vars), "open{a");
}

}  // namespace
}  // namespace aigis::gateway

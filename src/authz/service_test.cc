#include <gtest/gtest.h>

#include <set>

#include "authz/authz.h"
#include "store/store.h"

namespace aigis::authz {
namespace {

constexpr std::string_view kModel = R"({
  "schema_version": "1.1",
  "type_definitions": [
    {"type": "user"},
    {"type": "group",
     "relations": {"member": {"this": {}}},
     "metadata": {"relations": {"member": {"directly_related_user_types": [{"type": "user"}]}}}},
    {"type": "document",
     "relations": {"viewer": {"this": {}}, "editor": {"this": {}}},
     "metadata": {"relations": {
       "viewer": {"directly_related_user_types": [{"type": "user"}, {"type": "user", "wildcard": {}}, {"type": "group", "relation": "member"}]},
       "editor": {"directly_related_user_types": [{"type": "user"}]}}}},
    {"type": "folder",
     "relations": {"viewer": {"this": {}}},
     "metadata": {"relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}}}
  ]
})";

TupleKey T(std::string o, std::string r, std::string u) { return TupleKey{std::move(o), std::move(r), std::move(u), "", ""}; }

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::OpenSqlite({":memory:"});
    ASSERT_TRUE(s.ok()) << s.status().message();
    db_ = std::move(s).value();
    auto svc = Service::Open(*db_);
    ASSERT_TRUE(svc.ok()) << svc.status().message();
    svc_ = std::move(svc).value();
  }
  std::shared_ptr<Service> Reopen() {
    auto svc = Service::Open(*db_);
    EXPECT_TRUE(svc.ok()) << svc.status().message();
    return svc.ok() ? std::move(svc).value() : nullptr;
  }
  bool Allowed(Service& svc, const std::string& store, const TupleKey& t) {
    auto view = svc.View("default", store, "");
    EXPECT_TRUE(view.ok()) << view.status().message();
    if (!view.ok()) return false;
    auto r = view->engine->Check(view->tuples, CheckRequest{t, {}, "", false});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() && r->allowed;
  }

  std::unique_ptr<store::Store> db_;
  std::shared_ptr<Service> svc_;
};

TEST(Ulid, ShapeAndOrder) {
  std::string prev;
  for (int i = 0; i < 1000; ++i) {
    std::string u = NewUlid();
    ASSERT_EQ(u.size(), 26u);
    for (char c : u) EXPECT_NE(std::string_view("0123456789ABCDEFGHJKMNPQRSTVWXYZ").find(c), std::string_view::npos);
    EXPECT_LT(prev, u);
    prev = u;
  }
}

TEST_F(ServiceTest, StoresModelsTuplesPersistAcrossReopen) {
  auto st = svc_->CreateStore("default", "docs");
  ASSERT_TRUE(st.ok()) << st.status().message();
  auto other = svc_->CreateStore("other-tenant", "x");
  ASSERT_TRUE(other.ok());
  auto model = svc_->WriteModel("default", st->id, kModel);
  ASSERT_TRUE(model.ok()) << model.status().message();
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:1", "viewer", "user:anne"), T("document:2", "viewer", "user:*")}, {}).ok());
  ASSERT_TRUE(svc_->Write("default", st->id, *model, {T("folder:1", "viewer", "user:bob")}, {T("document:1", "viewer", "user:anne")}).ok());
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:4", "viewer", "group:eng#member"), T("group:eng", "member", "user:dan")}, {}).ok());

  auto again = Reopen();
  ASSERT_TRUE(again);
  auto got = again->GetStore("default", st->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "docs");
  EXPECT_FALSE(again->GetStore("default", other->id).ok());  // tenant isolation
  auto stores = again->ListStores("default", 0, "");
  ASSERT_TRUE(stores.ok());
  EXPECT_EQ(stores->items.size(), 1u);
  auto latest = again->GetModel("default", st->id, "");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->id, *model);
  EXPECT_FALSE(Allowed(*again, st->id, T("document:1", "viewer", "user:anne")));
  EXPECT_TRUE(Allowed(*again, st->id, T("document:2", "viewer", "user:zed")));
  EXPECT_TRUE(Allowed(*again, st->id, T("folder:1", "viewer", "user:bob")));
  EXPECT_TRUE(Allowed(*again, st->id, T("document:4", "viewer", "user:dan")));
  EXPECT_FALSE(Allowed(*again, st->id, T("document:4", "viewer", "user:bob")));
  auto read = again->Read("default", st->id, {}, 0, "");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->items.size(), 4u);
  EXPECT_GT(read->items[0].timestamp_ms, 0);

  // Writes after reopen continue the changelog.
  ASSERT_TRUE(again->Write("default", st->id, "", {T("document:3", "editor", "user:carl")}, {}).ok());
  auto changes = again->ReadChanges("default", st->id, "", 0, "");
  ASSERT_TRUE(changes.ok());
  ASSERT_EQ(changes->items.size(), 7u);
  EXPECT_FALSE(changes->items[2].write);  // deletes are logged before writes
  EXPECT_EQ(changes->items[2].key.object, "document:1");

  ASSERT_TRUE(again->DeleteStore("default", st->id).ok());
  EXPECT_EQ(again->GetStore("default", st->id).status().code(), Code::kNotFound);
  EXPECT_FALSE(Reopen()->GetStore("default", st->id).ok());
}

TEST_F(ServiceTest, WriteErrors) {
  auto st = svc_->CreateStore("default", "docs");
  ASSERT_TRUE(st.ok());
  // No model yet.
  Status s = svc_->Write("default", st->id, "", {T("document:1", "viewer", "user:anne")}, {});
  EXPECT_EQ(OpenFgaErrorCode(s), 0);
  EXPECT_NE(s.message().find("latest_authorization_model_not_found"), std::string::npos) << s.message();
  EXPECT_FALSE(svc_->WriteModel("default", st->id, R"({"schema_version":"1.1","type_definitions":[{"type":"x","relations":{"r":{"computedUserset":{"relation":"nope"}}}}]})").ok());
  ASSERT_TRUE(svc_->WriteModel("default", st->id, kModel).ok());
  EXPECT_FALSE(svc_->Write("default", st->id, "", {T("document:1", "owner", "user:anne")}, {}).ok());
  EXPECT_FALSE(svc_->Write("default", st->id, "", {}, {T("document:1", "viewer", "user:anne")}).ok());
  EXPECT_FALSE(svc_->Write("default", st->id, "01ARZ3NDEKTSV4RRFFQ69G5FAV", {T("document:1", "viewer", "user:anne")}, {}).ok());
  EXPECT_EQ(svc_->Write("default", "nope", "", {T("document:1", "viewer", "user:anne")}, {}).code(), Code::kNotFound);
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:1", "viewer", "user:anne")}, {}).ok());
  EXPECT_FALSE(svc_->Write("default", st->id, "", {T("document:1", "viewer", "user:anne")}, {}).ok());  // exists
  // A failed write leaves nothing behind, in memory or on disk.
  EXPECT_FALSE(svc_->Write("default", st->id, "", {T("document:5", "viewer", "user:x"), T("document:5", "bad", "user:x")}, {}).ok());
  EXPECT_EQ(svc_->Read("default", st->id, {}, 0, "")->items.size(), 1u);
  EXPECT_EQ(Reopen()->Read("default", st->id, {}, 0, "")->items.size(), 1u);
  EXPECT_EQ(svc_->ReadChanges("default", st->id, "", 0, "")->items.size(), 1u);
}

TEST_F(ServiceTest, Paging) {
  auto st = svc_->CreateStore("default", "docs");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(svc_->WriteModel("default", st->id, kModel).ok());
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:" + std::to_string(i), "viewer", "user:a")}, {}).ok());
  }
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("folder:1", "viewer", "user:a")}, {}).ok());
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = svc_->ReadChanges("default", st->id, "document", 3, token);
    ASSERT_TRUE(page.ok()) << page.status().message();
    for (const auto& c : page->items) seen.insert(c.key.object);
    if (page->items.empty()) break;
    token = page->continuation_token;
    ++pages;
  } while (pages < 10);
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(pages, 3);
  // The token of the last page stays valid for polling.
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:9", "viewer", "user:a")}, {}).ok());
  auto more = svc_->ReadChanges("default", st->id, "document", 3, token);
  ASSERT_TRUE(more.ok());
  ASSERT_EQ(more->items.size(), 1u);
  EXPECT_EQ(more->items[0].key.object, "document:9");
  EXPECT_FALSE(svc_->ReadChanges("default", st->id, "", 3, "!!garbage").ok());

  std::string rtoken;
  size_t total = 0;
  for (int i = 0; i < 10; ++i) {
    auto page = svc_->Read("default", st->id, T("document:", "", ""), 4, rtoken);
    ASSERT_TRUE(page.ok()) << page.status().message();
    total += page->items.size();
    rtoken = page->continuation_token;
    if (rtoken.empty()) break;
  }
  EXPECT_EQ(total, 8u);
  EXPECT_FALSE(svc_->Read("default", st->id, {}, 1000, "").ok());
}

TEST_F(ServiceTest, ConditionalTuplesPersist) {
  constexpr std::string_view kCondModel = R"({
    "schema_version": "1.1",
    "type_definitions": [
      {"type": "user"},
      {"type": "document", "relations": {"viewer": {"this": {}}},
       "metadata": {"relations": {"viewer": {"directly_related_user_types": [{"type": "user", "condition": "small"}]}}}}
    ],
    "conditions": {"small": {"name": "small", "expression": "x < limit",
      "parameters": {"x": {"type_name": "TYPE_NAME_INT"}, "limit": {"type_name": "TYPE_NAME_INT"}}}}
  })";
  auto st = svc_->CreateStore("default", "c");
  ASSERT_TRUE(st.ok());
  auto model = svc_->WriteModel("default", st->id, kCondModel);
  ASSERT_TRUE(model.ok()) << model.status().message();
  TupleKey t{"document:1", "viewer", "user:anne", "small", R"({"limit":10})"};
  ASSERT_TRUE(svc_->Write("default", st->id, "", {t}, {}).ok());
  auto again = Reopen();
  ASSERT_TRUE(again);
  auto read = again->Read("default", st->id, {}, 0, "");
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->items.size(), 1u);
  EXPECT_EQ(read->items[0].key, t);
  auto changes = again->ReadChanges("default", st->id, "", 0, "");
  ASSERT_TRUE(changes.ok());
  ASSERT_EQ(changes->items.size(), 1u);
  EXPECT_EQ(changes->items[0].key.condition, "small");
}


TEST_F(ServiceTest, CheckUsesAPerStoreCacheInvalidatedByWrites) {
  auto st = svc_->CreateStore("default", "docs");
  ASSERT_TRUE(st.ok());
  auto model = svc_->WriteModel("default", st->id, kModel);
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:1", "viewer", "group:eng#member"), T("group:eng", "member", "user:anne")}, {}).ok());
  CheckRequest req{T("document:1", "viewer", "user:anne"), {}, "", false};
  auto first = svc_->Check("default", st->id, "", req);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->result.allowed);
  EXPECT_FALSE(first->cached);
  EXPECT_EQ(first->model_id, *model);
  EXPECT_EQ(first->revision, 1u);
  auto second = svc_->Check("default", st->id, *model, req);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->cached);
  EXPECT_TRUE(second->result.allowed);
  // An unrelated write keeps the entry (the cache survives the store's
  // writes); a write to a list the check read drops it.
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("folder:1", "viewer", "user:bob")}, {}).ok());
  auto third = svc_->Check("default", st->id, "", req);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->cached);
  EXPECT_EQ(third->revision, 2u);
  ASSERT_TRUE(svc_->Write("default", st->id, "", {}, {T("group:eng", "member", "user:anne")}).ok());
  auto fourth = svc_->Check("default", st->id, "", req);
  ASSERT_TRUE(fourth.ok());
  EXPECT_FALSE(fourth->cached);
  EXPECT_FALSE(fourth->result.allowed);
  EXPECT_EQ(fourth->revision, 3u);
  // Errors.
  EXPECT_EQ(svc_->Check("default", "nope", "", req).status().code(), Code::kNotFound);
  EXPECT_FALSE(svc_->Check("default", st->id, "01ARZ3NDEKTSV4RRFFQ69G5FAV", req).ok());
  EXPECT_EQ(OpenFgaErrorCode(svc_->Check("default", st->id, "", {T("document:1", "nope", "user:anne"), {}, "", false}).status()), 2000);
  // A deleted and re-created store starts with an empty cache.
  ASSERT_TRUE(svc_->DeleteStore("default", st->id).ok());
  EXPECT_FALSE(svc_->Check("default", st->id, "", req).ok());
}

TEST_F(ServiceTest, FindStoreByName) {
  auto a = svc_->CreateStore("default", "main");
  auto b = svc_->CreateStore("default", "main");
  auto c = svc_->CreateStore("default", "other");
  auto d = svc_->CreateStore("elsewhere", "main");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  auto found = svc_->FindStoreByName("default", "main");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->id, a->id);  // the oldest
  EXPECT_EQ(svc_->FindStoreByName("default", "other")->id, c->id);
  EXPECT_EQ(svc_->FindStoreByName("elsewhere", "main")->id, d->id);
  auto missing = svc_->FindStoreByName("default", "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("store_id_not_found"), std::string::npos);
  ASSERT_TRUE(svc_->DeleteStore("default", a->id).ok());
  EXPECT_EQ(svc_->FindStoreByName("default", "main")->id, b->id);
}

TEST_F(ServiceTest, TimestampsSurviveReopen) {
  auto st = svc_->CreateStore("default", "docs");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(svc_->WriteModel("default", st->id, kModel).ok());
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:1", "viewer", "user:a")}, {}).ok());
  ASSERT_TRUE(svc_->Write("default", st->id, "", {T("document:2", "viewer", "user:a"), T("document:3", "viewer", "user:a")}, {}).ok());
  auto before = svc_->Read("default", st->id, {}, 0, "");
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->items.size(), 3u);
  auto again = Reopen();
  ASSERT_TRUE(again);
  auto after = again->Read("default", st->id, {}, 0, "");
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(after->items[i].key, before->items[i].key);
    EXPECT_EQ(after->items[i].timestamp_ms, before->items[i].timestamp_ms);
    EXPECT_GT(after->items[i].timestamp_ms, 0);
  }
  // The (object, relation) fast path of Read.
  auto one = again->Read("default", st->id, T("document:2", "viewer", ""), 0, "");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->items.size(), 1u);
  EXPECT_EQ(one->items[0].timestamp_ms, before->items[1].timestamp_ms);
}

}  // namespace
}  // namespace aigis::authz

// Unit tests of the check engine with hand-built models (no DSL parser).
#include <gtest/gtest.h>

#include "authz/authz.h"

namespace aigis::authz {
namespace {

using K = Rewrite::Kind;

Rewrite This() { return {}; }
Rewrite Computed(std::string rel) { return {K::kComputed, std::move(rel), "", {}}; }
Rewrite Ttu(std::string rel, std::string tupleset) { return {K::kTupleToUserset, std::move(rel), std::move(tupleset), {}}; }
Rewrite Union(std::vector<Rewrite> c) { return {K::kUnion, "", "", std::move(c)}; }
Rewrite Intersection(std::vector<Rewrite> c) { return {K::kIntersection, "", "", std::move(c)}; }
Rewrite Difference(Rewrite base, Rewrite sub) { return {K::kDifference, "", "", {std::move(base), std::move(sub)}}; }

TypeRestriction T(std::string type) { return {std::move(type), "", false, ""}; }
TypeRestriction Wild(std::string type) { return {std::move(type), "", true, ""}; }
TypeRestriction Set(std::string type, std::string rel) { return {std::move(type), std::move(rel), false, ""}; }
TypeRestriction Cond(std::string type, std::string cond) { return {std::move(type), "", false, std::move(cond)}; }

Relation Rel(std::string name, Rewrite rw, std::vector<TypeRestriction> direct = {}) {
  Relation r;
  r.name = std::move(name);
  r.rewrite = std::move(rw);
  r.directly_related = std::move(direct);
  return r;
}

// user; group{member: [user, user:*, group#member]}; folder{viewer: [user]};
// document{parent: [folder], owner: [user], blocked: [user],
//   editor: [user, group#member] or owner, viewer: [user, user:*] or editor
//   or viewer from parent, can_share: editor and owner,
//   can_read: viewer but not blocked, cond_viewer: [user with c]}
Model TestModel() {
  Model m;
  m.types.push_back({"user", {}, 0});
  m.types.push_back({"group", {Rel("member", This(), {T("user"), Wild("user"), Set("group", "member")})}, 0});
  m.types.push_back({"folder", {Rel("viewer", This(), {T("user")})}, 0});
  TypeDefinition doc{"document", {}, 0};
  doc.relations.push_back(Rel("parent", This(), {T("folder")}));
  doc.relations.push_back(Rel("owner", This(), {T("user")}));
  doc.relations.push_back(Rel("blocked", This(), {T("user")}));
  doc.relations.push_back(Rel("editor", Union({This(), Computed("owner")}), {T("user"), Set("group", "member")}));
  doc.relations.push_back(
      Rel("viewer", Union({This(), Computed("editor"), Ttu("viewer", "parent")}), {T("user"), Wild("user")}));
  doc.relations.push_back(Rel("can_share", Intersection({Computed("editor"), Computed("owner")})));
  doc.relations.push_back(Rel("can_read", Difference(Computed("viewer"), Computed("blocked"))));
  doc.relations.push_back(Rel("cond_viewer", This(), {Cond("user", "c")}));
  m.types.push_back(doc);
  m.conditions.push_back({"c", {{"x", "int", {}}}, "x < 10", 0});
  return m;
}

TupleKey Tk(std::string o, std::string r, std::string u, std::string c = "") {
  return {std::move(o), std::move(r), std::move(u), std::move(c)};
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : model_(TestModel()), engine_(model_) {}
  void W(std::vector<TupleKey> ts) {
    Status st = tuples_.Write(model_, ts);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  bool Allowed(std::string o, std::string r, std::string u, std::vector<TupleKey> ctx = {}) {
    CheckRequest req{Tk(o, r, u), std::move(ctx), "", true};
    auto res = engine_.Check(tuples_, req);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() && res->allowed;
  }
  Model model_;
  Engine engine_;
  TupleSet tuples_;
};

TEST_F(EngineTest, Direct) {
  W({Tk("document:1", "owner", "user:anne")});
  EXPECT_TRUE(Allowed("document:1", "owner", "user:anne"));
  EXPECT_FALSE(Allowed("document:1", "owner", "user:bob"));
  EXPECT_FALSE(Allowed("document:2", "owner", "user:anne"));
}

TEST_F(EngineTest, WildcardMatchesUsersNotUsersets) {
  W({Tk("document:1", "viewer", "user:*")});
  EXPECT_TRUE(Allowed("document:1", "viewer", "user:anyone"));
  EXPECT_TRUE(Allowed("document:1", "viewer", "user:*"));
  EXPECT_FALSE(Allowed("document:1", "viewer", "group:g#member"));
  EXPECT_FALSE(Allowed("document:1", "editor", "user:anyone"));
}

TEST_F(EngineTest, UsersetAndNestedGroups) {
  W({Tk("document:1", "editor", "group:eng#member"), Tk("group:eng", "member", "group:core#member"),
     Tk("group:core", "member", "user:carl")});
  EXPECT_TRUE(Allowed("document:1", "editor", "user:carl"));
  EXPECT_TRUE(Allowed("document:1", "editor", "group:core#member"));
  EXPECT_TRUE(Allowed("document:1", "viewer", "user:carl"));  // computed editor
  EXPECT_FALSE(Allowed("document:1", "editor", "user:dan"));
}

TEST_F(EngineTest, ComputedAndTupleToUserset) {
  W({Tk("document:1", "owner", "user:olga"), Tk("document:1", "parent", "folder:f"),
     Tk("folder:f", "viewer", "user:fay")});
  EXPECT_TRUE(Allowed("document:1", "editor", "user:olga"));
  EXPECT_TRUE(Allowed("document:1", "viewer", "user:olga"));
  EXPECT_TRUE(Allowed("document:1", "viewer", "user:fay"));
  EXPECT_FALSE(Allowed("document:1", "editor", "user:fay"));
}

TEST_F(EngineTest, IntersectionAndExclusion) {
  W({Tk("document:1", "owner", "user:olga"), Tk("document:1", "editor", "user:ed"),
     Tk("document:1", "viewer", "user:*"), Tk("document:1", "blocked", "user:bad")});
  EXPECT_TRUE(Allowed("document:1", "can_share", "user:olga"));   // owner, hence editor
  EXPECT_FALSE(Allowed("document:1", "can_share", "user:ed"));    // editor, not owner
  EXPECT_TRUE(Allowed("document:1", "can_read", "user:someone"));
  EXPECT_FALSE(Allowed("document:1", "can_read", "user:bad"));
}

TEST_F(EngineTest, SelfDefiningUserset) {
  // document:1#editor is, by definition, an editor of document:1 (and so a
  // viewer), even with no tuples at all.
  EXPECT_TRUE(Allowed("document:1", "editor", "document:1#editor"));
  EXPECT_TRUE(Allowed("document:1", "viewer", "document:1#editor"));
  EXPECT_FALSE(Allowed("document:2", "editor", "document:1#editor"));
}

TEST_F(EngineTest, CycleIsFalseNotError) {
  W({Tk("group:a", "member", "group:b#member"), Tk("group:b", "member", "group:a#member")});
  EXPECT_FALSE(Allowed("group:a", "member", "user:x"));
}

TEST_F(EngineTest, DepthLimitIsAnError) {
  std::vector<TupleKey> chain;
  for (int i = 0; i < 30; ++i) {
    chain.push_back(Tk("group:g" + std::to_string(i), "member", "group:g" + std::to_string(i + 1) + "#member"));
  }
  chain.push_back(Tk("group:g30", "member", "user:deep"));
  W(chain);
  auto res = engine_.Check(tuples_, {Tk("group:g0", "member", "user:deep"), {}, "", false});
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(OpenFgaErrorCode(res.status()), 2002);
  EXPECT_TRUE(Allowed("group:g10", "member", "user:deep"));
}

TEST_F(EngineTest, ContextualTuplesApplyToOneRequest) {
  EXPECT_TRUE(Allowed("document:1", "owner", "user:tmp", {Tk("document:1", "owner", "user:tmp")}));
  EXPECT_FALSE(Allowed("document:1", "owner", "user:tmp"));
  auto bad = engine_.Check(tuples_, {Tk("document:1", "owner", "user:tmp"), {Tk("document:1", "owner", "user:*")}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(OpenFgaErrorCode(bad.status()), 2027);
}

TEST_F(EngineTest, RequestValidation) {
  auto r1 = engine_.Check(tuples_, {Tk("document:1", "nope", "user:a"), {}});
  auto r2 = engine_.Check(tuples_, {Tk("document:1", "viewer", "robot:a"), {}});
  auto r3 = engine_.Check(tuples_, {Tk("document:1", "viewer", "a:b:c"), {}});
  for (const auto* r : {&r1, &r2, &r3}) {
    ASSERT_FALSE(r->ok());
    EXPECT_EQ(OpenFgaErrorCode(r->status()), 2000) << r->status().ToString();
  }
  auto lo = engine_.ListObjects(tuples_, "robot", "viewer", "user:a");
  EXPECT_EQ(OpenFgaErrorCode(lo.status()), 2021);
  auto lu = engine_.ListUsers(tuples_, "document:1", "nope", {{"user", ""}});
  EXPECT_EQ(OpenFgaErrorCode(lu.status()), 2022);
}

TEST_F(EngineTest, HostileIdentifiersAreRejectedNotCrashing) {
  const char* bad[] = {"", ":", "user:", ":x", "user:a:b", "user:a#", "user:*#member", "user#x", "user:a b",
                       "group:g#member#member", "user:a@b", "document:*", "\xff:\x00"};
  for (const char* s : bad) {
    Status w1 = tuples_.Write(model_, {Tk(s, "viewer", "user:a")});
    Status w2 = tuples_.Write(model_, {Tk("document:1", "viewer", s)});
    EXPECT_FALSE(w1.ok()) << s;
    EXPECT_FALSE(w2.ok()) << s;
    auto c = engine_.Check(tuples_, {Tk(s, "viewer", s), {}});
    EXPECT_FALSE(c.ok()) << s;
  }
  EXPECT_EQ(tuples_.size(), 0u);
}

TEST_F(EngineTest, WriteErrors) {
  W({Tk("document:1", "owner", "user:a")});
  Status dup = tuples_.Write(model_, {Tk("document:1", "owner", "user:a")});
  EXPECT_EQ(OpenFgaErrorCode(dup), 2017);
  Status missing = tuples_.Write(model_, {}, {Tk("document:1", "owner", "user:zzz")});
  EXPECT_EQ(OpenFgaErrorCode(missing), 2017);
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(model_, {Tk("nope:1", "owner", "user:a")})), 2027);
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(model_, {Tk("document:1", "nope", "user:a")})), 2027);
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(model_, {Tk("document:1", "owner", "user:*")})), 2027);
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(model_, {Tk("document:1", "owner", "group:g#member")})), 2027);
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(model_, {Tk("document:1", "can_share", "user:a")})), 2027);
  EXPECT_TRUE(tuples_.Write(model_, {Tk("document:1", "editor", "group:g#member")}).ok());
  // All or nothing.
  EXPECT_FALSE(tuples_.Write(model_, {Tk("document:2", "owner", "user:a"), Tk("document:2", "owner", "user:*")}).ok());
  EXPECT_FALSE(tuples_.Contains(Tk("document:2", "owner", "user:a")));
  // Copy-on-write snapshots.
  TupleSet snapshot = tuples_;
  EXPECT_TRUE(tuples_.Write(model_, {}, {Tk("document:1", "owner", "user:a")}).ok());
  EXPECT_TRUE(snapshot.Contains(Tk("document:1", "owner", "user:a")));
  EXPECT_FALSE(tuples_.Contains(Tk("document:1", "owner", "user:a")));
  // Unshared versions are updated in place; indexes stay consistent.
  TupleSet solo;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(solo.Write(model_, {Tk("document:" + std::to_string(i), "owner", "user:a")}).ok());
  ASSERT_TRUE(solo.Write(model_, {Tk("document:5", "owner", "user:b")}, {Tk("document:7", "owner", "user:a")}).ok());
  EXPECT_EQ(solo.size(), 100u);
  EXPECT_EQ(solo.ByUser("user:a").size(), 99u);
  EXPECT_EQ(solo.ByObjectRelation("document:5", "owner").size(), 2u);
  EXPECT_TRUE(solo.ByObjectRelation("document:7", "owner").empty());
}

TEST_F(EngineTest, ConditionalTuples) {
  W({Tk("document:1", "cond_viewer", "user:c", "c")});
  // Missing parameter: OpenFGA's validation error (2000).
  auto res = engine_.Check(tuples_, {Tk("document:1", "cond_viewer", "user:c"), {}});
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(OpenFgaErrorCode(res.status()), 2000);
  EXPECT_NE(res.status().message().find("missing context parameters"), std::string::npos);
  auto other = engine_.Check(tuples_, {Tk("document:1", "cond_viewer", "user:d"), {}});
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->allowed);
  auto yes = engine_.Check(tuples_, {Tk("document:1", "cond_viewer", "user:c"), {}, R"({"x": 3})"});
  ASSERT_TRUE(yes.ok());
  EXPECT_TRUE(yes->allowed);
  auto no = engine_.Check(tuples_, {Tk("document:1", "cond_viewer", "user:c"), {}, R"({"x": 30})"});
  ASSERT_TRUE(no.ok());
  EXPECT_FALSE(no->allowed);
  // A value that does not convert to the declared type is an error.
  auto bad = engine_.Check(tuples_, {Tk("document:1", "cond_viewer", "user:c"), {}, R"({"x": "ten"})"});
  EXPECT_EQ(OpenFgaErrorCode(bad.status()), 2000);
  // The tuple's context wins over the request's.
  TupleKey ct = Tk("document:2", "cond_viewer", "user:c", "c");
  ct.condition_context = R"({"x": 1})";
  W({ct});
  auto tuple_wins = engine_.Check(tuples_, {Tk("document:2", "cond_viewer", "user:c"), {}, R"({"x": 50})"});
  ASSERT_TRUE(tuple_wins.ok());
  EXPECT_TRUE(tuple_wins->allowed);
  auto objs = engine_.ListObjects(tuples_, "document", "cond_viewer", "user:c", {}, R"({"x": 50})");
  ASSERT_TRUE(objs.ok());
  EXPECT_EQ(*objs, (std::vector<std::string>{"document:2"}));
  auto users = engine_.ListUsers(tuples_, "document:1", "cond_viewer", {{"user", ""}}, {}, R"({"x": 5})");
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(*users, (std::vector<std::string>{"user:c"}));
}

TEST_F(EngineTest, ConditionContextValidatedOnWrite) {
  TupleKey t = Tk("document:3", "cond_viewer", "user:c", "c");
  t.condition_context = R"({"nope": 1})";
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(engine_.model(), {t})), 2027);
  t.condition_context = R"({"x": "ten"})";
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(engine_.model(), {t})), 2027);
  t.condition_context = "[1]";
  EXPECT_EQ(OpenFgaErrorCode(tuples_.Write(engine_.model(), {t})), 2027);
  t.condition_context = R"({"x": 1})";
  EXPECT_TRUE(tuples_.Write(engine_.model(), {t}).ok());
}

TEST_F(EngineTest, InvalidConditionExpressionFailsCreate) {
  Model m = engine_.model();
  m.conditions[0].expression = "x < ";
  auto e = Engine::Create(m);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(OpenFgaErrorCode(e.status()), 2000);
  m.conditions[0].expression = "y < 10";  // undeclared
  EXPECT_FALSE(Engine::Create(m).ok());
  m.conditions[0].expression = "x < 10";
  EXPECT_TRUE(Engine::Create(m).ok());
}

TEST_F(EngineTest, Explanation) {
  W({Tk("document:1", "parent", "folder:f"), Tk("folder:f", "viewer", "user:fay")});
  auto res = engine_.Check(tuples_, {Tk("document:1", "viewer", "user:fay"), {}, "", true});
  ASSERT_TRUE(res.ok());
  ASSERT_TRUE(res->allowed);
  EXPECT_FALSE(res->explanation.empty());
  EXPECT_EQ(res->explanation.back(), "tuple folder:f#viewer@user:fay");
  EXPECT_GE(res->depth, 1);
  auto deny = engine_.Check(tuples_, {Tk("document:1", "viewer", "user:nobody"), {}, "", true});
  ASSERT_TRUE(deny.ok());
  EXPECT_FALSE(deny->allowed);
  EXPECT_FALSE(deny->explanation.empty());
}

TEST_F(EngineTest, ListObjectsAndUsers) {
  W({Tk("document:1", "owner", "user:a"), Tk("document:2", "parent", "folder:f"), Tk("folder:f", "viewer", "user:a"),
     Tk("document:3", "viewer", "user:*"), Tk("document:3", "editor", "group:g#member"),
     Tk("group:g", "member", "user:b"), Tk("document:4", "owner", "user:b")});
  auto objs = engine_.ListObjects(tuples_, "document", "viewer", "user:a");
  ASSERT_TRUE(objs.ok());
  EXPECT_EQ(*objs, (std::vector<std::string>{"document:1", "document:2", "document:3"}));
  auto users = engine_.ListUsers(tuples_, "document:3", "viewer", {{"user", ""}, {"group", "member"}});
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(*users, (std::vector<std::string>{"group:g#member", "user:*", "user:b"}));
}

}  // namespace
}  // namespace aigis::authz

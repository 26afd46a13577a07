// Unit tests of the check engine with hand-built models (no DSL parser).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "authz/authz.h"
#include "authz/engine_internal.h"

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
  // ListObjects reports the depth error too (group#member is union-only, so
  // the forward chaining runs first and gives way to per-object checks).
  auto listed = engine_.ListObjects(tuples_, "group", "member", "user:deep");
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(OpenFgaErrorCode(listed.status()), 2002);
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


// ------------------------------------------------ storage and cache ----

// A naive model of a tuple set: the live tuples in insertion order.
struct NaiveSet {
  std::vector<TupleKey> tuples;
  bool Has(const TupleKey& t) const {
    return std::any_of(tuples.begin(), tuples.end(), [&](const TupleKey& u) {
      return u.object == t.object && u.relation == t.relation && u.user == t.user;
    });
  }
  void Apply(const std::vector<TupleKey>& writes, const std::vector<TupleKey>& deletes) {
    for (const auto& d : deletes) {
      std::erase_if(tuples, [&](const TupleKey& u) {
        return u.object == d.object && u.relation == d.relation && u.user == d.user;
      });
    }
    tuples.insert(tuples.end(), writes.begin(), writes.end());
  }
};

// Every tuple the test model admits over a small universe.
std::vector<TupleKey> Universe() {
  std::vector<TupleKey> all;
  auto n = [](const char* p, int i) { return std::string(p) + std::to_string(i); };
  for (int g = 0; g < 4; ++g) {
    for (int u = 0; u < 5; ++u) all.push_back(Tk(n("group:g", g), "member", n("user:u", u)));
    all.push_back(Tk(n("group:g", g), "member", "user:*"));
    for (int h = 0; h < 4; ++h) {
      if (h != g) all.push_back(Tk(n("group:g", g), "member", n("group:g", h) + "#member"));
    }
  }
  for (int f = 0; f < 3; ++f) {
    for (int u = 0; u < 5; ++u) all.push_back(Tk(n("folder:f", f), "viewer", n("user:u", u)));
  }
  for (int d = 0; d < 6; ++d) {
    const std::string doc = n("document:d", d);
    for (int f = 0; f < 3; ++f) all.push_back(Tk(doc, "parent", n("folder:f", f)));
    for (int u = 0; u < 5; ++u) {
      for (const char* r : {"owner", "blocked", "editor", "viewer"}) all.push_back(Tk(doc, r, n("user:u", u)));
      TupleKey c = Tk(doc, "cond_viewer", n("user:u", u), "c");
      if (u % 2 == 0) c.condition_context = R"({"x": )" + std::to_string(u * 4) + "}";
      all.push_back(c);
    }
    for (int g = 0; g < 4; ++g) all.push_back(Tk(doc, "editor", n("group:g", g) + "#member"));
    all.push_back(Tk(doc, "viewer", "user:*"));
  }
  return all;
}

std::vector<std::string> Users(const std::vector<TupleView>& v) {
  std::vector<std::string> out;
  for (const auto& t : v) out.emplace_back(t.user);
  return out;
}

std::string Outcome(const Result<CheckResult>& r) {
  if (!r.ok()) return "error " + r.status().message();
  return r->allowed ? "allowed" : "denied";
}

// Many small writes and deletes (which merge segments into the base again
// and again), checked after each step against a naive list, and at the end
// against a TupleSet built in one Write from the same final list; snapshots
// taken on the way must not change.
TEST_F(EngineTest, RandomizedWritesMatchNaiveModelAndFreshSet) {
  const std::vector<TupleKey> universe = Universe();
  std::mt19937_64 rng(42);
  NaiveSet naive;
  std::vector<std::pair<TupleSet, NaiveSet>> snapshots;
  for (int step = 0; step < 1500; ++step) {
    std::vector<TupleKey> writes, deletes;
    std::set<size_t> picked;
    int batch = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < batch; ++i) {
      size_t k = rng() % universe.size();
      if (!picked.insert(k).second) continue;
      (naive.Has(universe[k]) ? deletes : writes).push_back(universe[k]);
    }
    ASSERT_TRUE(tuples_.Write(model_, writes, deletes, 1000 + step).ok()) << step;
    naive.Apply(writes, deletes);
    EXPECT_EQ(tuples_.revision(), static_cast<uint64_t>(step + 1));
    ASSERT_EQ(tuples_.size(), naive.tuples.size()) << step;
    if (step % 100 == 0) snapshots.emplace_back(tuples_, naive);
    // A write of an existing tuple fails and changes nothing.
    if (!naive.tuples.empty()) {
      EXPECT_FALSE(tuples_.Write(model_, {naive.tuples.front()}).ok());
      EXPECT_EQ(tuples_.revision(), static_cast<uint64_t>(step + 1));
    }
  }
  auto same = [&](const TupleSet& set, const NaiveSet& want, const std::string& where) {
    ASSERT_EQ(set.size(), want.tuples.size()) << where;
    std::vector<TupleKey> all;
    for (const auto& v : set.All()) all.push_back(v.ToKey());
    ASSERT_EQ(all, want.tuples) << where;  // insertion order, conditions and contexts
    for (const auto& t : universe) {
      ASSERT_EQ(set.Contains(t), want.Has(t)) << where << " " << t.ToString();
      std::vector<std::string> by_or, by_user;
      for (const auto& w : want.tuples) {
        if (w.object == t.object && w.relation == t.relation) by_or.push_back(w.user);
      }
      ASSERT_EQ(Users(set.ByObjectRelation(t.object, t.relation)), by_or) << where << " " << t.ToString();
      for (const auto& w : want.tuples) {
        if (w.user == t.user) by_user.push_back(w.ToString());
      }
      std::vector<std::string> got_user;
      for (const auto& v : set.ByUser(t.user)) got_user.push_back(v.ToString());
      ASSERT_EQ(got_user, by_user) << where << " " << t.user;
    }
  };
  same(tuples_, naive, "final");
  for (size_t i = 0; i < snapshots.size(); ++i) same(snapshots[i].first, snapshots[i].second, "snapshot " + std::to_string(i));

  TupleSet fresh;
  ASSERT_TRUE(fresh.Write(model_, naive.tuples).ok());
  same(fresh, naive, "fresh");
  std::vector<std::string> users = {"user:u0", "user:u1", "user:u2", "user:u3", "user:u4", "user:nobody", "user:*",
                                    "group:g0#member", "group:g2#member", "document:d1#editor"};
  std::vector<std::string> objects;
  for (int d = 0; d < 7; ++d) objects.push_back("document:d" + std::to_string(d));
  for (const char* ctx : {"", R"({"x": 5})"}) {
    for (const auto& u : users) {
      for (const auto& o : objects) {
        for (const char* r : {"viewer", "editor", "can_share", "can_read", "cond_viewer"}) {
          CheckRequest req{Tk(o, r, u), {}, ctx, false};
          auto a = engine_.Check(tuples_, req);
          auto b = engine_.Check(fresh, req);
          ASSERT_EQ(Outcome(a), Outcome(b)) << req.tuple.ToString() << " " << ctx;
          // The explain mode scans whole lists in order: the fast path must
          // agree with it.
          req.explain = true;
          ASSERT_EQ(Outcome(engine_.Check(tuples_, req)), Outcome(a)) << req.tuple.ToString() << " " << ctx;
        }
      }
      for (const char* r : {"viewer", "editor", "can_read", "cond_viewer"}) {
        auto a = engine_.ListObjects(tuples_, "document", r, u, {}, ctx);
        auto b = engine_.ListObjects(fresh, "document", r, u, {}, ctx);
        ASSERT_EQ(a.ok(), b.ok()) << u << " " << r;
        if (!a.ok()) continue;
        ASSERT_EQ(*a, *b) << u << " " << r;
        // Reverse reachability finds exactly what checking every object
        // of the type finds.
        std::vector<std::string> brute;
        std::set<std::string> docs;
        for (const auto& t : naive.tuples) {
          if (t.object.starts_with("document:")) docs.insert(t.object);
        }
        for (const auto& d : docs) {
          auto c = engine_.Check(fresh, {Tk(d, r, u), {}, ctx, false});
          if (c.ok() && c->allowed) brute.push_back(d);
        }
        ASSERT_EQ(*a, brute) << u << " " << r;
      }
    }
    for (const auto& o : objects) {
      auto a = engine_.ListUsers(tuples_, o, "viewer", {{"user", ""}, {"group", "member"}}, {}, ctx);
      auto b = engine_.ListUsers(fresh, o, "viewer", {{"user", ""}, {"group", "member"}}, {}, ctx);
      ASSERT_EQ(a.ok(), b.ok()) << o;
      if (a.ok()) ASSERT_EQ(*a, *b) << o;
    }
  }
}

TEST_F(EngineTest, TimestampsRevisionAndModifiedAt) {
  EXPECT_EQ(tuples_.revision(), 0u);
  EXPECT_EQ(tuples_.ModifiedAt("document:1", "owner"), 0u);
  ASSERT_TRUE(tuples_.Write(model_, {Tk("document:1", "owner", "user:a")}, {}, 111).ok());
  ASSERT_TRUE(tuples_.Write(model_, {Tk("document:2", "owner", "user:a")}, {}, 222).ok());
  EXPECT_EQ(tuples_.revision(), 2u);
  EXPECT_EQ(tuples_.ModifiedAt("document:1", "owner"), 1u);
  EXPECT_EQ(tuples_.ModifiedAt("document:2", "owner"), 2u);
  EXPECT_EQ(tuples_.ModifiedAt("document:1", "viewer"), 0u);
  auto found = tuples_.Find(Tk("document:2", "owner", "user:a"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->timestamp_ms, 222);
  EXPECT_EQ(tuples_.ByObjectRelation("document:1", "owner").at(0).timestamp_ms, 111);
  // A failed write changes nothing.
  EXPECT_FALSE(tuples_.Write(model_, {Tk("document:1", "owner", "user:a")}).ok());
  EXPECT_EQ(tuples_.revision(), 2u);
  // Deleting keeps the list's revision after it empties.
  TupleSet before = tuples_;
  ASSERT_TRUE(tuples_.Write(model_, {}, {Tk("document:1", "owner", "user:a")}).ok());
  EXPECT_EQ(tuples_.ModifiedAt("document:1", "owner"), 3u);
  EXPECT_TRUE(tuples_.ByObjectRelation("document:1", "owner").empty());
  EXPECT_EQ(before.ModifiedAt("document:1", "owner"), 1u);  // the snapshot is unaffected
  EXPECT_EQ(before.revision(), 2u);
  EXPECT_TRUE(before.Contains(Tk("document:1", "owner", "user:a")));
  // Many writes: merges keep the revisions.
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(tuples_.Write(model_, {Tk("document:x" + std::to_string(i), "owner", "user:a")}).ok());
  }
  EXPECT_EQ(tuples_.ModifiedAt("document:1", "owner"), 3u);
  EXPECT_EQ(tuples_.ModifiedAt("document:2", "owner"), 2u);
  EXPECT_EQ(tuples_.ModifiedAt("document:x7", "owner"), 11u);
  EXPECT_EQ(tuples_.revision(), 203u);
  EXPECT_GT(tuples_.MemoryUsage(), 0u);
}

TEST_F(EngineTest, CheckCacheHitsAndInvalidatesExactly) {
  W({Tk("document:1", "editor", "group:g#member"), Tk("group:g", "member", "user:a"), Tk("document:2", "owner", "user:b")});
  CheckCache cache;
  CheckRequest req{Tk("document:1", "viewer", "user:a"), {}, "", false};
  bool hit = true;
  auto r = cache.Check(engine_, "m1", tuples_, req, &hit);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->allowed);
  EXPECT_FALSE(hit);
  r = cache.Check(engine_, "m1", tuples_, req, &hit);
  EXPECT_TRUE(hit);
  EXPECT_TRUE(r->allowed);
  EXPECT_EQ(cache.size(), 1u);
  // Another model id is another entry.
  cache.Check(engine_, "m2", tuples_, req, &hit);
  EXPECT_FALSE(hit);
  // A write to a list the check did not read keeps the entry.
  W({Tk("document:2", "owner", "user:c")});
  r = cache.Check(engine_, "m1", tuples_, req, &hit);
  EXPECT_TRUE(hit);
  EXPECT_TRUE(r->allowed);
  // A write to a list it read drops it, and the new answer is computed.
  ASSERT_TRUE(tuples_.Write(model_, {}, {Tk("group:g", "member", "user:a")}).ok());
  r = cache.Check(engine_, "m1", tuples_, req, &hit);
  EXPECT_FALSE(hit);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->allowed);
  r = cache.Check(engine_, "m1", tuples_, req, &hit);
  EXPECT_TRUE(hit);
  EXPECT_FALSE(r->allowed);
  // A denial that depended on an empty list: writing to that list drops it.
  W({Tk("document:1", "viewer", "user:a")});
  r = cache.Check(engine_, "m1", tuples_, req, &hit);
  EXPECT_FALSE(hit);
  EXPECT_TRUE(r->allowed);
  // A list whose relation the store had never seen when the entry was made.
  CheckRequest cond{Tk("document:3", "cond_viewer", "user:z"), {}, R"({"x": 1})", false};
  r = cache.Check(engine_, "m1", tuples_, cond, &hit);
  EXPECT_FALSE(r->allowed);
  EXPECT_TRUE(cache.Check(engine_, "m1", tuples_, cond, &hit).ok());
  EXPECT_TRUE(hit);
  W({Tk("document:3", "cond_viewer", "user:z", "c")});
  r = cache.Check(engine_, "m1", tuples_, cond, &hit);
  EXPECT_FALSE(hit);
  EXPECT_TRUE(r->allowed);
  // An older snapshot never uses an entry computed on a newer one.
  TupleSet old = tuples_;
  W({Tk("document:9", "owner", "user:q")});
  CheckRequest q{Tk("document:9", "owner", "user:q"), {}, "", false};
  EXPECT_TRUE(cache.Check(engine_, "m1", tuples_, q, &hit)->allowed);
  EXPECT_FALSE(cache.Check(engine_, "m1", old, q, &hit)->allowed);
  EXPECT_FALSE(hit);
  // Another lineage (a set with the same revision) never hits.
  TupleSet other;
  for (uint64_t i = 0; i < tuples_.revision(); ++i) {
    ASSERT_TRUE(other.Write(model_, {Tk("document:o" + std::to_string(i), "owner", "user:q")}).ok());
  }
  EXPECT_FALSE(cache.Check(engine_, "m1", other, q, &hit)->allowed);
  EXPECT_FALSE(hit);
  // A fork (a write on a copy of a version that was written since) is
  // another lineage, even at the same revision.
  TupleSet base = tuples_;
  TupleSet fork = base;
  W({Tk("document:f", "owner", "user:f")});
  ASSERT_TRUE(fork.Write(model_, {Tk("document:g", "owner", "user:f")}).ok());
  ASSERT_EQ(fork.revision(), tuples_.revision());
  CheckRequest f{Tk("document:f", "owner", "user:f"), {}, "", false};
  EXPECT_TRUE(cache.Check(engine_, "m1", tuples_, f, &hit)->allowed);
  EXPECT_FALSE(cache.Check(engine_, "m1", fork, f, &hit)->allowed);
  EXPECT_FALSE(hit);
  EXPECT_TRUE(fork.Contains(Tk("document:g", "owner", "user:f")));
  EXPECT_FALSE(fork.Contains(Tk("document:f", "owner", "user:f")));
  EXPECT_FALSE(tuples_.Contains(Tk("document:g", "owner", "user:f")));
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(EngineTest, CheckCacheKeysContextualTuplesAndSkipsErrors) {
  CheckCache cache;
  CheckRequest req{Tk("document:1", "can_share", "user:a"),
                   {Tk("document:1", "owner", "user:a"), Tk("document:1", "editor", "user:a")}, "", false};
  bool hit = true;
  EXPECT_TRUE(cache.Check(engine_, "m", tuples_, req, &hit)->allowed);
  EXPECT_FALSE(hit);
  std::swap(req.contextual_tuples[0], req.contextual_tuples[1]);  // order does not matter
  EXPECT_TRUE(cache.Check(engine_, "m", tuples_, req, &hit)->allowed);
  EXPECT_TRUE(hit);
  req.contextual_tuples = {Tk("document:1", "editor", "user:a")};
  EXPECT_FALSE(cache.Check(engine_, "m", tuples_, req, &hit)->allowed);
  EXPECT_FALSE(hit);
  req.contextual_tuples.clear();
  EXPECT_FALSE(cache.Check(engine_, "m", tuples_, req, &hit)->allowed);
  EXPECT_FALSE(hit);
  // Context and explain are part of the key.
  W({Tk("document:1", "cond_viewer", "user:a", "c")});
  CheckRequest c{Tk("document:1", "cond_viewer", "user:a"), {}, R"({"x": 1})", false};
  EXPECT_TRUE(cache.Check(engine_, "m", tuples_, c, &hit)->allowed);
  c.context = R"({"x": 11})";
  EXPECT_FALSE(cache.Check(engine_, "m", tuples_, c, &hit)->allowed);
  EXPECT_FALSE(hit);
  c.explain = true;
  auto e = cache.Check(engine_, "m", tuples_, c, &hit);
  EXPECT_FALSE(hit);
  EXPECT_FALSE(e->explanation.empty());
  e = cache.Check(engine_, "m", tuples_, c, &hit);
  EXPECT_TRUE(hit);
  EXPECT_FALSE(e->explanation.empty());
  // Errors are not cached.
  c.context = "";
  c.explain = false;
  EXPECT_FALSE(cache.Check(engine_, "m", tuples_, c, &hit).ok());
  EXPECT_FALSE(cache.Check(engine_, "m", tuples_, c, &hit).ok());
  EXPECT_FALSE(hit);
  // Bounded.
  CheckCache small(16);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(small.Check(engine_, "m", tuples_, {Tk("document:" + std::to_string(i), "viewer", "user:a"), {}, "", false}).ok());
  }
  EXPECT_LE(small.size(), 16u);
  EXPECT_GT(small.size(), 0u);
}

TEST_F(EngineTest, ContextualTuplesInListObjectsReachability) {
  W({Tk("group:g", "member", "user:a"), Tk("document:1", "viewer", "user:b")});
  // Only a contextual tuple connects user:a to document:2 (through group:g).
  auto objs = engine_.ListObjects(tuples_, "document", "viewer", "user:a", {Tk("document:2", "editor", "group:g#member")});
  ASSERT_TRUE(objs.ok());
  EXPECT_EQ(*objs, (std::vector<std::string>{"document:2"}));
  // Self-defining usersets and wildcards.
  W({Tk("document:3", "viewer", "user:*"), Tk("document:4", "editor", "user:c")});
  objs = engine_.ListObjects(tuples_, "document", "viewer", "user:zzz");
  ASSERT_TRUE(objs.ok());
  EXPECT_EQ(*objs, (std::vector<std::string>{"document:3"}));
  objs = engine_.ListObjects(tuples_, "document", "viewer", "document:4#editor");
  ASSERT_TRUE(objs.ok());
  EXPECT_EQ(*objs, (std::vector<std::string>{"document:4"}));
}


TEST_F(EngineTest, CheckCacheSeesGrantsDeepInNestedUsersets) {
  // user:x is in no group yet: an uncached Check may skip the groups; the
  // cached entry must still depend on every list a grant could come from.
  W({Tk("document:1", "editor", "group:g#member"), Tk("group:g", "member", "group:h#member"),
     Tk("group:h", "member", "group:i#member"), Tk("group:z", "member", "user:y")});
  CheckCache cache;
  CheckRequest req{Tk("document:1", "viewer", "user:x"), {}, "", false};
  bool hit = false;
  EXPECT_FALSE(cache.Check(engine_, "m", tuples_, req, &hit)->allowed);
  EXPECT_FALSE(engine_.Check(tuples_, req)->allowed);
  W({Tk("group:i", "member", "user:x")});
  auto r = cache.Check(engine_, "m", tuples_, req, &hit);
  EXPECT_FALSE(hit);
  EXPECT_TRUE(r->allowed);
  EXPECT_TRUE(engine_.Check(tuples_, req)->allowed);
  // Through a wildcard as well.
  CheckRequest other{Tk("document:1", "editor", "user:w"), {}, "", false};
  EXPECT_FALSE(cache.Check(engine_, "m", tuples_, other, &hit)->allowed);
  W({Tk("group:i", "member", "user:*")});
  EXPECT_TRUE(cache.Check(engine_, "m", tuples_, other, &hit)->allowed);
  EXPECT_FALSE(hit);
  EXPECT_TRUE(engine_.Check(tuples_, other)->allowed);
}


// ListObjects on union-only, condition-free relations derives its answer by
// forward chaining from the user's tuples; every other relation checks the
// candidates one by one. On random models of that kind (usersets, nesting,
// wildcards, computed and tuple-to-userset steps, cycles among them) the
// derived list must be exactly the objects Check allows. (A Check that
// fails on the depth limit has found no grant within it: not allowed.)
TEST(EngineChain, ListObjectsIsWhatCheckAllowsOnRandomUnionModels) {
  std::mt19937_64 rng(20261207);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<std::string> types = {"ta", "tb", "tc"};
  const std::vector<std::string> rels = {"r0", "r1", "r2"};
  size_t listed = 0, granted = 0, too_deep = 0;
  for (int round = 0; round < 60; ++round) {
    Model m;
    m.types.push_back({"user", {}, 0});
    for (const auto& t : types) {
      TypeDefinition td{t, {}, 0};
      td.relations.push_back(Rel("p", This(), {T(types[pick(types.size())]), T(types[pick(types.size())])}));
      for (size_t i = 0; i < rels.size(); ++i) {
        std::vector<TypeRestriction> direct = {T("user")};
        if (pick(3) == 0) direct.push_back(Wild("user"));
        for (int k = 0; k < 2; ++k) {
          if (pick(2) == 0) direct.push_back(Set(types[pick(types.size())], rels[pick(rels.size())]));
        }
        std::sort(direct.begin(), direct.end(), [](const auto& a, const auto& b) {
          return std::tie(a.type, a.relation, a.wildcard) < std::tie(b.type, b.relation, b.wildcard);
        });
        direct.erase(std::unique(direct.begin(), direct.end()), direct.end());
        std::vector<Rewrite> parts = {This()};
        if (pick(2) == 0) parts.push_back(Computed(rels[(i + 1 + pick(rels.size() - 1)) % rels.size()]));
        if (pick(2) == 0) parts.push_back(Ttu(rels[pick(rels.size())], "p"));
        td.relations.push_back(Rel(rels[i], parts.size() == 1 ? This() : Union(parts), direct));
      }
      m.types.push_back(td);
    }
    Engine engine(m);
    // Random tuples the model admits.
    TupleSet tuples;
    std::vector<TupleKey> writes;
    std::set<std::string> seen;
    auto object = [&](const std::string& t) { return t + ":" + std::to_string(pick(4)); };
    for (int n = 0; n < 70; ++n) {
      const TypeDefinition& td = m.types[1 + pick(types.size())];
      const Relation& rel = td.relations[pick(td.relations.size())];
      const TypeRestriction& r = rel.directly_related[pick(rel.directly_related.size())];
      std::string user = r.wildcard            ? r.type + ":*"
                         : r.relation.empty() ? (r.type == "user" ? "user:u" + std::to_string(pick(3)) : object(r.type))
                                               : object(r.type) + "#" + r.relation;
      TupleKey t = Tk(object(td.name), rel.name, user);
      if (seen.insert(t.ToString()).second) writes.push_back(t);
    }
    // Several writes, so that lookups span segments.
    for (size_t i = 0; i < writes.size(); i += 20) {
      std::vector<TupleKey> batch(writes.begin() + i, writes.begin() + std::min(writes.size(), i + 20));
      ASSERT_TRUE(tuples.Write(m, batch).ok()) << "round " << round;
    }
    std::set<std::string> mentioned;
    for (const auto& t : writes) {
      mentioned.insert(t.object);
      if (!t.user.starts_with("user:")) mentioned.insert(t.user.substr(0, t.user.find('#')));
    }
    std::vector<std::string> users = {"user:u0", "user:u1", "user:u2", "user:*", "user:nobody"};
    for (int k = 0; k < 3; ++k) users.push_back(object(types[pick(types.size())]) + "#" + rels[pick(rels.size())]);
    for (const auto& u : users) {
      for (const auto& t : types) {
        for (const auto& r : rels) {
          auto got = engine.ListObjects(tuples, t, r, u);
          ASSERT_TRUE(got.ok()) << got.status().ToString();
          std::vector<std::string> want;
          for (const auto& o : mentioned) {
            if (!o.starts_with(t + ":")) continue;
            auto c = engine.Check(tuples, {Tk(o, r, u), {}, "", false});
            if (!c.ok()) {
              // Cycles can take a search that finds no grant past the depth
              // limit: not allowed, and not a reason to fail the list.
              ASSERT_EQ(OpenFgaErrorCode(c.status()), 2002) << c.status().ToString();
              ++too_deep;
              continue;
            }
            if (c->allowed) want.push_back(o);
          }
          ASSERT_EQ(*got, want) << "round " << round << ": " << t << "#" << r << "@" << u;
          ++listed;
          granted += want.size();
        }
      }
    }
  }
  // The rounds must have had something to find.
  EXPECT_GT(granted, listed / 2);
  RecordProperty("lists", static_cast<int>(listed));
  RecordProperty("granted", static_cast<int>(granted));
  RecordProperty("checks_past_depth", static_cast<int>(too_deep));
}


// A userset tuple with a condition has its condition evaluated before the
// userset is ruled out, so a missing parameter fails the Check even for a
// user outside the group (as OpenFGA evaluates it on reading the tuple);
// an unconditional userset outside the user's reach is ruled out unread.
TEST(EngineUsersets, ConditionalUsersetErrorsCountEvenOutsideTheGroup) {
  Model m;
  m.types.push_back({"user", {}, 0});
  m.types.push_back({"group", {Rel("member", This(), {T("user"), Set("group", "member")})}, 0});
  TypeRestriction conditional = Set("group", "member");
  conditional.condition = "c";
  m.types.push_back({"doc", {Rel("viewer", This(), {T("user"), conditional, Set("group", "member")})}, 0});
  m.conditions.push_back({"c", {{"x", "int", {}}}, "x < 10", 0});
  Engine engine(m);
  TupleSet tuples;
  ASSERT_TRUE(tuples.Write(m, {Tk("group:g", "member", "user:a"), Tk("group:h", "member", "user:c"),
                               Tk("doc:1", "viewer", "group:g#member", "c"), Tk("doc:2", "viewer", "group:h#member")})
                  .ok());
  auto missing = engine.Check(tuples, {Tk("doc:1", "viewer", "user:b"), {}, "", false});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(OpenFgaErrorCode(missing.status()), 2000) << missing.status().ToString();
  EXPECT_FALSE(engine.Check(tuples, {Tk("doc:1", "viewer", "user:b"), {}, R"({"x": 5})", false})->allowed);
  EXPECT_TRUE(engine.Check(tuples, {Tk("doc:1", "viewer", "user:a"), {}, R"({"x": 5})", false})->allowed);
  EXPECT_FALSE(engine.Check(tuples, {Tk("doc:1", "viewer", "user:a"), {}, R"({"x": 50})", false})->allowed);
  // Unconditional: in and out of the group, and after the membership is
  // deleted in a newer write.
  EXPECT_TRUE(engine.Check(tuples, {Tk("doc:2", "viewer", "user:c"), {}, "", false})->allowed);
  EXPECT_FALSE(engine.Check(tuples, {Tk("doc:2", "viewer", "user:a"), {}, "", false})->allowed);
  ASSERT_TRUE(tuples.Write(m, {}, {Tk("doc:2", "viewer", "group:h#member")}).ok());
  EXPECT_FALSE(engine.Check(tuples, {Tk("doc:2", "viewer", "user:c"), {}, "", false})->allowed);
}

// ListObjects checks its candidates with one Evaluator, whose shallow memo
// outlives each candidate's first pass. Here doc:1's pass leaves
// folder:f#viewer as "not proven" (its userset tuple skipped) and doc:1's
// full walk is granted before it reaches folder:f; doc:2's first pass then
// meets folder:f only through that memo, and must not take the skipped
// userset as ruled out.
TEST(EngineUsersets, ListObjectsDoesNotRefuteThroughAnEarlierCandidatesMemo) {
  auto m = ParseDsl(R"(model
  schema 1.1
type user
type group
  relations
    define member: [user]
type folder
  relations
    define viewer: [group#member]
type doc
  relations
    define parent: [folder]
    define allowed: [user:*]
    define viewer: ([group#member] or viewer from parent) and allowed
)");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  Engine engine(*m);
  TupleSet tuples;
  ASSERT_TRUE(tuples
                  .Write(*m, {Tk("group:g", "member", "user:a"), Tk("folder:f", "viewer", "group:g#member"),
                              Tk("doc:1", "viewer", "group:g#member"), Tk("doc:1", "parent", "folder:f"),
                              Tk("doc:1", "allowed", "user:*"), Tk("doc:2", "parent", "folder:f"),
                              Tk("doc:2", "allowed", "user:*")})
                  .ok());
  for (const char* d : {"doc:1", "doc:2"}) {
    EXPECT_TRUE(engine.Check(tuples, {Tk(d, "viewer", "user:a"), {}, "", false})->allowed) << d;
  }
  auto listed = engine.ListObjects(tuples, "doc", "viewer", "user:a", {}, "");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(*listed, (std::vector<std::string>{"doc:1", "doc:2"}));
}

// The Evaluator's tables are reused from one request to the next on a
// thread (EvalScratch): nothing of one request may answer the next. Each
// pair below asks the same question of two versions of one lineage (same
// symbols) whose answers differ, in both directions, so that a memo, a
// MayReach result or a cone left over would give the old answer.
TEST_F(EngineTest, NothingOfOneRequestAnswersTheNext) {
  // Without explain: the tables are filled only then.
  auto ask = [&](const char* user) {
    auto r = engine_.Check(tuples_, {Tk("document:1", "viewer", user), {}, "", false});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() && r->allowed;
  };
  W({Tk("document:1", "editor", "group:eng#member"), Tk("group:eng", "member", "group:core#member"),
     Tk("group:core", "member", "user:carl"), Tk("group:ops", "member", "user:dan")});
  EXPECT_TRUE(ask("user:carl"));
  EXPECT_FALSE(ask("user:dan"));
  ASSERT_TRUE(tuples_
                  .Write(model_, {Tk("group:eng", "member", "group:ops#member")},
                         {Tk("group:core", "member", "user:carl")})
                  .ok());
  EXPECT_FALSE(ask("user:carl"));
  EXPECT_TRUE(ask("user:dan"));
  EXPECT_FALSE(Allowed("document:1", "viewer", "user:carl"));  // with explain
  EXPECT_TRUE(Allowed("document:1", "viewer", "user:dan"));
  // A request over a large group, then small ones again.
  std::vector<TupleKey> many;
  for (int i = 0; i < 3000; ++i) many.push_back(Tk("group:eng", "member", "group:g" + std::to_string(i) + "#member"));
  W(many);
  EXPECT_FALSE(ask("user:erin"));
  EXPECT_TRUE(ask("user:dan"));
  EXPECT_FALSE(ask("user:carl"));
}

// Large arrays of the tuple store come from mappings of their own, aligned
// for huge pages and counted by TupleSet::MappedBytes; small ones from the heap.
TEST(TupleStoreMemory, LargeArraysAreMappedAlignedAndCounted) {
  const size_t before = TupleSet::MappedBytes();
  {
    internal::BigVector<uint64_t> big(internal::kHugeAllocBytes / sizeof(uint64_t) + 1000);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % internal::kHugeAllocBytes, 0u);
    EXPECT_GE(TupleSet::MappedBytes(), before + internal::kHugeAllocBytes + 1000 * sizeof(uint64_t));
    for (size_t i = 0; i < big.size(); i += 4096) big[i] = i;  // the mapping is writable
    EXPECT_EQ(big[4096], 4096u);
    internal::BigVector<uint64_t> small(100);
    EXPECT_EQ(TupleSet::MappedBytes(), before + ((big.size() * sizeof(uint64_t) + 4095) / 4096) * 4096);
  }
  EXPECT_EQ(TupleSet::MappedBytes(), before);
}

}  // namespace
}  // namespace aigis::authz

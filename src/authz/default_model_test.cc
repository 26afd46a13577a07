// The default model (rules/authz/model.fga) against its test matrix
// (rules/authz/model_test.yaml), and the start-up helpers that install it.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "authz/authz.h"
#include "store/store.h"

namespace aigis::authz {
namespace {

namespace json = boost::json;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

const std::string kDir = std::string(AIGIS_SOURCE_DIR) + "/rules/authz/";

// A YAML mapping of scalars as a JSON object text.
std::string ContextJson(const YAML::Node& n) {
  if (!n) return "";
  json::object o;
  for (const auto& kv : n) o[kv.first.Scalar()] = kv.second.Scalar();
  return json::serialize(o);
}

TEST(DefaultModel, CompiledInCopyIsTheFile) {
  EXPECT_EQ(DefaultModelDsl(), ReadFile(kDir + "model.fga"));
}

TEST(DefaultModel, Matrix) {
  std::vector<ModelError> errors;
  auto model = ParseDsl(DefaultModelDsl(), &errors);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto engine = Engine::Create(*model);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();

  YAML::Node doc = YAML::LoadFile(kDir + "model_test.yaml");
  std::vector<TupleKey> tuples;
  for (const auto& t : doc["tuples"]) {
    if (t.IsScalar()) {
      auto k = ParseTupleString(t.Scalar());
      ASSERT_TRUE(k.ok()) << k.status().ToString();
      tuples.push_back(*k);
      continue;
    }
    auto k = ParseTupleString(t["tuple"].Scalar());
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    k->condition = t["condition"] ? t["condition"].Scalar() : "";
    k->condition_context = ContextJson(t["context"]);
    tuples.push_back(*k);
  }
  TupleSet set;
  ASSERT_TRUE(set.Write(*model, tuples).ok());

  int cases = 0;
  for (const auto& c : doc["cases"]) {
    CheckRequest req;
    req.tuple = {c["object"].Scalar(), c["relation"].Scalar(), c["user"].Scalar(), "", ""};
    req.context = ContextJson(c["context"]);
    req.explain = true;
    if (auto ct = c["contextual_tuples"]) {
      for (const auto& t : ct) {
        auto k = ParseTupleString(t.Scalar());
        ASSERT_TRUE(k.ok()) << k.status().ToString();
        req.contextual_tuples.push_back(*k);
      }
    }
    std::string expected = c["expected"].Scalar();
    std::string what = req.tuple.ToString() + " (line " + std::to_string(c.Mark().line + 1) + ")";
    auto r = engine->Check(set, req);
    ++cases;
    if (expected == "error") {
      EXPECT_FALSE(r.ok()) << what;
      continue;
    }
    ASSERT_TRUE(r.ok()) << what << ": " << r.status().ToString();
    EXPECT_EQ(r->allowed, expected == "true") << what;
    EXPECT_FALSE(r->explanation.empty()) << what;
  }
  EXPECT_GE(cases, 40);
}

TEST(TupleString, ParsesAndRejects) {
  auto t = ParseTupleString("team:a#member@team:b#member");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->object, "team:a");
  EXPECT_EQ(t->relation, "member");
  EXPECT_EQ(t->user, "team:b#member");
  for (const char* bad : {"", "team:a", "team:a#member", "team:a#@user:x", "a#member@user:x", "team:a#member@"}) {
    EXPECT_FALSE(ParseTupleString(bad).ok()) << bad;
  }
}

TEST(EnsureStore, CreatesOnceUpdatesModelAndSeedsMissingTuples) {
  auto db = store::OpenSqlite({":memory:"});
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto svc = Service::Open(**db);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  std::vector<std::string> seeds = {"llm_model:echo#can_use@agent:demo"};
  auto id = EnsureStore(**svc, "default", "aigis", DefaultModelDsl(), seeds);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto model1 = (*svc)->GetModel("default", *id, "");
  ASSERT_TRUE(model1.ok());

  // Again: same store, same model version, no duplicate write.
  auto again = EnsureStore(**svc, "default", "aigis", DefaultModelDsl(), seeds);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *id);
  EXPECT_EQ((*svc)->GetModel("default", *id, "")->id, model1->id);

  // A changed model becomes the latest version; a new seed is added.
  std::string changed = std::string(DefaultModelDsl()) + "\ntype extra\n";
  seeds.push_back("llm_model:other#can_use@agent:demo");
  auto third = EnsureStore(**svc, "default", "aigis", changed, seeds);
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(*third, *id);
  EXPECT_NE((*svc)->GetModel("default", *id, "")->id, model1->id);
  auto view = (*svc)->View("default", *id, "");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->tuples.size(), 2u);

  // A bad model or seed is refused with a message.
  EXPECT_FALSE(EnsureStore(**svc, "default", "aigis", "model\n  schema 1.1\ntype a\n  relations\n    define b: c\n", {}).ok());
  EXPECT_FALSE(EnsureStore(**svc, "default", "aigis", DefaultModelDsl(), {"not a tuple"}).ok());
}

}  // namespace
}  // namespace aigis::authz

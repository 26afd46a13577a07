// The authorization model against OpenFGA's language test data, read in place
// from $AIGIS_SHARED_DATA/openfga/language/tests/data:
// * transformer/NN-*/authorization-model.{fga,json}: DSL -> model == JSON ->
//   model; ToJson(ParseDsl(fga)) equals the .json as JSON values; ToDsl of
//   ParseJson(json) equals the .fga text. JSON metadata we do not model
//   (`module`, `source_info`, `file`) is removed before comparing.
// * dsl-syntax-validation-cases.yaml, dsl-semantic-validation-cases.yaml:
//   cases with expected_errors fail, others parse; where they fail we also
//   count whether our first error matches one of OpenFGA's by message and by
//   line/column.
// * json-validation-cases.yaml.
// Each suite prints its counts and failures and asserts the floor reached.
// Plus a hostile-input loop that must never crash.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "authz/authz.h"

namespace aigis::authz {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

fs::path DataDir() {
  const char* env = std::getenv("AIGIS_SHARED_DATA");
  fs::path base =
      env != nullptr && *env != '\0' ? fs::path(env) : fs::path("/work/main/../shared/data");
  return base / "openfga" / "language" / "tests" / "data";
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void StripUnmodelled(json::value& v) {
  if (v.is_object()) {
    auto& o = v.get_object();
    o.erase("module");
    o.erase("source_info");
    o.erase("file");
    for (auto& [k, child] : o) StripUnmodelled(child);
  } else if (v.is_array()) {
    for (auto& child : v.get_array()) StripUnmodelled(child);
  }
}

// Conditions and their parameters are maps in JSON: compare them by name.
Model Normalized(Model m) {
  std::sort(m.conditions.begin(), m.conditions.end(),
            [](const Condition& a, const Condition& b) { return a.name < b.name; });
  for (auto& c : m.conditions) {
    std::sort(
        c.parameters.begin(), c.parameters.end(),
        [](const ConditionParameter& a, const ConditionParameter& b) { return a.name < b.name; });
  }
  return m;
}

std::string TrimTrailingNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

TEST(AuthzModel, Example) {
  auto m = ParseDsl(R"(model
  schema 1.1

type user

type group
  relations
    define member: [user, group#member]

type doc
  relations
    define parent: [group]
    define viewer: [user, user:*, user with fresh] or member from parent
    define blocked: [user]
    define can_view: viewer but not blocked

condition fresh(age: int, tags: list<string>) {
  age < 10 &&
  "x" in tags
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const Relation* viewer = m->Find("doc")->Find("viewer");
  ASSERT_NE(viewer, nullptr);
  EXPECT_EQ(viewer->rewrite.kind, Rewrite::Kind::kUnion);
  EXPECT_EQ(viewer->directly_related.size(), 3u);
  EXPECT_TRUE(viewer->directly_related[1].wildcard);
  EXPECT_EQ(viewer->directly_related[2].condition, "fresh");
  EXPECT_EQ(m->conditions.at(0).expression, "age < 10 &&\n  \"x\" in tags");
  auto back = ParseDsl(ToDsl(*m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, *m);
  auto from_json = ParseJson(ToJson(*m));
  ASSERT_TRUE(from_json.ok()) << from_json.status().message();
  EXPECT_EQ(Normalized(*from_json), Normalized(*m));
}

TEST(AuthzModel, LayoutIsFree) {
  // Type restrictions and condition parameters may span lines; indentation,
  // CRLF and trailing comments do not matter.
  auto m = ParseDsl(
      "# header\r\nmodel\r\n schema 1.1\r\ntype user # people\r\n    type group\r\n"
      "relations\r\n  define member: [\r\n    user,\r\n    group#member with c\r\n  ]  # who\r\n"
      "condition c(\r\n  x: int,\r\n  y: map<string>\r\n) {\r\n  x > 1 }\r\n");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->Find("group")->Find("member")->directly_related.size(), 2u);
  EXPECT_EQ(m->conditions.at(0).parameters.at(1).generic_types, std::vector<std::string>{"string"});
  EXPECT_EQ(m->conditions.at(0).expression, "x > 1");
  EXPECT_EQ(
      ToDsl(*m),
      "model\n  schema 1.1\n\ntype user\n\ntype group\n  relations\n"
      "    define member: [user, group#member with c]\n\ncondition c(x: int, y: map<string>) {\n"
      "  x > 1\n}\n");
  // Syntax-only parsing keeps models that do not validate.
  const char* invalid = "model\n  schema 1.1\ntype doc\n  relations\n    define v: w\n";
  EXPECT_FALSE(ParseDsl(invalid).ok());
  EXPECT_TRUE(ParseDsl(invalid, nullptr, Validation::kSyntaxOnly).ok());
}

TEST(AuthzModel, Errors) {
  std::vector<ModelError> errors;
  auto m = ParseDsl(
      "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user] or "
      "editor\n",
      &errors);
  ASSERT_FALSE(m.ok());
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].message, "the relation `editor` does not exist.");
  EXPECT_EQ(errors[0].line, 6);
  EXPECT_EQ(errors[0].column, 30);
  EXPECT_FALSE(
      ParseDsl("model\n  schema 1.1\ntype a\n  relations\n    define x: y\n    define y: x\n")
          .ok());
}

TEST(AuthzModel, TransformerCorpus) {
  fs::path dir = DataDir() / "transformer";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(dir)) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  int total = 0, model_eq = 0, to_json = 0, to_dsl = 0, valid = 0;
  for (const auto& c : cases) {
    fs::path fga = c / "authorization-model.fga", js = c / "authorization-model.json";
    if (!fs::exists(fga) || !fs::exists(js)) continue;
    ++total;
    std::string name = c.filename().string();
    std::string fga_text = ReadFile(fga), json_text = ReadFile(js);
    // The transformer corpus includes models that are well-formed but not
    // semantically valid (14, 15); OpenFGA's transformer does not validate.
    auto from_dsl = ParseDsl(fga_text, nullptr, Validation::kSyntaxOnly);
    auto from_json = ParseJson(json_text, nullptr, Validation::kSyntaxOnly);
    valid += ParseDsl(fga_text).ok();
    if (!from_dsl.ok())
      std::cout << "  [dsl parse] " << name << ": " << from_dsl.status().message() << "\n";
    if (!from_json.ok())
      std::cout << "  [json parse] " << name << ": " << from_json.status().message() << "\n";
    if (from_dsl.ok() && from_json.ok()) {
      if (Normalized(*from_dsl) == Normalized(*from_json)) {
        ++model_eq;
      } else {
        std::cout << "  [model ==] " << name << ": models differ\n";
      }
    }
    if (from_dsl.ok()) {
      json::value want = json::parse(json_text);
      json::value got = json::parse(ToJson(*from_dsl));
      StripUnmodelled(want);
      StripUnmodelled(got);
      if (want == got) {
        ++to_json;
      } else {
        std::cout << "  [ToJson] " << name << ": got " << json::serialize(got) << "\n";
      }
    }
    if (from_json.ok()) {
      std::string got = ToDsl(*from_json);
      if (TrimTrailingNewlines(got) == TrimTrailingNewlines(fga_text)) {
        ++to_dsl;
      } else {
        std::cout << "  [ToDsl] " << name << ": got\n" << got << "\n";
      }
    }
  }
  std::cout << "transformer: " << total << " cases; model equal " << model_eq << ", ToJson "
            << to_json << ", ToDsl " << to_dsl << "; valid " << valid << "\n";
  EXPECT_GE(total, 29);
  EXPECT_GE(model_eq, total);
  EXPECT_GE(to_json, total);
  EXPECT_GE(to_dsl, total);
  // 14 and 15 reference relations that are not direct or do not exist.
  EXPECT_GE(valid, total - 2);
}

struct ValidationCounts {
  int total = 0, should_fail = 0, failed = 0, should_pass = 0, passed = 0;
  int message_match = 0, position_match = 0;
  int all_match = 0;                              // the same messages, all of them (order aside)
  int positions_wanted = 0, positions_found = 0;  // every expected error, at its place
};

ValidationCounts RunDslValidation(const std::string& file) {
  ValidationCounts n;
  YAML::Node cases = YAML::LoadFile((DataDir() / file).string());
  for (const auto& c : cases) {
    if (!c["dsl"]) continue;
    if (c["skip"] && c["skip"].as<bool>()) continue;  // OpenFGA skips these too
    ++n.total;
    std::string name = c["name"].as<std::string>();
    std::string dsl = c["dsl"].as<std::string>();
    std::vector<ModelError> errors;
    auto m = ParseDsl(dsl, &errors);
    YAML::Node expected = c["expected_errors"];
    if (!expected || expected.size() == 0) {
      ++n.should_pass;
      if (m.ok()) {
        ++n.passed;
      } else {
        std::cout << "  [should pass] " << name << ": " << m.status().message() << "\n";
      }
      continue;
    }
    ++n.should_fail;
    if (m.ok()) {
      std::cout << "  [should fail] " << name << ": expected "
                << expected[0]["msg"].as<std::string>() << "\n";
      continue;
    }
    ++n.failed;
    const ModelError& first = errors.front();
    bool msg = false, pos = false;
    for (const auto& e : expected) {
      std::string want = e["msg"].as<std::string>();
      if (want == first.message) msg = true;
      if (e["line"] && e["column"] && e["line"]["start"].as<int>() + 1 == first.line &&
          e["column"]["start"].as<int>() + 1 == first.column) {
        pos = true;
      }
    }
    n.message_match += msg;
    n.position_match += pos;
    std::vector<std::string> got_all, want_all;
    for (const auto& e : errors) got_all.push_back(e.message);
    for (const auto& e : expected) want_all.push_back(e["msg"].as<std::string>());
    std::sort(got_all.begin(), got_all.end());
    std::sort(want_all.begin(), want_all.end());
    n.all_match += got_all == want_all;
    for (const auto& e : expected) {
      if (!e["line"] || !e["column"]) continue;
      ++n.positions_wanted;
      std::string want = e["msg"].as<std::string>();
      int line = e["line"]["start"].as<int>() + 1, column = e["column"]["start"].as<int>() + 1;
      bool found = false, reported = false;
      for (const auto& g : errors) {
        found |= g.message == want && g.line == line && g.column == column;
        reported |= g.message == want;
      }
      n.positions_found += found;
      if (!found && reported) {
        std::cout << "  [position] " << name << ": want " << line << ":" << column << " " << want
                  << "\n";
      }
    }
    if (msg && got_all != want_all) {
      std::cout << "  [other errors] " << name << ": got " << got_all.size() << ", want "
                << want_all.size() << "\n";
    }
    if (!msg || !pos) {
      std::cout << "  [first error] " << name << ": got " << first.line << ":" << first.column
                << " " << first.message << " | want "
                << expected[0]["line"]["start"].as<int>(-1) + 1 << ":"
                << expected[0]["column"]["start"].as<int>(-1) + 1 << " "
                << expected[0]["msg"].as<std::string>() << "\n";
    }
  }
  std::cout << file << ": " << n.total << " cases; must fail " << n.failed << "/" << n.should_fail
            << " (same first message " << n.message_match << ", same position " << n.position_match
            << ", same set of messages " << n.all_match << ", errors at their place "
            << n.positions_found << "/" << n.positions_wanted << "); must pass " << n.passed << "/"
            << n.should_pass << "\n";
  return n;
}

TEST(AuthzModel, DslSyntaxValidationCases) {
  ValidationCounts n = RunDslValidation("dsl-syntax-validation-cases.yaml");
  EXPECT_GE(n.total, 81);
  EXPECT_EQ(n.failed, n.should_fail);
  EXPECT_EQ(n.passed, n.should_pass);
  // Known differences: ANTLR's recovery messages ("no viable alternative"),
  // and modular-model cases (`module`, `extend`), which are out of scope.
  EXPECT_GE(n.message_match, 47);
  EXPECT_GE(n.position_match, 47);
  EXPECT_GE(n.all_match, 28);  // ANTLR also reports errors after recovering; we stop at the first
  EXPECT_GE(n.positions_found, 47);
}

TEST(AuthzModel, DslSemanticValidationCases) {
  ValidationCounts n = RunDslValidation("dsl-semantic-validation-cases.yaml");
  EXPECT_GE(n.total, 84);
  EXPECT_EQ(n.failed, n.should_fail);
  EXPECT_EQ(n.passed, n.should_pass);
  // Known differences: two modular-model cases (out of scope).
  EXPECT_GE(n.message_match, 78);
  EXPECT_GE(n.position_match, 80);
  EXPECT_GE(n.all_match, 78);
  EXPECT_GE(n.positions_found, 106);
}

TEST(AuthzModel, JsonValidationCases) {
  YAML::Node cases = YAML::LoadFile((DataDir() / "json-validation-cases.yaml").string());
  int total = 0, should_fail = 0, failed = 0, message_match = 0, should_pass = 0, passed = 0;
  for (const auto& c : cases) {
    if (!c["json"]) continue;
    ++total;
    std::string name = c["name"].as<std::string>();
    std::vector<ModelError> errors;
    auto m = ParseJson(c["json"].as<std::string>(), &errors);
    YAML::Node expected = c["expected_errors"];
    if (!expected || expected.size() == 0) {
      ++should_pass;
      if (m.ok()) {
        ++passed;
      } else {
        std::cout << "  [should pass] " << name << ": " << m.status().message() << "\n";
      }
      continue;
    }
    ++should_fail;
    std::string want = expected[0]["msg"].as<std::string>();
    if (m.ok()) {
      std::cout << "  [should fail] " << name << ": expected " << want << "\n";
      continue;
    }
    ++failed;
    if (errors.front().message == want) {
      ++message_match;
    } else {
      std::cout << "  [first error] " << name << ": got " << errors.front().message << " | want "
                << want << "\n";
    }
  }
  std::cout << "json-validation-cases.yaml: " << total << " cases; must fail " << failed << "/"
            << should_fail << " (same first message " << message_match << "); must pass " << passed
            << "/" << should_pass << "\n";
  // Known: "file can only include one module" is about modular models (out of scope).
  EXPECT_GE(total, 5);
  EXPECT_GE(failed, should_fail - 1);
  EXPECT_EQ(passed, should_pass);
}

// JSON models the language cannot express (direct assignment anywhere but
// first place of a union/intersection) must not come back from ToDsl as a
// valid DSL model; the others must round-trip.
TEST(AuthzModel, JsonSyntaxTransformerCases) {
  YAML::Node cases =
      YAML::LoadFile((DataDir() / "json-syntax-transformer-validation-cases.yaml").string());
  int total = 0, ok = 0;
  for (const auto& c : cases) {
    if (!c["json"]) continue;
    ++total;
    std::string name = c["name"].as<std::string>();
    auto m = ParseJson(c["json"].as<std::string>(), nullptr, Validation::kSyntaxOnly);
    if (!m.ok()) {
      std::cout << "  [json parse] " << name << ": " << m.status().message() << "\n";
      continue;
    }
    std::string dsl = ToDsl(*m);
    auto back = ParseDsl(dsl, nullptr, Validation::kSyntaxOnly);
    bool inexpressible = static_cast<bool>(c["error_message"]);
    if (inexpressible ? !back.ok() : back.ok()) {
      ++ok;
    } else {
      std::cout << "  [ToDsl] " << name << ": "
                << (inexpressible ? "written although inexpressible" : back.status().message())
                << "\n"
                << dsl;
    }
  }
  std::cout << "json-syntax-transformer-validation-cases.yaml: " << ok << "/" << total << "\n";
  EXPECT_GE(total, 6);
  EXPECT_EQ(ok, total);
}

TEST(AuthzModel, HostileInputsNeverCrash) {
  const std::string seed =
      ReadFile(DataDir() / "transformer" / "101-temporal-access" / "authorization-model.fga");
  ASSERT_FALSE(seed.empty());
  std::mt19937 rng(42);
  const std::string alphabet =
      "()[]{}:#,*<> \n\tabcdefor and but not from with define type relations condition model "
      "schema 1.1";
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = seed;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits && !s.empty(); ++k) {
      size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s.erase(at, 1 + rng() % 6);
          break;
        case 1:
          s.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 2:
          s[at] = static_cast<char>(rng() % 256);
          break;
        default:
          s.insert(at, s.substr(rng() % s.size(), rng() % 40));
          break;
      }
    }
    std::vector<ModelError> errors;
    auto m = ParseDsl(s, &errors);
    if (m.ok()) {
      ++accepted;
      // Whatever we accept must survive our own writers.
      auto again = ParseDsl(ToDsl(*m));
      EXPECT_TRUE(again.ok()) << again.status().message();
      auto js = ParseJson(ToJson(*m));
      EXPECT_TRUE(js.ok()) << js.status().message();
    } else {
      EXPECT_FALSE(errors.empty());
    }
    (void)ParseJson(s);
  }
  std::cout << "hostile: accepted " << accepted << " of 3000 mutants\n";
  // The same for the JSON form.
  auto seed_model = ParseDsl(seed);
  ASSERT_TRUE(seed_model.ok());
  const std::string seed_json = ToJson(*seed_model);
  int json_accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string s = seed_json;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits && !s.empty(); ++k) {
      size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s.erase(at, 1 + rng() % 6);
          break;
        case 1:
          s.insert(at, 1, "{}[]\",:0an"[rng() % 11]);
          break;
        default:
          s.insert(at, s.substr(rng() % s.size(), rng() % 40));
          break;
      }
    }
    std::vector<ModelError> errors;
    auto m = ParseJson(s, &errors);
    if (m.ok()) {
      ++json_accepted;
      EXPECT_TRUE(ParseJson(ToJson(*m)).ok());
    } else {
      EXPECT_FALSE(errors.empty());
    }
  }
  std::cout << "hostile: accepted " << json_accepted << " of 2000 JSON mutants\n";
  // Large models stay cheap to validate: a long chain of computed relations,
  // a loop through all of them, and a long tuple-to-userset chain.
  std::string chain = "model\n  schema 1.1\ntype user\ntype d\n  relations\n";
  std::string loop = chain;
  for (int i = 0; i < 3000; ++i) {
    chain += fmt::format("    define r{}: r{}\n", i, i + 1);
    if (i < 200) loop += fmt::format("    define r{}: r{}\n", i, (i + 1) % 200);
  }
  chain += "    define r3000: [user]\n";
  // Past the search's depth bound a relation is assumed to have an entry.
  EXPECT_TRUE(ParseDsl(chain).ok());
  std::vector<ModelError> loop_errors;
  EXPECT_FALSE(ParseDsl(loop, &loop_errors).ok());
  EXPECT_EQ(loop_errors.size(), 200u);
  // Branching loops: exponential search, bounded by the step budget.
  std::string branching = "model\n  schema 1.1\ntype user\ntype d\n  relations\n";
  for (int i = 0; i < 3000; ++i) {
    branching += fmt::format("    define r{}: r{} or r{}\n", i, (i + 1) % 3000, (i + 7) % 3000);
  }
  (void)ParseDsl(branching);
  std::string ttu = "model\n  schema 1.1\ntype user\n";
  for (int i = 0; i < 1000; ++i) {
    ttu += fmt::format(
        "type t{}\n  relations\n    define p: [t{}, t{}]\n    define v: v from p or v from p\n", i,
        (i + 1) % 1000, (i + 3) % 1000);
  }
  std::vector<ModelError> ttu_errors;
  EXPECT_FALSE(ParseDsl(ttu, &ttu_errors).ok());
  // Many relations and types: linear enough.
  std::string wide = "model\n  schema 1.1\ntype user\ntype d\n  relations\n";
  for (int i = 0; i < 20000; ++i) wide += fmt::format("    define r{}: [user]\n", i);
  for (int i = 0; i < 5000; ++i) wide += fmt::format("type t{}\n", i);
  EXPECT_TRUE(ParseDsl(wide).ok());
  // Deep nesting is refused, not recursed into.
  std::string deep =
      "model\n  schema 1.1\ntype user\ntype d\n  relations\n    define r: [user]\n    define v: " +
      std::string(10000, '(') + "r" + std::string(10000, ')') + "\n";
  EXPECT_FALSE(ParseDsl(deep).ok());
  std::string deep_json =
      "{\"schema_version\":\"1.1\",\"type_definitions\":[{\"type\":\"d\",\"relations\":{\"r\":";
  for (int i = 0; i < 5000; ++i) deep_json += "{\"union\":{\"child\":[";
  EXPECT_FALSE(ParseJson(deep_json).ok());
}

}  // namespace
}  // namespace aigis::authz

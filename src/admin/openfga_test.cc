// The OpenFGA-compatible HTTP API: routing, JSON shapes, errors, auth.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>

#include "admin/admin.h"
#include "store/store.h"

namespace aigis::admin {
namespace {

namespace json = boost::json;
using gateway::HttpRequest;
using gateway::HttpResponse;

constexpr std::string_view kModel = R"({"schema_version":"1.1","type_definitions":[{"type":"user"},
  {"type":"document","relations":{"viewer":{"this":{}}},
   "metadata":{"relations":{"viewer":{"directly_related_user_types":[{"type":"user"},{"type":"user","wildcard":{}}]}}}}]})";

class OpenFgaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::OpenSqlite({":memory:"});
    ASSERT_TRUE(s.ok());
    db_ = std::move(s).value();
    auto svc = authz::Service::Open(*db_);
    ASSERT_TRUE(svc.ok()) << svc.status().message();
    svc_ = std::move(svc).value();
    opt_.token = std::string(40, 't');
  }

  struct Reply {
    int status = 0;
    json::value body;
    std::string raw;
  };

  Reply Call(std::string_view method, std::string_view target, std::string_view body = "",
             std::optional<std::string> auth = std::nullopt, std::string_view tenant = "") {
    Headers h;
    std::string authorization = auth ? *auth : "Bearer " + opt_.token;
    if (!authorization.empty()) h.Add("Authorization", authorization);
    if (!tenant.empty()) h.Add("X-Aigis-Tenant", std::string(tenant));
    size_t q = target.find('?');
    HttpRequest req;
    req.method = method;
    req.path = target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    req.headers = &h;
    req.body = body;
    HttpResponse r = HandleOpenFga(*svc_, opt_, req);
    Reply out{r.status, nullptr, r.body};
    if (!r.body.empty()) {
      boost::system::error_code ec;
      out.body = json::parse(r.body, ec);
      EXPECT_FALSE(ec) << r.body;
    }
    return out;
  }

  std::string Str(const Reply& r, std::string_view key) {
    const json::value* v = r.body.is_object() ? r.body.get_object().if_contains(key) : nullptr;
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  }

  std::unique_ptr<store::Store> db_;
  std::shared_ptr<authz::Service> svc_;
  AdminOptions opt_;
};

TEST_F(OpenFgaTest, AuthRequired) {
  EXPECT_EQ(Call("GET", "/stores", "", std::string()).status, 401);
  Reply r = Call("GET", "/stores", "", "Bearer wrong");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Str(r, "code"), "unauthenticated");
  EXPECT_EQ(Call("GET", "/stores").status, 200);
}

TEST_F(OpenFgaTest, StoreModelTupleCheckFlow) {
  Reply s = Call("POST", "/stores", R"({"name":"docs"})");
  ASSERT_EQ(s.status, 201) << s.raw;
  std::string id = Str(s, "id");
  ASSERT_EQ(id.size(), 26u);
  EXPECT_EQ(Call("GET", "/stores/" + id).status, 200);
  EXPECT_EQ(Call("GET", "/stores/" + id, "", std::nullopt, "other").status, 404);  // tenant

  Reply m = Call("POST", "/stores/" + id + "/authorization-models", kModel);
  ASSERT_EQ(m.status, 201) << m.raw;
  std::string model_id = Str(m, "authorization_model_id");
  Reply gm = Call("GET", "/stores/" + id + "/authorization-models/" + model_id);
  ASSERT_EQ(gm.status, 200) << gm.raw;
  EXPECT_EQ(gm.body.at("authorization_model").at("id").as_string(), model_id);

  Reply w = Call("POST", "/stores/" + id + "/write",
                 R"({"writes":{"tuple_keys":[{"user":"user:anne","relation":"viewer","object":"document:1"}]}})");
  EXPECT_EQ(w.status, 200) << w.raw;
  Reply bad = Call("POST", "/stores/" + id + "/write",
                   R"({"writes":{"tuple_keys":[{"user":"user:anne","relation":"owner","object":"document:1"}]}})");
  EXPECT_EQ(bad.status, 400) << bad.raw;
  EXPECT_FALSE(Str(bad, "code").empty());
  EXPECT_FALSE(Str(bad, "message").empty());

  Reply c = Call("POST", "/stores/" + id + "/check",
                 R"({"tuple_key":{"user":"user:anne","relation":"viewer","object":"document:1"}})");
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_TRUE(c.body.at("allowed").as_bool());
  EXPECT_EQ(Str(c, "resolution"), "") << "no trace unless asked";
  Reply traced = Call("POST", "/stores/" + id + "/check",
                      R"({"tuple_key":{"user":"user:anne","relation":"viewer","object":"document:1"},"trace":true})");
  ASSERT_EQ(traced.status, 200) << traced.raw;
  EXPECT_EQ(Str(traced, "resolution"), "document:1#viewer@user:anne\ntuple document:1#viewer@user:anne");
  Reply bad_trace = Call("POST", "/stores/" + id + "/check",
                         R"({"tuple_key":{"user":"user:anne","relation":"viewer","object":"document:1"},"trace":"yes"})");
  EXPECT_EQ(bad_trace.status, 400) << bad_trace.raw;
  Reply c2 = Call("POST", "/stores/" + id + "/check",
                  R"({"tuple_key":{"user":"user:bob","relation":"viewer","object":"document:1"}})");
  EXPECT_FALSE(c2.body.at("allowed").as_bool());
  Reply c3 = Call("POST", "/stores/" + id + "/check",
                  R"({"tuple_key":{"user":"user:bob","relation":"nope","object":"document:1"}})");
  EXPECT_EQ(c3.status, 400) << c3.raw;
  EXPECT_EQ(Str(c3, "code"), "validation_error") << c3.raw;

  Reply b = Call("POST", "/stores/" + id + "/batch-check",
                 R"({"checks":[{"tuple_key":{"user":"user:anne","relation":"viewer","object":"document:1"},"correlation_id":"x"},
                               {"tuple_key":{"user":"user:anne","relation":"nope","object":"document:1"},"correlation_id":"y"}]})");
  ASSERT_EQ(b.status, 200) << b.raw;
  EXPECT_TRUE(b.body.at("result").at("x").at("allowed").as_bool());
  EXPECT_TRUE(b.body.at("result").at("y").as_object().contains("error"));

  Reply ch = Call("GET", "/stores/" + id + "/changes?page_size=10");
  ASSERT_EQ(ch.status, 200) << ch.raw;
  EXPECT_EQ(ch.body.at("changes").as_array().size(), 1u);

  Reply e = Call("POST", "/stores/" + id + "/expand", R"({"tuple_key":{"object":"document:1","relation":"viewer"}})");
  ASSERT_EQ(e.status, 200) << e.raw;
  EXPECT_EQ(json::serialize(e.body),
            R"({"tree":{"root":{"name":"document:1#viewer","leaf":{"users":{"users":["user:anne"]}}}}})");
  EXPECT_EQ(Call("POST", "/stores/" + id + "/expand", R"({"tuple_key":{"object":"document:1","relation":"x"}})").status, 400);
  EXPECT_EQ(Call("POST", "/stores/" + id + "/nope", "{}").status, 404);
  EXPECT_EQ(Call("DELETE", "/stores/" + id).status, 204);
  Reply gone = Call("POST", "/stores/" + id + "/check",
                    R"({"tuple_key":{"user":"user:anne","relation":"viewer","object":"document:1"}})");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(Str(gone, "code"), "store_id_not_found");
}

TEST_F(OpenFgaTest, MalformedBodies) {
  Reply s = Call("POST", "/stores", R"({"name":"docs"})");
  std::string id = Str(s, "id");
  EXPECT_EQ(Call("POST", "/stores", "not json").status, 400);
  EXPECT_EQ(Call("POST", "/stores", "{}").status, 400);
  EXPECT_EQ(Call("POST", "/stores/" + id + "/authorization-models", R"({"schema_version":"1.1","type_definitions":[{"type":"x","relations":{"r":{"computedUserset":{"relation":"no"}}}}]})").status, 400);
  Reply nomodel = Call("POST", "/stores/" + id + "/check", R"({"tuple_key":{"user":"user:a","relation":"r","object":"x:1"}})");
  EXPECT_EQ(nomodel.status, 400) << nomodel.raw;
  EXPECT_EQ(Str(nomodel, "code"), "latest_authorization_model_not_found");
}

}  // namespace
}  // namespace aigis::admin

// The OpenFGA-compatible HTTP API (paths and JSON shapes as OpenFGA's), on
// the admin listener under /stores, over authz::Service.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <ctime>

#include "admin/admin.h"
#include "authz/authz.h"
#include "crypto/crypto.h"

namespace aigis::admin {

namespace {

namespace json = boost::json;
using gateway::HttpRequest;
using gateway::HttpResponse;

HttpResponse Json(int status, const json::value& v) {
  HttpResponse r;
  r.status = status;
  r.headers.Set("Content-Type", "application/json");
  r.headers.Set("Cache-Control", "no-store");
  r.body = json::serialize(v);
  return r;
}

HttpResponse Error(int status, std::string_view code, std::string_view message) {
  json::object o;
  o["code"] = code;
  o["message"] = message;
  return Json(status, o);
}

// Splits "name: message" when `name` is an OpenFGA error name.
std::pair<std::string, std::string> SplitCode(const Status& st) {
  const std::string& m = st.message();
  size_t colon = m.find(": ");
  if (colon != std::string::npos && colon > 0 &&
      std::all_of(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(colon),
                  [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; })) {
    return {m.substr(0, colon), m.substr(colon + 2)};
  }
  switch (st.code()) {
    case Code::kNotFound: return {"not_found", m};
    case Code::kInternal: return {"internal_error", m};
    case Code::kUnauthenticated: return {"unauthenticated", m};
    default: return {"validation_error", m};
  }
}

HttpResponse Error(const Status& st) {
  auto [code, message] = SplitCode(st);
  int status = 400;
  if (code == "store_id_not_found" || code == "undefined_endpoint" || st.code() == Code::kNotFound) status = 404;
  if (st.code() == Code::kInternal || st.code() == Code::kUnavailable) status = 500;
  if (code == "authorization_model_resolution_too_complex") status = 422;
  if (st.code() == Code::kInternal) spdlog::error("openfga api: {}", st.message());
  return Error(status, code, message);
}

#define FGA_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                    \
  if (!tmp.ok()) return Error(tmp.status()); \
  lhs = std::move(tmp).value()
#define FGA_ASSIGN(lhs, expr) FGA_ASSIGN_IMPL(AIGIS_CONCAT(_fga_, __LINE__), lhs, expr)
#define FGA_CHECK(expr)                       \
  do {                                        \
    ::aigis::Status _st = (expr);             \
    if (!_st.ok()) return Error(_st);         \
  } while (0)

std::string Rfc3339(int64_t ms) {
  std::time_t s = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

Status Invalid(std::string m) { return InvalidArgument("validation_error: " + std::move(m)); }

Result<json::object> ParseBody(std::string_view body) {
  if (TrimWhitespace(body).empty()) return json::object();
  json::parse_options po;
  po.max_depth = 64;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec, {}, po);
  if (ec) return Invalid(fmt::format("request body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) return Invalid("request body must be a JSON object");
  return std::move(v.get_object());
}

Result<std::string> Str(const json::object& o, std::string_view key, bool required = false) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) {
    if (required) return Invalid(fmt::format("'{}' is required", key));
    return std::string();
  }
  if (!it->value().is_string()) return Invalid(fmt::format("'{}' must be a string", key));
  return std::string(it->value().get_string());
}

Result<int> Int(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return 0;
  if (it->value().is_int64()) return static_cast<int>(std::clamp<int64_t>(it->value().get_int64(), -1, 1 << 20));
  if (it->value().is_uint64()) return 1 << 20;
  return Invalid(fmt::format("'{}' must be an integer", key));
}

Result<std::string> ContextText(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::string();
  if (!it->value().is_object()) return Invalid(fmt::format("'{}' must be an object", key));
  return json::serialize(it->value());
}

Result<authz::TupleKey> ParseTupleKey(const json::value& v, bool require_all = true) {
  if (!v.is_object()) return Invalid("a tuple key must be an object");
  const json::object& o = v.get_object();
  authz::TupleKey t;
  ASSIGN_OR_RETURN(t.object, Str(o, "object", require_all));
  ASSIGN_OR_RETURN(t.relation, Str(o, "relation", require_all));
  ASSIGN_OR_RETURN(t.user, Str(o, "user", require_all));
  if (auto it = o.find("condition"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_object()) return Invalid("'condition' must be an object");
    ASSIGN_OR_RETURN(t.condition, Str(it->value().get_object(), "name", true));
    ASSIGN_OR_RETURN(t.condition_context, ContextText(it->value().get_object(), "context"));
  }
  return t;
}

json::object TupleKeyJson(const authz::TupleKey& t, bool with_condition = true) {
  json::object o;
  o["object"] = t.object;
  o["relation"] = t.relation;
  o["user"] = t.user;
  if (with_condition && !t.condition.empty()) {
    json::object c;
    c["name"] = t.condition;
    if (!t.condition_context.empty()) {
      boost::system::error_code ec;
      json::value ctx = json::parse(t.condition_context, ec);
      if (!ec) c["context"] = ctx;
    }
    o["condition"] = std::move(c);
  }
  return o;
}

// A list of tuple keys: {tuple_keys:[...]} or, as ListUsers sends, [...].
Result<std::vector<authz::TupleKey>> TupleKeys(const json::object& o, std::string_view key) {
  std::vector<authz::TupleKey> out;
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return out;
  const json::value* arr = &it->value();
  if (arr->is_object()) {
    auto k = arr->get_object().find("tuple_keys");
    if (k == arr->get_object().end() || k->value().is_null()) return out;
    arr = &k->value();
  }
  if (!arr->is_array()) return Invalid(fmt::format("'{}' must hold an array of tuple keys", key));
  for (const auto& v : arr->get_array()) {
    ASSIGN_OR_RETURN(authz::TupleKey t, ParseTupleKey(v));
    out.push_back(std::move(t));
  }
  return out;
}

json::object StoreJson(const authz::StoreInfo& s) {
  json::object o;
  o["id"] = s.id;
  o["name"] = s.name;
  o["created_at"] = Rfc3339(s.created_at_ms);
  o["updated_at"] = Rfc3339(s.updated_at_ms);
  return o;
}

json::object ModelJson(const authz::ModelInfo& m) {
  json::value v = json::parse(authz::ToJson(m.engine->model()));
  json::object o;
  o["id"] = m.id;
  for (auto& [k, val] : v.get_object()) o[k] = val;
  return o;
}

struct Query {
  std::vector<std::pair<std::string, std::string>> items;
  std::string Get(std::string_view key) const {
    for (const auto& [k, v] : items) {
      if (k == key) return v;
    }
    return {};
  }
};

Result<Query> ParseQuery(std::string_view text) {
  auto pairs = ParseUrlEncoded(text, 16);
  if (!pairs.ok()) return Invalid(pairs.status().message());
  return Query{std::move(pairs).value()};
}

bool Authorized(const AdminOptions& opt, const HttpRequest& req) {
  std::string_view auth = req.headers ? req.headers->Get("Authorization") : std::string_view();
  auth = TrimWhitespace(auth);
  constexpr std::string_view kScheme = "bearer ";
  if (auth.size() <= kScheme.size() || !EqualsIgnoreCase(auth.substr(0, kScheme.size()), kScheme)) return false;
  std::string_view token = TrimWhitespace(auth.substr(kScheme.size()));
  return !opt.token.empty() && crypto::ConstantTimeEqual(crypto::Sha256(token), crypto::Sha256(opt.token));
}

Result<std::string> Tenant(const HttpRequest& req) {
  const std::string* header = req.headers ? req.headers->Find("X-Aigis-Tenant") : nullptr;
  std::string tenant = header ? std::string(TrimWhitespace(*header)) : "default";
  if (tenant.empty() || tenant.size() > 64 || !IsValidUtf8(tenant)) {
    return Invalid("X-Aigis-Tenant must be 1..64 characters");
  }
  return tenant;
}

std::vector<std::string_view> Split(std::string_view rest) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t slash = rest.find('/', pos);
    if (slash == std::string_view::npos) slash = rest.size();
    out.push_back(rest.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

struct Call {
  authz::Service& svc;
  const HttpRequest& req;
  std::string tenant;
  json::object body;
  Query query;
};

HttpResponse MethodNotAllowed() { return Error(405, "method_not_allowed", "method not allowed"); }

HttpResponse Stores(Call& c) {
  if (c.req.method == "POST") {
    FGA_ASSIGN(std::string name, Str(c.body, "name", true));
    FGA_ASSIGN(auto s, c.svc.CreateStore(c.tenant, name));
    return Json(201, StoreJson(s));
  }
  if (c.req.method == "GET") {
    int page_size = 0;
    if (std::string ps = c.query.Get("page_size"); !ps.empty()) {
      try {
        page_size = std::stoi(ps);
      } catch (...) {
        return Error(Invalid("page_size must be an integer"));
      }
    }
    FGA_ASSIGN(auto page, c.svc.ListStores(c.tenant, page_size, c.query.Get("continuation_token")));
    json::array arr;
    for (const auto& s : page.items) arr.push_back(StoreJson(s));
    json::object o;
    o["stores"] = std::move(arr);
    o["continuation_token"] = page.continuation_token;
    return Json(200, o);
  }
  return MethodNotAllowed();
}

HttpResponse Check(Call& c, const std::string& store) {
  FGA_ASSIGN(std::string model_id, Str(c.body, "authorization_model_id"));
  FGA_ASSIGN(auto view, c.svc.View(c.tenant, store, model_id));
  auto it = c.body.find("tuple_key");
  if (it == c.body.end()) return Error(Invalid("'tuple_key' is required"));
  authz::CheckRequest r;
  FGA_ASSIGN(r.tuple, ParseTupleKey(it->value()));
  FGA_ASSIGN(r.contextual_tuples, TupleKeys(c.body, "contextual_tuples"));
  FGA_ASSIGN(r.context, ContextText(c.body, "context"));
  // OpenFGA's `trace` asks for the resolution path: ours is the explanation,
  // one step per line.
  if (auto t = c.body.find("trace"); t != c.body.end()) {
    if (!t->value().is_bool()) return Error(Invalid("'trace' must be a boolean"));
    r.explain = t->value().get_bool();
  }
  FGA_ASSIGN(auto res, c.svc.Check(c.tenant, store, view.model_id, r));
  json::object o;
  o["allowed"] = res.result.allowed;
  std::string resolution;
  for (const auto& step : res.result.explanation) resolution += (resolution.empty() ? "" : "\n") + step;
  o["resolution"] = resolution;
  return Json(200, o);
}

HttpResponse BatchCheck(Call& c, const std::string& store) {
  FGA_ASSIGN(std::string model_id, Str(c.body, "authorization_model_id"));
  FGA_ASSIGN(auto view, c.svc.View(c.tenant, store, model_id));
  auto it = c.body.find("checks");
  if (it == c.body.end() || !it->value().is_array()) return Error(Invalid("'checks' must be an array"));
  if (it->value().get_array().size() > 50) return Error(Invalid("at most 50 checks per batch"));
  json::object result;
  for (const auto& item : it->value().get_array()) {
    if (!item.is_object()) return Error(Invalid("each check must be an object"));
    const json::object& o = item.get_object();
    FGA_ASSIGN(std::string id, Str(o, "correlation_id", true));
    if (result.contains(id)) return Error(Invalid(fmt::format("duplicate correlation_id '{}'", id.substr(0, 64))));
    auto tk = o.find("tuple_key");
    if (tk == o.end()) return Error(Invalid("'tuple_key' is required"));
    authz::CheckRequest r;
    FGA_ASSIGN(r.tuple, ParseTupleKey(tk->value()));
    FGA_ASSIGN(r.contextual_tuples, TupleKeys(o, "contextual_tuples"));
    FGA_ASSIGN(r.context, ContextText(o, "context"));
    auto res = c.svc.Check(c.tenant, store, view.model_id, r);
    json::object one;
    if (res.ok()) {
      one["allowed"] = res->result.allowed;
    } else {
      json::object err;
      auto [code, message] = SplitCode(res.status());
      if (res.status().code() == Code::kInternal) {
        err["internal_error"] = "internal_error";
      } else {
        err["input_error"] = code;
      }
      err["message"] = message;
      one["error"] = std::move(err);
    }
    result[id] = std::move(one);
  }
  json::object o;
  o["result"] = std::move(result);
  return Json(200, o);
}

HttpResponse ListObjects(Call& c, const std::string& store) {
  FGA_ASSIGN(std::string model_id, Str(c.body, "authorization_model_id"));
  FGA_ASSIGN(auto view, c.svc.View(c.tenant, store, model_id));
  FGA_ASSIGN(std::string type, Str(c.body, "type", true));
  FGA_ASSIGN(std::string relation, Str(c.body, "relation", true));
  FGA_ASSIGN(std::string user, Str(c.body, "user", true));
  FGA_ASSIGN(auto ctx, TupleKeys(c.body, "contextual_tuples"));
  FGA_ASSIGN(std::string context, ContextText(c.body, "context"));
  FGA_ASSIGN(auto objects, view.engine->ListObjects(view.tuples, type, relation, user, ctx, context));
  json::array arr;
  for (const auto& o : objects) arr.push_back(json::string(o));
  json::object o;
  o["objects"] = std::move(arr);
  return Json(200, o);
}

HttpResponse ListUsers(Call& c, const std::string& store) {
  FGA_ASSIGN(std::string model_id, Str(c.body, "authorization_model_id"));
  FGA_ASSIGN(auto view, c.svc.View(c.tenant, store, model_id));
  auto obj = c.body.find("object");
  if (obj == c.body.end() || !obj->value().is_object()) return Error(Invalid("'object' must be {type, id}"));
  FGA_ASSIGN(std::string otype, Str(obj->value().get_object(), "type", true));
  FGA_ASSIGN(std::string oid, Str(obj->value().get_object(), "id", true));
  FGA_ASSIGN(std::string relation, Str(c.body, "relation", true));
  std::vector<authz::UserFilter> filters;
  auto uf = c.body.find("user_filters");
  if (uf == c.body.end() || !uf->value().is_array() || uf->value().get_array().empty()) {
    return Error(Invalid("'user_filters' must be a non-empty array"));
  }
  for (const auto& f : uf->value().get_array()) {
    if (!f.is_object()) return Error(Invalid("each user filter must be an object"));
    authz::UserFilter filter;
    FGA_ASSIGN(filter.type, Str(f.get_object(), "type", true));
    FGA_ASSIGN(filter.relation, Str(f.get_object(), "relation"));
    filters.push_back(std::move(filter));
  }
  FGA_ASSIGN(auto ctx, TupleKeys(c.body, "contextual_tuples"));
  FGA_ASSIGN(std::string context, ContextText(c.body, "context"));
  FGA_ASSIGN(auto users, view.engine->ListUsers(view.tuples, otype + ":" + oid, relation, filters, ctx, context));
  json::array arr;
  for (const auto& u : users) {
    json::object entry;
    size_t colon = u.find(':');
    size_t hash = u.find('#');
    std::string type = u.substr(0, colon);
    if (hash != std::string::npos) {
      json::object us;
      us["type"] = type;
      us["id"] = u.substr(colon + 1, hash - colon - 1);
      us["relation"] = u.substr(hash + 1);
      entry["userset"] = std::move(us);
    } else if (u.ends_with(":*")) {
      json::object w;
      w["type"] = type;
      entry["wildcard"] = std::move(w);
    } else {
      json::object ob;
      ob["type"] = type;
      ob["id"] = u.substr(colon + 1);
      entry["object"] = std::move(ob);
    }
    arr.push_back(std::move(entry));
  }
  json::object o;
  o["users"] = std::move(arr);
  return Json(200, o);
}

HttpResponse Write(Call& c, const std::string& store) {
  FGA_ASSIGN(std::string model_id, Str(c.body, "authorization_model_id"));
  FGA_ASSIGN(auto writes, TupleKeys(c.body, "writes"));
  std::vector<authz::TupleKey> deletes;
  if (auto it = c.body.find("deletes"); it != c.body.end() && it->value().is_object()) {
    auto k = it->value().get_object().find("tuple_keys");
    if (k != it->value().get_object().end() && k->value().is_array()) {
      for (const auto& v : k->value().get_array()) {
        FGA_ASSIGN(auto t, ParseTupleKey(v));
        deletes.push_back(std::move(t));
      }
    }
  }
  FGA_CHECK(c.svc.Write(c.tenant, store, model_id, writes, deletes));
  return Json(200, json::object());
}

HttpResponse Read(Call& c, const std::string& store) {
  authz::TupleKey filter;
  if (auto it = c.body.find("tuple_key"); it != c.body.end() && !it->value().is_null()) {
    FGA_ASSIGN(filter, ParseTupleKey(it->value(), /*require_all=*/false));
  }
  FGA_ASSIGN(int page_size, Int(c.body, "page_size"));
  FGA_ASSIGN(std::string token, Str(c.body, "continuation_token"));
  FGA_ASSIGN(auto page, c.svc.Read(c.tenant, store, filter, page_size, token));
  json::array arr;
  for (const auto& t : page.items) {
    json::object o;
    o["key"] = TupleKeyJson(t.key);
    o["timestamp"] = Rfc3339(t.timestamp_ms);
    arr.push_back(std::move(o));
  }
  json::object o;
  o["tuples"] = std::move(arr);
  o["continuation_token"] = page.continuation_token;
  return Json(200, o);
}

HttpResponse Changes(Call& c, const std::string& store) {
  int page_size = 0;
  if (std::string ps = c.query.Get("page_size"); !ps.empty()) {
    try {
      page_size = std::stoi(ps);
    } catch (...) {
      return Error(Invalid("page_size must be an integer"));
    }
  }
  FGA_ASSIGN(auto page,
             c.svc.ReadChanges(c.tenant, store, c.query.Get("type"), page_size, c.query.Get("continuation_token")));
  json::array arr;
  for (const auto& ch : page.items) {
    json::object o;
    o["tuple_key"] = TupleKeyJson(ch.key);
    o["operation"] = ch.write ? "TUPLE_OPERATION_WRITE" : "TUPLE_OPERATION_DELETE";
    o["timestamp"] = Rfc3339(ch.timestamp_ms);
    arr.push_back(std::move(o));
  }
  json::object o;
  o["changes"] = std::move(arr);
  o["continuation_token"] = page.continuation_token;
  return Json(200, o);
}

HttpResponse Models(Call& c, const std::string& store) {
  if (c.req.method == "POST") {
    FGA_ASSIGN(std::string id, c.svc.WriteModel(c.tenant, store, c.req.body));
    json::object o;
    o["authorization_model_id"] = id;
    return Json(201, o);
  }
  if (c.req.method == "GET") {
    int page_size = 0;
    if (std::string ps = c.query.Get("page_size"); !ps.empty()) {
      try {
        page_size = std::stoi(ps);
      } catch (...) {
        return Error(Invalid("page_size must be an integer"));
      }
    }
    FGA_ASSIGN(auto page, c.svc.ListModels(c.tenant, store, page_size, c.query.Get("continuation_token")));
    json::array arr;
    for (const auto& m : page.items) arr.push_back(ModelJson(m));
    json::object o;
    o["authorization_models"] = std::move(arr);
    o["continuation_token"] = page.continuation_token;
    return Json(200, o);
  }
  return MethodNotAllowed();
}

// One level of the relation's userset tree, as OpenFGA's Expand answers.
json::object ExpandNode(const authz::Rewrite& rw, const std::string& object, const std::string& relation,
                        const authz::TupleSet& tuples, const std::vector<authz::TupleKey>& extra) {
  using K = authz::Rewrite::Kind;
  std::string name = object + "#" + relation;
  auto tuples_of = [&](const std::string& rel) {
    std::vector<std::string> users;
    for (const authz::TupleView& t : tuples.ByObjectRelation(object, rel)) users.emplace_back(t.user);
    for (const auto& t : extra) {
      if (t.object == object && t.relation == rel &&
          std::find(users.begin(), users.end(), t.user) == users.end()) {
        users.push_back(t.user);
      }
    }
    return users;
  };
  json::object node;
  node["name"] = name;
  switch (rw.kind) {
    case K::kThis: {
      json::array users;
      for (const auto& u : tuples_of(relation)) users.push_back(json::string(u));
      json::object inner;
      inner["users"] = std::move(users);
      json::object leaf;
      leaf["users"] = std::move(inner);
      node["leaf"] = std::move(leaf);
      break;
    }
    case K::kComputed: {
      json::object computed;
      computed["userset"] = object + "#" + rw.relation;
      json::object leaf;
      leaf["computed"] = std::move(computed);
      node["leaf"] = std::move(leaf);
      break;
    }
    case K::kTupleToUserset: {
      json::array computed;
      for (const auto& u : tuples_of(rw.tupleset)) {
        json::object c;
        c["userset"] = u.substr(0, u.find('#')) + "#" + rw.relation;
        computed.push_back(std::move(c));
      }
      json::object ttu;
      ttu["tupleset"] = object + "#" + rw.tupleset;
      ttu["computed"] = std::move(computed);
      json::object leaf;
      leaf["tupleToUserset"] = std::move(ttu);
      node["leaf"] = std::move(leaf);
      break;
    }
    case K::kUnion:
    case K::kIntersection: {
      json::array nodes;
      for (const auto& c : rw.children) nodes.push_back(ExpandNode(c, object, relation, tuples, extra));
      json::object inner;
      inner["nodes"] = std::move(nodes);
      node[rw.kind == K::kUnion ? "union" : "intersection"] = std::move(inner);
      break;
    }
    case K::kDifference: {
      json::object inner;
      if (rw.children.size() == 2) {
        inner["base"] = ExpandNode(rw.children[0], object, relation, tuples, extra);
        inner["subtract"] = ExpandNode(rw.children[1], object, relation, tuples, extra);
      }
      node["difference"] = std::move(inner);
      break;
    }
  }
  return node;
}

HttpResponse Expand(Call& c, const std::string& store) {
  FGA_ASSIGN(std::string model_id, Str(c.body, "authorization_model_id"));
  FGA_ASSIGN(auto view, c.svc.View(c.tenant, store, model_id));
  auto it = c.body.find("tuple_key");
  if (it == c.body.end() || !it->value().is_object()) return Error(Invalid("'tuple_key' is required"));
  FGA_ASSIGN(std::string object, Str(it->value().get_object(), "object", true));
  FGA_ASSIGN(std::string relation, Str(it->value().get_object(), "relation", true));
  FGA_ASSIGN(auto extra, TupleKeys(c.body, "contextual_tuples"));
  size_t colon = object.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == object.size()) {
    return Error(Invalid(fmt::format("invalid object '{}'", object.substr(0, 64))));
  }
  const authz::TypeDefinition* type = view.engine->model().Find(std::string_view(object).substr(0, colon));
  if (!type) return Error(InvalidArgument(fmt::format("type_not_found: type '{}' not found", object.substr(0, colon))));
  const authz::Relation* rel = type->Find(relation);
  if (!rel) {
    return Error(InvalidArgument(fmt::format("relation_not_found: relation '{}' not found on '{}'",
                                             relation.substr(0, 64), type->name)));
  }
  json::object tree;
  tree["root"] = ExpandNode(rel->rewrite, object, relation, view.tuples, extra);
  json::object o;
  o["tree"] = std::move(tree);
  return Json(200, o);
}

HttpResponse Route(Call& c) {
  std::string_view path = c.req.path;
  if (path == "/stores" || path == "/stores/") return Stores(c);
  std::vector<std::string_view> seg = Split(path.substr(std::string_view("/stores/").size()));
  std::string store(seg[0]);
  if (seg.size() == 1) {
    if (c.req.method == "GET") {
      FGA_ASSIGN(auto s, c.svc.GetStore(c.tenant, store));
      return Json(200, StoreJson(s));
    }
    if (c.req.method == "DELETE") {
      FGA_CHECK(c.svc.DeleteStore(c.tenant, store));
      HttpResponse r;
      r.status = 204;
      r.headers.Set("Cache-Control", "no-store");
      return r;
    }
    return MethodNotAllowed();
  }
  std::string_view action = seg[1];
  if (action == "authorization-models") {
    if (seg.size() == 2) return Models(c, store);
    if (seg.size() == 3 && c.req.method == "GET") {
      FGA_ASSIGN(auto m, c.svc.GetModel(c.tenant, store, std::string(seg[2])));
      json::object o;
      o["authorization_model"] = ModelJson(m);
      return Json(200, o);
    }
    return MethodNotAllowed();
  }
  if (seg.size() != 2) return Error(404, "undefined_endpoint", "undefined endpoint");
  if (action == "changes") {
    if (c.req.method != "GET") return MethodNotAllowed();
    return Changes(c, store);
  }
  if (c.req.method != "POST") return MethodNotAllowed();
  if (action == "write") return Write(c, store);
  if (action == "read") return Read(c, store);
  if (action == "check") return Check(c, store);
  if (action == "batch-check") return BatchCheck(c, store);
  if (action == "list-objects") return ListObjects(c, store);
  if (action == "list-users") return ListUsers(c, store);
  if (action == "expand") return Expand(c, store);
  return Error(404, "undefined_endpoint", "undefined endpoint");
}

}  // namespace

gateway::HttpResponse HandleOpenFga(authz::Service& svc, const AdminOptions& opt, const gateway::HttpRequest& req) {
  if (!Authorized(opt, req)) {
    HttpResponse r = Error(401, "unauthenticated", "unauthenticated");
    r.headers.Set("WWW-Authenticate", "Bearer realm=\"aigis-admin\"");
    return r;
  }
  auto tenant = Tenant(req);
  if (!tenant.ok()) return Error(tenant.status());
  auto query = ParseQuery(req.query);
  if (!query.ok()) return Error(query.status());
  Call c{svc, req, *tenant, {}, std::move(query).value()};
  if (req.method == "POST") {
    auto body = ParseBody(req.body);
    if (!body.ok()) return Error(body.status());
    c.body = std::move(body).value();
  }
  try {
    return Route(c);
  } catch (const std::exception& e) {
    spdlog::error("openfga api: {}", e.what());
    return Error(500, "internal_error", "internal error");
  }
}

void InstallOpenFga(gateway::Gateway& gw, std::shared_ptr<authz::Service> svc, AdminOptions opt) {
  auto shared_opt = std::make_shared<const AdminOptions>(std::move(opt));
  auto handler = [svc = std::move(svc), shared_opt](const gateway::HttpRequest& req) {
    return HandleOpenFga(*svc, *shared_opt, req);
  };
  gw.Handle(gateway::Listener::kAdmin, "/stores", handler, /*blocking=*/true);
  gw.Handle(gateway::Listener::kAdmin, "/stores/", handler, /*blocking=*/true);
}

}  // namespace aigis::admin

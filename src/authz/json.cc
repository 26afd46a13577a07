// OpenFGA's JSON form of an authorization model, as the API and the SDKs
// exchange it:
//   {"schema_version": "1.1",
//    "type_definitions": [{"type": T, "relations": {r: Userset},
//                          "metadata": {"relations": {r: {"directly_related_user_types":
//                              [{"type", "relation"?, "wildcard": {}?, "condition"?}]}}}}],
//    "conditions": {name: {"name", "expression",
//                          "parameters": {p: {"type_name": "TYPE_NAME_INT", "generic_types":
//                          [..]}}}}}
// Userset: {"this":{}} | {"computedUserset":{"relation"}} |
//   {"tupleToUserset":{"tupleset":{"relation"},"computedUserset":{"relation"}}} |
//   {"union":{"child":[..]}} | {"intersection":{"child":[..]}} |
//   {"difference":{"base":..,"subtract":..}}.
// Metadata we do not model (module, source_info, file) is ignored on input.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <string>
#include <utility>

#include "authz/authz.h"

namespace aigis::authz {
namespace {

namespace json = boost::json;

constexpr int kMaxDepth = 64;
constexpr size_t kMaxInput = 16 * 1024 * 1024;

// Thrown inside the reader to unwind and caught in ParseJson: it never
// leaves this file.
struct JsonError {
  std::string message;
};

[[noreturn]] void Fail(std::string message) { throw JsonError{std::move(message)}; }

const json::object& AsObject(const json::value& v, std::string_view what) {
  if (!v.is_object()) Fail(fmt::format("{} must be an object", what));
  return v.get_object();
}

std::string AsString(const json::value& v, std::string_view what) {
  if (!v.is_string()) Fail(fmt::format("{} must be a string", what));
  return std::string(v.get_string());
}

std::string RelationField(const json::object& o, std::string_view key, std::string_view what) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) Fail(fmt::format("{} is missing '{}'", what, key));
  const json::value* rel = AsObject(*v, what).if_contains("relation");
  if (rel == nullptr) Fail(fmt::format("{}.{} is missing 'relation'", what, key));
  return AsString(*rel, "relation");
}

Rewrite ParseUserset(const json::value& v, int depth) {
  if (depth > kMaxDepth) Fail(fmt::format("userset nested deeper than {} levels", kMaxDepth));
  const json::object& o = AsObject(v, "userset");
  int kinds = 0;
  Rewrite rw;
  for (const auto& [key, val] : o) {
    if (val.is_null()) continue;
    ++kinds;
    if (key == "this") {
      rw.kind = Rewrite::Kind::kThis;
    } else if (key == "computedUserset") {
      rw.kind = Rewrite::Kind::kComputed;
      const json::value* rel = AsObject(val, "computedUserset").if_contains("relation");
      if (rel == nullptr) Fail("computedUserset is missing 'relation'");
      rw.relation = AsString(*rel, "computedUserset.relation");
    } else if (key == "tupleToUserset") {
      rw.kind = Rewrite::Kind::kTupleToUserset;
      const json::object& t = AsObject(val, "tupleToUserset");
      rw.tupleset = RelationField(t, "tupleset", "tupleToUserset");
      rw.relation = RelationField(t, "computedUserset", "tupleToUserset");
    } else if (key == "union" || key == "intersection") {
      rw.kind = key == "union" ? Rewrite::Kind::kUnion : Rewrite::Kind::kIntersection;
      const json::value* child = AsObject(val, key).if_contains("child");
      if (child == nullptr || !child->is_array())
        Fail(fmt::format("{}.child must be an array", std::string(key)));
      for (const auto& c : child->get_array()) rw.children.push_back(ParseUserset(c, depth + 1));
      if (rw.children.empty()) Fail(fmt::format("{} needs at least one child", std::string(key)));
    } else if (key == "difference") {
      rw.kind = Rewrite::Kind::kDifference;
      const json::object& d = AsObject(val, "difference");
      const json::value* base = d.if_contains("base");
      const json::value* sub = d.if_contains("subtract");
      if (base == nullptr || sub == nullptr) Fail("difference needs 'base' and 'subtract'");
      rw.children.push_back(ParseUserset(*base, depth + 1));
      rw.children.push_back(ParseUserset(*sub, depth + 1));
    } else {
      Fail(fmt::format("unknown userset '{}'", std::string(key)));
    }
  }
  if (kinds != 1)
    Fail(
        "a userset must have exactly one of this, computedUserset, tupleToUserset, union, "
        "intersection, difference");
  return rw;
}

std::string TypeNameFromJson(std::string_view t) {
  constexpr std::string_view kPrefix = "TYPE_NAME_";
  if (t.substr(0, kPrefix.size()) != kPrefix || t.size() == kPrefix.size()) {
    Fail(fmt::format("unknown condition parameter type '{}'", std::string(t)));
  }
  std::string out;
  for (char c : t.substr(kPrefix.size()))
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (out == "unspecified") Fail("condition parameter type is unspecified");
  return out;
}

std::string TypeNameToJson(std::string_view t) {
  std::string out = "TYPE_NAME_";
  for (char c : t) out += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return out;
}

Model ParseModel(const json::value& root) {
  const json::object& o = AsObject(root, "model");
  Model model;
  model.schema_version.clear();
  if (const json::value* v = o.if_contains("schema_version"); v != nullptr && !v->is_null()) {
    model.schema_version = AsString(*v, "schema_version");
  }
  if (const json::value* tds = o.if_contains("type_definitions");
      tds != nullptr && !tds->is_null()) {
    if (!tds->is_array()) Fail("type_definitions must be an array");
    for (const auto& tdv : tds->get_array()) {
      const json::object& td = AsObject(tdv, "type definition");
      TypeDefinition type;
      const json::value* name = td.if_contains("type");
      if (name == nullptr) Fail("type definition is missing 'type'");
      type.name = AsString(*name, "type");
      const json::object* meta_rels = nullptr;
      if (const json::value* meta = td.if_contains("metadata");
          meta != nullptr && !meta->is_null()) {
        if (const json::value* mr = AsObject(*meta, "metadata").if_contains("relations");
            mr != nullptr && !mr->is_null()) {
          meta_rels = &AsObject(*mr, "metadata.relations");
        }
      }
      if (const json::value* rels = td.if_contains("relations");
          rels != nullptr && !rels->is_null()) {
        for (const auto& [rname, rval] : AsObject(*rels, "relations")) {
          Relation rel;
          rel.name = std::string(rname);
          rel.rewrite = ParseUserset(rval, 0);
          const json::value* rm = meta_rels == nullptr ? nullptr : meta_rels->if_contains(rname);
          if (rm != nullptr && !rm->is_null()) {
            const json::value* drut =
                AsObject(*rm, "relation metadata").if_contains("directly_related_user_types");
            if (drut != nullptr && !drut->is_null()) {
              if (!drut->is_array()) Fail("directly_related_user_types must be an array");
              for (const auto& trv : drut->get_array()) {
                const json::object& tro = AsObject(trv, "type restriction");
                TypeRestriction tr;
                const json::value* t = tro.if_contains("type");
                if (t == nullptr) Fail("type restriction is missing 'type'");
                tr.type = AsString(*t, "type");
                if (const json::value* r = tro.if_contains("relation");
                    r != nullptr && !r->is_null()) {
                  tr.relation = AsString(*r, "relation");
                }
                if (const json::value* w = tro.if_contains("wildcard");
                    w != nullptr && !w->is_null()) {
                  tr.wildcard = true;
                }
                if (const json::value* c = tro.if_contains("condition");
                    c != nullptr && !c->is_null()) {
                  tr.condition = AsString(*c, "condition");
                }
                rel.directly_related.push_back(std::move(tr));
              }
            }
          }
          type.relations.push_back(std::move(rel));
        }
      }
      model.types.push_back(std::move(type));
    }
  }
  if (const json::value* conds = o.if_contains("conditions");
      conds != nullptr && !conds->is_null()) {
    for (const auto& [key, cval] : AsObject(*conds, "conditions")) {
      const json::object& co = AsObject(cval, "condition");
      Condition cond;
      cond.name = std::string(key);
      if (const json::value* n = co.if_contains("name"); n != nullptr && !n->is_null()) {
        std::string name = AsString(*n, "condition name");
        if (!name.empty() && name != cond.name) {
          Fail(
              fmt::format("condition key is `{}` but nested name property is {}", cond.name, name));
        }
      }
      if (const json::value* e = co.if_contains("expression"); e != nullptr) {
        cond.expression = AsString(*e, "expression");
      }
      if (const json::value* ps = co.if_contains("parameters"); ps != nullptr && !ps->is_null()) {
        for (const auto& [pname, pval] : AsObject(*ps, "parameters")) {
          const json::object& po = AsObject(pval, "parameter");
          ConditionParameter p;
          p.name = std::string(pname);
          const json::value* tn = po.if_contains("type_name");
          if (tn == nullptr) Fail(fmt::format("parameter '{}' is missing 'type_name'", p.name));
          p.type = TypeNameFromJson(AsString(*tn, "type_name"));
          if (const json::value* g = po.if_contains("generic_types");
              g != nullptr && !g->is_null()) {
            if (!g->is_array()) Fail("generic_types must be an array");
            for (const auto& gv : g->get_array()) {
              const json::value* gtn = AsObject(gv, "generic type").if_contains("type_name");
              if (gtn == nullptr) Fail("generic type is missing 'type_name'");
              p.generic_types.push_back(TypeNameFromJson(AsString(*gtn, "type_name")));
            }
          }
          cond.parameters.push_back(std::move(p));
        }
      }
      model.conditions.push_back(std::move(cond));
    }
  }
  return model;
}

json::value UsersetToJson(const Rewrite& rw) {
  json::object o;
  switch (rw.kind) {
    case Rewrite::Kind::kThis:
      o["this"] = json::object();
      break;
    case Rewrite::Kind::kComputed:
      o["computedUserset"] = json::object{{"relation", rw.relation}};
      break;
    case Rewrite::Kind::kTupleToUserset:
      o["tupleToUserset"] =
          json::object{{"tupleset", json::object{{"relation", rw.tupleset}}},
                       {"computedUserset", json::object{{"relation", rw.relation}}}};
      break;
    case Rewrite::Kind::kUnion:
    case Rewrite::Kind::kIntersection: {
      json::array children;
      for (const auto& c : rw.children) children.push_back(UsersetToJson(c));
      o[rw.kind == Rewrite::Kind::kUnion ? "union" : "intersection"] =
          json::object{{"child", std::move(children)}};
      break;
    }
    case Rewrite::Kind::kDifference: {
      json::object d;
      d["base"] =
          rw.children.size() > 0 ? UsersetToJson(rw.children[0]) : json::value(json::object());
      d["subtract"] =
          rw.children.size() > 1 ? UsersetToJson(rw.children[1]) : json::value(json::object());
      o["difference"] = std::move(d);
      break;
    }
  }
  return o;
}

}  // namespace

Result<Model> ParseJson(std::string_view text, std::vector<ModelError>* errors,
                        Validation validation) {
  auto fail = [&](std::string message) -> Status {
    if (errors != nullptr) errors->push_back(ModelError{message, 0, 0, ""});
    return InvalidArgument(std::move(message));
  };
  if (text.size() > kMaxInput) return fail(fmt::format("model is larger than {} bytes", kMaxInput));
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 4 * kMaxDepth + 16;
  json::value root = json::parse(text, ec, json::storage_ptr(), opts);
  if (ec) return fail(fmt::format("invalid JSON: {}", ec.message()));
  Model model;
  try {
    model = ParseModel(root);
  } catch (const JsonError& e) {
    return fail(e.message);
  }
  if (validation == Validation::kValidate) {
    if (Status st = ValidateModel(model, errors); !st.ok()) return st;
  }
  return model;
}

std::string ToJson(const Model& model) {
  json::object root;
  root["schema_version"] = model.schema_version;
  json::array types;
  for (const auto& type : model.types) {
    json::object td;
    td["type"] = type.name;
    json::object rels;
    json::object meta_rels;
    for (const auto& rel : type.relations) {
      rels[rel.name] = UsersetToJson(rel.rewrite);
      json::array drut;
      for (const auto& tr : rel.directly_related) {
        json::object t;
        t["type"] = tr.type;
        if (!tr.relation.empty()) t["relation"] = tr.relation;
        if (tr.wildcard) t["wildcard"] = json::object();
        if (!tr.condition.empty()) t["condition"] = tr.condition;
        drut.push_back(std::move(t));
      }
      meta_rels[rel.name] = json::object{{"directly_related_user_types", std::move(drut)}};
    }
    td["relations"] = std::move(rels);
    if (type.relations.empty()) {
      td["metadata"] = nullptr;
    } else {
      td["metadata"] = json::object{{"relations", std::move(meta_rels)}};
    }
    types.push_back(std::move(td));
  }
  // As OpenFGA writes it: an empty list is left out.
  if (!types.empty()) root["type_definitions"] = std::move(types);
  if (!model.conditions.empty()) {
    json::object conds;
    for (const auto& c : model.conditions) {
      json::object params;
      for (const auto& p : c.parameters) {
        json::object po;
        po["type_name"] = TypeNameToJson(p.type);
        if (!p.generic_types.empty()) {
          json::array g;
          for (const auto& gt : p.generic_types)
            g.push_back(json::object{{"type_name", TypeNameToJson(gt)}});
          po["generic_types"] = std::move(g);
        }
        params[p.name] = std::move(po);
      }
      conds[c.name] = json::object{
          {"name", c.name}, {"expression", c.expression}, {"parameters", std::move(params)}};
    }
    root["conditions"] = std::move(conds);
  }
  return json::serialize(root);
}

}  // namespace aigis::authz

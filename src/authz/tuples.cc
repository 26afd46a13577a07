// The in-memory tuple set and tuple validation against a model.
#include <algorithm>
#include <set>
#include <tuple>
#include <unordered_map>

#include "authz/authz.h"
#include "authz/cel.h"
#include "authz/engine_internal.h"

namespace aigis::authz {

std::string TupleKey::ToString() const {
  std::string s = object + "#" + relation + "@" + user;
  if (!condition.empty()) s += " (with " + condition + ")";
  return s;
}

namespace internal {

std::optional<UserRef> ParseUser(std::string_view user) {
  UserRef u;
  size_t colon = user.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  u.type = std::string(user.substr(0, colon));
  std::string_view rest = user.substr(colon + 1);
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) {
    u.relation = std::string(rest.substr(hash + 1));
    rest = rest.substr(0, hash);
    if (u.relation.empty() || u.relation.find_first_of(":#@ ") != std::string::npos) return std::nullopt;
  }
  if (rest.empty() || rest.find_first_of(":#@ ") != std::string_view::npos) return std::nullopt;
  if (u.type.find_first_of("#@ ") != std::string::npos) return std::nullopt;
  u.id = std::string(rest);
  if (u.id == "*" && !u.relation.empty()) return std::nullopt;  // "type:*#rel" is meaningless
  return u;
}

std::optional<std::pair<std::string, std::string>> ParseObject(std::string_view object) {
  size_t colon = object.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == object.size()) return std::nullopt;
  std::string_view id = object.substr(colon + 1);
  if (id.find_first_of(":#@ ") != std::string_view::npos || id == "*") return std::nullopt;
  std::string_view type = object.substr(0, colon);
  if (type.find_first_of("#@ ") != std::string_view::npos) return std::nullopt;
  return std::make_pair(std::string(type), std::string(id));
}

bool RestrictionAdmits(const TypeRestriction& r, const UserRef& u, bool match_condition, std::string_view condition) {
  if (r.type != u.type) return false;
  if (u.is_wildcard()) {
    if (!r.wildcard) return false;
  } else if (!u.relation.empty()) {
    if (r.wildcard || r.relation != u.relation) return false;
  } else {
    if (r.wildcard || !r.relation.empty()) return false;
  }
  return !match_condition || r.condition == condition;
}

}  // namespace internal

int OpenFgaErrorCode(const Status& status) {
  static const std::pair<std::string_view, int> kCodes[] = {
      {"validation_error", 2000},
      {"authorization_model_resolution_too_complex", 2002},
      {"write_failed_due_to_invalid_input", 2017},
      {"type_not_found", 2021},
      {"relation_not_found", 2022},
      {"invalid_tuple", 2027},
  };
  if (status.ok()) return 0;
  for (const auto& [tag, code] : kCodes) {
    const std::string& m = status.message();
    if (m.size() > tag.size() && m.compare(0, tag.size(), tag) == 0 && m[tag.size()] == ':') return code;
  }
  return 0;
}

Status ValidateTuple(const Model& model, const TupleKey& tuple) {
  auto bad = [&](std::string why) {
    return InvalidArgument("invalid_tuple: " + tuple.ToString() + ": " + why);
  };
  auto obj = internal::ParseObject(tuple.object);
  if (!obj) return bad("malformed object");
  const TypeDefinition* type = model.Find(obj->first);
  if (type == nullptr) return bad("type '" + obj->first + "' is not in the model");
  const Relation* rel = type->Find(tuple.relation);
  if (rel == nullptr) return bad("relation '" + obj->first + "#" + tuple.relation + "' is not in the model");
  auto user = internal::ParseUser(tuple.user);
  if (!user) return bad("malformed user");
  const TypeDefinition* utype = model.Find(user->type);
  if (utype == nullptr) return bad("user type '" + user->type + "' is not in the model");
  if (!user->relation.empty() && utype->Find(user->relation) == nullptr) {
    return bad("relation '" + user->type + "#" + user->relation + "' is not in the model");
  }
  if (!tuple.condition.empty()) {
    const Condition* cond = model.FindCondition(tuple.condition);
    if (cond == nullptr) return bad("condition '" + tuple.condition + "' is not in the model");
    if (!tuple.condition_context.empty()) {
      Status st = cel::ValidateContext(*cond, tuple.condition_context);
      if (!st.ok()) return bad(st.message());
    }
  }
  for (const auto& r : rel->directly_related) {
    if (internal::RestrictionAdmits(r, *user, /*match_condition=*/true, tuple.condition)) return Status::Ok();
  }
  return bad("the user is not allowed by the type restrictions of " + obj->first + "#" + tuple.relation);
}

// ---------------------------------------------------------------- TupleSet ----

struct TupleSet::Data {
  std::vector<std::shared_ptr<const TupleKey>> tuples;  // insertion order
  std::unordered_map<std::string, std::vector<const TupleKey*>> by_object_relation;
  std::unordered_map<std::string, std::vector<const TupleKey*>> by_user;

  static std::string OrKey(std::string_view object, std::string_view relation) {
    std::string k;
    k.reserve(object.size() + relation.size() + 1);
    k.append(object).append("#").append(relation);
    return k;
  }
  void IndexOne(const TupleKey* t) {
    by_object_relation[OrKey(t->object, t->relation)].push_back(t);
    by_user[t->user].push_back(t);
  }
  void Index() {
    by_object_relation.clear();
    by_user.clear();
    for (const auto& t : tuples) IndexOne(t.get());
  }
  void Add(std::shared_ptr<const TupleKey> t) {
    IndexOne(t.get());
    tuples.push_back(std::move(t));
  }
};

TupleSet::TupleSet() : data_(std::make_shared<Data>()) {}

Status TupleSet::Write(const Model& model, const std::vector<TupleKey>& writes, const std::vector<TupleKey>& deletes) {
  const std::string kTag = "write_failed_due_to_invalid_input: ";
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  for (const auto& t : deletes) {
    if (!seen.insert({t.object, t.relation, t.user}).second) {
      return InvalidArgument(kTag + "duplicate tuple in one request: " + t.ToString());
    }
    if (!Contains(t)) return InvalidArgument(kTag + "cannot delete a tuple which does not exist: " + t.ToString());
  }
  for (const auto& t : writes) {
    if (!seen.insert({t.object, t.relation, t.user}).second) {
      return InvalidArgument(kTag + "duplicate tuple in one request: " + t.ToString());
    }
    RETURN_IF_ERROR(ValidateTuple(model, t));
    if (Contains(t)) return InvalidArgument(kTag + "cannot write a tuple which already exists: " + t.ToString());
  }
  std::shared_ptr<Data> next = data_.use_count() == 1 ? data_ : std::make_shared<Data>(*data_);
  if (!deletes.empty()) {
    std::set<std::tuple<std::string_view, std::string_view, std::string_view>> deleted;
    for (const auto& d : deletes) deleted.insert({d.object, d.relation, d.user});
    std::erase_if(next->tuples, [&](const std::shared_ptr<const TupleKey>& t) {
      return deleted.contains({t->object, t->relation, t->user});
    });
    next->Index();
  }
  for (const auto& t : writes) next->Add(std::make_shared<const TupleKey>(t));
  data_ = std::move(next);
  return Status::Ok();
}

size_t TupleSet::size() const { return data_->tuples.size(); }

bool TupleSet::Contains(const TupleKey& tuple) const {
  auto it = data_->by_object_relation.find(Data::OrKey(tuple.object, tuple.relation));
  if (it == data_->by_object_relation.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const TupleKey* t) { return t->user == tuple.user; });
}

std::vector<const TupleKey*> TupleSet::ByObjectRelation(std::string_view object, std::string_view relation) const {
  auto it = data_->by_object_relation.find(Data::OrKey(object, relation));
  if (it == data_->by_object_relation.end()) return {};
  return it->second;
}

std::vector<const TupleKey*> TupleSet::ByUser(std::string_view user) const {
  auto it = data_->by_user.find(std::string(user));
  if (it == data_->by_user.end()) return {};
  return it->second;
}

std::vector<const TupleKey*> TupleSet::All() const {
  std::vector<const TupleKey*> out;
  out.reserve(data_->tuples.size());
  for (const auto& t : data_->tuples) out.push_back(t.get());
  return out;
}

}  // namespace aigis::authz

// The OpenFGA authorization model: lookups. (Parsing and writing the DSL and
// JSON forms live in dsl.cc and json.cc.)
#include "authz/authz.h"

namespace aigis::authz {

const Relation* TypeDefinition::Find(std::string_view relation) const {
  for (const auto& r : relations) {
    if (r.name == relation) return &r;
  }
  return nullptr;
}

const TypeDefinition* Model::Find(std::string_view type) const {
  for (const auto& t : types) {
    if (t.name == type) return &t;
  }
  return nullptr;
}

const Condition* Model::FindCondition(std::string_view name) const {
  for (const auto& c : conditions) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

}  // namespace aigis::authz

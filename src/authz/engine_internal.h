// Internal to the authz module: tuple parsing helpers shared by tuples.cc and
// engine.cc. Not part of the public API.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "authz/authz.h"

namespace aigis::authz::internal {

// A parsed tuple user: "type:id", "type:*" or "type:id#relation".
struct UserRef {
  std::string type;
  std::string id;
  std::string relation;
  bool is_wildcard() const { return id == "*"; }
  bool is_userset() const { return !relation.empty(); }
};

std::optional<UserRef> ParseUser(std::string_view user);
// "type:id" -> {type, id}; rejects wildcards, usersets and extra ':'.
std::optional<std::pair<std::string, std::string>> ParseObject(std::string_view object);
// True if restriction `r` admits the user's form. With match_condition the
// restriction's condition must equal `condition` as well.
bool RestrictionAdmits(const TypeRestriction& r, const UserRef& u, bool match_condition, std::string_view condition);

}  // namespace aigis::authz::internal

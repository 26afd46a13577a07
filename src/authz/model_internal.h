// Internal to the authz module: shared by validate.cc and dsl.cc so that the
// DSL parser can place semantic errors at their column in the source.
#pragma once

#include <cstdint>
#include <vector>

#include "authz/authz.h"

namespace aigis::authz::internal {

// Where on its line a semantic error's symbol is to be found.
enum class SymbolAt : uint8_t {
  kName,        // the relation's (or type's) name
  kDefinition,  // the relation's definition, after the ':'
  kTupleset,    // the tupleset of a `... from <symbol>`
  kSchema,      // the schema version
};

// ValidateModel, also saying for each error where its symbol is.
void ValidateModelDetailed(const Model& model, std::vector<ModelError>* errors,
                           std::vector<SymbolAt>* where);

}  // namespace aigis::authz::internal

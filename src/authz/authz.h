// authz: relationship-based authorization compatible with OpenFGA.
//
// This header is being built up over several sessions (issue 5). Present:
// * Model: the OpenFGA authorization model (schema 1.1) — types, relations,
//   direct type restrictions, rewrites (this, computed userset,
//   tuple-to-userset, union, intersection, exclusion) and conditions — read
//   from the modeling language (DSL) or OpenFGA's JSON form, written back to
//   either, and validated with OpenFGA's rules. Errors carry line and column.
// * Engine: Check / ListObjects / ListUsers over an in-memory tuple set, with
//   OpenFGA's semantics for wildcards, usersets, tuple-to-userset, cycles and
//   the resolution depth limit.
// Later: CEL condition evaluation, the persisted tuple store with changelog,
// the OpenFGA HTTP API, the authorize stage.
//
// Everything here is pure data in, data out; thread-safe for concurrent
// reads of immutable objects.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace aigis::authz {

// ---------------------------------------------------------------- model ----

// One entry of a relation's direct type restrictions: `user`, `team#member`,
// `user:*`, `user with cond`.
struct TypeRestriction {
  std::string type;
  std::string relation;   // "" unless `type#relation`
  bool wildcard = false;  // `type:*`
  std::string condition;  // "" unless `with <condition>`
  bool operator==(const TypeRestriction&) const = default;
};

// A relation's definition (OpenFGA's Userset).
struct Rewrite {
  enum class Kind : uint8_t { kThis, kComputed, kTupleToUserset, kUnion, kIntersection, kDifference };
  Kind kind = Kind::kThis;
  std::string relation;  // kComputed: the relation; kTupleToUserset: the relation computed on the tupleset's objects
  std::string tupleset;  // kTupleToUserset: the relation whose tuples name the objects (`... from <tupleset>`)
  std::vector<Rewrite> children;  // kUnion/kIntersection: operands; kDifference: {base, subtract}
  bool operator==(const Rewrite&) const = default;
};

struct Relation {
  std::string name;
  Rewrite rewrite;
  std::vector<TypeRestriction> directly_related;  // non-empty iff the rewrite contains kThis
  int line = 0;  // in the DSL, 0 if unknown
  bool operator==(const Relation& o) const {
    return name == o.name && rewrite == o.rewrite && directly_related == o.directly_related;
  }
};

struct TypeDefinition {
  std::string name;
  std::vector<Relation> relations;  // in declaration order
  int line = 0;
  const Relation* Find(std::string_view relation) const;
  bool operator==(const TypeDefinition& o) const { return name == o.name && relations == o.relations; }
};

struct ConditionParameter {
  std::string name;
  // OpenFGA's TypeName without the prefix, lower case: string, int, uint,
  // double, bool, duration, timestamp, ipaddress, any, list, map.
  std::string type;
  std::vector<std::string> generic_types;  // list<T> / map<T>
  bool operator==(const ConditionParameter&) const = default;
};

struct Condition {
  std::string name;
  std::vector<ConditionParameter> parameters;  // in declaration order
  std::string expression;                      // CEL source, as written
  int line = 0;
  bool operator==(const Condition& o) const {
    return name == o.name && parameters == o.parameters && expression == o.expression;
  }
};

struct Model {
  std::string schema_version = "1.1";
  std::vector<TypeDefinition> types;  // in declaration order
  std::vector<Condition> conditions;  // in declaration order
  const TypeDefinition* Find(std::string_view type) const;
  const Condition* FindCondition(std::string_view name) const;
  bool operator==(const Model& o) const {
    return schema_version == o.schema_version && types == o.types && conditions == o.conditions;
  }
};

// A problem found in a model, with where it is (1-based; 0 when unknown).
struct ModelError {
  std::string message;
  int line = 0;
  int column = 0;
};

// The modeling language (schema 1.1). On failure returns kInvalidArgument
// whose message is the first error, and appends every error to `errors`
// when given. Parsing also validates (ValidateModel).
Result<Model> ParseDsl(std::string_view dsl, std::vector<ModelError>* errors = nullptr);
// The model in the modeling language, formatted as OpenFGA's transformer
// formats it (so that DSL -> model -> DSL round-trips).
std::string ToDsl(const Model& model);
// OpenFGA's JSON form ({"schema_version","type_definitions","conditions"}),
// as the API and the SDKs exchange it.
Result<Model> ParseJson(std::string_view json, std::vector<ModelError>* errors = nullptr);
std::string ToJson(const Model& model);
// OpenFGA's semantic rules: defined types/relations/conditions, valid type
// restrictions, tuple-to-userset on direct relations, no unresolvable cycles.
Status ValidateModel(const Model& model, std::vector<ModelError>* errors = nullptr);

}  // namespace aigis::authz

// OpenFGA's semantic rules for an authorization model (schema 1.1), with
// OpenFGA's wording so that tools and tests can compare messages.
#include <fmt/format.h>

#include <map>
#include <set>
#include <string>
#include <utility>

#include "authz/authz.h"
#include "authz/model_internal.h"

namespace aigis::authz {
namespace {

constexpr size_t kMaxTypeName = 254;
constexpr size_t kMaxRelationName = 50;
// Bounds the entry-point search over the whole model (it is exponential on
// hostile models, as OpenFGA's is); past the budget relations are assumed fine.
constexpr int kEntryPointBudget = 200000;
// Bounds its recursion: a path longer than this is assumed to reach an entry.
constexpr int kEntryPointMaxDepth = 256;

bool MatchesNamingRule(std::string_view name, size_t max) {
  if (name.empty() || name.size() > max) return false;
  for (char c : name) {
    if (c == ':' || c == '#' || c == '@' || c == '*' || c == ' ' || c == '\t' || c == '\n' ||
        c == '\r' || c == '\f' || c == '\v') {
      return false;
    }
  }
  return true;
}

class Validator {
 public:
  Validator(const Model& model, std::vector<ModelError>* errors,
            std::vector<internal::SymbolAt>* in_def)
      : model_(model), errors_(errors), in_def_(in_def) {
    for (const auto& type : model_.types) {
      types_.emplace(type.name, &type);
      for (const auto& rel : type.relations) relations_.emplace(Key{type.name, rel.name}, &rel);
    }
    for (const auto& cond : model_.conditions) conditions_.insert(cond.name);
  }

  void Run() {
    if (model_.schema_version.empty()) {
      Add("schema version required", 0, "", false);
    } else if (model_.schema_version != "1.1" && model_.schema_version != "1.2") {
      // 1.2 is 1.1 plus modules; a single-file 1.2 model is a 1.1 model.
      Add(fmt::format("invalid schema {}", model_.schema_version), 0, model_.schema_version,
          internal::SymbolAt::kSchema);
    }
    // OpenFGA's order, which decides the first error reported.
    for (const auto& type : model_.types) {
      for (const auto& rel : type.relations) CheckRelation(type, rel);
    }
    CheckNames();
    CheckConditions();
    if (!errors_->empty()) return;
    for (const auto& type : model_.types) {
      for (const auto& rel : type.relations) CheckEntryPoint(type, rel);
    }
  }

 private:
  using Key = std::pair<std::string_view, std::string_view>;

  // The first declaration wins, as with Model::Find.
  const TypeDefinition* FindType(std::string_view name) const {
    auto it = types_.find(name);
    return it == types_.end() ? nullptr : it->second;
  }
  const Relation* FindRelation(std::string_view type, std::string_view relation) const {
    auto it = relations_.find(Key{type, relation});
    return it == relations_.end() ? nullptr : it->second;
  }

  void Add(std::string message, int line, std::string symbol, bool in_definition) {
    Add(std::move(message), line, std::move(symbol),
        in_definition ? internal::SymbolAt::kDefinition : internal::SymbolAt::kName);
  }
  void Add(std::string message, int line, std::string symbol, internal::SymbolAt where) {
    errors_->push_back(ModelError{std::move(message), line, 0, std::move(symbol)});
    in_def_->push_back(where);
  }

  void CheckNames() {
    std::map<std::string, int, std::less<>> types;  // name -> line of first declaration
    for (const auto& type : model_.types) {
      if (type.name == "self" || type.name == "this") {
        Add("a type cannot be named 'self' or 'this'.", type.line, type.name, false);
      } else if (!MatchesNamingRule(type.name, kMaxTypeName)) {
        Add(fmt::format("type '{}' does not match naming rule: '^[^:#@\\*\\s]{{1,254}}$'.",
                        type.name),
            type.line, type.name, false);
      }
      // OpenFGA points at the first declaration of a duplicated type.
      if (auto [it, fresh] = types.emplace(type.name, type.line); !fresh) {
        Add(fmt::format("the type `{}` is a duplicate.", type.name), it->second, type.name, false);
      }
      std::set<std::string, std::less<>> rels;
      for (const auto& rel : type.relations) {
        if (rel.name == "self" || rel.name == "this") {
          Add("a relation cannot be named 'self' or 'this'.", rel.line, rel.name, false);
        } else if (!MatchesNamingRule(rel.name, kMaxRelationName)) {
          Add(fmt::format("relation '{}' of type '{}' does not match naming rule: "
                          "'^[^:#@\\*\\s]{{1,50}}$'.",
                          rel.name, type.name),
              rel.line, rel.name, false);
        }
        if (!rels.insert(rel.name).second) {
          Add(fmt::format("'{}' is already defined in '{}'", rel.name, type.name), rel.line,
              rel.name, false);
        }
      }
    }
    std::set<std::string, std::less<>> conds;
    for (const auto& cond : model_.conditions) {
      if (!conds.insert(cond.name).second) {
        Add(fmt::format("condition '{}' is already defined in the model", cond.name), cond.line,
            cond.name, false);
      }
      std::set<std::string, std::less<>> params;
      for (const auto& p : cond.parameters) {
        if (!params.insert(p.name).second) {
          Add(fmt::format("parameter '{}' is already defined in the condition '{}'", p.name,
                          cond.name),
              cond.line, p.name, false);
        }
      }
    }
  }

  static std::string PartialName(const Rewrite& rw) {
    if (rw.kind == Rewrite::Kind::kComputed) return rw.relation;
    if (rw.kind == Rewrite::Kind::kTupleToUserset) return rw.relation + " from " + rw.tupleset;
    return "";
  }

  void CheckRelation(const TypeDefinition& type, const Relation& rel) {
    // Type restrictions.
    std::set<std::string> seen;
    for (const auto& tr : rel.directly_related) {
      std::string text = tr.type;
      if (tr.wildcard) text += ":*";
      if (!tr.relation.empty()) text += "#" + tr.relation;
      std::string key = text + (tr.condition.empty() ? "" : " with " + tr.condition);
      const TypeDefinition* target = FindType(tr.type);
      if (target == nullptr) {
        Add(fmt::format("`{}` is not a valid type.", tr.type), rel.line, tr.type, true);
      } else if (!tr.relation.empty() && FindRelation(tr.type, tr.relation) == nullptr) {
        Add(fmt::format("`{}` is not a valid relation for `{}`.", tr.relation, tr.type), rel.line,
            text, true);
      }
      if (tr.wildcard && !tr.relation.empty()) {
        Add(fmt::format("type restriction `{}` cannot contain both wildcard and relation", text),
            rel.line, tr.type, true);
      }
      if (!tr.condition.empty() && !conditions_.contains(tr.condition)) {
        Add(fmt::format("`{}` is not a defined condition in the model.", tr.condition), rel.line,
            tr.condition, true);
      }
      if (!seen.insert(key).second) {
        Add(fmt::format("the type restriction `{}` is a duplicate in the relation `{}`.", key,
                        rel.name),
            rel.line, tr.type, true);
      }
    }
    CheckRewrite(type, rel, rel.rewrite, 0);
  }

  void CheckRewrite(const TypeDefinition& type, const Relation& rel, const Rewrite& rw, int depth) {
    if (depth > 128) return;
    switch (rw.kind) {
      case Rewrite::Kind::kThis:
        if (rel.directly_related.empty()) {
          Add(fmt::format("`{}` relation has no direct type restrictions.", rel.name), rel.line,
              rel.name, false);
        }
        return;
      case Rewrite::Kind::kComputed:
        if (FindRelation(type.name, rw.relation) == nullptr) {
          Add(fmt::format("the relation `{}` does not exist.", rw.relation), rel.line, rw.relation,
              true);
        }
        return;
      case Rewrite::Kind::kTupleToUserset: {
        const Relation* ts = FindRelation(type.name, rw.tupleset);
        if (ts == nullptr) {
          Add(fmt::format("`{}` is not a valid relation for `{}`.", rw.tupleset, type.name),
              rel.line, rw.relation + " from " + rw.tupleset, true);
          return;
        }
        bool direct_only = ts->rewrite.kind == Rewrite::Kind::kThis;
        for (const auto& tr : ts->directly_related) {
          if (!tr.relation.empty() || tr.wildcard) direct_only = false;
        }
        if (!direct_only) {
          Add(fmt::format("`{}` relation used inside from allows only direct relation.",
                          rw.tupleset),
              rel.line, rw.tupleset, internal::SymbolAt::kTupleset);
          return;
        }
        bool found = false;
        for (const auto& tr : ts->directly_related) {
          if (FindRelation(tr.type, rw.relation) != nullptr) found = true;
        }
        if (!found) {
          for (const auto& tr : ts->directly_related) {
            if (FindType(tr.type) == nullptr) continue;
            Add(fmt::format("the `{}` relation definition on type `{}` is not valid: `{}` does not "
                            "exist on `{}`, which is of type `{}`.",
                            rw.relation, type.name, rw.relation, rw.tupleset, tr.type),
                rel.line, rw.relation + " from " + rw.tupleset, true);
          }
        }
        return;
      }
      case Rewrite::Kind::kUnion:
      case Rewrite::Kind::kIntersection:
      case Rewrite::Kind::kDifference: {
        std::set<std::string> partials;
        for (const auto& child : rw.children) {
          std::string name = PartialName(child);
          if (!name.empty() && !partials.insert(name).second) {
            Add(fmt::format(
                    "the partial relation definition `{}` is a duplicate in the relation `{}`.",
                    name, rel.name),
                rel.line, name, true);
          }
          CheckRewrite(type, rel, child, depth + 1);
        }
        return;
      }
    }
  }

  void CheckConditions() {
    std::set<std::string, std::less<>> used;
    for (const auto& type : model_.types) {
      for (const auto& rel : type.relations) {
        for (const auto& tr : rel.directly_related) {
          if (!tr.condition.empty()) used.insert(tr.condition);
        }
      }
    }
    static const std::set<std::string, std::less<>> kTypes = {
        "string",    "int",       "uint", "double", "bool", "duration",
        "timestamp", "ipaddress", "any",  "list",   "map"};
    for (const auto& cond : model_.conditions) {
      if (!used.contains(cond.name)) {
        Add(fmt::format("`{}` condition is not used in the model.", cond.name), cond.line,
            cond.name, false);
      }
      for (const auto& p : cond.parameters) {
        if (!kTypes.contains(p.type)) {
          Add(fmt::format("parameter '{}' of condition '{}' has an unknown type '{}'", p.name,
                          cond.name, p.type),
              cond.line, p.name, false);
        }
      }
    }
  }

  // OpenFGA's hasEntryPointOrLoop: {has an entry point, found a loop}.
  // `visited_` holds the relations on the current path (OpenFGA copies the
  // set per call; adding and removing on the way is the same thing).
  std::pair<bool, bool> EntryOrLoop(std::string_view type, std::string_view relation,
                                    const Rewrite& rw) {
    if (++steps_ > kEntryPointBudget || depth_ >= kEntryPointMaxDepth) return {true, false};
    bool added = visited_.insert(Key{type, relation}).second;
    ++depth_;
    auto result = EntryOrLoopStep(type, relation, rw);
    --depth_;
    if (added) visited_.erase(Key{type, relation});
    return result;
  }

  std::pair<bool, bool> EntryOrLoopStep(std::string_view type, std::string_view relation,
                                        const Rewrite& rw) {
    switch (rw.kind) {
      case Rewrite::Kind::kThis: {
        const Relation* rel = FindRelation(type, relation);
        if (rel == nullptr) return {false, false};
        for (const auto& tr : rel->directly_related) {
          if (tr.relation.empty() || tr.wildcard) return {true, false};
          const Relation* r = FindRelation(tr.type, tr.relation);
          if (r == nullptr || visited_.contains(Key{tr.type, tr.relation})) continue;
          if (EntryOrLoop(tr.type, tr.relation, r->rewrite).first) return {true, false};
        }
        return {false, false};
      }
      case Rewrite::Kind::kComputed: {
        const Relation* r = FindRelation(type, rw.relation);
        if (r == nullptr) return {false, false};
        if (visited_.contains(Key{type, rw.relation})) return {false, true};
        return EntryOrLoop(type, rw.relation, r->rewrite);
      }
      case Rewrite::Kind::kTupleToUserset: {
        const Relation* ts = FindRelation(type, rw.tupleset);
        if (ts == nullptr) return {false, false};
        for (const auto& tr : ts->directly_related) {
          const Relation* r = FindRelation(tr.type, rw.relation);
          if (r == nullptr || visited_.contains(Key{tr.type, rw.relation})) continue;
          if (EntryOrLoop(tr.type, rw.relation, r->rewrite).first) return {true, false};
        }
        return {false, false};
      }
      case Rewrite::Kind::kUnion: {
        bool loop = false;
        for (const auto& child : rw.children) {
          auto [entry, child_loop] = EntryOrLoop(type, relation, child);
          if (entry) return {true, false};
          loop = loop || child_loop;
        }
        return {false, loop};
      }
      case Rewrite::Kind::kIntersection:
      case Rewrite::Kind::kDifference: {
        for (const auto& child : rw.children) {
          auto [entry, child_loop] = EntryOrLoop(type, relation, child);
          if (!entry) return {false, child_loop};
        }
        return {true, false};
      }
    }
    return {false, false};
  }

  void CheckEntryPoint(const TypeDefinition& type, const Relation& rel) {
    visited_.clear();
    auto [entry, loop] = EntryOrLoop(type.name, rel.name, rel.rewrite);
    if (entry) return;
    Add(fmt::format("`{}` is an impossible relation for `{}` ({}).", rel.name, type.name,
                    loop ? "potential loop" : "no entrypoint"),
        rel.line, rel.name, false);
  }

  const Model& model_;
  std::vector<ModelError>* errors_;
  std::vector<internal::SymbolAt>* in_def_;
  std::map<std::string_view, const TypeDefinition*, std::less<>> types_;
  std::map<Key, const Relation*> relations_;
  std::set<std::string_view, std::less<>> conditions_;
  std::set<Key> visited_;
  int steps_ = 0;
  int depth_ = 0;
};

}  // namespace

namespace internal {

void ValidateModelDetailed(const Model& model, std::vector<ModelError>* errors,
                           std::vector<SymbolAt>* in_definition) {
  Validator(model, errors, in_definition).Run();
}

}  // namespace internal

Status ValidateModel(const Model& model, std::vector<ModelError>* errors) {
  std::vector<ModelError> found;
  std::vector<internal::SymbolAt> in_def;
  internal::ValidateModelDetailed(model, &found, &in_def);
  if (found.empty()) return Status::Ok();
  Status st = InvalidArgument(found.front().message);
  if (errors != nullptr) errors->insert(errors->end(), found.begin(), found.end());
  return st;
}

}  // namespace aigis::authz

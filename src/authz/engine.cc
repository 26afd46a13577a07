// The check engine: OpenFGA (schema 1.1) rewrite evaluation over an in-memory
// tuple set, plus ListObjects / ListUsers built on it.
//
// Evaluation is a depth-first walk. Each dispatch (computed userset,
// tuple-to-userset parent, userset tuple) adds one to the depth; a walk that
// would go past Engine::kMaxDepth fails. A node already on the current path
// yields the third value kCycle, which combines like OpenFGA's "cycle
// detected" flag (it never makes a union true, it poisons intersections and
// exclusions) and reads as "not allowed" at the top.
//
// Within one Evaluator (one Check, or one whole ListObjects / ListUsers),
// definite results of sub-checks that met no cycle are memoized together with
// the depth they needed, so shared subgraphs are walked once without changing
// any answer. The userset `type:id#rel` always has `rel` on `type:id`
// (OpenFGA's self-defining rule, which ListUsers relies on).
#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "authz/authz.h"
#include "authz/cel.h"
#include "authz/engine_internal.h"

namespace aigis::authz {
namespace {

using internal::ParseObject;
using internal::ParseUser;
using internal::UserRef;

constexpr size_t kMaxTraceSteps = 64;
constexpr size_t kMaxMemoEntries = 1 << 20;  // bounds one request's memory

enum class State : uint8_t { kFalse, kTrue, kCycle, kError };

struct Eval {
  State state = State::kFalse;
  Status error;                    // kError only
  std::vector<std::string> chain;  // kTrue with explain: how it was granted
  static Eval False() { return {}; }
  static Eval Cycle() { return {State::kCycle, {}, {}}; }
  static Eval Error(Status s) { return {State::kError, std::move(s), {}}; }
};

Status ValidationError(std::string m) { return InvalidArgument("validation_error: " + std::move(m)); }
Status TypeNotFound(std::string m) { return InvalidArgument("type_not_found: " + std::move(m)); }
Status RelationNotFound(std::string m) { return InvalidArgument("relation_not_found: " + std::move(m)); }

// Whether the relation's type restrictions admit the tuple's user form with
// its condition (OpenFGA ignores tuples that the current model does not
// admit, including `user:*` written without the condition the model now
// requires, or with a condition it no longer names).
bool Admitted(const Relation& rel, const UserRef& u, std::string_view condition) {
  for (const auto& r : rel.directly_related) {
    if (internal::RestrictionAdmits(r, u, /*match_condition=*/true, condition)) return true;
  }
  return false;
}

// Accumulates operand results for a union: true wins, then errors, then
// cycles.
struct UnionAcc {
  bool cycle = false;
  std::optional<Status> error;
  void Add(Eval& e) {
    if (e.state == State::kCycle) cycle = true;
    if (e.state == State::kError && !error) error = e.error;
  }
  Eval Finish() {
    if (error) return Eval::Error(*error);
    return cycle ? Eval::Cycle() : Eval::False();
  }
};

}  // namespace

struct Engine::Conditions {
  std::map<std::string, std::shared_ptr<const cel::Program>, std::less<>> programs;
  std::map<std::string, Status, std::less<>> errors;  // conditions whose expression does not compile
};

namespace {

using ProgramMap = std::map<std::string, std::shared_ptr<const cel::Program>, std::less<>>;

class Evaluator {
 public:
  Evaluator(const Model& model, const TupleSet& store, const TupleSet& ctx, bool explain,
            const ProgramMap* programs = nullptr, const std::map<std::string, Status, std::less<>>* errors = nullptr,
            std::string_view context = {})
      : model_(model), store_(store), ctx_(ctx), explain_(explain), programs_(programs), compile_errors_(errors),
        context_(context) {}

  // Wildcard tuples do not grant concrete users (ListUsers uses this to tell
  // users reached through a wildcard from users related in their own right).
  void set_ignore_wildcards(bool v) { ignore_wildcards_ = v; }
  // ListUsers: every condition on the explored graph is evaluated (no
  // short-circuit at the first grant), and any condition error fails the
  // request, as OpenFGA's ListUsers does.
  void set_strict_conditions(bool v) { strict_conditions_ = v; }
  const std::optional<Status>& condition_error() const { return condition_error_; }
  int max_depth() const { return max_depth_; }
  std::vector<std::string>& trace() { return trace_; }

  // object is "type:id" and already validated; user parsed from user_str.
  Eval Check(const std::string& object, std::string_view type, const std::string& relation, const UserRef& user,
             const std::string& user_str, int depth) {
    const TypeDefinition* td = model_.Find(type);
    const Relation* rel = td ? td->Find(relation) : nullptr;
    if (rel == nullptr) return Eval::False();
    // Self-defining: every member of object#relation has relation on object
    // (OpenFGA's reflexive userset rule).
    if (user.is_userset() && user.relation == relation && object.size() == user.type.size() + 1 + user.id.size() &&
        StartsWith(object, user.type) && object[user.type.size()] == ':' &&
        std::string_view(object).substr(user.type.size() + 1) == user.id) {
      Eval e{State::kTrue, {}, {}};
      if (explain_) e.chain = {"self " + user_str};
      return e;
    }
    std::string key = object + "#" + relation + "@" + user_str;
    if (explain_ && trace_.size() < kMaxTraceSteps) trace_.push_back(std::string(depth, ' ') + "check " + key);
    if (!explain_) {
      auto hit = memo_.find(key);
      if (hit != memo_.end() && depth + hit->second.relative_depth <= Engine::kMaxDepth) {
        max_depth_ = std::max(max_depth_, depth + hit->second.relative_depth);
        subtree_max_ = std::max(subtree_max_, depth + hit->second.relative_depth);
        return {hit->second.allowed ? State::kTrue : State::kFalse, {}, {}};
      }
    }
    if (!path_.insert(key).second) {
      ++cycles_;
      if (explain_ && trace_.size() < kMaxTraceSteps) trace_.push_back(std::string(depth, ' ') + "cycle at " + key);
      return Eval::Cycle();
    }
    const uint64_t cycles_before = cycles_;
    const int saved_subtree_max = subtree_max_;
    subtree_max_ = depth;
    Eval e = Rewrite(object, *td, *rel, rel->rewrite, user, user_str, depth);
    path_.erase(key);
    // A definite result reached without meeting the current path does not
    // depend on how we got here: remember it (with the depth it needed, so
    // that a reuse deeper down still honours the depth limit).
    if (!explain_ && cycles_ == cycles_before && (e.state == State::kTrue || e.state == State::kFalse) &&
        memo_.size() < kMaxMemoEntries) {
      memo_.emplace(key, MemoEntry{e.state == State::kTrue, subtree_max_ - depth});
    }
    subtree_max_ = std::max(saved_subtree_max, subtree_max_);
    if (e.state == State::kTrue && explain_) e.chain.insert(e.chain.begin(), key);
    return e;
  }

 private:
  Eval Dispatch(const std::string& object, const std::string& relation, const UserRef& user,
                const std::string& user_str, int depth) {
    if (depth > Engine::kMaxDepth) {
      return Eval::Error(InvalidArgument(
          "authorization_model_resolution_too_complex: resolution exceeded depth " +
          std::to_string(Engine::kMaxDepth)));
    }
    max_depth_ = std::max(max_depth_, depth);
    subtree_max_ = std::max(subtree_max_, depth);
    std::string_view type = std::string_view(object).substr(0, object.find(':'));
    return Check(object, type, relation, user, user_str, depth);
  }

  template <typename F>
  void ForTuples(const std::string& object, const std::string& relation, F&& f) {
    for (const TupleKey* t : store_.ByObjectRelation(object, relation)) {
      if (!f(*t)) return;
    }
    for (const TupleKey* t : ctx_.ByObjectRelation(object, relation)) {
      if (store_.Contains(*t)) continue;
      if (!f(*t)) return;
    }
  }

  Eval Rewrite(const std::string& object, const TypeDefinition& td, const Relation& rel, const authz::Rewrite& node,
               const UserRef& user, const std::string& user_str, int depth) {
    using K = authz::Rewrite::Kind;
    switch (node.kind) {
      case K::kThis:
        return Direct(object, rel, user, user_str, depth);
      case K::kComputed: {
        if (td.Find(node.relation) == nullptr) return Eval::False();
        Eval e = Dispatch(object, node.relation, user, user_str, depth + 1);
        return e;
      }
      case K::kTupleToUserset:
        return TupleToUserset(object, td, node, user, user_str, depth);
      case K::kUnion: {
        UnionAcc acc;
        std::optional<Eval> granted;
        for (const auto& c : node.children) {
          Eval e = Rewrite(object, td, rel, c, user, user_str, depth);
          if (e.state == State::kTrue) {
            if (!strict_conditions_) return e;
            if (!granted) granted = std::move(e);
            continue;
          }
          acc.Add(e);
        }
        if (granted) return std::move(*granted);
        return acc.Finish();
      }
      case K::kIntersection: {
        bool cycle = false;
        std::optional<Status> error;
        std::vector<std::string> chain;
        for (const auto& c : node.children) {
          Eval e = Rewrite(object, td, rel, c, user, user_str, depth);
          if (e.state == State::kFalse) return e;
          if (e.state == State::kCycle) cycle = true;
          if (e.state == State::kError && !error) error = e.error;
          if (e.state == State::kTrue && explain_) {
            chain.push_back("and:");
            chain.insert(chain.end(), e.chain.begin(), e.chain.end());
          }
        }
        if (error) return Eval::Error(*error);
        if (cycle) return Eval::Cycle();
        return {State::kTrue, {}, std::move(chain)};
      }
      case K::kDifference: {
        if (node.children.size() != 2) return Eval::Error(Internal("malformed exclusion"));
        Eval base = Rewrite(object, td, rel, node.children[0], user, user_str, depth);
        if (base.state == State::kFalse) return base;
        Eval sub = Rewrite(object, td, rel, node.children[1], user, user_str, depth);
        if (sub.state == State::kTrue) return Eval::False();
        if (base.state == State::kError) return base;
        if (sub.state == State::kError) return sub;
        if (base.state == State::kCycle || sub.state == State::kCycle) return Eval::Cycle();
        if (explain_) base.chain.push_back("but not: excluded relation does not hold");
        return base;
      }
    }
    return Eval::Error(Internal("unknown rewrite kind"));
  }

  Eval Direct(const std::string& object, const Relation& rel, const UserRef& user, const std::string& user_str,
              int depth) {
    UnionAcc acc;
    Eval found;
    ForTuples(object, rel.name, [&](const TupleKey& t) {
      if (found.state == State::kTrue) {
        // Strict mode only: surface errors of the remaining conditions.
        if (!t.condition.empty()) {
          auto tu = ParseUser(t.user);
          if (tu && Admitted(rel, *tu, t.condition)) ConditionHolds(t);
        }
        return true;
      }
      auto tu = ParseUser(t.user);
      if (!tu || !Admitted(rel, *tu, t.condition)) return true;  // a tuple the current model no longer admits
      bool match = t.user == user_str;
      if (!match && tu->is_wildcard() && !ignore_wildcards_ && !user.is_userset() && tu->type == user.type) {
        match = true;
      }
      if (!match && !tu->is_userset()) return true;
      if (!t.condition.empty()) {
        Eval c = ConditionHolds(t);
        if (c.state != State::kTrue) {
          acc.Add(c);
          return true;
        }
      }
      if (match) {
        found.state = State::kTrue;
        if (explain_) found.chain = {"tuple " + t.ToString()};
        return strict_conditions_;
      }
      if (!tu->is_userset()) return true;
      std::string sub_object = tu->type + ":" + tu->id;
      Eval e = Dispatch(sub_object, tu->relation, user, user_str, depth + 1);
      if (e.state == State::kTrue) {
        found = std::move(e);
        if (explain_) found.chain.insert(found.chain.begin(), "tuple " + t.ToString());
        return strict_conditions_;
      }
      acc.Add(e);
      return true;
    });
    if (found.state == State::kTrue) return found;
    return acc.Finish();
  }

  Eval TupleToUserset(const std::string& object, const TypeDefinition& td, const authz::Rewrite& node,
                      const UserRef& user, const std::string& user_str, int depth) {
    const Relation* tupleset = td.Find(node.tupleset);
    if (tupleset == nullptr) return Eval::False();
    UnionAcc acc;
    Eval found;
    ForTuples(object, node.tupleset, [&](const TupleKey& t) {
      if (found.state == State::kTrue) {
        // Strict mode only: surface errors of the remaining conditions.
        if (!t.condition.empty()) {
          auto parent = ParseUser(t.user);
          if (parent && Admitted(*tupleset, *parent, t.condition)) ConditionHolds(t);
        }
        return true;
      }
      auto parent = ParseUser(t.user);
      if (!parent || parent->is_wildcard() || parent->is_userset() || !Admitted(*tupleset, *parent, t.condition)) return true;
      const TypeDefinition* ptd = model_.Find(parent->type);
      if (ptd == nullptr || ptd->Find(node.relation) == nullptr) return true;  // relation not defined on this parent type
      if (!t.condition.empty()) {
        Eval c = ConditionHolds(t);
        if (c.state != State::kTrue) {
          acc.Add(c);
          return true;
        }
      }
      Eval e = Dispatch(t.user, node.relation, user, user_str, depth + 1);
      if (e.state == State::kTrue) {
        found = std::move(e);
        if (explain_) found.chain.insert(found.chain.begin(), "tuple " + t.ToString() + " (" + node.relation + " from " + node.tupleset + ")");
        return strict_conditions_;
      }
      acc.Add(e);
      return true;
    });
    if (found.state == State::kTrue) return found;
    return acc.Finish();
  }

  // Whether a conditional tuple's condition holds: kTrue / kFalse, or kError
  // (missing parameters, evaluation failure). Results are cached per
  // condition and tuple context.
  Eval ConditionHolds(const TupleKey& t) {
    std::string key = t.condition + '\0' + t.condition_context;
    if (auto it = condition_cache_.find(key); it != condition_cache_.end()) return it->second;
    Eval e = EvaluateCondition(t);
    if (e.state == State::kError && strict_conditions_ && !condition_error_) condition_error_ = e.error;
    if (condition_cache_.size() < kMaxMemoEntries) condition_cache_.emplace(std::move(key), e);
    return e;
  }
  Eval EvaluateCondition(const TupleKey& t) {
    if (compile_errors_ != nullptr) {
      if (auto it = compile_errors_->find(t.condition); it != compile_errors_->end()) return Eval::Error(it->second);
    }
    const cel::Program* prog = nullptr;
    if (programs_ != nullptr) {
      if (auto it = programs_->find(t.condition); it != programs_->end()) prog = it->second.get();
    }
    if (prog == nullptr) return Eval::False();  // a condition the current model no longer has

    auto r = prog->Evaluate(t.condition_context, context_);
    if (!r.ok()) return Eval::Error(r.status());
    if (!r->missing.empty()) {
      std::string names;
      for (const auto& m : r->missing) names += (names.empty() ? "" : ", ") + m;
      return Eval::Error(ValidationError("failed to evaluate relationship condition '" + t.condition +
                                         "' on tuple " + t.ToString() + ": missing context parameters [" + names +
                                         "]"));
    }
    if (explain_ && trace_.size() < kMaxTraceSteps) {
      trace_.push_back("condition " + t.condition + " on " + t.ToString() + ": " + (r->value ? "true" : "false"));
    }
    return r->value ? Eval{State::kTrue, {}, {}} : Eval::False();
  }

  const Model& model_;
  const TupleSet& store_;
  const TupleSet& ctx_;
  bool explain_;
  const ProgramMap* programs_;
  const std::map<std::string, Status, std::less<>>* compile_errors_;
  std::string_view context_;
  std::unordered_map<std::string, Eval> condition_cache_;
  bool ignore_wildcards_ = false;
  bool strict_conditions_ = false;
  std::optional<Status> condition_error_;
  int max_depth_ = 0;
  int subtree_max_ = 0;  // deepest dispatch under the node being evaluated
  uint64_t cycles_ = 0;  // cycles met so far
  struct MemoEntry {
    bool allowed;
    int relative_depth;
  };
  std::unordered_map<std::string, MemoEntry> memo_;  // object#relation@user -> result
  std::unordered_set<std::string> path_;
  std::vector<std::string> trace_;
};

// Validates and deduplicates contextual tuples into a TupleSet.
Result<TupleSet> BuildContext(const Model& model, const std::vector<TupleKey>& contextual) {
  TupleSet ctx;
  if (contextual.empty()) return ctx;
  std::vector<TupleKey> unique;
  for (const auto& t : contextual) {
    RETURN_IF_ERROR(ValidateTuple(model, t));
    bool dup = std::any_of(unique.begin(), unique.end(), [&](const TupleKey& u) {
      return u.object == t.object && u.relation == t.relation && u.user == t.user;
    });
    if (!dup) unique.push_back(t);
  }
  RETURN_IF_ERROR(ctx.Write(model, unique));
  return ctx;
}

// Request user validation shared by Check and ListObjects.
Result<UserRef> ValidateRequestUser(const Model& model, std::string_view user) {
  auto u = ParseUser(user);
  if (!u) return ValidationError("malformed user '" + std::string(user) + "'");
  const TypeDefinition* td = model.Find(u->type);
  if (td == nullptr) return ValidationError("user type '" + u->type + "' is not in the model");
  if (u->is_userset() && td->Find(u->relation) == nullptr) {
    return ValidationError("relation '" + u->type + "#" + u->relation + "' is not in the model");
  }
  return *u;
}

// "type:id" values of `type` mentioned anywhere in the tuples (as object, as
// user, or as a userset's object).
void CollectIds(const std::vector<const TupleKey*>& tuples, std::string_view type, std::set<std::string>* ids,
                bool* wildcard) {
  for (const TupleKey* t : tuples) {
    if (auto o = ParseObject(t->object); o && o->first == type) ids->insert(t->object);
    if (auto u = ParseUser(t->user); u && u->type == type) {
      if (u->is_wildcard()) {
        if (wildcard) *wildcard = true;
      } else {
        ids->insert(u->type + ":" + u->id);
      }
    }
  }
}

}  // namespace

Engine::Engine(Model model) : model_(std::move(model)) {
  auto c = std::make_shared<Conditions>();
  for (const auto& cond : model_.conditions) {
    auto p = cel::Program::Compile(cond);
    if (p.ok()) {
      c->programs.emplace(cond.name, *p);
    } else {
      c->errors.emplace(cond.name, p.status());
    }
  }
  conditions_ = std::move(c);
}

Result<Engine> Engine::Create(Model model) {
  Engine e(std::move(model));
  for (const auto& cond : e.model_.conditions) {
    if (auto it = e.conditions_->errors.find(cond.name); it != e.conditions_->errors.end()) return it->second;
  }
  return e;
}

Result<CheckResult> Engine::Check(const TupleSet& tuples, const CheckRequest& request) const {
  const TupleKey& tk = request.tuple;
  auto obj = ParseObject(tk.object);
  if (!obj) return ValidationError("malformed object '" + tk.object + "'");
  const TypeDefinition* td = model_.Find(obj->first);
  if (td == nullptr) return ValidationError("type '" + obj->first + "' is not in the model");
  if (td->Find(tk.relation) == nullptr) {
    return ValidationError("relation '" + obj->first + "#" + tk.relation + "' is not in the model");
  }
  ASSIGN_OR_RETURN(UserRef user, ValidateRequestUser(model_, tk.user));
  ASSIGN_OR_RETURN(TupleSet ctx, BuildContext(model_, request.contextual_tuples));

  Evaluator ev(model_, tuples, ctx, request.explain, &conditions_->programs, &conditions_->errors, request.context);
  Eval e = ev.Check(tk.object, obj->first, tk.relation, user, tk.user, 0);
  if (e.state == State::kError) return e.error;
  CheckResult r;
  r.allowed = e.state == State::kTrue;
  r.depth = ev.max_depth();
  if (request.explain) {
    r.explanation = r.allowed ? std::move(e.chain) : std::move(ev.trace());
    if (!r.allowed && e.state == State::kCycle) r.explanation.push_back("denied: only cyclic paths found");
  }
  return r;
}

Result<std::vector<std::string>> Engine::ListObjects(const TupleSet& tuples, std::string_view type,
                                                     std::string_view relation, std::string_view user,
                                                     const std::vector<TupleKey>& contextual_tuples,
                                                     std::string_view context) const {
  const TypeDefinition* td = model_.Find(type);
  if (td == nullptr) return TypeNotFound("type '" + std::string(type) + "' is not in the model");
  if (td->Find(relation) == nullptr) {
    return RelationNotFound("relation '" + std::string(type) + "#" + std::string(relation) + "' is not in the model");
  }
  ASSIGN_OR_RETURN(UserRef u, ValidateRequestUser(model_, user));
  ASSIGN_OR_RETURN(TupleSet ctx, BuildContext(model_, contextual_tuples));

  std::set<std::string> candidates;
  CollectIds(tuples.All(), type, &candidates, nullptr);
  CollectIds(ctx.All(), type, &candidates, nullptr);
  std::vector<std::string> out;
  const std::string user_str(user);
  const std::string rel(relation);
  Evaluator ev(model_, tuples, ctx, false, &conditions_->programs, &conditions_->errors, context);  // one memo for every candidate
  for (const auto& object : candidates) {
    Eval e = ev.Check(object, type, rel, u, user_str, 0);
    if (e.state == State::kError) return e.error;
    if (e.state == State::kTrue) out.push_back(object);
  }
  return out;
}

Result<std::vector<std::string>> Engine::ListUsers(const TupleSet& tuples, std::string_view object,
                                                   std::string_view relation, const std::vector<UserFilter>& filters,
                                                   const std::vector<TupleKey>& contextual_tuples,
                                                   std::string_view context) const {
  auto obj = ParseObject(object);
  if (!obj) return ValidationError("malformed object '" + std::string(object) + "'");
  const TypeDefinition* td = model_.Find(obj->first);
  if (td == nullptr) return TypeNotFound("type '" + obj->first + "' is not in the model");
  if (td->Find(relation) == nullptr) {
    return RelationNotFound("relation '" + obj->first + "#" + std::string(relation) + "' is not in the model");
  }
  if (filters.empty()) return ValidationError("at least one user filter is required");
  for (const auto& f : filters) {
    const TypeDefinition* ftd = model_.Find(f.type);
    if (ftd == nullptr) return TypeNotFound("type '" + f.type + "' is not in the model");
    if (!f.relation.empty() && ftd->Find(f.relation) == nullptr) {
      return RelationNotFound("relation '" + f.type + "#" + f.relation + "' is not in the model");
    }
  }
  ASSIGN_OR_RETURN(TupleSet ctx, BuildContext(model_, contextual_tuples));

  const std::string object_str(object);
  const std::string rel(relation);
  std::set<std::string> out;
  // One memo per wildcard mode (results differ between the two).
  Evaluator with_wildcards(model_, tuples, ctx, false, &conditions_->programs, &conditions_->errors, context);
  Evaluator without_wildcards(model_, tuples, ctx, false, &conditions_->programs, &conditions_->errors, context);
  without_wildcards.set_ignore_wildcards(true);
  with_wildcards.set_strict_conditions(true);
  without_wildcards.set_strict_conditions(true);
  auto check = [&](const std::string& user_str, bool ignore_wildcards) -> Result<bool> {
    auto u = ParseUser(user_str);
    if (!u) return false;
    Evaluator& ev = ignore_wildcards ? without_wildcards : with_wildcards;
    Eval e = ev.Check(object_str, obj->first, rel, *u, user_str, 0);
    if (e.state == State::kError) return e.error;
    if (ev.condition_error()) return *ev.condition_error();
    return e.state == State::kTrue;
  };
  for (const auto& f : filters) {
    std::set<std::string> ids;
    bool wildcard = false;
    CollectIds(tuples.All(), f.type, &ids, &wildcard);
    CollectIds(ctx.All(), f.type, &ids, &wildcard);
    if (!f.relation.empty()) {
      for (const auto& id : ids) {
        std::string us = id + "#" + f.relation;
        ASSIGN_OR_RETURN(bool ok, check(us, false));
        if (ok) out.insert(us);
      }
      continue;
    }
    bool wildcard_granted = false;
    if (wildcard) {
      std::string ws = f.type + ":*";
      ASSIGN_OR_RETURN(wildcard_granted, check(ws, false));
      if (wildcard_granted) out.insert(ws);
    }
    for (const auto& id : ids) {
      // Under a granting wildcard, report a concrete user only when it is
      // related in its own right (as OpenFGA's expansion does).
      ASSIGN_OR_RETURN(bool ok, check(id, wildcard_granted));
      if (ok) out.insert(id);
    }
  }
  return std::vector<std::string>(out.begin(), out.end());
}

}  // namespace aigis::authz

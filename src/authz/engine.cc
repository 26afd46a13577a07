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
// Evaluation runs on interned symbols (see tuples.cc), never building a
// string per step. The direct step looks up the exact tuple and the `type:*`
// tuple by hash and scans only the list's userset tuples; explain mode and
// ListUsers' strict / wildcard-ignoring modes scan the whole list in
// insertion order, as their output depends on it. ListObjects derives the
// objects by forward chaining from the user's tuples where the relation is
// union-only and unconditional (ChainPlan); elsewhere it checks only the
// objects reachable from the user through the user -> tuples index.
//
// Outside explain and ListUsers' modes, three shortcuts, each exact as to
// "allowed" (see Engine's contract for what they do to errors):
// * a shallow pass first (ShallowPass): the walk without userset tuples
//   and exclusions, which finds most grants at a fraction of the cost, and
//   refutes the check when the userset tuples it skipped are all ones the
//   full walk would rule out unread (InCone, below);
// * MayReach: a sub-check whose user is in none of the lists its rewrites
//   can end in (per type and relation, from the model) is "not allowed";
// * InCone: before following a userset tuple `o#r`, whether o is among the
//   objects reachable back from the user through the steps a grant of
//   (type of o, r) can take (the user's nested groups, typically).
// The last two rest on whole-type indexes rather than on the lists read, so
// they are off when the CheckCache records a read set.
//
// The model's names (types, relations, rewrite names, `type:*`, type
// restrictions, reach summaries) are resolved to symbols once per store
// lineage and shared by the requests (internal::ModelSyms, Engine::Syms),
// so a request does no string lookups for them. On entering a node the
// (object, relation) entries its rewrite reads first are prefetched from
// every segment together (ListObjects prefetches a few candidates ahead).
// A node the shallow pass walked without skipping anything (no userset
// tuple, exclusion or dropped error under it) has its definite result, and
// goes into the full memo.
//
// Within one Evaluator (one Check, or one whole ListObjects / ListUsers),
// definite results of sub-checks that met no cycle are memoized together with
// the depth they needed, so shared subgraphs are walked once without changing
// any answer. The userset `type:id#rel` always has `rel` on `type:id`
// (OpenFGA's self-defining rule, which ListUsers relies on).
#include <algorithm>
#include <array>
#include <mutex>
#include <map>
#include <set>

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

// What the rewrites of one relation can end in: the directly assignable
// lists (type, relation) and the user type each admits as a plain or
// wildcard user; `unsafe` when a conditional userset or tuple-to-userset
// restriction lies under it (see Evaluator::MayReach).
struct RelationReach {
  bool unsafe = false;
  std::vector<std::tuple<std::string, std::string, std::string>> ends;  // (type, relation, user type)
  // The steps a grant can take between objects, for walking back from the
  // user (Evaluator::InCone): a userset `Y#s` admitted by (type, relation),
  // and a tuple-to-userset parent of type P through (type, tupleset).
  std::vector<std::tuple<std::string, std::string, std::string, std::string>> usersets;  // (type, relation, Y, s)
  std::vector<std::tuple<std::string, std::string, std::string>> parents;               // (type, tupleset, P)
};

// Walks the rewrite tree of `relation` and those of the relations `visit`
// adds (each relation once): visit(type, relation, node, add) is called on
// every node, a node before its operands; add(type, relation) queues a
// relation (either may be null: ignored). Returns false as soon as visit
// does.
template <typename Visit>
bool WalkRelations(const TypeDefinition& td, const Relation& relation, Visit&& visit) {
  std::vector<std::pair<const TypeDefinition*, const Relation*>> todo = {{&td, &relation}};
  std::set<const Relation*> seen = {&relation};
  auto add = [&](const TypeDefinition* t, const Relation* r) {
    if (t != nullptr && r != nullptr && seen.insert(r).second) todo.emplace_back(t, r);
  };
  while (!todo.empty()) {
    auto [t, r] = todo.back();
    todo.pop_back();
    std::vector<const authz::Rewrite*> nodes = {&r->rewrite};
    while (!nodes.empty()) {
      const authz::Rewrite* n = nodes.back();
      nodes.pop_back();
      if (!visit(*t, *r, *n, add)) return false;
      for (const auto& c : n->children) nodes.push_back(&c);
    }
  }
  return true;
}

// `name` on type `t` (null when either is missing).
const Relation* RelationNamed(const TypeDefinition* t, std::string_view name) { return t ? t->Find(name) : nullptr; }

RelationReach ComputeReach(const Model& model, const TypeDefinition& td, const Relation& relation) {
  RelationReach out;
  WalkRelations(td, relation, [&](const TypeDefinition& t, const Relation& r, const authz::Rewrite& n, auto&& add) {
    using K = authz::Rewrite::Kind;
    switch (n.kind) {
      case K::kThis:
        for (const auto& tr : r.directly_related) {
          if (!tr.relation.empty()) {
            if (!tr.condition.empty()) out.unsafe = true;
            out.usersets.emplace_back(t.name, r.name, tr.type, tr.relation);
            const TypeDefinition* y = model.Find(tr.type);
            add(y, RelationNamed(y, tr.relation));
          } else {
            out.ends.emplace_back(t.name, r.name, tr.type);
          }
        }
        break;
      case K::kComputed:
        add(&t, t.Find(n.relation));
        break;
      case K::kTupleToUserset:
        if (const Relation* ts = t.Find(n.tupleset)) {
          for (const auto& tr : ts->directly_related) {
            if (!tr.condition.empty()) out.unsafe = true;
            out.parents.emplace_back(t.name, ts->name, tr.type);
            const TypeDefinition* p = model.Find(tr.type);
            add(p, RelationNamed(p, n.relation));
          }
        }
        break;
      default:
        break;
    }
    return true;
  });
  auto dedup = [](auto& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  dedup(out.ends);
  dedup(out.usersets);
  dedup(out.parents);
  return out;
}

// ListObjects by forward chaining (Engine::ListObjects): for a relation
// whose grants pass only through unions of direct, computed and
// tuple-to-userset steps, with no condition on any type restriction met on
// the way, "user has R on o" is the least fixpoint of the rules below, so
// the objects can be derived from the user's tuples outwards with no Check
// per object (OpenFGA's reverse expansion does the same for such models).
// A grant of (type, relation) on an object x leads on through these edges:
//   computed:  `to` rewrites to `from` on the same object;
//   userset:   a tuple (y, to, "x#from") admitted by `to` grants `to` on y;
//   tupleset:  a tuple (y, tupleset, x) grants `to` on y (`from from tupleset`).
struct ChainPlan {
  struct Direct {
    std::string type, relation;
    std::vector<TypeRestriction> admits;
  };
  enum class EdgeKind : uint8_t { kComputed, kUserset, kTupleset };
  struct Edge {
    EdgeKind kind;
    std::string from_type, from_relation, to_type, to_relation, tupleset;
  };
  std::vector<Direct> direct;  // the relations with a direct step
  std::vector<Edge> edges;
};

// The plan for (td, relation), or nullopt when an intersection, an exclusion
// or a conditional restriction lies under it.
std::optional<ChainPlan> PlanChain(const Model& model, const TypeDefinition& td, const Relation& relation) {
  ChainPlan out;
  using E = ChainPlan::EdgeKind;
  const bool ok = WalkRelations(td, relation, [&](const TypeDefinition& t, const Relation& r,
                                                  const authz::Rewrite& n, auto&& add) {
    using K = authz::Rewrite::Kind;
    switch (n.kind) {
      case K::kThis:
        if (r.directly_related.empty()) break;
        out.direct.push_back({t.name, r.name, r.directly_related});
        for (const auto& tr : r.directly_related) {
          if (!tr.condition.empty()) return false;
          if (tr.relation.empty()) continue;
          const TypeDefinition* y = model.Find(tr.type);
          const Relation* yr = RelationNamed(y, tr.relation);
          if (yr == nullptr) continue;
          out.edges.push_back({E::kUserset, tr.type, tr.relation, t.name, r.name, ""});
          add(y, yr);
        }
        break;
      case K::kComputed:
        if (const Relation* c = t.Find(n.relation)) {
          out.edges.push_back({E::kComputed, t.name, c->name, t.name, r.name, ""});
          add(&t, c);
        }
        break;
      case K::kTupleToUserset:
        if (const Relation* ts = t.Find(n.tupleset)) {
          for (const auto& tr : ts->directly_related) {
            if (!tr.condition.empty()) return false;
            if (!tr.relation.empty() || tr.wildcard) continue;  // Check follows plain objects only
            const TypeDefinition* p = model.Find(tr.type);
            const Relation* pr = RelationNamed(p, n.relation);
            if (pr == nullptr) continue;
            out.edges.push_back({E::kTupleset, tr.type, pr->name, t.name, r.name, ts->name});
            add(p, pr);
          }
        }
        break;
      case K::kUnion:
        break;
      case K::kIntersection:
      case K::kDifference:
        return false;
    }
    return true;
  });
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace

struct Engine::Conditions {
  std::map<std::string, std::shared_ptr<const cel::Program>, std::less<>> programs;
  std::map<std::string, Status, std::less<>> errors;  // conditions whose expression does not compile
  // "type#relation" -> what its rewrites can end in (Evaluator::MayReach);
  // empty for very large models (no pruning).
  std::map<std::string, RelationReach, std::less<>> reach;
  // "type#relation" -> its forward-chaining plan for ListObjects (absent:
  // not a union-only, condition-free relation; or a very large model).
  std::map<std::string, ChainPlan, std::less<>> chains;
};

namespace internal {

// A step of Evaluator::BuildCone: from an object of `from_type` (its
// userset "object#<via>" when `userset`, else the object itself) to the
// objects of the list (type, relation) holding it.
struct ConeStep {
  Sym type, relation;  // the list's object type and relation
  Sym from_type;       // the type of the object stepped from
  Sym via;             // the userset's relation (a userset step)
  bool userset;
};

// The model's names resolved to the symbols of one store lineage, built
// against a version whose next symbol is `next_sym` and shared by the
// requests on the lineage's versions (Engine::Syms). A symbol s found here
// names the same string in every version of the lineage, but exists in a
// version only when s < its next_sym; a name absent here is absent in every
// version with next_sym <= this one's. The Evaluator uses an entry only
// where it gives what the per-request lookups would (see Evaluator::Valid),
// and falls back to those lookups otherwise.
struct ModelSyms {
  uint64_t lineage = 0;
  Sym next_sym = 0;
  boost::unordered_flat_map<Sym, const TypeDefinition*> types;
  boost::unordered_flat_map<uint64_t, const Relation*> relations;  // Pair(type, relation)
  boost::unordered_flat_map<const std::string*, Sym> names;        // rewrite relation / tupleset names
  boost::unordered_flat_map<Sym, Sym> wildcards;                   // type -> "type:*" (0: absent)
  struct Restriction {
    Sym type, relation, condition;
    bool wildcard;
  };
  struct Restrictions {
    std::vector<Restriction> list;
    bool complete = true;  // every non-empty name was found
    Sym max = 0;           // the largest symbol in `list`
  };
  boost::unordered_flat_map<const Relation*, Restrictions> restrictions;
  struct Reach {
    bool unsafe = false;
    bool complete = true;  // every name of ends and steps was found
    Sym max = 0;
    std::vector<std::array<Sym, 3>> ends;  // (type, relation, user type); 0: absent
    std::vector<ConeStep> steps;           // any symbol 0: absent
  };
  boost::unordered_flat_map<uint64_t, Reach> reach;  // Pair(type, relation)
  // Pair(type, relation) -> the relations whose tuple lists on the same
  // object its evaluation reads first (its own, computed ones, tuplesets):
  // prefetched together (Evaluator::Check).
  boost::unordered_flat_map<uint64_t, std::vector<Sym>> local;
};

}  // namespace internal

namespace {

using internal::Overlay;
using internal::Sym;
using internal::SymInfo;
using internal::SymKind;
using internal::Triple;
using internal::TripleHash;
using internal::Tuple;
using internal::View;
using ProgramMap = std::map<std::string, std::shared_ptr<const cel::Program>, std::less<>>;

// A user's cone for one (type, relation) (Evaluator::InCone).
struct Cone {
  bool prune = false;
  boost::unordered_flat_set<Sym> objects;
};

// The per-request tables of an Evaluator, kept per thread between requests
// (a Check otherwise allocates each of them anew: about ten allocations of
// its fourteen). Lease takes a cleared one from the thread's pool and gives
// it back, or drops it when a request grew it past kKeepBuckets.
struct EvalScratch {
  struct MemoEntry {
    bool allowed;
    int relative_depth;
    uint32_t pass;  // the shallow pass that stored it (shallow_memo)
  };
  struct SkippedSite {
    Sym object;
    const Relation* rel;
    Sym relsym;
  };
  boost::unordered_flat_map<Triple, bool, TripleHash> reach;  // MayReach
  boost::unordered_flat_map<Triple, Cone, TripleHash> cones;  // InCone
  boost::unordered_flat_map<Triple, MemoEntry, TripleHash> memo;
  boost::unordered_flat_map<Triple, MemoEntry, TripleHash> shallow_memo;
  std::vector<SkippedSite> skipped_sites;
  std::vector<Triple> path;

  static constexpr size_t kKeepBuckets = 4096;
  static constexpr size_t kPoolSize = 4;  // nested Evaluators on one thread are few
  bool Small() const {
    return reach.bucket_count() <= kKeepBuckets && cones.bucket_count() <= kKeepBuckets &&
           memo.bucket_count() <= kKeepBuckets && shallow_memo.bucket_count() <= kKeepBuckets &&
           skipped_sites.capacity() <= kKeepBuckets && path.capacity() <= kKeepBuckets;
  }
  void Clear() {
    reach.clear();
    cones.clear();
    memo.clear();
    shallow_memo.clear();
    skipped_sites.clear();
    path.clear();
  }

  class Lease {
   public:
    Lease() {
      auto& p = Pool();
      if (p.empty()) {
        s_ = std::make_unique<EvalScratch>();
      } else {
        s_ = std::move(p.back());
        p.pop_back();
      }
    }
    ~Lease() {
      auto& p = Pool();
      if (p.size() >= kPoolSize || !s_->Small()) return;
      s_->Clear();
      p.push_back(std::move(s_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    EvalScratch* operator->() const { return s_.get(); }

   private:
    static std::vector<std::unique_ptr<EvalScratch>>& Pool() {
      thread_local std::vector<std::unique_ptr<EvalScratch>> pool;
      return pool;
    }
    std::unique_ptr<EvalScratch> s_;
  };
};

// Evaluation over interned symbols: objects, relations and users are symbols
// of the request's view (the stored tuples plus an overlay holding the
// contextual tuples and any request string the store has never seen).
class Evaluator {
 public:
  Evaluator(const Model& model, Overlay& overlay, bool explain, const ProgramMap* programs = nullptr,
            const std::map<std::string, Status, std::less<>>* errors = nullptr, std::string_view context = {})
      : model_(model), overlay_(overlay), view_(overlay.view()), explain_(explain), programs_(programs),
        compile_errors_(errors), context_(context) {}

  // Wildcard tuples do not grant concrete users (ListUsers uses this to tell
  // users reached through a wildcard from users related in their own right).
  void set_ignore_wildcards(bool v) { ignore_wildcards_ = v; }
  // ListUsers: every condition on the explored graph is evaluated (no
  // short-circuit at the first grant), and any condition error fails the
  // request, as OpenFGA's ListUsers does.
  void set_strict_conditions(bool v) { strict_conditions_ = v; }
  void set_reach(const std::map<std::string, RelationReach, std::less<>>* r) { reach_summaries_ = r; }
  // The shared name symbols (Engine::Syms) for a view over a version whose
  // next symbol is `base_next`.
  void set_syms(const internal::ModelSyms* syms, Sym base_next) {
    syms_ = syms;
    base_next_ = base_next;
    overlay_tuples_ = overlay_.has_tuples();
  }
  // Records every (object, relation) tuple list read (for the CheckCache).
  void set_reads(boost::unordered_flat_set<uint64_t>* reads) { reads_ = reads; }
  const std::optional<Status>& condition_error() const { return condition_error_; }
  int max_depth() const { return max_depth_; }
  std::vector<std::string>& trace() { return trace_; }

  // Whether a quick pass proves the grant: the same walk without following
  // userset tuples (nor exclusions), so it finds grants by direct, wildcard,
  // computed and tuple-to-userset steps at a fraction of a full walk's cost.
  // A grant it finds is a grant of the full walk (each step it takes is one
  // the full walk takes, and unions are monotone); anything else (not
  // proven, cycle, error) says nothing, and the caller runs the full walk.
  //
  // It can also refute: when the walk found nothing and skipped only
  // unconditional userset tuples, each of which the full walk would rule
  // out unread (outside the user's cone, or not admitted), the full walk
  // would find nothing either.
  enum class Shallow { kProven, kRefuted, kUnknown };
  Shallow ShallowPass(Sym object, Sym relation, Sym user) {
    if (explain_ || strict_conditions_ || ignore_wildcards_) return Shallow::kUnknown;
    shallow_ = true;
    ++pass_;
    skipped_sites_.clear();
    skipped_other_ = false;
    Eval e = Check(object, relation, user, 0);
    shallow_ = false;
    if (e.state == State::kTrue) return Shallow::kProven;
    if (e.state != State::kFalse || skipped_other_ || reads_ != nullptr) return Shallow::kUnknown;
    const SymInfo ui = view_.Info(user);
    for (const SkippedSite& site : skipped_sites_) {
      View::SegEntry entries[View::kMaxEntries];
      const size_t n = view_.Entries(site.object, site.relsym, entries);
      bool open = false;
      view_.ForUsersetItemsIn(entries, n, [&](const internal::Segment::UsersetItem& item, auto&&) {
        if (item.user == user) return true;  // the exact tuple, which the pass read
        const SymInfo tu = view_.Info(item.user);
        open = item.conditional ||
               (Admitted(*site.rel, tu, 0) && InCone(tu.type, tu.relation, user, ui, tu.base));
        return !open;
      });
      if (open) return Shallow::kUnknown;
    }
    return Shallow::kRefuted;
  }

  // Starts loading the tuple lists on `object` (of type `type`) that
  // evaluating `relation` on it reads first.
  void Prefetch(Sym object, Sym type, Sym relation) const {
    if (syms_ == nullptr || type >= base_next_ || relation >= base_next_) return;
    auto local = syms_->local.find(internal::Pair(type, relation));
    if (local == syms_->local.end()) return;
    for (Sym r : local->second) {
      if (Valid(r)) view_.Prefetch(object, r);
    }
  }

  // `object` is a "type:id" symbol.
  Eval Check(Sym object, Sym relation, Sym user, int depth) {
    const SymInfo oi = view_.Info(object);
    const TypeDefinition* td = TypeOf(oi.type);
    const Relation* rel = td ? RelationOf(oi.type, relation) : nullptr;
    if (rel == nullptr) return Eval::False();
    // Self-defining: every member of object#relation has relation on object
    // (OpenFGA's reflexive userset rule).
    const SymInfo ui = view_.Info(user);
    if (ui.kind == SymKind::kUserset && ui.relation == relation && ui.base == object) {
      Eval e{State::kTrue, {}, {}};
      if (explain_) e.chain = {"self " + std::string(view_.Text(user))};
      return e;
    }
    const Triple key{object, relation, user};
    if (explain_ && trace_.size() < kMaxTraceSteps) trace_.push_back(std::string(depth, ' ') + "check " + KeyText(key));
    if (!explain_) {
      for (auto* memo : {&memo_, shallow_ ? &shallow_memo_ : nullptr}) {
        if (memo == nullptr) continue;
        auto hit = memo->find(key);
        if (hit != memo->end() && depth + hit->second.relative_depth <= Engine::kMaxDepth) {
          max_depth_ = std::max(max_depth_, depth + hit->second.relative_depth);
          subtree_max_ = std::max(subtree_max_, depth + hit->second.relative_depth);
          if (memo == &shallow_memo_ && !hit->second.allowed) {
            ++skipped_;  // "not proven" is not "not allowed"
            // What an earlier pass (an earlier ListObjects candidate)
            // skipped under it is not among this pass's skipped sites.
            if (hit->second.pass != pass_) skipped_other_ = true;
          }
          return {hit->second.allowed ? State::kTrue : State::kFalse, {}, {}};
        }
      }
    }
    // The object's lists load while MayReach reads the user's index.
    Prefetch(object, oi.type, relation);
    // (Not when recording reads for the CheckCache: the pruning rests on
    // every list of a type, not on the lists read.)
    if (!explain_ && !strict_conditions_ && !ignore_wildcards_ && reads_ == nullptr &&
        !MayReach(oi.type, relation, user, ui)) {
      return Eval::False();
    }
    if (std::find(path_.begin(), path_.end(), key) != path_.end()) {
      ++cycles_;
      if (explain_ && trace_.size() < kMaxTraceSteps) trace_.push_back(std::string(depth, ' ') + "cycle at " + KeyText(key));
      return Eval::Cycle();
    }
    path_.push_back(key);
    const uint64_t cycles_before = cycles_;
    const uint64_t skipped_before = skipped_;
    const int saved_subtree_max = subtree_max_;
    subtree_max_ = depth;
    Eval e = Rewrite(object, *td, oi.type, *rel, relation, rel->rewrite, user, depth);
    path_.pop_back();
    // A definite result reached without meeting the current path does not
    // depend on how we got here: remember it (with the depth it needed, so
    // that a reuse deeper down still honours the depth limit).
    // A shallow walk that skipped nothing under this node (no userset tuple,
    // exclusion or dropped error) is the full walk: its result is definite.
    auto& memo = shallow_ && skipped_ != skipped_before ? shallow_memo_ : memo_;
    if (!explain_ && cycles_ == cycles_before && (e.state == State::kTrue || e.state == State::kFalse) &&
        memo.size() < kMaxMemoEntries) {
      memo.emplace(key, MemoEntry{e.state == State::kTrue, subtree_max_ - depth, pass_});
    }
    subtree_max_ = std::max(saved_subtree_max, subtree_max_);
    if (e.state == State::kTrue && explain_) e.chain.insert(e.chain.begin(), KeyText(key));
    return e;
  }

 private:
  std::string KeyText(const Triple& k) const {
    std::string s;
    s.append(view_.Text(k.o)).append("#").append(view_.Text(k.r)).append("@").append(view_.Text(k.u));
    return s;
  }

  // A shared symbol that exists in the request's base version.
  bool Valid(Sym s) const { return s != 0 && s < base_next_; }
  // Whether entries built with every name found (`complete`), none past the
  // base version (`max`), may be used; with incomplete entries only when no
  // contextual tuple can use a name the base does not have.
  bool Usable(bool complete, Sym max) const { return max < base_next_ && (complete || !overlay_tuples_); }

  const TypeDefinition* TypeOf(Sym type) {
    if (type == 0) return nullptr;
    if (syms_ != nullptr && type < base_next_) {
      // Every model type the base has is in the table.
      auto it = syms_->types.find(type);
      return it == syms_->types.end() ? nullptr : it->second;
    }
    auto [it, fresh] = types_.try_emplace(type, nullptr);
    if (fresh) it->second = model_.Find(view_.Text(type));
    return it->second;
  }
  const Relation* RelationOf(Sym type, Sym relation) {
    if (syms_ != nullptr && type < base_next_ && relation < base_next_) {
      auto it = syms_->relations.find(internal::Pair(type, relation));
      return it == syms_->relations.end() ? nullptr : it->second;
    }
    auto [it, fresh] = relations_.try_emplace(internal::Pair(type, relation), nullptr);
    if (fresh) {
      const TypeDefinition* td = TypeOf(type);
      it->second = td ? td->Find(view_.Text(relation)) : nullptr;
    }
    return it->second;
  }
  // The symbol of a relation name from the model (interned into the request
  // overlay when no tuple uses it).
  Sym NameSym(const std::string& name) {
    if (syms_ != nullptr) {
      auto it = syms_->names.find(&name);
      if (it != syms_->names.end() && Valid(it->second)) return it->second;
    }
    auto [it, fresh] = names_.try_emplace(&name, 0);
    if (fresh) it->second = overlay_.Intern(name);
    return it->second;
  }
  Sym WildcardOf(Sym type) {
    if (syms_ != nullptr && type < base_next_) {
      auto it = syms_->wildcards.find(type);
      if (it != syms_->wildcards.end()) {
        if (Valid(it->second)) return it->second;
        // Absent from the base: no tuple has it unless a contextual one.
        if (!overlay_tuples_) return 0;
      }
    }
    auto [it, fresh] = wildcards_.try_emplace(type, 0);
    if (fresh) it->second = view_.Find(std::string(view_.Text(type)) + ":*");
    return it->second;
  }
  // The shared reach summary of (type, relation) when usable; nullptr: use
  // the per-request path (which finds "no summary" itself).
  const internal::ModelSyms::Reach* SharedReach(Sym type, Sym relation) {
    if (syms_ == nullptr || type >= base_next_ || relation >= base_next_) return nullptr;
    auto it = syms_->reach.find(internal::Pair(type, relation));
    if (it == syms_->reach.end()) return nullptr;
    return Usable(it->second.complete, it->second.max) ? &it->second : nullptr;
  }

  // Whether a plain (or wildcard) user can have `relation` on objects of
  // `type` at all: every grant ends in a tuple naming the user (or its
  // wildcard) in one of the lists the relation's rewrites can reach; when the
  // user is in none of them, the answer is "not allowed" without a walk.
  // Not used when a conditional userset or tuple-to-userset restriction lies
  // under the relation: a walk would evaluate that condition, and may fail.
  bool MayReach(Sym type, Sym relation, Sym user, const SymInfo& ui) {
    if (ui.kind != SymKind::kObject && ui.kind != SymKind::kWildcard) return true;
    if (reach_summaries_ == nullptr) return true;
    auto [it, fresh] = reach_.try_emplace(Triple{type, relation, user}, true);
    if (!fresh) return it->second;
    if (const internal::ModelSyms::Reach* r = SharedReach(type, relation)) {
      if (r->unsafe) return true;
      const Sym wildcard = ui.kind == SymKind::kObject ? WildcardOf(ui.type) : 0;
      bool any = false;
      for (const auto& [ts, rs, ut] : r->ends) {
        if (ut != ui.type || !Valid(ts) || !Valid(rs)) continue;
        if (view_.MayHaveUserIn(user, ts, rs) || (wildcard != 0 && view_.MayHaveUserIn(wildcard, ts, rs))) {
          any = true;
          break;
        }
      }
      return it->second = any;
    }
    std::string key(view_.Text(type));
    key.append("#").append(view_.Text(relation));
    auto summary = reach_summaries_->find(key);
    if (summary == reach_summaries_->end() || summary->second.unsafe) return true;
    const std::string_view user_type = view_.Text(ui.type);
    const Sym wildcard = ui.kind == SymKind::kObject ? WildcardOf(ui.type) : 0;
    bool any = false;
    for (const auto& [t, r, ut] : summary->second.ends) {
      if (ut != user_type) continue;
      Sym ts = view_.Find(t), rs = view_.Find(r);
      if (ts == 0 || rs == 0) continue;
      if (view_.MayHaveUserIn(user, ts, rs) || (wildcard != 0 && view_.MayHaveUserIn(wildcard, ts, rs))) {
        any = true;
        break;
      }
    }
    return it->second = any;
  }

  // Whether `object` can be reached from a plain (or wildcard) user by
  // walking back the steps a grant of (type, relation) can take: from the
  // lists that hold the user, through usersets and tuple-to-userset parents
  // (the user's "cone"; each grant is such a chain, so an object outside it
  // is "not allowed"). Computed once per request and (type, relation, user);
  // no pruning where MayReach would not prune, or past kMaxCone objects.
  static constexpr size_t kMaxCone = 4096;
  bool InCone(Sym type, Sym relation, Sym user, const SymInfo& ui, Sym object) {
    if (ui.kind != SymKind::kObject && ui.kind != SymKind::kWildcard) return true;
    if (reach_summaries_ == nullptr) return true;
    auto [it, fresh] = cones_.try_emplace(Triple{type, relation, user});
    Cone& cone = it->second;
    if (fresh) BuildCone(type, relation, user, ui, &cone);
    return !cone.prune || cone.objects.contains(object);
  }
  void BuildCone(Sym type, Sym relation, Sym user, const SymInfo& ui, Cone* cone) {
    const internal::ModelSyms::Reach* shared = SharedReach(type, relation);
    const RelationReach* rr = nullptr;
    if (shared == nullptr) {
      std::string key(view_.Text(type));
      key.append("#").append(view_.Text(relation));
      auto summary = reach_summaries_->find(key);
      if (summary == reach_summaries_->end()) return;
      rr = &summary->second;
    }
    if (shared ? shared->unsafe : rr->unsafe) return;
    const Sym wildcard = ui.kind == SymKind::kObject ? WildcardOf(ui.type) : 0;
    std::vector<Sym> todo;
    bool overflow = false;
    auto reach = [&](Sym object) {
      if (cone->objects.size() >= kMaxCone) {
        overflow = true;
        return;
      }
      if (cone->objects.insert(object).second) {
        todo.push_back(object);
        view_.PrefetchInfo(object);  // read when its turn comes
      }
    };
    std::vector<internal::ConeStep> local_steps;
    if (shared != nullptr) {
      for (const auto& [ts, rs, ut] : shared->ends) {
        if (ut != ui.type || !Valid(ts) || !Valid(rs)) continue;
        view_.ForUserTypeRelationObjects(user, ts, rs, reach);
        if (wildcard != 0) view_.ForUserTypeRelationObjects(wildcard, ts, rs, reach);
      }
    } else {
      const std::string_view user_type = view_.Text(ui.type);
      for (const auto& [t, r, ut] : rr->ends) {
        if (ut != user_type) continue;
        Sym ts = view_.Find(t), rs = view_.Find(r);
        if (ts == 0 || rs == 0) continue;
        view_.ForUserTypeRelationObjects(user, ts, rs, reach);
        if (wildcard != 0) view_.ForUserTypeRelationObjects(wildcard, ts, rs, reach);
      }
      for (const auto& [t, r, y, srel] : rr->usersets) {
        Sym ts = view_.Find(t), rs = view_.Find(r), ys = view_.Find(y);
        Sym vs = view_.Find(srel);
        if (ts != 0 && rs != 0 && ys != 0 && vs != 0) local_steps.push_back({ts, rs, ys, vs, true});
      }
      for (const auto& [t, tupleset, p] : rr->parents) {
        Sym ts = view_.Find(t), rs = view_.Find(tupleset), ps = view_.Find(p);
        if (ts != 0 && rs != 0 && ps != 0) local_steps.push_back({ts, rs, ps, 0, false});
      }
    }
    const std::vector<internal::ConeStep>& steps = shared ? shared->steps : local_steps;
    // Breadth first: the lookups from one level's objects do not depend on
    // each other, so their cache misses can overlap (no gain measured
    // beyond noise: bench/results/authz.md).
    for (size_t next = 0; next < todo.size() && !overflow; ++next) {
      const Sym o = todo[next];
      const Sym otype = view_.Info(o).type;
      for (const internal::ConeStep& st : steps) {
        if (st.from_type != otype) continue;
        if (shared != nullptr && (!Valid(st.type) || !Valid(st.relation) || (st.userset && !Valid(st.via)))) {
          continue;  // absent from the base
        }
        // From o itself, or from its userset "o#<via>".
        if (st.userset) {
          view_.ForUsersetStepObjects(o, st.via, st.type, st.relation, reach);
        } else {
          view_.ForUserTypeRelationObjects(o, st.type, st.relation, reach);
        }
      }
    }
    cone->prune = !overflow;
    if (overflow) cone->objects.clear();
  }

  void Read(Sym object, Sym relation) {
    if (reads_ != nullptr) reads_->insert(internal::Pair(object, relation));
  }

  // Whether the relation's type restrictions admit the tuple's user form with
  // its condition (OpenFGA ignores tuples that the current model does not
  // admit, including `user:*` written without the condition the model now
  // requires, or with a condition it no longer names).
  bool Admitted(const Relation& rel, const SymInfo& u, Sym condition) {
    if (u.kind == SymKind::kOther) return false;
    const Sym relation = u.kind == SymKind::kUserset ? u.relation : 0;
    const bool wildcard = u.kind == SymKind::kWildcard;
    for (const Restriction& r : RestrictionsOf(rel)) {
      if (r.type == u.type && r.condition == condition && r.wildcard == wildcard && r.relation == relation) {
        return true;
      }
    }
    return false;
  }
  // The relation's type restrictions as symbols (0 for a name no tuple uses:
  // then nothing matches it, as a tuple's user type is never 0).
  using Restriction = internal::ModelSyms::Restriction;
  const std::vector<Restriction>& RestrictionsOf(const Relation& rel) {
    if (syms_ != nullptr) {
      auto s = syms_->restrictions.find(&rel);
      if (s != syms_->restrictions.end() && s->second.complete && s->second.max < base_next_) return s->second.list;
    }
    auto [it, fresh] = restrictions_.try_emplace(&rel);
    if (fresh) {
      for (const auto& r : rel.directly_related) {
        it->second.push_back({view_.Find(r.type), view_.Find(r.relation), view_.Find(r.condition), r.wildcard});
      }
    }
    return it->second;
  }

  // The one type a relation's restrictions admit as plain objects (a
  // tuple-to-userset parent's type), or 0.
  Sym SingleType(const Relation& rel) {
    Sym type = 0;
    for (const Restriction& r : RestrictionsOf(rel)) {
      if (r.wildcard || r.relation != 0 || (type != 0 && r.type != type)) return 0;
      type = r.type;
    }
    return Valid(type) ? type : 0;
  }

  Eval Dispatch(Sym object, Sym relation, Sym user, int depth) {
    if (depth > Engine::kMaxDepth) {
      return Eval::Error(InvalidArgument("authorization_model_resolution_too_complex: resolution exceeded depth " +
                                         std::to_string(Engine::kMaxDepth)));
    }
    max_depth_ = std::max(max_depth_, depth);
    subtree_max_ = std::max(subtree_max_, depth);
    return Check(object, relation, user, depth);
  }

  Eval Rewrite(Sym object, const TypeDefinition& td, Sym type, const Relation& rel, Sym relsym,
               const authz::Rewrite& node, Sym user, int depth) {
    using K = authz::Rewrite::Kind;
    switch (node.kind) {
      case K::kThis:
        return Direct(object, rel, relsym, user, depth);
      case K::kComputed: {
        if (RelationOf(type, NameSym(node.relation)) == nullptr) return Eval::False();
        return Dispatch(object, NameSym(node.relation), user, depth + 1);
      }
      case K::kTupleToUserset:
        return TupleToUserset(object, type, node, user, depth);
      case K::kUnion: {
        UnionAcc acc;
        std::optional<Eval> granted;
        for (const auto& c : node.children) {
          Eval e = Rewrite(object, td, type, rel, relsym, c, user, depth);
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
          Eval e = Rewrite(object, td, type, rel, relsym, c, user, depth);
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
        if (shallow_) {
          ++skipped_;
          skipped_other_ = true;
          return Eval::False();  // not proven
        }
        if (node.children.size() != 2) return Eval::Error(Internal("malformed exclusion"));
        Eval base = Rewrite(object, td, type, rel, relsym, node.children[0], user, depth);
        if (base.state == State::kFalse) return base;
        Eval sub = Rewrite(object, td, type, rel, relsym, node.children[1], user, depth);
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

  Eval Direct(Sym object, const Relation& rel, Sym relsym, Sym user, int depth) {
    Read(object, relsym);
    if (explain_ || strict_conditions_ || ignore_wildcards_) return ScanDirect(object, rel, relsym, user, depth);
    // Fast path: the exact tuple and the wildcard tuple by hash lookup, then
    // only the userset tuples. Any grant wins; otherwise the error of the
    // earliest tuple (insertion order, as a scan would meet it), then cycles.
    const SymInfo ui = view_.Info(user);
    std::optional<std::pair<uint32_t, Status>> error;
    bool cycle = false;
    auto fail = [&](const Tuple& t, Eval& e) {
      if (e.state == State::kCycle) cycle = true;
      if (e.state == State::kError && (!error || t.seq < error->first)) error.emplace(t.seq, e.error);
    };
    // Whether a tuple FindIn found (nullptr: none) grants: admitted, and its
    // condition holds. An unconditional one is judged without reading it.
    auto grants = [&](const Tuple* t, bool conditional, const SymInfo& tu) {
      if (t == nullptr) return false;
      if (!conditional) return Admitted(rel, tu, 0);
      if (!Admitted(rel, tu, t->condition)) return false;
      if (t->condition == 0) return true;
      Eval c = ConditionHolds(*t);
      if (c.state == State::kTrue) return true;
      fail(*t, c);
      return false;
    };
    View::SegEntry entries[View::kMaxEntries];
    const size_t n = view_.Entries(object, relsym, entries);
    if (n == 0) return Eval::False();
    bool conditional = true;
    const Tuple* exact = view_.FindIn(entries, n, object, relsym, user, &conditional);
    if (grants(exact, conditional, ui)) return {State::kTrue, {}, {}};
    bool wildcards = false;
    for (size_t k = 0; k < n; ++k) wildcards = wildcards || entries[k].entry->wildcards > 0;
    if (wildcards && ui.kind == SymKind::kObject) {
      Sym ws = WildcardOf(ui.type);
      if (ws != 0) {
        const Tuple* wild = view_.FindIn(entries, n, object, relsym, ws, &conditional);
        if (grants(wild, conditional, view_.Info(ws))) return {State::kTrue, {}, {}};
      }
    }
    if (shallow_) {
      // Not proven: usersets are not followed (and errors are not reported).
      bool usersets = false;
      for (size_t k = 0; k < n && !usersets; ++k) usersets = entries[k].entry->usersets.count > 0;
      if (usersets) skipped_sites_.push_back({object, &rel, relsym});
      if (error) skipped_other_ = true;
      if (usersets || error) ++skipped_;
      return Eval::False();
    }
    Eval found;
    view_.ForUsersetItemsIn(entries, n, [&](const internal::Segment::UsersetItem& item, auto&& tuple) {
      if (item.user == user) return true;  // the exact tuple, done above
      const SymInfo tu = view_.Info(item.user);
      // An unconditional userset the user cannot be in (outside its cone):
      // not allowed, known without reading the tuple. (A conditional one
      // has its condition evaluated first, whose error counts.)
      if (!item.conditional && reads_ == nullptr && Admitted(rel, tu, 0) &&
          !InCone(tu.type, tu.relation, user, ui, tu.base)) {
        return true;
      }
      const Tuple* found_tuple = tuple();
      if (found_tuple == nullptr) return true;  // deleted
      const Tuple& t = *found_tuple;
      if (!Admitted(rel, tu, t.condition)) return true;
      if (t.condition != 0) {
        Eval c = ConditionHolds(t);
        if (c.state != State::kTrue) {
          fail(t, c);
          return true;
        }
      }
      // A userset the user cannot be in (outside its cone): not allowed.
      if (reads_ == nullptr && !InCone(tu.type, tu.relation, user, ui, tu.base)) return true;
      Eval e = Dispatch(tu.base, tu.relation, user, depth + 1);
      if (e.state == State::kTrue) {
        found = std::move(e);
        return false;
      }
      fail(t, e);
      return true;
    });
    if (found.state == State::kTrue) return found;
    if (error) return Eval::Error(std::move(error->second));
    return cycle ? Eval::Cycle() : Eval::False();
  }

  // Every tuple of the list in insertion order (explain, and ListUsers'
  // strict and wildcard-ignoring modes, whose results depend on the order).
  Eval ScanDirect(Sym object, const Relation& rel, Sym relsym, Sym user, int depth) {
    const SymInfo ui = view_.Info(user);
    UnionAcc acc;
    Eval found;
    view_.ForObjectRelation(object, relsym, [&](const Tuple& t) {
      const SymInfo tu = view_.Info(t.user);
      if (found.state == State::kTrue) {
        // Strict mode only: surface errors of the remaining conditions.
        if (t.condition != 0 && Admitted(rel, tu, t.condition)) ConditionHolds(t);
        return true;
      }
      if (!Admitted(rel, tu, t.condition)) return true;  // a tuple the current model no longer admits
      bool match = t.user == user;
      if (!match && tu.kind == SymKind::kWildcard && !ignore_wildcards_ && ui.kind != SymKind::kUserset &&
          tu.type == ui.type) {
        match = true;
      }
      if (!match && tu.kind != SymKind::kUserset) return true;
      if (t.condition != 0) {
        Eval c = ConditionHolds(t);
        if (c.state != State::kTrue) {
          acc.Add(c);
          return true;
        }
      }
      if (match) {
        found.state = State::kTrue;
        if (explain_) found.chain = {"tuple " + view_.TupleString(t)};
        return strict_conditions_;
      }
      Eval e = Dispatch(tu.base, tu.relation, user, depth + 1);
      if (e.state == State::kTrue) {
        found = std::move(e);
        if (explain_) found.chain.insert(found.chain.begin(), "tuple " + view_.TupleString(t));
        return strict_conditions_;
      }
      acc.Add(e);
      return true;
    });
    if (found.state == State::kTrue) return found;
    return acc.Finish();
  }

  Eval TupleToUserset(Sym object, Sym type, const authz::Rewrite& node, Sym user, int depth) {
    const Sym tupleset_sym = NameSym(node.tupleset);
    const Relation* tupleset = RelationOf(type, tupleset_sym);
    if (tupleset == nullptr) return Eval::False();
    const Sym computed = NameSym(node.relation);
    Read(object, tupleset_sym);
    // The parents' tuples, types and (when the tupleset admits one type
    // only) the lists the computed relation reads on them are fetched
    // together, before the walk needs them one after the other.
    const Sym parent_type = SingleType(*tupleset);
    view_.PrefetchTuples(object, tupleset_sym, [&](Sym parent) {
      if (parent_type != 0) Prefetch(parent, parent_type, computed);
    });
    UnionAcc acc;
    Eval found;
    view_.ForObjectRelation(object, tupleset_sym, [&](const Tuple& t) {
      const SymInfo parent = view_.Info(t.user);
      if (found.state == State::kTrue) {
        // Strict mode only: surface errors of the remaining conditions.
        if (t.condition != 0 && Admitted(*tupleset, parent, t.condition)) ConditionHolds(t);
        return true;
      }
      if (parent.kind != SymKind::kObject || !Admitted(*tupleset, parent, t.condition)) return true;
      if (TypeOf(parent.type) == nullptr || RelationOf(parent.type, computed) == nullptr) {
        return true;  // relation not defined on this parent type
      }
      if (t.condition != 0) {
        Eval c = ConditionHolds(t);
        if (c.state != State::kTrue) {
          acc.Add(c);
          return true;
        }
      }
      Eval e = Dispatch(t.user, computed, user, depth + 1);
      if (e.state == State::kTrue) {
        found = std::move(e);
        if (explain_) {
          found.chain.insert(found.chain.begin(), "tuple " + view_.TupleString(t) + " (" + node.relation + " from " +
                                                      node.tupleset + ")");
        }
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
  Eval ConditionHolds(const Tuple& t) {
    const uint64_t key = internal::Pair(t.condition, t.context);
    if (auto it = condition_cache_.find(key); it != condition_cache_.end()) return it->second;
    Eval e = EvaluateCondition(t);
    if (e.state == State::kError && strict_conditions_ && !condition_error_) condition_error_ = e.error;
    if (condition_cache_.size() < kMaxMemoEntries) condition_cache_.emplace(key, e);
    return e;
  }
  Eval EvaluateCondition(const Tuple& t) {
    const std::string_view name = view_.Text(t.condition);
    if (compile_errors_ != nullptr) {
      if (auto it = compile_errors_->find(name); it != compile_errors_->end()) return Eval::Error(it->second);
    }
    const cel::Program* prog = nullptr;
    if (programs_ != nullptr) {
      if (auto it = programs_->find(name); it != programs_->end()) prog = it->second.get();
    }
    if (prog == nullptr) return Eval::False();  // a condition the current model no longer has

    auto r = prog->Evaluate(view_.Text(t.context), context_);
    if (!r.ok()) return Eval::Error(r.status());
    if (!r->missing.empty()) {
      std::string names;
      for (const auto& m : r->missing) names += (names.empty() ? "" : ", ") + m;
      return Eval::Error(ValidationError("failed to evaluate relationship condition '" + std::string(name) +
                                         "' on tuple " + view_.TupleString(t) + ": missing context parameters [" +
                                         names + "]"));
    }
    if (explain_ && trace_.size() < kMaxTraceSteps) {
      trace_.push_back("condition " + std::string(name) + " on " + view_.TupleString(t) + ": " +
                       (r->value ? "true" : "false"));
    }
    return r->value ? Eval{State::kTrue, {}, {}} : Eval::False();
  }

  EvalScratch::Lease scratch_;  // first: the tables below live in it
  const Model& model_;
  Overlay& overlay_;
  const View& view_;
  bool explain_;
  const ProgramMap* programs_;
  const std::map<std::string, Status, std::less<>>* compile_errors_;
  std::string_view context_;
  boost::unordered_flat_map<uint64_t, Eval> condition_cache_;
  boost::unordered_flat_map<Sym, const TypeDefinition*> types_;
  boost::unordered_flat_map<uint64_t, const Relation*> relations_;
  boost::unordered_flat_map<const std::string*, Sym> names_;
  boost::unordered_flat_map<Sym, Sym> wildcards_;
  boost::unordered_flat_map<Triple, bool, TripleHash>& reach_ = scratch_->reach;  // MayReach
  boost::unordered_flat_map<Triple, Cone, TripleHash>& cones_ = scratch_->cones;   // InCone
  const std::map<std::string, RelationReach, std::less<>>* reach_summaries_ = nullptr;
  const internal::ModelSyms* syms_ = nullptr;
  Sym base_next_ = 0;
  bool overlay_tuples_ = false;
  boost::unordered_flat_map<const Relation*, std::vector<Restriction>> restrictions_;
  boost::unordered_flat_set<uint64_t>* reads_ = nullptr;
  bool ignore_wildcards_ = false;
  bool strict_conditions_ = false;
  std::optional<Status> condition_error_;
  int max_depth_ = 0;
  int subtree_max_ = 0;  // deepest dispatch under the node being evaluated
  uint64_t cycles_ = 0;  // cycles met so far
  using MemoEntry = EvalScratch::MemoEntry;
  // (object, relation, user) -> result
  boost::unordered_flat_map<Triple, MemoEntry, TripleHash>& memo_ = scratch_->memo;
  // Shallow pass: kTrue = proven, kFalse = not proven.
  boost::unordered_flat_map<Triple, MemoEntry, TripleHash>& shallow_memo_ = scratch_->shallow_memo;
  bool shallow_ = false;
  uint64_t skipped_ = 0;  // shallow pass: steps a full walk would take that it skipped
  // Shallow pass: the lists whose userset tuples it skipped, and whether it
  // skipped anything else (an exclusion, a condition's error).
  using SkippedSite = EvalScratch::SkippedSite;
  std::vector<SkippedSite>& skipped_sites_ = scratch_->skipped_sites;
  bool skipped_other_ = false;
  uint32_t pass_ = 0;  // shallow passes run
  // The checks being evaluated, outermost first (at most kMaxDepth + 1
  // deep, so a linear search beats hashing).
  std::vector<Triple>& path_ = scratch_->path;
  std::vector<std::string> trace_;
};

// The objects of type `type` on which `user` has `relation`, derived by
// forward chaining (ChainPlan) from the tuples naming the user, its `type:*`
// and, for a userset user "x#r", from x's own r (the self-defining rule).
// Each grant is reached first along a shortest derivation (breadth first),
// whose length is the depth Check would dispatch to; nullopt when some grant
// needs more than Engine::kMaxDepth (the caller then checks each candidate,
// which reports the depth error as Check does).
std::optional<std::vector<Sym>> ChainObjects(const ChainPlan& plan, Overlay& overlay, Sym type, Sym relation,
                                             Sym user) {
  struct Admit {
    Sym type, relation;
    bool wildcard;
  };
  struct Edge {
    ChainPlan::EdgeKind kind;
    Sym to_type, to_relation, tupleset;
  };
  // Names no tuple uses are interned into the request overlay, so that
  // every name has a symbol of its own.
  boost::unordered_flat_map<uint64_t, std::vector<Admit>> direct;  // Pair(type, relation)
  for (const auto& d : plan.direct) {
    auto& list = direct[internal::Pair(overlay.Intern(d.type), overlay.Intern(d.relation))];
    for (const auto& a : d.admits) list.push_back({overlay.Intern(a.type), overlay.Intern(a.relation), a.wildcard});
  }
  boost::unordered_flat_map<uint64_t, std::vector<Edge>> edges;  // Pair(from type, from relation)
  for (const auto& e : plan.edges) {
    edges[internal::Pair(overlay.Intern(e.from_type), overlay.Intern(e.from_relation))].push_back(
        {e.kind, overlay.Intern(e.to_type), overlay.Intern(e.to_relation), overlay.Intern(e.tupleset)});
  }
  const View& view = overlay.view();

  struct Node {
    Sym object, type, relation;
    int depth;
  };
  std::vector<Node> queue;  // breadth first: depths never decrease
  boost::unordered_flat_set<uint64_t> granted;  // Pair(object, relation)
  std::vector<Sym> out;
  bool too_deep = false;
  auto grant = [&](Sym object, Sym otype, Sym rel, int depth) {
    if (!granted.insert(internal::Pair(object, rel)).second) return;
    if (depth > Engine::kMaxDepth) {
      too_deep = true;
      return;
    }
    queue.push_back({object, otype, rel, depth});
    if (otype == type && rel == relation) out.push_back(object);
  };

  // Seeds: direct tuples whose user form the relation admits, unconditional
  // (the plan has no conditional restriction, so a tuple with a condition
  // is one the model does not admit).
  const SymInfo ui = view.Info(user);
  const Sym user_relation = ui.kind == SymKind::kUserset ? ui.relation : 0;
  auto seed = [&](Sym subject, bool wildcard) {
    view.ForUser(subject, [&](const Tuple& t) {
      if (t.condition != 0) return true;
      const Sym otype = view.Info(t.object).type;
      auto d = direct.find(internal::Pair(otype, t.relation));
      if (d == direct.end()) return true;
      for (const Admit& a : d->second) {
        if (a.type == ui.type && a.wildcard == wildcard && a.relation == user_relation) {
          grant(t.object, otype, t.relation, 0);
          break;
        }
      }
      return true;
    });
  };
  switch (ui.kind) {
    case SymKind::kObject:
      seed(user, false);
      if (Sym w = view.Find(std::string(view.Text(ui.type)) + ":*"); w != 0) seed(w, true);
      break;
    case SymKind::kWildcard:
      seed(user, true);
      break;
    case SymKind::kUserset:
      seed(user, false);
      // The self-defining userset, for an object some tuple mentions (as
      // the candidate walk does).
      if (view.MentionCount(ui.base) > 0) grant(ui.base, view.Info(ui.base).type, ui.relation, 0);
      break;
    case SymKind::kOther:
      return out;
  }

  for (size_t i = 0; i < queue.size() && !too_deep; ++i) {
    const Node n = queue[i];
    auto it = edges.find(internal::Pair(n.type, n.relation));
    if (it == edges.end()) continue;
    for (const Edge& e : it->second) {
      auto lead = [&](const Tuple& t) {
        if (t.condition == 0) grant(t.object, e.to_type, e.to_relation, n.depth + 1);
      };
      switch (e.kind) {
        case ChainPlan::EdgeKind::kComputed:
          grant(n.object, n.type, e.to_relation, n.depth + 1);
          break;
        case ChainPlan::EdgeKind::kUserset:
          view.ForUsersetStep(n.object, n.relation, e.to_type, e.to_relation, lead);
          break;
        case ChainPlan::EdgeKind::kTupleset:
          view.ForUserTypeRelation(n.object, e.to_type, e.tupleset, lead);
          break;
      }
    }
  }
  if (too_deep) return std::nullopt;
  return out;
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
  size_t relations = 0;
  for (const auto& td : model_.types) relations += td.relations.size();
  if (relations <= 2000) {
    for (const auto& td : model_.types) {
      for (const auto& rel : td.relations) {
        c->reach.emplace(td.name + "#" + rel.name, ComputeReach(model_, td, rel));
        if (auto plan = PlanChain(model_, td, rel)) c->chains.emplace(td.name + "#" + rel.name, std::move(*plan));
      }
    }
  }
  conditions_ = std::move(c);
}

namespace {

// Types with at most this many lists have all of them prefetched on
// entering one of their objects (ModelSyms::local).
constexpr size_t kPrefetchAllLists = 6;

std::shared_ptr<const internal::ModelSyms> BuildModelSyms(
    const Model& model, const std::map<std::string, RelationReach, std::less<>>& reach, const internal::SetData& data) {
  auto out = std::make_shared<internal::ModelSyms>();
  out->lineage = data.lineage;
  out->next_sym = data.next_sym;
  const View view(data);
  boost::unordered_flat_map<std::string_view, Sym> found;
  auto find = [&](std::string_view name) -> Sym {
    auto [it, fresh] = found.try_emplace(name, 0);
    if (fresh) it->second = view.Find(name);
    return it->second;
  };
  for (const auto& td : model.types) {
    const Sym ts = find(td.name);
    if (ts != 0) {
      out->types.emplace(ts, &td);
      out->wildcards.emplace(ts, view.Find(td.name + ":*"));
    }
    for (const auto& rel : td.relations) {
      const Sym rs = find(rel.name);
      if (ts != 0 && rs != 0) out->relations.emplace(internal::Pair(ts, rs), &rel);
      internal::ModelSyms::Restrictions& rl = out->restrictions[&rel];
      for (const auto& r : rel.directly_related) {
        internal::ModelSyms::Restriction x{find(r.type), find(r.relation), find(r.condition), r.wildcard};
        rl.complete = rl.complete && (x.type != 0 || r.type.empty()) && (x.relation != 0 || r.relation.empty()) &&
                      (x.condition != 0 || r.condition.empty());
        rl.max = std::max({rl.max, x.type, x.relation, x.condition});
        rl.list.push_back(x);
      }
      std::vector<const authz::Rewrite*> nodes = {&rel.rewrite};
      while (!nodes.empty()) {
        const authz::Rewrite* n = nodes.back();
        nodes.pop_back();
        if (n->kind == authz::Rewrite::Kind::kComputed || n->kind == authz::Rewrite::Kind::kTupleToUserset) {
          out->names.emplace(&n->relation, find(n->relation));
          if (n->kind == authz::Rewrite::Kind::kTupleToUserset) out->names.emplace(&n->tupleset, find(n->tupleset));
        }
        for (const auto& c : n->children) nodes.push_back(&c);
      }
      if (ts != 0 && rs != 0) {
        // The lists on the same object: follow computed relations of the type.
        std::vector<Sym>& local = out->local[internal::Pair(ts, rs)];
        std::set<const Relation*> seen = {&rel};
        std::vector<const authz::Rewrite*> todo = {&rel.rewrite};
        while (!todo.empty()) {
          const authz::Rewrite* n = todo.back();
          todo.pop_back();
          switch (n->kind) {
            case authz::Rewrite::Kind::kThis:
              break;
            case authz::Rewrite::Kind::kComputed:
              if (const Relation* c = td.Find(n->relation); c != nullptr && seen.insert(c).second) {
                todo.push_back(&c->rewrite);
                if (!c->directly_related.empty()) {
                  if (Sym cs = find(c->name); cs != 0) local.push_back(cs);
                }
              }
              break;
            case authz::Rewrite::Kind::kTupleToUserset:
              if (Sym t = find(n->tupleset); t != 0) local.push_back(t);
              break;
            default:
              for (const auto& c : n->children) todo.push_back(&c);
          }
        }
        if (!rel.directly_related.empty()) local.push_back(rs);
        // A walk usually reads more of the object's lists than the ones
        // this relation starts with (a parent reached through `x from
        // parent` is asked for x, then for what other paths lead to): for
        // a type with few lists, fetch them all.
        std::vector<Sym> all;
        for (const auto& other : td.relations) {
          if (other.directly_related.empty()) continue;
          if (Sym os = find(other.name); os != 0) all.push_back(os);
        }
        if (all.size() <= kPrefetchAllLists) local.insert(local.end(), all.begin(), all.end());
        std::sort(local.begin(), local.end());
        local.erase(std::unique(local.begin(), local.end()), local.end());
      }
      auto summary = reach.find(td.name + "#" + rel.name);
      if (ts == 0 || rs == 0 || summary == reach.end()) continue;
      const RelationReach& rr = summary->second;
      internal::ModelSyms::Reach& x = out->reach[internal::Pair(ts, rs)];
      x.unsafe = rr.unsafe;
      auto note = [&](Sym s) {
        if (s == 0) x.complete = false;
        x.max = std::max(x.max, s);
        return s;
      };
      for (const auto& [t, r, ut] : rr.ends) x.ends.push_back({note(find(t)), note(find(r)), note(find(ut))});
      for (const auto& [t, r, y, srel] : rr.usersets) {
        x.steps.push_back({note(find(t)), note(find(r)), note(find(y)), note(find(srel)), true});
      }
      for (const auto& [t, tupleset, p] : rr.parents) {
        x.steps.push_back({note(find(t)), note(find(tupleset)), note(find(p)), 0, false});
      }
    }
  }
  return out;
}

}  // namespace

std::shared_ptr<const internal::ModelSyms> Engine::Syms(const TupleSet& tuples) const {
  const internal::SetData& data = internal::TupleSetAccess::Data(tuples);
  {
    std::lock_guard<std::mutex> l(syms_.mu);
    const auto& cur = syms_.current;
    if (cur && cur->lineage == data.lineage && cur->next_sym >= data.next_sym) return cur;
  }
  auto fresh = BuildModelSyms(model_, conditions_->reach, data);
  std::lock_guard<std::mutex> l(syms_.mu);
  const auto& cur = syms_.current;
  if (!cur || cur->lineage != data.lineage || cur->next_sym < fresh->next_sym) syms_.current = fresh;
  return fresh;
}

Result<Engine> Engine::Create(Model model) {
  Engine e(std::move(model));
  for (const auto& cond : e.model_.conditions) {
    if (auto it = e.conditions_->errors.find(cond.name); it != e.conditions_->errors.end()) return it->second;
  }
  return e;
}

Result<CheckResult> Engine::Check(const TupleSet& tuples, const CheckRequest& request) const {
  return Check(tuples, request, nullptr);
}

Result<CheckResult> Engine::Check(const TupleSet& tuples, const CheckRequest& request, internal::ReadSet* reads) const {
  const TupleKey& tk = request.tuple;
  // The symbol table slots of the object and the user load while the
  // request is validated.
  const internal::SetData& data = internal::TupleSetAccess::Data(tuples);
  Overlay overlay(data);
  const internal::SymKey object_key{tk.object, internal::HashText(tk.object)};
  const internal::SymKey user_key{tk.user, internal::HashText(tk.user)};
  overlay.view().PrefetchFind(object_key);
  overlay.view().PrefetchFind(user_key);
  auto obj = ParseObject(tk.object);
  if (!obj) return ValidationError("malformed object '" + tk.object + "'");
  const TypeDefinition* td = model_.Find(obj->first);
  if (td == nullptr) return ValidationError("type '" + obj->first + "' is not in the model");
  if (td->Find(tk.relation) == nullptr) {
    return ValidationError("relation '" + obj->first + "#" + tk.relation + "' is not in the model");
  }
  RETURN_IF_ERROR(ValidateRequestUser(model_, tk.user).status());
  RETURN_IF_ERROR(overlay.AddTuples(model_, request.contextual_tuples));

  Evaluator ev(model_, overlay, request.explain, &conditions_->programs, &conditions_->errors, request.context);
  ev.set_reach(&conditions_->reach);
  const auto syms = Syms(tuples);
  ev.set_syms(syms.get(), data.next_sym);
  boost::unordered_flat_set<uint64_t> read_pairs;
  if (reads != nullptr) ev.set_reads(&read_pairs);
  const Sym o = overlay.Intern(object_key), r = overlay.Intern(tk.relation), u = overlay.Intern(user_key);
  Eval e;
  switch (ev.ShallowPass(o, r, u)) {
    case Evaluator::Shallow::kProven:
      e = {State::kTrue, {}, {}};
      break;
    case Evaluator::Shallow::kRefuted:
      e = Eval::False();
      break;
    case Evaluator::Shallow::kUnknown:
      e = ev.Check(o, r, u, 0);
      break;
  }
  if (e.state == State::kError) return e.error;
  CheckResult res;
  res.allowed = e.state == State::kTrue;
  res.depth = ev.max_depth();
  if (request.explain) {
    res.explanation = res.allowed ? std::move(e.chain) : std::move(ev.trace());
    if (!res.allowed && e.state == State::kCycle) res.explanation.push_back("denied: only cyclic paths found");
  }
  if (reads != nullptr) {
    // Symbols below the store's limit are stable in its lineage; others
    // (request-only strings) are kept as text.
    const View& view = overlay.view();
    for (uint64_t p : read_pairs) {
      Sym po = static_cast<Sym>(p >> 32), pr = static_cast<Sym>(p);
      if (po < data.next_sym && pr < data.next_sym) {
        reads->ids.push_back(p);
      } else {
        reads->names.emplace_back(view.Text(po), view.Text(pr));
      }
    }
  }
  return res;
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
  Overlay overlay(internal::TupleSetAccess::Data(tuples));
  RETURN_IF_ERROR(overlay.AddTuples(model_, contextual_tuples));
  const View& view = overlay.view();
  const Sym type_sym = view.Find(type);
  std::vector<std::string> out;
  if (type_sym == 0) return out;  // no object of the type anywhere

  const Sym user_sym = overlay.Intern(user);
  const Sym rel = overlay.Intern(relation);
  if (auto plan = conditions_->chains.find(std::string(type) + "#" + std::string(relation));
      plan != conditions_->chains.end()) {
    if (auto objects = ChainObjects(plan->second, overlay, type_sym, rel, user_sym)) {
      std::vector<std::string_view> texts;
      texts.reserve(objects->size());
      for (Sym o : *objects) texts.push_back(view.Text(o));
      std::sort(texts.begin(), texts.end());
      out.reserve(texts.size());
      for (std::string_view o : texts) out.emplace_back(o);
      return out;
    }
  }

  // Candidates: the objects of `type` connected to the user by a chain of
  // tuples (every grant needs one: direct, userset, computed, tuple-to-
  // userset, intersection and exclusion all rest on a tuple path). From a
  // subject s, a tuple (o, r, s) reaches o; o is then a subject itself (as a
  // tuple-to-userset parent) and so is every userset "o#rel" used as a user.
  boost::unordered_flat_set<Sym> subjects;
  boost::unordered_flat_set<Sym> objects;
  std::vector<Sym> stack;
  std::vector<Sym> candidates;
  auto push = [&](Sym s) {
    if (s != 0 && subjects.insert(s).second) stack.push_back(s);
  };
  auto reach = [&](Sym o) {
    if (!objects.insert(o).second) return;
    if (view.Info(o).type == type_sym) candidates.push_back(o);
    push(o);
    view.ForUsersetsOf(o, push);
  };
  push(user_sym);
  if (!u.is_userset()) push(view.Find(u.type + ":*"));
  if (u.is_userset()) {
    const Sym base = view.Info(user_sym).base;
    if (view.MentionCount(base) > 0) reach(base);  // the self-defining userset
  }
  while (!stack.empty()) {
    Sym s = stack.back();
    stack.pop_back();
    view.ForUser(s, [&](const Tuple& t) {
      reach(t.object);
      return true;
    });
  }
  Evaluator ev(model_, overlay, false, &conditions_->programs, &conditions_->errors, context);  // one memo for all
  ev.set_reach(&conditions_->reach);
  const auto syms = Syms(tuples);
  ev.set_syms(syms.get(), internal::TupleSetAccess::Data(tuples).next_sym);
  // Each candidate's answer does not depend on the order (the memo keeps
  // only path-independent results), so any order gives the same objects; on
  // errors, the one of the first candidate in text order is returned, as a
  // sorted walk would.
  std::vector<std::string_view> allowed;
  std::optional<std::pair<std::string_view, Status>> error;
  constexpr size_t kAhead = 8;  // candidates whose lists are fetched ahead
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (i + kAhead < candidates.size()) ev.Prefetch(candidates[i + kAhead], type_sym, rel);
    const Sym object = candidates[i];
    const Evaluator::Shallow quick = ev.ShallowPass(object, rel, user_sym);
    if (quick == Evaluator::Shallow::kProven) allowed.push_back(view.Text(object));
    if (quick != Evaluator::Shallow::kUnknown) continue;
    Eval e = ev.Check(object, rel, user_sym, 0);
    if (e.state == State::kError) {
      std::string_view text = view.Text(object);
      if (!error || text < error->first) error.emplace(text, std::move(e.error));
    }
    if (e.state == State::kTrue) allowed.push_back(view.Text(object));
  }
  if (error) return std::move(error->second);
  std::sort(allowed.begin(), allowed.end());
  out.reserve(allowed.size());
  for (std::string_view o : allowed) out.emplace_back(o);
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
  Overlay overlay(internal::TupleSetAccess::Data(tuples));
  RETURN_IF_ERROR(overlay.AddTuples(model_, contextual_tuples));
  const View& view = overlay.view();

  const Sym object_sym = overlay.Intern(object);
  const Sym rel = overlay.Intern(relation);
  std::set<std::string> out;
  // One memo per wildcard mode (results differ between the two).
  Evaluator with_wildcards(model_, overlay, false, &conditions_->programs, &conditions_->errors, context);
  Evaluator without_wildcards(model_, overlay, false, &conditions_->programs, &conditions_->errors, context);
  without_wildcards.set_ignore_wildcards(true);
  const auto syms = Syms(tuples);
  with_wildcards.set_syms(syms.get(), internal::TupleSetAccess::Data(tuples).next_sym);
  without_wildcards.set_syms(syms.get(), internal::TupleSetAccess::Data(tuples).next_sym);
  with_wildcards.set_strict_conditions(true);
  without_wildcards.set_strict_conditions(true);
  auto check = [&](Sym user, bool ignore_wildcards) -> Result<bool> {
    Evaluator& ev = ignore_wildcards ? without_wildcards : with_wildcards;
    Eval e = ev.Check(object_sym, rel, user, 0);
    if (e.state == State::kError) return e.error;
    if (ev.condition_error()) return *ev.condition_error();
    return e.state == State::kTrue;
  };
  for (const auto& f : filters) {
    // "type:id" values of the type mentioned by a tuple (as object, user or
    // userset object), and whether "type:*" is a tuple user.
    std::vector<Sym> entities;
    if (Sym t = view.Find(f.type); t != 0) view.EntitiesOfType(t, &entities);
    bool wildcard = false;
    std::erase_if(entities, [&](Sym e) {
      if (view.Info(e).kind != SymKind::kWildcard) return false;
      wildcard = true;
      return true;
    });
    std::vector<std::string> ids;
    ids.reserve(entities.size());
    for (Sym e : entities) ids.emplace_back(view.Text(e));
    std::sort(ids.begin(), ids.end());
    if (!f.relation.empty()) {
      for (const auto& id : ids) {
        std::string us = id + "#" + f.relation;
        ASSIGN_OR_RETURN(bool ok, check(overlay.Intern(us), false));
        if (ok) out.insert(std::move(us));
      }
      continue;
    }
    bool wildcard_granted = false;
    if (wildcard) {
      std::string ws = f.type + ":*";
      ASSIGN_OR_RETURN(wildcard_granted, check(overlay.Intern(ws), false));
      if (wildcard_granted) out.insert(ws);
    }
    for (const auto& id : ids) {
      // Under a granting wildcard, report a concrete user only when it is
      // related in its own right (as OpenFGA's expansion does).
      ASSIGN_OR_RETURN(bool ok, check(overlay.Intern(id), wildcard_granted));
      if (ok) out.insert(id);
    }
  }
  return std::vector<std::string>(out.begin(), out.end());
}

}  // namespace aigis::authz

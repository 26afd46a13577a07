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
//   Conditions are evaluated (a bounded CEL subset, see cel.h).
// * Service: OpenFGA stores (models, tuples, changelog) persisted in the
//   store and served from an in-memory snapshot (the OpenFGA HTTP API over
//   it is in admin/openfga.cc).
// Later: the authorize stage.
//
// Everything here is pure data in, data out; thread-safe for concurrent
// reads of immutable objects.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace aigis::store {
class Store;
}

namespace aigis::authz::internal {
struct TupleSetAccess;
struct ReadSet;
struct ModelSyms;
}

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
  std::string symbol;  // the offending name or token, when there is one
};

// Whether parsing also applies ValidateModel. kSyntaxOnly is for tools that
// convert between forms (as OpenFGA's transformer does); a model to be
// served must be validated.
enum class Validation : uint8_t { kValidate, kSyntaxOnly };

// The modeling language (schema 1.1). On failure returns kInvalidArgument
// whose message is the first error, and appends every error to `errors`
// when given. Parsing also validates (ValidateModel) unless told otherwise.
Result<Model> ParseDsl(std::string_view dsl, std::vector<ModelError>* errors = nullptr,
                       Validation validation = Validation::kValidate);
// The model in the modeling language, formatted as OpenFGA's transformer
// formats it (so that DSL -> model -> DSL round-trips).
std::string ToDsl(const Model& model);
// OpenFGA's JSON form ({"schema_version","type_definitions","conditions"}),
// as the API and the SDKs exchange it.
Result<Model> ParseJson(std::string_view json, std::vector<ModelError>* errors = nullptr,
                        Validation validation = Validation::kValidate);
std::string ToJson(const Model& model);
// OpenFGA's semantic rules: defined types/relations/conditions, valid type
// restrictions, tuple-to-userset on direct relations, no unresolvable cycles.
Status ValidateModel(const Model& model, std::vector<ModelError>* errors = nullptr);

// --------------------------------------------------------------- engine ----

// One relationship tuple. `object` is "type:id"; `user` is "type:id", the
// wildcard "type:*" (every user of that type) or the userset
// "type:id#relation" (every user that has `relation` on type:id).
// `condition` names a model condition ("" for none): the tuple grants only
// when the condition's CEL expression holds over the merged context (the
// tuple's `condition_context` wins over the request's `context` on a
// conflict, as in OpenFGA). A needed condition whose parameters are missing
// from both, or that fails to evaluate, makes the request fail with
// "validation_error" unless another path grants.
struct TupleKey {
  std::string object;
  std::string relation;
  std::string user;
  std::string condition;
  // The condition's context as a JSON object text ("" = none); part of the
  // tuple's value, not of its identity (OpenFGA: one tuple per key).
  std::string condition_context;
  bool operator==(const TupleKey&) const = default;
  auto operator<=>(const TupleKey&) const = default;
  std::string ToString() const;  // "object#relation@user"
};

// Errors from the engine carry OpenFGA's error name as a message prefix
// ("validation_error: ...") so that an API layer can report OpenFGA's numeric
// code. OpenFgaErrorCode maps a non-OK status to that code: validation_error
// 2000, authorization_model_resolution_too_complex 2002,
// write_failed_due_to_invalid_input 2017, type_not_found 2021,
// relation_not_found 2022, invalid_tuple 2027; 0 when the prefix is unknown.
int OpenFgaErrorCode(const Status& status);

// Validates a tuple against a model the way OpenFGA's Write does: the object
// type and relation exist, the relation accepts direct tuples, and the user's
// form (`type`, `type:*`, `type#relation`, with or without a condition) is
// one of the relation's direct type restrictions. kInvalidArgument with the
// "invalid_tuple" tag otherwise.
Status ValidateTuple(const Model& model, const TupleKey& tuple);

// A read-only view of one stored tuple; the strings point into the TupleSet
// version it came from (valid while that version is alive: see TupleSet).
struct TupleView {
  std::string_view object;
  std::string_view relation;
  std::string_view user;
  std::string_view condition;
  std::string_view condition_context;
  int64_t timestamp_ms = 0;  // as given to the Write that added it
  TupleKey ToKey() const;
  std::string ToString() const { return ToKey().ToString(); }
};

// An in-memory set of tuples, compact at millions of tuples: strings are
// interned into 32-bit symbols and tuples stored as small records in
// immutable, shared segments with hash indexes (object#relation -> tuples,
// with the userset tuples apart; user -> tuples; object#relation@user ->
// tuple; type -> entities). See tuples.cc for the layout.
//
// Copying a TupleSet is O(1) and yields an immutable snapshot: Write never
// changes a segment another version can see; it adds a small segment (its
// tuples, tombstones for the deleted ones, the new symbols) and merges the
// newest segments when they grow (amortised O(log n) per written tuple, an
// occasional O(n) merge into the base). A TupleSet object must not be
// written while another thread uses that same object; concurrent const use,
// and use of distinct copies, is safe; readers never lock.
class TupleSet {
 public:
  TupleSet();

  // Applies deletes then writes atomically (all or nothing), validating each
  // write against `model`. Fails (tag "write_failed_due_to_invalid_input")
  // when a written tuple already exists, a deleted one does not, or a tuple
  // appears twice in the request; "invalid_tuple" when a write does not fit
  // the model. Deletes are not validated against the model (OpenFGA allows
  // deleting tuples that an older model admitted). Written tuples carry
  // `timestamp_ms`. A successful Write advances revision() by one.
  Status Write(const Model& model, const std::vector<TupleKey>& writes,
               const std::vector<TupleKey>& deletes = {}, int64_t timestamp_ms = 0);

  // Lookups return views into this version; they stay valid until the next
  // Write on this object (a copy keeps its version alive).
  size_t size() const;
  bool Contains(const TupleKey& tuple) const;  // by object, relation, user: O(1)
  std::optional<TupleView> Find(const TupleKey& tuple) const;  // likewise
  // Tuples with this object and relation (any user), in insertion order.
  std::vector<TupleView> ByObjectRelation(std::string_view object, std::string_view relation) const;
  // Tuples whose user is exactly `user`, in insertion order.
  std::vector<TupleView> ByUser(std::string_view user) const;
  // Every tuple, in insertion order (O(size): prefer ForEach).
  std::vector<TupleView> All() const;
  // Calls `f` on every tuple in insertion order until it returns false.
  void ForEach(const std::function<bool(const TupleView&)>& f) const;

  // Successful Writes in this lineage (0 for a new set).
  uint64_t revision() const;
  // The revision of the last Write that added or removed a tuple with this
  // object and relation (0 if none ever did; kept when the list empties).
  uint64_t ModifiedAt(std::string_view object, std::string_view relation) const;
  // Approximate heap bytes held by this version (shared segments included).
  size_t MemoryUsage() const;
  // Bytes that every TupleSet of the process holds in mappings of its own
  // (its large arrays, on huge pages where the kernel allows: see
  // engine_internal.h), which malloc statistics do not count.
  static size_t MappedBytes();

  struct Data;  // internal

 private:
  friend struct internal::TupleSetAccess;
  std::shared_ptr<const Data> data_;
};

struct CheckRequest {
  TupleKey tuple;  // object, relation, user (condition ignored)
  // Added to the store for this request only; validated like writes
  // (failure: kInvalidArgument, "invalid_tuple"). Duplicates are ignored.
  std::vector<TupleKey> contextual_tuples;
  std::string context;   // request context for conditions: JSON object text ("" = none)
  bool explain = false;  // fill CheckResult::explanation
};

struct CheckResult {
  bool allowed = false;
  // With CheckRequest::explain: for an allow, the chain from the request to
  // the granting tuple ("document:1#viewer <- computed writer", "tuple
  // document:1#writer@user:a"); for a deny, the first steps tried (bounded).
  std::vector<std::string> explanation;
  int depth = 0;  // deepest resolution depth reached (dispatches)
};

// The user side of ListUsers: a type, optionally with a relation
// ("group#member" asks for usersets).
struct UserFilter {
  std::string type;
  std::string relation;
};

// Evaluates OpenFGA (schema 1.1) semantics over a Model: direct tuples,
// wildcards, usersets, computed usersets, tuple-to-userset, union,
// intersection and exclusion, and conditions (CEL, see cel.h: evaluated with
// bounded cost). Tuples that the current model no longer admits are ignored
// (including a tuple whose condition does not match the type restriction).
// A cycle resolves to "not allowed" (never an error), like OpenFGA; a
// resolution deeper than kMaxDepth dispatches fails with
// "authorization_model_resolution_too_complex". Immutable and thread-safe.
//
// Work is bounded by what can matter (engine.cc): a sub-check whose user is
// in none of the tuple lists its rewrites can end in is "not allowed"
// without a walk (unless a conditional userset or tuple-to-userset
// restriction lies under it), so a depth-limit error such an unwalkable
// sub-check would have met is not reported; ListObjects checks only the
// objects connected to the user by tuples. CheckResult::depth counts the
// dispatches actually walked.
class Engine {
 public:
  static constexpr int kMaxDepth = 25;
  // Compiles the model's condition expressions. Prefer Create, which reports
  // an expression that does not compile; with the constructor such a
  // condition fails every request that needs it ("validation_error").
  explicit Engine(Model model);
  // "validation_error" when a condition's expression does not parse or names
  // an undeclared parameter.
  static Result<Engine> Create(Model model);

  const Model& model() const { return model_; }

  // Request errors (unknown type/relation, malformed user) are
  // "validation_error".
  Result<CheckResult> Check(const TupleSet& tuples, const CheckRequest& request) const;
  // ListObjects / ListUsers take the request `context` for conditions (JSON
  // object text, "" = none). Like OpenFGA, ListUsers evaluates every
  // condition it meets and fails ("validation_error") on any condition error
  // (e.g. missing parameters) even where another path grants; ListObjects
  // fails only where the answer depends on it, like Check.
  // Objects "type:id" of `type` on which `user` has `relation`, sorted.
  // Where every rewrite under the relation is a union of direct, computed
  // and tuple-to-userset steps with no conditional restriction, the objects
  // are derived outwards from the user's tuples (forward chaining, no Check
  // per object); an object whose Check would exhaust the depth limit without
  // finding a grant is then simply not listed, while a grant that needs more
  // than kMaxDepth fails the request as Check does. Otherwise the candidates
  // (the objects reachable from the user, its `type:*` and, for a userset
  // user, its object, through the user -> tuples index) are checked one by one.
  // Unknown type: "type_not_found"; unknown relation: "relation_not_found";
  // malformed or unknown user: "validation_error".
  Result<std::vector<std::string>> ListObjects(const TupleSet& tuples, std::string_view type,
                                               std::string_view relation, std::string_view user,
                                               const std::vector<TupleKey>& contextual_tuples = {},
                                               std::string_view context = {}) const;
  // Users related to `object` by `relation` that match one of `filters`:
  // "type:id", "type:*" (when a wildcard grants) and "type:id#rel", sorted.
  Result<std::vector<std::string>> ListUsers(const TupleSet& tuples, std::string_view object,
                                             std::string_view relation, const std::vector<UserFilter>& filters,
                                             const std::vector<TupleKey>& contextual_tuples = {},
                                             std::string_view context = {}) const;

 private:
  friend class CheckCache;
  struct Conditions;  // compiled expressions (engine.cc)
  // Check that also reports the tuple lists it read (for CheckCache).
  Result<CheckResult> Check(const TupleSet& tuples, const CheckRequest& request, internal::ReadSet* reads) const;
  // The model's names as symbols of one store lineage (engine.cc), shared
  // by the requests on it; reset (not shared) when the Engine is copied.
  struct ModelSymsSlot {
    ModelSymsSlot() = default;
    ModelSymsSlot(const ModelSymsSlot&) {}
    ModelSymsSlot& operator=(const ModelSymsSlot&) {
      std::lock_guard<std::mutex> l(mu);
      current.reset();
      return *this;
    }
    std::mutex mu;
    std::shared_ptr<const internal::ModelSyms> current;
  };
  std::shared_ptr<const internal::ModelSyms> Syms(const TupleSet& tuples) const;
  Model model_;
  std::shared_ptr<const Conditions> conditions_;
  mutable ModelSymsSlot syms_;
};

// Caches Check results for ONE store lineage (a TupleSet and the versions
// written from it) across revisions. An entry remembers the revision it was
// computed at and the (object, relation) tuple lists its evaluation read
// (contextual-tuple lists included); a lookup hits only when the snapshot is
// of the same lineage, not older than the entry, and none of those lists was
// modified since (TupleSet::ModifiedAt(o, r) <= entry revision), so a write
// invalidates exactly the entries whose answer it could change. Key: model
// id, object, relation, user, contextual tuples (order-insensitive), context
// text and the explain flag. Errors are not cached. Thread-safe (sharded
// mutexes); bounded by `capacity` entries (LRU per shard). The model id must
// name one immutable model (as Service's ids do).
class CheckCache {
 public:
  explicit CheckCache(size_t capacity = 100000);
  ~CheckCache();
  CheckCache(const CheckCache&) = delete;
  CheckCache& operator=(const CheckCache&) = delete;

  // engine.Check(tuples, request) through the cache; `hit` (optional) tells
  // whether the answer came from it.
  Result<CheckResult> Check(const Engine& engine, std::string_view model_id, const TupleSet& tuples,
                            const CheckRequest& request, bool* hit = nullptr);
  size_t size() const;
  void Clear();

 private:
  struct Shard;
  size_t capacity_per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

// -------------------------------------------------------------- Service ----

// OpenFGA stores persisted in a store::Store (module "authz"): stores,
// authorization models, tuples and the changelog, per tenant. Everything is
// loaded into memory at Open; readers use an immutable snapshot (never lock),
// writers persist in one transaction and then publish a new snapshot.
// Errors carry OpenFGA's error name as a message prefix, like the engine's
// ("store_id_not_found: ...", "authorization_model_not_found: ...").
struct StoreInfo {
  std::string id;  // ULID
  std::string name;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

struct ModelInfo {
  std::string id;  // ULID
  std::shared_ptr<const Engine> engine;
  int64_t created_at_ms = 0;
};

struct TupleRecord {
  TupleKey key;
  int64_t timestamp_ms = 0;  // when it was written
};

struct TupleChange {
  TupleKey key;
  bool write = true;  // false: a delete
  int64_t timestamp_ms = 0;
};

template <typename T>
struct Page {
  std::vector<T> items;
  std::string continuation_token;  // "" when there is nothing more
};

// What a read-only query needs: the model's engine and a tuple snapshot.
struct StoreView {
  std::string model_id;
  std::shared_ptr<const Engine> engine;
  TupleSet tuples;
};

// Service::Check's answer.
struct CheckOutcome {
  CheckResult result;
  std::string model_id;   // the model that answered
  uint64_t revision = 0;  // the tuple revision (TupleSet::revision) it answered at
  bool cached = false;    // served by the store's CheckCache
};

class Service {
 public:
  static constexpr int kDefaultPageSize = 50;
  static constexpr int kMaxPageSize = 100;

  // Migrates and loads. `store` must outlive the Service.
  static Result<std::shared_ptr<Service>> Open(store::Store& store);
  ~Service();

  Result<StoreInfo> CreateStore(const std::string& tenant, const std::string& name);
  Result<Page<StoreInfo>> ListStores(const std::string& tenant, int page_size, const std::string& token) const;
  Result<StoreInfo> GetStore(const std::string& tenant, const std::string& store_id) const;
  Status DeleteStore(const std::string& tenant, const std::string& store_id);

  // Parses (OpenFGA JSON) and validates; returns the new model's id.
  Result<std::string> WriteModel(const std::string& tenant, const std::string& store_id, std::string_view json);
  // Newest first.
  Result<Page<ModelInfo>> ListModels(const std::string& tenant, const std::string& store_id, int page_size,
                                     const std::string& token) const;
  // model_id "" = the latest model.
  Result<ModelInfo> GetModel(const std::string& tenant, const std::string& store_id,
                             const std::string& model_id) const;

  // Validates against the model (model_id "" = latest), persists tuples and
  // changelog in one transaction, then publishes.
  Status Write(const std::string& tenant, const std::string& store_id, const std::string& model_id,
               const std::vector<TupleKey>& writes, const std::vector<TupleKey>& deletes);
  // Filter: object "type:id" or "type:" (every object of the type), relation
  // and user optional ("" = any). Without an object, every tuple (then
  // relation/user must be empty... they are applied anyway).
  Result<Page<TupleRecord>> Read(const std::string& tenant, const std::string& store_id, const TupleKey& filter,
                                 int page_size, const std::string& token) const;
  // Oldest first; `type` "" = every object type. The continuation token is
  // returned even at the end, so that a caller can poll from there.
  Result<Page<TupleChange>> ReadChanges(const std::string& tenant, const std::string& store_id,
                                        const std::string& type, int page_size, const std::string& token) const;

  Result<StoreView> View(const std::string& tenant, const std::string& store_id, const std::string& model_id) const;

  // The first store named exactly `name` (oldest first);
  // "store_id_not_found: ..." when there is none.
  Result<StoreInfo> FindStoreByName(const std::string& tenant, const std::string& name) const;

  // Check through the store's CheckCache (one per store, kept across its
  // Writes, dropped with the store). model_id "" = the latest model.
  Result<CheckOutcome> Check(const std::string& tenant, const std::string& store_id, const std::string& model_id,
                             const CheckRequest& request) const;

  struct Impl;

 private:
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A new ULID (26 Crockford base32 characters, time-ordered, monotonic within
// this process).
std::string NewUlid();

// ------------------------------------------------------------ Defaults ----

// The default model shipped in rules/authz/model.fga (compiled in).
std::string_view DefaultModelDsl();

// Parses the OpenFGA tuple string form "object#relation@user" (as the fga
// CLI and docs write tuples). kInvalidArgument when it is not of that form.
Result<TupleKey> ParseTupleString(std::string_view text);

// Makes sure the store `name` exists in `tenant`, that its latest model is
// `model_dsl` (writing a new model version when it differs) and that every
// seed tuple exists (writing the missing ones in one batch). Returns the
// store id. Used at start by the gateway's authorize stage.
Result<std::string> EnsureStore(Service& service, const std::string& tenant, const std::string& name,
                                std::string_view model_dsl, const std::vector<std::string>& seed_tuples);

}  // namespace aigis::authz

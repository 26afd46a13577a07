// Service: OpenFGA stores, models, tuples and the changelog persisted in the
// store ("authz" module), served from an immutable in-memory snapshot.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <random>

#include "authz/authz.h"
#include "crypto/crypto.h"
#include "store/store.h"

namespace aigis::authz {

namespace {

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> kMigrations = {
      {1, "stores, models, tuples, changes", R"sql(
CREATE TABLE authz_stores (
  tenant TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, deleted_at INTEGER,
  PRIMARY KEY (tenant, id));
CREATE TABLE authz_models (
  tenant TEXT NOT NULL, store_id TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, store_id, id));
CREATE TABLE authz_tuples (
  tenant TEXT NOT NULL, store_id TEXT NOT NULL, object TEXT NOT NULL, relation TEXT NOT NULL,
  "user" TEXT NOT NULL, condition TEXT NOT NULL DEFAULT '', condition_context TEXT NOT NULL DEFAULT '',
  inserted_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, store_id, object, relation, "user"));
CREATE TABLE authz_changes (
  tenant TEXT NOT NULL, store_id TEXT NOT NULL, seq INTEGER NOT NULL, object TEXT NOT NULL,
  relation TEXT NOT NULL, "user" TEXT NOT NULL, condition TEXT NOT NULL DEFAULT '',
  operation TEXT NOT NULL, timestamp INTEGER NOT NULL,
  PRIMARY KEY (tenant, store_id, seq));
)sql"},
  };
  return kMigrations;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status StoreNotFound(const std::string& id) {
  return NotFound(fmt::format("store_id_not_found: store '{}' not found", id.substr(0, 64)));
}

std::string EncodeToken(int64_t n) { return crypto::Base64UrlEncode(std::to_string(n)); }

Result<int64_t> DecodeToken(const std::string& token) {
  if (token.empty()) return int64_t{0};
  auto bytes = crypto::Base64UrlDecode(token);
  int64_t n = 0;
  if (bytes.ok()) {
    const std::string& b = *bytes;
    auto [p, ec] = std::from_chars(b.data(), b.data() + b.size(), n);
    if (ec == std::errc() && p == b.data() + b.size() && n >= 0) return n;
  }
  return InvalidArgument("invalid_continuation_token: invalid continuation token");
}

Result<int> PageSize(int page_size) {
  if (page_size == 0) return Service::kDefaultPageSize;
  if (page_size < 1 || page_size > Service::kMaxPageSize) {
    return InvalidArgument(fmt::format("validation_error: page_size must be 1..{}", Service::kMaxPageSize));
  }
  return page_size;
}

struct StoreState {
  StoreInfo info;
  std::vector<ModelInfo> models;  // oldest first
  TupleSet tuples;  // with each tuple's insertion time
  // Shared by every version of the store (entries are checked against the
  // tuple revision they were computed at).
  std::shared_ptr<CheckCache> cache = std::make_shared<CheckCache>();
  int64_t next_seq = 1;

  const ModelInfo* FindModel(const std::string& id) const {
    if (id.empty()) return models.empty() ? nullptr : &models.back();
    for (const auto& m : models) {
      if (m.id == id) return &m;
    }
    return nullptr;
  }
};

using StoreMap = std::map<std::pair<std::string, std::string>, std::shared_ptr<const StoreState>>;

}  // namespace

std::string NewUlid() {
  static std::mutex mu;
  static int64_t last_ms = -1;
  static uint64_t hi = 0, lo = 0;  // 80 random bits: hi holds 16
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mu);
  int64_t ms = NowMs();
  if (ms <= last_ms) {
    ms = last_ms;
    if (++lo == 0) hi = (hi + 1) & 0xffff;
  } else {
    last_ms = ms;
    hi = rng() & 0xffff;
    lo = rng();
  }
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  // 128 bits: 48 time, 80 random; 26 chars of 5 bits (the first has 3).
  unsigned __int128 v = (static_cast<unsigned __int128>(static_cast<uint64_t>(ms)) << 80) |
                        (static_cast<unsigned __int128>(hi) << 64) | lo;
  std::string out(26, '0');
  for (int i = 25; i >= 0; --i) {
    out[i] = kAlphabet[static_cast<int>(v & 31)];
    v >>= 5;
  }
  return out;
}

struct Service::Impl {
  store::Store* db = nullptr;
  std::mutex write_mu;  // serializes writers
  std::atomic<std::shared_ptr<const StoreMap>> state{std::make_shared<const StoreMap>()};

  std::shared_ptr<const StoreMap> Snapshot() const { return state.load(std::memory_order_acquire); }

  Result<std::shared_ptr<const StoreState>> Find(const std::string& tenant, const std::string& id) const {
    auto snap = Snapshot();
    auto it = snap->find({tenant, id});
    if (it == snap->end()) return StoreNotFound(id);
    return it->second;
  }

  void Publish(const std::string& tenant, const std::string& id, std::shared_ptr<const StoreState> st) {
    auto next = std::make_shared<StoreMap>(*Snapshot());
    if (st) {
      (*next)[{tenant, id}] = std::move(st);
    } else {
      next->erase({tenant, id});
    }
    state.store(std::move(next), std::memory_order_release);
  }

  Status Load() {
    auto next = std::make_shared<StoreMap>();
    std::map<std::pair<std::string, std::string>, std::shared_ptr<StoreState>> work;
    ASSIGN_OR_RETURN(auto stores, db->Query("SELECT tenant, id, name, created_at, updated_at FROM authz_stores "
                                            "WHERE deleted_at IS NULL"));
    for (const auto& r : stores) {
      auto st = std::make_shared<StoreState>();
      st->info = {r.Text(1), r.Text(2), r.Int(3), r.Int(4)};
      work[{r.Text(0), r.Text(1)}] = st;
    }
    ASSIGN_OR_RETURN(auto models, db->Query("SELECT tenant, store_id, id, json, created_at FROM authz_models "
                                            "ORDER BY tenant, store_id, id"));
    for (const auto& r : models) {
      auto it = work.find({r.Text(0), r.Text(1)});
      if (it == work.end()) continue;
      auto m = ParseJson(r.Text(3), nullptr, Validation::kSyntaxOnly);
      if (!m.ok()) return Internal(fmt::format("authz: stored model {} does not parse: {}", r.Text(2), m.status().message()));
      it->second->models.push_back({r.Text(2), std::make_shared<const Engine>(std::move(m).value()), r.Int(4)});
    }
    ASSIGN_OR_RETURN(auto tuples, db->Query("SELECT tenant, store_id, object, relation, \"user\", condition, "
                                            "condition_context, inserted_at FROM authz_tuples "
                                            "ORDER BY tenant, store_id, inserted_at, object, relation, \"user\""));
    std::map<std::pair<std::string, std::string>, std::vector<TupleKey>> by_store;
    std::map<std::pair<std::string, std::string>, std::vector<int64_t>> times;  // parallel to by_store
    for (const auto& r : tuples) {
      TupleKey t{r.Text(2), r.Text(3), r.Text(4), r.Text(5), r.Text(6)};
      times[{r.Text(0), r.Text(1)}].push_back(r.Int(7));
      by_store[{r.Text(0), r.Text(1)}].push_back(std::move(t));
    }
    // Stored tuples were validated against the model of their day; a later
    // model may no longer admit them (the engine ignores those), so they are
    // loaded through a model built from their own shapes, which admits them.
    for (auto& [key, list] : by_store) {
      auto it = work.find(key);
      if (it == work.end()) continue;
      Model permissive;
      for (const auto& t : list) {
        std::string type = t.object.substr(0, t.object.find(':'));
        TypeDefinition* td = nullptr;
        for (auto& d : permissive.types) {
          if (d.name == type) td = &d;
        }
        if (!td) {
          permissive.types.push_back({type, {}, 0});
          td = &permissive.types.back();
        }
        Relation* rel = nullptr;
        for (auto& r : td->relations) {
          if (r.name == t.relation) rel = &r;
        }
        if (!rel) {
          td->relations.push_back({t.relation, Rewrite{}, {}, 0});
          rel = &td->relations.back();
        }
        TypeRestriction tr;
        std::string u = t.user;
        size_t hash = u.find('#');
        size_t colon = u.find(':');
        tr.type = u.substr(0, std::min(colon, hash));
        if (hash != std::string::npos) tr.relation = u.substr(hash + 1);
        if (u.size() >= 2 && u.ends_with(":*")) tr.wildcard = true;
        tr.condition = t.condition;
        if (std::find(rel->directly_related.begin(), rel->directly_related.end(), tr) == rel->directly_related.end()) {
          rel->directly_related.push_back(tr);
        }
      }
      // Types named only as users must exist too.
      for (const auto& t : list) {
        std::string ut = t.user.substr(0, std::min(t.user.find(':'), t.user.find('#')));
        bool found = false;
        for (const auto& d : permissive.types) found = found || d.name == ut;
        if (!found) permissive.types.push_back({ut, {}, 0});
      }
      for (const auto& t : list) {
        size_t hash = t.user.find('#');
        if (hash == std::string::npos) continue;
        std::string ut = t.user.substr(0, std::min(t.user.find(':'), hash));
        std::string rel = t.user.substr(hash + 1);
        for (auto& d : permissive.types) {
          if (d.name == ut && !d.Find(rel)) d.relations.push_back({rel, Rewrite{}, {{"user", "", false, ""}}, 0});
        }
      }
      for (const auto& t : list) {
        if (t.condition.empty() || permissive.FindCondition(t.condition)) continue;
        const Condition* found = nullptr;  // the newest model's definition, for its parameters
        for (auto m = it->second->models.rbegin(); m != it->second->models.rend() && !found; ++m) {
          found = m->engine->model().FindCondition(t.condition);
        }
        permissive.conditions.push_back(found ? *found : Condition{t.condition, {}, "true", 0});
      }
      // One Write per run of equal insertion times (the rows are in that
      // order), so that each tuple keeps its time.
      const std::vector<int64_t>& at = times[key];
      for (size_t begin = 0; begin < list.size();) {
        size_t end = begin;
        while (end < list.size() && at[end] == at[begin]) ++end;
        std::vector<TupleKey> run(list.begin() + begin, list.begin() + end);
        Status st = it->second->tuples.Write(permissive, run, {}, at[begin]);
        if (!st.ok()) {
          // One at a time, skipping what no longer loads (it stays in the
          // database; the engine would ignore it anyway).
          for (const auto& t : run) {
            if (Status one = it->second->tuples.Write(permissive, {t}, {}, at[begin]); !one.ok()) {
              spdlog::warn("authz: store {}: stored tuple {} not loaded: {}", key.second, t.ToString(), one.message());
            }
          }
        }
        begin = end;
      }
    }
    ASSIGN_OR_RETURN(auto seqs, db->Query("SELECT tenant, store_id, MAX(seq) FROM authz_changes GROUP BY tenant, store_id"));
    for (const auto& r : seqs) {
      auto it = work.find({r.Text(0), r.Text(1)});
      if (it != work.end()) it->second->next_seq = r.Int(2) + 1;
    }
    for (auto& [k, v] : work) (*next)[k] = std::move(v);
    state.store(std::move(next), std::memory_order_release);
    return {};
  }
};

Service::Service(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Service::~Service() = default;

Result<std::shared_ptr<Service>> Service::Open(store::Store& store) {
  RETURN_IF_ERROR(store.Migrate("authz", Migrations()));
  auto impl = std::make_unique<Impl>();
  impl->db = &store;
  RETURN_IF_ERROR(impl->Load());
  return std::shared_ptr<Service>(new Service(std::move(impl)));
}

Result<StoreInfo> Service::CreateStore(const std::string& tenant, const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgument("validation_error: name must be 1..64 characters");
  }
  std::lock_guard lock(impl_->write_mu);
  auto st = std::make_shared<StoreState>();
  int64_t now = NowMs();
  st->info = {NewUlid(), name, now, now};
  RETURN_IF_ERROR(impl_->db
                      ->Exec("INSERT INTO authz_stores (tenant, id, name, created_at, updated_at) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)",
                             {tenant, st->info.id, name, now, now})
                      .status());
  StoreInfo info = st->info;
  impl_->Publish(tenant, info.id, std::move(st));
  return info;
}

Result<Page<StoreInfo>> Service::ListStores(const std::string& tenant, int page_size, const std::string& token) const {
  ASSIGN_OR_RETURN(int n, PageSize(page_size));
  ASSIGN_OR_RETURN(int64_t offset, DecodeToken(token));
  auto snap = impl_->Snapshot();
  std::vector<StoreInfo> all;
  for (const auto& [k, v] : *snap) {
    if (k.first == tenant) all.push_back(v->info);
  }
  std::sort(all.begin(), all.end(), [](const StoreInfo& a, const StoreInfo& b) { return a.id < b.id; });
  Page<StoreInfo> page;
  for (size_t i = static_cast<size_t>(offset); i < all.size() && page.items.size() < static_cast<size_t>(n); ++i) {
    page.items.push_back(all[i]);
  }
  if (static_cast<size_t>(offset) + page.items.size() < all.size()) {
    page.continuation_token = EncodeToken(offset + static_cast<int64_t>(page.items.size()));
  }
  return page;
}

Result<StoreInfo> Service::GetStore(const std::string& tenant, const std::string& store_id) const {
  ASSIGN_OR_RETURN(auto st, impl_->Find(tenant, store_id));
  return st->info;
}

Status Service::DeleteStore(const std::string& tenant, const std::string& store_id) {
  std::lock_guard lock(impl_->write_mu);
  RETURN_IF_ERROR(impl_->Find(tenant, store_id).status());
  int64_t now = NowMs();
  RETURN_IF_ERROR(impl_->db
                      ->Exec("UPDATE authz_stores SET deleted_at = ?3, updated_at = ?3 WHERE tenant = ?1 AND id = ?2",
                             {tenant, store_id, now})
                      .status());
  impl_->Publish(tenant, store_id, nullptr);
  return {};
}

Result<std::string> Service::WriteModel(const std::string& tenant, const std::string& store_id, std::string_view json) {
  std::vector<ModelError> errors;
  auto model = ParseJson(json, &errors);
  if (!model.ok()) {
    std::string msg = model.status().message();
    if (OpenFgaErrorCode(model.status()) == 0) msg = "invalid_authorization_model: " + msg;
    return Status(Code::kInvalidArgument, msg);
  }
  // Engine::Create also compiles the conditions: a model whose CEL does not
  // parse or type-check is refused here, not at the first Check.
  auto engine = Engine::Create(std::move(model).value());
  if (!engine.ok()) return engine.status();
  std::lock_guard lock(impl_->write_mu);
  ASSIGN_OR_RETURN(auto cur, impl_->Find(tenant, store_id));
  auto st = std::make_shared<StoreState>(*cur);
  ModelInfo mi{NewUlid(), std::make_shared<const Engine>(std::move(engine).value()), NowMs()};
  RETURN_IF_ERROR(impl_->db
                      ->Exec("INSERT INTO authz_models (tenant, store_id, id, json, created_at) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)",
                             {tenant, store_id, mi.id, ToJson(mi.engine->model()), mi.created_at_ms})
                      .status());
  std::string id = mi.id;
  st->models.push_back(std::move(mi));
  impl_->Publish(tenant, store_id, std::move(st));
  return id;
}

Result<Page<ModelInfo>> Service::ListModels(const std::string& tenant, const std::string& store_id, int page_size,
                                            const std::string& token) const {
  ASSIGN_OR_RETURN(int n, PageSize(page_size));
  ASSIGN_OR_RETURN(int64_t offset, DecodeToken(token));
  ASSIGN_OR_RETURN(auto st, impl_->Find(tenant, store_id));
  Page<ModelInfo> page;
  size_t total = st->models.size();
  for (size_t i = static_cast<size_t>(offset); i < total && page.items.size() < static_cast<size_t>(n); ++i) {
    page.items.push_back(st->models[total - 1 - i]);
  }
  if (static_cast<size_t>(offset) + page.items.size() < total) {
    page.continuation_token = EncodeToken(offset + static_cast<int64_t>(page.items.size()));
  }
  return page;
}

namespace {

// The model a request names ("" = the latest), or OpenFGA's error.
Result<const ModelInfo*> ModelOf(const StoreState& st, const std::string& model_id) {
  const ModelInfo* m = st.FindModel(model_id);
  if (m != nullptr) return m;
  if (model_id.empty()) {
    return InvalidArgument("latest_authorization_model_not_found: the store has no authorization model");
  }
  return InvalidArgument(
      fmt::format("authorization_model_not_found: authorization model '{}' not found", model_id.substr(0, 64)));
}

}  // namespace

Result<ModelInfo> Service::GetModel(const std::string& tenant, const std::string& store_id,
                                    const std::string& model_id) const {
  ASSIGN_OR_RETURN(auto st, impl_->Find(tenant, store_id));
  ASSIGN_OR_RETURN(const ModelInfo* m, ModelOf(*st, model_id));
  return *m;
}

Result<StoreView> Service::View(const std::string& tenant, const std::string& store_id,
                                const std::string& model_id) const {
  ASSIGN_OR_RETURN(auto st, impl_->Find(tenant, store_id));
  ASSIGN_OR_RETURN(const ModelInfo* m, ModelOf(*st, model_id));
  return StoreView{m->id, m->engine, st->tuples};
}

Result<StoreInfo> Service::FindStoreByName(const std::string& tenant, const std::string& name) const {
  auto snap = impl_->Snapshot();
  const StoreInfo* best = nullptr;
  for (auto it = snap->lower_bound({tenant, ""}); it != snap->end() && it->first.first == tenant; ++it) {
    const StoreInfo& info = it->second->info;
    if (info.name != name) continue;
    if (best == nullptr || info.created_at_ms < best->created_at_ms ||
        (info.created_at_ms == best->created_at_ms && info.id < best->id)) {
      best = &info;
    }
  }
  if (best == nullptr) {
    return NotFound(fmt::format("store_id_not_found: no store named '{}'", name.substr(0, 64)));
  }
  return *best;
}

Result<CheckOutcome> Service::Check(const std::string& tenant, const std::string& store_id,
                                    const std::string& model_id, const CheckRequest& request) const {
  ASSIGN_OR_RETURN(auto st, impl_->Find(tenant, store_id));
  ASSIGN_OR_RETURN(const ModelInfo* m, ModelOf(*st, model_id));
  CheckOutcome out;
  ASSIGN_OR_RETURN(out.result, st->cache->Check(*m->engine, m->id, st->tuples, request, &out.cached));
  out.model_id = m->id;
  out.revision = st->tuples.revision();
  return out;
}

Status Service::Write(const std::string& tenant, const std::string& store_id, const std::string& model_id,
                      const std::vector<TupleKey>& writes, const std::vector<TupleKey>& deletes) {
  if (writes.empty() && deletes.empty()) {
    return InvalidArgument("invalid_write_input: a write needs at least one write or delete");
  }
  std::lock_guard lock(impl_->write_mu);
  ASSIGN_OR_RETURN(auto cur, impl_->Find(tenant, store_id));
  ASSIGN_OR_RETURN(const ModelInfo* m, ModelOf(*cur, model_id));
  auto st = std::make_shared<StoreState>(*cur);
  const int64_t now = NowMs();
  RETURN_IF_ERROR(st->tuples.Write(m->engine->model(), writes, deletes, now));
  int64_t seq = st->next_seq;
  // Deleted tuples' conditions, for the changelog.
  std::vector<TupleKey> deleted;
  for (const auto& d : deletes) {
    auto found = cur->tuples.Find(d);
    deleted.push_back(found ? found->ToKey() : d);
  }
  Status persisted = impl_->db->Transaction([&](store::Session& s) -> Status {
    for (const auto& d : deleted) {
      RETURN_IF_ERROR(s.Exec("DELETE FROM authz_tuples WHERE tenant = ?1 AND store_id = ?2 AND object = ?3 AND "
                             "relation = ?4 AND \"user\" = ?5",
                             {tenant, store_id, d.object, d.relation, d.user})
                          .status());
      RETURN_IF_ERROR(s.Exec("INSERT INTO authz_changes (tenant, store_id, seq, object, relation, \"user\", condition, "
                             "operation, timestamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'delete', ?8)",
                             {tenant, store_id, seq++, d.object, d.relation, d.user, d.condition, now})
                          .status());
    }
    for (const auto& w : writes) {
      RETURN_IF_ERROR(s.Exec("INSERT INTO authz_tuples (tenant, store_id, object, relation, \"user\", condition, "
                             "condition_context, inserted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                             {tenant, store_id, w.object, w.relation, w.user, w.condition, w.condition_context, now})
                          .status());
      RETURN_IF_ERROR(s.Exec("INSERT INTO authz_changes (tenant, store_id, seq, object, relation, \"user\", condition, "
                             "operation, timestamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'write', ?8)",
                             {tenant, store_id, seq++, w.object, w.relation, w.user, w.condition, now})
                          .status());
    }
    return {};
  });
  RETURN_IF_ERROR(persisted);
  st->next_seq = seq;
  impl_->Publish(tenant, store_id, std::move(st));
  return {};
}

Result<Page<TupleRecord>> Service::Read(const std::string& tenant, const std::string& store_id,
                                        const TupleKey& filter, int page_size, const std::string& token) const {
  ASSIGN_OR_RETURN(int n, PageSize(page_size));
  ASSIGN_OR_RETURN(int64_t offset, DecodeToken(token));
  ASSIGN_OR_RETURN(auto st, impl_->Find(tenant, store_id));
  bool type_only = !filter.object.empty() && filter.object.back() == ':';
  if (filter.object.empty() && (!filter.relation.empty() || !filter.user.empty())) {
    return InvalidArgument("validation_error: the tuple_key filter needs an object (type: or type:id)");
  }
  Page<TupleRecord> page;
  int64_t index = 0;
  bool more = false;
  auto visit = [&](const TupleView& t) {
    if (!filter.object.empty()) {
      if (type_only ? !t.object.starts_with(filter.object) : t.object != filter.object) return true;
    }
    if (!filter.relation.empty() && t.relation != filter.relation) return true;
    if (!filter.user.empty() && t.user != filter.user) return true;
    if (index++ < offset) return true;
    if (page.items.size() >= static_cast<size_t>(n)) {
      more = true;
      return false;
    }
    page.items.push_back({t.ToKey(), t.timestamp_ms});
    return true;
  };
  if (!type_only && !filter.object.empty() && !filter.relation.empty()) {
    // One (object, relation) list: the index has it in insertion order.
    for (const TupleView& t : st->tuples.ByObjectRelation(filter.object, filter.relation)) {
      if (!visit(t)) break;
    }
  } else {
    st->tuples.ForEach(visit);
  }
  if (more) page.continuation_token = EncodeToken(offset + static_cast<int64_t>(page.items.size()));
  return page;
}

Result<Page<TupleChange>> Service::ReadChanges(const std::string& tenant, const std::string& store_id,
                                               const std::string& type, int page_size,
                                               const std::string& token) const {
  ASSIGN_OR_RETURN(int n, PageSize(page_size));
  ASSIGN_OR_RETURN(int64_t after, DecodeToken(token));
  RETURN_IF_ERROR(impl_->Find(tenant, store_id).status());
  std::vector<store::Value> params = {tenant, store_id, after, static_cast<int64_t>(n)};
  std::string sql =
      "SELECT seq, object, relation, \"user\", condition, operation, timestamp FROM authz_changes "
      "WHERE tenant = ?1 AND store_id = ?2 AND seq > ?3";
  if (!type.empty()) {
    sql += " AND object LIKE ?5 ESCAPE '\\'";
    std::string pattern;
    for (char c : type) {
      if (c == '%' || c == '_' || c == '\\') pattern.push_back('\\');
      pattern.push_back(c);
    }
    params.push_back(pattern + ":%");
  }
  sql += " ORDER BY seq LIMIT ?4";
  ASSIGN_OR_RETURN(auto rows, impl_->db->Query(sql, params));
  Page<TupleChange> page;
  int64_t last = after;
  for (const auto& r : rows) {
    last = r.Int(0);
    page.items.push_back({TupleKey{r.Text(1), r.Text(2), r.Text(3), r.Text(4), ""}, r.Text(5) == "write", r.Int(6)});
  }
  page.continuation_token = last > 0 ? EncodeToken(last) : token;
  return page;
}

}  // namespace aigis::authz

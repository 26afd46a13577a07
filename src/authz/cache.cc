// CheckCache: Check results kept across revisions of one store lineage and
// invalidated by exactly the tuple lists they read (see authz.h).
#include <algorithm>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>

#include "authz/authz.h"
#include "authz/engine_internal.h"

namespace aigis::authz {
namespace {

constexpr size_t kShards = 16;

struct Entry {
  std::string key;
  uint64_t lineage = 0;
  uint64_t revision = 0;
  internal::ReadSet reads;
  CheckResult result;
};

void AppendField(std::string* key, std::string_view field) {
  // Length-prefixed, so that no field content can imitate a separator.
  key->append(std::to_string(field.size())).append(":").append(field);
}

std::string KeyOf(std::string_view model_id, const CheckRequest& r) {
  std::string key;
  AppendField(&key, model_id);
  AppendField(&key, r.tuple.object);
  AppendField(&key, r.tuple.relation);
  AppendField(&key, r.tuple.user);
  std::vector<std::string> ctx;
  ctx.reserve(r.contextual_tuples.size());
  for (const auto& t : r.contextual_tuples) {
    std::string one;
    for (const std::string* f : {&t.object, &t.relation, &t.user, &t.condition, &t.condition_context}) {
      AppendField(&one, *f);
    }
    ctx.push_back(std::move(one));
  }
  std::sort(ctx.begin(), ctx.end());
  AppendField(&key, std::to_string(ctx.size()));
  for (const auto& c : ctx) AppendField(&key, c);
  AppendField(&key, r.context);
  key.push_back(r.explain ? 'e' : '-');
  return key;
}

// Whether `e` still answers for `tuples`: same lineage, not older, and no
// list it read modified since it was computed.
bool StillValid(const Entry& e, const internal::SetData& data) {
  if (e.lineage != data.lineage || e.revision > data.revision) return false;
  if (e.revision == data.revision) return true;
  internal::View view(data);
  for (uint64_t p : e.reads.ids) {
    if (view.ModifiedAt(static_cast<internal::Sym>(p >> 32), static_cast<internal::Sym>(p)) > e.revision) return false;
  }
  for (const auto& [o, r] : e.reads.names) {
    internal::Sym os = view.Find(o), rs = view.Find(r);
    if (os != 0 && rs != 0 && view.ModifiedAt(os, rs) > e.revision) return false;
  }
  return true;
}

}  // namespace

struct CheckCache::Shard {
  mutable std::mutex mu;
  std::list<Entry> lru;  // most recently used first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;  // keys point into the entries
};

CheckCache::CheckCache(size_t capacity)
    : capacity_per_shard_(std::max<size_t>(1, (capacity + kShards - 1) / kShards)),
      shards_(std::make_unique<Shard[]>(kShards)) {}

CheckCache::~CheckCache() = default;

Result<CheckResult> CheckCache::Check(const Engine& engine, std::string_view model_id, const TupleSet& tuples,
                                      const CheckRequest& request, bool* hit) {
  if (hit != nullptr) *hit = false;
  const internal::SetData& data = internal::TupleSetAccess::Data(tuples);
  std::string key = KeyOf(model_id, request);
  Shard& shard = shards_[std::hash<std::string>{}(key) % kShards];
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.index.find(key);
    if (it != shard.index.end() && StillValid(*it->second, data)) {
      shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
      if (hit != nullptr) *hit = true;
      return it->second->result;
    }
  }
  internal::ReadSet reads;
  auto res = engine.Check(tuples, request, &reads);
  if (!res.ok()) return res;  // errors are not cached
  std::lock_guard lock(shard.mu);
  auto it = shard.index.find(key);
  if (it != shard.index.end()) {
    // Keep the newer of two answers of the same lineage.
    const Entry& old = *it->second;
    if (old.lineage == data.lineage && old.revision > data.revision) return res;
    auto entry = it->second;
    shard.index.erase(it);
    shard.lru.erase(entry);
  }
  shard.lru.push_front(Entry{std::move(key), data.lineage, data.revision, std::move(reads), *res});
  shard.index.emplace(shard.lru.front().key, shard.lru.begin());
  while (shard.lru.size() > capacity_per_shard_) {
    shard.index.erase(shard.lru.back().key);
    shard.lru.pop_back();
  }
  return res;
}

size_t CheckCache::size() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].lru.size();
  }
  return n;
}

void CheckCache::Clear() {
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    shards_[i].index.clear();
    shards_[i].lru.clear();
  }
}

}  // namespace aigis::authz

// The in-memory tuple set and tuple validation against a model.
//
// Storage. Every string (object, relation, user, condition, condition
// context) is interned into a 32-bit symbol; a tuple is a 32-byte record of
// symbols, its insertion sequence number and its timestamp. Symbols are
// append-only within a lineage (a TupleSet and the versions written from
// it), so ids are stable across versions: the CheckCache keys on them.
//
// Versions. A TupleSet version is a short list of immutable segments, oldest
// first, shared between versions by shared_ptr. A segment holds the tuples
// written by a run of Writes (in seq order), the symbols those writes
// introduced (a contiguous id range), tombstones (seqs of older tuples
// deleted by those writes), per-entity mention counts (deltas) and hash
// indexes over its own tuples (boost::unordered_flat_map):
//   (object, relation) -> range of tuples, plus the userset-user sub-range,
//                         plus the revision of the last write to the pair;
//   user -> range; (object, relation, user) -> tuple; type -> entities;
//   object -> the userset symbols "object#rel" used as users.
// A lookup consults every segment (at most kMaxSegments), skipping tuples
// tombstoned by a newer segment; segments hold increasing seqs, so
// concatenating their lists gives insertion order. A segment's large arrays
// and tables sit in mappings of their own on transparent huge pages
// (HugePageAllocator, engine_internal.h): nearly every lookup at 1M tuples
// misses the cache, and 2 MiB pages spare it the TLB miss as well.
//
// Write never touches a published segment: it validates against the current
// view, builds a new segment from the batch (O(batch)), appends it, and then,
// like an LSM tree / binary counter, merges the newest segment into the one
// below while it weighs at least 1/kMergeRatio of it (or while there are more
// than kMaxSegments). A merge rebuilds one segment from two (dropping the
// tuples the newer one deleted), so each tuple is copied O(log n) times over
// its life; the O(n) merge into the base happens after every ~n/8 written
// tuples (amortised O(1) per tuple), never per write. Copying a TupleSet
// copies the short segment list, so snapshots are O(1) and unaffected by
// later Writes. Readers never lock.
//
// Forks: a Write on a version that is not the newest of its lineage starts a
// new lineage id (its new symbol ids may differ from a sibling's).
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <stdexcept>
#include <tuple>

#include "authz/authz.h"
#include "authz/cel.h"
#include "authz/engine_internal.h"

namespace aigis::authz {

std::string TupleKey::ToString() const {
  std::string s = object + "#" + relation + "@" + user;
  if (!condition.empty()) s += " (with " + condition + ")";
  return s;
}

namespace internal {

std::optional<UserRef> ParseUser(std::string_view user) {
  UserRef u;
  size_t colon = user.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  u.type = std::string(user.substr(0, colon));
  std::string_view rest = user.substr(colon + 1);
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) {
    u.relation = std::string(rest.substr(hash + 1));
    rest = rest.substr(0, hash);
    if (u.relation.empty() || u.relation.find_first_of(":#@ ") != std::string::npos) return std::nullopt;
  }
  if (rest.empty() || rest.find_first_of(":#@ ") != std::string_view::npos) return std::nullopt;
  if (u.type.find_first_of("#@ ") != std::string::npos) return std::nullopt;
  u.id = std::string(rest);
  if (u.id == "*" && !u.relation.empty()) return std::nullopt;  // "type:*#rel" is meaningless
  return u;
}

std::optional<std::pair<std::string, std::string>> ParseObject(std::string_view object) {
  size_t colon = object.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == object.size()) return std::nullopt;
  std::string_view id = object.substr(colon + 1);
  if (id.find_first_of(":#@ ") != std::string_view::npos || id == "*") return std::nullopt;
  std::string_view type = object.substr(0, colon);
  if (type.find_first_of("#@ ") != std::string_view::npos) return std::nullopt;
  return std::make_pair(std::string(type), std::string(id));
}

bool RestrictionAdmits(const TypeRestriction& r, const UserRef& u, bool match_condition, std::string_view condition) {
  if (r.type != u.type) return false;
  if (u.is_wildcard()) {
    if (!r.wildcard) return false;
  } else if (!u.relation.empty()) {
    if (r.wildcard || r.relation != u.relation) return false;
  } else {
    if (r.wildcard || !r.relation.empty()) return false;
  }
  return !match_condition || r.condition == condition;
}

}  // namespace internal

int OpenFgaErrorCode(const Status& status) {
  static const std::pair<std::string_view, int> kCodes[] = {
      {"validation_error", 2000},
      {"authorization_model_resolution_too_complex", 2002},
      {"write_failed_due_to_invalid_input", 2017},
      {"type_not_found", 2021},
      {"relation_not_found", 2022},
      {"invalid_tuple", 2027},
  };
  if (status.ok()) return 0;
  for (const auto& [tag, code] : kCodes) {
    const std::string& m = status.message();
    if (m.size() > tag.size() && m.compare(0, tag.size(), tag) == 0 && m[tag.size()] == ':') return code;
  }
  return 0;
}

Status ValidateTuple(const Model& model, const TupleKey& tuple) {
  auto bad = [&](std::string why) {
    return InvalidArgument("invalid_tuple: " + tuple.ToString() + ": " + why);
  };
  auto obj = internal::ParseObject(tuple.object);
  if (!obj) return bad("malformed object");
  const TypeDefinition* type = model.Find(obj->first);
  if (type == nullptr) return bad("type '" + obj->first + "' is not in the model");
  const Relation* rel = type->Find(tuple.relation);
  if (rel == nullptr) return bad("relation '" + obj->first + "#" + tuple.relation + "' is not in the model");
  auto user = internal::ParseUser(tuple.user);
  if (!user) return bad("malformed user");
  const TypeDefinition* utype = model.Find(user->type);
  if (utype == nullptr) return bad("user type '" + user->type + "' is not in the model");
  if (!user->relation.empty() && utype->Find(user->relation) == nullptr) {
    return bad("relation '" + user->type + "#" + user->relation + "' is not in the model");
  }
  if (!tuple.condition.empty()) {
    const Condition* cond = model.FindCondition(tuple.condition);
    if (cond == nullptr) return bad("condition '" + tuple.condition + "' is not in the model");
    if (!tuple.condition_context.empty()) {
      Status st = cel::ValidateContext(*cond, tuple.condition_context);
      if (!st.ok()) return bad(st.message());
    }
  }
  for (const auto& r : rel->directly_related) {
    if (internal::RestrictionAdmits(r, *user, /*match_condition=*/true, tuple.condition)) return Status::Ok();
  }
  return bad("the user is not allowed by the type restrictions of " + obj->first + "#" + tuple.relation);
}

// ---------------------------------------------------------------- TupleSet ----

namespace internal {

size_t HashText(std::string_view s) { return std::hash<std::string_view>{}(s); }

void SymTable::Resize(size_t cap, const std::string& chars) {
  BigVector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (const Slot& s : old) {
    if (s.tag != 0) Place(s, HashText(std::string_view(chars).substr(s.begin, s.len)));
  }
}

namespace {
constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
constexpr uintptr_t kPage = 4096;
uintptr_t RoundUp(uintptr_t x, uintptr_t to) { return (x + to - 1) & ~(to - 1); }
std::atomic<size_t> g_huge_mapped{0};
}  // namespace

void* MapHugeAligned(size_t bytes) {
  const uintptr_t len = RoundUp(bytes, kPage);
  // Map a huge page more than needed, then give back what lies before the
  // first 2 MiB boundary and after the block.
  void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = RoundUp(begin, kHugePage);
  const uintptr_t end = begin + len + kHugePage;
  if (start > begin) munmap(raw, start - begin);
  if (end > start + len) munmap(reinterpret_cast<void*>(start + len), end - (start + len));
  madvise(reinterpret_cast<void*>(start), len, MADV_HUGEPAGE);  // a hint: without THP, ordinary pages
  g_huge_mapped.fetch_add(len, std::memory_order_relaxed);
  return reinterpret_cast<void*>(start);
}

void UnmapHugeAligned(void* p, size_t bytes) {
  const uintptr_t len = RoundUp(bytes, kPage);
  munmap(p, len);
  g_huge_mapped.fetch_sub(len, std::memory_order_relaxed);
}

size_t HugeMappedBytes() { return g_huge_mapped.load(std::memory_order_relaxed); }

Segment::Segment() = default;

size_t Segment::MemoryBytes() const {
  auto map_bytes = [](const auto& m) {
    using V = typename std::decay_t<decltype(m)>::value_type;
    return m.bucket_count() * (sizeof(V) + 1);
  };
  return sizeof(Segment) + chars.capacity() + sym_end.capacity() * 4 + sym_info.capacity() * sizeof(SymInfo) +
         sym_index.bytes() + tuples.capacity() * sizeof(Tuple) + or_list.capacity() * sizeof(OrItem) + or_userset_items.capacity() * sizeof(Segment::UsersetItem) + (or_usersets.capacity() +
         user_list.capacity() + entity_list.capacity() + userset_list.capacity() + utr_list.capacity() +
          utr_objects.capacity() + usl_list.capacity() + usl_objects.capacity()) * 4 + by_or.bytes() +
         map_bytes(by_user) + map_bytes(by_key) + map_bytes(by_user_type_relation) + map_bytes(tombstones) + map_bytes(mentions) +
         map_bytes(entities_by_type) + map_bytes(usersets_by_base) + map_bytes(by_userset_step);
}

View::View(const SetData& d) {
  segs_.reserve(d.segments.size() + 2);
  for (const auto& s : d.segments) segs_.push_back(s.get());
  next_sym_ = d.next_sym;
}

void View::Add(const Segment* s) {
  segs_.push_back(s);
  next_sym_ = std::max<Sym>(next_sym_, s->sym_first + static_cast<Sym>(s->sym_count()));
}

Sym View::Find(std::string_view text) const {
  if (text.empty()) return 0;
  return Find(SymKey{text, HashText(text)});
}

Sym View::Find(const SymKey& key) const {
  if (key.text.empty()) return 0;
  for (auto it = segs_.rbegin(); it != segs_.rend(); ++it) {
    const Segment& s = **it;
    if (Sym f = s.sym_index.Find(key, s.chars); f != 0) return f;
  }
  return 0;
}

const Segment* View::SegmentOf(Sym s) const {
  for (auto it = segs_.rbegin(); it != segs_.rend(); ++it) {
    if ((*it)->HasSym(s)) return *it;
  }
  return nullptr;
}

std::string_view View::Text(Sym s) const {
  if (s == 0) return {};
  const Segment* seg = SegmentOf(s);
  return seg ? seg->Text(s) : std::string_view{};
}

SymInfo View::Info(Sym s) const {
  const Segment* seg = s == 0 ? nullptr : SegmentOf(s);
  return seg ? seg->sym_info[s - seg->sym_first] : SymInfo{};
}

size_t View::Entries(Sym o, Sym r, SegEntry* out) const {
  const uint64_t key = Pair(o, r);
  size_t n = 0;
  for (size_t i = 0; i < segs_.size() && n < kMaxEntries; ++i) {
    const Segment& s = *segs_[i];
    const OrEntry* e = s.by_or.Find(key);
    if (e == nullptr || e->all.count == 0) continue;
    out[n++] = {i, e};
  }
  return n;
}

const Tuple* View::FindIn(const SegEntry* entries, size_t n, Sym o, Sym r, Sym u, bool* conditional) const {
  for (size_t k = n; k-- > 0;) {
    const Segment& s = *segs_[entries[k].seg];
    const Range& rg = entries[k].entry->all;
    const Tuple* t = nullptr;
    bool cond = true;
    if (rg.count <= kShortList) {
      const OrItem* items = ItemsOf(s, *entries[k].entry);
      for (uint32_t j = 0; j < rg.count; ++j) {
        if (items[j].user == u) {
          t = &s.tuples[items[j].tuple];
          cond = items[j].conditional;
          break;
        }
      }
    } else if (auto it = s.by_key.find(Triple{o, r, u}); it != s.by_key.end()) {
      t = &s.tuples[it->second];
      cond = t->condition != 0;
    }
    if (t == nullptr) continue;
    if (DeletionsAfter(entries[k].seg) && Deleted(entries[k].seg, t->seq)) return nullptr;
    if (conditional != nullptr) *conditional = cond;
    return t;
  }
  return nullptr;
}

const Tuple* View::FindKey(Sym o, Sym r, Sym u) const {
  SegEntry entries[kMaxEntries];
  size_t n = Entries(o, r, entries);
  return FindIn(entries, n, o, r, u);
}

uint64_t View::ModifiedAt(Sym o, Sym r) const {
  const uint64_t key = Pair(o, r);
  for (auto it = segs_.rbegin(); it != segs_.rend(); ++it) {
    const OrEntry* e = (*it)->by_or.Find(key);
    if (e != nullptr && e->modified != 0) return e->modified;
  }
  return 0;
}

int64_t View::MentionCount(Sym entity) const {
  int64_t n = 0;
  for (const Segment* s : segs_) {
    auto it = s->mentions.find(entity);
    if (it != s->mentions.end()) n += it->second;
  }
  return n;
}

void View::EntitiesOfType(Sym type, std::vector<Sym>* out) const {
  boost::unordered_flat_set<Sym> seen;
  for (const Segment* s : segs_) {
    auto it = s->entities_by_type.find(type);
    if (it == s->entities_by_type.end()) continue;
    for (uint32_t k = 0; k < it->second.count; ++k) {
      Sym e = s->entity_list[it->second.begin + k];
      if (!seen.insert(e).second) continue;
      if (segs_.size() == 1 || MentionCount(e) > 0) out->push_back(e);
    }
  }
}

std::string View::TupleString(const Tuple& t) const {
  std::string s;
  s.append(Text(t.object)).append("#").append(Text(t.relation)).append("@").append(Text(t.user));
  if (t.condition != 0) s.append(" (with ").append(Text(t.condition)).append(")");
  return s;
}

TupleView View::ToView(const Tuple& t) const {
  return {Text(t.object), Text(t.relation), Text(t.user), Text(t.condition), Text(t.context), t.timestamp_ms};
}

Sym SegmentBuilder::Intern(std::string_view text) {
  if (text.empty()) return 0;
  SymKey key{text, HashText(text)};
  if (older != nullptr) {
    if (Sym s = older->Find(key); s != 0) return s;
  }
  Segment& s = *seg;
  if (Sym found = s.sym_index.Find(key, s.chars); found != 0) return found;
  // The parts first (they get their own, lower ids).
  SymInfo info;
  if (auto u = ParseUser(text)) {
    info.type = Intern(u->type);
    if (u->is_wildcard()) {
      info.kind = SymKind::kWildcard;
    } else if (u->is_userset()) {
      info.kind = SymKind::kUserset;
      info.base = Intern(std::string_view(text).substr(0, text.find('#')));
      info.relation = Intern(u->relation);
    } else {
      info.kind = SymKind::kObject;
    }
  }
  const Sym id = s.sym_first + static_cast<Sym>(s.sym_info.size());
  if (info.kind == SymKind::kObject) info.base = id;
  const auto begin = static_cast<uint32_t>(s.chars.size());
  s.chars.append(text);
  s.sym_end.push_back(static_cast<uint32_t>(s.chars.size()));
  s.sym_info.push_back(info);
  s.sym_index.Insert(key.hash, id, begin, static_cast<uint32_t>(text.size()), s.chars);
  return id;
}

namespace {

// Groups `n` items into ranges by key: fills `list` with item indexes grouped
// by key (items keep their order within a group) and sets each key's range.
template <typename Map, typename List, typename KeyOf, typename RangeOf>
void Group(size_t n, Map& map, List& list, KeyOf key_of, RangeOf range_of) {
  for (size_t i = 0; i < n; ++i) {
    if (auto k = key_of(i)) ++range_of(map[*k]).count;
  }
  uint32_t at = 0;
  for (auto& [k, v] : map) {
    Range& r = range_of(v);
    r.begin = at;
    at += r.count;
    r.count = 0;
  }
  list.resize(at);
  for (size_t i = 0; i < n; ++i) {
    if (auto k = key_of(i)) {
      Range& r = range_of(map[*k]);
      list[r.begin + r.count++] = static_cast<uint32_t>(i);
    }
  }
}

}  // namespace

std::shared_ptr<const Segment> SegmentBuilder::Finish(std::vector<Tuple> tuples,
                                                      boost::unordered_flat_map<uint64_t, uint64_t> modified,
                                                      boost::unordered_flat_map<Sym, int32_t> mentions,
                                                      boost::unordered_flat_set<uint32_t> tombstones) {
  Segment& s = *seg;
  auto info = [&](Sym x) -> SymInfo { return s.HasSym(x) ? s.sym_info[x - s.sym_first] : older->Info(x); };
  s.tuples.assign(tuples.begin(), tuples.end());
  std::vector<Tuple>().swap(tuples);
  s.chars.shrink_to_fit();
  s.sym_end.shrink_to_fit();
  s.sym_info.shrink_to_fit();
  const size_t n = s.tuples.size();

  boost::unordered_flat_map<uint64_t, OrEntry> by_or;
  by_or.reserve(modified.size() + n / 2);
  {
    std::vector<uint32_t> list;
    Group(n, by_or, list, [&](size_t i) { return std::optional<uint64_t>(Pair(s.tuples[i].object, s.tuples[i].relation)); },
          [](OrEntry& e) -> Range& { return e.all; });
    s.or_list.resize(list.size());
    if (n >= (size_t{1} << 31)) throw std::length_error("authz segment of 2^31 tuples or more");
    for (size_t i = 0; i < list.size(); ++i) {
      const Tuple& t = s.tuples[list[i]];
      s.or_list[i] = {t.user, list[i], t.condition != 0};
    }
  }
  Group(n, by_or, s.or_usersets,
        [&](size_t i) -> std::optional<uint64_t> {
          const Tuple& t = s.tuples[i];
          if (info(t.user).kind != SymKind::kUserset) return std::nullopt;
          return Pair(t.object, t.relation);
        },
        [](OrEntry& e) -> Range& { return e.usersets; });
  for (const Tuple& t : s.tuples) {
    if (info(t.user).kind == SymKind::kWildcard) ++by_or[Pair(t.object, t.relation)].wildcards;
  }
  for (const auto& [k, rev] : modified) by_or[k].modified = rev;

  Group(n, s.by_user, s.user_list, [&](size_t i) { return std::optional<Sym>(s.tuples[i].user); },
        [](Range& r) -> Range& { return r; });

  Group(n, s.by_user_type_relation, s.utr_list,
        [&](size_t i) {
          const Tuple& t = s.tuples[i];
          return std::optional<Triple>(Triple{t.user, info(t.object).type, t.relation});
        },
        [](Range& r) -> Range& { return r; });

  size_t long_lists = 0;
  for (const auto& [k, e] : by_or) {
    if (e.all.count > internal::kShortList) long_lists += e.all.count;
  }
  s.by_key.reserve(long_lists);
  for (const auto& [k, e] : by_or) {
    if (e.all.count <= internal::kShortList) continue;
    for (uint32_t j = 0; j < e.all.count; ++j) {
      const uint32_t index = s.or_list[e.all.begin + j].tuple;
      const Tuple& t = s.tuples[index];
      s.by_key.emplace(Triple{t.object, t.relation, t.user}, index);
    }
  }
  s.by_or.Build(by_or, s.or_list);

  boost::unordered::erase_if(mentions, [](const auto& kv) { return kv.second == 0; });
  s.mentions = std::move(mentions);
  std::vector<Sym> positive;
  for (const auto& [e, c] : s.mentions) {
    if (c > 0) positive.push_back(e);
  }
  std::sort(positive.begin(), positive.end());
  Group(positive.size(), s.entities_by_type, s.entity_list,
        [&](size_t i) { return std::optional<Sym>(info(positive[i]).type); }, [](Range& r) -> Range& { return r; });
  for (uint32_t& e : s.entity_list) e = positive[e];

  std::vector<Sym> usersets;
  for (const Tuple& t : s.tuples) {
    if (info(t.user).kind == SymKind::kUserset) usersets.push_back(t.user);
  }
  std::sort(usersets.begin(), usersets.end());
  usersets.erase(std::unique(usersets.begin(), usersets.end()), usersets.end());
  Group(usersets.size(), s.usersets_by_base, s.userset_list,
        [&](size_t i) { return std::optional<Sym>(info(usersets[i]).base); }, [](Range& r) -> Range& { return r; });
  for (uint32_t& u : s.userset_list) u = usersets[u];

  s.tombstones = std::move(tombstones);
  s.or_list.shrink_to_fit();
  for (auto* v : {&s.or_usersets, &s.user_list, &s.entity_list, &s.userset_list, &s.utr_list}) v->shrink_to_fit();
  Group(n, s.by_userset_step, s.usl_list,
        [&](size_t i) -> std::optional<UsersetStepKey> {
          const Tuple& t = s.tuples[i];
          const SymInfo ui = info(t.user);
          if (ui.kind != SymKind::kUserset) return std::nullopt;
          return UsersetStepKey{ui.base, ui.relation, info(t.object).type, t.relation};
        },
        [](Range& r) -> Range& { return r; });
  s.usl_objects.reserve(s.usl_list.size());
  for (uint32_t i : s.usl_list) s.usl_objects.push_back(s.tuples[i].object);
  s.utr_objects.reserve(s.utr_list.size());
  for (uint32_t i : s.utr_list) s.utr_objects.push_back(s.tuples[i].object);
  s.or_userset_items.reserve(s.or_usersets.size());
  for (uint32_t i : s.or_usersets) s.or_userset_items.push_back({s.tuples[i].user, s.tuples[i].condition != 0});
  return std::move(seg);
}

}  // namespace internal

using internal::Segment;
using internal::SegmentBuilder;
using internal::SetData;
using internal::Sym;
using internal::SymKind;
using internal::Tuple;
using internal::View;

struct TupleSet::Data : SetData {
  size_t live = 0;  // live tuples
  // The newest revision written in this lineage: a Write on an older
  // version forks (new lineage id), so symbol ids never mean two things
  // within one lineage.
  std::shared_ptr<std::atomic<uint64_t>> head = std::make_shared<std::atomic<uint64_t>>(0);
};

namespace internal {
const SetData& TupleSetAccess::Data(const TupleSet& t) { return *t.data_; }

void OrTable::Build(const boost::unordered_flat_map<uint64_t, OrEntry>& from, const BigVector<OrItem>& or_list) {
  size_t cap = 8;
  while (cap * 7 < from.size() * 10) cap *= 2;  // load <= 0.7
  keys_.assign(from.empty() ? 0 : cap, 0);
  entries_.assign(from.empty() ? 0 : cap, Line{});
  mask_ = cap - 1;
  count_ = from.size();
  for (const auto& [k, e] : from) {
    size_t i = Hash(k) & mask_;
    while (keys_[i] != 0) i = (i + 1) & mask_;
    keys_[i] = k;
    entries_[i].entry = e;
    if (e.all.count <= kInlineItems) std::copy_n(or_list.begin() + e.all.begin, e.all.count, entries_[i].entry.first);
  }
}
}  // namespace internal

namespace {

std::atomic<uint64_t> g_next_lineage{1};

constexpr size_t kMergeRatio = 8;   // merge the newest segment into the one below when >= 1/8 of it
constexpr size_t kMaxSegments = 8;  // bounds the probes per lookup

// The entity a tuple user mentions: itself ("type:id", "type:*") or, for a
// userset, its object.
Sym EntityOf(const internal::SymInfo& info, Sym user) {
  return info.kind == SymKind::kUserset ? info.base : user;
}

// Merges segments a (older) and b (newer) of `d` at positions i, i+1.
std::shared_ptr<const Segment> Merge(const SetData& d, size_t i) {
  const Segment& a = *d.segments[i];
  const Segment& b = *d.segments[i + 1];
  View older;
  for (size_t k = 0; k < i; ++k) older.Add(d.segments[k].get());
  SegmentBuilder builder;
  builder.older = &older;
  Segment& m = *builder.seg;
  m.sym_first = a.sym_first;
  m.chars.reserve(a.chars.size() + b.chars.size());
  m.chars = a.chars;
  m.chars.append(b.chars);
  m.sym_end.reserve(a.sym_end.size() + b.sym_end.size());
  m.sym_end = a.sym_end;
  const uint32_t shift = static_cast<uint32_t>(a.chars.size());
  for (uint32_t e : b.sym_end) m.sym_end.push_back(e + shift);
  m.sym_info = a.sym_info;
  m.sym_info.insert(m.sym_info.end(), b.sym_info.begin(), b.sym_info.end());
  m.sym_index.Reserve(m.sym_info.size(), m.chars);
  for (size_t k = 0; k < m.sym_info.size(); ++k) {
    const Sym id = m.sym_first + static_cast<Sym>(k);
    const std::string_view text = m.Text(id);
    m.sym_index.Insert(internal::HashText(text), id, static_cast<uint32_t>(text.data() - m.chars.data()),
                       static_cast<uint32_t>(text.size()), m.chars);
  }

  std::vector<Tuple> tuples;
  tuples.reserve(a.tuples.size() + b.tuples.size());
  boost::unordered_flat_set<uint32_t> hit;
  for (const Tuple& t : a.tuples) {
    if (!b.tombstones.empty() && b.tombstones.contains(t.seq)) {
      hit.insert(t.seq);
      continue;
    }
    tuples.push_back(t);
  }
  tuples.insert(tuples.end(), b.tuples.begin(), b.tuples.end());
  boost::unordered_flat_set<uint32_t> tombstones = a.tombstones;
  for (uint32_t seq : b.tombstones) {
    if (!hit.contains(seq)) tombstones.insert(seq);
  }
  boost::unordered_flat_map<uint64_t, uint64_t> modified;
  modified.reserve(a.by_or.size() + b.by_or.size());
  for (const Segment* s : {&a, &b}) {
    s->by_or.ForEach([&](uint64_t k, const internal::OrEntry& e) {
      if (e.modified == 0) return;
      uint64_t& r = modified[k];
      r = std::max(r, e.modified);
    });
  }
  boost::unordered_flat_map<Sym, int32_t> mentions = a.mentions;
  for (const auto& [e, c] : b.mentions) mentions[e] += c;
  return builder.Finish(std::move(tuples), std::move(modified), std::move(mentions), std::move(tombstones));
}

struct KeyHash {
  size_t operator()(const std::tuple<std::string_view, std::string_view, std::string_view>& k) const {
    size_t h = internal::HashText(std::get<0>(k));
    h = h * 31 + internal::HashText(std::get<1>(k));
    return h * 31 + internal::HashText(std::get<2>(k));
  }
};

Status DupError(const TupleKey& t) {
  return InvalidArgument("write_failed_due_to_invalid_input: duplicate tuple in one request: " + t.ToString());
}

}  // namespace

TupleKey TupleView::ToKey() const {
  return TupleKey{std::string(object), std::string(relation), std::string(user), std::string(condition),
                  std::string(condition_context)};
}

TupleSet::TupleSet() {
  auto d = std::make_shared<Data>();
  d->lineage = g_next_lineage.fetch_add(1);
  data_ = std::move(d);
}

Status TupleSet::Write(const Model& model, const std::vector<TupleKey>& writes, const std::vector<TupleKey>& deletes,
                       int64_t timestamp_ms) {
  const std::string kTag = "write_failed_due_to_invalid_input: ";
  const Data& cur = static_cast<const Data&>(*data_);
  View view(cur);
  boost::unordered_flat_set<std::tuple<std::string_view, std::string_view, std::string_view>, KeyHash> seen;
  seen.reserve(writes.size() + deletes.size());
  std::vector<const Tuple*> deleted;
  for (const auto& t : deletes) {
    if (!seen.insert({t.object, t.relation, t.user}).second) return DupError(t);
    Sym o = view.Find(t.object), r = view.Find(t.relation), u = view.Find(t.user);
    const Tuple* found = o && r && u ? view.FindKey(o, r, u) : nullptr;
    if (found == nullptr) return InvalidArgument(kTag + "cannot delete a tuple which does not exist: " + t.ToString());
    deleted.push_back(found);
  }
  for (const auto& t : writes) {
    if (!seen.insert({t.object, t.relation, t.user}).second) return DupError(t);
    RETURN_IF_ERROR(ValidateTuple(model, t));
    Sym o = view.Find(t.object), r = view.Find(t.relation), u = view.Find(t.user);
    if (o && r && u && view.FindKey(o, r, u) != nullptr) {
      return InvalidArgument(kTag + "cannot write a tuple which already exists: " + t.ToString());
    }
  }

  auto next = std::make_shared<Data>(cur);
  next->revision = cur.revision + 1;
  SegmentBuilder builder;
  builder.older = &view;
  builder.seg->sym_first = cur.next_sym;
  std::vector<Tuple> added;
  added.reserve(writes.size());
  boost::unordered_flat_map<uint64_t, uint64_t> modified;
  boost::unordered_flat_map<Sym, int32_t> mentions;
  boost::unordered_flat_set<uint32_t> tombstones;
  for (const Tuple* t : deleted) {
    tombstones.insert(t->seq);
    modified[internal::Pair(t->object, t->relation)] = next->revision;
    --mentions[t->object];
    --mentions[EntityOf(view.Info(t->user), t->user)];
  }
  uint32_t seq = cur.next_seq;
  for (const auto& w : writes) {
    Tuple t;
    t.object = builder.Intern(w.object);
    t.relation = builder.Intern(w.relation);
    t.user = builder.Intern(w.user);
    t.condition = builder.Intern(w.condition);
    t.context = builder.Intern(w.condition_context);
    t.seq = seq++;
    t.timestamp_ms = timestamp_ms;
    added.push_back(t);
    modified[internal::Pair(t.object, t.relation)] = next->revision;
    ++mentions[t.object];
    const internal::SymInfo ui =
        builder.seg->HasSym(t.user) ? builder.seg->sym_info[t.user - builder.seg->sym_first] : view.Info(t.user);
    ++mentions[EntityOf(ui, t.user)];
  }
  next->next_seq = seq;
  next->next_sym = builder.seg->sym_first + static_cast<Sym>(builder.seg->sym_count());
  next->live = cur.live - deleted.size() + added.size();
  next->segments.push_back(builder.Finish(std::move(added), std::move(modified), std::move(mentions),
                                          std::move(tombstones)));
  // Keep segment sizes geometric: merge the newest into the one below while
  // it is not much smaller (or while there are too many).
  auto& segs = next->segments;
  while (segs.size() >= 2) {
    size_t n = segs.size();
    if (segs[n - 1]->weight() * kMergeRatio < segs[n - 2]->weight() && n <= kMaxSegments) break;
    auto merged = Merge(*next, n - 2);
    segs.pop_back();
    segs.back() = std::move(merged);
  }
  // Extend the lineage only from its newest version (atomically: two
  // writers on copies of one version cannot both); otherwise this is a fork,
  // whose new symbol ids may differ from a sibling's: a new lineage.
  uint64_t expected = cur.revision;
  if (!cur.head->compare_exchange_strong(expected, next->revision)) {
    next->lineage = g_next_lineage.fetch_add(1);
    next->head = std::make_shared<std::atomic<uint64_t>>(next->revision);
  }
  data_ = std::move(next);
  return Status::Ok();
}

size_t TupleSet::size() const { return static_cast<const Data&>(*data_).live; }

std::optional<TupleView> TupleSet::Find(const TupleKey& tuple) const {
  View view(*data_);
  Sym o = view.Find(tuple.object), r = view.Find(tuple.relation), u = view.Find(tuple.user);
  if (!o || !r || !u) return std::nullopt;
  const Tuple* t = view.FindKey(o, r, u);
  if (t == nullptr) return std::nullopt;
  return view.ToView(*t);
}

bool TupleSet::Contains(const TupleKey& tuple) const { return Find(tuple).has_value(); }

std::vector<TupleView> TupleSet::ByObjectRelation(std::string_view object, std::string_view relation) const {
  View view(*data_);
  std::vector<TupleView> out;
  Sym o = view.Find(object), r = view.Find(relation);
  if (!o || !r) return out;
  view.ForObjectRelation(o, r, [&](const Tuple& t) {
    out.push_back(view.ToView(t));
    return true;
  });
  return out;
}

std::vector<TupleView> TupleSet::ByUser(std::string_view user) const {
  View view(*data_);
  std::vector<TupleView> out;
  Sym u = view.Find(user);
  if (!u) return out;
  view.ForUser(u, [&](const Tuple& t) {
    out.push_back(view.ToView(t));
    return true;
  });
  return out;
}

std::vector<TupleView> TupleSet::All() const {
  std::vector<TupleView> out;
  out.reserve(size());
  ForEach([&](const TupleView& t) {
    out.push_back(t);
    return true;
  });
  return out;
}

void TupleSet::ForEach(const std::function<bool(const TupleView&)>& f) const {
  View view(*data_);
  view.ForAll([&](const Tuple& t) { return f(view.ToView(t)); });
}

uint64_t TupleSet::revision() const { return data_->revision; }

uint64_t TupleSet::ModifiedAt(std::string_view object, std::string_view relation) const {
  View view(*data_);
  Sym o = view.Find(object), r = view.Find(relation);
  if (!o || !r) return 0;
  return view.ModifiedAt(o, r);
}

size_t TupleSet::MappedBytes() { return internal::HugeMappedBytes(); }

size_t TupleSet::MemoryUsage() const {
  size_t n = sizeof(Data);
  for (const auto& s : data_->segments) n += s->MemoryBytes();
  return n;
}

// ------------------------------------------------------------ Overlay ----

namespace internal {

Overlay::Overlay(const SetData& base) : base_view_(base), view_(base) {}

Status Overlay::AddTuples(const Model& model, const std::vector<TupleKey>& contextual) {
  if (contextual.empty()) return Status::Ok();
  SegmentBuilder builder;
  builder.older = &base_view_;
  builder.seg->sym_first = base_view_.next_sym();
  std::vector<Tuple> tuples;
  boost::unordered_flat_map<Sym, int32_t> mentions;
  boost::unordered_flat_set<Triple, TripleHash> keys;
  uint32_t seq = 0xFFFFFFFFu - static_cast<uint32_t>(contextual.size());  // after every stored tuple
  for (const auto& c : contextual) {
    RETURN_IF_ERROR(ValidateTuple(model, c));
    Tuple t;
    t.object = builder.Intern(c.object);
    t.relation = builder.Intern(c.relation);
    t.user = builder.Intern(c.user);
    if (!keys.insert(Triple{t.object, t.relation, t.user}).second) continue;  // duplicates are ignored
    if (base_view_.FindKey(t.object, t.relation, t.user) != nullptr) continue;  // the stored tuple wins
    t.condition = builder.Intern(c.condition);
    t.context = builder.Intern(c.condition_context);
    t.seq = seq++;
    tuples.push_back(t);
    ++mentions[t.object];
    const SymInfo ui =
        builder.seg->HasSym(t.user) ? builder.seg->sym_info[t.user - builder.seg->sym_first] : base_view_.Info(t.user);
    ++mentions[ui.kind == SymKind::kUserset ? ui.base : t.user];
  }
  has_tuples_ = !tuples.empty();
  seg_ = builder.Finish(std::move(tuples), {}, std::move(mentions), {});
  view_.Add(seg_.get());
  return Status::Ok();
}

Sym Overlay::Intern(const SymKey& key) {
  const std::string_view text = key.text;
  if (text.empty()) return 0;
  if (Sym s = view_.Find(key); s != 0) return s;
  if (!extra_) {
    extra_ = std::make_shared<Segment>();
    extra_->sym_first = view_.next_sym();
    view_.Add(extra_.get());
  }
  // Interning into the extra segment: its parts may be new too.
  SegmentBuilder b;
  b.seg = extra_;
  View without_extra = base_view_;
  if (seg_) without_extra.Add(seg_.get());
  b.older = &without_extra;
  Sym s = b.Intern(text);
  view_ = without_extra;
  view_.Add(extra_.get());
  return s;
}

}  // namespace internal

}  // namespace aigis::authz

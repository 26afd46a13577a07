// Internal to the authz module: tuple parsing helpers and the interned tuple
// storage shared by tuples.cc and engine.cc. Not part of the public API.
#pragma once

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// ------------------------------------------------------------ memory ----

// The segments' arrays are read at random by every Check: at 1M tuples a
// lookup's cache misses are mostly TLB misses too, and with 4 KiB pages each
// costs a page walk on top (measured here: 246 ns per dependent miss over
// 150 MB with 4 KiB pages, 184 ns with 2 MiB ones). Allocations of at least
// kHugeAllocBytes therefore get a mapping of their own, aligned to 2 MiB and
// marked MADV_HUGEPAGE before it is touched, so that the kernel backs it
// with transparent huge pages (where THP is "madvise" or "always"; a hint
// only: elsewhere the memory is ordinary). glibc offers this only for the
// whole process, through an environment tunable read at start-up.
inline constexpr size_t kHugeAllocBytes = size_t{2} << 20;
void* MapHugeAligned(size_t bytes);          // throws std::bad_alloc
void UnmapHugeAligned(void* p, size_t bytes);
size_t HugeMappedBytes();                     // bytes mapped now (for memory reports)

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n * sizeof(T) >= kHugeAllocBytes) return static_cast<T*>(MapHugeAligned(n * sizeof(T)));
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) >= kHugeAllocBytes) {
      UnmapHugeAligned(p, n * sizeof(T));
    } else {
      std::allocator<T>().deallocate(p, n);
    }
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};
template <typename T>
using BigVector = std::vector<T, HugePageAllocator<T>>;
template <typename K, typename V, typename H = boost::hash<K>>
using BigMap = boost::unordered_flat_map<K, V, H, std::equal_to<K>, HugePageAllocator<std::pair<const K, V>>>;

// ------------------------------------------------------------ storage ----
// See the comment at the top of tuples.cc for the design.

using Sym = uint32_t;  // an interned string; 0 is "" (no condition, no context)

// What a symbol is when read as a tuple user / object (computed once, at
// interning). `type`, `base` and `relation` are symbols too.
enum class SymKind : uint8_t { kOther, kObject, kWildcard, kUserset };
struct SymInfo {
  Sym type = 0;      // "document" for "document:1", "user:*", "group:g#member"
  Sym base = 0;      // "group:g" for "group:g#member"; the symbol itself for an object
  Sym relation = 0;  // "member" for "group:g#member"
  SymKind kind = SymKind::kOther;
};

struct Tuple {
  Sym object = 0;
  Sym relation = 0;
  Sym user = 0;
  Sym condition = 0;
  Sym context = 0;
  uint32_t seq = 0;  // insertion order within the lineage
  int64_t timestamp_ms = 0;
};

struct Range {
  uint32_t begin = 0;
  uint32_t count = 0;
};

inline uint64_t Pair(Sym a, Sym b) { return (uint64_t{a} << 32) | b; }

struct Triple {
  Sym o, r, u;
  bool operator==(const Triple&) const = default;
};
// (base, relation) of a userset and (object type, relation) of a list.
struct UsersetStepKey {
  Sym base, via, type, relation;
  bool operator==(const UsersetStepKey&) const = default;
};
struct UsersetStepHash {
  size_t operator()(const UsersetStepKey& k) const {
    uint64_t h = Pair(k.base, k.via) * 0x9E3779B97F4A7C15ULL;
    h ^= (h >> 29) + Pair(k.type, k.relation) * 0xC2B2AE3D27D4EB4FULL;
    return static_cast<size_t>(h ^ (h >> 32));
  }
};
struct TripleHash {
  size_t operator()(const Triple& t) const {
    uint64_t h = Pair(t.o, t.r) * 0x9E3779B97F4A7C15ULL;
    h ^= (h >> 29) + t.u * 0xC2B2AE3D27D4EB4FULL;
    return static_cast<size_t>(h ^ (h >> 32));
  }
};

// One entry of an (object, relation) list: the user and whether the tuple
// has a condition inline, so that a short list is searched, and an
// unconditional grant found, without touching the tuples.
struct OrItem {
  Sym user;
  uint32_t tuple : 31;  // index into Segment::tuples (SegmentBuilder::Finish checks the bound)
  uint32_t conditional : 1;
};

// Lists up to this long are searched by scanning; longer ones have their
// tuples in Segment::by_key.
inline constexpr uint32_t kShortList = 32;

// Lists up to this long are also kept in their OrEntry (so in the table's
// own cache line): most lists are this short, and reading one then costs
// the one (prefetchable) table access.
inline constexpr uint32_t kInlineItems = 3;

struct OrEntry {
  Range all;       // into Segment::or_list
  Range usersets;  // into Segment::or_usersets: the userset-user tuples of `all`
  uint32_t wildcards = 0;  // tuples of `all` whose user is a wildcard
  uint64_t modified = 0;  // revision of the last write touching (object, relation) here; 0: none
  OrItem first[kInlineItems] = {};  // the items of `all` when all.count <= kInlineItems (OrTable::Build)
};

// An immutable open-addressing table (linear probing) for the hottest
// index. The keys are an array of their own, eight to a cache line, so that
// a probe sequence (long for an absent key at this load: most lookups are,
// as a Check asks every segment) usually stays in one line; the entries are
// a parallel array of one cache line each. A lookup touches the key line
// and, when found, the entry's line; Prefetch starts the key line and the
// entry lines of the key's home slot and the next one (at this load most
// keys sit in one of the two). Key 0 is "empty" (Pair(object, relation) is
// never 0).
class OrTable {
 public:
  // `or_list` is the segment's, for the entries' inline items.
  void Build(const boost::unordered_flat_map<uint64_t, OrEntry>& from, const BigVector<OrItem>& or_list);
  const OrEntry* Find(uint64_t key) const {
    if (count_ == 0) return nullptr;
    for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &entries_[i].entry;
      if (keys_[i] == 0) return nullptr;
    }
  }
  // Starts loading what a Find(key) would look at first.
  void Prefetch(uint64_t key) const {
    if (count_ == 0) return;
    const size_t i = Hash(key) & mask_;
    __builtin_prefetch(&keys_[i]);
    __builtin_prefetch(&entries_[i]);
    __builtin_prefetch(&entries_[(i + 1) & mask_]);
  }
  template <typename F>
  void ForEach(F&& f) const {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] != 0) f(keys_[i], entries_[i].entry);
    }
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  size_t bytes() const { return keys_.capacity() * sizeof(uint64_t) + entries_.capacity() * sizeof(Line); }

 private:
  struct alignas(64) Line {
    OrEntry entry;
  };
  static_assert(sizeof(Line) == 64);
  static size_t Hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  BigVector<uint64_t> keys_;
  BigVector<Line> entries_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// Lookup of a symbol by its text, hashed once for every segment.
struct SymKey {
  std::string_view text;
  size_t hash;
};
size_t HashText(std::string_view s);

// A segment's text -> symbol index: open addressing (linear probing) whose
// slots carry part of the hash and the text's place in the segment's
// `chars`, so that a hit costs the slot and the text (two cache misses where
// a hash set of symbols costs four: metadata, element, the symbol's end
// offset, its text) and a miss usually the slot alone.
class SymTable {
 public:
  Sym Find(const SymKey& key, const std::string& chars) const {
    if (count_ == 0) return 0;
    const uint32_t tag = Tag(key.hash);
    for (size_t i = key.hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return 0;
      if (s.tag == tag && s.len == key.text.size() && chars.compare(s.begin, s.len, key.text) == 0) return s.sym;
    }
  }
  void Prefetch(size_t hash) const {
    if (count_ != 0) __builtin_prefetch(&slots_[hash & mask_]);
  }
  // `sym`'s text is chars[begin, begin + len); it must not be in the table.
  void Insert(size_t hash, Sym sym, uint32_t begin, uint32_t len, const std::string& chars) {
    if ((count_ + 1) * 10 > slots_.size() * 7) Resize(std::max<size_t>(16, slots_.size() * 2), chars);
    Place({Tag(hash), sym, begin, len}, hash);
    ++count_;
  }
  void Reserve(size_t n, const std::string& chars) {
    size_t cap = std::max<size_t>(16, slots_.size());
    while (n * 10 > cap * 7) cap *= 2;
    if (cap != slots_.size()) Resize(cap, chars);
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  size_t bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint32_t tag = 0;  // 0: empty
    Sym sym = 0;
    uint32_t begin = 0;
    uint32_t len = 0;
  };
  static uint32_t Tag(size_t hash) { return static_cast<uint32_t>(hash >> 32) | 1; }
  void Place(const Slot& slot, size_t hash) {
    size_t i = hash & mask_;
    while (slots_[i].tag != 0) i = (i + 1) & mask_;
    slots_[i] = slot;
  }
  void Resize(size_t cap, const std::string& chars);  // cap: a power of two
  BigVector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// One immutable layer of a TupleSet: the tuples written by a run of Writes,
// the symbols those writes introduced, the deletions of older tuples, and
// indexes over all of it. Shared between versions; never modified once
// published.
struct Segment {
  Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Symbols [sym_first, sym_first + sym_info.size()).
  Sym sym_first = 0;
  std::string chars;
  BigVector<uint32_t> sym_end;  // end offset in `chars` of each symbol
  BigVector<SymInfo> sym_info;
  SymTable sym_index;

  BigVector<Tuple> tuples;  // by seq
  BigVector<OrItem> or_list;
  BigVector<uint32_t> or_usersets;
  // Beside or_usersets (same index): the tuple's user, and whether it has a
  // condition, so that a userset can be ruled out without reading its tuple.
  struct UsersetItem {
    Sym user;
    bool conditional;
  };
  BigVector<UsersetItem> or_userset_items;
  OrTable by_or;  // Pair(object, relation) -> entry
  BigVector<uint32_t> user_list;
  BigMap<Sym, Range> by_user;
  BigMap<Triple, uint32_t, TripleHash> by_key;  // tuples of lists longer than kShortList
  // (user, object type, relation) -> range of utr_list (tuple indexes, in
  // seq order): a user's tuples in the lists of one type and relation.
  BigMap<Triple, Range, TripleHash> by_user_type_relation;
  BigVector<uint32_t> utr_list;
  BigVector<Sym> utr_objects;  // beside utr_list: the tuple's object (read without the tuple)
  boost::unordered_flat_set<uint32_t> tombstones;  // seqs of older tuples deleted here
  // Net count of live tuples mentioning an entity ("type:id" as object, user
  // or userset base; "type:*" as user) added by this segment (negative for
  // deletions of older tuples).
  boost::unordered_flat_map<Sym, int32_t> mentions;
  // Entities with a positive count here, by type symbol.
  BigVector<Sym> entity_list;
  BigMap<Sym, Range> entities_by_type;
  // Userset symbols ("o#r") used as tuple users here, by their base object.
  BigVector<Sym> userset_list;
  BigMap<Sym, Range> usersets_by_base;
  // The tuples whose user is a userset "base#via", by (base, via, object
  // type, relation): a step from an object through its userset into the
  // lists of one type and relation, in one lookup (range of usl_list, tuple
  // indexes; usl_objects beside it holds their objects).
  BigMap<UsersetStepKey, Range, UsersetStepHash> by_userset_step;
  BigVector<uint32_t> usl_list;
  BigVector<Sym> usl_objects;

  size_t sym_count() const { return sym_info.size(); }
  bool HasSym(Sym s) const { return s >= sym_first && s - sym_first < sym_info.size(); }
  std::string_view Text(Sym s) const {
    uint32_t i = s - sym_first;
    uint32_t b = i == 0 ? 0 : sym_end[i - 1];
    return std::string_view(chars).substr(b, sym_end[i] - b);
  }
  size_t weight() const { return tuples.size() + tombstones.size() + sym_info.size() / 4 + 1; }
  size_t MemoryBytes() const;
};

// The items of an entry's `all` list, in insertion order.
inline const OrItem* ItemsOf(const Segment& s, const OrEntry& e) {
  return e.all.count <= kInlineItems ? e.first : s.or_list.data() + e.all.begin;
}

// A TupleSet version: the segments, oldest first. Segments hold disjoint,
// increasing seq and symbol ranges.
struct SetData {
  std::vector<std::shared_ptr<const Segment>> segments;
  uint64_t revision = 0;
  uint64_t lineage = 0;
  uint32_t next_seq = 1;
  Sym next_sym = 1;
};

// A read view over some segments (a TupleSet's, optionally plus a
// per-request overlay of contextual tuples and request symbols). Not owning.
class View {
 public:
  View() = default;
  explicit View(const SetData& d);
  void Add(const Segment* s);  // a newer segment

  Sym next_sym() const { return next_sym_; }
  Sym Find(std::string_view text) const;  // 0 when absent ("" is 0 too)
  Sym Find(const SymKey& key) const;
  // Starts loading what a Find of `key` looks at first (several request
  // strings are then looked up in parallel rather than one after the other).
  void PrefetchFind(const SymKey& key) const {
    for (const Segment* s : segs_) s->sym_index.Prefetch(key.hash);
  }
  std::string_view Text(Sym s) const;
  // By value: a request overlay may grow (and move) its symbol table.
  SymInfo Info(Sym s) const;

  // Live tuples with this object and relation, in insertion order.
  template <typename F>
  void ForObjectRelation(Sym o, Sym r, F&& f) const {
    ForRange(o, r, false, f);
  }
  // Only those whose user is a userset.
  template <typename F>
  void ForObjectRelationUsersets(Sym o, Sym r, F&& f) const {
    ForRange(o, r, true, f);
  }
  template <typename F>
  void ForUser(Sym u, F&& f) const {
    for (size_t i = 0; i < segs_.size(); ++i) {
      const Segment& s = *segs_[i];
      auto it = s.by_user.find(u);
      if (it == s.by_user.end()) continue;
      for (uint32_t k = 0; k < it->second.count; ++k) {
        const Tuple& t = s.tuples[s.user_list[it->second.begin + k]];
        if (Deleted(i, t.seq)) continue;
        if (!f(t)) return;
      }
    }
  }
  // Every live tuple in insertion order; f returns false to stop.
  template <typename F>
  void ForAll(F&& f) const {
    for (size_t i = 0; i < segs_.size(); ++i) {
      for (const Tuple& t : segs_[i]->tuples) {
        if (Deleted(i, t.seq)) continue;
        if (!f(t)) return;
      }
    }
  }
  const Tuple* FindKey(Sym o, Sym r, Sym u) const;
  // Starts loading the (object, relation) entries of every segment (a hint:
  // lists about to be read are fetched from memory in parallel).
  void Prefetch(Sym o, Sym r) const {
    const uint64_t key = Pair(o, r);
    for (const Segment* s : segs_) s->by_or.Prefetch(key);
  }
  // Starts loading the tuples of (object, relation) (the first few) and
  // their users' SymInfo, and calls on_user(user) for each (a hint: the
  // tuples are about to be read and their users looked up).
  template <typename F>
  void PrefetchTuples(Sym o, Sym r, F&& on_user) const {
    const uint64_t key = Pair(o, r);
    for (const Segment* s : segs_) {
      const OrEntry* e = s->by_or.Find(key);
      if (e == nullptr) continue;
      const OrItem* items = ItemsOf(*s, *e);
      for (uint32_t k = 0; k < e->all.count && k < kInlineItems; ++k) {
        __builtin_prefetch(&s->tuples[items[k].tuple]);
        PrefetchInfo(items[k].user);
        on_user(items[k].user);
      }
    }
  }
  void PrefetchInfo(Sym sym) const {
    if (const Segment* s = sym == 0 ? nullptr : SegmentOf(sym)) __builtin_prefetch(&s->sym_info[sym - s->sym_first]);
  }
  // The live tuples with this user, an object of this type and this relation.
  template <typename F>
  void ForUserTypeRelation(Sym user, Sym type, Sym relation, F&& f) const {
    ForIndexed(&Segment::by_user_type_relation, Triple{user, type, relation},
             [&](size_t seg, const Segment& s, const Range& r) { LiveTuples(seg, s, r, s.utr_list, f); });
  }
  // Their objects only (read beside the index; a tuple is read only to see
  // whether a newer segment deleted it).
  template <typename F>
  void ForUserTypeRelationObjects(Sym user, Sym type, Sym relation, F&& f) const {
    ForIndexed(&Segment::by_user_type_relation, Triple{user, type, relation},
             [&](size_t seg, const Segment& s, const Range& r) { LiveObjects(seg, s, r, s.utr_list, s.utr_objects, f); });
  }
  // The live tuples whose user is the userset "base#via", of an object of
  // this type and this relation (a step through a userset, one lookup).
  template <typename F>
  void ForUsersetStep(Sym base, Sym via, Sym type, Sym relation, F&& f) const {
    ForIndexed(&Segment::by_userset_step, UsersetStepKey{base, via, type, relation},
             [&](size_t seg, const Segment& s, const Range& r) { LiveTuples(seg, s, r, s.usl_list, f); });
  }
  // Their objects only.
  template <typename F>
  void ForUsersetStepObjects(Sym base, Sym via, Sym type, Sym relation, F&& f) const {
    ForIndexed(&Segment::by_userset_step, UsersetStepKey{base, via, type, relation},
             [&](size_t seg, const Segment& s, const Range& r) { LiveObjects(seg, s, r, s.usl_list, s.usl_objects, f); });
  }
  // Whether some tuple (of any version of the segments, so possibly a
  // deleted one) has this user, an object of this type and this relation.
  bool MayHaveUserIn(Sym user, Sym type, Sym relation) const {
    const Triple key{user, type, relation};
    for (const Segment* s : segs_) {
      if (!s->by_user_type_relation.empty() && s->by_user_type_relation.contains(key)) return true;
    }
    return false;
  }

  // The segments' entries for (object, relation), oldest first; returns how
  // many (at most kMaxEntries).
  static constexpr size_t kMaxEntries = 16;
  struct SegEntry {
    size_t seg;
    const OrEntry* entry;
  };
  size_t Entries(Sym o, Sym r, SegEntry* out) const;
  // The live tuple with user `u` given the entries from Entries (newest
  // first, as FindKey). With `conditional`, also whether it has a
  // condition: false means that the tuple need not be read (unread here
  // when its list is short and no newer segment deletes anything).
  const Tuple* FindIn(const SegEntry* entries, size_t n, Sym o, Sym r, Sym u, bool* conditional = nullptr) const;
  // The userset tuples of the entries, in insertion order, as f(item,
  // tuple) where item is the Segment::UsersetItem and tuple() reads the
  // tuple (nullptr when a newer segment deleted it): a caller that can rule
  // the userset out from the item never reads the tuple. The users' SymInfo
  // are prefetched together first.
  template <typename F>
  void ForUsersetItemsIn(const SegEntry* entries, size_t n, F&& f) const {
    for (size_t k = 0; k < n; ++k) {
      const Segment& s = *segs_[entries[k].seg];
      const Range& rg = entries[k].entry->usersets;
      for (uint32_t j = 0; j < rg.count && j < 8; ++j) PrefetchInfo(s.or_userset_items[rg.begin + j].user);
    }
    for (size_t k = 0; k < n; ++k) {
      const size_t seg = entries[k].seg;
      const Segment& s = *segs_[seg];
      const Range& rg = entries[k].entry->usersets;
      for (uint32_t j = 0; j < rg.count; ++j) {
        auto tuple = [&]() -> const Tuple* {
          const Tuple& t = s.tuples[s.or_usersets[rg.begin + j]];
          return Deleted(seg, t.seq) ? nullptr : &t;
        };
        if (!f(s.or_userset_items[rg.begin + j], tuple)) return;
      }
    }
  }
  uint64_t ModifiedAt(Sym o, Sym r) const;
  int64_t MentionCount(Sym entity) const;
  // Entities of a type with live mentions (each once, unordered).
  void EntitiesOfType(Sym type, std::vector<Sym>* out) const;
  // Userset symbols "base#r" that are (or were) users of tuples.
  template <typename F>
  void ForUsersetsOf(Sym base, F&& f) const {
    for (const Segment* s : segs_) {
      auto it = s->usersets_by_base.find(base);
      if (it == s->usersets_by_base.end()) continue;
      for (uint32_t k = 0; k < it->second.count; ++k) f(s->userset_list[it->second.begin + k]);
    }
  }

  std::string TupleString(const Tuple& t) const;  // TupleKey::ToString of the tuple
  TupleView ToView(const Tuple& t) const;

 private:
  // f(segment index, segment, range) for each segment whose `index` has
  // `key` (the range is of the list the index points into).
  template <typename Index, typename Key, typename F>
  void ForIndexed(Index Segment::*index, const Key& key, F&& f) const {
    for (size_t i = 0; i < segs_.size(); ++i) {
      const Segment& s = *segs_[i];
      const Index& map = s.*index;
      if (map.empty()) continue;
      auto it = map.find(key);
      if (it != map.end()) f(i, s, it->second);
    }
  }
  // The tuples of `range` in `list` (tuple indexes) that no newer segment
  // deleted; LiveObjects: their objects, from `objects` beside `list`.
  template <typename F>
  void LiveTuples(size_t seg, const Segment& s, const Range& range, const BigVector<uint32_t>& list, F& f) const {
    for (uint32_t at = range.begin; at < range.begin + range.count; ++at) {
      const Tuple& t = s.tuples[list[at]];
      if (!Deleted(seg, t.seq)) f(t);
    }
  }
  template <typename F>
  void LiveObjects(size_t seg, const Segment& s, const Range& range, const BigVector<uint32_t>& list,
                   const BigVector<Sym>& objects, F& f) const {
    const bool deletions = DeletionsAfter(seg);
    for (uint32_t at = range.begin; at < range.begin + range.count; ++at) {
      if (!deletions || !Deleted(seg, s.tuples[list[at]].seq)) f(objects[at]);
    }
  }
  bool DeletionsAfter(size_t seg) const {
    for (size_t j = seg + 1; j < segs_.size(); ++j) {
      if (!segs_[j]->tombstones.empty()) return true;
    }
    return false;
  }
  bool Deleted(size_t seg, uint32_t seq) const {
    for (size_t j = seg + 1; j < segs_.size(); ++j) {
      if (!segs_[j]->tombstones.empty() && segs_[j]->tombstones.contains(seq)) return true;
    }
    return false;
  }
  template <typename F>
  void ForRange(Sym o, Sym r, bool usersets, F& f) const {
    const uint64_t key = Pair(o, r);
    for (size_t i = 0; i < segs_.size(); ++i) {
      const Segment& s = *segs_[i];
      const OrEntry* e = s.by_or.Find(key);
      if (e == nullptr) continue;
      if (usersets) {
        for (uint32_t k = 0; k < e->usersets.count; ++k) {
          const Tuple& t = s.tuples[s.or_usersets[e->usersets.begin + k]];
          if (Deleted(i, t.seq)) continue;
          if (!f(t)) return;
        }
        continue;
      }
      const OrItem* items = ItemsOf(s, *e);
      for (uint32_t k = 0; k < e->all.count; ++k) {
        const Tuple& t = s.tuples[items[k].tuple];
        if (Deleted(i, t.seq)) continue;
        if (!f(t)) return;
      }
    }
  }
  const Segment* SegmentOf(Sym s) const;

  // Inline: a View is made per request (Overlay), and a set has at most
  // kMaxSegments segments (tuples.cc) plus the overlay's two.
  boost::container::small_vector<const Segment*, 12> segs_;
  Sym next_sym_ = 1;
};

// Builds a segment holding `tuples` (already interned), with symbols
// [sym_first, ...) taken from `syms` (texts, in id order).
struct SegmentBuilder {
  std::shared_ptr<Segment> seg = std::make_shared<Segment>();
  const View* older = nullptr;  // symbols below seg->sym_first
  // Interns `text` (looks in `older`, then in the new segment).
  Sym Intern(std::string_view text);
  std::shared_ptr<const Segment> Finish(std::vector<Tuple> tuples,
                                        boost::unordered_flat_map<uint64_t, uint64_t> modified,
                                        boost::unordered_flat_map<Sym, int32_t> mentions,
                                        boost::unordered_flat_set<uint32_t> tombstones);
};

// The (object, relation) tuple lists one Check read: symbols of the store's
// lineage (Pair(object, relation)), or text for request-only strings.
struct ReadSet {
  std::vector<uint64_t> ids;
  std::vector<std::pair<std::string, std::string>> names;
};

// Grants engine.cc access to a TupleSet's data.
struct TupleSetAccess {
  static const SetData& Data(const TupleSet& t);
};

// Adds the per-request contextual tuples (validated, deduplicated, without
// those already in `base`) as an overlay segment over `base`; request strings
// can be interned into the same overlay later (Intern).
class Overlay {
 public:
  explicit Overlay(const SetData& base);
  Status AddTuples(const Model& model, const std::vector<TupleKey>& contextual);
  Sym Intern(std::string_view text) { return Intern(SymKey{text, HashText(text)}); }
  Sym Intern(const SymKey& key);
  const View& view() const { return view_; }
  bool has_tuples() const { return has_tuples_; }

 private:
  View base_view_;
  std::shared_ptr<const Segment> seg_;
  // Symbols interned after the tuples: a second, growing segment.
  std::shared_ptr<Segment> extra_;
  View view_;
  bool has_tuples_ = false;
};

}  // namespace aigis::authz::internal

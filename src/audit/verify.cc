// The offline verifier: recomputes a log's tree from its records and checks
// it against signed checkpoints, naming the first bad index and the kind of
// damage.
//
// What the evidence allows:
// * A signed checkpoint authenticates a root. If the root recomputed from
//   the records matches, every record up to that size is authentic.
// * The leaf hashes listed next to the records (the export's "leaf_hash",
//   the log's tree file) localise damage: when the root of the *listed*
//   hashes matches the checkpoint, they are authentic too, and the first
//   record whose own hash differs from its listed one is the first bad
//   index. A record whose hash is listed at another index was moved
//   (reordered); otherwise it was modified.
// * Gaps and repeats in the index sequence show deleted and reordered
//   lines; a checkpoint beyond the last record shows truncation.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "audit/internal.h"
#include "crypto/crypto.h"

namespace aigis::audit {

std::string VerifyReport::ToString() const {
  if (ok) return fmt::format("ok: {} records, {} checkpoints verified", records, checkpoints);
  return fmt::format("FAILED: {}{}: {}", kind, index ? fmt::format(" at index {}", *index) : "", message);
}

namespace internal {

namespace {

VerifyReport Fail(std::string kind, std::optional<uint64_t> index, std::string message) {
  VerifyReport r;
  r.kind = std::move(kind);
  r.index = index;
  r.message = std::move(message);
  return r;
}

}  // namespace

VerifyReport Verify(const VerifyInput& in, const std::function<Result<bool>(ListedRecord*)>& next) {
  // 1. Checkpoints: every signature, then by size.
  std::vector<Checkpoint> cps;
  std::vector<std::string> notes = in.notes;
  std::sort(notes.begin(), notes.end());
  notes.erase(std::unique(notes.begin(), notes.end()), notes.end());  // the same note given twice
  for (const auto& note : notes) {
    auto cp = ParseCheckpoint(note);
    if (!cp.ok()) return Fail("malformed", std::nullopt, cp.status().message());
    if (Status st = VerifyNote(note, in.keys); !st.ok()) {
      return Fail("bad_signature", std::nullopt, fmt::format("checkpoint of size {}: {}", cp->size, st.message()));
    }
    cps.push_back(std::move(cp).value());
  }
  if (cps.empty()) return Fail("malformed", std::nullopt, "no checkpoint to verify against");
  std::sort(cps.begin(), cps.end(), [](const Checkpoint& a, const Checkpoint& b) { return a.size < b.size; });
  for (size_t i = 1; i < cps.size(); ++i) {
    if (cps[i].size == cps[i - 1].size && cps[i].root != cps[i - 1].root) {
      return Fail("inconsistent", cps[i].size == 0 ? std::nullopt : std::optional<uint64_t>(cps[i].size - 1),
                  fmt::format("two signed checkpoints of size {} have different roots", cps[i].size));
    }
  }

  auto frontier = Frontier::FromPeaks(in.from, in.frontier);
  if (!frontier.ok()) return Fail("malformed", std::nullopt, "the frontier: " + frontier.status().message());
  Frontier listed = *frontier, actual = *frontier;

  VerifyReport report;
  uint64_t expected = in.from;
  // The first anomalies seen, by kind.
  std::optional<uint64_t> gap_at;               // an index that was skipped
  bool gap_seen_later = false;                  // ... and appeared later (reordered)
  std::optional<uint64_t> out_of_order_at;      // an index that came again or too early
  std::optional<uint64_t> first_mismatch;       // record hash != listed hash
  std::string first_mismatch_hash;              // the record's own hash there
  std::optional<uint64_t> moved_from;           // that hash is listed at this index
  size_t cp = 0;
  while (cp < cps.size() && cps[cp].size < in.from) ++cp;  // not coverable by these records
  uint64_t skipped_cps = cp;
  std::optional<VerifyReport> root_failure;

  // Checkpoints of the size the records start at: the tree before them (the
  // empty tree, or the export's frontier) must have their root.
  for (; cp < cps.size() && cps[cp].size == in.from; ++cp) {
    if (actual.Root() == cps[cp].root) {
      ++report.checkpoints;
      continue;
    }
    return in.from == 0 ? Fail("inconsistent", std::nullopt, "a signed checkpoint of size 0 does not hold the empty tree")
                        : Fail("malformed", std::nullopt,
                               fmt::format("the frontier does not match the signed checkpoint of size {}", in.from));
  }

  ListedRecord rec;
  for (;;) {
    auto more = next(&rec);
    if (!more.ok()) return Fail("malformed", expected, more.status().message());
    if (!*more) break;
    ++report.records;
    if (gap_at && rec.index == *gap_at) gap_seen_later = true;
    if (first_mismatch && !moved_from && rec.leaf_hash == first_mismatch_hash) moved_from = rec.index;
    if (gap_at || out_of_order_at) continue;  // the sequence is broken: only classifying now
    if (rec.index != expected) {
      if (rec.index > expected) {
        gap_at = expected;
      } else {
        out_of_order_at = expected;
      }
      continue;
    }
    if (!rec.hashed) LeafHashTo(rec.record, rec.own_hash.data());
    std::string_view own(rec.own_hash.data(), kHashSize);
    if (rec.leaf_hash.empty()) rec.leaf_hash = own;
    if (own != rec.leaf_hash && !first_mismatch) {
      first_mismatch = rec.index;
      first_mismatch_hash.assign(own);
      listed = actual;  // the two trees part here
    }
    // Until they part, the listed tree is the actual one: one fold, not two.
    if (first_mismatch) listed.Append(rec.leaf_hash);
    actual.Append(own);
    ++expected;
    for (; cp < cps.size() && cps[cp].size == expected; ++cp) {
      if (actual.Root() == cps[cp].root) {
        ++report.checkpoints;
        continue;
      }
      if (!root_failure) {
        std::string why = (first_mismatch ? listed : actual).Root() == cps[cp].root
                              ? "its hash differs from the one the signed tree holds"
                              : "the records and their listed hashes do not match the signed root";
        root_failure = Fail("modified", first_mismatch,
                            fmt::format("records up to {} do not match the checkpoint of size {}: {}", expected - 1,
                                        cps[cp].size, why));
      }
    }
  }

  // 2. The first anomaly by index wins.
  std::vector<VerifyReport> found;
  if (root_failure) {
    VerifyReport r = *root_failure;
    if (first_mismatch && moved_from && *moved_from != *first_mismatch) {
      r.kind = "reordered";
      r.message = fmt::format("the record at index {} is the one the signed tree holds at index {}", *first_mismatch,
                              *moved_from);
    } else if (first_mismatch) {
      r.message = fmt::format("the record at index {} was modified: {}", *first_mismatch, r.message);
    }
    found.push_back(std::move(r));
  }
  if (gap_at) {
    found.push_back(gap_seen_later
                        ? Fail("reordered", gap_at, fmt::format("index {} appears later, out of order", *gap_at))
                        : Fail("missing", gap_at, fmt::format("index {} is missing", *gap_at)));
  }
  if (out_of_order_at) {
    found.push_back(Fail("reordered", out_of_order_at,
                         fmt::format("an earlier index appears where index {} should be", *out_of_order_at)));
  }
  if (!gap_at && !out_of_order_at && cp < cps.size()) {
    found.push_back(Fail("truncated", expected,
                         fmt::format("the records end before index {}, but a signed checkpoint covers {} records",
                                     expected, cps.back().size)));
  }
  if (!found.empty()) {
    auto first = std::min_element(found.begin(), found.end(), [](const VerifyReport& a, const VerifyReport& b) {
      return a.index.value_or(UINT64_MAX) < b.index.value_or(UINT64_MAX);
    });
    VerifyReport r = *first;
    r.records = report.records;
    r.checkpoints = report.checkpoints;
    return r;
  }
  if (report.checkpoints == 0) {
    return Fail("malformed", std::nullopt,
                fmt::format("no checkpoint covers these records (indexes {} to {}; {} checkpoints are older)", in.from,
                            expected == 0 ? 0 : expected - 1, skipped_cps));
  }
  report.ok = true;
  return report;
}

}  // namespace internal

VerifyReport VerifyExport(std::istream& lines, const std::vector<std::string>& checkpoint_notes,
                          const std::vector<VerifierKey>& keys) {
  namespace json = boost::json;
  internal::VerifyInput in;
  in.notes = checkpoint_notes;
  in.keys = keys;
  std::string line;
  uint64_t line_no = 1;
  auto bad = [](uint64_t n, std::string why) {
    VerifyReport r;
    r.kind = "malformed";
    r.message = fmt::format("line {}: {}", n, why);
    return r;
  };
  if (!std::getline(lines, line)) return bad(1, "the export is empty");
  {
    json::error_code ec;
    json::value h = json::parse(line, ec);
    if (ec || !h.is_object() || !h.as_object().contains("aigis_audit_export")) {
      return bad(1, "not an aigis audit export header");
    }
    const auto& o = h.as_object();
    const json::value* from = o.if_contains("from");
    if (from == nullptr || !from->is_number()) return bad(1, "the header has no \"from\"");
    in.from = from->to_number<uint64_t>(ec);
    if (ec) return bad(1, "\"from\" is not an index");
    // The export's own checkpoint counts like one given separately: its
    // signature is what makes it trustworthy, not where it came from.
    if (const json::value* c = o.if_contains("checkpoint"); c != nullptr && c->is_string()) {
      in.notes.emplace_back(c->as_string().data(), c->as_string().size());
    }
    if (const json::value* f = o.if_contains("frontier"); f != nullptr && f->is_array()) {
      for (const auto& p : f->as_array()) {
        auto raw = p.is_string() ? crypto::Base64Decode(std::string_view(p.as_string())) : Result<std::string>(InvalidArgument(""));
        if (!raw.ok()) return bad(1, "a frontier hash is not base64");
        in.frontier.push_back(std::move(raw).value());
      }
    }
  }
  auto next = [&](internal::ListedRecord* rec) -> Result<bool> {
    while (std::getline(lines, line)) {
      ++line_no;
      if (line.empty()) continue;
      json::error_code ec;
      json::value v = json::parse(line, ec);
      if (ec || !v.is_object()) return InvalidArgument(fmt::format("line {}: not JSON", line_no));
      const auto& o = v.as_object();
      const json::value* index = o.if_contains("index");
      const json::value* record = o.if_contains("record");
      if (index == nullptr || record == nullptr) {
        return InvalidArgument(fmt::format("line {}: needs \"index\" and \"record\"", line_no));
      }
      rec->index = index->to_number<uint64_t>(ec);
      if (ec) return InvalidArgument(fmt::format("line {}: \"index\" is not an index", line_no));
      auto canonical = Canonicalize(json::serialize(*record));
      // A record that is no longer canonical JSON was edited: hash what is there.
      rec->storage = canonical.ok() ? std::move(canonical).value() : json::serialize(*record);
      rec->record = rec->storage;
      rec->leaf_hash = {};
      rec->hashed = false;
      if (const json::value* h = o.if_contains("leaf_hash"); h != nullptr && h->is_string()) {
        auto raw = crypto::Base64Decode(std::string_view(h->as_string()));
        if (!raw.ok() || raw->size() != kHashSize) {
          return InvalidArgument(fmt::format("line {}: \"leaf_hash\" is not a base64 SHA-256 hash", line_no));
        }
        rec->listed_storage = std::move(raw).value();
        rec->leaf_hash = rec->listed_storage;
      }
      return true;
    }
    return false;
  };
  return internal::Verify(in, next);
}

namespace {

// A tenant directory's records, read, parsed and hashed ahead of the fold
// by two threads, chunk by chunk; Next yields them in order.
//
// The records are read with pread into buffers kept per chunk slot rather
// than hashed from a mapping: here, hashing from a buffer that was just
// copied is about twice as fast (the copy goes through the kernel's huge
// pages and leaves the bytes in cache; a 4 KiB mapping misses the TLB on
// every page). A chunk whose index entries do not describe its bytes
// (damage) is parsed from the mapping instead, so every error reads the
// same either way.
class DirReader {
 public:
  struct Files {
    int records_fd = -1;
    std::string_view records, index, tree;  // mappings
    uint64_t n = 0;                          // records to read
    uint64_t tree_leaves = 0;                // leaves the tree file lists
  };
  explicit DirReader(Files f) : f_(f), chunks_((f.n + kChunk - 1) / kChunk) {
    for (auto& t : threads_) t = std::thread([this] { Work(); });
  }
  ~DirReader() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  DirReader(const DirReader&) = delete;
  DirReader& operator=(const DirReader&) = delete;

  // The records in index order; the first damage the index shows comes
  // after the records before it, as an error naming its index.
  Result<bool> Next(internal::ListedRecord* rec) {
    while (current_ == nullptr || pos_ >= current_->done) {
      if (current_ != nullptr) {
        Status status = current_->status;
        bool whole = current_->done == current_->to - current_->from;
        end_offset_ = current_->end_offset;
        Release();
        RETURN_IF_ERROR(status);
        if (!whole) return false;  // the records file ends in that chunk
      }
      if (next_ >= chunks_) return false;
      Slot& s = slots_[next_ % kSlots];
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return s.ready && s.chunk == next_; });
      }
      current_ = &s;
      pos_ = 0;
      ++next_;
      // A chunk counts only if it continues where the one before ended (the
      // first one, at byte 0).
      if ((s.done > 0 || !s.status.ok()) && s.first_offset != end_offset_) {
        return InvalidArgument(fmt::format("index {}: the index points at byte {}, the previous record ends at {}",
                                           s.from, s.first_offset, end_offset_));
      }
    }
    *rec = std::move(current_->records[pos_++]);
    return true;
  }

 private:
  static constexpr uint64_t kChunk = 512;
  static constexpr size_t kSlots = 32;  // chunks in flight: 16,384 records
  // Chunks larger than this (big records, bodies captured) are parsed from
  // the mapping, so that the slots hold at most kSlots * kMaxBuffer (256 MiB,
  // 20 MiB for records of 1.3 KB).
  static constexpr uint64_t kMaxBuffer = 8u << 20;
  struct Slot {
    // Set by the worker that fills it.
    uint64_t chunk = 0, from = 0, to = 0;
    uint64_t done = 0;  // records parsed, from `from`
    uint64_t first_offset = 0, end_offset = 0;
    bool outside = false;  // a frame runs past the buffer but not past the file
    Status status = Status::Ok();
    std::vector<internal::ListedRecord> records;
    std::unique_ptr<char[]> bytes;
    size_t capacity = 0;
    bool ready = false;  // guarded by mu_
  };

  uint64_t OffsetOf(uint64_t idx) const {
    return internal::DecodeIndex(f_.index.substr(idx * internal::kIndexEntry, internal::kIndexEntry)).offset;
  }

  void Release() {
    {
      std::lock_guard lock(mu_);
      current_->ready = false;
      ++consumed_;
    }
    cv_.notify_all();
    current_ = nullptr;
  }

  void Work() {
    for (;;) {
      uint64_t c;
      {
        std::unique_lock lock(mu_);
        if (stop_ || taken_ >= chunks_) return;
        c = taken_++;
        // The slot is free once the chunk kSlots before has been consumed.
        cv_.wait(lock, [&] { return stop_ || consumed_ + kSlots > c; });
        if (stop_) return;
      }
      Slot& s = slots_[c % kSlots];
      Fill(s, c);
      {
        std::lock_guard lock(mu_);
        s.ready = true;
      }
      cv_.notify_all();
    }
  }

  void Fill(Slot& s, uint64_t c) {
    s.chunk = c;
    s.from = c * kChunk;
    s.to = std::min(f_.n, s.from + kChunk);
    s.records.resize(s.to - s.from);
    // The bytes the index says the chunk spans, if it says so sanely.
    uint64_t a = OffsetOf(s.from);
    uint64_t b = s.to < f_.n ? OffsetOf(s.to) : f_.records.size();
    if (a <= b && b <= f_.records.size() && b - a <= kMaxBuffer) {
      if (s.capacity < b - a) {
        s.capacity = static_cast<size_t>(std::min(kMaxBuffer, b - a + (b - a) / 4));
        s.bytes.reset(new char[s.capacity]);
      }
      bool read = true;
      for (uint64_t at = a; at < b;) {
        ssize_t got = ::pread(f_.records_fd, s.bytes.get() + (at - a), static_cast<size_t>(b - at), static_cast<off_t>(at));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          read = false;
          break;
        }
        at += static_cast<uint64_t>(got);
      }
      if (read) {
        Parse(s, std::string_view(s.bytes.get(), static_cast<size_t>(b - a)), a, b == f_.records.size());
        if (!s.outside) return;
      }
    }
    Parse(s, f_.records, 0, true);  // the index misleads (or the read failed): from the mapping
  }

  // From `view`, which holds the records file from byte `view_at` (to its
  // end if `at_end`).
  void Parse(Slot& s, std::string_view view, uint64_t view_at, bool at_end) const {
    s.done = 0;
    s.outside = false;
    s.status = Status::Ok();
    uint64_t expected = 0;
    uint64_t view_end = view_at + view.size();
    for (uint64_t idx = s.from; idx < s.to; ++idx) {
      uint64_t offset = OffsetOf(idx);
      if (idx == s.from) expected = s.first_offset = offset;
      if (offset != expected) {
        s.status = InvalidArgument(fmt::format("index {}: the index points at byte {}, the previous record ends at {}",
                                               idx, offset, expected));
        break;
      }
      // A file that ends early is truncation (Verify reports it against the
      // checkpoints), not a parse error.
      if (offset < view_at || offset + 4 > view_end) {
        s.outside = !at_end || offset < view_at;
        break;
      }
      const char* frame = view.data() + (offset - view_at);
      uint32_t l = 0;
      for (int k = 3; k >= 0; --k) l = (l << 8) | static_cast<unsigned char>(frame[k]);
      if (l > internal::kMaxRecord) {
        s.status = InvalidArgument(fmt::format("index {}: a frame of {} bytes", idx, l));
        break;
      }
      if (offset + 4 + l > view_end) {
        s.outside = !at_end;
        break;
      }
      internal::ListedRecord& r = s.records[idx - s.from];
      r.index = idx;
      r.record = std::string_view(frame + 4, l);
      r.leaf_hash = idx < f_.tree_leaves ? f_.tree.substr(internal::LeafPosition(idx) * kHashSize, kHashSize)
                                         : std::string_view();
      internal::LeafHashTo(r.record, r.own_hash.data());
      r.hashed = true;
      expected = offset + 4 + l;
      ++s.done;
    }
    s.end_offset = expected;
  }

  const Files f_;
  const uint64_t chunks_;
  std::array<Slot, kSlots> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t taken_ = 0, consumed_ = 0;  // guarded by mu_
  bool stop_ = false;                  // guarded by mu_
  // The consumer's.
  uint64_t next_ = 0;  // the next chunk to consume
  Slot* current_ = nullptr;
  size_t pos_ = 0;
  uint64_t end_offset_ = 0;  // where the last chunk consumed ended
  std::array<std::thread, 2> threads_;
};

// Verifies `size` records (all the index file holds, when nullopt) of a
// tenant directory; the log uses it with its durable size.
VerifyReport VerifyTenantDir(const std::string& dir, const std::string& tenant, std::vector<VerifierKey> keys,
                             std::optional<uint64_t> size, std::optional<std::vector<std::string>> notes) {
  auto fail = [](std::string why) {
    VerifyReport r;
    r.kind = "malformed";
    r.message = std::move(why);
    return r;
  };
  if (!internal::ValidTenant(tenant)) return fail(fmt::format("bad tenant name \"{}\"", tenant));
  if (keys.empty()) {
    auto k = internal::ReadPublicKeys(dir);
    if (!k.ok()) return fail(k.status().message());
    keys = std::move(k).value();
  }
  std::string base = dir + "/" + tenant + "/";
  struct Fd {
    int fd = -1;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  } records, index, tree;
  records.fd = ::open((base + "records").c_str(), O_RDONLY | O_CLOEXEC);
  index.fd = ::open((base + "index").c_str(), O_RDONLY | O_CLOEXEC);
  tree.fd = ::open((base + "tree").c_str(), O_RDONLY | O_CLOEXEC);
  if (records.fd < 0 || index.fd < 0 || tree.fd < 0) return fail(fmt::format("{}: the log files are missing", base));
  struct stat st {};
  ::fstat(index.fd, &st);
  uint64_t n = size.value_or(static_cast<uint64_t>(st.st_size) / internal::kIndexEntry);
  ::fstat(tree.fd, &st);
  uint64_t tree_leaves = n;
  while (tree_leaves > 0 && internal::TreeNodes(tree_leaves) * kHashSize > static_cast<uint64_t>(st.st_size)) --tree_leaves;

  internal::VerifyInput in;
  if (notes) {
    in.notes = std::move(*notes);
  } else {
    auto read = internal::ReadCheckpointNotes(base + "checkpoints");
    if (!read.ok()) return fail(read.status().message());
    in.notes = std::move(read).value();
  }
  in.keys = std::move(keys);
  // The files mapped read-only (DirReader reads the records themselves
  // with pread, and falls back on the mapping for damaged chunks).
  struct Map {
    const char* data = nullptr;
    size_t size = 0;
    ~Map() {
      if (data != nullptr) ::munmap(const_cast<char*>(data), size);
    }
    bool Open(int fd) {
      struct stat st {};
      if (::fstat(fd, &st) != 0) return false;
      size = static_cast<size_t>(st.st_size);
      if (size == 0) return true;
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        size = 0;
        return false;
      }
      ::madvise(p, size, MADV_SEQUENTIAL);
      data = static_cast<const char*>(p);
      return true;
    }
    std::string_view View() const { return {data, size}; }
  } rmap, imap, tmap;
  if (!rmap.Open(records.fd) || !imap.Open(index.fd) || !tmap.Open(tree.fd)) {
    return fail(fmt::format("{}: cannot map the log files", base));
  }
  std::string_view rview = rmap.View(), iview = imap.View(), tview = tmap.View();
  n = std::min<uint64_t>(n, iview.size() / internal::kIndexEntry);

  DirReader reader({.records_fd = records.fd, .records = rview, .index = iview, .tree = tview, .n = n,
                    .tree_leaves = tree_leaves});
  return internal::Verify(in, [&](internal::ListedRecord* rec) { return reader.Next(rec); });
}

}  // namespace

VerifyReport VerifyDirectory(const std::string& dir, const std::string& tenant, std::vector<VerifierKey> keys) {
  return VerifyTenantDir(dir, tenant, std::move(keys), std::nullopt, std::nullopt);
}

namespace internal {
VerifyReport VerifyLive(const std::string& dir, const std::string& tenant, std::vector<VerifierKey> keys,
                        uint64_t size, std::vector<std::string> notes) {
  return VerifyTenantDir(dir, tenant, std::move(keys), size, std::move(notes));
}
}  // namespace internal

}  // namespace aigis::audit

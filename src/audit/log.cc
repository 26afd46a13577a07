// The log: per-tenant append-only files, one writer thread with group
// commit, recovery of a torn tail, checkpoints, reads and proofs.
//
// Why files and not SQLite (which holds everything else): the log is
// append-only and its hot path is "write a batch, make it durable, say so".
// Three sequential appends and one fdatasync each per batch do that at disk
// speed, with no B-tree, no WAL copy and no per-row overhead; a proof is
// O(log n) reads at computed offsets in the tree file; and the files are
// simple enough for an outsider to read (docs/audit.md). Reads by request id
// scan the 24-byte index entries (~240 MB at 10M records), which is fine for
// an admin call.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "audit/internal.h"
#include "crypto/crypto.h"

namespace aigis::audit {

using namespace internal;  // NOLINT: this file is the layout's main user

namespace {

constexpr std::string_view kHeadMagic = "AIGISAH1";
constexpr size_t kHeadSize = 8 + 8 + kHashSize + kHashSize;

int64_t Micros(WallTime t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

Status SyncFd(int fd, const std::string& what) {
  if (::fdatasync(fd) != 0) return Internal(fmt::format("audit: syncing {}: {}", what, std::strerror(errno)));
  return Status::Ok();
}

Status SyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Internal(fmt::format("audit: opening {}: {}", path, std::strerror(errno)));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Internal(fmt::format("audit: syncing {}: {}", path, std::strerror(errno)));
  return Status::Ok();
}

Result<int> OpenFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Internal(fmt::format("audit: opening {}: {}", path, std::strerror(errno)));
  return fd;
}

uint64_t FileSize(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

uint32_t GetU32(std::string_view b) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[static_cast<size_t>(i)]);
  return v;
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetU64(std::string_view b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[static_cast<size_t>(i)]);
  return v;
}

// One tenant's tree and files.
struct TenantLog {
  std::string name, path;  // path ends in '/'
  int records = -1, index = -1, tree = -1, head = -1;
  // Owned by the writer thread (and Open, before it starts).
  Frontier frontier;
  uint64_t records_end = 0;
  // Assigned under Log::Impl::queue_mu.
  uint64_t next_index = 0;
  // Published by the writer.
  std::atomic<uint64_t> durable{0};
  mutable std::mutex mu;  // durable_root, waiters, checkpoint state
  std::string durable_root = EmptyRoot();
  std::multimap<uint64_t, std::function<void(Status)>> waiters;
  std::optional<Checkpoint> latest;
  std::mutex checkpoint_mu;  // one issuer at a time; the checkpoints file
  uint64_t checkpoints = 0;
  // The writer's buffers for one batch (records, index, tree), kept between
  // batches: a fresh 10 MB buffer per batch is page faults, every time.
  std::array<std::string, 3> batch_bufs;
  uint64_t batch_first = 0;
  uint64_t batch_number = 0;  // the writer's batch these buffers are for
  uint64_t sync_round = 0;    // the syncer's last round that synced this tenant

  ~TenantLog() {
    for (int fd : {records, index, tree, head}) {
      if (fd >= 0) ::close(fd);
    }
  }

  TreeFile Tree(uint64_t size) const { return TreeFile(tree, size, path + "tree"); }

  // Allocates the records file's blocks ahead of the writes (an eighth of
  // the file, 1 to 64 MiB at a time, so small tenants stay small) without
  // changing its size (FALLOC_FL_KEEP_SIZE): extending a file
  // block by block is what limits a single writer on ext4 and xfs. Best
  // effort: a file system without fallocate just extends as it goes.
  uint64_t records_reserved = 0;
  void Reserve(int fd, uint64_t* reserved, uint64_t need) {
    if (need <= *reserved) return;
    uint64_t step = std::clamp<uint64_t>(need / 8, 1ull << 20, 64ull << 20);
    uint64_t to = need + step;
    if (::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(*reserved), static_cast<off_t>(to - *reserved)) == 0) {
      *reserved = to;
    } else {
      *reserved = UINT64_MAX;  // not supported: stop trying
    }
  }

  Result<IndexEntry> Entry(uint64_t i) const {
    ASSIGN_OR_RETURN(std::string b, ReadAt(index, kIndexEntry, i * kIndexEntry, path + "index"));
    return DecodeIndex(b);
  }

  Result<std::string> RecordAt(uint64_t offset) const {
    ASSIGN_OR_RETURN(std::string len, ReadAt(records, 4, offset, path + "records"));
    uint32_t l = GetU32(len);
    if (l > kMaxRecord) return Internal(fmt::format("audit: {}records: a frame of {} bytes at {}", path, l, offset));
    return ReadAt(records, l, offset + 4, path + "records");
  }

  void WriteHead(uint64_t size, const std::string& root) {
    std::string h(kHeadMagic);
    PutU64(h, size);
    h += root;
    h += crypto::Sha256(h);
    (void)WriteAt(head, h, 0, path + "head");  // a hint: recovery does not depend on it
  }

  // The size the head file vouches for, if it is intact and the files hold it.
  uint64_t TrustedSize(uint64_t n_index, uint64_t tree_bytes) {
    auto h = ReadAt(head, kHeadSize, 0, path + "head");
    if (!h.ok() || h->substr(0, 8) != kHeadMagic) return 0;
    if (crypto::Sha256(std::string_view(*h).substr(0, kHeadSize - kHashSize)) != h->substr(kHeadSize - kHashSize)) return 0;
    uint64_t size = GetU64(std::string_view(*h).substr(8, 8));
    if (size > n_index || TreeNodes(size) * kHashSize > tree_bytes) return 0;
    return size;
  }

  // Finds the durable prefix and cuts what is beyond it (a batch that was
  // being written when the process died; never acknowledged).
  Status Recover() {
    uint64_t n_index = FileSize(index) / kIndexEntry;
    uint64_t tree_bytes = FileSize(tree), records_bytes = FileSize(records);
    uint64_t trusted = TrustedSize(n_index, tree_bytes);
    // Checkpoints are only ever of durable sizes: the head may lag them.
    if (latest && latest->size > trusted) {
      if (latest->size > n_index || TreeNodes(latest->size) * kHashSize > tree_bytes) {
        return Internal(fmt::format(
            "audit: {}: a signed checkpoint covers {} records but the files hold fewer: records were lost or "
            "removed; run `aigis audit verify` and restore the log from a copy",
            path, latest->size));
      }
      trusted = latest->size;
    }
    ASSIGN_OR_RETURN(std::vector<std::string> peaks, Peaks(Tree(trusted), trusted));
    ASSIGN_OR_RETURN(frontier, Frontier::FromPeaks(trusted, std::move(peaks)));
    records_end = 0;
    if (trusted > 0) {
      ASSIGN_OR_RETURN(IndexEntry last, Entry(trusted - 1));
      ASSIGN_OR_RETURN(std::string len, ReadAt(records, 4, last.offset, path + "records"));
      records_end = last.offset + 4 + GetU32(len);
    }
    // The tail beyond `trusted`: keep each record whose frame is whole and
    // whose hash the tree file holds at its leaf.
    std::string nodes;
    uint64_t n = trusted;
    for (; n < n_index; ++n) {
      auto e = Entry(n);
      if (!e.ok() || e->offset != records_end || e->offset + 4 > records_bytes) break;
      auto len = ReadAt(records, 4, e->offset, path + "records");
      if (!len.ok() || GetU32(*len) > kMaxRecord || e->offset + 4 + GetU32(*len) > records_bytes) break;
      auto bytes = ReadAt(records, GetU32(*len), e->offset + 4, path + "records");
      if (!bytes.ok()) break;
      std::string leaf = LeafHash(*bytes);
      auto stored = ReadAt(tree, kHashSize, LeafPosition(n) * kHashSize, path + "tree");
      if (!stored.ok() || *stored != leaf) break;
      std::vector<std::string> completed;
      frontier.Append(leaf, &completed);
      for (const auto& c : completed) nodes += c;
      records_end = e->offset + 4 + GetU32(*len);
    }
    if (n > trusted || n_index > n || tree_bytes > TreeNodes(n) * kHashSize || records_bytes > records_end) {
      if (n_index > n) spdlog::warn("audit: {}: dropping {} record(s) that were never durable", path, n_index - n);
      // Rewrite the tail's nodes in place (a torn parent is repaired; the
      // leaves kept are unchanged), then cut the files.
      RETURN_IF_ERROR(WriteAt(tree, nodes, TreeNodes(trusted) * kHashSize, path + "tree"));
      if (::ftruncate(tree, static_cast<off_t>(TreeNodes(n) * kHashSize)) != 0 ||
          ::ftruncate(index, static_cast<off_t>(n * kIndexEntry)) != 0 ||
          ::ftruncate(records, static_cast<off_t>(records_end)) != 0) {
        return Internal(fmt::format("audit: {}: truncating a torn tail: {}", path, std::strerror(errno)));
      }
      for (auto [fd, f] : {std::pair{tree, "tree"}, {index, "index"}, {records, "records"}}) {
        RETURN_IF_ERROR(SyncFd(fd, path + f));
      }
    }
    next_index = n;
    durable.store(n);
    durable_root = frontier.Root();
    WriteHead(n, durable_root);
    return Status::Ok();
  }
};

struct Item {
  TenantLog* tenant;
  uint64_t index;
  std::string record;
  std::array<char, kHashSize> leaf;
  IndexEntry entry;
};

struct StoredKey {
  int version = 0;
  Signer signer;
  std::string sealed;  // base64 of the sealed PEM
  std::string created, retired;
};

}  // namespace

struct Log::Impl {
  LogOptions opt;
  const Clock* clock = nullptr;
  SystemClock system_clock;
  std::string seal_key;  // 32 bytes derived from the master key

  mutable std::mutex tenants_mu;
  std::map<std::string, std::unique_ptr<TenantLog>> tenants;

  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::deque<Item> queue;
  bool stopping = false;
  std::thread writer;

  // Batches written but not yet synced, for the syncer thread: it runs
  // fdatasync while the writer writes the next batches, so that the disk's
  // flush and the copying into the page cache overlap (one sync then covers
  // everything written before it started).
  struct Written {
    std::vector<Item> items;
    std::vector<std::pair<TenantLog*, uint64_t>> sizes;  // each touched tenant's size after the batch
    std::vector<std::string> roots;                      // and its root
  };
  static constexpr size_t kMaxUnsynced = 4;  // batches; the writer waits beyond
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  std::deque<Written> unsynced;
  bool writer_done = false;
  // Waiters registered and not yet answered: while there is one, neither
  // the writer nor the syncer lingers (async_linger).
  std::atomic<int64_t> waiting{0};
  // Under queue_mu: the writer polls the queue every async_linger (so
  // Append need not wake it).
  bool writer_polling = false;
  static constexpr size_t kWakeWriterAt = 4096;  // queued records that wake a polling writer
  std::thread syncer;

  mutable std::mutex failed_mu;
  Status failed;  // the first write error: the log refuses from then on

  mutable std::mutex keys_mu;
  std::vector<StoredKey> keys;  // by version; the last one signs

  std::atomic<uint64_t> appended{0}, batches{0}, syncs{0}, bytes{0}, queued{0}, checkpoints{0};
  int lock_fd = -1;  // flock on <dir>/lock: one process writes a log directory
  mutable std::mutex sinks_mu;
  std::shared_ptr<const std::vector<std::shared_ptr<Sink>>> sinks =
      std::make_shared<const std::vector<std::shared_ptr<Sink>>>();
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }

  Status Failed() const {
    std::lock_guard l(failed_mu);
    return failed;
  }
  void Fail(const Status& st) {
    {
      std::lock_guard l(failed_mu);
      if (failed.ok()) failed = st;
    }
    spdlog::error("{} (the audit log refuses appends from now on)", st.message());
  }

  Result<TenantLog*> Tenant(const std::string& name, bool create) {
    std::lock_guard l(tenants_mu);
    auto it = tenants.find(name);
    if (it != tenants.end()) return it->second.get();
    if (!create) return NotFound(fmt::format("audit: no log for tenant \"{}\"", name));
    return OpenTenant(name);
  }
  Result<const TenantLog*> Find(const std::string& name) const {
    std::lock_guard l(tenants_mu);
    auto it = tenants.find(name);
    if (it == tenants.end()) return NotFound(fmt::format("audit: no log for tenant \"{}\"", name));
    return static_cast<const TenantLog*>(it->second.get());
  }

  // Under tenants_mu (or before the writer starts).
  Result<TenantLog*> OpenTenant(const std::string& name) {
    if (!ValidTenant(name)) return InvalidArgument(fmt::format("audit: bad tenant name \"{}\"", name));
    auto t = std::make_unique<TenantLog>();
    t->name = name;
    t->path = opt.dir + "/" + name + "/";
    bool existed = std::filesystem::exists(t->path);
    std::error_code ec;
    std::filesystem::create_directories(t->path, ec);
    if (ec) return Internal(fmt::format("audit: creating {}: {}", t->path, ec.message()));
    ::chmod(t->path.c_str(), 0700);
    ASSIGN_OR_RETURN(t->records, OpenFile(t->path + "records"));
    ASSIGN_OR_RETURN(t->index, OpenFile(t->path + "index"));
    ASSIGN_OR_RETURN(t->tree, OpenFile(t->path + "tree"));
    ASSIGN_OR_RETURN(t->head, OpenFile(t->path + "head"));
    ASSIGN_OR_RETURN(auto notes, ReadCheckpointNotes(t->path + "checkpoints"));
    t->checkpoints = notes.size();
    if (!notes.empty()) {
      ASSIGN_OR_RETURN(Checkpoint cp, ParseCheckpoint(notes.back()));
      t->latest = std::move(cp);
    }
    RETURN_IF_ERROR(t->Recover());
    if (!existed && opt.fsync) {
      RETURN_IF_ERROR(SyncDir(t->path));
      RETURN_IF_ERROR(SyncDir(opt.dir));
    }
    TenantLog* raw = t.get();
    tenants.emplace(name, std::move(t));
    return raw;
  }

  // ------------------------------------------------------------ keys ----

  std::string KeyAad(int version) const { return fmt::format("aigis-audit-key:{}", version); }

  Status SaveKeys() {
    boost::json::array arr;
    for (const auto& k : keys) {
      arr.push_back(boost::json::object{{"version", k.version},
                                        {"name", k.signer.name()},
                                        {"vkey", k.signer.verifier().text},
                                        {"sealed", k.sealed},
                                        {"created", k.created},
                                        {"retired", k.retired}});
    }
    std::string text = boost::json::serialize(boost::json::object{{"keys", std::move(arr)}}) + "\n";
    std::string path = opt.dir + "/keys.json", tmp = path + ".tmp";
    ASSIGN_OR_RETURN(int fd, OpenFile(tmp));
    Status st = ::ftruncate(fd, 0) == 0 ? WriteAt(fd, text, 0, tmp) : Internal("audit: truncating " + tmp);
    if (st.ok() && opt.fsync) st = SyncFd(fd, tmp);
    ::close(fd);
    RETURN_IF_ERROR(st);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return Internal(fmt::format("audit: renaming {}: {}", tmp, std::strerror(errno)));
    return opt.fsync ? SyncDir(opt.dir) : Status::Ok();
  }

  Status AddKey() {
    ASSIGN_OR_RETURN(Signer s, Signer::Generate(opt.origin));
    ASSIGN_OR_RETURN(std::string pem, s.PrivatePem());
    StoredKey k;
    k.version = keys.empty() ? 1 : keys.back().version + 1;
    ASSIGN_OR_RETURN(std::string sealed, crypto::Seal(seal_key, pem, KeyAad(k.version)));
    k.sealed = crypto::Base64Encode(sealed);
    k.signer = std::move(s);
    k.created = FormatRfc3339(clock->Now());
    if (!keys.empty()) keys.back().retired = k.created;
    keys.push_back(std::move(k));
    return SaveKeys();
  }

  Status LoadKeys() {
    std::string path = opt.dir + "/keys.json";
    std::ifstream in(path);
    if (!in) return AddKey();
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(ss.str(), ec);
    if (ec || !v.is_object() || !v.as_object().contains("keys")) return InvalidArgument(fmt::format("audit: {} is not a key file", path));
    for (const auto& e : v.as_object().at("keys").as_array()) {
      const auto& o = e.as_object();
      StoredKey k;
      k.version = static_cast<int>(o.at("version").to_number<int64_t>());
      k.sealed = std::string(o.at("sealed").as_string());
      k.created = std::string(o.at("created").as_string());
      k.retired = std::string(o.at("retired").as_string());
      ASSIGN_OR_RETURN(std::string sealed, crypto::Base64Decode(k.sealed));
      auto pem = crypto::Open(seal_key, sealed, KeyAad(k.version));
      if (!pem.ok()) {
        return InvalidArgument(fmt::format("audit: {}: key version {} does not unseal: a different master key?", path, k.version));
      }
      std::string name(o.at("name").as_string());
      ASSIGN_OR_RETURN(k.signer, Signer::FromPem(name, *pem));
      if (k.signer.verifier().text != std::string(o.at("vkey").as_string())) {
        return InvalidArgument(fmt::format("audit: {}: key version {} does not match its public key", path, k.version));
      }
      keys.push_back(std::move(k));
    }
    if (keys.empty()) return AddKey();
    if (keys.back().signer.name() != opt.origin) {
      // The configured origin changed: sign with a key of the new name.
      return AddKey();
    }
    return Status::Ok();
  }

  // ---------------------------------------------------------- writer ----

  void WriterLoop() {
    auto last_checkpoint = clock->Monotonic();
    for (;;) {
      std::vector<Item> batch;
      {
        std::unique_lock l(queue_mu);
        auto wait = opt.checkpoint_interval.count() > 0 ? opt.checkpoint_interval : std::chrono::milliseconds(1000);
        if (writer_polling) {
          // Busy lately: look at the queue again after the linger instead of
          // being woken by every Append (a wake-up per record costs more
          // than the record on a busy machine).
          queue_cv.wait_for(l, opt.async_linger,
                            [&] { return stopping || waiting.load() > 0 || queue.size() >= kWakeWriterAt; });
          if (queue.empty()) writer_polling = false;  // idle: Append wakes it again
        }
        if (!writer_polling) queue_cv.wait_for(l, wait, [&] { return stopping || !queue.empty(); });
        if (queue.empty() && stopping) break;
        writer_polling = opt.async_linger.count() > 0 && !queue.empty();
        // At most max_batch per group commit: smaller batches keep the disk
        // busy steadily instead of in bursts of one huge write.
        size_t take = std::min(queue.size(), std::max<size_t>(opt.max_batch, 1));
        batch.reserve(take);
        for (size_t k = 0; k < take; ++k) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        queued.store(queue.size());
      }
      if (!batch.empty()) WriteBatch(batch);
      if (opt.checkpoint_interval.count() > 0 && clock->Monotonic() - last_checkpoint >= opt.checkpoint_interval) {
        last_checkpoint = clock->Monotonic();
        for (const auto& name : TenantNames()) {
          auto t = Tenant(name, false);
          if (t.ok() && (!(*t)->latest || (*t)->latest->size != (*t)->durable.load())) {
            if (auto cp = Issue(**t); !cp.ok()) spdlog::error("{}", cp.status().message());
          }
        }
      }
    }
  }

  std::vector<std::string> TenantNames() const {
    std::lock_guard l(tenants_mu);
    std::vector<std::string> out;
    for (const auto& [n, t] : tenants) out.push_back(n);
    return out;
  }

  uint64_t written_batches = 0;  // the writer's

  void WriteBatch(std::vector<Item>& batch) {
    if (opt.before_write) opt.before_write();
    ++written_batches;
    Status st = Failed();
    // Per tenant, in queue order (which is index order).
    std::vector<TenantLog*> touched;
    if (st.ok()) {
      std::vector<std::string> completed;
      for (Item& it : batch) {
        auto& b = it.tenant->batch_bufs;  // records, index, tree
        if (it.tenant->batch_number != written_batches) {
          it.tenant->batch_number = written_batches;
          touched.push_back(it.tenant);
          it.tenant->batch_first = it.tenant->frontier.size();
          for (auto& buf : b) buf.clear();
        }
        if (it.index != it.tenant->frontier.size()) {  // indexes are assigned in queue order: a bug otherwise
          st = Internal(fmt::format("audit: {}: record {} arrived when {} was expected", it.tenant->path, it.index,
                                    it.tenant->frontier.size()));
          break;
        }
        it.entry.offset = it.tenant->records_end + b[0].size();
        PutU32(b[0], static_cast<uint32_t>(it.record.size()));
        b[0] += it.record;
        b[1] += EncodeIndex(it.entry);
        completed.clear();
        it.tenant->frontier.Append(std::string_view(it.leaf.data(), kHashSize), &completed);
        for (const auto& c : completed) b[2] += c;
      }
      for (TenantLog* t : touched) {
        if (!st.ok()) break;
        auto& b = t->batch_bufs;
        uint64_t n0 = t->batch_first;
        t->Reserve(t->records, &t->records_reserved, t->records_end + b[0].size());
        st = WriteAt(t->records, b[0], t->records_end, t->path + "records");
        if (st.ok()) st = WriteAt(t->index, b[1], n0 * kIndexEntry, t->path + "index");
        if (st.ok()) st = WriteAt(t->tree, b[2], TreeNodes(n0) * kHashSize, t->path + "tree");
        if (!st.ok()) break;
        t->records_end += b[0].size();
        bytes.fetch_add(b[0].size());
        for (auto& buf : b) {
          if (buf.capacity() > (32u << 20)) std::string().swap(buf);  // one huge batch need not stay resident
        }
      }
    }
    if (!st.ok()) {
      Fail(st);
      FailAllWaiters(st);
      return;
    }
    Written w;
    for (TenantLog* t : touched) {
      w.sizes.emplace_back(t, t->frontier.size());
      w.roots.push_back(t->frontier.Root());
    }
    w.items = std::move(batch);
    {
      std::unique_lock l(sync_mu);
      sync_cv.wait(l, [&] { return unsynced.size() < kMaxUnsynced; });
      unsynced.push_back(std::move(w));
    }
    sync_cv.notify_all();
  }

  uint64_t sync_rounds = 0;  // the syncer's

  void SyncerLoop() {
    for (;;) {
      std::vector<Written> round;
      {
        std::unique_lock l(sync_mu);
        sync_cv.wait(l, [&] { return writer_done || !unsynced.empty(); });
        if (unsynced.empty()) break;  // and the writer is done
        // Nobody waits (async mode): linger, so that one sync covers the
        // batches written meanwhile; a waiter or a writer out of room ends it.
        if (opt.async_linger.count() > 0 && waiting.load() == 0) {
          sync_cv.wait_for(l, opt.async_linger,
                           [&] { return writer_done || waiting.load() > 0 || unsynced.size() >= kMaxUnsynced; });
        }
        while (!unsynced.empty()) {
          round.push_back(std::move(unsynced.front()));
          unsynced.pop_front();
        }
      }
      sync_cv.notify_all();  // room for the writer
      // One fdatasync per file of each tenant written to since the last
      // round: it covers every batch of this round.
      Status st = Failed();
      if (st.ok() && opt.before_sync) st = opt.before_sync();
      if (st.ok() && opt.fsync) {
        ++sync_rounds;
        std::vector<TenantLog*> touched;
        for (const Written& w : round) {
          for (const auto& [t, size] : w.sizes) {
            if (t->sync_round != sync_rounds) {
              t->sync_round = sync_rounds;
              touched.push_back(t);
            }
          }
        }
        for (TenantLog* t : touched) {
          for (auto [fd, f] : {std::pair{t->records, "records"}, {t->index, "index"}, {t->tree, "tree"}}) {
            if (st.ok()) st = SyncFd(fd, t->path + f);
            syncs.fetch_add(1);
          }
        }
      }
      if (!st.ok()) {
        Fail(st);
        FailAllWaiters(st);
        continue;  // later rounds fail the same way; the writer stops taking work
      }
      for (Written& w : round) Publish(w);
    }
  }

  // A synced batch: its records are durable.
  void Publish(Written& w) {
    batches.fetch_add(1);
    appended.fetch_add(w.items.size());
    for (size_t k = 0; k < w.sizes.size(); ++k) {
      auto [t, size] = w.sizes[k];
      std::vector<std::function<void(Status)>> done;
      {
        std::lock_guard l(t->mu);
        t->durable_root = w.roots[k];
        t->durable.store(size);
        auto end = t->waiters.lower_bound(size);
        for (auto it = t->waiters.begin(); it != end; ++it) done.push_back(std::move(it->second));
        t->waiters.erase(t->waiters.begin(), end);
      }
      waiting.fetch_sub(static_cast<int64_t>(done.size()));
      for (auto& fn : done) fn(Status::Ok());
      t->WriteHead(size, w.roots[k]);
    }
    std::shared_ptr<const std::vector<std::shared_ptr<Sink>>> to;
    {
      std::lock_guard l(sinks_mu);
      to = sinks;
    }
    for (const auto& sink : *to) {
      for (const Item& it : w.items) sink->Offer(it.tenant->name, it.index, it.record);
    }
  }

  void FailAllWaiters(const Status& st) {
    std::vector<std::function<void(Status)>> done;
    {
      std::lock_guard l(tenants_mu);
      for (auto& [n, t] : tenants) {
        std::lock_guard tl(t->mu);
        for (auto& [i, fn] : t->waiters) done.push_back(std::move(fn));
        t->waiters.clear();
      }
    }
    waiting.fetch_sub(static_cast<int64_t>(done.size()));
    for (auto& fn : done) fn(st);
  }

  // ------------------------------------------------------ checkpoints ----

  Result<Checkpoint> Issue(TenantLog& t) {
    std::lock_guard cl(t.checkpoint_mu);
    uint64_t size;
    std::string root;
    {
      std::lock_guard l(t.mu);
      size = t.durable.load();
      root = t.durable_root;
      if (t.latest && t.latest->size == size) return *t.latest;
    }
    Signer signer;
    {
      std::lock_guard l(keys_mu);
      signer = keys.back().signer;
    }
    std::string body = fmt::format("{}/{}\n{}\n{}\n", opt.origin, t.name, size, crypto::Base64Encode(root));
    ASSIGN_OR_RETURN(std::string note, signer.Sign(body));
    std::string line = boost::json::serialize(boost::json::object{{"size", size}, {"note", note}}) + "\n";
    std::string path = t.path + "checkpoints";
    ASSIGN_OR_RETURN(int fd, OpenFile(path));
    Status st = WriteAt(fd, line, FileSize(fd), path);
    if (st.ok() && opt.fsync) st = SyncFd(fd, path);
    ::close(fd);
    RETURN_IF_ERROR(st);
    ASSIGN_OR_RETURN(Checkpoint cp, ParseCheckpoint(note));
    {
      std::lock_guard l(t.mu);
      t.latest = cp;
      ++t.checkpoints;
    }
    checkpoints.fetch_add(1);
    return cp;
  }
};

Log::Log() : impl_(std::make_unique<Impl>()) {}

Log::~Log() {
  {
    std::lock_guard l(impl_->queue_mu);
    impl_->stopping = true;
  }
  impl_->queue_cv.notify_all();
  if (impl_->writer.joinable()) impl_->writer.join();
  {
    std::lock_guard l(impl_->sync_mu);
    impl_->writer_done = true;
  }
  impl_->sync_cv.notify_all();
  if (impl_->syncer.joinable()) impl_->syncer.join();
  // A last checkpoint, so that what this run wrote verifies offline.
  for (const auto& name : impl_->TenantNames()) {
    auto t = impl_->Tenant(name, false);
    if (!t.ok() || !impl_->Failed().ok()) continue;
    if ((*t)->latest && (*t)->latest->size == (*t)->durable.load()) continue;
    if (auto cp = impl_->Issue(**t); !cp.ok()) spdlog::error("{}", cp.status().message());
  }
}

Result<std::unique_ptr<Log>> Log::Open(LogOptions options) {
  if (options.dir.empty()) return InvalidArgument("audit: no directory");
  if (options.master_key.size() < 32) return InvalidArgument("audit: the master key must be at least 32 bytes");
  std::unique_ptr<Log> log(new Log());
  Impl& im = *log->impl_;
  im.clock = options.clock != nullptr ? options.clock : &im.system_clock;
  im.seal_key = crypto::HmacSha256(options.master_key, "aigis audit signing keys");
  im.opt = std::move(options);
  std::error_code ec;
  std::filesystem::create_directories(im.opt.dir, ec);
  if (ec) return Internal(fmt::format("audit: creating {}: {}", im.opt.dir, ec.message()));
  ::chmod(im.opt.dir.c_str(), 0700);
  // Two writers would interleave their appends: refuse the second one. The
  // lock goes with the process (a killed aigis does not leave it behind).
  ASSIGN_OR_RETURN(im.lock_fd, OpenFile(im.opt.dir + "/lock"));
  if (::flock(im.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Status(Code::kFailedPrecondition,
                  fmt::format("audit: another process is using the log in {} (each aigis needs its own data_dir)", im.opt.dir));
  }
  RETURN_IF_ERROR(im.LoadKeys());
  for (const auto& e : std::filesystem::directory_iterator(im.opt.dir, ec)) {
    std::string name = e.path().filename().string();
    if (!e.is_directory() || !ValidTenant(name)) continue;
    std::lock_guard l(im.tenants_mu);
    RETURN_IF_ERROR(im.OpenTenant(name).status());
  }
  if (ec) return Internal(fmt::format("audit: listing {}: {}", im.opt.dir, ec.message()));
  im.syncer = std::thread([&im] { im.SyncerLoop(); });
  im.writer = std::thread([&im] { im.WriterLoop(); });
  return log;
}

Result<uint64_t> Log::Append(Entry entry) {
  RETURN_IF_ERROR(impl_->Failed());
  if (entry.json.size() > kMaxRecord) {
    return InvalidArgument(fmt::format("audit: a record of {} bytes is too large", entry.json.size()));
  }
  std::string record;
  if (IsCanonical(entry.json)) {
    record = std::move(entry.json);  // what the gateway writes: no copy
  } else {
    ASSIGN_OR_RETURN(record, Canonicalize(entry.json));
  }
  if (record.size() > kMaxRecord) return InvalidArgument(fmt::format("audit: a record of {} bytes is too large", record.size()));
  Item it;
  LeafHashTo(record, it.leaf.data());
  it.record = std::move(record);
  it.entry.time_us = Micros(entry.time);
  it.entry.rid_hash = RequestIdHash(entry.request_id);
  uint64_t index;
  bool wake;
  {
    std::lock_guard l(impl_->queue_mu);
    if (impl_->queue.size() >= impl_->opt.max_queue) {
      return Status(Code::kResourceExhausted, "audit: the log's queue is full (the disk is not keeping up)");
    }
    ASSIGN_OR_RETURN(TenantLog * t, impl_->Tenant(entry.tenant, true));
    it.tenant = t;
    index = it.index = t->next_index++;
    wake = impl_->writer_polling ? impl_->queue.size() + 1 == Impl::kWakeWriterAt : impl_->queue.empty();
    impl_->queue.push_back(std::move(it));
    impl_->queued.store(impl_->queue.size());
  }
  // The writer empties the queue whole: a non-empty queue is already
  // pending for it, and waking it again only costs a context switch; a
  // polling writer comes back by itself.
  if (wake) impl_->queue_cv.notify_one();
  return index;
}

void Log::OnDurable(const std::string& tenant, uint64_t index, std::function<void(Status)> done) {
  auto t = impl_->Tenant(tenant, false);
  if (!t.ok()) {
    done(t.status());
    return;
  }
  Status failed = impl_->Failed();
  bool waiting = false;
  {
    std::lock_guard l((*t)->mu);
    if (failed.ok() && (*t)->durable.load() <= index) {
      (*t)->waiters.emplace(index, std::move(done));
      impl_->waiting.fetch_add(1);
      waiting = true;
    }
  }
  if (waiting) {
    // Neither the writer nor the syncer lingers while someone waits (the
    // empty critical sections order the count before their predicate checks).
    { std::lock_guard l(impl_->queue_mu); }
    impl_->queue_cv.notify_one();
    { std::lock_guard l(impl_->sync_mu); }
    impl_->sync_cv.notify_all();
    return;
  }
  done(failed);
}

Status Log::WaitDurable(const std::string& tenant, uint64_t index) {
  std::promise<Status> p;
  auto f = p.get_future();
  OnDurable(tenant, index, [&p](Status st) { p.set_value(std::move(st)); });
  return f.get();
}

Status Log::Flush() {
  std::vector<std::pair<std::string, uint64_t>> last;
  {
    std::lock_guard ql(impl_->queue_mu);
    std::lock_guard l(impl_->tenants_mu);
    for (const auto& [n, t] : impl_->tenants) {
      if (t->next_index > 0) last.emplace_back(n, t->next_index - 1);
    }
  }
  for (const auto& [n, i] : last) RETURN_IF_ERROR(WaitDurable(n, i));
  return impl_->Failed();
}

Status Log::Healthy() const {
  RETURN_IF_ERROR(impl_->Failed());
  if (impl_->queued.load() >= impl_->opt.max_queue) {
    return Status(Code::kResourceExhausted, "audit: the log's queue is full (the disk is not keeping up)");
  }
  return Status::Ok();
}

std::vector<std::string> Log::Tenants() const { return impl_->TenantNames(); }

uint64_t Log::Size(const std::string& tenant) const {
  auto t = impl_->Find(tenant);
  return t.ok() ? (*t)->durable.load() : 0;
}

Result<std::string> Log::Record(const std::string& tenant, uint64_t index) const {
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  if (index >= t->durable.load()) return NotFound(fmt::format("audit: no record {} (the log has {})", index, t->durable.load()));
  ASSIGN_OR_RETURN(IndexEntry e, t->Entry(index));
  return t->RecordAt(e.offset);
}

Result<std::optional<uint64_t>> Log::FindRequest(const std::string& tenant, std::string_view request_id) const {
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  uint64_t n = t->durable.load(), want = RequestIdHash(request_id);
  // From the newest back: a client-chosen request id can repeat, and the
  // latest exchange is the one asked about.
  constexpr uint64_t kChunk = 4096;
  for (uint64_t end = n; end > 0;) {
    uint64_t begin = end > kChunk ? end - kChunk : 0;
    ASSIGN_OR_RETURN(std::string buf, ReadAt(t->index, (end - begin) * kIndexEntry, begin * kIndexEntry, t->path + "index"));
    for (uint64_t i = end; i-- > begin;) {
      IndexEntry e = DecodeIndex(std::string_view(buf).substr((i - begin) * kIndexEntry, kIndexEntry));
      if (e.rid_hash != want) continue;
      ASSIGN_OR_RETURN(std::string rec, t->RecordAt(e.offset));
      boost::system::error_code ec;
      boost::json::value v = boost::json::parse(rec, ec);
      const boost::json::value* rid = ec || !v.is_object() ? nullptr : v.as_object().if_contains("request_id");
      if (rid != nullptr && rid->is_string() && rid->as_string() == request_id) return std::optional<uint64_t>(i);
    }
    end = begin;
  }
  return std::optional<uint64_t>();
}

namespace {
bool Matches(const Query& q, std::string_view record) {
  if (q.principal.empty() && q.decision.empty()) return true;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(record, ec);
  if (ec || !v.is_object()) return false;
  const auto& o = v.as_object();
  if (!q.decision.empty()) {
    const boost::json::value* d = o.if_contains("decision");
    if (d == nullptr || !d->is_string() || d->as_string() != q.decision) return false;
  }
  if (!q.principal.empty()) {
    const boost::json::value* p = o.if_contains("principal");
    if (p == nullptr || !p->is_object()) return false;
    auto str = [&](const char* k) {
      const boost::json::value* s = p->as_object().if_contains(k);
      return s != nullptr && s->is_string() ? std::string(s->as_string()) : std::string();
    };
    std::string id = str("id"), kind = str("kind");
    if (q.principal != id && q.principal != kind + ":" + id) return false;
  }
  return true;
}
}  // namespace

Result<std::vector<std::pair<uint64_t, std::string>>> Log::Read(const std::string& tenant, const Query& q) const {
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  std::vector<std::pair<uint64_t, std::string>> out;
  uint64_t end = std::min(q.to, t->durable.load());
  constexpr uint64_t kChunk = 4096;
  for (uint64_t begin = q.from; begin < end && out.size() < q.limit; begin += kChunk) {
    uint64_t stop = std::min(end, begin + kChunk);
    ASSIGN_OR_RETURN(std::string buf, ReadAt(t->index, (stop - begin) * kIndexEntry, begin * kIndexEntry, t->path + "index"));
    for (uint64_t i = begin; i < stop && out.size() < q.limit; ++i) {
      IndexEntry e = DecodeIndex(std::string_view(buf).substr((i - begin) * kIndexEntry, kIndexEntry));
      if (q.since && e.time_us < Micros(*q.since)) continue;
      if (q.until && e.time_us >= Micros(*q.until)) continue;
      ASSIGN_OR_RETURN(std::string rec, t->RecordAt(e.offset));
      if (Matches(q, rec)) out.emplace_back(i, std::move(rec));
    }
  }
  return out;
}

Result<std::string> Log::RootHash(const std::string& tenant, uint64_t size) const {
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  uint64_t n = t->durable.load();
  if (size > n) return NotFound(fmt::format("audit: the log has {} records, not {}", n, size));
  return audit::RootHash(t->Tree(n), size);
}

Result<std::vector<std::string>> Log::InclusionProof(const std::string& tenant, uint64_t index, uint64_t size) const {
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  uint64_t n = t->durable.load();
  if (size > n) return NotFound(fmt::format("audit: the log has {} records, not {}", n, size));
  return audit::InclusionProof(t->Tree(n), index, size);
}

Result<std::vector<std::string>> Log::ConsistencyProof(const std::string& tenant, uint64_t size1, uint64_t size2) const {
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  uint64_t n = t->durable.load();
  if (size2 > n) return NotFound(fmt::format("audit: the log has {} records, not {}", n, size2));
  return audit::ConsistencyProof(t->Tree(n), size1, size2);
}

Result<Checkpoint> Log::IssueCheckpoint(const std::string& tenant) {
  ASSIGN_OR_RETURN(TenantLog * t, impl_->Tenant(tenant, true));
  return impl_->Issue(*t);
}

Result<Checkpoint> Log::LatestCheckpoint(const std::string& tenant) const {
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  std::lock_guard l(t->mu);
  if (!t->latest) return NotFound(fmt::format("audit: no checkpoint yet for tenant \"{}\"", tenant));
  return *t->latest;
}

Result<Checkpoint> Log::Export(const std::string& tenant, uint64_t from, uint64_t to, std::ostream& out) {
  ASSIGN_OR_RETURN(Checkpoint cp, IssueCheckpoint(tenant));
  ASSIGN_OR_RETURN(const TenantLog* t, impl_->Find(tenant));
  to = std::min(to, cp.size);
  if (from > to) return InvalidArgument(fmt::format("audit: export range [{}, {}) is empty or reversed", from, to));
  ASSIGN_OR_RETURN(std::vector<std::string> peaks, Peaks(t->Tree(cp.size), from));
  boost::json::array frontier;
  for (const auto& p : peaks) frontier.push_back(boost::json::string(crypto::Base64Encode(p)));
  out << boost::json::serialize(boost::json::object{{"aigis_audit_export", 1},
                                                    {"origin", cp.origin},
                                                    {"tenant", tenant},
                                                    {"from", from},
                                                    {"to", to},
                                                    {"frontier", std::move(frontier)},
                                                    {"checkpoint", cp.note}})
      << "\n";
  constexpr uint64_t kChunk = 4096;
  for (uint64_t begin = from; begin < to; begin += kChunk) {
    uint64_t stop = std::min(to, begin + kChunk);
    ASSIGN_OR_RETURN(std::string buf, ReadAt(t->index, (stop - begin) * kIndexEntry, begin * kIndexEntry, t->path + "index"));
    for (uint64_t i = begin; i < stop; ++i) {
      IndexEntry e = DecodeIndex(std::string_view(buf).substr((i - begin) * kIndexEntry, kIndexEntry));
      ASSIGN_OR_RETURN(std::string rec, t->RecordAt(e.offset));
      ASSIGN_OR_RETURN(std::string leaf, ReadAt(t->tree, kHashSize, LeafPosition(i) * kHashSize, t->path + "tree"));
      out << "{\"index\":" << i << ",\"leaf_hash\":\"" << crypto::Base64Encode(leaf) << "\",\"record\":" << rec << "}\n";
    }
  }
  if (!out) return Internal("audit: writing the export failed");
  return cp;
}

VerifyReport Log::Verify(const std::string& tenant) const {
  auto t = impl_->Find(tenant);
  if (!t.ok()) {
    VerifyReport r;
    r.kind = "malformed";
    r.message = t.status().message();
    return r;
  }
  auto notes = ReadCheckpointNotes((*t)->path + "checkpoints");
  if (!notes.ok()) {
    VerifyReport r;
    r.kind = "malformed";
    r.message = notes.status().message();
    return r;
  }
  uint64_t size = (*t)->durable.load();  // after the notes: every one of them is of a size <= this
  return VerifyLive(impl_->opt.dir, tenant, VerifierKeys(), size, std::move(notes).value());
}

std::vector<KeyInfo> Log::Keys() const {
  std::lock_guard l(impl_->keys_mu);
  std::vector<KeyInfo> out;
  for (const auto& k : impl_->keys) out.push_back({k.version, k.signer.verifier().text, k.created, k.retired});
  return out;
}

std::vector<VerifierKey> Log::VerifierKeys() const {
  std::lock_guard l(impl_->keys_mu);
  std::vector<VerifierKey> out;
  for (const auto& k : impl_->keys) out.push_back(k.signer.verifier());
  return out;
}

Status Log::RotateKey() {
  std::lock_guard l(impl_->keys_mu);
  return impl_->AddKey();
}

void Log::AddSink(std::shared_ptr<Sink> sink) {
  std::lock_guard l(impl_->sinks_mu);
  auto next = std::make_shared<std::vector<std::shared_ptr<Sink>>>(*impl_->sinks);
  next->push_back(std::move(sink));
  impl_->sinks = std::move(next);
}

std::vector<std::shared_ptr<Sink>> Log::Sinks() const {
  std::lock_guard l(impl_->sinks_mu);
  return *impl_->sinks;
}

LogStats Log::stats() const {
  LogStats s;
  s.appended = impl_->appended.load();
  s.batches = impl_->batches.load();
  s.syncs = impl_->syncs.load();
  s.bytes = impl_->bytes.load();
  s.queued = impl_->queued.load();
  s.checkpoints = impl_->checkpoints.load();
  return s;
}

}  // namespace aigis::audit

// audit: the tamper-evident log of every decision.
//
// One record per gateway exchange or admin action, appended to a Merkle
// tree per tenant (RFC 6962 / RFC 9162: leaf hash SHA-256(0x00 || record),
// node hash SHA-256(0x01 || left || right)). Signed checkpoints (C2SP
// tlog-checkpoint signed notes, Ed25519) commit to the tree's size and root,
// so anyone holding a checkpoint and the public key can check, offline, that
// no record was changed, removed or reordered.
//
// Contract:
// * Records are canonical JSON (Canonicalize: RFC 8785 for objects, strings
//   and integers; no floating-point numbers). Append canonicalizes, so the
//   bytes hashed are the bytes stored and the bytes exported.
// * Indexes are per tenant, start at 0 and have no gaps. Append never blocks
//   on I/O: one writer thread batches every pending record and makes a batch
//   durable with one fdatasync per file ("group commit"). A record is
//   acknowledged once durable (OnDurable / WaitDurable); on start the log
//   checks its tail and drops only what was never durable.
// * The log fails closed: after a write error, or while the queue is full,
//   Healthy() is an error and Append refuses; the gateway then refuses
//   requests rather than serve them unrecorded.
// * Reads (records, proofs, checkpoints) see the durable prefix only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace aigis::audit {

// ------------------------------------------------------- Merkle trees ----

inline constexpr size_t kHashSize = 32;

std::string LeafHash(std::string_view data);                          // SHA-256(0x00 || data)
std::string NodeHash(std::string_view left, std::string_view right);  // SHA-256(0x01 || l || r)
std::string EmptyRoot();                                              // SHA-256("")

// The hashes of complete subtrees: Node(level, i) covers leaves
// [i << level, (i + 1) << level).
class NodeReader {
 public:
  virtual ~NodeReader() = default;
  virtual Result<std::string> Node(int level, uint64_t index) const = 0;
};

// RFC 6962 §2.1 (MTH, PATH, PROOF) over a NodeReader holding at least `size`
// leaves. Errors: index or sizes out of range, and the reader's errors.
Result<std::string> RootHash(const NodeReader& nodes, uint64_t size);
Result<std::vector<std::string>> InclusionProof(const NodeReader& nodes, uint64_t index, uint64_t size);
Result<std::vector<std::string>> ConsistencyProof(const NodeReader& nodes, uint64_t size1, uint64_t size2);

// RFC 9162 §2.1.3.2 and §2.1.4.2. Any hash that is not 32 bytes is refused.
// A consistency proof needs 0 < size1 <= size2.
Status VerifyInclusion(uint64_t index, uint64_t size, std::string_view leaf_hash,
                       const std::vector<std::string>& proof, std::string_view root);
Status VerifyConsistency(uint64_t size1, uint64_t size2, const std::vector<std::string>& proof,
                         std::string_view root1, std::string_view root2);

// The right edge of a tree: the roots of its perfect subtrees ("peaks"),
// largest first. Enough to append leaves and compute the root.
class Frontier {
 public:
  // Appends a leaf hash. `completed`, if given, receives the hashes that
  // became complete, in post-order: the leaf, then each parent it closed.
  // `leaf_hash` must be 32 bytes.
  void Append(std::string_view leaf_hash, std::vector<std::string>* completed = nullptr);
  uint64_t size() const { return size_; }
  std::string Root() const;  // EmptyRoot() for size 0
  std::vector<std::string> peaks() const;
  // From the peaks of a tree of `size` leaves (one per set bit of size).
  static Result<Frontier> FromPeaks(uint64_t size, std::vector<std::string> peaks);

 private:
  // Fixed arrays, not strings: an append allocates nothing (the verifier
  // folds a million leaves a second).
  using Hash = std::array<char, kHashSize>;
  uint64_t size_ = 0;
  std::vector<Hash> peaks_;
};

// -------------------------------------------------------------- records ----

// The canonical form of a JSON text: RFC 8785 (JCS) for what records contain
// — object members sorted by their names' UTF-16 code units, no whitespace,
// strings escaped as JCS does, integers in decimal. Refused: invalid JSON or
// UTF-8, duplicate member names, numbers that are not integers or are
// outside ±(2^53 - 1).
Result<std::string> Canonicalize(std::string_view json);
// True if `json` is already in that form (then Canonicalize returns it as
// is, after this one cheap pass). False may also mean "not sure" (escaped or
// non-ASCII member names): Canonicalize then does the full work.
bool IsCanonical(std::string_view json);

// Writes a canonical JSON object straight to text, without a JSON tree in
// between (the gateway writes a record per exchange; building a tree, sorting
// a copy of it and serializing cost more than the rest of the recording).
// Members go in in any order and are sorted when the object is finished; a
// name given twice keeps its last value. Names must be ASCII without
// characters that need escaping (the names of records are); strings are
// escaped as JCS does and must be UTF-8 (Append refuses a record that is
// not); integers must be within ±(2^53 − 1). Nested objects and arrays are
// finished first and added with Raw.
class CanonicalObject {
 public:
  CanonicalObject& Str(std::string_view name, std::string_view value);
  CanonicalObject& Int(std::string_view name, int64_t value);
  CanonicalObject& Bool(std::string_view name, bool value);
  CanonicalObject& Strs(std::string_view name, const std::vector<std::string>& values);  // an array
  CanonicalObject& Raw(std::string_view name, std::string_view canonical_json);
  std::string Finish();  // and starts over, empty

 private:
  std::string& Name(std::string_view name);
  struct Member {
    uint32_t begin, end;  // `"name":value` in buf_
    uint32_t name_len;
  };
  std::string buf_;
  std::vector<Member> members_;
};

// An array for CanonicalObject::Raw: elements in the order given.
class CanonicalArray {
 public:
  CanonicalArray& Str(std::string_view value);
  CanonicalArray& Raw(std::string_view canonical_json);
  std::string Finish();  // and starts over, empty

 private:
  std::string& Next();
  std::string buf_ = "[";
};

// --------------------------------------------------------- checkpoints ----

// A C2SP tlog-checkpoint: "<origin>\n<size>\n<base64 root>\n[ext lines]"
// followed by a blank line and signature lines "— <name> <base64(key id ||
// signature)>". Ed25519 key ids are the first 4 bytes of
// SHA-256(name || 0x0A || 0x01 || public key) (C2SP signed-note).
struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  std::string root;  // 32 bytes
  std::string note;  // the whole signed note, as issued
};

// A note verifier key: "<name>+<8 hex key id>+<base64(0x01 || 32-byte key)>".
struct VerifierKey {
  std::string name;
  uint32_t id = 0;
  std::string public_key;  // 32 bytes
  std::string text;        // the vkey string
};
Result<VerifierKey> ParseVerifierKey(std::string_view text);
// Parses a signed checkpoint note (the body only; signatures are VerifyNote's).
Result<Checkpoint> ParseCheckpoint(std::string_view note);
// OK if at least one signature line is by one of `keys` and every signature
// by one of `keys` verifies; lines by other keys are ignored (C2SP).
Status VerifyNote(std::string_view note, const std::vector<VerifierKey>& keys);

// An Ed25519 note signer.
class Signer {
 public:
  static Result<Signer> Generate(std::string name);
  // From a PKCS#8 PEM private key.
  static Result<Signer> FromPem(std::string name, std::string_view pem);
  const std::string& name() const;
  const VerifierKey& verifier() const;
  Result<std::string> PrivatePem() const;
  // The signed note for `body` (which must end in "\n").
  Result<std::string> Sign(std::string_view body) const;
  Signer();
  ~Signer();
  Signer(const Signer&);
  Signer& operator=(const Signer&);

 private:
  struct Rep;
  std::shared_ptr<const Rep> rep_;
};

// --------------------------------------------------------------- sinks ----

// Receives every record once it is durable (so a sink never shows what the
// log could still lose). Offer runs on the log's writer thread: it queues
// and returns; delivery happens on the sink's own thread, never blocking the
// log or the data plane. A full queue drops (counted).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual const std::string& name() const = 0;
  virtual void Offer(std::string_view tenant, uint64_t index, std::string_view record) = 0;
  struct Stats {
    uint64_t delivered = 0;  // records
    uint64_t dropped = 0;    // records given up on (queue full, or retries exhausted)
    uint64_t failures = 0;   // failed delivery attempts
    uint64_t queued = 0;
  };
  virtual Stats stats() const = 0;
};

// What sinks send per record: {"index":N,"record":{...},"tenant":"..."}.
std::string SinkLine(std::string_view tenant, uint64_t index, std::string_view record);

struct SinkQueueOptions {
  size_t max_queue = 100'000;  // records
  size_t max_batch = 100;      // records per delivery
  std::chrono::milliseconds min_backoff{100}, max_backoff{30'000};
  int max_attempts = 10;       // per batch, then it is dropped (counted)
};

// JSON lines appended to `path`; when the file would pass `max_bytes` it is
// renamed to path.1 (path.1 to path.2, ...; `keep` old files).
struct FileSinkOptions {
  std::string path;
  uint64_t max_bytes = 100ull << 20;
  int keep = 5;
  SinkQueueOptions queue;
};
Result<std::shared_ptr<Sink>> MakeFileSink(FileSinkOptions options);

// RFC 5424 syslog: one message per record (MSG is the sink line), over UDP
// (one datagram each) or TCP (octet-counted framing, RFC 6587), to
// "udp://host:port" or "tcp://host:port" (host: an IP literal).
struct SyslogSinkOptions {
  std::string address;
  std::string app_name = "aigis";
  std::string hostname;  // "" = gethostname()
  int facility = 16;     // local0
  SinkQueueOptions queue;
};
Result<std::shared_ptr<Sink>> MakeSyslogSink(SyslogSinkOptions options);

// A sink that hands batches of sink lines to `deliver` (the gateway's
// webhook sink does its HTTP POST there); an error is retried with
// exponential backoff.
std::shared_ptr<Sink> MakeDeliverySink(std::string name, SinkQueueOptions options,
                                       std::function<Status(const std::vector<std::string>& lines)> deliver);

// ----------------------------------------------------------------- log ----

struct LogOptions {
  std::string dir;  // <data_dir>/audit; one sub-directory per tenant
  // Checkpoint origins are "<origin>/<tenant>"; the key name is `origin`.
  std::string origin = "aigis.local/audit";
  // Seals the signing keys (AES-256-GCM) in <dir>/keys.json; >= 32 bytes.
  std::string master_key;
  const Clock* clock = nullptr;  // default: the system clock
  size_t max_batch = 8192;       // records per group commit
  // Records nobody waits for (async mode) may wait this long to be written,
  // and again to be synced: a busy writer polls the queue instead of being
  // woken per record, and one fdatasync per file covers every batch written
  // meanwhile. A waiter (OnDurable, WaitDurable, Flush: sync mode) ends
  // both waits at once. 0: written and synced as soon as possible.
  std::chrono::milliseconds async_linger{0};
  size_t max_queue = 200000;     // records waiting: beyond, Healthy() fails
  std::chrono::milliseconds checkpoint_interval{10000};  // 0: on demand only
  bool fsync = true;             // false only in tests and benchmarks
  // Tests: runs on the writer thread before each batch is written (to hold
  // the writer and observe what waits for durability).
  std::function<void()> before_write;
  // Tests: runs on the syncer thread before each round of fdatasync; an
  // error stands for a failed sync.
  std::function<Status()> before_sync;
};

// One record to append. `json` is canonicalized; `time` and `request_id`
// go to the index for reads by time and by request id.
struct Entry {
  std::string tenant = "default";
  std::string request_id;
  WallTime time{};
  std::string json;
};

// A tenant name the log accepts (it names a directory): 1-64 of
// [A-Za-z0-9._-], starting with a letter or digit.
bool ValidTenant(std::string_view tenant);

struct Query {
  uint64_t from = 0;                  // index range [from, to)
  uint64_t to = UINT64_MAX;
  std::optional<WallTime> since, until;  // record time in [since, until)
  std::string principal;              // equals the record's principal.id or "kind:id"
  std::string decision;               // allow | deny | error
  size_t limit = 100;
};

struct KeyInfo {
  int version = 0;
  std::string vkey;
  std::string created, retired;  // RFC 3339; retired "" while current
};

struct LogStats {
  uint64_t appended = 0, batches = 0, syncs = 0, bytes = 0;
  uint64_t queued = 0;  // waiting for the writer now
  uint64_t checkpoints = 0;
};

// What a verification found. `kind`: "" when ok, else modified | missing |
// reordered | truncated | bad_signature | inconsistent | malformed.
struct VerifyReport {
  bool ok = false;
  std::string kind;
  std::optional<uint64_t> index;  // the first bad index, when one is known
  std::string message;
  uint64_t records = 0;       // records checked
  uint64_t checkpoints = 0;   // checkpoints verified
  std::string ToString() const;
};

class Log {
 public:
  // Opens (creating) the log, recovers each tenant's tail, loads or creates
  // the signing key, starts the writer. Fails on damage it cannot repair
  // without losing acknowledged records, and on a wrong master key.
  static Result<std::unique_ptr<Log>> Open(LogOptions options);
  ~Log();  // flushes, stops the writer, signs a last checkpoint of each tenant that grew

  // Queues a record; returns its index. Refused when unhealthy, on a bad
  // tenant name, or when `json` is not acceptable (Canonicalize).
  Result<uint64_t> Append(Entry entry);
  // `done` runs once the record is durable (OK) or the log failed (error),
  // on the writer thread, or at once if already decided. Keep it short.
  void OnDurable(const std::string& tenant, uint64_t index, std::function<void(Status)> done);
  Status WaitDurable(const std::string& tenant, uint64_t index);
  Status Flush();  // every record appended so far is durable
  Status Healthy() const;

  std::vector<std::string> Tenants() const;
  uint64_t Size(const std::string& tenant) const;  // durable records
  Result<std::string> Record(const std::string& tenant, uint64_t index) const;
  Result<std::optional<uint64_t>> FindRequest(const std::string& tenant, std::string_view request_id) const;
  Result<std::vector<std::pair<uint64_t, std::string>>> Read(const std::string& tenant, const Query& q) const;
  Result<std::string> RootHash(const std::string& tenant, uint64_t size) const;
  Result<std::vector<std::string>> InclusionProof(const std::string& tenant, uint64_t index, uint64_t size) const;
  Result<std::vector<std::string>> ConsistencyProof(const std::string& tenant, uint64_t size1, uint64_t size2) const;

  // Signs a checkpoint of the durable tree now (the latest is returned
  // unchanged if the size did not move).
  Result<Checkpoint> IssueCheckpoint(const std::string& tenant);
  Result<Checkpoint> LatestCheckpoint(const std::string& tenant) const;
  // Writes [from, to) as export lines (see docs/audit.md) to `out`; `to` is
  // clamped to the latest checkpoint's size, which is returned.
  Result<Checkpoint> Export(const std::string& tenant, uint64_t from, uint64_t to, std::ostream& out);
  // The offline verifier's check, run on this log's files.
  VerifyReport Verify(const std::string& tenant) const;

  std::vector<KeyInfo> Keys() const;
  std::vector<VerifierKey> VerifierKeys() const;
  Status RotateKey();  // new key version; checkpoints are signed with it from now on

  // Records made durable from now on also go to `sink`.
  void AddSink(std::shared_ptr<Sink> sink);
  std::vector<std::shared_ptr<Sink>> Sinks() const;

  LogStats stats() const;

 private:
  Log();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------ verifier ----

// An export (header line, then one line per record) against signed
// checkpoints (those given and the one in the export's header): recomputes the tree, checks every checkpoint's signature and
// that each one's root is the root of the records it covers (which also
// proves the checkpoints consistent with one another).
VerifyReport VerifyExport(std::istream& lines, const std::vector<std::string>& checkpoint_notes,
                          const std::vector<VerifierKey>& keys);
// The same against a log directory (<dir>/<tenant>/...), offline. With no
// `keys`, the public keys in <dir>/keys.json are used.
VerifyReport VerifyDirectory(const std::string& dir, const std::string& tenant, std::vector<VerifierKey> keys);

}  // namespace aigis::audit

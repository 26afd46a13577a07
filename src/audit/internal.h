// Private to src/audit: the on-disk layout shared by the log (log.cc) and
// the offline verifier (verify.cc). docs/audit.md describes it for others.
//
// <dir>/<tenant>/records      frames: u32 little-endian length, record bytes
// <dir>/<tenant>/index        24 bytes per record: u64 offset of its frame,
//                             i64 time (µs since the epoch), u64 request-id
//                             hash (first 8 bytes of SHA-256), little-endian
// <dir>/<tenant>/tree         every complete node hash (32 bytes) in
//                             post-order: leaf i at 2i - popcount(i), and the
//                             parents a leaf completes right after it
// <dir>/<tenant>/head         a hint for recovery: size, root, checksum
// <dir>/<tenant>/checkpoints  JSON lines {"size":N,"note":"<signed note>"}
// <dir>/keys.json             signing keys: public halves, sealed private ones
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.h"

namespace aigis::audit::internal {

inline constexpr size_t kIndexEntry = 24;
inline constexpr uint32_t kMaxRecord = 16u << 20;  // 16 MiB: anything larger is damage

// Position of a node in the tree file (in hashes, not bytes).
uint64_t LeafPosition(uint64_t leaf);
uint64_t NodePosition(int level, uint64_t index);
uint64_t TreeNodes(uint64_t size);  // nodes a tree of `size` leaves has stored

struct IndexEntry {
  uint64_t offset = 0;
  int64_t time_us = 0;
  uint64_t rid_hash = 0;
};
std::string EncodeIndex(const IndexEntry& e);
IndexEntry DecodeIndex(std::string_view bytes);  // kIndexEntry bytes
uint64_t RequestIdHash(std::string_view request_id);

using audit::ValidTenant;

// Whole-buffer positional I/O; errors name the file.
Status WriteAt(int fd, std::string_view data, uint64_t offset, const std::string& what);
Result<std::string> ReadAt(int fd, size_t n, uint64_t offset, const std::string& what);

// Reads node hashes from a tree file, up to `size` leaves.
class TreeFile final : public NodeReader {
 public:
  TreeFile(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  Result<std::string> Node(int level, uint64_t index) const override;

 private:
  int fd_;
  uint64_t size_;
  std::string path_;
};

// The peaks of a tree of `size` leaves, read through `nodes`.
Result<std::vector<std::string>> Peaks(const NodeReader& nodes, uint64_t size);

// The checkpoints file's notes, oldest first.
Result<std::vector<std::string>> ReadCheckpointNotes(const std::string& path);

// The public keys in <dir>/keys.json.
Result<std::vector<VerifierKey>> ReadPublicKeys(const std::string& dir);

// LeafHash and NodeHash into `out` (32 bytes), with no allocation.
void LeafHashTo(std::string_view data, char* out);
void NodeHashTo(std::string_view left, std::string_view right, char* out);

// The verifier over records read from anywhere: `next` yields (index, leaf
// hash as listed, record bytes) in file order until it returns false.
struct ListedRecord {
  uint64_t index = 0;
  std::string_view leaf_hash;  // as the export or tree file lists it (32 bytes), or empty
  std::string_view record;     // the record's bytes (canonical JSON)
  std::string storage;         // owns them when the reader has no other place
  std::string listed_storage;  // owns leaf_hash, likewise
  // LeafHash(record), when the reader computed it already (a reader that
  // hashes on other threads).
  bool hashed = false;
  std::array<char, kHashSize> own_hash;
};
struct VerifyInput {
  uint64_t from = 0;                  // first index covered
  std::vector<std::string> frontier;  // peaks of the tree of `from` leaves
  std::vector<std::string> notes;     // signed checkpoints
  std::vector<VerifierKey> keys;
};
VerifyReport Verify(const VerifyInput& in, const std::function<Result<bool>(ListedRecord*)>& next);

// VerifyDirectory for a running log: the first `size` records (durable) and
// the checkpoints read before that size was.
VerifyReport VerifyLive(const std::string& dir, const std::string& tenant, std::vector<VerifierKey> keys,
                        uint64_t size, std::vector<std::string> notes);

}  // namespace aigis::audit::internal

// RFC 6962 Merkle tree hashing and proofs; RFC 9162 proof verification.
#include <fmt/format.h>

#include <algorithm>
#include <bit>

#include "audit/audit.h"
#include "audit/internal.h"
#include "crypto/crypto.h"

namespace aigis::audit {

namespace {

constexpr char kLeafPrefix[] = {'\x00'};
constexpr char kNodePrefix[] = {'\x01'};

// The largest power of two strictly below n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

// MTH(D[begin:end]) for a range the RFC 6962 recursion produces: its left
// parts are perfect, aligned subtrees, read from `nodes`.
Result<std::string> SubtreeHash(const NodeReader& nodes, uint64_t begin, uint64_t end) {
  uint64_t n = end - begin;
  if (std::has_single_bit(n) && begin % n == 0) {
    return nodes.Node(std::countr_zero(n), begin >> std::countr_zero(n));
  }
  uint64_t k = SplitPoint(n);
  ASSIGN_OR_RETURN(std::string left, SubtreeHash(nodes, begin, begin + k));
  ASSIGN_OR_RETURN(std::string right, SubtreeHash(nodes, begin + k, end));
  return NodeHash(left, right);
}

// PATH(m, D[begin:end]), RFC 6962 §2.1.1, appended to `out` leaf-first.
Status Path(const NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t end, std::vector<std::string>* out) {
  uint64_t n = end - begin;
  if (n <= 1) return Status::Ok();
  uint64_t k = SplitPoint(n);
  if (m < k) {
    RETURN_IF_ERROR(Path(nodes, m, begin, begin + k, out));
    ASSIGN_OR_RETURN(std::string h, SubtreeHash(nodes, begin + k, end));
    out->push_back(std::move(h));
  } else {
    RETURN_IF_ERROR(Path(nodes, m - k, begin + k, end, out));
    ASSIGN_OR_RETURN(std::string h, SubtreeHash(nodes, begin, begin + k));
    out->push_back(std::move(h));
  }
  return Status::Ok();
}

// SUBPROOF(m, D[begin:end], b), RFC 6962 §2.1.2.
Status SubProof(const NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t end, bool complete,
                std::vector<std::string>* out) {
  uint64_t n = end - begin;
  if (m == n) {
    if (!complete) {
      ASSIGN_OR_RETURN(std::string h, SubtreeHash(nodes, begin, end));
      out->push_back(std::move(h));
    }
    return Status::Ok();
  }
  uint64_t k = SplitPoint(n);
  if (m <= k) {
    RETURN_IF_ERROR(SubProof(nodes, m, begin, begin + k, complete, out));
    ASSIGN_OR_RETURN(std::string h, SubtreeHash(nodes, begin + k, end));
    out->push_back(std::move(h));
  } else {
    RETURN_IF_ERROR(SubProof(nodes, m - k, begin + k, end, false, out));
    ASSIGN_OR_RETURN(std::string h, SubtreeHash(nodes, begin, begin + k));
    out->push_back(std::move(h));
  }
  return Status::Ok();
}

bool AllHashes(const std::vector<std::string>& v) {
  for (const auto& h : v) {
    if (h.size() != kHashSize) return false;
  }
  return true;
}

}  // namespace

namespace internal {
void LeafHashTo(std::string_view data, char* out) {
  crypto::Sha256ConcatTo({std::string_view(kLeafPrefix, 1), data}, out);
}
void NodeHashTo(std::string_view left, std::string_view right, char* out) {
  crypto::Sha256ConcatTo({std::string_view(kNodePrefix, 1), left, right}, out);
}
}  // namespace internal

std::string LeafHash(std::string_view data) {
  std::string out(kHashSize, '\0');
  internal::LeafHashTo(data, out.data());
  return out;
}

std::string NodeHash(std::string_view left, std::string_view right) {
  std::string out(kHashSize, '\0');
  internal::NodeHashTo(left, right, out.data());
  return out;
}

std::string EmptyRoot() { return crypto::Sha256Concat({}); }

Result<std::string> RootHash(const NodeReader& nodes, uint64_t size) {
  if (size == 0) return EmptyRoot();
  return SubtreeHash(nodes, 0, size);
}

Result<std::vector<std::string>> InclusionProof(const NodeReader& nodes, uint64_t index, uint64_t size) {
  if (index >= size) return InvalidArgument(fmt::format("index {} is not below the tree size {}", index, size));
  std::vector<std::string> out;
  RETURN_IF_ERROR(Path(nodes, index, 0, size, &out));
  return out;
}

Result<std::vector<std::string>> ConsistencyProof(const NodeReader& nodes, uint64_t size1, uint64_t size2) {
  if (size1 == 0 || size1 > size2) {
    return InvalidArgument(fmt::format("a consistency proof needs 0 < size1 <= size2 (got {} and {})", size1, size2));
  }
  std::vector<std::string> out;
  RETURN_IF_ERROR(SubProof(nodes, size1, 0, size2, true, &out));
  return out;
}

Status VerifyInclusion(uint64_t index, uint64_t size, std::string_view leaf_hash,
                       const std::vector<std::string>& proof, std::string_view root) {
  if (index >= size) return InvalidArgument(fmt::format("index {} is not below the tree size {}", index, size));
  if (leaf_hash.size() != kHashSize || root.size() != kHashSize || !AllHashes(proof)) {
    return InvalidArgument("a hash is not 32 bytes");
  }
  uint64_t fn = index, sn = size - 1;
  std::string r(leaf_hash);
  for (const auto& p : proof) {
    if (sn == 0) return InvalidArgument("the inclusion proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return InvalidArgument("the inclusion proof is too short");
  if (r != root) return InvalidArgument("the inclusion proof does not lead to the root");
  return Status::Ok();
}

Status VerifyConsistency(uint64_t size1, uint64_t size2, const std::vector<std::string>& proof,
                         std::string_view root1, std::string_view root2) {
  if (size1 > size2) return InvalidArgument(fmt::format("size1 {} is above size2 {}", size1, size2));
  if (size1 == 0) return InvalidArgument("a consistency proof from the empty tree proves nothing");
  if (size1 == size2) {
    if (!proof.empty()) return InvalidArgument("equal sizes need an empty proof");
    if (root1 != root2) return InvalidArgument("equal sizes but different roots");
    return Status::Ok();
  }
  if (proof.empty()) return InvalidArgument("the consistency proof is empty");
  if (root1.size() != kHashSize || root2.size() != kHashSize || !AllHashes(proof)) {
    return InvalidArgument("a hash is not 32 bytes");
  }
  // RFC 9162 §2.1.4.2.
  std::vector<std::string_view> path;
  if (std::has_single_bit(size1)) path.push_back(root1);
  for (const auto& p : proof) path.push_back(p);
  uint64_t fn = size1 - 1, sn = size2 - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  std::string fr(path[0]), sr(path[0]);
  for (size_t i = 1; i < path.size(); ++i) {
    std::string_view c = path[i];
    if (sn == 0) return InvalidArgument("the consistency proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return InvalidArgument("the consistency proof is too short");
  if (fr != root1) return InvalidArgument("the consistency proof does not lead to the first root");
  if (sr != root2) return InvalidArgument("the consistency proof does not lead to the second root");
  return Status::Ok();
}

void Frontier::Append(std::string_view leaf_hash, std::vector<std::string>* completed) {
  Hash h{};
  std::copy_n(leaf_hash.data(), std::min(leaf_hash.size(), kHashSize), h.data());
  if (completed) completed->emplace_back(h.data(), kHashSize);
  // Each trailing one bit of the old size is a peak the new leaf completes.
  for (uint64_t s = size_; (s & 1) != 0; s >>= 1) {
    internal::NodeHashTo(std::string_view(peaks_.back().data(), kHashSize), std::string_view(h.data(), kHashSize),
                         h.data());
    peaks_.pop_back();
    if (completed) completed->emplace_back(h.data(), kHashSize);
  }
  peaks_.push_back(h);
  ++size_;
}

std::string Frontier::Root() const {
  if (peaks_.empty()) return EmptyRoot();
  std::string h(peaks_.back().data(), kHashSize);
  for (size_t i = peaks_.size() - 1; i-- > 0;) h = NodeHash(std::string_view(peaks_[i].data(), kHashSize), h);
  return h;
}

std::vector<std::string> Frontier::peaks() const {
  std::vector<std::string> out;
  out.reserve(peaks_.size());
  for (const Hash& p : peaks_) out.emplace_back(p.data(), kHashSize);
  return out;
}

Result<Frontier> Frontier::FromPeaks(uint64_t size, std::vector<std::string> peaks) {
  if (peaks.size() != static_cast<size_t>(std::popcount(size))) {
    return InvalidArgument(fmt::format("a tree of {} leaves has {} peaks, not {}", size, std::popcount(size), peaks.size()));
  }
  if (!AllHashes(peaks)) return InvalidArgument("a peak is not 32 bytes");
  Frontier f;
  f.size_ = size;
  f.peaks_.reserve(64);
  for (const auto& p : peaks) {
    Hash h;
    std::copy_n(p.data(), kHashSize, h.data());
    f.peaks_.push_back(h);
  }
  return f;
}

}  // namespace aigis::audit

// The on-disk layout's helpers (internal.h).
#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "audit/internal.h"
#include "crypto/crypto.h"

namespace aigis::audit::internal {

namespace {

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetU64(std::string_view b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[static_cast<size_t>(i)]);
  return v;
}

}  // namespace

uint64_t LeafPosition(uint64_t leaf) { return 2 * leaf - static_cast<uint64_t>(std::popcount(leaf)); }

uint64_t NodePosition(int level, uint64_t index) {
  uint64_t last_leaf = ((index + 1) << level) - 1;
  return LeafPosition(last_leaf) + static_cast<uint64_t>(level);
}

uint64_t TreeNodes(uint64_t size) { return 2 * size - static_cast<uint64_t>(std::popcount(size)); }

std::string EncodeIndex(const IndexEntry& e) {
  std::string out;
  out.reserve(kIndexEntry);
  PutU64(out, e.offset);
  PutU64(out, static_cast<uint64_t>(e.time_us));
  PutU64(out, e.rid_hash);
  return out;
}

IndexEntry DecodeIndex(std::string_view b) {
  return {GetU64(b.substr(0, 8)), static_cast<int64_t>(GetU64(b.substr(8, 8))), GetU64(b.substr(16, 8))};
}

uint64_t RequestIdHash(std::string_view request_id) { return GetU64(crypto::Sha256(request_id)); }

}  // namespace aigis::audit::internal

namespace aigis::audit {
bool ValidTenant(std::string_view t) {
  if (t.empty() || t.size() > 64) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '-' || c == '_' || c == '.'));
    if (!ok) return false;
  }
  return true;
}
}  // namespace aigis::audit

namespace aigis::audit::internal {

Status WriteAt(int fd, std::string_view data, uint64_t offset, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Internal(fmt::format("audit: writing {}: {}", what, n < 0 ? std::strerror(errno) : "no progress"));
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Result<std::string> ReadAt(int fd, size_t n, uint64_t offset, const std::string& what) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Internal(fmt::format("audit: reading {}: {}", what, std::strerror(errno)));
    if (r == 0) return NotFound(fmt::format("audit: {} ends before byte {}", what, offset + n));
    got += static_cast<size_t>(r);
  }
  return out;
}

Result<std::string> TreeFile::Node(int level, uint64_t index) const {
  if (level < 0 || level > 63 || ((index + 1) << level) > size_ || ((index + 1) << level) >> level != index + 1) {
    return InvalidArgument(fmt::format("audit: node {}/{} is beyond the tree of {} leaves", level, index, size_));
  }
  return ReadAt(fd_, kHashSize, NodePosition(level, index) * kHashSize, path_);
}

Result<std::vector<std::string>> Peaks(const NodeReader& nodes, uint64_t size) {
  std::vector<std::string> out;
  uint64_t start = 0;
  for (int level = 63; level >= 0; --level) {
    uint64_t bit = uint64_t{1} << level;
    if ((size & bit) == 0) continue;
    ASSIGN_OR_RETURN(std::string h, nodes.Node(level, start >> level));
    out.push_back(std::move(h));
    start += bit;
  }
  return out;
}

Result<std::vector<std::string>> ReadCheckpointNotes(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  if (!in) return out;  // none issued yet
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    const boost::json::string* note =
        ec || !v.is_object() || !v.as_object().contains("note") ? nullptr : v.as_object().at("note").if_string();
    if (note == nullptr) return InvalidArgument(fmt::format("{}:{}: not a checkpoint line", path, n));
    out.emplace_back(note->data(), note->size());
  }
  return out;
}

Result<std::vector<VerifierKey>> ReadPublicKeys(const std::string& dir) {
  std::string path = dir + "/keys.json";
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("audit: {} does not exist", path));
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(ss.str(), ec);
  if (ec || !v.is_object() || !v.as_object().contains("keys") || !v.as_object().at("keys").is_array()) {
    return InvalidArgument(fmt::format("audit: {} is not a key file", path));
  }
  std::vector<VerifierKey> out;
  for (const auto& k : v.as_object().at("keys").as_array()) {
    const boost::json::string* vkey = k.is_object() && k.as_object().contains("vkey") ? k.as_object().at("vkey").if_string() : nullptr;
    if (vkey == nullptr) return InvalidArgument(fmt::format("audit: {}: a key has no vkey", path));
    ASSIGN_OR_RETURN(VerifierKey key, ParseVerifierKey(std::string_view(vkey->data(), vkey->size())));
    out.push_back(std::move(key));
  }
  return out;
}

}  // namespace aigis::audit::internal

// Internals of the SQLite backend that tests observe. Not part of the store
// interface: nothing outside src/store/ includes this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "store/store.h"

namespace aigis::store::internal {

// Prepared statements kept per connection, least recently used evicted.
inline constexpr size_t kStatementCacheCapacity = 64;

struct StatementCacheStats {
  size_t size = 0;      // statements currently cached
  uint64_t hits = 0;    // lookups served without preparing
  uint64_t misses = 0;  // statements prepared
};

// nullopt if `store` is not a SQLite store (or is busy in a transaction on
// this thread).
std::optional<StatementCacheStats> GetStatementCacheStats(Store& store);

}  // namespace aigis::store::internal

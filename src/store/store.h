// store: durable state behind one interface — SQLite (WAL) embedded by
// default, PostgreSQL for fleets of nodes (a later backend of the same
// interface).
//
// Contract:
// * SQL is written once, in the subset both backends speak: numbered
//   placeholders ?1..?N (a PostgreSQL backend rewrites them to $1..$N),
//   INTEGER/TEXT/BLOB/REAL columns, ON CONFLICT upserts.
// * Every table a module creates has a `tenant` column; modules put it first
//   in their keys and filter by it in every query.
// * Migrations are versioned per module and applied once, in order, each in
//   its own transaction, at start-up (Migrate). A database whose recorded
//   version for a module is newer than the binary knows is refused.
// * Calls block on disk I/O: callers keep them off the I/O threads (the
//   gateway runs admin handlers on its blocking pool) or behind caches.
// * A Store is thread-safe. Transaction() runs the function with exclusive
//   use of a connection; nothing else sees its writes before it commits.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/core.h"

namespace aigis::store {

struct Blob {
  std::string bytes;
  bool operator==(const Blob&) const = default;
};
using Value = std::variant<std::nullptr_t, int64_t, double, std::string, Blob>;

// One result row. Accessors fail closed: a wrong type or NULL where a value
// is required returns the fallback (and is a bug in the caller's SQL).
struct Row {
  std::vector<Value> values;
  bool IsNull(size_t i) const;
  int64_t Int(size_t i, int64_t fallback = 0) const;
  double Real(size_t i, double fallback = 0) const;
  // TEXT or BLOB as bytes; "" for NULL.
  const std::string& Text(size_t i) const;
};

struct Migration {
  int version = 0;      // 1, 2, 3... per module, strictly increasing
  std::string name;     // for the log and the schema_migrations table
  std::string sql;      // one or more statements
};

// Queries inside or outside a transaction.
class Session {
 public:
  virtual ~Session() = default;
  // Runs one statement and returns every row it produced.
  virtual Result<std::vector<Row>> Query(std::string_view sql, const std::vector<Value>& params = {}) = 0;
  // Runs one statement; returns the number of rows it changed.
  virtual Result<int64_t> Exec(std::string_view sql, const std::vector<Value>& params = {}) = 0;
  // The first row, or nullopt if there is none.
  Result<std::optional<Row>> QueryOne(std::string_view sql, const std::vector<Value>& params = {});
};

class Store : public Session {
 public:
  virtual std::string_view backend() const = 0;  // "sqlite"
  // Runs `fn` in one transaction: commits if it returns OK, rolls back
  // otherwise (and on a commit failure, which is returned).
  virtual Status Transaction(const std::function<Status(Session&)>& fn) = 0;
  // Applies the module's migrations that are not yet applied. Fails if the
  // database is ahead of `migrations` (a newer binary wrote it).
  virtual Status Migrate(std::string_view module, const std::vector<Migration>& migrations) = 0;
  // The highest applied version for `module`, 0 if none.
  virtual Result<int> SchemaVersion(std::string_view module) = 0;
};

struct SqliteOptions {
  std::string path;  // a file, or ":memory:" (tests)
  std::chrono::milliseconds busy_timeout{5000};
};
// Opens (creating if needed) the database in WAL mode with foreign keys on
// and synchronous=NORMAL; the file is created with mode 0600.
Result<std::unique_ptr<Store>> OpenSqlite(const SqliteOptions& options);

}  // namespace aigis::store

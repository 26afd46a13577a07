// The SQLite backend of the store interface.
//
// Concurrency: one connection, opened SQLITE_OPEN_NOMUTEX and guarded by our
// own mutex. Every public method holds the mutex for its whole duration, so
// statements never interleave; Transaction() holds it from BEGIN IMMEDIATE to
// COMMIT/ROLLBACK and hands `fn` a Session that runs on the same connection
// without locking again. One connection serialises readers behind writers;
// that is fine for the gateway's state (small rows, cached by callers) and
// keeps transaction semantics trivial. A pool of read connections can come
// later behind the same interface.
//
// Re-entrancy: code inside a Transaction's `fn` must use the Session it is
// given. A call on the Store itself from that thread would wait for the mutex
// that thread holds; we detect it by thread id and return kFailedPrecondition
// instead of deadlocking.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store/sqlite_internal.h"
#include "store/store.h"

namespace aigis::store {
namespace {

struct DbCloser {
  // close_v2 defers the close if a statement is still alive instead of
  // failing with SQLITE_BUSY and leaking the handle.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Error messages quote the SQL (never the parameters, which may be secrets),
// shortened so that a long statement does not flood the log.
std::string ShortSql(std::string_view sql) {
  constexpr size_t kMaxSql = 120;
  std::string out;
  out.reserve(std::min(sql.size(), kMaxSql) + 3);
  bool space = false;
  for (char c : sql) {  // collapse the newlines and indentation of literals
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (out.size() >= kMaxSql) {
      out += "...";
      break;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// `rc` is an extended result code (extended codes are switched on at open).
Status SqliteError(int rc, std::string_view message, std::string_view sql) {
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return {Code::kAlreadyExists, std::string(message)};
  }
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    // Another process (or connection) holds the write lock past busy_timeout.
    return Unavailable(fmt::format("sqlite: database busy: {} (in: {})", message, ShortSql(sql)));
  }
  return Internal(fmt::format("sqlite: {} (in: {})", message, ShortSql(sql)));
}

// Runs `fn` when the scope ends unless dismissed; used for rollback on every
// exit path, exceptions included.
template <typename F>
class ScopeExit {
 public:
  explicit ScopeExit(F fn) : fn_(std::move(fn)) {}
  ~ScopeExit() {
    if (armed_) fn_();
  }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  void Dismiss() { armed_ = false; }

 private:
  F fn_;
  bool armed_ = true;
};

// A cached statement is reused, so it must go back to its initial state after
// each call: reset (releases read locks, ends the previous run) and drop the
// bindings (they point at the caller's parameters, bound SQLITE_STATIC).
class StatementUse {
 public:
  explicit StatementUse(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StatementUse() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

// Bounded LRU of prepared statements keyed by SQL text. Not thread-safe: it
// lives under the store's mutex.
class StatementCache {
 public:
  explicit StatementCache(size_t capacity) : capacity_(capacity) {}

  // The statement for `sql`, now most recently used, or nullptr.
  sqlite3_stmt* Find(std::string_view sql) {
    auto it = index_.find(sql);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    ++stats_.hits;
    return it->second->stmt.get();
  }

  sqlite3_stmt* Insert(std::string_view sql, StmtPtr stmt) {
    ++stats_.misses;
    if (lru_.size() >= capacity_) {
      index_.erase(lru_.back().sql);
      lru_.pop_back();
    }
    lru_.push_front(Entry{std::string(sql), std::move(stmt)});
    // The key views the entry's own string: list nodes never move.
    index_.emplace(lru_.front().sql, lru_.begin());
    return lru_.front().stmt.get();
  }

  internal::StatementCacheStats stats() const {
    internal::StatementCacheStats s = stats_;
    s.size = lru_.size();
    return s;
  }

 private:
  struct Entry {
    std::string sql;
    StmtPtr stmt;
  };
  size_t capacity_;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
  internal::StatementCacheStats stats_;
};

Status BindParams(sqlite3_stmt* stmt, const std::vector<Value>& params, std::string_view sql) {
  int expected = sqlite3_bind_parameter_count(stmt);
  // SQLite would silently leave missing parameters NULL and ignore extra ones;
  // either is a bug in the caller that must not reach the data.
  if (params.size() != static_cast<size_t>(expected)) {
    return InvalidArgument(fmt::format("sqlite: statement takes {} parameters, {} given (in: {})", expected,
                                       params.size(), ShortSql(sql)));
  }
  for (int i = 0; i < expected; ++i) {
    int index = i + 1;
    int rc = std::visit(
        [&](const auto& v) -> int {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>) {
            return sqlite3_bind_null(stmt, index);
          } else if constexpr (std::is_same_v<T, int64_t>) {
            return sqlite3_bind_int64(stmt, index, v);
          } else if constexpr (std::is_same_v<T, double>) {
            return sqlite3_bind_double(stmt, index, v);
          } else if constexpr (std::is_same_v<T, std::string>) {
            // The 64-bit variants take the length, so embedded NULs survive.
            return sqlite3_bind_text64(stmt, index, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
          } else {
            static_assert(std::is_same_v<T, Blob>);
            // data() is never null, so an empty Blob binds a zero-length BLOB
            // rather than NULL.
            return sqlite3_bind_blob64(stmt, index, v.bytes.data(), v.bytes.size(), SQLITE_STATIC);
          }
        },
        params[i]);
    if (rc != SQLITE_OK) {
      return SqliteError(rc, fmt::format("cannot bind parameter {}: {}", index, sqlite3_errstr(rc)), sql);
    }
  }
  return Status::Ok();
}

Result<Row> ReadRow(sqlite3* db, sqlite3_stmt* stmt, std::string_view sql) {
  int n = sqlite3_column_count(stmt);
  Row row;
  row.values.reserve(n);
  for (int i = 0; i < n; ++i) {
    switch (sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER:
        row.values.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt, i)));
        break;
      case SQLITE_FLOAT:
        row.values.emplace_back(sqlite3_column_double(stmt, i));
        break;
      case SQLITE_TEXT: {
        // column_text before column_bytes: the byte count is of the
        // representation last asked for.
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
        if (p == nullptr) return SqliteError(SQLITE_NOMEM, "out of memory reading a TEXT column", sql);
        row.values.emplace_back(std::string(p, sqlite3_column_bytes(stmt, i)));
        break;
      }
      case SQLITE_BLOB: {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, i));
        int size = sqlite3_column_bytes(stmt, i);
        // A zero-length BLOB comes back as a null pointer, which is not an
        // error; a null pointer with NOMEM is.
        if (p == nullptr && sqlite3_errcode(db) == SQLITE_NOMEM) {
          return SqliteError(SQLITE_NOMEM, "out of memory reading a BLOB column", sql);
        }
        row.values.emplace_back(Blob{p == nullptr ? std::string() : std::string(p, size)});
        break;
      }
      default:
        row.values.emplace_back(nullptr);
        break;
    }
  }
  return row;
}

// Creates the database file so that it is 0600 from its first byte, whatever
// the umask: sqlite would create it 0644 & ~umask. An existing file keeps its
// mode (the operator may have chosen it) but a readable-by-others one is
// reported.
Status CreatePrivateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    if (err != EEXIST) {
      return Internal(fmt::format("sqlite: cannot create {}: {}", path, std::generic_category().message(err)));
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
      spdlog::warn("store: {} is accessible by other users (mode {:o}); chmod 600 it", path, st.st_mode & 0777);
    }
    return Status::Ok();
  }
  // A restrictive umask (e.g. 0277) would have left us a file we cannot write.
  int rc = ::fchmod(fd, 0600);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Internal(fmt::format("sqlite: cannot chmod {}: {}", path, std::generic_category().message(err)));
  }
  return Status::Ok();
}

class SqliteStore;

// The Session handed to a Transaction's fn: the same connection, the lock
// already held by the thread running fn.
class TxSession final : public Session {
 public:
  explicit TxSession(SqliteStore& store) : store_(store) {}
  Result<std::vector<Row>> Query(std::string_view sql, const std::vector<Value>& params) override;
  Result<int64_t> Exec(std::string_view sql, const std::vector<Value>& params) override;

 private:
  Status CheckOwner() const;
  SqliteStore& store_;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(DbPtr db) : db_(std::move(db)) {}

  std::string_view backend() const override { return "sqlite"; }

  Result<std::vector<Row>> Query(std::string_view sql, const std::vector<Value>& params) override {
    return Locked([&] { return QueryLocked(sql, params); });
  }

  Result<int64_t> Exec(std::string_view sql, const std::vector<Value>& params) override {
    return Locked([&] { return ExecLocked(sql, params); });
  }

  Status Transaction(const std::function<Status(Session&)>& fn) override {
    return Locked([&] {
      TxSession session(*this);
      return TransactionLocked([&] { return fn(session); });
    });
  }

  Status Migrate(std::string_view module, const std::vector<Migration>& migrations) override;

  Result<int> SchemaVersion(std::string_view module) override {
    return Locked([&] { return SchemaVersionLocked(module); });
  }

  // Pragmas and the bookkeeping table, once, right after open.
  Status Configure(bool in_memory);

  std::optional<internal::StatementCacheStats> CacheStats() {
    Result<internal::StatementCacheStats> stats = Locked([&]() -> Result<internal::StatementCacheStats> {
      return cache_.stats();
    });
    if (!stats.ok()) return std::nullopt;
    return *stats;
  }

 private:
  friend class TxSession;

  // Runs `fn` holding the connection; fails instead of self-deadlocking when
  // this thread already holds it (a Store call from inside Transaction's fn).
  template <typename F>
  auto Locked(F&& fn) -> decltype(fn()) {
    if (owner_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
      return Status(Code::kFailedPrecondition,
                    "store: called on the Store from inside its own Transaction; use the Session "
                    "passed to the transaction function");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    // Declared after the lock, so it clears the owner before unlocking.
    ScopeExit clear_owner([this] { owner_.store(std::thread::id(), std::memory_order_relaxed); });
    return fn();
  }

  bool HeldByThisThread() const { return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id(); }

  Result<sqlite3_stmt*> Prepare(std::string_view sql);
  Result<std::vector<Row>> QueryLocked(std::string_view sql, const std::vector<Value>& params);
  Result<int64_t> ExecLocked(std::string_view sql, const std::vector<Value>& params);
  Status TransactionLocked(const std::function<Status()>& body);
  Result<int> SchemaVersionLocked(std::string_view module);
  Status ApplyMigrationLocked(std::string_view module, const Migration& migration);

  std::mutex mutex_;
  // The thread holding mutex_, or id() when free. Only compared with the
  // caller's own id, for which relaxed ordering is exact: it can only be
  // equal if this thread stored it.
  std::atomic<std::thread::id> owner_{};
  // Guarded by mutex_. cache_ is declared after db_ so that its statements
  // are finalized before the connection closes.
  DbPtr db_;
  StatementCache cache_{internal::kStatementCacheCapacity};
};

Status TxSession::CheckOwner() const {
  // The session belongs to the thread running fn, for the duration of fn.
  if (!store_.HeldByThisThread()) {
    return {Code::kFailedPrecondition, "store: transaction session used outside its transaction function"};
  }
  return Status::Ok();
}

Result<std::vector<Row>> TxSession::Query(std::string_view sql, const std::vector<Value>& params) {
  RETURN_IF_ERROR(CheckOwner());
  return store_.QueryLocked(sql, params);
}

Result<int64_t> TxSession::Exec(std::string_view sql, const std::vector<Value>& params) {
  RETURN_IF_ERROR(CheckOwner());
  return store_.ExecLocked(sql, params);
}

Result<sqlite3_stmt*> SqliteStore::Prepare(std::string_view sql) {
  if (sqlite3_stmt* cached = cache_.Find(sql)) return cached;
  if (sql.size() > static_cast<size_t>(INT_MAX)) return InvalidArgument("sqlite: statement too long");
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &raw, &tail);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, sqlite3_errmsg(db_.get()), sql);
  if (stmt == nullptr) return InvalidArgument("sqlite: empty statement");
  // Everything after the first statement would be silently ignored.
  std::string_view rest(tail, sql.data() + sql.size() - tail);
  if (rest.find_first_not_of(" \t\r\n;") != std::string_view::npos) {
    return InvalidArgument(fmt::format("sqlite: one statement per call (scripts belong in a Migration) (in: {})",
                                       ShortSql(sql)));
  }
  return cache_.Insert(sql, std::move(stmt));
}

Result<std::vector<Row>> SqliteStore::QueryLocked(std::string_view sql, const std::vector<Value>& params) {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
  StatementUse use(stmt);
  RETURN_IF_ERROR(BindParams(stmt, params, sql));
  std::vector<Row> rows;
  for (;;) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(rc, sqlite3_errmsg(db_.get()), sql);
    ASSIGN_OR_RETURN(Row row, ReadRow(db_.get(), stmt, sql));
    rows.push_back(std::move(row));
  }
  return rows;
}

Result<int64_t> SqliteStore::ExecLocked(std::string_view sql, const std::vector<Value>& params) {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
  StatementUse use(stmt);
  RETURN_IF_ERROR(BindParams(stmt, params, sql));
  sqlite3_int64 total_before = sqlite3_total_changes64(db_.get());
  for (;;) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(rc, sqlite3_errmsg(db_.get()), sql);
    // Rows of e.g. INSERT ... RETURNING are not wanted here.
  }
  // changes64() keeps the count of the last INSERT/UPDATE/DELETE, so a DDL
  // statement or pragma would report a stale number; if the connection's
  // running total did not move, this statement changed nothing.
  if (sqlite3_total_changes64(db_.get()) == total_before) return int64_t{0};
  return static_cast<int64_t>(sqlite3_changes64(db_.get()));
}

Status SqliteStore::TransactionLocked(const std::function<Status()>& body) {
  // IMMEDIATE takes the write lock now: a deferred transaction that reads and
  // then writes can fail with SQLITE_BUSY halfway, which busy_timeout cannot
  // retry.
  RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE", {}).status());
  ScopeExit rollback([this] {
    // SQLite may already have rolled back by itself (e.g. SQLITE_FULL).
    if (sqlite3_get_autocommit(db_.get())) return;
    char* error = nullptr;
    if (sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, &error) != SQLITE_OK) {
      spdlog::error("store: ROLLBACK failed: {}", error != nullptr ? error : "unknown error");
    }
    sqlite3_free(error);
  });
  RETURN_IF_ERROR(body());
  if (sqlite3_get_autocommit(db_.get())) {
    // fn ran COMMIT or ROLLBACK itself; what it did is unknown to the caller.
    rollback.Dismiss();
    return {Code::kFailedPrecondition, "store: the transaction was ended inside the transaction function"};
  }
  RETURN_IF_ERROR(ExecLocked("COMMIT", {}).status());
  rollback.Dismiss();
  return Status::Ok();
}

Result<int> SqliteStore::SchemaVersionLocked(std::string_view module) {
  ASSIGN_OR_RETURN(std::vector<Row> rows,
                   QueryLocked("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE module = ?1",
                               {std::string(module)}));
  if (rows.empty()) return Internal("sqlite: no result for the schema version");
  return static_cast<int>(rows.front().Int(0));
}

Status SqliteStore::ApplyMigrationLocked(std::string_view module, const Migration& migration) {
  bool applied = false;
  RETURN_IF_ERROR(TransactionLocked([&]() -> Status {
    // Another process on the same file may have applied it since we looked;
    // the write lock of BEGIN IMMEDIATE makes this check final.
    ASSIGN_OR_RETURN(int current, SchemaVersionLocked(module));
    if (current >= migration.version) return Status::Ok();
    char* error = nullptr;
    int rc = sqlite3_exec(db_.get(), migration.sql.c_str(), nullptr, nullptr, &error);
    std::string message = error != nullptr ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    if (rc != SQLITE_OK) {
      return SqliteError(sqlite3_extended_errcode(db_.get()),
                         fmt::format("migration {} {} ({}): {}", module, migration.version, migration.name, message),
                         migration.sql);
    }
    // A COMMIT inside the script would have made part of it durable without
    // its schema_migrations row.
    if (sqlite3_get_autocommit(db_.get())) {
      return {Code::kFailedPrecondition, fmt::format("migration {} {} ({}) ended its own transaction; "
                                                     "remove BEGIN/COMMIT from it",
                                                     module, migration.version, migration.name)};
    }
    RETURN_IF_ERROR(ExecLocked("INSERT INTO schema_migrations (module, version, name, applied_at) "
                               "VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                               {std::string(module), int64_t{migration.version}, migration.name})
                        .status());
    applied = true;
    return Status::Ok();
  }));
  if (applied) spdlog::info("store: applied migration {} {} ({})", module, migration.version, migration.name);
  return Status::Ok();
}

Status SqliteStore::Migrate(std::string_view module, const std::vector<Migration>& migrations) {
  if (module.empty()) return InvalidArgument("store: migration module name is empty");
  // Versions are 1, 2, 3... with no gaps: a gap is a migration lost in a merge.
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i + 1)) {
      return InvalidArgument(fmt::format("store: migrations of {} must be numbered 1, 2, 3... in order; "
                                         "entry {} has version {}",
                                         module, i + 1, migrations[i].version));
    }
  }
  int known = static_cast<int>(migrations.size());
  return Locked([&]() -> Status {
    ASSIGN_OR_RETURN(int current, SchemaVersionLocked(module));
    if (current > known) {
      return {Code::kFailedPrecondition,
              fmt::format("database schema for {} is version {}, this aigis knows up to {}", module, current, known)};
    }
    for (const Migration& migration : migrations) {
      if (migration.version <= current) continue;
      RETURN_IF_ERROR(ApplyMigrationLocked(module, migration));
    }
    return Status::Ok();
  });
}

Status SqliteStore::Configure(bool in_memory) {
  return Locked([&]() -> Status {
    ASSIGN_OR_RETURN(std::vector<Row> mode, QueryLocked("PRAGMA journal_mode=WAL", {}));
    // A file that stays in rollback-journal mode (e.g. on a filesystem
    // without shared memory) would make readers block writers.
    if (!in_memory && (mode.empty() || mode.front().Text(0) != "wal")) {
      return Internal(fmt::format("sqlite: cannot switch to WAL mode (journal_mode is '{}')",
                                  mode.empty() ? "" : mode.front().Text(0)));
    }
    RETURN_IF_ERROR(ExecLocked("PRAGMA synchronous=NORMAL", {}).status());
    RETURN_IF_ERROR(ExecLocked("PRAGMA foreign_keys=ON", {}).status());
    // The pragma is silently a no-op in builds without foreign keys.
    ASSIGN_OR_RETURN(std::vector<Row> fk, QueryLocked("PRAGMA foreign_keys", {}));
    if (fk.empty() || fk.front().Int(0) != 1) return Internal("sqlite: foreign keys are not supported by this build");
    RETURN_IF_ERROR(ExecLocked("CREATE TABLE IF NOT EXISTS schema_migrations ("
                               "module TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, "
                               "applied_at TEXT NOT NULL, PRIMARY KEY (module, version))",
                               {})
                        .status());
    return Status::Ok();
  });
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqlite(const SqliteOptions& options) {
  if (options.path.empty()) return InvalidArgument("sqlite: empty database path");
  // We open NOMUTEX and rely on our own mutex per connection, which needs
  // SQLite's global state (allocator, VFS) to be thread-safe.
  if (sqlite3_threadsafe() == 0) return Internal("sqlite: library built without thread safety");
  bool in_memory = options.path == ":memory:";
  if (!in_memory) RETURN_IF_ERROR(CreatePrivateFile(options.path));

  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(options.path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  DbPtr db(raw);  // sqlite allocates a handle even on failure
  if (rc != SQLITE_OK) {
    return Internal(fmt::format("sqlite: cannot open {}: {}", options.path,
                                db != nullptr ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);  // tells UNIQUE from NOT NULL violations
  auto timeout_ms = std::clamp<int64_t>(options.busy_timeout.count(), 0, INT_MAX);
  sqlite3_busy_timeout(db.get(), static_cast<int>(timeout_ms));
  // Defensive mode forbids SQL that can corrupt the file (writable_schema,
  // direct shadow-table writes) whatever statement a bug lets through.
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);

  auto store = std::make_unique<SqliteStore>(std::move(db));
  Status configured = store->Configure(in_memory);
  if (!configured.ok()) {
    return Status(configured.code(), fmt::format("{} ({})", configured.message(), options.path));
  }
  return std::unique_ptr<Store>(std::move(store));
}

namespace internal {

std::optional<StatementCacheStats> GetStatementCacheStats(Store& store) {
  auto* sqlite = dynamic_cast<SqliteStore*>(&store);
  if (sqlite == nullptr) return std::nullopt;
  return sqlite->CacheStats();
}

}  // namespace internal
}  // namespace aigis::store

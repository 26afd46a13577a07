#include "store/store.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite_internal.h"

namespace aigis::store {
namespace {

using namespace std::string_literals;

std::unique_ptr<Store> OpenMemory() {
  auto store = OpenSqlite({.path = ":memory:"});
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return std::move(store).value();
}

// A private directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/aigis_store_test.XXXXXX";
    const char* dir = ::mkdtemp(pattern);
    if (dir == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = dir;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

int64_t Count(Store& store, const std::string& table) {
  auto rows = store.Query("SELECT COUNT(*) FROM " + table);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  return rows.ok() && !rows->empty() ? rows->front().Int(0, -1) : -1;
}

TEST(Row, AccessorsFailClosed) {
  Row row{{nullptr, int64_t{7}, 2.5, "text"s, Blob{"b\0b"s}}};
  EXPECT_TRUE(row.IsNull(0));
  EXPECT_FALSE(row.IsNull(1));
  EXPECT_TRUE(row.IsNull(99));
  EXPECT_EQ(row.Int(1), 7);
  EXPECT_EQ(row.Int(2, -1), -1);  // a REAL is not an integer
  EXPECT_EQ(row.Int(0, -1), -1);
  EXPECT_EQ(row.Int(99, -1), -1);
  EXPECT_EQ(row.Real(2), 2.5);
  EXPECT_EQ(row.Real(1), 7.0);
  EXPECT_EQ(row.Real(3, -1), -1);
  EXPECT_EQ(row.Text(3), "text");
  EXPECT_EQ(row.Text(4), "b\0b"s);
  EXPECT_EQ(row.Text(0), "");
  EXPECT_EQ(row.Text(1), "");
  EXPECT_EQ(row.Text(99), "");
}

TEST(Sqlite, RoundTripsEveryValueType) {
  auto store = OpenMemory();
  ASSERT_EQ(store->backend(), "sqlite");
  ASSERT_TRUE(store->Exec("CREATE TABLE t (tenant TEXT, i INTEGER, r REAL, s TEXT, b BLOB, n BLOB)").ok());

  const std::string utf8 = "gr\u00fc\u00df \u65e5\u672c \U0001F512 a\0b"s;  // with an embedded NUL
  const Blob blob{"\0\x01\xff\0tail\0"s};
  const int64_t big = INT64_MIN;
  auto changed = store->Exec("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                             {"acme"s, big, -0.125, utf8, blob, nullptr});
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(*changed, 1);
  ASSERT_TRUE(store->Exec("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                          {"acme"s, INT64_MAX, 1e300, ""s, Blob{}, nullptr})
                  .ok());

  auto rows = store->Query("SELECT tenant, i, r, s, b, n, typeof(s), typeof(b) FROM t WHERE tenant = ?1 ORDER BY i",
                           {"acme"s});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  const Row& first = (*rows)[0];
  ASSERT_EQ(first.values.size(), 8u);
  EXPECT_EQ(first.values[0], Value("acme"s));
  EXPECT_EQ(first.values[1], Value(big));
  EXPECT_EQ(first.values[2], Value(-0.125));
  EXPECT_EQ(first.values[3], Value(utf8));
  EXPECT_EQ(first.values[4], Value(blob));
  EXPECT_EQ(first.values[5], Value(nullptr));
  EXPECT_EQ(first.Text(6), "text");  // stored as TEXT, not coerced to BLOB
  EXPECT_EQ(first.Text(7), "blob");
  EXPECT_EQ(first.Text(4), blob.bytes);

  const Row& second = (*rows)[1];
  EXPECT_EQ(second.values[1], Value(INT64_MAX));
  EXPECT_EQ(second.values[2], Value(1e300));
  EXPECT_EQ(second.values[3], Value(""s));
  EXPECT_EQ(second.values[4], Value(Blob{}));  // empty BLOB is not NULL
  EXPECT_FALSE(second.IsNull(4));
}

TEST(Sqlite, QueryOneAndExecCounts) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Exec("CREATE TABLE t (tenant TEXT, k INTEGER)").ok());
  auto none = store->QueryOne("SELECT k FROM t WHERE tenant = ?1", {"a"s});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  for (int64_t k = 1; k <= 3; ++k) ASSERT_TRUE(store->Exec("INSERT INTO t VALUES ('a', ?1)", {k}).ok());
  auto one = store->QueryOne("SELECT k FROM t WHERE tenant = ?1 ORDER BY k DESC", {"a"s});
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->Int(0), 3);

  auto updated = store->Exec("UPDATE t SET k = k + 10 WHERE tenant = ?1 AND k >= ?2", {"a"s, int64_t{2}});
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(*updated, 2);
  // Statements that change nothing report 0, not the previous statement's count.
  auto ddl = store->Exec("CREATE INDEX t_k ON t (tenant, k)");
  ASSERT_TRUE(ddl.ok());
  EXPECT_EQ(*ddl, 0);
  // A statement that returns rows is fine in Exec.
  auto returning = store->Exec("DELETE FROM t WHERE k > ?1 RETURNING k", {int64_t{10}});
  ASSERT_TRUE(returning.ok()) << returning.status().ToString();
  EXPECT_EQ(*returning, 2);
  EXPECT_EQ(Count(*store, "t"), 1);
}

TEST(Sqlite, RejectsMisuse) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Exec("CREATE TABLE t (tenant TEXT, k INTEGER)").ok());
  // Wrong parameter counts would otherwise bind NULL or be ignored.
  EXPECT_EQ(store->Exec("INSERT INTO t VALUES (?1, ?2)", {"a"s}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store->Exec("INSERT INTO t VALUES (?1, 1)", {"a"s, int64_t{1}}).status().code(), Code::kInvalidArgument);
  // Only Migrate runs scripts.
  EXPECT_EQ(store->Exec("INSERT INTO t VALUES ('a', 1); DROP TABLE t").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Count(*store, "t"), 0);
  EXPECT_TRUE(store->Exec("INSERT INTO t VALUES ('a', 1);  \n").ok());  // a trailing ';' is fine
  EXPECT_EQ(store->Exec("   ").status().code(), Code::kInvalidArgument);
  auto bad = store->Query("SELECT nope FROM t");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInternal);
  EXPECT_NE(bad.status().message().find("no such column"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("SELECT nope FROM t"), std::string::npos) << bad.status().message();
}

TEST(Sqlite, UniqueViolationIsAlreadyExists) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Exec("CREATE TABLE users (tenant TEXT, name TEXT, email TEXT NOT NULL, "
                          "PRIMARY KEY (tenant, name), UNIQUE (tenant, email))")
                  .ok());
  ASSERT_TRUE(store->Exec("INSERT INTO users VALUES (?1, ?2, ?3)", {"t"s, "ann"s, "a@x"s}).ok());
  auto dup_key = store->Exec("INSERT INTO users VALUES (?1, ?2, ?3)", {"t"s, "ann"s, "b@x"s});
  EXPECT_EQ(dup_key.status().code(), Code::kAlreadyExists);
  EXPECT_NE(dup_key.status().message().find("UNIQUE constraint failed"), std::string::npos)
      << dup_key.status().message();
  auto dup_unique = store->Exec("INSERT INTO users VALUES (?1, ?2, ?3)", {"t"s, "bob"s, "a@x"s});
  EXPECT_EQ(dup_unique.status().code(), Code::kAlreadyExists);
  // Other constraints are not "already exists".
  auto null_email = store->Exec("INSERT INTO users VALUES (?1, ?2, ?3)", {"t"s, "cy"s, nullptr});
  EXPECT_EQ(null_email.status().code(), Code::kInternal);
  // Same name in another tenant is fine.
  EXPECT_TRUE(store->Exec("INSERT INTO users VALUES (?1, ?2, ?3)", {"u"s, "ann"s, "a@x"s}).ok());
}

TEST(Sqlite, ForeignKeysAreEnforced) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY)").ok());
  ASSERT_TRUE(store->Exec("CREATE TABLE c (pid INTEGER REFERENCES p(id))").ok());
  EXPECT_FALSE(store->Exec("INSERT INTO c VALUES (42)").ok());
}

TEST(Sqlite, TransactionCommitsOrRollsBack) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Exec("CREATE TABLE t (tenant TEXT, k INTEGER PRIMARY KEY)").ok());

  Status committed = store->Transaction([](Session& s) -> Status {
    RETURN_IF_ERROR(s.Exec("INSERT INTO t VALUES ('a', 1)").status());
    RETURN_IF_ERROR(s.Exec("INSERT INTO t VALUES ('a', 2)").status());
    // Own writes are visible inside the transaction.
    auto rows = s.Query("SELECT COUNT(*) FROM t");
    if (!rows.ok() || rows->front().Int(0) != 2) return Internal("own writes not visible");
    return Status::Ok();
  });
  ASSERT_TRUE(committed.ok()) << committed.ToString();
  EXPECT_EQ(Count(*store, "t"), 2);

  // fn fails: its error comes back and nothing it wrote remains.
  Status failed = store->Transaction([](Session& s) -> Status {
    RETURN_IF_ERROR(s.Exec("INSERT INTO t VALUES ('a', 3)").status());
    return InvalidArgument("changed my mind");
  });
  EXPECT_EQ(failed.code(), Code::kInvalidArgument);
  EXPECT_EQ(failed.message(), "changed my mind");
  EXPECT_EQ(Count(*store, "t"), 2);

  // A statement error inside fn, propagated: rolled back as a whole.
  Status conflict = store->Transaction([](Session& s) -> Status {
    RETURN_IF_ERROR(s.Exec("INSERT INTO t VALUES ('a', 4)").status());
    return s.Exec("INSERT INTO t VALUES ('a', 1)").status();
  });
  EXPECT_EQ(conflict.code(), Code::kAlreadyExists);
  EXPECT_EQ(Count(*store, "t"), 2);

  // An exception out of fn rolls back too and leaves the store usable.
  EXPECT_THROW((void)store->Transaction([](Session& s) -> Status {
    (void)s.Exec("INSERT INTO t VALUES ('a', 5)");
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_EQ(Count(*store, "t"), 2);
  EXPECT_TRUE(store->Transaction([](Session& s) { return s.Exec("INSERT INTO t VALUES ('a', 6)").status(); }).ok());
  EXPECT_EQ(Count(*store, "t"), 3);

  // Ending the transaction by hand is reported, not papered over.
  Status manual = store->Transaction([](Session& s) { return s.Exec("ROLLBACK").status(); });
  EXPECT_EQ(manual.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(store->Transaction([](Session&) { return Status::Ok(); }).ok());
}

TEST(Sqlite, ReentrantCallFailsInsteadOfDeadlocking) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Exec("CREATE TABLE t (k INTEGER)").ok());
  Store* raw = store.get();
  std::packaged_task<std::vector<Code>()> task([raw] {
    std::vector<Code> codes;
    Status st = raw->Transaction([&](Session& s) -> Status {
      codes.push_back(raw->Exec("INSERT INTO t VALUES (1)").status().code());
      codes.push_back(raw->Query("SELECT 1").status().code());
      codes.push_back(raw->Transaction([](Session&) { return Status::Ok(); }).code());
      codes.push_back(raw->SchemaVersion("m").status().code());
      codes.push_back(raw->Migrate("m", {}).code());
      return s.Exec("INSERT INTO t VALUES (2)").status();  // the session works
    });
    codes.push_back(st.code());
    return codes;
  });
  auto result = task.get_future();
  std::thread(std::move(task)).detach();
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    // The thread is stuck on the store's mutex; nothing to clean up safely.
    std::fprintf(stderr, "deadlock: a Store call from inside Transaction blocked\n");
    std::_Exit(1);
  }
  std::vector<Code> codes = result.get();
  std::vector<Code> want = {Code::kFailedPrecondition, Code::kFailedPrecondition, Code::kFailedPrecondition,
                            Code::kFailedPrecondition, Code::kFailedPrecondition, Code::kOk};
  EXPECT_EQ(codes, want);
  auto rows = store->Query("SELECT k FROM t");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(rows->front().Int(0), 2);
}

TEST(Sqlite, SessionFromAnotherThreadIsRefused) {
  auto store = OpenMemory();
  Status st = store->Transaction([](Session& s) -> Status {
    Code code = Code::kOk;
    std::thread([&] { code = s.Query("SELECT 1").status().code(); }).join();
    return code == Code::kFailedPrecondition ? Status::Ok() : Internal("session ran on a foreign thread");
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(Sqlite, ConcurrentTransactionsAreSerialised) {
  TempDir dir;
  auto opened = OpenSqlite({.path = dir.File("c.db")});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto store = std::move(opened).value();
  ASSERT_TRUE(store->Exec("CREATE TABLE t (tenant TEXT, thread INTEGER, i INTEGER, PRIMARY KEY (tenant, thread, i))")
                  .ok());
  ASSERT_TRUE(store->Exec("CREATE TABLE counter (tenant TEXT PRIMARY KEY, n INTEGER)").ok());
  ASSERT_TRUE(store->Exec("INSERT INTO counter VALUES ('a', 0)").ok());

  constexpr int kThreads = 4;
  constexpr int kInserts = 200;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kInserts; ++i) {
        // Read-modify-write: lost updates would show if transactions overlapped.
        Status st = store->Transaction([&](Session& s) -> Status {
          ASSIGN_OR_RETURN(auto row, s.QueryOne("SELECT n FROM counter WHERE tenant = 'a'"));
          if (!row) return Internal("no counter");
          RETURN_IF_ERROR(s.Exec("UPDATE counter SET n = ?1 WHERE tenant = 'a'", {row->Int(0) + 1}).status());
          return s.Exec("INSERT INTO t VALUES ('a', ?1, ?2)", {int64_t{t}, int64_t{i}}).status();
        });
        if (!st.ok()) ++failures[t];
        if (i % 50 == 0 && !store->Query("SELECT COUNT(*) FROM t").ok()) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_EQ(Count(*store, "t"), kThreads * kInserts);
  auto n = store->QueryOne("SELECT n FROM counter");
  ASSERT_TRUE(n.ok() && n->has_value());
  EXPECT_EQ((*n)->Int(0), kThreads * kInserts);
}

std::vector<Migration> AuthMigrations() {
  return {
      {1, "users", "CREATE TABLE users (tenant TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (tenant, name));"},
      {2, "keys",
       "CREATE TABLE keys (tenant TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tenant, id));\n"
       "CREATE INDEX keys_by_id ON keys (id);"},
      {3, "users.email", "ALTER TABLE users ADD COLUMN email TEXT"},
  };
}

TEST(Migrate, AppliesOnceAndRecordsVersions) {
  auto store = OpenMemory();
  EXPECT_EQ(*store->SchemaVersion("auth"), 0);
  Status st = store->Migrate("auth", AuthMigrations());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(*store->SchemaVersion("auth"), 3);
  EXPECT_EQ(*store->SchemaVersion("other"), 0);
  ASSERT_TRUE(store->Exec("INSERT INTO users (tenant, name, email) VALUES ('t', 'ann', 'a@x')").ok());

  // Re-running is a no-op: a second ALTER TABLE ADD COLUMN would fail.
  st = store->Migrate("auth", AuthMigrations());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Count(*store, "users"), 1);

  auto rows = store->Query("SELECT module, version, name, applied_at FROM schema_migrations ORDER BY version");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].Text(0), "auth");
  EXPECT_EQ((*rows)[0].Int(1), 1);
  EXPECT_EQ((*rows)[1].Text(2), "keys");
  EXPECT_EQ((*rows)[2].Int(1), 3);
  EXPECT_EQ((*rows)[2].Text(3).size(), std::string("2026-11-23T14:45:00.123Z").size()) << (*rows)[2].Text(3);

  // A later binary adds a migration: only that one runs.
  auto more = AuthMigrations();
  more.push_back({4, "keys.label", "ALTER TABLE keys ADD COLUMN label TEXT"});
  ASSERT_TRUE(store->Migrate("auth", more).ok());
  EXPECT_EQ(*store->SchemaVersion("auth"), 4);
  EXPECT_TRUE(store->Exec("INSERT INTO keys (tenant, id, label) VALUES ('t', 'k', 'l')").ok());
}

TEST(Migrate, RejectsBadVersionLists) {
  auto store = OpenMemory();
  auto m = AuthMigrations();
  std::vector<Migration> out_of_order = {m[0], m[2], m[1]};
  EXPECT_EQ(store->Migrate("auth", out_of_order).code(), Code::kInvalidArgument);
  std::vector<Migration> not_from_one = {m[1], m[2]};
  EXPECT_EQ(store->Migrate("auth", not_from_one).code(), Code::kInvalidArgument);
  std::vector<Migration> duplicate = {m[0], m[0]};
  EXPECT_EQ(store->Migrate("auth", duplicate).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->Migrate("", m).code(), Code::kInvalidArgument);
  // Nothing was applied by a rejected list.
  EXPECT_EQ(*store->SchemaVersion("auth"), 0);
  EXPECT_FALSE(store->Query("SELECT * FROM users").ok());
}

TEST(Migrate, RefusesADatabaseAheadOfTheBinary) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Migrate("auth", AuthMigrations()).ok());
  auto older = AuthMigrations();
  older.pop_back();
  Status st = store->Migrate("auth", older);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_EQ(st.message(), "database schema for auth is version 3, this aigis knows up to 2");
  EXPECT_EQ(store->Migrate("auth", {}).code(), Code::kFailedPrecondition);
}

TEST(Migrate, EachMigrationIsItsOwnTransaction) {
  auto store = OpenMemory();
  std::vector<Migration> m = {
      {1, "a", "CREATE TABLE a (tenant TEXT);"},
      {2, "broken", "CREATE TABLE b (tenant TEXT); INSERT INTO missing VALUES (1);"},
      {3, "c", "CREATE TABLE c (tenant TEXT);"},
  };
  Status st = store->Migrate("mod", m);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("broken"), std::string::npos) << st.message();
  EXPECT_EQ(*store->SchemaVersion("mod"), 1);
  EXPECT_TRUE(store->Query("SELECT * FROM a").ok());
  EXPECT_FALSE(store->Query("SELECT * FROM b").ok()) << "half of migration 2 was kept";
  EXPECT_FALSE(store->Query("SELECT * FROM c").ok()) << "ran past a failed migration";

  // A script that commits by itself is refused and leaves no record.
  std::vector<Migration> commits = {{1, "sneaky", "CREATE TABLE s (tenant TEXT); COMMIT;"}};
  EXPECT_FALSE(store->Migrate("sneaky", commits).ok());
  EXPECT_EQ(*store->SchemaVersion("sneaky"), 0);

  m[1].sql = "CREATE TABLE b (tenant TEXT);";  // fixed in the next release
  ASSERT_TRUE(store->Migrate("mod", m).ok());
  EXPECT_EQ(*store->SchemaVersion("mod"), 3);
}

TEST(Sqlite, FileIsPrivateAndInWalMode) {
  TempDir dir;
  const std::string path = dir.File("aigis.db");
  // A umask that would leave sqlite's default creation mode unwritable.
  mode_t old_umask = ::umask(0277);
  auto opened = OpenSqlite({.path = path});
  ::umask(old_umask);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto store = std::move(opened).value();
  ASSERT_TRUE(store->Migrate("auth", AuthMigrations()).ok());
  ASSERT_TRUE(store->Exec("INSERT INTO users (tenant, name) VALUES ('t', 'ann')").ok());

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // The WAL holds the same data and must not be more open than the database.
  ASSERT_EQ(::stat((path + "-wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  auto mode = store->QueryOne("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok() && mode->has_value());
  EXPECT_EQ((*mode)->Text(0), "wal");
  auto sync = store->QueryOne("PRAGMA synchronous");
  ASSERT_TRUE(sync.ok() && sync->has_value());
  EXPECT_EQ((*sync)->Int(0), 1);  // NORMAL
  auto fk = store->QueryOne("PRAGMA foreign_keys");
  ASSERT_TRUE(fk.ok() && fk->has_value());
  EXPECT_EQ((*fk)->Int(0), 1);

  // Reopening sees the data and the recorded versions; Migrate is a no-op.
  store.reset();
  auto reopened = OpenSqlite({.path = path});
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(*(*reopened)->SchemaVersion("auth"), 3);
  EXPECT_TRUE((*reopened)->Migrate("auth", AuthMigrations()).ok());
  EXPECT_EQ(Count(**reopened, "users"), 1);
}

TEST(Sqlite, OpenFailuresAreErrors) {
  TempDir dir;
  EXPECT_FALSE(OpenSqlite({.path = ""}).ok());
  EXPECT_FALSE(OpenSqlite({.path = dir.File("missing/dir/x.db")}).ok());
  const std::string junk = dir.File("junk.db");
  FILE* f = std::fopen(junk.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("this is not a database, just some bytes that are long enough to have a header........", f);
  std::fclose(f);
  auto opened = OpenSqlite({.path = junk});
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("junk.db"), std::string::npos) << opened.status().message();
}

TEST(Sqlite, WriterLockedOutIsUnavailable) {
  TempDir dir;
  const std::string path = dir.File("busy.db");
  auto a = OpenSqlite({.path = path});
  auto b = OpenSqlite({.path = path, .busy_timeout = std::chrono::milliseconds(0)});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Exec("CREATE TABLE t (k INTEGER)").ok());
  Store& other = **b;
  Status st = (*a)->Transaction([&](Session& s) -> Status {
    RETURN_IF_ERROR(s.Exec("INSERT INTO t VALUES (1)").status());
    // Another connection (another process, in production) wants to write.
    Code code = other.Exec("INSERT INTO t VALUES (2)").status().code();
    // WAL: readers are not blocked by the writer and see the last commit.
    auto count = other.QueryOne("SELECT COUNT(*) FROM t");
    if (!count.ok() || (*count)->Int(0) != 0) return Internal("reader blocked or saw uncommitted data");
    return code == Code::kUnavailable ? Status::Ok() : Internal(std::string(CodeName(code)));
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Count(other, "t"), 1);
}

TEST(Sqlite, StatementCacheIsBoundedAndReused) {
  auto store = OpenMemory();
  ASSERT_TRUE(store->Exec("CREATE TABLE t (tenant TEXT, k INTEGER)").ok());
  auto before = internal::GetStatementCacheStats(*store);
  ASSERT_TRUE(before.has_value());

  // The same text again and again is prepared once.
  for (int64_t i = 0; i < 10; ++i) ASSERT_TRUE(store->Exec("INSERT INTO t VALUES ('a', ?1)", {i}).ok());
  auto after = internal::GetStatementCacheStats(*store);
  EXPECT_EQ(after->misses - before->misses, 1u);
  EXPECT_EQ(after->hits - before->hits, 9u);

  // Many more distinct statements than the cache holds: all correct, the
  // cache stays bounded, and evicted statements are prepared again.
  const int distinct = static_cast<int>(internal::kStatementCacheCapacity) * 3;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < distinct; ++i) {
      auto row = store->QueryOne("SELECT COUNT(*) + " + std::to_string(i) + " FROM t WHERE k >= ?1", {int64_t{5}});
      ASSERT_TRUE(row.ok()) << row.status().ToString();
      ASSERT_TRUE(row->has_value());
      EXPECT_EQ((*row)->Int(0), 5 + i);
    }
  }
  auto bounded = internal::GetStatementCacheStats(*store);
  EXPECT_EQ(bounded->size, internal::kStatementCacheCapacity);
  EXPECT_EQ(bounded->misses - after->misses, 2u * distinct);

  // A cached statement survives a schema change (SQLite re-prepares it).
  ASSERT_TRUE(store->Exec("INSERT INTO t VALUES ('a', ?1)", {int64_t{100}}).ok());
  const std::string select_all = "SELECT * FROM t WHERE k = ?1";
  auto row = store->QueryOne(select_all, {int64_t{100}});
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->values.size(), 2u);
  ASSERT_TRUE(store->Exec("ALTER TABLE t ADD COLUMN extra TEXT").ok());
  auto hits = internal::GetStatementCacheStats(*store)->hits;
  row = store->QueryOne(select_all, {int64_t{100}});
  ASSERT_TRUE(row.ok() && row->has_value()) << row.status().ToString();
  EXPECT_EQ((*row)->values.size(), 3u);
  EXPECT_EQ(internal::GetStatementCacheStats(*store)->hits, hits + 1);
}

}  // namespace
}  // namespace aigis::store

// The log: appends, durability, reads, proofs, checkpoints, recovery of a
// torn tail, export, and the verifier against each kind of tampering.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "audit/audit.h"
#include "audit/internal.h"
#include "crypto/crypto.h"

namespace aigis::audit {
namespace {

namespace fs = std::filesystem;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("aigis-audit-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  LogOptions Options() {
    LogOptions o;
    o.dir = dir_.string();
    o.master_key = std::string(32, 'k') + "master";
    o.checkpoint_interval = std::chrono::milliseconds(0);
    return o;
  }
  std::unique_ptr<Log> OpenLog(LogOptions o) {
    auto log = Log::Open(std::move(o));
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(log).value() : nullptr;
  }
  std::unique_ptr<Log> OpenLog() { return OpenLog(Options()); }

  static Entry Rec(int i, std::string tenant = "default") {
    Entry e;
    e.tenant = std::move(tenant);
    e.request_id = "req-" + std::to_string(i);
    e.time = WallTime(std::chrono::seconds(1'800'000'000 + i));
    std::string decision = i % 3 == 0 ? "deny" : "allow";
    e.json = "{\"request_id\":\"" + e.request_id + "\",\"decision\":\"" + decision +
             "\",\"principal\":{\"kind\":\"agent\",\"id\":\"agent-" + std::to_string(i % 4) + "\"},\"n\":" +
             std::to_string(i) + "}";
    return e;
  }

  // Appends records first..first+n-1 (their indexes in the log).
  void AppendN(Log& log, int n, std::string tenant = "default", int first = 0) {
    uint64_t last = 0;
    for (int i = first; i < first + n; ++i) {
      auto idx = log.Append(Rec(i, tenant));
      ASSERT_TRUE(idx.ok()) << idx.status().ToString();
      EXPECT_EQ(*idx, static_cast<uint64_t>(i));
      last = *idx;
    }
    ASSERT_TRUE(log.WaitDurable(tenant, last).ok());
  }

  std::string Path(const std::string& f) const { return (dir_ / "default" / f).string(); }

  fs::path dir_;
};

TEST_F(LogTest, AppendsReadsAndProves) {
  auto log = OpenLog();
  AppendN(*log, 37);
  EXPECT_EQ(log->Size("default"), 37u);
  Frontier f;
  for (int i = 0; i < 37; ++i) {
    auto rec = log->Record("default", i);
    ASSERT_TRUE(rec.ok());
    EXPECT_EQ(*rec, *Canonicalize(Rec(i).json));
    f.Append(LeafHash(*rec));
  }
  EXPECT_EQ(*log->RootHash("default", 37), f.Root());
  std::vector<std::string> roots;
  for (uint64_t s = 0; s <= 37; ++s) roots.push_back(*log->RootHash("default", s));
  for (uint64_t i = 0; i < 37; ++i) {
    auto p = log->InclusionProof("default", i, 37);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(VerifyInclusion(i, 37, LeafHash(*log->Record("default", i)), *p, roots[37]).ok()) << i;
  }
  for (uint64_t s = 1; s <= 37; ++s) {
    auto p = log->ConsistencyProof("default", s, 37);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(VerifyConsistency(s, 37, *p, roots[s], roots[37]).ok()) << s;
  }
  EXPECT_FALSE(log->Record("default", 37).ok());
  EXPECT_FALSE(log->InclusionProof("default", 3, 38).ok());

  auto found = log->FindRequest("default", "req-20");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->value_or(999), 20u);
  EXPECT_FALSE(log->FindRequest("default", "req-nope")->has_value());

  Query q;
  q.decision = "deny";
  q.principal = "agent:agent-1";
  auto rows = log->Read("default", q);
  ASSERT_TRUE(rows.ok());
  for (const auto& [i, r] : *rows) {
    EXPECT_EQ(i % 3, 0u);
    EXPECT_EQ(i % 4, 1u);
  }
  EXPECT_EQ(rows->size(), 3u);  // 9, 21, 33
  q = Query{};
  q.since = WallTime(std::chrono::seconds(1'800'000'010));
  q.until = WallTime(std::chrono::seconds(1'800'000'013));
  rows = log->Read("default", q);
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].first, 10u);
  q = Query{};
  q.limit = 5;
  q.from = 30;
  EXPECT_EQ(log->Read("default", q)->size(), 5u);
}

TEST_F(LogTest, RefusesBadRecordsAndTenants) {
  auto log = OpenLog();
  Entry e = Rec(0);
  e.json = R"({"a":1.5})";
  EXPECT_FALSE(log->Append(e).ok());
  e.json = R"({"a":1,"a":2})";
  EXPECT_FALSE(log->Append(e).ok());
  e = Rec(0, "../etc");
  EXPECT_FALSE(log->Append(e).ok());
  e = Rec(0, "");
  EXPECT_FALSE(log->Append(e).ok());
  EXPECT_TRUE(log->Healthy().ok());
  // Nothing refused took an index.
  EXPECT_EQ(*log->Append(Rec(0)), 0u);
}

TEST_F(LogTest, TenantsHaveTheirOwnTrees) {
  auto log = OpenLog();
  AppendN(*log, 5, "acme");
  AppendN(*log, 3, "globex");
  EXPECT_EQ(log->Size("acme"), 5u);
  EXPECT_EQ(log->Size("globex"), 3u);
  auto cp = log->IssueCheckpoint("globex");
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->origin, "aigis.local/audit/globex");
  EXPECT_EQ(cp->size, 3u);
  EXPECT_TRUE(log->Verify("acme").ok == false);  // no checkpoint yet for acme
  ASSERT_TRUE(log->IssueCheckpoint("acme").ok());
  EXPECT_TRUE(log->Verify("acme").ok) << log->Verify("acme").ToString();
  EXPECT_TRUE(log->Verify("globex").ok);
}

TEST_F(LogTest, ConcurrentAppendsHaveNoGapsAndBatch) {
  auto log = OpenLog();
  constexpr int kThreads = 4, kEach = 500;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto idx = log->Append(Rec(t * kEach + i));
        ASSERT_TRUE(idx.ok());
        if (i % 50 == 0) ASSERT_TRUE(log->WaitDurable("default", *idx).ok());
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(log->Flush().ok());
  EXPECT_EQ(log->Size("default"), static_cast<uint64_t>(kThreads * kEach));
  LogStats s = log->stats();
  EXPECT_EQ(s.appended, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_LT(s.batches, s.appended);  // group commit: fewer batches than records
  ASSERT_TRUE(log->IssueCheckpoint("default").ok());
  VerifyReport r = log->Verify("default");
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.records, static_cast<uint64_t>(kThreads * kEach));
}

// A failed fdatasync: nothing after it is reported durable, waiters hear
// the error, and the log refuses from then on (fail closed); what was
// durable before stays readable and verifiable after a restart.
TEST_F(LogTest, AFailedSyncFailsItsWaitersAndTheLog) {
  std::atomic<bool> fail{false};
  LogOptions o = Options();
  o.before_sync = [&]() -> Status { return fail ? Status(Code::kInternal, "disk gone") : Status::Ok(); };
  auto log = OpenLog(o);
  AppendN(*log, 5);
  EXPECT_EQ(log->Size("default"), 5u);
  fail = true;
  auto idx = log->Append(Rec(5));
  ASSERT_TRUE(idx.ok());
  Status st = log->WaitDurable("default", *idx);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("disk gone"), std::string::npos) << st.ToString();
  EXPECT_EQ(log->Size("default"), 5u);  // never reported durable
  EXPECT_FALSE(log->Healthy().ok());
  EXPECT_FALSE(log->Append(Rec(6)).ok());
  log.reset();
  auto again = OpenLog();
  ASSERT_NE(again, nullptr);
  EXPECT_GE(again->Size("default"), 5u);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_TRUE(again->Record("default", i).ok()) << i;
  again.reset();
  EXPECT_TRUE(VerifyDirectory(dir_.string(), "default", {}).ok);
}

// With async_linger, records nobody waits for are written and synced in
// groups, later; a waiter gets its record durable at once, not after the
// linger; and nothing is lost at close.
TEST_F(LogTest, AsyncLingerGroupsRecordsAndAWaiterEndsIt) {
  LogOptions o = Options();
  o.async_linger = std::chrono::milliseconds(60'000);  // longer than the test: only a waiter can end it
  std::atomic<int> syncs{0};
  o.before_sync = [&]() -> Status {
    ++syncs;
    return Status::Ok();
  };
  auto log = OpenLog(o);
  AppendN(*log, 3);  // the writer polls from now on
  int before = syncs.load();
  for (int i = 3; i < 200; ++i) ASSERT_TRUE(log->Append(Rec(i)).ok());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(log->WaitDurable("default", 199).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(log->Size("default"), 200u);
  EXPECT_LE(syncs.load() - before, 2) << "one round covers the records appended meanwhile";
  for (int i = 200; i < 210; ++i) ASSERT_TRUE(log->Append(Rec(i)).ok());
  log.reset();  // closing writes and syncs what is queued
  auto again = OpenLog();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Size("default"), 210u);
  again.reset();
  EXPECT_TRUE(VerifyDirectory(dir_.string(), "default", {}).ok);
}

// A checkpoint of the empty tree (issued before any record was durable, as
// the interval checkpoint can be) counts, and does not stop the verifier
// from checking the later ones; one with another root is refused.
TEST_F(LogTest, ACheckpointOfTheEmptyTreeVerifies) {
  auto log = OpenLog();
  auto empty = log->IssueCheckpoint("default");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->size, 0u);
  AppendN(*log, 20);
  ASSERT_TRUE(log->IssueCheckpoint("default").ok());
  std::stringstream out;
  ASSERT_TRUE(log->Export("default", 0, UINT64_MAX, out).ok());
  auto keys = log->VerifierKeys();
  log.reset();
  VerifyReport r = VerifyDirectory(dir_.string(), "default", {});
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.checkpoints, 2u);
  std::stringstream in(out.str());
  r = VerifyExport(in, {empty->note}, keys);
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.checkpoints, 2u);  // the export's own and the empty one
}

TEST_F(LogTest, OneProcessAtATime) {
  auto log = OpenLog();
  auto second = Log::Open(Options());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another process"), std::string::npos);
  log.reset();
  EXPECT_TRUE(Log::Open(Options()).ok());
}

TEST_F(LogTest, ReopensWithTheSameTreeAndKeys) {
  std::string root;
  std::string vkey;
  {
    auto log = OpenLog();
    AppendN(*log, 10);
    ASSERT_TRUE(log->IssueCheckpoint("default").ok());
    root = *log->RootHash("default", 10);
    vkey = log->Keys().back().vkey;
  }
  auto log = OpenLog();
  EXPECT_EQ(log->Size("default"), 10u);
  EXPECT_EQ(*log->RootHash("default", 10), root);
  EXPECT_EQ(log->Keys().back().vkey, vkey);
  EXPECT_EQ(log->LatestCheckpoint("default")->size, 10u);
  EXPECT_EQ(*log->Append(Rec(10)), 10u);
  ASSERT_TRUE(log->Flush().ok());
  ASSERT_TRUE(log->IssueCheckpoint("default").ok());
  EXPECT_TRUE(log->Verify("default").ok) << log->Verify("default").ToString();

  // Another master key cannot unseal the signing key: refuse to start.
  log.reset();
  LogOptions o = Options();
  o.master_key = std::string(40, 'z');
  EXPECT_FALSE(Log::Open(o).ok());
}

TEST_F(LogTest, RecoversATornTailWithoutLosingDurableRecords) {
  std::string root;
  {
    auto log = OpenLog();
    AppendN(*log, 20);
    root = *log->RootHash("default", 20);
  }
  // A batch that died half-written: a frame, an index entry and half a
  // tree node beyond the durable end.
  {
    std::ofstream(Path("records"), std::ios::app) << std::string("\x30\x00\x00\x00{\"half\":", 12);
    std::ofstream(Path("index"), std::ios::app) << std::string(24, '\x01');
    std::ofstream(Path("tree"), std::ios::app) << std::string(16, '\x02');
  }
  // And a head file that lies (torn): recovery does not depend on it.
  { std::ofstream(Path("head"), std::ios::trunc) << "garbage"; }
  auto log = OpenLog();
  EXPECT_EQ(log->Size("default"), 20u);
  EXPECT_EQ(*log->RootHash("default", 20), root);
  EXPECT_EQ(fs::file_size(Path("tree")), internal::TreeNodes(20) * kHashSize);
  EXPECT_EQ(fs::file_size(Path("index")), 20 * internal::kIndexEntry);
  AppendN(*log, 3, "default", 20);
  EXPECT_EQ(log->Size("default"), 23u);
  ASSERT_TRUE(log->IssueCheckpoint("default").ok());
  EXPECT_TRUE(log->Verify("default").ok) << log->Verify("default").ToString();
}

TEST_F(LogTest, RecoveryKeepsAWholeRecordWhoseTreeLeafIsMissing) {
  // The record and its index entry reached the disk, the tree leaf did not:
  // it was never acknowledged, so it is dropped, and the next append takes
  // its index.
  {
    auto log = OpenLog();
    AppendN(*log, 4);
  }
  std::string rec = *Canonicalize(Rec(4).json);
  uint64_t offset = fs::file_size(Path("records"));
  {
    std::string frame;
    for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>(rec.size() >> (8 * i)));
    std::ofstream(Path("records"), std::ios::app) << frame << rec;
    std::ofstream(Path("index"), std::ios::app) << internal::EncodeIndex({offset, 0, 0});
  }
  auto log = OpenLog();
  EXPECT_EQ(log->Size("default"), 4u);
  EXPECT_EQ(*log->Append(Rec(4)), 4u);
}

TEST_F(LogTest, RefusesToStartWhenSignedRecordsAreGone) {
  {
    auto log = OpenLog();
    AppendN(*log, 8);
    ASSERT_TRUE(log->IssueCheckpoint("default").ok());
  }
  fs::resize_file(Path("index"), 5 * internal::kIndexEntry);
  auto log = Log::Open(Options());
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("checkpoint covers 8"), std::string::npos) << log.status().message();
}

TEST_F(LogTest, KeyRotationKeepsOldCheckpointsVerifiable) {
  auto log = OpenLog();
  AppendN(*log, 3);
  auto cp1 = log->IssueCheckpoint("default").value();
  ASSERT_TRUE(log->RotateKey().ok());
  ASSERT_EQ(log->Keys().size(), 2u);
  EXPECT_FALSE(log->Keys()[0].retired.empty());
  EXPECT_TRUE(log->Keys()[1].retired.empty());
  ASSERT_TRUE(log->Append(Rec(3)).ok());
  ASSERT_TRUE(log->Flush().ok());
  auto cp2 = log->IssueCheckpoint("default").value();
  auto keys = log->VerifierKeys();
  EXPECT_TRUE(VerifyNote(cp1.note, {keys[0]}).ok());
  EXPECT_FALSE(VerifyNote(cp1.note, {keys[1]}).ok());
  EXPECT_TRUE(VerifyNote(cp2.note, {keys[1]}).ok());
  VerifyReport r = log->Verify("default");
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.checkpoints, 2u);
  // Offline, with the published keys file.
  EXPECT_TRUE(VerifyDirectory(dir_.string(), "default", {}).ok);
}

// ---------------------------------------------------------------- export ----

class ExportTest : public LogTest {
 protected:
  void SetUp() override {
    LogTest::SetUp();
    log_ = OpenLog();
    AppendN(*log_, 12);
    auto mid = log_->IssueCheckpoint("default");
    ASSERT_TRUE(mid.ok());
    notes_.push_back(mid->note);
    for (int i = 12; i < 25; ++i) ASSERT_TRUE(log_->Append(Rec(i)).ok());
    ASSERT_TRUE(log_->Flush().ok());
    std::stringstream out;
    auto cp = log_->Export("default", 0, UINT64_MAX, out);
    ASSERT_TRUE(cp.ok()) << cp.status().ToString();
    EXPECT_EQ(cp->size, 25u);
    notes_.push_back(cp->note);
    std::string line;
    while (std::getline(out, line)) lines_.push_back(line);
    ASSERT_EQ(lines_.size(), 26u);  // header + 25 records
    keys_ = log_->VerifierKeys();
  }

  VerifyReport Check(const std::vector<std::string>& lines, std::vector<std::string> notes = {}) {
    std::stringstream in;
    for (const auto& l : lines) in << l << "\n";
    return VerifyExport(in, notes.empty() ? notes_ : notes, keys_);
  }

  std::unique_ptr<Log> log_;
  std::vector<std::string> lines_, notes_;
  std::vector<VerifierKey> keys_;
};

TEST_F(ExportTest, AnUntouchedExportVerifies) {
  VerifyReport r = Check(lines_);
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.records, 25u);
  EXPECT_EQ(r.checkpoints, 2u);
}

TEST_F(ExportTest, AModifiedRecordIsNamed) {
  auto lines = lines_;
  size_t at = lines[8].find("allow");  // record 7
  ASSERT_NE(at, std::string::npos);
  lines[8].replace(at, 5, "deny!");
  VerifyReport r = Check(lines);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.kind, "modified");
  EXPECT_EQ(r.index.value_or(999), 7u) << r.ToString();
}

TEST_F(ExportTest, AModifiedRecordWithARecomputedLeafHashIsStillCaught) {
  // The tamperer also fixes the listed leaf hash: the root does not match.
  auto lines = lines_;
  size_t at = lines[3].find("\"n\":2");
  ASSERT_NE(at, std::string::npos);
  lines[3].replace(at, 5, "\"n\":9");
  std::string rec = lines[3].substr(lines[3].find("\"record\":") + 9);
  rec.pop_back();
  size_t h = lines[3].find("\"leaf_hash\":\"") + 13;
  lines[3].replace(h, 44, crypto::Base64Encode(LeafHash(rec)));
  VerifyReport r = Check(lines);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.kind, "modified") << r.ToString();
}

TEST_F(ExportTest, ADeletedRecordIsMissing) {
  auto lines = lines_;
  lines.erase(lines.begin() + 1 + 5);
  VerifyReport r = Check(lines);
  EXPECT_EQ(r.kind, "missing") << r.ToString();
  EXPECT_EQ(r.index.value_or(999), 5u);
}

TEST_F(ExportTest, SwappedRecordsAreReordered) {
  auto lines = lines_;
  std::swap(lines[1 + 4], lines[1 + 9]);
  VerifyReport r = Check(lines);
  EXPECT_EQ(r.kind, "reordered") << r.ToString();
  EXPECT_EQ(r.index.value_or(999), 4u);
}

TEST_F(ExportTest, SwappedRecordContentsAreReordered) {
  // The lines keep their index fields; only the records move.
  auto lines = lines_;
  auto rec_of = [](const std::string& l) { return l.substr(l.find("\"record\":")); };
  std::string a = rec_of(lines[1 + 4]), b = rec_of(lines[1 + 9]);
  lines[1 + 4].replace(lines[1 + 4].find("\"record\":"), a.size(), b);
  lines[1 + 9].replace(lines[1 + 9].find("\"record\":"), b.size(), a);
  VerifyReport r = Check(lines);
  EXPECT_EQ(r.kind, "reordered") << r.ToString();
  EXPECT_EQ(r.index.value_or(999), 4u);
}

TEST_F(ExportTest, ATruncatedTailIsNamed) {
  auto lines = lines_;
  lines.resize(1 + 20);
  VerifyReport r = Check(lines);
  EXPECT_EQ(r.kind, "truncated") << r.ToString();
  EXPECT_EQ(r.index.value_or(999), 20u);
}

TEST_F(ExportTest, AReplacedSignatureIsRefused) {
  auto other = Signer::Generate(keys_[0].name).value();
  auto cp = ParseCheckpoint(notes_.back()).value();
  std::string body = notes_.back().substr(0, notes_.back().find("\n\n") + 1);
  std::string forged = other.Sign(body).value();
  // Same key name, another key: its id does not match any published key,
  // so no known key signed it.
  VerifyReport r = Check(lines_, {notes_[0], forged});
  EXPECT_EQ(r.kind, "bad_signature") << r.ToString();
  // A signature line edited in place (right key id, wrong bytes).
  std::string edited = notes_.back();
  size_t sig = edited.rfind(' ') + 10;
  edited[sig] = edited[sig] == 'A' ? 'B' : 'A';
  r = Check(lines_, {edited});
  EXPECT_EQ(r.kind, "bad_signature") << r.ToString();
  // A checkpoint whose root was changed, re-signed by an unknown key.
  (void)cp;
}

TEST_F(ExportTest, ARangeVerifiesFromItsFrontier) {
  std::stringstream out;
  auto cp = log_->Export("default", 13, UINT64_MAX, out);
  ASSERT_TRUE(cp.ok());
  VerifyReport r = VerifyExport(out, {cp->note}, keys_);
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.records, 12u);
}

TEST_F(ExportTest, TamperingInTheDataDirectoryIsNamed) {
  log_.reset();  // flushes and closes
  EXPECT_TRUE(VerifyDirectory(dir_.string(), "default", {}).ok);
  // Flip a byte inside record 6's bytes.
  std::fstream f(Path("records"), std::ios::in | std::ios::out | std::ios::binary);
  int fd = ::open(Path("index").c_str(), O_RDONLY);
  auto e = internal::DecodeIndex(*internal::ReadAt(fd, internal::kIndexEntry, 6 * internal::kIndexEntry, "index"));
  ::close(fd);
  f.seekg(static_cast<std::streamoff>(e.offset + 10));
  char c;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(e.offset + 10));
  f.put(static_cast<char>(c ^ 0x01));
  f.close();
  VerifyReport r = VerifyDirectory(dir_.string(), "default", {});
  EXPECT_EQ(r.kind, "modified") << r.ToString();
  EXPECT_EQ(r.index.value_or(999), 6u);
}

// Chunks too big for the verifier's buffers (large records) are read from
// the mapping instead: same answers.
TEST_F(LogTest, LargeRecordsVerifyFromTheMapping) {
  auto log = OpenLog();
  for (int i = 0; i < 40; ++i) {  // 12 MB in the first chunk of 512
    Entry e = Rec(i);
    e.json = "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(300'000, static_cast<char>('a' + i % 26)) + "\"}";
    ASSERT_TRUE(log->Append(e).ok());
  }
  ASSERT_TRUE(log->Flush().ok());
  log.reset();
  VerifyReport r = VerifyDirectory(dir_.string(), "default", {});
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.records, 40u);
  int fd = ::open(Path("index").c_str(), O_RDONLY);
  auto e = internal::DecodeIndex(*internal::ReadAt(fd, internal::kIndexEntry, 17 * internal::kIndexEntry, "index"));
  ::close(fd);
  fd = ::open(Path("records").c_str(), O_WRONLY);
  ASSERT_EQ(::pwrite(fd, "Z", 1, static_cast<off_t>(e.offset + 100'000)), 1);
  ::close(fd);
  r = VerifyDirectory(dir_.string(), "default", {});
  EXPECT_EQ(r.kind, "modified") << r.ToString();
  EXPECT_EQ(r.index.value_or(999), 17u);
}

// The directory verifier reads records in chunks on two threads: damage in
// a later chunk, at a chunk's edge and in the index is still named at its
// index, and a checkpoint in the middle of a chunk is checked.
class DataDirTest : public LogTest {
 protected:
  static constexpr int kRecords = 1300;  // three chunks of the reader
  void SetUp() override {
    LogTest::SetUp();
    auto log = OpenLog();
    AppendN(*log, 700);
    ASSERT_TRUE(log->IssueCheckpoint("default").ok());  // size 700: inside the second chunk
    AppendN(*log, kRecords - 700, "default", 700);
  }
  internal::IndexEntry Entry(uint64_t i) {
    int fd = ::open(Path("index").c_str(), O_RDONLY);
    auto e = internal::DecodeIndex(*internal::ReadAt(fd, internal::kIndexEntry, i * internal::kIndexEntry, "index"));
    ::close(fd);
    return e;
  }
  void Patch(const std::string& file, uint64_t at, std::string_view bytes) {
    int fd = ::open(Path(file).c_str(), O_WRONLY);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at)), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  void FlipRecordByte(uint64_t i) {
    uint64_t at = Entry(i).offset + 8;
    std::ifstream in(Path("records"), std::ios::binary);
    in.seekg(static_cast<std::streamoff>(at));
    char c = static_cast<char>(in.get());
    Patch("records", at, std::string(1, static_cast<char>(c ^ 0x20)));
  }
  VerifyReport Verify() { return VerifyDirectory(dir_.string(), "default", {}); }
};

TEST_F(DataDirTest, AnUntouchedDirectoryVerifiesWithEveryCheckpoint) {
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok) << r.ToString();
  EXPECT_EQ(r.records, static_cast<uint64_t>(kRecords));
  EXPECT_EQ(r.checkpoints, 2u);  // 700 and the one issued on close
}

TEST_F(DataDirTest, AModifiedRecordInALaterChunkIsNamed) {
  for (uint64_t i : {511u, 512u, 699u, 1030u, 1299u}) {
    FlipRecordByte(i);
    VerifyReport r = Verify();
    EXPECT_EQ(r.kind, "modified") << i << ": " << r.ToString();
    EXPECT_EQ(r.index.value_or(9999), i) << r.ToString();
    FlipRecordByte(i);  // back
    EXPECT_TRUE(Verify().ok) << i;
  }
}

TEST_F(DataDirTest, ATruncatedRecordsFileIsNamed) {
  uint64_t cut = Entry(1030).offset + 5;  // inside record 1030
  fs::resize_file(Path("records"), cut);
  VerifyReport r = Verify();
  EXPECT_EQ(r.kind, "truncated") << r.ToString();
  EXPECT_EQ(r.index.value_or(9999), 1030u);
}

TEST_F(DataDirTest, ADamagedIndexEntryIsNamed) {
  for (uint64_t i : {0u, 600u, 1024u}) {  // the first, inside a chunk, and the first of one
    internal::IndexEntry e = Entry(i);
    internal::IndexEntry bad = e;
    bad.offset += 3;
    Patch("index", i * internal::kIndexEntry, internal::EncodeIndex(bad));
    VerifyReport r = Verify();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.kind, "malformed") << r.ToString();
    EXPECT_EQ(r.index.value_or(9999), i) << r.ToString();
    EXPECT_NE(r.message.find(fmt::format("index {}: the index points at byte", i)), std::string::npos) << r.message;
    Patch("index", i * internal::kIndexEntry, internal::EncodeIndex(e));
  }
  EXPECT_TRUE(Verify().ok);
}

}  // namespace
}  // namespace aigis::audit

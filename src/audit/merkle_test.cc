// Merkle trees against the transparency-dev vectors in ../shared/data/merkle:
// roots, every inclusion and consistency proof for sizes 1..8, and the
// upstream verification cases (happy paths and hundreds of mutated proofs).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/audit.h"
#include "crypto/crypto.h"

namespace aigis::audit {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::string DataDir() {
  const char* d = std::getenv("AIGIS_SHARED_DATA");
  return std::string(d != nullptr ? d : "../shared/data") + "/merkle";
}

json::value ReadJson(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string B64(const json::value& v) {
  if (v.is_null()) return "";
  auto r = crypto::Base64Decode(std::string(v.as_string()));
  return r.ok() ? *r : std::string("not base64");
}

std::vector<std::string> HashList(const json::value& v, bool hex) {
  std::vector<std::string> out;
  if (v.is_null()) return out;
  for (const auto& h : v.as_array()) out.push_back(hex ? Unhex(h.as_string()) : B64(h));
  return out;
}

// Every complete node of a tree built from leaf hashes, in memory.
class MemTree final : public NodeReader {
 public:
  void Add(std::string leaf_hash) {
    levels_.resize(std::max<size_t>(levels_.size(), 1));
    levels_[0].push_back(std::move(leaf_hash));
    for (size_t l = 0; levels_[l].size() % 2 == 0; ++l) {
      if (levels_.size() == l + 1) levels_.emplace_back();
      auto& cur = levels_[l];
      levels_[l + 1].push_back(NodeHash(cur[cur.size() - 2], cur.back()));
    }
  }
  Result<std::string> Node(int level, uint64_t index) const override {
    if (static_cast<size_t>(level) >= levels_.size() || index >= levels_[level].size()) return NotFound("no such node");
    return levels_[level][index];
  }

 private:
  std::vector<std::vector<std::string>> levels_;
};

class Vectors : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = ReadJson(DataDir() + "/reference_vectors.json");
    for (const auto& in : ref_.at("leaf_inputs_hex").as_array()) leaves_.push_back(Unhex(in.as_string()));
  }
  json::value ref_;
  std::vector<std::string> leaves_;
};

TEST_F(Vectors, LeafHashesAndRoots) {
  const auto& want_leaves = ref_.at("leaf_hashes").as_array();
  ASSERT_EQ(want_leaves.size(), leaves_.size());
  MemTree tree;
  Frontier frontier;
  EXPECT_EQ(crypto::HexEncode(EmptyRoot()), std::string(ref_.at("root_hashes_by_size").at("0").as_string()));
  for (size_t i = 0; i < leaves_.size(); ++i) {
    std::string h = LeafHash(leaves_[i]);
    EXPECT_EQ(crypto::HexEncode(h), std::string(want_leaves[i].as_string())) << i;
    tree.Add(h);
    frontier.Append(h);
    std::string want(ref_.at("root_hashes_by_size").at(std::to_string(i + 1)).as_string());
    auto root = RootHash(tree, i + 1);
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    EXPECT_EQ(crypto::HexEncode(*root), want) << "size " << i + 1;
    EXPECT_EQ(crypto::HexEncode(frontier.Root()), want) << "frontier, size " << i + 1;
    auto again = Frontier::FromPeaks(frontier.size(), frontier.peaks());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->Root(), frontier.Root());
  }
}

TEST_F(Vectors, EveryProofForSizesOneToEight) {
  MemTree tree;
  for (const auto& l : leaves_) tree.Add(LeafHash(l));
  auto root = [&](uint64_t n) { return Unhex(ref_.at("root_hashes_by_size").at(std::to_string(n)).as_string()); };
  int n = 0;
  for (const char* set : {"all_inclusion_proofs", "upstream_inclusion_proofs"}) {
    for (const auto& v : ref_.at(set).as_array()) {
      uint64_t index = v.at("leaf_index").to_number<uint64_t>(), size = v.at("tree_size").to_number<uint64_t>();
      auto want = HashList(v.at("proof"), true);
      auto got = InclusionProof(tree, index, size);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(*got, want) << set << " " << index << "/" << size;
      EXPECT_TRUE(VerifyInclusion(index, size, LeafHash(leaves_[index]), want, root(size)).ok()) << index << "/" << size;
      ++n;
    }
  }
  for (const char* set : {"all_consistency_proofs", "upstream_consistency_proofs"}) {
    for (const auto& v : ref_.at(set).as_array()) {
      uint64_t s1 = v.at("size1").to_number<uint64_t>(), s2 = v.at("size2").to_number<uint64_t>();
      auto want = HashList(v.at("proof"), true);
      auto got = ConsistencyProof(tree, s1, s2);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(*got, want) << set << " " << s1 << "->" << s2;
      EXPECT_TRUE(VerifyConsistency(s1, s2, want, root(s1), root(s2)).ok()) << s1 << "->" << s2;
      ++n;
    }
  }
  EXPECT_GE(n, 72);
}

// testdata/{inclusion,consistency}/**/*.json: each case says whether the
// verifier must refuse it.
TEST(MerkleVerify, UpstreamCases) {
  int cases = 0, refusals = 0;
  for (const char* kind : {"inclusion", "consistency"}) {
    fs::path root = DataDir() + "/testdata/" + kind;
    ASSERT_TRUE(fs::exists(root)) << root;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (e.path().extension() != ".json") continue;
      json::value v = ReadJson(e.path());
      bool want_err = v.at("wantErr").as_bool();
      Status st;
      if (std::string_view(kind) == "inclusion") {
        st = VerifyInclusion(v.at("leafIdx").to_number<uint64_t>(), v.at("treeSize").to_number<uint64_t>(),
                             B64(v.at("leafHash")), HashList(v.at("proof"), false), B64(v.at("root")));
      } else {
        st = VerifyConsistency(v.at("size1").to_number<uint64_t>(), v.at("size2").to_number<uint64_t>(),
                               HashList(v.at("proof"), false), B64(v.at("root1")), B64(v.at("root2")));
      }
      EXPECT_EQ(!st.ok(), want_err) << e.path() << ": " << v.at("desc").as_string() << ": " << st.ToString();
      ++cases;
      refusals += want_err ? 1 : 0;
    }
  }
  EXPECT_GT(cases, 100);
  EXPECT_GT(refusals, 90);
}

// Proofs from a bigger tree, checked by the verifier and against a tree
// rebuilt from scratch.
TEST(Merkle, ProofsRoundTripUpTo70Leaves) {
  MemTree tree;
  std::vector<std::string> roots{EmptyRoot()};
  std::vector<std::string> hashes;
  for (int i = 0; i < 70; ++i) {
    hashes.push_back(LeafHash("record " + std::to_string(i)));
    tree.Add(hashes.back());
    roots.push_back(*RootHash(tree, i + 1));
  }
  for (uint64_t size = 1; size <= 70; ++size) {
    for (uint64_t i = 0; i < size; ++i) {
      auto p = InclusionProof(tree, i, size);
      ASSERT_TRUE(p.ok());
      ASSERT_TRUE(VerifyInclusion(i, size, hashes[i], *p, roots[size]).ok()) << i << "/" << size;
      if (size > 1) EXPECT_FALSE(VerifyInclusion(i, size, hashes[(i + 1) % size], *p, roots[size]).ok());
    }
    for (uint64_t s1 = 1; s1 <= size; ++s1) {
      auto p = ConsistencyProof(tree, s1, size);
      ASSERT_TRUE(p.ok());
      ASSERT_TRUE(VerifyConsistency(s1, size, *p, roots[s1], roots[size]).ok()) << s1 << "->" << size;
      if (s1 < size) {
        EXPECT_FALSE(VerifyConsistency(s1, size, *p, roots[s1 - 1 == 0 ? 2 : s1 - 1], roots[size]).ok());
      }
    }
  }
  EXPECT_FALSE(InclusionProof(tree, 5, 5).ok());
  EXPECT_FALSE(ConsistencyProof(tree, 0, 5).ok());
  EXPECT_FALSE(ConsistencyProof(tree, 6, 5).ok());
}

}  // namespace
}  // namespace aigis::audit

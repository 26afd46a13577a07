// guard: screens text (prompts, responses, tool arguments, tool results,
// tool descriptions) with rule packs compiled into Hyperscan databases.
//
//   rules/guard/*.yaml --LoadRules--> RuleSet (immutable, shared)
//   RuleSet::Scan(text, where)         block mode: every finding with its span
//   RuleSet::OpenStream(where)         stream mode: findings across chunks
//   Judge(findings, policy)            risk score in [0,1] -> verdict
//   MaskingVault                       [EMAIL_1] placeholders out, values back in
//
// Text is scanned twice over: as written (rules marked `raw`, e.g. secrets
// whose case matters) and normalised (Unicode NFKC case folding, default
// ignorables such as zero-width characters removed, common homoglyphs mapped
// to Latin); spans always refer to the text as written. Bounded decoding
// layers (base64, hex, %XX, HTML entities) are decoded once and scanned too;
// a finding there spans the encoded run. A RuleSet is thread-safe: each
// thread scans with its own Hyperscan scratch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace aigis::guard {

// Where text comes from; rules say where they apply.
enum class Where : uint8_t { kRequest, kResponse, kToolArgs, kToolResult, kToolDescription };
inline constexpr int kWhereCount = 5;
std::string_view WhereName(Where w);

enum class Action : uint8_t { kBlock, kMask, kAlert, kScore };
std::string_view ActionName(Action a);

enum class Severity : uint8_t { kLow, kMedium, kHigh, kCritical };

struct Rule {
  std::string id;        // unique, [A-Z0-9-]+
  std::string name;
  std::string category;  // prompt_injection, secrets, pii, ... (rules/guard/README.md)
  Severity severity = Severity::kMedium;
  std::string atlas;     // MITRE ATLAS technique id, "" if none
  std::vector<std::string> patterns;  // Hyperscan syntax
  bool caseless = false, dotall = false, multiline = false;
  bool raw = false;      // match the text as written, not the normalised text
  std::string validator; // "", luhn, iban, us_ssn, entropy, jwt, ipv4_public, base64_text
  double validator_arg = 0;  // entropy: minimum bits per character
  uint8_t applies_to = 0;    // bit (1 << Where)
  Action action = Action::kBlock;
  std::string mask_as;   // placeholder label for kMask
  double score = 0;      // weight in [0,1]
  std::string message;   // for the caller; never the matched text
  std::vector<std::string> match_examples, no_match_examples;
  std::string file;      // where it was declared
  int line = 0;

  bool AppliesTo(Where w) const { return (applies_to >> static_cast<int>(w)) & 1; }
};

struct Finding {
  const Rule* rule = nullptr;  // owned by the RuleSet
  size_t begin = 0, end = 0;   // span in the scanned text as written
  bool decoded = false;        // found in a decoding layer (the span is the encoded run)
  std::string pointer;         // JSON pointer (RFC 6901) of the field, when the text came from a document
  bool in_key = false;         // the span is in the member name at `pointer`, not in its value
};

class RuleSet;

struct LoadResult {
  std::shared_ptr<const RuleSet> rules;  // set when errors is empty
  std::vector<std::string> errors;       // "file:line: rule id: reason"
};

struct LoadOptions {
  // Run every rule's examples and report failures as errors (what ctest and
  // a reload do); off only for benchmarks that load the same packs often.
  bool check_examples = true;
  // Load the packs compiled into the binary (rules/guard) too, before
  // the given paths.
  bool builtin = false;
  // Where compiled Hyperscan databases are kept between loads, keyed by a
  // SHA-256 of the Hyperscan version, mode and every pattern with its
  // flags (a database is compiled once, then read back in milliseconds).
  // "" = the AIGIS_GUARD_CACHE_DIR environment variable, if set; else no
  // cache. A cache entry that does not load is compiled again.
  std::string cache_dir;
};

// Loads rule packs: YAML files, or directories (every *.yaml in them, in
// name order). Ids must be unique across packs. Never throws.
LoadResult LoadRules(const std::vector<std::string>& paths, const LoadOptions& options = {});
// Only the packs shipped in rules/guard, compiled into the binary.
LoadResult LoadBuiltinRules(LoadOptions options = {});
// The same from text (`name` is used in messages).
LoadResult LoadRulesFromString(std::string_view yaml, const std::string& name, const LoadOptions& options = {});

class RuleSet {
 public:
  ~RuleSet();
  const std::vector<Rule>& rules() const;
  const Rule* Find(std::string_view id) const;

  // Every finding of the rules that apply to `where`, ordered by begin. The
  // text is scanned whole; decoding layers are bounded (kMaxDecodedBytes
  // decoded per call, one level deep).
  static constexpr size_t kMaxDecodedBytes = 256 * 1024;
  std::vector<Finding> Scan(std::string_view text, Where where) const;

  // Stream mode: feed chunks in order; each call returns the findings whose
  // match ended in that chunk, with spans as offsets into the whole stream.
  // Raw rules only see the stream as written; normalised rules see each
  // chunk's normalisation (a code point is never split: a chunk's trailing
  // partial UTF-8 sequence is carried into the next).
  class Stream {
   public:
    virtual ~Stream() = default;
    virtual std::vector<Finding> Feed(std::string_view chunk) = 0;
    virtual std::vector<Finding> Finish() = 0;  // end of stream
  };
  // The RuleSet must outlive the stream.
  std::unique_ptr<Stream> OpenStream(Where where) const;

  // For each rule, runs its examples through Scan at every place it applies;
  // returns "file:line: rule id: example N should (not) match: ..." errors.
  std::vector<std::string> CheckExamples() const;

  // Unique to this RuleSet in this process (never reused, unlike an
  // address): what caches of scan results are keyed by.
  uint64_t serial() const { return serial_; }

  struct Impl;
  explicit RuleSet(std::unique_ptr<Impl> impl);  // see LoadRules

 private:
  std::unique_ptr<Impl> impl_;
  uint64_t serial_;
};

// ------------------------------------------------------------ Verdicts ----

struct Policy {
  enum class Mode { kEnforce, kMonitor, kOff };
  Mode mode = Mode::kEnforce;
  double block_threshold = 0.70;  // score >= this: block
  double alert_threshold = 0.30;  // score >= this: alert
};

struct Verdict {
  double score = 0;      // 1 - prod(1 - score_i) over distinct rules
  bool block = false;    // enforce mode and (a block rule matched or score >= block_threshold)
  bool alert = false;
  const Rule* top = nullptr;  // the rule that decided (highest score, block rules first)
  std::vector<Finding> findings;
};
Verdict Judge(std::vector<Finding> findings, const Policy& policy);

// ------------------------------------------------ Documents and places ----

// Scans every string value of a JSON document (tool arguments, tool
// results, an MCP tool listing): each finding carries the JSON pointer of
// its field and a span within that string. Object keys are scanned too
// (pointer of the member, span in the key) since a hostile tool can hide an
// instruction there. Errors: the text is not JSON.
Result<std::vector<Finding>> ScanJson(const RuleSet& rules, std::string_view json, Where where);

// A text judged at a place: what the MCP gateway calls for tool arguments,
// results and descriptions (`json`: the text is a JSON document, scanned
// field by field; a document that does not parse is scanned as text).
Verdict Screen(const RuleSet& rules, std::string_view text, Where where, const Policy& policy, bool json = false);

// ------------------------------------------------------------- Masking ----

// One exchange's masked values. Mask replaces the spans of kMask findings
// with placeholders "[LABEL_n]" (the same value always gets the same
// placeholder); Unmask puts back the values masked with `restore` (what the
// caller sent), never those masked without (what an upstream leaked).
// Values stay in memory only; Digest() gives what may be logged
// (placeholder -> SHA-256 prefix).
class MaskingVault {
 public:
  std::string Mask(std::string_view text, const std::vector<Finding>& findings, bool restore = true);
  std::string Unmask(std::string_view text) const;
  // Every value the vault holds replaced by its placeholder again (what an
  // audit record may keep of a response the client saw unmasked).
  std::string Remask(std::string_view text) const;
  bool empty() const { return values_.empty(); }
  bool restores() const;  // holds a value Unmask would put back
  // `s` is a proper prefix of a placeholder Unmask would replace.
  bool IsPlaceholderPrefix(std::string_view s) const;
  std::vector<std::pair<std::string, std::string>> Digest() const;

  // Unmasks a stream: a placeholder split across chunks is held back until
  // it is complete (only while the tail is the start of a known placeholder).
  class StreamUnmasker {
   public:
    explicit StreamUnmasker(const MaskingVault& vault) : vault_(vault) {}
    std::string Feed(std::string_view chunk);
    std::string Finish();

   private:
    const MaskingVault& vault_;
    std::string pending_;
  };

 private:
  struct Entry {
    std::string placeholder, value;
    bool restore = true;
  };
  std::vector<Entry> values_;
  std::vector<std::pair<std::string, int>> counters_;  // label, last n
};

// ---------------------------------------------------------- Evaluation ----

// A labelled data set for `aigis guard eval`: JSON lines (one object per
// line) or CSV with a header row. Field names are looked up in order.
struct DatasetFields {
  std::vector<std::string> text{"text", "prompt", "input"};
  std::vector<std::string> label{"label", "expected", "flagged"};
  std::vector<std::string> category{"category", "type"};
};
struct LabelledText {
  std::string text;
  bool label = false;    // true: should be flagged
  std::string category;  // "" when the set has none
};
// Labels: true/false, 1/0, yes/no, or a word: unsafe, malicious, injection,
// jailbreak, attack, positive (flagged) / safe, benign, negative, clean.
// Errors name the line and what to fix.
Result<std::vector<LabelledText>> ReadLabelled(const std::string& path, const DatasetFields& fields = {});

struct EvalItem {
  size_t index = 0;
  bool flagged = false;  // blocked, alerted or masked something
  double score = 0;
  std::vector<std::string> rules;  // ids of the rules that matched
};
struct EvalStats {
  std::string category;
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  double Precision() const { return tp + fp ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0; }
  double Recall() const { return tp + fn ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0; }
  double F1() const { double p = Precision(), r = Recall(); return p + r > 0 ? 2 * p * r / (p + r) : 0; }
  double FalsePositiveRate() const { return fp + tn ? static_cast<double>(fp) / static_cast<double>(fp + tn) : 0; }
};
struct EvalReport {
  std::vector<EvalItem> items;           // in input order
  std::vector<EvalStats> per_category;   // sorted by category
  EvalStats all;
};
EvalReport Evaluate(const RuleSet& rules, const std::vector<LabelledText>& data, const Policy& policy, Where where);
// The per-category table (markdown) and one JSON line per item.
std::string FormatTable(const EvalReport& report);
std::string FormatItem(const EvalItem& item);

}  // namespace aigis::guard

// The scanner: rules compiled into Hyperscan databases, block and stream
// scanning, spans, validators and decoding layers.
//
// Per RuleSet (a finding is kept only where its rule applies):
//   detect  per place (request, response, ...), the patterns of the rules
//           that apply there, block mode, one report per pattern
//           (HS_FLAG_SINGLEMATCH): the hot path, and all that runs on
//           clean text.
//   span    block mode with HS_FLAG_SOM_LEFTMOST, only the patterns of rules
//           that need a start (mask rules, rules with a validator): run
//           only when `detect` reported one of them. Start-of-match
//           tracking is what makes Hyperscan compiles slow (a combined SOM
//           database of a few dozen patterns with bounded repeats takes
//           seconds), so other rules report their match end only.
//   stream  stream mode: end offsets across chunks; spans are then found by
//           a `span` scan of the retained tail of the stream.
// Patterns of non-raw rules are compiled caseless: on ASCII text the
// normalised text is the lower-cased original, so scanning the original
// caseless is the same and saves a copy. Other text is normalised and the
// non-raw patterns run on the normalised copy (raw ones on the original).
#include <hs/hs.h>

#include <algorithm>
#include <atomic>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <unordered_map>

#include "crypto/crypto.h"
#include "guard/internal.h"

namespace aigis::guard {

namespace {

// Internal "pre-filter" patterns that tell the scanner a decoding layer is
// worth building; their ids come after the rules' patterns.
constexpr const char* kLayerHints[] = {
    R"([A-Za-z0-9+/_-]{24})",  // a base64 run (hex runs are base64 runs too)
    R"(%[0-9A-Fa-f]{2})",      // URL encoding
    R"(&(#[0-9]{2,7}|#[xX][0-9A-Fa-f]{2,6}|[a-z]{2,6});)",  // HTML entities
};

struct DbDeleter {
  void operator()(hs_database_t* db) const { hs_free_database(db); }
};
using Db = std::unique_ptr<hs_database_t, DbDeleter>;

struct Pattern {
  uint32_t rule;  // index in rules
  bool raw;
  bool span;      // its rule needs the start of a match (in the span database)
};

std::atomic<uint64_t> g_next_ruleset_id{1};

}  // namespace

struct RuleSet::Impl {
  uint64_t id = g_next_ruleset_id.fetch_add(1);
  std::vector<Rule> rules;
  std::vector<Pattern> patterns;  // by Hyperscan id; ids >= patterns.size() are layer hints
  Db detect[kWhereCount];         // by Where
  Db span, stream;
};

namespace {

// One Hyperscan scratch per thread and RuleSet (scratch space cannot be
// shared between threads). A thread keeps the last few RuleSets' scratch.
struct ScratchDeleter {
  void operator()(hs_scratch_t* s) const { hs_free_scratch(s); }
};
using Scratch = std::unique_ptr<hs_scratch_t, ScratchDeleter>;

hs_scratch_t* ScratchFor(const RuleSet::Impl& impl) {
  thread_local std::vector<std::pair<uint64_t, Scratch>> cache;
  for (auto& [id, s] : cache) {
    if (id == impl.id) return s.get();
  }
  hs_scratch_t* s = nullptr;
  std::vector<hs_database_t*> dbs{impl.span.get(), impl.stream.get()};  // any may be null
  for (const auto& d : impl.detect) dbs.push_back(d.get());
  for (hs_database_t* db : dbs) {
    if (db != nullptr && hs_alloc_scratch(db, &s) != HS_SUCCESS) return nullptr;
  }
  if (cache.size() >= 4) cache.erase(cache.begin());
  cache.emplace_back(impl.id, Scratch(s));
  return s;
}

struct Hit {
  uint32_t pattern;
  size_t from, to;
};

// Collects reports; stops after kMaxHits (a hostile text cannot make the
// scanner allocate without bound).
constexpr size_t kMaxHits = 4096;
struct Collector {
  std::vector<Hit> hits;
  static int OnMatch(unsigned int id, unsigned long long from, unsigned long long to, unsigned int, void* ctx) {
    auto* c = static_cast<Collector*>(ctx);
    c->hits.push_back({id, static_cast<size_t>(from), static_cast<size_t>(to)});
    return c->hits.size() >= kMaxHits ? 1 : 0;
  }
};

bool ScanDb(const hs_database_t* db, hs_scratch_t* scratch, std::string_view text, Collector* out) {
  if (db == nullptr) return true;  // no pattern
  hs_error_t err = hs_scan(db, text.data(), static_cast<unsigned int>(text.size()), 0, scratch, &Collector::OnMatch, out);
  return err == HS_SUCCESS || err == HS_SCAN_TERMINATED;
}

class Scanner {
 public:
  Scanner(const RuleSet::Impl& impl, Where where) : impl_(impl), where_(where) {}

  // Findings in `text` (valid UTF-8 or not); `decode` adds one level of
  // decoding layers.
  std::vector<Finding> Run(std::string_view text, bool decode) {
    std::vector<Finding> out;
    if (text.empty()) return out;
    if (text.size() > 0xFFFFFFFFu) text = text.substr(0, 0xFFFFFFFFu);  // Hyperscan takes 32-bit lengths
    hs_scratch_t* scratch = ScratchFor(impl_);
    if (scratch == nullptr) return out;
    std::string sanitized;
    std::string_view original = internal::SanitizeUtf8(text, &sanitized) ? std::string_view(sanitized) : text;
    const bool ascii = internal::IsAscii(original);

    Collector detect;
    const hs_database_t* db = impl_.detect[static_cast<size_t>(where_)].get();
    ScanDb(db, scratch, original, &detect);
    internal::Normalized norm;
    Collector detect_norm;
    if (!ascii) {
      norm = internal::Normalize(original);
      ScanDb(db, scratch, norm.text, &detect_norm);
    }
    bool layer_hint = false;
    bool raw_hit = false, norm_hit = false;
    for (const Hit& h : detect.hits) {
      if (h.pattern >= impl_.patterns.size()) {
        layer_hint = true;
      } else if (Applies(h.pattern) && (ascii || impl_.patterns[h.pattern].raw)) {
        raw_hit = true;
      }
    }
    for (const Hit& h : detect_norm.hits) {
      if (h.pattern < impl_.patterns.size() && Applies(h.pattern) && !impl_.patterns[h.pattern].raw) norm_hit = true;
    }
    if (raw_hit) Spans(original, scratch, ascii, nullptr, detect.hits, &out);
    if (norm_hit) Spans(norm.text, scratch, false, &norm, detect_norm.hits, &out);
    if (decode && layer_hint) {
      for (const auto& layer : internal::DecodeLayers(original, RuleSet::kMaxDecodedBytes)) {
        for (Finding f : Run(layer.decoded, /*decode=*/false)) {
          f.begin = layer.begin;
          f.end = layer.end;
          f.decoded = true;
          out.push_back(f);
        }
      }
    }
    std::sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
    });
    // One finding per rule and span.
    out.erase(std::unique(out.begin(), out.end(),
                          [](const Finding& a, const Finding& b) {
                            return a.rule == b.rule && a.begin == b.begin && a.end == b.end;
                          }),
              out.end());
    return out;
  }

 private:
  bool Applies(uint32_t pattern) const { return impl_.rules[impl_.patterns[pattern].rule].AppliesTo(where_); }

  // Spans of the patterns that matched `text` (the original when `norm` is
  // null, else the normalised copy whose offsets `norm` maps back), after
  // validators: for each rule, the longest valid match at each start,
  // non-overlapping.
  void Spans(std::string_view text, hs_scratch_t* scratch, bool all_patterns, const internal::Normalized* norm,
             const std::vector<Hit>& detected, std::vector<Finding>* out) {
    // Raw rules read the original; non-raw ones the normalised text (or
    // the original, caseless, when it is ASCII).
    auto wanted = [&](const Hit& h) {
      if (h.pattern >= impl_.patterns.size() || !Applies(h.pattern)) return false;
      bool raw = impl_.patterns[h.pattern].raw;
      return norm != nullptr ? !raw : (raw || all_patterns);
    };
    // Rules without a span database entry: the match end is what we have.
    bool need_spans = false;
    for (const Hit& h : detected) {
      if (!wanted(h)) continue;
      if (impl_.patterns[h.pattern].span) {
        need_spans = true;
        continue;
      }
      size_t end = norm ? norm->OriginalEnd(h.to) : h.to;
      out->push_back({&impl_.rules[impl_.patterns[h.pattern].rule], end, end, false});
    }
    if (!need_spans || !impl_.span) return;
    Collector c;
    ScanDb(impl_.span.get(), scratch, text, &c);
    std::vector<Hit> hits;
    for (const Hit& h : c.hits) {
      if (wanted(h)) hits.push_back(h);
    }
    std::sort(hits.begin(), hits.end(), [&](const Hit& a, const Hit& b) {
      uint32_t ra = impl_.patterns[a.pattern].rule, rb = impl_.patterns[b.pattern].rule;
      if (ra != rb) return ra < rb;
      return a.from != b.from ? a.from < b.from : a.to > b.to;
    });
    uint32_t last_rule = UINT32_MAX;
    size_t covered_to = 0;
    for (const Hit& h : hits) {
      uint32_t r = impl_.patterns[h.pattern].rule;
      if (r != last_rule) {
        last_rule = r;
        covered_to = 0;
      }
      if (h.from < covered_to) continue;
      const Rule& rule = impl_.rules[r];
      size_t begin = norm ? norm->OriginalBegin(h.from) : h.from;
      size_t end = norm ? norm->OriginalEnd(h.to) : h.to;
      std::string_view span = norm ? std::string_view(norm->text).substr(h.from, h.to - h.from)
                                   : text.substr(h.from, h.to - h.from);
      if (!internal::Validate(rule.validator, rule.validator_arg, span)) continue;
      covered_to = h.to;
      out->push_back({&rule, begin, end, false, {}});
    }
  }

  const RuleSet::Impl& impl_;
  Where where_;
};

// Stream mode over the `stream` database; spans come from a block scan of
// the retained tail when the stream reports a match.
class StreamImpl final : public RuleSet::Stream {
 public:
  static constexpr size_t kTail = 64 * 1024;
  static constexpr size_t kWindow = 4 * 1024;

  StreamImpl(const RuleSet::Impl& impl, Where where) : impl_(impl), where_(where) {
    scratch_ = ScratchFor(impl_);
    if (scratch_ != nullptr && hs_open_stream(impl_.stream.get(), 0, &stream_) != HS_SUCCESS) stream_ = nullptr;
  }
  ~StreamImpl() override {
    if (stream_ != nullptr) hs_close_stream(stream_, scratch_, nullptr, nullptr);
  }

  std::vector<Finding> Feed(std::string_view chunk) override {
    // Keep a code point whole: carry an incomplete trailing UTF-8 sequence.
    std::string data = carry_ + std::string(chunk);
    carry_.clear();
    size_t cut = data.size();
    for (size_t back = 1; back <= 3 && back <= data.size(); ++back) {
      auto c = static_cast<unsigned char>(data[data.size() - back]);
      if ((c & 0xC0) == 0x80) continue;  // continuation byte
      size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (need > back) cut = data.size() - back;
      break;
    }
    carry_ = data.substr(cut);
    data.resize(cut);
    return Process(data);
  }

  std::vector<Finding> Finish() override {
    std::vector<Finding> out;
    if (!carry_.empty()) {
      out = Process(carry_);
      carry_.clear();
    }
    return out;
  }

 private:
  std::vector<Finding> Process(std::string_view data) {
    std::vector<Finding> out;
    if (data.empty()) return out;
    std::string sanitized;
    std::string_view text = internal::SanitizeUtf8(data, &sanitized) ? std::string_view(sanitized) : data;
    Collector c;
    if (stream_ != nullptr) {
      hs_scan_stream(stream_, text.data(), static_cast<unsigned int>(text.size()), 0, scratch_, &Collector::OnMatch, &c);
    }
    tail_.append(text);
    size_t tail_start = offset_ + text.size() - tail_.size();
    std::vector<const Rule*> hit;
    for (const Hit& h : c.hits) {
      if (h.pattern >= impl_.patterns.size()) continue;
      const Rule* r = &impl_.rules[impl_.patterns[h.pattern].rule];
      if (r->AppliesTo(where_) && std::find(hit.begin(), hit.end(), r) == hit.end()) hit.push_back(r);
    }
    if (!hit.empty()) {
      // Re-find the spans in the tail; report those that end in this chunk
      // and were not reported before. The last kWindow bytes first (most
      // matches are short); the whole tail when a rule that hit is not
      // found there (its match starts earlier).
      auto rescan = [&](size_t from) {
        std::vector<Finding> found;
        Scanner s(impl_, where_);
        for (Finding f : s.Run(std::string_view(tail_).substr(from), /*decode=*/false)) {
          f.begin += tail_start + from;
          f.end += tail_start + from;
          if (f.end <= offset_ || f.end <= reported_to_) continue;
          found.push_back(f);
        }
        return found;
      };
      size_t from = tail_.size() > kWindow + text.size() ? tail_.size() - kWindow - text.size() : 0;
      out = rescan(from);
      bool all = std::all_of(hit.begin(), hit.end(), [&](const Rule* r) {
        return std::any_of(out.begin(), out.end(), [&](const Finding& f) { return f.rule == r; });
      });
      if (!all && from > 0) out = rescan(0);
      for (const Finding& f : out) reported_to_ = std::max(reported_to_, f.end);
    }
    offset_ += text.size();
    if (tail_.size() > kTail) tail_.erase(0, tail_.size() - kTail);
    return out;
  }

  const RuleSet::Impl& impl_;
  Where where_;
  hs_scratch_t* scratch_ = nullptr;
  hs_stream_t* stream_ = nullptr;
  std::string carry_;
  std::string tail_;
  size_t offset_ = 0;       // bytes of the stream processed
  size_t reported_to_ = 0;  // end of the last reported finding
};

// Hyperscan flags of a rule's patterns: non-raw rules are caseless (see the
// top of this file).
//
// UTF-8 mode only for patterns that name non-ASCII characters (a literal,
// or \x{...}): an ASCII pattern matches the same either way (the input is
// valid UTF-8, and \b, \w, \s are ASCII classes in both modes), and
// UTF-8 mode makes \b and wide classes several times slower to compile
// (one prompt-injection pattern: 1.2 s against 0.4 s).
unsigned FlagsFor(const Rule& rule, std::string_view pattern) {
  bool utf8 = pattern.find("\\x{") != std::string_view::npos || pattern.find("\\p") != std::string_view::npos ||
              !internal::IsAscii(pattern);
  unsigned f = utf8 ? HS_FLAG_UTF8 : 0;
  if (rule.caseless || !rule.raw) f |= HS_FLAG_CASELESS;
  if (rule.dotall) f |= HS_FLAG_DOTALL;
  if (rule.multiline) f |= HS_FLAG_MULTILINE;
  return f;
}

// The cache directory a load uses (LoadOptions::cache_dir).
std::string CacheDir(const LoadOptions& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  const char* env = std::getenv("AIGIS_GUARD_CACHE_DIR");
  return env != nullptr ? env : "";
}

// A database from the cache, or null.
hs_database_t* ReadCached(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  hs_database_t* db = nullptr;
  if (hs_deserialize_database(bytes.data(), bytes.size(), &db) != HS_SUCCESS) return nullptr;
  // Built for another CPU or corrupt: a scratch cannot be allocated for it.
  hs_scratch_t* scratch = nullptr;
  if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
    hs_free_database(db);
    return nullptr;
  }
  hs_free_scratch(scratch);
  return db;
}

// Best effort: a cache that cannot be written only costs a compile.
void WriteCached(const std::string& dir, const std::string& path, const hs_database_t* db) {
  char* bytes = nullptr;
  size_t size = 0;
  if (hs_serialize_database(db, &bytes, &size) != HS_SUCCESS) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::string tmp = fmt::format("{}.{}.tmp", path, ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes, static_cast<std::streamsize>(size));
    if (!out) ec = std::make_error_code(std::errc::io_error);
  }
  free(bytes);  // NOLINT: Hyperscan allocates with malloc
  if (!ec) std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

// Compiles one database of the patterns `keep` selects (plus the layer
// hints, except in stream mode) or reports which pattern does not compile.
// Pattern ids are the same in every database. No pattern: null.
template <typename Keep>
Result<Db> CompileDb(const std::vector<Rule>& rules, const std::vector<Pattern>& pats, unsigned mode, unsigned extra,
                     bool hints, Keep keep, const std::string& cache_dir, std::vector<std::string>* errors) {
  std::vector<const char*> exprs;
  std::vector<unsigned> flags, ids;
  size_t pi = 0;
  for (uint32_t r = 0; r < rules.size(); ++r) {
    const Rule& rule = rules[r];
    for (const auto& p : rule.patterns) {
      if (!keep(pats[pi])) {
        ++pi;
        continue;
      }
      exprs.push_back(p.c_str());
      flags.push_back(FlagsFor(rule, p) | extra);
      ids.push_back(static_cast<unsigned>(pi++));
    }
  }
  if (exprs.empty()) return Db(nullptr);
  if (hints) {
    for (const char* h : kLayerHints) {
      exprs.push_back(h);
      flags.push_back(HS_FLAG_SINGLEMATCH);
      ids.push_back(static_cast<unsigned>(pi++));
    }
  }
  std::string path;
  if (!cache_dir.empty()) {
    std::string key = fmt::format("{}\n{}\n{}\n", hs_version(), mode, exprs.size());
    for (size_t i = 0; i < exprs.size(); ++i) key += fmt::format("{}\t{}\t{}\n", ids[i], flags[i], exprs[i]);
    path = fmt::format("{}/{}.hsdb", cache_dir, crypto::HexEncode(crypto::Sha256(key)));
    if (hs_database_t* db = ReadCached(path)) return Db(db);
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* err = nullptr;
  hs_platform_info_t* platform = nullptr;
  if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()), mode, platform, &db,
                       &err) != HS_SUCCESS) {
    std::string msg = err != nullptr && err->message ? err->message : "unknown error";
    int at = err != nullptr ? err->expression : -1;
    if (at >= 0 && static_cast<size_t>(at) < ids.size() && ids[static_cast<size_t>(at)] < pats.size()) {
      const Rule& rule = rules[pats[ids[static_cast<size_t>(at)]].rule];
      errors->push_back(fmt::format("{}:{}: {}: pattern '{}' does not compile: {}", rule.file, rule.line, rule.id,
                                    exprs[static_cast<size_t>(at)], msg));
    } else {
      errors->push_back("rule set does not compile: " + msg);
    }
    hs_free_compile_error(err);
    return Internal(msg);
  }
  if (!path.empty()) WriteCached(cache_dir, path, db);
  return Db(db);
}

}  // namespace

namespace internal {

LoadResult Compile(std::vector<Rule> rules, const LoadOptions& options) {
  std::vector<std::string> errors;
  // Unique ids.
  std::unordered_map<std::string, const Rule*> seen;
  for (const auto& r : rules) {
    if (auto [it, fresh] = seen.emplace(r.id, &r); !fresh) {
      errors.push_back(fmt::format("{}:{}: {}: duplicate id (first in {}:{})", r.file, r.line, r.id, it->second->file,
                                   it->second->line));
    }
  }
  if (!errors.empty()) return {nullptr, std::move(errors)};
  if (rules.empty()) return {nullptr, {"no rules"}};

  auto impl = std::make_unique<RuleSet::Impl>();
  impl->rules = std::move(rules);
  for (uint32_t r = 0; r < impl->rules.size(); ++r) {
    const Rule& rule = impl->rules[r];
    bool span = rule.action == Action::kMask || !rule.validator.empty();
    for (size_t p = 0; p < rule.patterns.size(); ++p) impl->patterns.push_back({r, rule.raw, span});
  }
  std::vector<std::string> first_error;
  // The compiles are independent and take most of a load: run them side
  // by side (each collects its own errors).
  const std::string cache = CacheDir(options);
  const auto& rules_ref = impl->rules;
  const auto& pats = impl->patterns;
  std::vector<std::vector<std::string>> job_errors(kWhereCount + 2);
  std::vector<std::future<Result<Db>>> jobs;
  jobs.push_back(std::async(std::launch::async, [&] {
    return CompileDb(rules_ref, pats, HS_MODE_BLOCK, HS_FLAG_SOM_LEFTMOST, false, [](const Pattern& p) { return p.span; },
                     cache, &job_errors[0]);
  }));
  jobs.push_back(std::async(std::launch::async, [&] {
    return CompileDb(rules_ref, pats, HS_MODE_STREAM, 0, false, [](const Pattern&) { return true; }, cache,
                     &job_errors[1]);
  }));
  for (int w = 0; w < kWhereCount; ++w) {
    jobs.push_back(std::async(std::launch::async, [&, w] {
      return CompileDb(rules_ref, pats, HS_MODE_BLOCK, HS_FLAG_SINGLEMATCH, true,
                       [&](const Pattern& p) { return rules_ref[p.rule].AppliesTo(static_cast<Where>(w)); }, cache,
                       &job_errors[static_cast<size_t>(w) + 2]);
    }));
  }
  std::vector<Result<Db>> dbs;
  for (auto& j : jobs) dbs.push_back(j.get());
  for (auto& e : job_errors) first_error.insert(first_error.end(), e.begin(), e.end());
  bool compiled = std::all_of(dbs.begin(), dbs.end(), [](const Result<Db>& d) { return d.ok(); });
  if (!compiled) {
    // A multi-pattern compile stops at the first bad pattern: compile each
    // on its own to report every one.
    for (const auto& rule : impl->rules) {
      for (const auto& p : rule.patterns) {
        for (unsigned mode : {static_cast<unsigned>(HS_MODE_BLOCK), static_cast<unsigned>(HS_MODE_STREAM)}) {
          bool span = rule.action == Action::kMask || !rule.validator.empty();
          unsigned f = FlagsFor(rule, p) | (mode == HS_MODE_BLOCK && span ? HS_FLAG_SOM_LEFTMOST : 0);
          hs_database_t* db = nullptr;
          hs_compile_error_t* err = nullptr;
          if (hs_compile(p.c_str(), f, mode, nullptr, &db, &err) != HS_SUCCESS) {
            errors.push_back(fmt::format("{}:{}: {}: pattern '{}' does not compile ({} mode): {}", rule.file,
                                         rule.line, rule.id, p, mode == HS_MODE_BLOCK ? "block" : "stream",
                                         err != nullptr && err->message ? err->message : "?"));
            hs_free_compile_error(err);
            break;
          }
          hs_free_database(db);
        }
      }
    }
    if (errors.empty()) errors = std::move(first_error);  // only the combination fails
    return {nullptr, std::move(errors)};
  }
  impl->span = std::move(dbs[0]).value();
  impl->stream = std::move(dbs[1]).value();
  for (int w = 0; w < kWhereCount; ++w) impl->detect[w] = std::move(dbs[static_cast<size_t>(w) + 2]).value();
  std::shared_ptr<const RuleSet> set(new RuleSet(std::move(impl)));
  if (options.check_examples) {
    auto failures = set->CheckExamples();
    if (!failures.empty()) return {nullptr, std::move(failures)};
  }
  return {std::move(set), {}};
}

}  // namespace internal

RuleSet::RuleSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  static std::atomic<uint64_t> next{1};
  serial_ = next.fetch_add(1, std::memory_order_relaxed);
}
RuleSet::~RuleSet() = default;

const std::vector<Rule>& RuleSet::rules() const { return impl_->rules; }

const Rule* RuleSet::Find(std::string_view id) const {
  for (const auto& r : impl_->rules) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

std::vector<Finding> RuleSet::Scan(std::string_view text, Where where) const {
  return Scanner(*impl_, where).Run(text, /*decode=*/true);
}

std::unique_ptr<RuleSet::Stream> RuleSet::OpenStream(Where where) const {
  return std::make_unique<StreamImpl>(*impl_, where);
}

std::vector<std::string> RuleSet::CheckExamples() const {
  std::vector<std::string> errors;
  for (const auto& rule : impl_->rules) {
    auto found_in = [&](const std::string& text) {
      for (int w = 0; w < kWhereCount; ++w) {
        if (!rule.AppliesTo(static_cast<Where>(w))) continue;
        for (const auto& f : Scan(text, static_cast<Where>(w))) {
          if (f.rule == &rule) return true;
        }
      }
      return false;
    };
    for (size_t i = 0; i < rule.match_examples.size(); ++i) {
      if (!found_in(rule.match_examples[i])) {
        errors.push_back(fmt::format("{}:{}: {}: match example {} does not match", rule.file, rule.line, rule.id, i + 1));
      }
    }
    for (size_t i = 0; i < rule.no_match_examples.size(); ++i) {
      if (found_in(rule.no_match_examples[i])) {
        errors.push_back(fmt::format("{}:{}: {}: no_match example {} matches", rule.file, rule.line, rule.id, i + 1));
      }
    }
  }
  return errors;
}

}  // namespace aigis::guard

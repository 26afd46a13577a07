// Scanning JSON documents field by field, and the one-call screen for a
// place (what the MCP gateway uses for tool traffic).
#include <boost/json.hpp>

#include <unordered_set>

#include "guard/guard.h"

namespace aigis::guard {

namespace json = boost::json;

namespace {

// RFC 6901: '~' -> "~0", '/' -> "~1".
void AppendToken(std::string& pointer, std::string_view token) {
  pointer.push_back('/');
  for (char c : token) {
    if (c == '~') pointer += "~0";
    else if (c == '/') pointer += "~1";
    else pointer.push_back(c);
  }
}

// Short strings that scanned clean, per thread, for one rule set: documents
// repeat their member names and enum-like values ("content", "type",
// "text") in every message, and each Scan call costs a few microseconds of
// normalisation and decoding whatever its length. Scan is a function of the
// text, the place and the rules, so a clean result can be reused; findings
// are never cached. Bounded: cleared when full or when the rules change.
class CleanMemo {
 public:
  static constexpr size_t kMaxText = 64, kMaxEntries = 4096;
  bool Clean(const RuleSet& rules, Where where, std::string_view text) {
    Use(rules);
    return text.size() <= kMaxText && clean_[static_cast<int>(where)].count(text) != 0;
  }
  void Remember(const RuleSet& rules, Where where, std::string_view text) {
    if (text.size() > kMaxText) return;
    Use(rules);
    auto& set = clean_[static_cast<int>(where)];
    if (set.size() >= kMaxEntries) set.clear();
    set.emplace(text);
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void Use(const RuleSet& rules) {
    if (serial_ == rules.serial()) return;
    serial_ = rules.serial();
    for (auto& set : clean_) set.clear();
  }
  uint64_t serial_ = 0;
  std::unordered_set<std::string, Hash, std::equal_to<>> clean_[kWhereCount];
};
thread_local CleanMemo memo;

void Walk(const RuleSet& rules, const json::value& v, Where where, std::string& pointer, std::vector<Finding>& out) {
  auto scan = [&](std::string_view text, bool key = false) {
    // Member names and short values repeat; long values rarely do.
    bool memoable = key || text.size() <= 24;
    if (memoable && memo.Clean(rules, where, text)) return;
    auto found = rules.Scan(text, where);
    if (memoable && found.empty()) memo.Remember(rules, where, text);
    for (auto& f : found) {
      f.pointer = pointer;
      f.in_key = key;
      out.push_back(std::move(f));
    }
  };
  switch (v.kind()) {
    case json::kind::string:
      scan(std::string_view(v.get_string()));
      break;
    case json::kind::array: {
      size_t at = pointer.size();
      size_t i = 0;
      for (const auto& item : v.get_array()) {
        AppendToken(pointer, std::to_string(i++));
        Walk(rules, item, where, pointer, out);
        pointer.resize(at);
      }
      break;
    }
    case json::kind::object: {
      size_t at = pointer.size();
      for (const auto& [key, item] : v.get_object()) {
        AppendToken(pointer, std::string_view(key));
        scan(std::string_view(key), /*key=*/true);
        Walk(rules, item, where, pointer, out);
        pointer.resize(at);
      }
      break;
    }
    default:
      break;  // numbers, booleans, null carry no text
  }
}

}  // namespace

Result<std::vector<Finding>> ScanJson(const RuleSet& rules, std::string_view text, Where where) {
  std::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec, {}, opts);
  if (ec) return InvalidArgument("not a JSON document: " + ec.message());
  std::vector<Finding> out;
  std::string pointer;
  Walk(rules, v, where, pointer, out);
  return out;
}

Verdict Screen(const RuleSet& rules, std::string_view text, Where where, const Policy& policy, bool json) {
  if (json) {
    if (auto fs = ScanJson(rules, text, where); fs.ok()) return Judge(std::move(fs).value(), policy);
  }
  return Judge(rules.Scan(text, where), policy);
}

}  // namespace aigis::guard

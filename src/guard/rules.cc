// Rule packs: YAML -> Rule, with every problem reported as
// "file:line: rule id: reason" (the schema is rules/guard/README.md).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>

#include "guard/internal.h"

namespace aigis::guard {

std::string_view WhereName(Where w) {
  switch (w) {
    case Where::kRequest: return "request";
    case Where::kResponse: return "response";
    case Where::kToolArgs: return "tool_args";
    case Where::kToolResult: return "tool_result";
    case Where::kToolDescription: return "tool_description";
  }
  return "?";
}

std::string_view ActionName(Action a) {
  switch (a) {
    case Action::kBlock: return "block";
    case Action::kMask: return "mask";
    case Action::kAlert: return "alert";
    case Action::kScore: return "score";
  }
  return "?";
}

namespace {

constexpr size_t kMaxPackBytes = 4 << 20;
constexpr size_t kMaxRules = 5000;

const std::set<std::string, std::less<>>& Categories() {
  static const std::set<std::string, std::less<>> k{
      "prompt_injection", "jailbreak",  "system_prompt_extraction", "obfuscation",
      "secrets",          "pii",        "sql_injection",            "command_injection",
      "path_traversal",   "ssrf",       "exfiltration",             "tool_poisoning"};
  return k;
}

double DefaultScore(Severity s) {
  switch (s) {
    case Severity::kLow: return 0.2;
    case Severity::kMedium: return 0.45;
    case Severity::kHigh: return 0.75;
    case Severity::kCritical: return 0.95;
  }
  return 0.45;
}

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'; });
}

class PackReader {
 public:
  PackReader(std::string file, std::vector<std::string>* errors) : file_(std::move(file)), errors_(errors) {}

  void Read(const YAML::Node& root, std::vector<Rule>* out) {
    if (!root.IsMap()) return Error(root, "", "a pack is a mapping with `pack` and `rules`");
    for (const auto& kv : root) {
      std::string k = kv.first.Scalar();
      if (k != "pack" && k != "description" && k != "rules") Error(kv.first, "", fmt::format("unknown key '{}'", k));
    }
    YAML::Node rules = root["rules"];
    if (!rules || !rules.IsSequence()) return Error(root, "", "`rules` must be a list");
    for (const auto& r : rules) {
      if (out->size() >= kMaxRules) return Error(r, "", fmt::format("more than {} rules", kMaxRules));
      if (auto rule = ReadRule(r)) out->push_back(std::move(*rule));
    }
  }

 private:
  static int LineOf(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }
  void Error(const YAML::Node& at, std::string_view id, std::string_view msg) {
    errors_->push_back(id.empty() ? fmt::format("{}:{}: {}", file_, LineOf(at), msg)
                                  : fmt::format("{}:{}: {}: {}", file_, LineOf(at), id, msg));
  }

  std::optional<std::string> Scalar(const YAML::Node& r, const char* key, std::string_view id, bool required) {
    YAML::Node n = r[key];
    if (!n) {
      if (required) Error(r, id, fmt::format("`{}` is required", key));
      return std::nullopt;
    }
    if (!n.IsScalar()) {
      Error(n, id, fmt::format("`{}` must be a string", key));
      return std::nullopt;
    }
    return n.Scalar();
  }
  std::optional<std::vector<std::string>> List(const YAML::Node& r, const char* key, std::string_view id) {
    YAML::Node n = r[key];
    if (!n) return std::vector<std::string>{};
    if (!n.IsSequence()) {
      Error(n, id, fmt::format("`{}` must be a list", key));
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (const auto& item : n) {
      if (!item.IsScalar()) {
        Error(item, id, fmt::format("`{}` items must be strings", key));
        return std::nullopt;
      }
      out.push_back(item.Scalar());
    }
    return out;
  }

  std::optional<Rule> ReadRule(const YAML::Node& r) {
    if (!r.IsMap()) {
      Error(r, "", "a rule is a mapping");
      return std::nullopt;
    }
    static const std::set<std::string, std::less<>> kKeys{
        "id",        "name",      "category", "severity", "atlas",   "patterns", "flags",   "raw",
        "validator", "applies_to", "action",  "mask_as",  "score",   "message",  "examples"};
    Rule rule;
    rule.file = file_;
    rule.line = LineOf(r);
    rule.id = Scalar(r, "id", "", true).value_or("");
    const std::string id = rule.id.empty() ? "(no id)" : rule.id;
    size_t before = errors_->size();
    if (!rule.id.empty() && !ValidId(rule.id)) Error(r["id"], id, "ids are 1..64 characters of A-Z, 0-9 and '-'");
    for (const auto& kv : r) {
      if (!kKeys.count(kv.first.Scalar())) Error(kv.first, id, fmt::format("unknown key '{}'", kv.first.Scalar()));
    }
    rule.name = Scalar(r, "name", id, true).value_or("");
    rule.category = Scalar(r, "category", id, true).value_or("");
    if (!rule.category.empty() && !Categories().count(rule.category)) {
      Error(r["category"], id, fmt::format("unknown category '{}'", rule.category));
    }
    std::string sev = Scalar(r, "severity", id, true).value_or("medium");
    if (sev == "low") rule.severity = Severity::kLow;
    else if (sev == "medium") rule.severity = Severity::kMedium;
    else if (sev == "high") rule.severity = Severity::kHigh;
    else if (sev == "critical") rule.severity = Severity::kCritical;
    else Error(r["severity"], id, "severity must be low, medium, high or critical");
    rule.atlas = Scalar(r, "atlas", id, false).value_or("");
    rule.patterns = List(r, "patterns", id).value_or(std::vector<std::string>{});
    if (rule.patterns.empty()) Error(r, id, "at least one pattern is required");
    for (const auto& f : List(r, "flags", id).value_or(std::vector<std::string>{})) {
      if (f == "caseless") rule.caseless = true;
      else if (f == "dotall") rule.dotall = true;
      else if (f == "multiline") rule.multiline = true;
      else Error(r["flags"], id, fmt::format("unknown flag '{}' (caseless, dotall, multiline)", f));
    }
    if (auto raw = Scalar(r, "raw", id, false)) {
      if (*raw == "true") rule.raw = true;
      else if (*raw != "false") Error(r["raw"], id, "raw must be true or false");
    }
    std::string validator = Scalar(r, "validator", id, false).value_or("");
    if (validator == "none") validator.clear();
    if (validator.starts_with("entropy:")) {
      std::string_view num = std::string_view(validator).substr(8);
      double v = 0;
      auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
      if (ec != std::errc() || p != num.data() + num.size() || v <= 0 || v > 8) {
        Error(r["validator"], id, "entropy:<bits per character> needs a number in (0, 8]");
      }
      rule.validator = "entropy";
      rule.validator_arg = v;
    } else if (!internal::IsKnownValidator(validator)) {
      Error(r["validator"], id,
            fmt::format("unknown validator '{}' (luhn, iban, us_ssn, entropy:N, jwt, ipv4_public, base64_text)", validator));
    } else {
      rule.validator = validator;
    }
    auto where = List(r, "applies_to", id).value_or(std::vector<std::string>{});
    if (where.empty()) Error(r, id, "`applies_to` needs at least one of request, response, tool_args, tool_result, tool_description");
    for (const auto& w : where) {
      bool known = false;
      for (int i = 0; i < kWhereCount; ++i) {
        if (w == WhereName(static_cast<Where>(i))) {
          rule.applies_to |= static_cast<uint8_t>(1u << i);
          known = true;
        }
      }
      if (!known) Error(r["applies_to"], id, fmt::format("unknown place '{}'", w));
    }
    std::string action = Scalar(r, "action", id, true).value_or("block");
    if (action == "block") rule.action = Action::kBlock;
    else if (action == "mask") rule.action = Action::kMask;
    else if (action == "alert") rule.action = Action::kAlert;
    else if (action == "score") rule.action = Action::kScore;
    else Error(r["action"], id, "action must be block, mask, alert or score");
    rule.mask_as = Scalar(r, "mask_as", id, false).value_or("");
    if (rule.action == Action::kMask) {
      if (rule.mask_as.empty()) rule.mask_as = "REDACTED";
      if (!ValidId(rule.mask_as) || rule.mask_as.find('-') != std::string::npos) {
        std::string fixed;
        for (char c : rule.mask_as) fixed.push_back(c == '-' ? '_' : c);
        rule.mask_as = fixed;
      }
    }
    rule.score = DefaultScore(rule.severity);
    if (auto sc = Scalar(r, "score", id, false)) {
      double v = -1;
      auto [p, ec] = std::from_chars(sc->data(), sc->data() + sc->size(), v);
      if (ec != std::errc() || p != sc->data() + sc->size() || v < 0 || v > 1) {
        Error(r["score"], id, "score must be a number in [0, 1]");
      } else {
        rule.score = v;
      }
    }
    rule.message = Scalar(r, "message", id, true).value_or("");
    YAML::Node ex = r["examples"];
    if (!ex || !ex.IsMap()) {
      Error(r, id, "`examples` with `match` and `no_match` lists is required");
    } else {
      rule.match_examples = List(ex, "match", id).value_or(std::vector<std::string>{});
      rule.no_match_examples = List(ex, "no_match", id).value_or(std::vector<std::string>{});
      if (rule.match_examples.empty() || rule.no_match_examples.empty()) {
        Error(ex, id, "examples need at least one `match` and one `no_match`");
      }
    }
    if (errors_->size() != before) return std::nullopt;
    return rule;
  }

  std::string file_;
  std::vector<std::string>* errors_;
};

void ReadPack(std::string_view text, const std::string& name, std::vector<Rule>* rules, std::vector<std::string>* errors) {
  if (text.size() > kMaxPackBytes) {
    errors->push_back(fmt::format("{}:1: a pack is at most {} bytes", name, kMaxPackBytes));
    return;
  }
  try {
    YAML::Node root = YAML::Load(std::string(text));
    PackReader(name, errors).Read(root, rules);
  } catch (const YAML::Exception& e) {
    errors->push_back(fmt::format("{}:{}: {}", name, e.mark.line + 1, e.msg));
  }
}

}  // namespace

LoadResult LoadRulesFromString(std::string_view yaml, const std::string& name, const LoadOptions& options) {
  std::vector<Rule> rules;
  std::vector<std::string> errors;
  ReadPack(yaml, name, &rules, &errors);
  if (!errors.empty()) return {nullptr, std::move(errors)};
  return internal::Compile(std::move(rules), options);
}

LoadResult LoadBuiltinRules(LoadOptions options) {
  options.builtin = true;
  return LoadRules({}, options);
}

LoadResult LoadRules(const std::vector<std::string>& paths, const LoadOptions& options) {
  std::vector<Rule> rules;
  std::vector<std::string> errors;
  std::vector<std::string> files;
  if (options.builtin) {
    for (const auto& [name, text] : internal::BuiltinPacks()) {
      ReadPack(text, "rules/guard/" + std::string(name), &rules, &errors);
    }
  }
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::string> in_dir;
      for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
        if (e.path().extension() == ".yaml" || e.path().extension() == ".yml") in_dir.push_back(e.path().string());
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.push_back(p);
    }
  }
  if (files.empty() && rules.empty() && errors.empty()) {
    return {nullptr, {paths.empty() ? std::string("no rule packs (rules/guard was empty at build time)")
                                    : "no rule packs found in " + fmt::format("{}", fmt::join(paths, ", "))}};
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in || std::filesystem::is_directory(f)) {
      errors.push_back(fmt::format("{}:0: cannot read the rule pack (no such file?)", f));
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    ReadPack(ss.str(), f, &rules, &errors);
  }
  if (!errors.empty()) return {nullptr, std::move(errors)};
  return internal::Compile(std::move(rules), options);
}

}  // namespace aigis::guard

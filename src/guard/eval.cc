// `aigis guard eval`: labelled data sets in, precision / recall / F1 /
// false-positive rate per category out.
#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>

#include "guard/internal.h"

namespace aigis::guard {

namespace {

namespace json = boost::json;

constexpr size_t kMaxLine = 1 << 20;
constexpr size_t kMaxItems = 1'000'000;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<bool> LabelOf(std::string word) {
  word = Lower(word);
  static const char* kYes[] = {"true", "1", "yes", "unsafe", "malicious", "injection", "jailbreak", "attack", "positive",
                               "flagged", "harmful"};
  static const char* kNo[] = {"false", "0", "no", "safe", "benign", "negative", "clean", "harmless"};
  for (const char* y : kYes) {
    if (word == y) return true;
  }
  for (const char* n : kNo) {
    if (word == n) return false;
  }
  return std::nullopt;
}

// One CSV record (RFC 4180: quoted fields, "" inside quotes, commas and
// newlines in quoted fields). Written by hand: a few lines, and no CSV
// library is among the project's dependencies.
bool NextCsvRecord(std::istream& in, std::vector<std::string>* fields, size_t* line) {
  fields->clear();
  std::string field;
  bool quoted = false, any = false;
  char c;
  while (in.get(c)) {
    any = true;
    if (quoted) {
      if (c == '"') {
        if (in.peek() == '"') {
          in.get(c);
          field.push_back('"');
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++*line;
        field.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields->push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      ++*line;
      break;
    } else if (c != '\r') {
      field.push_back(c);
    }
    if (field.size() > kMaxLine) return false;
  }
  if (!any) return false;
  fields->push_back(std::move(field));
  return true;
}

int FindColumn(const std::vector<std::string>& header, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    for (size_t i = 0; i < header.size(); ++i) {
      if (Lower(header[i]) == n) return static_cast<int>(i);
    }
  }
  return -1;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Result<std::vector<LabelledText>> ReadLabelled(const std::string& path, const DatasetFields& fields) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(fmt::format("{}: cannot read the data set", path));
  std::vector<LabelledText> out;
  bool csv = path.size() >= 4 && Lower(path.substr(path.size() - 4)) == ".csv";
  if (csv) {
    std::vector<std::string> header, rec;
    size_t line = 1;
    if (!NextCsvRecord(in, &header, &line)) return InvalidArgument(fmt::format("{}: empty CSV", path));
    int t = FindColumn(header, fields.text), l = FindColumn(header, fields.label), c = FindColumn(header, fields.category);
    if (t < 0 || l < 0) {
      return InvalidArgument(fmt::format("{}:1: the header needs a text column ({}) and a label column ({})", path,
                                         Join(fields.text), Join(fields.label)));
    }
    while (true) {
      size_t at = line;
      if (!NextCsvRecord(in, &rec, &line)) break;
      if (rec.size() == 1 && rec[0].empty()) continue;
      if (rec.size() <= static_cast<size_t>(std::max(t, l))) {
        return InvalidArgument(fmt::format("{}:{}: {} fields, the header has {}", path, at, rec.size(), header.size()));
      }
      auto label = LabelOf(rec[static_cast<size_t>(l)]);
      if (!label) {
        return InvalidArgument(fmt::format("{}:{}: cannot read the label '{}' (use true/false, 1/0 or safe/unsafe)",
                                           path, at, rec[static_cast<size_t>(l)].substr(0, 40)));
      }
      out.push_back({rec[static_cast<size_t>(t)], *label, c >= 0 && static_cast<size_t>(c) < rec.size() ? rec[static_cast<size_t>(c)] : ""});
      if (out.size() > kMaxItems) return InvalidArgument(fmt::format("{}: more than {} items", path, kMaxItems));
    }
    return out;
  }
  std::string text;
  size_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.size() > kMaxLine) return InvalidArgument(fmt::format("{}:{}: line longer than {} bytes", path, line, kMaxLine));
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    json::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) return InvalidArgument(fmt::format("{}:{}: not a JSON object", path, line));
    const json::object& o = v.get_object();
    auto find = [&](const std::vector<std::string>& names) -> const json::value* {
      for (const auto& n : names) {
        if (const json::value* f = o.if_contains(n)) return f;
      }
      return nullptr;
    };
    const json::value* tv = find(fields.text);
    const json::value* lv = find(fields.label);
    if (tv == nullptr || !tv->is_string()) {
      return InvalidArgument(fmt::format("{}:{}: no text field ({})", path, line, Join(fields.text)));
    }
    std::optional<bool> label;
    if (lv != nullptr && lv->is_bool()) label = lv->get_bool();
    else if (lv != nullptr && lv->is_int64()) label = lv->get_int64() != 0;
    else if (lv != nullptr && lv->is_string()) label = LabelOf(std::string(lv->get_string()));
    if (!label) {
      return InvalidArgument(fmt::format("{}:{}: no readable label ({}: true/false, 1/0 or safe/unsafe)", path, line,
                                         Join(fields.label)));
    }
    const json::value* cv = find(fields.category);
    out.push_back({std::string(tv->get_string()), *label, cv && cv->is_string() ? std::string(cv->get_string()) : ""});
    if (out.size() > kMaxItems) return InvalidArgument(fmt::format("{}: more than {} items", path, kMaxItems));
  }
  return out;
}

EvalReport Evaluate(const RuleSet& rules, const std::vector<LabelledText>& data, const Policy& policy, Where where) {
  EvalReport r;
  std::map<std::string, EvalStats> cats;
  for (size_t i = 0; i < data.size(); ++i) {
    Verdict v = Judge(rules.Scan(data[i].text, where), policy);
    EvalItem item;
    item.index = i;
    item.score = v.score;
    bool masked = false;
    for (const auto& f : v.findings) {
      if (std::find(item.rules.begin(), item.rules.end(), f.rule->id) == item.rules.end()) item.rules.push_back(f.rule->id);
      masked = masked || f.rule->action == Action::kMask;
    }
    item.flagged = v.block || v.alert || masked;
    for (EvalStats* s : {&r.all, &cats[data[i].category.empty() ? "(none)" : data[i].category]}) {
      if (data[i].label) (item.flagged ? s->tp : s->fn)++;
      else (item.flagged ? s->fp : s->tn)++;
    }
    r.items.push_back(std::move(item));
  }
  r.all.category = "all";
  for (auto& [name, s] : cats) {
    s.category = name;
    r.per_category.push_back(s);
  }
  return r;
}

std::string FormatTable(const EvalReport& report) {
  std::string out = "| category | items | flagged | precision | recall | F1 | false-positive rate |\n|---|---:|---:|---:|---:|---:|---:|\n";
  auto row = [&](const EvalStats& s) {
    int64_t n = s.tp + s.fp + s.tn + s.fn;
    auto pct = [](double x) { return fmt::format("{:.3f}", x); };
    bool has_pos = s.tp + s.fn > 0, has_neg = s.fp + s.tn > 0;
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", s.category, n, s.tp + s.fp,
                       s.tp + s.fp ? pct(s.Precision()) : "-", has_pos ? pct(s.Recall()) : "-",
                       has_pos && s.tp + s.fp ? pct(s.F1()) : "-", has_neg ? pct(s.FalsePositiveRate()) : "-");
  };
  for (const auto& s : report.per_category) row(s);
  if (report.per_category.size() != 1) row(report.all);
  return out;
}

std::string FormatItem(const EvalItem& item) {
  json::array rules;
  for (const auto& r : item.rules) rules.push_back(json::string(r));
  // Boost.JSON prints doubles in exponent form; the score reads better fixed.
  return fmt::format(R"({{"index":{},"flagged":{},"score":{},"rules":{}}})", item.index, item.flagged,
                     std::round(item.score * 1000) / 1000, json::serialize(rules));
}

}  // namespace aigis::guard

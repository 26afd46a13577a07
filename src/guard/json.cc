// Scanning JSON documents field by field, and the one-call screen for a
// place (what the MCP gateway uses for tool traffic).
#include <boost/json.hpp>

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

void Walk(const RuleSet& rules, const json::value& v, Where where, std::string& pointer, std::vector<Finding>& out) {
  auto scan = [&](std::string_view text, bool key = false) {
    for (auto& f : rules.Scan(text, where)) {
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

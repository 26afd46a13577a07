// Canonical JSON for audit records (RFC 8785 for the subset records use).
//
// Written over Boost.JSON's SAX parser rather than boost::json::parse +
// serialize because the canonical form needs what neither gives: duplicate
// member names refused (parse keeps the last silently), members sorted by
// UTF-16 code units, JCS string escaping, and non-integers refused; one pass
// builds the output directly.
#include <boost/json/basic_parser_impl.hpp>
#include <fmt/format.h>

#include <algorithm>

#include "audit/audit.h"

namespace aigis::audit {

namespace {

constexpr int64_t kMaxSafeInteger = (int64_t{1} << 53) - 1;

// UTF-16 code units of valid UTF-8 (the parser has validated it).
std::u16string Utf16(std::string_view s) {
  std::u16string out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
      cp = c, n = 1;
    } else if (c < 0xE0) {
      cp = c & 0x1F, n = 2;
    } else if (c < 0xF0) {
      cp = c & 0x0F, n = 3;
    } else {
      cp = c & 0x07, n = 4;
    }
    for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
  return out;
}

bool Ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// RFC 8785 §3.2.4: member names compared as arrays of UTF-16 code units.
bool KeyLess(const std::string& a, const std::string& b) {
  if (Ascii(a) && Ascii(b)) return a < b;
  return Utf16(a) < Utf16(b);
}

void AppendString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

class Canonicalizer {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  std::string result;
  std::string error;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    stack_.push_back({true, {}, {}, {}});
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code& ec) {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    std::sort(f.members.begin(), f.members.end(), [](const auto& a, const auto& b) { return KeyLess(a.first, b.first); });
    std::string out = "{";
    for (size_t i = 0; i < f.members.size(); ++i) {
      if (i > 0 && f.members[i].first == f.members[i - 1].first) {
        return Fail(ec, fmt::format("duplicate member name \"{}\"", f.members[i].first));
      }
      if (i > 0) out.push_back(',');
      AppendString(out, f.members[i].first);
      out.push_back(':');
      out += f.members[i].second;
    }
    out.push_back('}');
    Emit(std::move(out));
    return true;
  }
  bool on_array_begin(boost::system::error_code&) {
    stack_.push_back({false, {}, {}, {}});
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    std::string out = "[";
    for (size_t i = 0; i < f.items.size(); ++i) {
      if (i > 0) out.push_back(',');
      out += f.items[i];
    }
    out.push_back(']');
    Emit(std::move(out));
    return true;
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    stack_.back().key = std::move(part_);
    part_.clear();
    return true;
  }
  bool on_string_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }
  bool on_string(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    std::string out;
    AppendString(out, part_);
    part_.clear();
    Emit(std::move(out));
    return true;
  }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(int64_t v, boost::json::string_view, boost::system::error_code& ec) {
    if (v > kMaxSafeInteger || v < -kMaxSafeInteger) return Fail(ec, fmt::format("integer {} is out of range", v));
    Emit(std::to_string(v));
    return true;
  }
  bool on_uint64(uint64_t v, boost::json::string_view, boost::system::error_code& ec) {
    if (v > static_cast<uint64_t>(kMaxSafeInteger)) return Fail(ec, fmt::format("integer {} is out of range", v));
    Emit(std::to_string(v));
    return true;
  }
  bool on_double(double, boost::json::string_view text, boost::system::error_code& ec) {
    return Fail(ec, fmt::format("number {} is not an integer (records hold integers only)",
                                std::string_view(text.data(), text.size())));
  }
  bool on_bool(bool b, boost::system::error_code&) {
    Emit(b ? "true" : "false");
    return true;
  }
  bool on_null(boost::system::error_code&) {
    Emit("null");
    return true;
  }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

 private:
  struct Frame {
    bool object;
    std::vector<std::pair<std::string, std::string>> members;
    std::vector<std::string> items;
    std::string key;
  };

  void Emit(std::string v) {
    if (stack_.empty()) {
      result = std::move(v);
    } else if (stack_.back().object) {
      stack_.back().members.emplace_back(std::move(stack_.back().key), std::move(v));
    } else {
      stack_.back().items.push_back(std::move(v));
    }
  }
  bool Fail(boost::system::error_code& ec, std::string why) {
    error = std::move(why);
    ec = boost::json::error::syntax;  // any error stops the parser
    return false;
  }

  std::vector<Frame> stack_;
  std::string part_;
};

}  // namespace

Result<std::string> Canonicalize(std::string_view json) {
  boost::json::parse_options options;
  options.max_depth = 32;  // comments, trailing commas, invalid UTF-8: all off by default
  boost::json::basic_parser<Canonicalizer> parser(options);
  boost::system::error_code ec;
  size_t used = parser.write_some(false, json.data(), json.size(), ec);
  if (!parser.handler().error.empty()) return InvalidArgument("record: " + parser.handler().error);
  if (ec) return InvalidArgument("record: not JSON: " + ec.message());
  if (used != json.size()) return InvalidArgument("record: text after the JSON value");
  return std::move(parser.handler().result);
}

}  // namespace aigis::audit

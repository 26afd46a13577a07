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
#include <charconv>

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
  // Runs that need no escaping are copied whole.
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(esc, sizeof esc);
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// One pass over the parser's events. Each open object or array is a frame
// whose members' canonical texts are appended to one buffer (offsets kept),
// so a member costs no allocation of its own; frames are reused by depth.
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
    Push(true);
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code& ec) {
    Frame& f = frames_[depth_ - 1];
    std::string_view buf = f.buf;
    auto key = [&](const Member& m) { return buf.substr(m.key, m.key_len); };
    bool ascii = Ascii(buf);  // keys and values both: a cheap, conservative test
    std::sort(f.members.begin(), f.members.end(), [&](const Member& a, const Member& b) {
      return ascii ? key(a) < key(b) : KeyLess(std::string(key(a)), std::string(key(b)));
    });
    tmp_.clear();
    tmp_.push_back('{');
    for (size_t i = 0; i < f.members.size(); ++i) {
      const Member& m = f.members[i];
      if (i > 0 && key(m) == key(f.members[i - 1])) {
        return Fail(ec, fmt::format("duplicate member name \"{}\"", key(m)));
      }
      if (i > 0) tmp_.push_back(',');
      AppendString(tmp_, key(m));
      tmp_.push_back(':');
      tmp_.append(buf.substr(m.value, m.value_len));
    }
    tmp_.push_back('}');
    --depth_;
    Emit(tmp_);
    return true;
  }
  bool on_array_begin(boost::system::error_code&) {
    Push(false);
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    Frame& f = frames_[depth_ - 1];
    // An array's items are already in order in its buffer, comma-separated.
    tmp_.clear();
    tmp_.push_back('[');
    tmp_.append(f.buf);
    tmp_.push_back(']');
    --depth_;
    Emit(tmp_);
    return true;
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    Frame& f = frames_[depth_ - 1];
    f.pending_key = static_cast<uint32_t>(f.buf.size());
    f.pending_key_len = static_cast<uint32_t>(part_.size());
    f.buf.append(part_);  // raw key bytes; escaped when the object is written
    part_.clear();
    return true;
  }
  bool on_string_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }
  bool on_string(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    tmp_.clear();
    AppendString(tmp_, part_);
    part_.clear();
    Emit(tmp_);
    return true;
  }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(int64_t v, boost::json::string_view, boost::system::error_code& ec) {
    if (v > kMaxSafeInteger || v < -kMaxSafeInteger) return Fail(ec, fmt::format("integer {} is out of range", v));
    char b[24];
    auto [end, e] = std::to_chars(b, b + sizeof b, v);
    Emit(std::string_view(b, static_cast<size_t>(end - b)));
    return true;
  }
  bool on_uint64(uint64_t v, boost::json::string_view, boost::system::error_code& ec) {
    if (v > static_cast<uint64_t>(kMaxSafeInteger)) return Fail(ec, fmt::format("integer {} is out of range", v));
    char b[24];
    auto [end, e] = std::to_chars(b, b + sizeof b, v);
    Emit(std::string_view(b, static_cast<size_t>(end - b)));
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
  struct Member {
    uint32_t key, key_len, value, value_len;
  };
  struct Frame {
    bool object = false;
    std::string buf;
    std::vector<Member> members;
    uint32_t pending_key = 0, pending_key_len = 0;
    bool any = false;  // arrays: an item was written
  };

  void Push(bool object) {
    if (frames_.size() == depth_) frames_.emplace_back();
    Frame& f = frames_[depth_++];
    f.object = object;
    f.buf.clear();
    f.members.clear();
    f.any = false;
  }
  void Emit(std::string_view v) {
    if (depth_ == 0) {
      result.assign(v);
      return;
    }
    Frame& f = frames_[depth_ - 1];
    if (f.object) {
      f.members.push_back({f.pending_key, f.pending_key_len, static_cast<uint32_t>(f.buf.size()),
                           static_cast<uint32_t>(v.size())});
      f.buf.append(v);
    } else {
      if (f.any) f.buf.push_back(',');
      f.any = true;
      f.buf.append(v);
    }
  }
  bool Fail(boost::system::error_code& ec, std::string why) {
    error = std::move(why);
    ec = boost::json::error::syntax;  // any error stops the parser
    return false;
  }

  std::vector<Frame> frames_;
  size_t depth_ = 0;
  std::string part_, tmp_;
};

// Whether `s` is already canonical (what Canonicalize would return),
// checked in one pass without building anything: no whitespace, members in
// order and unique, strings escaped exactly as JCS escapes them, valid
// UTF-8, integers in range. Most records arrive canonical (the gateway
// writes them so), and this is several times cheaper than rebuilding them.
class CanonicalCheck {
 public:
  explicit CanonicalCheck(std::string_view s) : s_(s) {}
  bool Run() { return Value(0) && at_ == s_.size(); }

 private:
  bool Value(int depth) {
    if (at_ >= s_.size() || depth > 32) return false;
    switch (s_[at_]) {
      case '{': return Object(depth);
      case '[': return Array(depth);
      case '"': return String(nullptr);
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default: return Number();
    }
  }
  bool Literal(std::string_view word) {
    if (s_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }
  bool Number() {
    size_t start = at_;
    if (at_ < s_.size() && s_[at_] == '-') ++at_;
    if (at_ >= s_.size() || s_[at_] < '0' || s_[at_] > '9') return false;
    if (s_[at_] == '0') {
      ++at_;
      if (s_[start] == '-') return false;  // "-0" is written "0"
    } else {
      while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
    }
    size_t digits = at_ - start - (s_[start] == '-' ? 1 : 0);
    if (digits > 16) return false;
    if (digits == 16) {  // above 2^53 - 1?
      int64_t v = 0;
      std::from_chars(s_.data() + start + (s_[start] == '-' ? 1 : 0), s_.data() + at_, v);
      if (v > kMaxSafeInteger) return false;
    }
    return true;
  }
  // A string whose raw (unescaped) form is simple enough to compare as
  // bytes; `raw` (keys) receives it, or nothing when it has escapes.
  bool String(std::string_view* raw) {
    size_t start = ++at_;
    bool escaped = false;
    while (at_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[at_]);
      if (c == '"') {
        if (raw) *raw = escaped ? std::string_view() : s_.substr(start, at_ - start);
        ++at_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        escaped = true;
        if (at_ + 1 >= s_.size()) return false;
        char e = s_[at_ + 1];
        if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
          at_ += 2;
          continue;
        }
        // \u00XX only for the control characters without a short form.
        if (e != 'u' || s_.substr(at_ + 2, 2) != "00" || at_ + 6 > s_.size()) return false;
        auto hex = [](char h) { return (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : -1; };
        int hi = hex(s_[at_ + 4]), lo = hex(s_[at_ + 5]);
        if (hi < 0 || lo < 0) return false;
        int v = hi * 16 + lo;
        if (v >= 0x20 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t') return false;
        at_ += 6;
        continue;
      }
      if (c < 0x80) {
        ++at_;
        continue;
      }
      // UTF-8: a lead byte and its continuation bytes, shortest form, no
      // surrogates, at most U+10FFFF.
      size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
      if (n == 0 || c > 0xF4 || at_ + n > s_.size()) return false;
      uint32_t cp = c & (0x7F >> n);
      for (size_t k = 1; k < n; ++k) {
        auto b = static_cast<unsigned char>(s_[at_ + k]);
        if ((b & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (b & 0x3F);
      }
      if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        return false;
      }
      at_ += n;
    }
    return false;
  }
  bool Object(int depth) {
    ++at_;
    if (at_ < s_.size() && s_[at_] == '}') {
      ++at_;
      return true;
    }
    std::string_view prev;
    bool first = true;
    for (;;) {
      if (at_ >= s_.size() || s_[at_] != '"') return false;
      std::string_view key;
      if (!String(&key)) return false;
      // Keys with escapes or non-ASCII are left to Canonicalize.
      if (key.data() == nullptr || !Ascii(key)) return false;
      if (!first && !(prev < key)) return false;
      prev = key;
      first = false;
      if (at_ >= s_.size() || s_[at_] != ':') return false;
      ++at_;
      if (!Value(depth + 1)) return false;
      if (at_ >= s_.size()) return false;
      if (s_[at_] == '}') {
        ++at_;
        return true;
      }
      if (s_[at_] != ',') return false;
      ++at_;
    }
  }
  bool Array(int depth) {
    ++at_;
    if (at_ < s_.size() && s_[at_] == ']') {
      ++at_;
      return true;
    }
    for (;;) {
      if (!Value(depth + 1)) return false;
      if (at_ >= s_.size()) return false;
      if (s_[at_] == ']') {
        ++at_;
        return true;
      }
      if (s_[at_] != ',') return false;
      ++at_;
    }
  }

  std::string_view s_;
  size_t at_ = 0;
};

}  // namespace

bool IsCanonical(std::string_view json) { return CanonicalCheck(json).Run(); }

// ------------------------------------------------------------ writers ----

std::string& CanonicalObject::Name(std::string_view name) {
  members_.push_back({static_cast<uint32_t>(buf_.size()), 0, static_cast<uint32_t>(name.size())});
  buf_.push_back('"');
  buf_.append(name);
  buf_.append("\":");
  return buf_;
}

CanonicalObject& CanonicalObject::Str(std::string_view name, std::string_view value) {
  AppendString(Name(name), value);
  members_.back().end = static_cast<uint32_t>(buf_.size());
  return *this;
}

CanonicalObject& CanonicalObject::Int(std::string_view name, int64_t value) {
  Name(name).append(fmt::format_int(value).str());
  members_.back().end = static_cast<uint32_t>(buf_.size());
  return *this;
}

CanonicalObject& CanonicalObject::Bool(std::string_view name, bool value) {
  Name(name).append(value ? "true" : "false");
  members_.back().end = static_cast<uint32_t>(buf_.size());
  return *this;
}

CanonicalObject& CanonicalObject::Strs(std::string_view name, const std::vector<std::string>& values) {
  std::string& out = Name(name);
  out.push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendString(out, values[i]);
  }
  out.push_back(']');
  members_.back().end = static_cast<uint32_t>(buf_.size());
  return *this;
}

CanonicalObject& CanonicalObject::Raw(std::string_view name, std::string_view canonical_json) {
  Name(name).append(canonical_json);
  members_.back().end = static_cast<uint32_t>(buf_.size());
  return *this;
}

std::string CanonicalObject::Finish() {
  auto name = [this](const Member& m) { return std::string_view(buf_).substr(m.begin + 1, m.name_len); };
  // Stable: of two members with one name, the one added last sorts last.
  std::stable_sort(members_.begin(), members_.end(),
                   [&](const Member& a, const Member& b) { return name(a) < name(b); });
  std::string out;
  out.reserve(buf_.size() + members_.size() + 2);
  out.push_back('{');
  for (size_t i = 0; i < members_.size(); ++i) {
    if (i + 1 < members_.size() && name(members_[i]) == name(members_[i + 1])) continue;  // replaced
    if (out.size() > 1) out.push_back(',');
    out.append(buf_, members_[i].begin, members_[i].end - members_[i].begin);
  }
  out.push_back('}');
  buf_.clear();
  members_.clear();
  return out;
}

std::string& CanonicalArray::Next() {
  if (buf_.size() > 1) buf_.push_back(',');
  return buf_;
}

CanonicalArray& CanonicalArray::Str(std::string_view value) {
  AppendString(Next(), value);
  return *this;
}

CanonicalArray& CanonicalArray::Raw(std::string_view canonical_json) {
  Next().append(canonical_json);
  return *this;
}

std::string CanonicalArray::Finish() {
  buf_.push_back(']');
  std::string out = std::move(buf_);
  buf_ = "[";
  return out;
}

Result<std::string> Canonicalize(std::string_view json) {
  if (IsCanonical(json)) return std::string(json);
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

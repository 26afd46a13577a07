#include "core/core.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <cctype>
#include <charconv>

namespace aigis {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kPaymentRequired: return "payment_required";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kPayloadTooLarge: return "payload_too_large";
    case Code::kResourceExhausted: return "resource_exhausted";
    case Code::kCancelled: return "cancelled";
    case Code::kInternal: return "internal";
    case Code::kUnavailable: return "unavailable";
    case Code::kDeadlineExceeded: return "deadline_exceeded";
    case Code::kFailedPrecondition: return "failed_precondition";
  }
  return "unknown";
}

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPaymentRequired: return 402;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists: return 409;
    case Code::kPayloadTooLarge: return 413;
    case Code::kResourceExhausted: return 429;
    case Code::kCancelled: return 499;
    case Code::kInternal: return 500;
    case Code::kUnavailable: return 502;
    case Code::kDeadlineExceeded: return 504;
    case Code::kFailedPrecondition: return 503;
  }
  return 500;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return fmt::format("{}: {}", CodeName(code_), message_);
}

std::string FormatRfc3339(WallTime t) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:06d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(secs)),
                     micros);
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  std::string_view s = TrimWhitespace(text);
  if (s.empty()) return InvalidArgument("empty duration");
  std::chrono::milliseconds total{0};
  bool any = false;
  while (!s.empty()) {
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p == s.data()) {
      return InvalidArgument(fmt::format("invalid duration '{}': expected e.g. 500ms, 10s, 5m, 1h", text));
    }
    s.remove_prefix(p - s.data());
    int64_t unit_ms = 0;
    if (StartsWith(s, "ms")) { unit_ms = 1; s.remove_prefix(2); }
    else if (StartsWith(s, "s")) { unit_ms = 1000; s.remove_prefix(1); }
    else if (StartsWith(s, "m")) { unit_ms = 60'000; s.remove_prefix(1); }
    else if (StartsWith(s, "h")) { unit_ms = 3'600'000; s.remove_prefix(1); }
    else {
      return InvalidArgument(fmt::format("invalid duration '{}': a unit (ms, s, m, h) must follow each number", text));
    }
    if (n > 10'000'000'000ULL / static_cast<uint64_t>(unit_ms)) {
      return InvalidArgument(fmt::format("duration '{}' is too large", text));
    }
    total += std::chrono::milliseconds(static_cast<int64_t>(n) * unit_ms);
    any = true;
  }
  if (!any) return InvalidArgument(fmt::format("invalid duration '{}'", text));
  return total;
}

namespace {
// ASCII only, inline: std::tolower is a locale-aware call per byte, and this
// runs for every header on every request.
constexpr unsigned char AsciiLower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(static_cast<unsigned char>(a[i])) != AsciiLower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string ToLowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(AsciiLower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative matcher with single backtrack point: linear in practice, no
  // recursion, so hostile patterns cannot blow the stack.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p; ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool IsValidUtf8(std::string_view s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = b[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    // Reject overlong forms, surrogates and out-of-range code points.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

const std::string* Headers::Find(std::string_view name) const {
  for (const auto& h : items_) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

std::string_view Headers::Get(std::string_view name) const {
  const std::string* v = Find(name);
  return v ? std::string_view(*v) : std::string_view();
}

void Headers::Set(std::string name, std::string value) {
  Remove(name);
  items_.push_back({std::move(name), std::move(value)});
}

void Headers::Remove(std::string_view name) {
  std::erase_if(items_, [&](const Header& h) { return EqualsIgnoreCase(h.name, name); });
}


namespace {
int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Result<std::string> FormUrlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      int hi = i + 2 < s.size() ? HexDigit(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? HexDigit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return InvalidArgument("malformed percent-encoding: % must be followed by two hex digits");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseUrlEncoded(std::string_view text, size_t max_pairs) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t amp = text.find('&', pos);
    if (amp == std::string_view::npos) amp = text.size();
    std::string_view part = text.substr(pos, amp - pos);
    pos = amp + 1;
    if (part.empty()) continue;
    if (out.size() >= max_pairs) return InvalidArgument("too many parameters (at most " + std::to_string(max_pairs) + ")");
    size_t eq = part.find('=');
    ASSIGN_OR_RETURN(std::string key, FormUrlDecode(part.substr(0, eq)));
    ASSIGN_OR_RETURN(std::string value,
                     FormUrlDecode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1)));
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

}  // namespace aigis

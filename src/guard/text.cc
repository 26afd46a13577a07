// Text preparation for the scanner: UTF-8 hygiene, normalisation with an
// offset map back to the original, and the bounded decoding layers.
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <array>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "crypto/crypto.h"
#include "guard/internal.h"

namespace aigis::guard::internal {

bool IsAscii(std::string_view text) {
  const char* p = text.data();
  size_t n = text.size();
  uint64_t acc = 0;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc |= w;
  }
  for (; n > 0; ++p, --n) acc |= static_cast<unsigned char>(*p);
  return (acc & 0x8080808080808080ULL) == 0;
}

bool SanitizeUtf8(std::string_view text, std::string* out) {
  if (IsAscii(text)) return false;  // 8 bytes at a time: most text stops here
  bool changed = false;
  int32_t i = 0;
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const auto n = static_cast<int32_t>(text.size());
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    int32_t start = i;
    UChar32 c;
    U8_NEXT(s, i, n, c);
    if (c < 0) {
      if (!changed) {
        *out = std::string(text);
        changed = true;
      }
      for (int32_t k = start; k < i; ++k) (*out)[static_cast<size_t>(k)] = '?';
    }
  }
  return changed;
}

size_t Normalized::OriginalEnd(size_t i) const {
  // The code point that produced byte i-1 ends where the next different
  // origin starts (or at the original's end).
  if (i == 0) return origin[0];
  size_t start = origin[i - 1];
  for (size_t k = i; k < origin.size(); ++k) {
    if (origin[k] != start) return origin[k];
  }
  return origin.back();
}

namespace {

// Lookalikes that NFKC does not fold: Cyrillic and Greek letters that are
// drawn like Latin ones (Unicode's confusables, the common subset).
UChar32 Homoglyph(UChar32 c) {
  switch (c) {
    case 0x0430: return 'a';  // а
    case 0x0435: return 'e';  // е
    case 0x043E: return 'o';  // о
    case 0x0440: return 'p';  // р
    case 0x0441: return 'c';  // с
    case 0x0445: return 'x';  // х
    case 0x0443: return 'y';  // у
    case 0x0456: return 'i';  // і
    case 0x0455: return 's';  // ѕ
    case 0x0458: return 'j';  // ј
    case 0x0501: return 'd';  // ԁ
    case 0x04BB: return 'h';  // һ
    case 0x0475: return 'v';  // ѵ
    case 0x051B: return 'q';  // ԛ
    case 0x051D: return 'w';  // ԝ
    case 0x0432: return 'b';  // в (lower-case looks like ʙ; folded for "в" smuggling in words)
    case 0x043A: return 'k';  // к
    case 0x043C: return 'm';  // м
    case 0x043D: return 'h';  // н
    case 0x0442: return 't';  // т
    case 0x03BF: return 'o';  // ο
    case 0x03B1: return 'a';  // α
    case 0x03BD: return 'v';  // ν
    case 0x03C1: return 'p';  // ρ
    case 0x03C4: return 't';  // τ
    case 0x03B9: return 'i';  // ι
    case 0x03BA: return 'k';  // κ
    case 0x03C5: return 'u';  // υ
    case 0x03C7: return 'x';  // χ
    case 0x03B5: return 'e';  // ε
    case 0x0261: return 'g';  // ɡ
    case 0x0251: return 'a';  // ɑ
    default: return c;
  }
}

void AppendUtf8(std::string& out, UChar32 c) {
  uint8_t buf[4];
  int32_t len = 0;
  UBool err = false;
  U8_APPEND(buf, len, 4, c, err);
  if (!err) out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
}

// NFKC_Casefold of one code point (then homoglyphs), as UTF-8. Cached: the
// same few non-ASCII code points recur within and across texts.
const std::string& FoldCodePoint(UChar32 c) {
  thread_local std::unordered_map<UChar32, std::string> cache;
  if (auto it = cache.find(c); it != cache.end()) return it->second;
  std::string out;
  UErrorCode status = U_ZERO_ERROR;
  static const icu::Normalizer2* nfkc_cf = icu::Normalizer2::getNFKCCasefoldInstance(status);
  if (u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT)) {
    // removed
  } else if (nfkc_cf != nullptr) {
    UErrorCode st = U_ZERO_ERROR;
    icu::UnicodeString folded = nfkc_cf->normalize(icu::UnicodeString(c), st);
    if (U_FAILURE(st)) {
      AppendUtf8(out, c);
    } else {
      for (int32_t i = 0; i < folded.length();) {
        UChar32 f = folded.char32At(i);
        i += U16_LENGTH(f);
        AppendUtf8(out, Homoglyph(f));
      }
    }
  } else {
    AppendUtf8(out, c);
  }
  if (cache.size() > 4096) cache.clear();  // bounded
  return cache.emplace(c, std::move(out)).first->second;
}

}  // namespace

Normalized Normalize(std::string_view text) {
  Normalized n;
  n.text.reserve(text.size());
  n.origin.reserve(text.size() + 1);
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const auto len = static_cast<int32_t>(text.size());
  int32_t i = 0;
  while (i < len) {
    auto start = static_cast<uint32_t>(i);
    if (s[i] < 0x80) {
      char c = static_cast<char>(s[i]);
      n.text.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
      n.origin.push_back(start);
      ++i;
      continue;
    }
    UChar32 c;
    U8_NEXT(s, i, len, c);
    if (c < 0) {  // not expected (sanitised input); keep a placeholder byte
      n.text.push_back('?');
      n.origin.push_back(start);
      continue;
    }
    const std::string& f = FoldCodePoint(c);
    n.text.append(f);
    n.origin.insert(n.origin.end(), f.size(), start);
  }
  n.origin.push_back(static_cast<uint32_t>(text.size()));
  return n;
}

// ------------------------------------------------------ decoding layers ----

namespace {

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
         c == '-' || c == '_';
}
bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Mostly printable: at least 85% of the bytes are printable ASCII, white
// space or part of a valid multi-byte UTF-8 sequence.
bool MostlyPrintable(std::string_view s) {
  if (s.empty()) return false;
  std::string tmp;
  if (SanitizeUtf8(s, &tmp)) return false;
  size_t good = 0;
  for (unsigned char c : s) good += (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t' || c >= 0x80;
  return good * 100 >= s.size() * 85;
}

std::optional<std::string> DecodeBase64Run(std::string_view run) {
  std::string std_alpha(run);
  for (char& c : std_alpha) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (std_alpha.size() % 4 != 0) std_alpha.push_back('=');
  auto d = crypto::Base64Decode(std_alpha);
  if (!d.ok() || !MostlyPrintable(*d)) return std::nullopt;
  return *d;
}

}  // namespace

std::vector<Layer> DecodeLayers(std::string_view text, size_t budget) {
  std::vector<Layer> out;
  size_t used = 0;
  auto add = [&](size_t b, size_t e, std::string decoded) {
    if (used + decoded.size() > budget) return false;
    used += decoded.size();
    out.push_back({b, e, std::move(decoded)});
    return true;
  };
  // Base64 and hex runs.
  for (size_t i = 0; i < text.size();) {
    if (!IsBase64Char(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    bool all_hex = true;
    while (j < text.size() && IsBase64Char(text[j])) all_hex = all_hex && IsHexDigit(text[j]), ++j;
    size_t end = j;
    while (end < text.size() && end - j < 2 && text[end] == '=') ++end;
    size_t run = j - i;
    if (all_hex && run >= 32 && run % 2 == 0) {
      std::string d;
      for (size_t k = i; k + 1 < j; k += 2) d.push_back(static_cast<char>(HexValue(text[k]) * 16 + HexValue(text[k + 1])));
      if (MostlyPrintable(d) && !add(i, j, std::move(d))) return out;
    } else if (run >= 24) {
      if (auto d = DecodeBase64Run(text.substr(i, j - i)); d && !add(i, end, std::move(*d))) return out;
    }
    i = end;
  }
  // %XX and HTML entities: one decoded copy of each stretch that has them.
  auto decode_stretch = [&](char marker, auto&& decode_at) {
    size_t first = text.find(marker);
    if (first == std::string_view::npos) return;
    std::string d;
    size_t changed = 0;
    for (size_t k = 0; k < text.size();) {
      size_t consumed = decode_at(k, d);
      if (consumed == 0) {
        d.push_back(text[k]);
        ++k;
      } else {
        k += consumed;
        ++changed;
      }
    }
    if (changed > 0 && MostlyPrintable(d)) add(0, text.size(), std::move(d));
  };
  decode_stretch('%', [&](size_t k, std::string& d) -> size_t {
    if (text[k] != '%' || k + 2 >= text.size() || !IsHexDigit(text[k + 1]) || !IsHexDigit(text[k + 2])) return 0;
    d.push_back(static_cast<char>(HexValue(text[k + 1]) * 16 + HexValue(text[k + 2])));
    return 3;
  });
  decode_stretch('&', [&](size_t k, std::string& d) -> size_t {
    if (text[k] != '&') return 0;
    size_t semi = text.find(';', k);
    if (semi == std::string_view::npos || semi - k > 10) return 0;
    std::string_view ent = text.substr(k + 1, semi - k - 1);
    static const std::array<std::pair<std::string_view, char>, 6> kNamed{
        {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", ' '}}};
    for (const auto& [name, c] : kNamed) {
      if (ent == name) {
        d.push_back(c);
        return semi - k + 1;
      }
    }
    if (ent.size() >= 2 && ent[0] == '#') {
      uint32_t cp = 0;
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      if (digits.empty()) return 0;
      for (char c : digits) {
        if (hex ? !IsHexDigit(c) : !(c >= '0' && c <= '9')) return 0;
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(hex ? HexValue(c) : c - '0');
        if (cp > 0x10FFFF) return 0;
      }
      AppendUtf8(d, static_cast<UChar32>(cp));
      return semi - k + 1;
    }
    return 0;
  });
  return out;
}

}  // namespace aigis::guard::internal

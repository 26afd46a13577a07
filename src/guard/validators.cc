// Validators: checks on a matched span that a pattern cannot express
// (checksums, entropy, structure), dropping candidates that only look right.
#include <array>
#include <cmath>

#include "crypto/crypto.h"
#include "guard/internal.h"

namespace aigis::guard::internal {

namespace {

std::string DigitsOf(std::string_view s) {
  std::string d;
  for (char c : s) {
    if (c >= '0' && c <= '9') d.push_back(c);
  }
  return d;
}

}  // namespace

bool Luhn(std::string_view span) {
  std::string d = DigitsOf(span);
  if (d.size() < 12 || d.size() > 19) return false;
  int sum = 0;
  bool twice = false;
  for (auto it = d.rbegin(); it != d.rend(); ++it) {
    int v = *it - '0';
    if (twice) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
    sum += v;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool Iban(std::string_view span) {
  std::string s;
  for (char c : span) {
    if (c == ' ' || c == '-') continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    s.push_back(c);
  }
  if (s.size() < 15 || s.size() > 34) return false;
  if (!(s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] >= '0' && s[2] <= '9' && s[3] >= '0' &&
        s[3] <= '9')) {
    return false;
  }
  std::string r = s.substr(4) + s.substr(0, 4);
  int mod = 0;
  for (char c : r) {
    int v = c >= 'A' ? c - 'A' + 10 : c - '0';
    mod = v >= 10 ? (mod * 100 + v) % 97 : (mod * 10 + v) % 97;
  }
  return mod == 1;
}

bool UsSsn(std::string_view span) {
  std::string d = DigitsOf(span);
  if (d.size() != 9) return false;
  int area = std::stoi(d.substr(0, 3)), group = std::stoi(d.substr(3, 2)), serial = std::stoi(d.substr(5, 4));
  if (area == 0 || area == 666 || area >= 900) return false;
  if (group == 0 || serial == 0) return false;
  if (d == "123456789" || d == "078051120") return false;  // well-known invalid/advertising numbers
  return true;
}

double Entropy(std::string_view span) {
  if (span.empty()) return 0;
  std::array<int, 256> counts{};
  for (unsigned char c : span) ++counts[c];
  double h = 0;
  for (int n : counts) {
    if (n == 0) continue;
    double p = static_cast<double>(n) / static_cast<double>(span.size());
    h -= p * std::log2(p);
  }
  return h;
}

bool Jwt(std::string_view span) {
  size_t a = span.find('.');
  if (a == std::string_view::npos) return false;
  size_t b = span.find('.', a + 1);
  if (b == std::string_view::npos || span.find('.', b + 1) != std::string_view::npos) return false;
  auto header = crypto::Base64UrlDecode(span.substr(0, a));
  if (!header.ok()) return false;
  std::string_view h = *header;
  return !h.empty() && h.front() == '{' && h.find("\"alg\"") != std::string_view::npos && b - a > 1;
}

bool Ipv4Public(std::string_view span) {
  int parts[4];
  int n = 0;
  size_t i = 0;
  while (n < 4) {
    size_t start = i;
    int v = 0;
    while (i < span.size() && span[i] >= '0' && span[i] <= '9' && i - start < 3) v = v * 10 + (span[i++] - '0');
    if (i == start || v > 255) return false;
    parts[n++] = v;
    if (n < 4) {
      if (i >= span.size() || span[i] != '.') return false;
      ++i;
    }
  }
  if (i != span.size()) return false;
  int a = parts[0], b = parts[1];
  if (a == 10 || a == 127 || a == 0 || a >= 224) return false;
  if (a == 172 && b >= 16 && b <= 31) return false;
  if (a == 192 && b == 168) return false;
  if (a == 169 && b == 254) return false;
  if (a == 100 && b >= 64 && b <= 127) return false;  // carrier-grade NAT
  return true;
}

bool Base64Text(std::string_view span) {
  auto layers = DecodeLayers(span, span.size() + 16);
  for (const auto& l : layers) {
    if (l.begin == 0 && l.end >= span.size() - std::min<size_t>(span.size(), 2)) return true;
  }
  return false;
}

bool IsKnownValidator(std::string_view name) {
  return name.empty() || name == "luhn" || name == "iban" || name == "us_ssn" || name == "entropy" || name == "jwt" ||
         name == "ipv4_public" || name == "base64_text";
}

bool Validate(std::string_view name, double arg, std::string_view span) {
  if (name.empty()) return true;
  if (name == "luhn") return Luhn(span);
  if (name == "iban") return Iban(span);
  if (name == "us_ssn") return UsSsn(span);
  if (name == "entropy") return Entropy(span) >= arg;
  if (name == "jwt") return Jwt(span);
  if (name == "ipv4_public") return Ipv4Public(span);
  if (name == "base64_text") return Base64Text(span);
  return false;
}

}  // namespace aigis::guard::internal

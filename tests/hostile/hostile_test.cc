// Hostile-input test: starts the real aigis binary (the sanitizer build under
// `make test`) and throws at least 10,000 generated hostile inputs at its proxy
// port over loopback: broken HTTP framing, oversize headers, long URLs,
// invalid UTF-8, random paths, malformed JSON bodies, oversize bodies and
// stalled requests, with a share of valid requests in between that must keep
// getting 200. Every input must end in a 4xx or in the connection being
// closed (2xx only where the input is in fact acceptable); a 5xx, a hang, a
// crash, a sanitizer report, an unclean exit on SIGTERM, a body in a response
// to HEAD, or accepting a request that exceeds the configured limits (also
// through chunk-size lines or trailer fields) fails the test.
//
// Only the C++ standard library and POSIX are used: no project headers.
//
// Environment (all optional):
//   AIGIS_BIN               the aigis binary (default: the one of this build)
//   AIGIS_HOSTILE_SEED      PRNG seed (default 0x41494749535f4831)
//   AIGIS_HOSTILE_INPUTS    how many inputs to send (default 20000)
//   AIGIS_HOSTILE_SECONDS   stop generating after this long (default 200)
//   AIGIS_HOSTILE_THREADS   parallel connections (default 4)
//   AIGIS_HOSTILE_CASE      replay just this input index (prints its bytes)
//
// Input number i is generated from (seed, i) alone, so any failure reproduces
// with AIGIS_HOSTILE_CASE=i regardless of thread scheduling.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef AIGIS_BIN
#define AIGIS_BIN ""
#endif

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace std::string_view_literals;

constexpr size_t kMaxHeaderBytes = 8 * 1024;  // as configured below
constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr auto kResponseTimeout = 5s;

constexpr const char* kConfig =
    "listeners: {proxy: {address: \"127.0.0.1:0\"}, admin: {address: \"127.0.0.1:0\"}}\n"
    "server: {max_header_bytes: 8KiB, max_body_bytes: 64KiB, header_timeout: 2s, body_timeout: 2s, "
    "idle_timeout: 2s, shutdown_timeout: 2s}\n"
    "log: {access_log: off, level: warn}\n"
    // The inputs aim at the HTTP and JSON parsers, so the route admits
    // callers without credentials; a credential that is present is still
    // checked (and a malformed one refused) by the authenticate stage.
    "upstreams: [{name: echo, provider: echo}]\n"
    "routes: [{name: default, upstreams: [echo], anonymous: true}]\n";

// ------------------------------------------------------------ helpers -----

uint64_t SplitMix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A small deterministic PRNG (splitmix64): the same on every platform, unlike
// the standard distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() { return SplitMix(s_++ * 0x2545F4914F6CDD1DULL + 0x9E37); }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
  size_t Range(size_t lo, size_t hi) { return lo + Below(hi - lo + 1); }  // inclusive
  bool Chance(double p) { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0) < p; }
  std::string Pick(std::initializer_list<std::string_view> l) { return std::string(*(l.begin() + Below(l.size()))); }

 private:
  uint64_t s_;
};

std::string Escape(std::string_view s, size_t limit = 400) {
  std::string out;
  auto put = [&](unsigned char c) {
    switch (c) {
      case '\r':
        out += "\\r";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out += static_cast<char>(c);
        } else {
          char b[8];
          std::snprintf(b, sizeof b, "\\x%02x", c);
          out += b;
        }
    }
  };
  if (s.size() <= limit) {
    for (unsigned char c : s) put(c);
  } else {
    for (unsigned char c : s.substr(0, limit * 3 / 4)) put(c);
    out += "...(" + std::to_string(s.size()) + " bytes in all)...";
    for (unsigned char c : s.substr(s.size() - limit / 4)) put(c);
  }
  return out;
}

std::string ToLower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

uint64_t EnvU64(const char* name, uint64_t def) {
  const char* v = Env(name);
  return v ? std::strtoull(v, nullptr, 0) : def;
}

// ------------------------------------------------- JSON well-formedness ----
// A strict RFC 8259 checker (including UTF-8 validity of the raw bytes) that
// also records the top-level members, to decide whether a mutated body is in
// fact an acceptable request (then a 2xx is allowed, not required).

class JsonCheck {
 public:
  struct Member {
    std::string key;
    char type;   // o a s n t f z(null)
    bool empty;  // "" or [] or {}
  };

  bool Parse(std::string_view s) {
    s_ = s;
    i_ = 0;
    top_.clear();
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;  // parsers MAY ignore a BOM (RFC 8259 §8.1)
    Ws();
    bool empty = false;
    if (!Value(0, &top_type_, &empty, true)) return false;
    Ws();
    return i_ == s_.size();
  }
  char top_type() const { return top_type_; }

  // Some occurrence of key satisfies pred (duplicates: either may win).
  template <typename P>
  bool Any(std::string_view key, P pred) const {
    for (const auto& m : top_)
      if (m.key == key && pred(m)) return true;
    return false;
  }
  bool Has(std::string_view key) const {
    return Any(key, [](const Member&) { return true; });
  }

 private:
  void Ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool Lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static void PutUtf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool Utf8(std::string& out) {
    auto c = static_cast<unsigned char>(s_[i_]);
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i_ + len > s_.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      auto b = static_cast<unsigned char>(s_[i_ + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
    out.append(s_.substr(i_, len));
    i_ += len;
    return true;
  }
  bool String(std::string& out) {
    if (!Eat('"')) return false;
    for (;;) {
      if (i_ >= s_.size()) return false;
      auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++i_ >= s_.size()) return false;
        char e = s_[i_++];
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            if (i_ + 4 > s_.size()) return false;
            uint32_t cp = 0;
            for (int k = 0; k < 4; ++k) {
              int h = Hex(s_[i_ + k]);
              if (h < 0) return false;
              cp = cp * 16 + static_cast<uint32_t>(h);
            }
            i_ += 4;
            PutUtf8(cp, out);  // lone surrogates are grammatical JSON; the bytes only matter for keys
            break;
          }
          default:
            return false;
        }
        continue;
      }
      if (c < 0x80) {
        out += static_cast<char>(c);
        ++i_;
        continue;
      }
      if (!Utf8(out)) return false;
    }
  }
  bool Digits() {
    size_t b = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > b;
  }
  bool Number() {
    Eat('-');
    if (Eat('0')) {
    } else if (i_ < s_.size() && s_[i_] >= '1' && s_[i_] <= '9') {
      Digits();
    } else {
      return false;
    }
    if (Eat('.') && !Digits()) return false;
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (!Eat('+')) Eat('-');
      if (!Digits()) return false;
    }
    return true;
  }
  bool Value(int depth, char* type, bool* empty, bool top) {
    if (depth > 512 || i_ >= s_.size()) return false;
    char c = s_[i_];
    *empty = false;
    if (c == '{') {
      ++i_;
      *type = 'o';
      Ws();
      if (Eat('}')) {
        *empty = true;
        return true;
      }
      for (;;) {
        Ws();
        std::string key;
        if (!String(key)) return false;
        Ws();
        if (!Eat(':')) return false;
        Ws();
        char vt = 0;
        bool ve = false;
        if (!Value(depth + 1, &vt, &ve, false)) return false;
        if (top) top_.push_back({std::move(key), vt, ve});
        Ws();
        if (Eat(',')) continue;
        return Eat('}');
      }
    }
    if (c == '[') {
      ++i_;
      *type = 'a';
      Ws();
      if (Eat(']')) {
        *empty = true;
        return true;
      }
      for (;;) {
        Ws();
        char vt = 0;
        bool ve = false;
        if (!Value(depth + 1, &vt, &ve, false)) return false;
        Ws();
        if (Eat(',')) continue;
        return Eat(']');
      }
    }
    if (c == '"') {
      *type = 's';
      std::string v;
      if (!String(v)) return false;
      *empty = v.empty();
      return true;
    }
    if (c == 't') return *type = 't', Lit("true");
    if (c == 'f') return *type = 'f', Lit("false");
    if (c == 'n') return *type = 'z', Lit("null");
    *type = 'n';
    return Number();
  }

  std::string_view s_;
  size_t i_ = 0;
  char top_type_ = 0;
  std::vector<Member> top_;
};

constexpr std::string_view kEndpoints[] = {"/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/messages"};
enum Ep { kChat = 0, kResponses = 1, kEmbeddings = 2, kMessages = 3 };

// Whether `body` POSTed to endpoint `ep` is a request the gateway may accept:
// well-formed JSON, an object, a non-empty string model and the endpoint's
// required field with the right type. (Accepting is allowed, not required.)
bool MayBeAccepted(int ep, std::string_view body) {
  JsonCheck j;
  if (!j.Parse(body) || j.top_type() != 'o') return false;
  using M = JsonCheck::Member;
  if (!j.Any("model", [](const M& m) { return m.type == 's' && !m.empty; })) return false;
  if (j.Has("stream") && !j.Any("stream", [](const M& m) { return m.type == 't' || m.type == 'f' || m.type == 'z'; }))
    return false;
  switch (ep) {
    case kChat:
    case kMessages:
      return j.Any("messages", [](const M& m) { return m.type == 'a'; });
    case kResponses:
      return j.Any("input", [](const M& m) { return m.type == 's' || m.type == 'a'; });
    case kEmbeddings:
      return j.Any("input", [](const M& m) { return m.type == 's' || (m.type == 'a' && !m.empty); });
  }
  return false;
}

// ------------------------------------------------------------- inputs -----

enum Cat { kFraming, kHugeHeaders, kLongUrl, kBadUtf8, kRandomPath, kJson, kOversize, kStall, kValid, kNumCats };
constexpr const char* kCatNames[kNumCats] = {"framing",       "huge_headers",  "long_url", "bad_utf8", "random_path",
                                             "json_mutation", "oversize_body", "stall",    "valid"};
// Shares per 1000 inputs. Stalls cost ~2 s each (the server's timeouts), so few.
constexpr int kCatWeights[kNumCats] = {230, 70, 70, 90, 90, 280, 40, 3, 127};

enum class Expect {
  kReject,   // 4xx or closed; a 2xx is a failure
  kMay2xx,   // 4xx, closed or 2xx (the input is in fact acceptable)
  kMust2xx,  // a valid request: only a 2xx with a complete body passes
};

struct Case {
  Cat cat = kFraming;
  std::string sub;
  std::string bytes;
  Expect expect = Expect::kReject;
  bool half_close = true;         // shutdown(SHUT_WR) after writing
  bool keepalive_prefix = false;  // first a valid keep-alive request on the same connection
  bool close_after_2xx = false;   // a 2xx must announce Connection: close (CL+TE, RFC 9112 §6.1)
  bool head = false;              // a HEAD request: the response must carry no body (RFC 9110 §9.3.2)
  int responses = 1;              // pipelined requests: read this many responses
};

const char* ExpectName(Expect e) {
  switch (e) {
    case Expect::kReject:
      return "4xx-or-close";
    case Expect::kMay2xx:
      return "4xx-close-or-2xx";
    case Expect::kMust2xx:
      return "2xx";
  }
  return "?";
}

// JSON-string-safe text fragments (already escaped), including valid
// multi-byte UTF-8 and escapes.
std::string Words(Rng& r, size_t n) {
  static constexpr std::string_view kWords[] = {"hello",
                                                "world",
                                                "ignore",
                                                "previous",
                                                "instructions",
                                                "the",
                                                "quick",
                                                "brown",
                                                "fox",
                                                "na\xc3\xafve",
                                                "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                                "\xf0\x9f\x98\x80",
                                                "tab\\t",
                                                "quote\\\"",
                                                "nl\\n",
                                                "\\u00e9",
                                                "\\ud83d\\ude00",
                                                "back\\\\slash",
                                                "<script>",
                                                "' OR 1=1 --",
                                                "${jndi:ldap://x}",
                                                "\\/"};
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kWords[r.Below(std::size(kWords))];
  }
  return s;
}

std::string Quoted(Rng& r, size_t lo, size_t hi) { return "\"" + Words(r, r.Range(lo, hi)) + "\""; }

std::string RandomModel(Rng& r) {
  return r.Pick({"echo", "gpt-4o-mini", "claude-3-5-haiku", "text-embedding-3-small", "m", "any/model:tag"});
}

// A valid request body for the endpoint, with optional fields.
std::string ValidBody(Rng& r, int ep, bool allow_stream = true) {
  std::string b = "{\"model\":\"" + RandomModel(r) + "\"";
  auto stream = [&] {
    if (allow_stream && r.Chance(0.25)) b += std::string(",\"stream\":") + (r.Chance(0.6) ? "true" : "false");
  };
  switch (ep) {
    case kChat: {
      b += ",\"messages\":[";
      if (r.Chance(0.3)) b += "{\"role\":\"system\",\"content\":" + Quoted(r, 1, 5) + "},";
      std::string text = Quoted(r, 1, 10);
      if (r.Chance(0.2)) text = "[{\"type\":\"text\",\"text\":" + text + "}]";
      b += "{\"role\":\"user\",\"content\":" + text + "}]";
      if (r.Chance(0.3)) b += ",\"temperature\":0.5,\"max_tokens\":64";
      stream();
      if (r.Chance(0.1)) b += ",\"stream_options\":{\"include_usage\":true}";
      break;
    }
    case kResponses:
      b += ",\"input\":" +
           (r.Chance(0.5) ? Quoted(r, 1, 10) : "[{\"role\":\"user\",\"content\":" + Quoted(r, 1, 10) + "}]");
      if (r.Chance(0.3)) b += ",\"instructions\":" + Quoted(r, 1, 4);
      stream();
      break;
    case kEmbeddings:
      switch (r.Below(3)) {
        case 0:
          b += ",\"input\":" + Quoted(r, 1, 10);
          break;
        case 1:
          b += ",\"input\":[" + Quoted(r, 1, 4) + "," + Quoted(r, 1, 4) + "]";
          break;
        default:
          b += ",\"input\":[[1,2,3],[4,5]]";
          break;
      }
      if (r.Chance(0.3)) b += std::string(",\"encoding_format\":") + (r.Chance(0.5) ? "\"float\"" : "\"base64\"");
      if (r.Chance(0.3)) b += ",\"dimensions\":" + std::to_string(r.Range(1, 64));
      break;
    case kMessages:
      b += ",\"max_tokens\":" + std::to_string(r.Range(1, 1024));
      if (r.Chance(0.3)) b += ",\"system\":" + Quoted(r, 1, 4);
      b += ",\"messages\":[{\"role\":\"user\",\"content\":" +
           (r.Chance(0.7) ? Quoted(r, 1, 10) : "[{\"type\":\"text\",\"text\":" + Quoted(r, 1, 10) + "}]") + "}]";
      stream();
      break;
  }
  return b + "}";
}

// Never acceptable as a request body ('#' cannot start JSON).
std::string GarbageBody(Rng& r) {
  switch (r.Below(4)) {
    case 0:
      return "#not json";
    case 1:
      return "#{\"model\":";
    case 2: {
      std::string s = "#";
      size_t n = r.Range(1, 200);
      for (size_t i = 0; i < n; ++i) s += static_cast<char>(r.Below(256));
      return s;
    }
    default:
      return "#" + ValidBody(r, static_cast<int>(r.Below(4)));
  }
}

std::string Hex(size_t n, bool upper = false) {
  char b[32];
  std::snprintf(b, sizeof b, upper ? "%zX" : "%zx", n);
  return b;
}

// Chunked encoding of body in random pieces.
std::string Chunked(Rng& r, std::string_view body, bool final_chunk = true) {
  std::string out;
  size_t i = 0;
  while (i < body.size()) {
    size_t n = std::min(body.size() - i, r.Range(1, std::max<size_t>(1, body.size() / 2 + 1)));
    out += Hex(n, r.Chance(0.3)) + "\r\n";
    out.append(body.substr(i, n));
    out += "\r\n";
    i += n;
  }
  if (final_chunk) out += "0\r\n\r\n";
  return out;
}

std::string RandomBytes(Rng& r, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(r.Below(256));
  return s;
}

std::string RandomPrintable(Rng& r, size_t n) {
  std::string s(n, ' ');
  for (auto& c : s) c = static_cast<char>(r.Range(0x20, 0x7e));
  return s;
}

std::string UrlChars(Rng& r, size_t n) {
  static constexpr std::string_view kChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/";
  std::string s(n, 'a');
  for (auto& c : s) c = kChars[r.Below(kChars.size())];
  return s;
}

std::string BadUtf8(Rng& r) {
  return r.Pick({"\xff", "\xfe", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xed\xbf\xbf",
                 "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\x80", "\xbf", "\xe2\x82", "\xf0\x9f\x98", "\xc3",
                 "\xfc\x80\x80\x80\x80\x80", "\xc3\x28", "\xa0\xa1", "\xe2\x28\xa1", "\xf0\x28\x8c\xbc"});
}

const std::string kHost = "Host: 127.0.0.1\r\n";
const std::string kJsonType = "Content-Type: application/json\r\n";

std::string ClHeader(size_t n) { return "Content-Length: " + std::to_string(n) + "\r\n"; }

// A well-framed POST of body to path with extra header lines (each with CRLF).
std::string Post(std::string_view path, std::string_view body, std::string_view extra = "",
                 std::string_view version = "HTTP/1.1") {
  std::string s = "POST " + std::string(path) + " " + std::string(version) + "\r\n" + kHost + kJsonType;
  s += extra;
  s += ClHeader(body.size()) + "\r\n";
  s += body;
  return s;
}

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  size_t p = 0;
  while ((p = s.find(from, p)) != std::string::npos) {
    s.replace(p, from.size(), to);
    p += to.size();
  }
  return s;
}

Case GenFraming(Rng& r) {
  Case c;
  int ep = static_cast<int>(r.Below(4));
  std::string path(kEndpoints[ep]);
  bool good = r.Chance(0.7);
  std::string body = good ? ValidBody(r, ep) : GarbageBody(r);
  auto may = [&] { return good ? Expect::kMay2xx : Expect::kReject; };
  const std::string rl = "POST " + path + " HTTP/1.1\r\n";
  const std::string head = kHost + kJsonType;
  const std::string cl = ClHeader(body.size());
  std::string n = std::to_string(body.size());
  switch (r.Below(48)) {
    case 0:
      c.sub = "garbage_bytes";
      c.bytes = RandomBytes(r, r.Range(1, 300)) + (r.Chance(0.5) ? "\r\n\r\n" : "");
      break;
    case 1:
      c.sub = "garbage_printable_line";
      c.bytes = RandomPrintable(r, r.Range(1, 200)) + "\r\n" + kHost + "\r\n";
      break;
    case 2:
      c.sub = "bad_method_chars";
      c.bytes = r.Pick({"G@T", "GE T", "GET\t", "(POST)", "PO\"ST", "<script>", "\x01POST", "POST\x7f", "PO,ST",
                        "[POST]", "POST\\", "PO/ST", "POST:"}) +
                " " + path + " HTTP/1.1\r\n" + head + cl + "\r\n" + body;
      break;
    case 3:
      c.sub = "unknown_method";
      c.bytes = (r.Chance(0.2) ? std::string(r.Range(100, 2000), 'A')
                               : r.Pick({"post", "FOO", "M-SEARCH", "PROPFIND", "BREW", "PRI", "Post"})) +
                " " + path + " HTTP/1.1\r\n" + head + cl + "\r\n" + body;
      break;
    case 4:
      c.sub = "empty_method";
      c.bytes = " " + path + " HTTP/1.1\r\n" + head + cl + "\r\n" + body;
      break;
    case 5:
      c.sub = "bad_version";
      c.bytes = "POST " + path + " " +
                r.Pick({"HTTP/2.0", "HTTP/0.9", "HTTP/1.10", "http/1.1", "HTTP/1.1 ", "HTTP/1", "HTTP/", "HTTP/1.x",
                        "HTTP/11", "HTTPS/1.1", "HTTP/1.1x", "HTTP/3.0", "HTTP/01.1", "HTTP/1.01", "HTTP/9.9",
                        "HTTP/-1.1", "HTTP/1.1\x00"sv, "HTTP /1.1", "HTTP/1 .1"}) +
                "\r\n" + head + cl + "\r\n" + body;
      break;
    case 6:
      c.sub = "minor_version_1_2";  // RFC 9110 §2.5: treat as the highest 1.x known
      c.bytes = "POST " + path + " HTTP/1.2\r\n" + head + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 7:
      c.sub = "http09_no_version";
      c.bytes = r.Chance(0.5) ? "GET /v1/models\r\n\r\n" : "POST " + path + "\r\n" + head + cl + "\r\n" + body;
      break;
    case 8:
      c.sub = "double_space";  // RFC 9112 §3: MAY parse on whitespace boundaries
      c.bytes = (r.Chance(0.5) ? "POST  " + path + " HTTP/1.1\r\n" : "POST " + path + "  HTTP/1.1\r\n") + head + cl +
                "\r\n" + body;
      c.expect = may();
      break;
    case 9:
      c.sub = "no_crlf_anywhere";
      c.bytes = "POST " + path + " HTTP/1.1Host: 127.0.0.1Content-Length: " + n + body;
      break;
    case 10:
      c.sub = "missing_blank_line";
      c.bytes = rl + head + cl + (r.Chance(0.5) ? body : "");
      break;
    case 11:
      c.sub = "bare_lf";  // RFC 9112 §2.2: MAY accept a bare LF as line terminator
      c.bytes = ReplaceAll(rl + head + cl + "\r\n", "\r\n", "\n") + body;
      c.expect = may();
      break;
    case 12:
      c.sub = "bare_cr_line_ends";
      c.bytes = ReplaceAll(rl + head + cl + "\r\n", "\r\n", "\r") + body;
      break;
    case 13:
      c.sub = "bare_cr_in_value";  // reject, or replace by SP (RFC 9112 §2.2)
      c.bytes = rl + head + "X-A: a\rb\r\n" + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 14: {
      c.sub = "nul_in_request_line";
      std::string l = "POST " + path + " HTTP/1.1";
      l.insert(r.Below(l.size() + 1), 1, '\0');
      c.bytes = l + "\r\n" + head + cl + "\r\n" + body;
      break;
    }
    case 15:
      c.sub = "nul_in_header_name";
      c.bytes = rl + head + std::string("X-\0A: v\r\n", 9) + cl + "\r\n" + body;
      break;
    case 16:
      c.sub = "nul_in_header_value";  // reject, or replace by SP (RFC 9110 §5.5)
      c.bytes = rl + head + std::string("X-A: a\0b\r\n", 10) + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 17: {
      c.sub = "cl_and_te";  // RFC 9112 §6.1: reject, or use TE and close afterwards
      std::string chunked = Chunked(r, body);
      size_t len = r.Chance(0.5) ? body.size() : chunked.size();
      if (r.Chance(0.3)) len = r.Below(chunked.size() + 10);
      std::string te = "Transfer-Encoding: chunked\r\n", clh = ClHeader(len);
      c.bytes = rl + head + (r.Chance(0.5) ? te + clh : clh + te) + "\r\n" + chunked;
      c.expect = may();
      c.close_after_2xx = true;
      break;
    }
    case 18:
      c.sub = "cl_negative";
      c.bytes = rl + head + "Content-Length: " + r.Pick({"-1", "-0", "-100", "-" + n}) + "\r\n\r\n" + body;
      break;
    case 19:
      c.sub = "cl_huge";
      c.bytes = rl + head + "Content-Length: " +
                r.Pick({"99999999999999999999999999", "18446744073709551616", "18446744073709551615",
                        "9223372036854775808", "9223372036854775807", "4294967296", "4294967295", "1000000000", "65537",
                        "000000000000000000000000000000000000000100000"}) +
                "\r\n\r\n" + body;
      break;
    case 20:
      c.sub = "cl_bad_syntax";
      c.bytes = rl + head + "Content-Length: " +
                r.Pick({"+" + n, n + " " + n, "0x" + Hex(body.size()), n + ".0", "five", "", "1e3", " ", n + ";",
                        n + "\t," + std::to_string(body.size() + 1), n + "," + std::to_string(body.size() + 7),
                        n + "abc", "\"" + n + "\"", n + "\x0b"}) +
                "\r\n\r\n" + body;
      break;
    case 21:
      c.sub = "cl_duplicate_different";
      c.bytes = rl + head + cl + ClHeader(r.Chance(0.5) ? 0 : body.size() + r.Range(1, 50)) + "\r\n" + body;
      break;
    case 22:
      c.sub = "cl_duplicate_same";  // RFC 9110 §8.6: MAY accept identical values
      c.bytes = rl + head + cl + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 23:
      c.sub = "cl_list_same";
      c.bytes = rl + head + "Content-Length: " + n + ", " + n + "\r\n\r\n" + body;
      c.expect = may();
      break;
    case 24:
      c.sub = "cl_shorter_than_body";  // the body prefix is never a complete JSON object
      c.bytes = rl + head + ClHeader(r.Below(body.size())) + "\r\n" + body;
      break;
    case 25:
      c.sub = "body_shorter_than_cl_then_close";
      c.bytes = rl + head + ClHeader(body.size() + r.Range(1, 1000)) + "\r\n" + body;
      break;
    case 26:
      c.sub = "te_chunked_not_final";  // RFC 9112 §6.3: 400
      c.bytes = rl + head + "Transfer-Encoding: " +
                r.Pick({"chunked, gzip", "gzip", "identity", "xchunked", "chunked1", "chunk", "deflate",
                        "chunked, identity", "\"chunked\""}) +
                "\r\n\r\n" + Chunked(r, body);
      break;
    case 27:
      c.sub = "te_chunked_case_ws";
      c.bytes = rl + head +
                "Transfer-Encoding: " + r.Pick({"Chunked", "CHUNKED", " chunked", "chunked ", "chunked\t"}) +
                "\r\n\r\n" + Chunked(r, body);
      c.expect = may();
      break;
    case 28:
      c.sub = "chunk_size_invalid";
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" +
                r.Pick({"zz", "-1", "ffffffffffffffffffff", "10000000000000000", "0x" + Hex(body.size()),
                        "+" + Hex(body.size()), " " + Hex(body.size()), Hex(body.size()) + " ", "",
                        Hex(body.size()) + ";", "g", Hex(body.size()) + std::string(1, '\0')}) +
                "\r\n" + body + "\r\n0\r\n\r\n";
      break;
    case 29:
      c.sub = "chunk_size_exotic_valid";
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" +
                r.Pick({"000" + Hex(body.size()), Hex(body.size(), true), Hex(body.size()) + ";a=b",
                        Hex(body.size()) + ";a=\"q ;\"", Hex(body.size()) + " ;x", Hex(body.size()) + ";x;y=1"}) +
                "\r\n" + body + "\r\n0\r\n\r\n";
      c.expect = may();
      break;
    case 30:
      c.sub = "chunk_data_mismatch";
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" +
                Hex(r.Chance(0.5) ? body.size() + r.Range(1, 20) : r.Below(body.size())) + "\r\n" + body +
                "\r\n0\r\n\r\n";
      break;
    case 31: {
      c.sub = "chunked_truncated_then_close";
      std::string ch = Chunked(r, body);
      ch.resize(r.Below(ch.size()));
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" + ch;
      break;
    }
    case 32:
      c.sub = "chunked_trailers";
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" + Chunked(r, body, false) + "0\r\n" +
                r.Pick({"X-T: 1\r\n", "Content-Length: 5\r\n", "X-A: 1\r\nX-B: 2\r\n"}) + "\r\n";
      c.expect = may();
      break;
    case 33:
      c.sub = "chunk_missing_crlf_after_data";
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" + Hex(body.size()) + "\r\n" + body + "XX0\r\n\r\n";
      break;
    case 34:
      c.sub = "obs_fold";  // RFC 9112 §5.2: reject or replace with SP
      c.bytes = rl + head + "X-Fold: a\r\n  b\r\n" + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 35:
      c.sub = "space_before_colon";  // RFC 9112 §5.1: MUST reject
      c.bytes = r.Chance(0.5) ? rl + head + "Content-Length : " + n + "\r\n\r\n" + body
                              : rl + head + cl + "Transfer-Encoding : chunked\r\n\r\n" + body;
      break;
    case 36:
      c.sub = "header_without_colon";
      c.bytes = rl + head + "X-Foo bar\r\n" + cl + "\r\n" + body;
      break;
    case 37:
      c.sub = "empty_header_name";
      c.bytes = rl + head + ": value\r\n" + cl + "\r\n" + body;
      break;
    case 38:
      c.sub = "whitespace_before_first_header";  // RFC 9112 §2.2: reject or skip the line
      c.bytes = rl + " X-A: 1\r\n" + head + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 39:
      c.sub = "leading_empty_lines";  // RFC 9112 §2.2: SHOULD ignore
      c.bytes = "\r\n\r\n" + rl + head + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 40:
      c.sub = "expect_100_without_body";
      c.bytes = rl + head + "Expect: 100-continue\r\n" + cl + "\r\n";
      break;
    case 41:
      c.sub = "expect_unknown";  // 417 or ignore
      c.bytes = rl + head + "Expect: " + r.Pick({"999-nope", "100-continue, x", ""}) + "\r\n" + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 42:
      c.sub = "te_obfuscated_duplicate";  // combined "chunked, x": chunked not final
      c.bytes = rl + head +
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: " + r.Pick({"x", "identity", "gzip", "chunked, x"}) +
                "\r\n\r\n" + Chunked(r, body);
      break;
    case 43:
      c.sub = "absolute_form_target";
      c.bytes = "POST http://127.0.0.1" + path + " HTTP/1.1\r\n" + head + cl + "\r\n" + body;
      c.expect = may();
      break;
    case 44:
      c.sub = "long_chunk_ext";
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" + Hex(body.size()) + ";" +
                std::string(r.Range(100, kMaxHeaderBytes - 100), 'a') + "\r\n" + body + "\r\n0\r\n\r\n";
      c.expect = may();
      break;
    case 47: {
      // A chunk-size line longer than header and body limits together: the
      // server must not buffer it (one connection could make it hold any
      // amount of memory).
      c.sub = "chunk_line_over_limits";
      body = ValidBody(r, ep);  // so that only the limit can make this a 4xx
      size_t n = r.Range(128 * 1024, 1024 * 1024);
      std::string size = Hex(body.size());
      switch (r.Below(3)) {
        case 0:
          size += ";" + std::string(n, 'e');
          break;  // chunk extension
        case 1:
          size = std::string(n, '0') + size;
          break;  // leading zeros
        default:
          size += std::string(n, ' ') + ";x";
          break;  // BWS before an extension
      }
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + body + "\r\n0\r\n\r\n";
      break;
    }
    case 45: {
      c.sub = "one_byte_chunks";
      std::string ch;
      for (char b : body) ch += std::string("1\r\n") + b + "\r\n";
      c.bytes = rl + head + "Transfer-Encoding: chunked\r\n\r\n" + ch + "0\r\n\r\n";
      c.expect = may();
      break;
    }
    default:
      c.sub = "http10_with_te";  // RFC 9112 §6.1: framing faulty; process then close
      c.bytes = "POST " + path + " HTTP/1.0\r\n" + head + "Transfer-Encoding: chunked\r\n\r\n" + Chunked(r, body);
      c.expect = may();
      break;
  }
  return c;
}

// Pads a request (ending in the blank line) so its head is `total` bytes.
std::string PaddedHead(std::string_view request_line_and_headers, size_t total) {
  std::string s(request_line_and_headers);
  const size_t overhead = std::string_view("X-Pad: \r\n\r\n").size();
  size_t pad = total > s.size() + overhead ? total - s.size() - overhead : 0;
  return s + "X-Pad: " + std::string(pad, 'p') + "\r\n\r\n";
}

Case GenHugeHeaders(Rng& r) {
  Case c;
  int ep = static_cast<int>(r.Below(4));
  std::string path(kEndpoints[ep]);
  std::string body = ValidBody(r, ep);
  std::string start = "POST " + path + " HTTP/1.1\r\n" + kHost + kJsonType + ClHeader(body.size());
  switch (r.Below(11)) {
    case 0:
      c.sub = "single_header_over_limit";
      c.bytes = start + "X-Big: " + std::string(r.Range(kMaxHeaderBytes + 1, 128 * 1024), 'a') + "\r\n\r\n" + body;
      break;
    case 1: {
      c.sub = "thousands_of_headers";
      std::string h;
      size_t count = r.Range(1000, 6000);
      for (size_t i = 0; i < count; ++i) h += "X-H" + std::to_string(i) + ": " + std::to_string(i) + "\r\n";
      c.bytes = start + h + "\r\n" + body;
      break;
    }
    case 2:
      c.sub = "huge_header_name";
      c.bytes = start + std::string(r.Range(kMaxHeaderBytes + 1, 64 * 1024), 'N') + ": v\r\n\r\n" + body;
      break;
    case 3:
      c.sub = "huge_cookie";
      c.bytes = start + "Cookie: " + std::string(r.Range(kMaxHeaderBytes, 32 * 1024), 'c') + "\r\n\r\n" + body;
      break;
    case 4: {
      c.sub = "many_headers_under_limit";
      std::string h;
      size_t count = r.Range(50, 300);
      for (size_t i = 0; i < count; ++i) h += "X-" + std::to_string(i) + ": v\r\n";
      c.bytes = start + h + "\r\n" + body;
      c.expect = start.size() + h.size() + 2 < kMaxHeaderBytes ? Expect::kMay2xx : Expect::kReject;
      break;
    }
    case 5:
      c.sub = "head_size_near_limit";  // either side of the limit: no crash, no off-by-one 5xx
      c.bytes = PaddedHead(start, kMaxHeaderBytes - 64 + r.Below(129)) + body;
      c.expect = Expect::kMay2xx;
      break;
    case 6: {
      c.sub = "thousands_of_host_headers";
      std::string h;
      size_t count = r.Range(600, 3000);
      for (size_t i = 0; i < count; ++i) h += kHost;
      c.bytes = start + h + "\r\n" + body;
      break;
    }
    case 7: {
      c.sub = "many_content_type_headers";
      std::string h;
      size_t count = r.Range(400, 2000);
      for (size_t i = 0; i < count; ++i) h += kJsonType;
      c.bytes = start + h + "\r\n" + body;
      break;
    }
    case 9: {
      // Trailer fields are header fields too: a trailer section larger than
      // header and body limits together must not be accepted.
      c.sub = "trailers_over_limits";
      std::string t;
      size_t want = r.Range(128 * 1024, 1024 * 1024);
      size_t field = r.Chance(0.5) ? r.Range(10, 200) : r.Range(1000, kMaxHeaderBytes - 100);
      for (size_t i = 0; t.size() < want; ++i) t += "X-T" + std::to_string(i) + ": " + std::string(field, 't') + "\r\n";
      c.bytes = "POST " + path + " HTTP/1.1\r\n" + kHost + kJsonType + "Transfer-Encoding: chunked\r\n\r\n" +
                Chunked(r, body, false) + "0\r\n" + t + "\r\n";
      break;
    }
    case 10: {
      // One trailer field longer than 64 KiB (a header field that size
      // cannot pass the header limit; a trailer has no such limit).
      c.sub = "trailer_field_over_64k";
      size_t n = r.Range(65534, 256 * 1024);
      std::string field = r.Chance(0.8) ? "X-T: " + std::string(n, 'v') : std::string(n, 'N') + ": v";
      c.bytes = "POST " + path + " HTTP/1.1\r\n" + kHost + kJsonType + "Transfer-Encoding: chunked\r\n\r\n" +
                Chunked(r, body, false) + "0\r\n" + field + "\r\n\r\n";
      break;
    }
    default:
      c.sub = "huge_header_no_end";
      c.bytes = start + "X-Big: " + std::string(r.Range(kMaxHeaderBytes + 1, 256 * 1024), 'z');
      break;
  }
  return c;
}

Case GenLongUrl(Rng& r) {
  Case c;
  int ep = static_cast<int>(r.Below(4));
  std::string path(kEndpoints[ep]);
  std::string body = ValidBody(r, ep);
  bool get = r.Chance(0.3);
  auto req = [&](const std::string& target) {
    return get ? "GET " + target + " HTTP/1.1\r\n" + kHost + "\r\n" : Post(target, body);
  };
  switch (r.Below(9)) {
    case 0:
      c.sub = "path_long_under_limit";
      c.bytes = req("/x" + UrlChars(r, r.Range(500, 7000)));
      break;
    case 1:
      c.sub = "path_over_limit";
      c.bytes = req("/x" + UrlChars(r, r.Range(kMaxHeaderBytes + 100, 64 * 1024)));
      break;
    case 2:
      c.sub = "path_very_long";
      c.bytes = req("/x" + UrlChars(r, r.Chance(0.1) ? 1024 * 1024 : r.Range(64 * 1024, 200 * 1024)));
      break;
    case 3:
      c.sub = "query_long_on_endpoint";
      c.bytes = Post(path + "?q=" + UrlChars(r, r.Range(100, 7500)), body);
      c.expect = Expect::kMay2xx;
      break;
    case 4:
      c.sub = "query_over_limit_on_endpoint";
      c.bytes = Post(path + "?q=" + UrlChars(r, r.Range(kMaxHeaderBytes + 100, 64 * 1024)), body);
      break;
    case 5:
      c.sub = "many_slashes";
      c.bytes = req(std::string(r.Range(100, 20000), '/'));
      break;
    case 6: {
      c.sub = "dot_segments";
      std::string t = "/v1/";
      size_t k = r.Range(1, 2000);
      for (size_t i = 0; i < k; ++i) t += "../";
      c.bytes = req(t + r.Pick({"etc/passwd", "admin", "healthz", "metrics"}));
      break;
    }
    case 7:
      c.sub = "percent_garbage";
      get = true;
      c.bytes = req(r.Pick({"/v1/chat%2Fcompletions", "/%zz", "/%", "/v1/models%00", "/%ff%fe", "/%u0041",
                            "/v1%2fmodels", "/v1/models%", "/%%%%%%%%", "/v1/models/%2e%2e/%2e%2e"}) +
                    (r.Chance(0.5) ? "" : UrlChars(r, r.Range(1, 3000))));
      break;
    default: {
      c.sub = "request_line_near_limit";
      std::string pre = "POST " + path + "?q=";
      std::string tail = " HTTP/1.1\r\n" + kHost + kJsonType + ClHeader(body.size()) + "\r\n";
      size_t total = kMaxHeaderBytes - 64 + r.Below(129);
      size_t fill = total > pre.size() + tail.size() ? total - pre.size() - tail.size() : 0;
      c.bytes = pre + UrlChars(r, fill) + tail + body;
      c.expect = Expect::kMay2xx;
      break;
    }
  }
  return c;
}

Case GenBadUtf8(Rng& r) {
  Case c;
  int ep = static_cast<int>(r.Below(4));
  std::string path(kEndpoints[ep]);
  std::string body = ValidBody(r, ep);
  std::string bad = BadUtf8(r);
  if (r.Chance(0.3)) bad += "x" + BadUtf8(r);
  switch (r.Below(10)) {
    case 0:
      c.sub = "target_path";
      c.bytes = Post(
          r.Pick({"/", "/v1/chat/completions/", "/v1/", "/v1/models/"}) + bad + (r.Chance(0.5) ? "/completions" : ""),
          body);
      break;
    case 1:
      c.sub = "target_query";
      c.bytes = Post(path + "?q=" + bad, body);
      c.expect = Expect::kMay2xx;
      break;
    case 2:
      c.sub = "header_value";  // obs-text is allowed in field values
      c.bytes = Post(path, body, "X-Test: a" + bad + "b\r\n");
      c.expect = Expect::kMay2xx;
      break;
    case 3:
      c.sub = "header_name";
      c.bytes = Post(path, body, "X-" + bad + ": v\r\n");
      break;
    case 4:
      c.sub = "method";
      c.bytes = "P" + bad + "ST " + path + " HTTP/1.1\r\n" + kHost + ClHeader(body.size()) + "\r\n" + body;
      break;
    case 5:
      c.sub = "request_id_header";
      c.bytes = Post(path, body, "X-Request-Id: " + bad + "\r\n");
      c.expect = Expect::kMay2xx;
      break;
    case 6:
      c.sub = "auth_and_content_type";
      c.bytes = Post(path, body,
                     r.Chance(0.5) ? "Authorization: Bearer " + bad + "\r\n"
                                   : "Content-Type: application/json; charset=" + bad + "\r\n");
      c.expect = Expect::kMay2xx;
      break;
    case 7:
      c.sub = "anthropic_version_on_models";
      c.bytes = "GET /v1/models HTTP/1.1\r\n" + kHost + "anthropic-version: " + bad + "\r\n\r\n";
      c.expect = Expect::kMay2xx;
      break;
    case 8:
      c.sub = "host_header";
      c.bytes =
          "POST " + path + " HTTP/1.1\r\nHost: " + bad + "\r\n" + kJsonType + ClHeader(body.size()) + "\r\n" + body;
      c.expect = Expect::kMay2xx;
      break;
    default:
      c.sub = "valid_utf8_header_value";
      c.bytes = Post(path, body, "X-Emoji: \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac \xc3\xa9\r\n");
      c.expect = Expect::kMay2xx;
      break;
  }
  return c;
}

Case GenRandomPath(Rng& r) {
  Case c;
  if (r.Chance(0.05)) {
    // The endpoint with a trailing slash and a valid body: accepting it is
    // allowed, not required.
    int ep = static_cast<int>(r.Below(4));
    c.sub = "endpoint_trailing_slash";
    c.bytes = Post(std::string(kEndpoints[ep]) + "/", ValidBody(r, ep));
    c.expect = Expect::kMay2xx;
    return c;
  }
  if (r.Chance(0.08)) {
    c.sub = "head_request";
    c.head = true;
    std::string target = r.Pick(
        {"/v1/models", "/v1/models/", "/v1/chat/completions", "/v1/messages", "/nope", "/healthz", "/v1/models?x=1"});
    c.bytes = "HEAD " + target + " HTTP/1.1\r\n" + kHost + (r.Chance(0.3) ? "Content-Length: 0\r\n" : "") + "\r\n";
    if (target.rfind("/v1/models", 0) == 0) c.expect = Expect::kMay2xx;
    return c;
  }
  c.sub = "random_path";
  std::string method =
      r.Chance(0.1)
          ? RandomPrintable(r, r.Range(1, 12))
          : r.Pick({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "GET", "POST"});
  std::string target;
  switch (r.Below(6)) {
    case 0: {
      size_t segs = r.Range(1, 8);
      for (size_t i = 0; i < segs; ++i) target += "/" + UrlChars(r, r.Range(0, 20));
      break;
    }
    case 1:
      target = r.Pick({"/v1/",
                       "/v2/chat/completions",
                       "/v1/chat",
                       "/v1/chat/completions/extra",
                       "/healthz",
                       "/metrics",
                       "/readyz",
                       "/admin",
                       "/../../etc/passwd",
                       "/v1/models/gpt-4",
                       "*",
                       "127.0.0.1:443",
                       "/v1/chat/completions/",
                       "/v1/messages/count_tokens",
                       "/v1//chat/completions",
                       "/V1/CHAT/COMPLETIONS",
                       "/v1/chat/completions#frag",
                       "/v1/models",
                       "/v1/models/",
                       "//",
                       "/v1/embeddings/../models",
                       "",
                       "/v1/responses/abc/cancel",
                       "http://127.0.0.1/v1/models"});
      break;
    case 2:
      target = std::string(kEndpoints[r.Below(4)]) + "/" + UrlChars(r, r.Range(1, 40));
      break;
    case 3:
      target = "/v1/" + RandomPrintable(r, r.Range(1, 40));
      break;
    case 4:
      target = "/v1/models?" + UrlChars(r, r.Range(0, 100));
      break;
    default:
      target = "/" + RandomPrintable(r, r.Range(1, 100));
      break;
  }
  std::string body = r.Chance(0.5) ? "" : (r.Chance(0.5) ? "{}" : GarbageBody(r));
  // Only a HEAD request the server can parse is known to be one.
  c.head =
      method == "HEAD" && !target.empty() && target[0] == '/' &&
      target.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/?%!$&'()*+,;=:@") ==
          std::string::npos;
  c.bytes = method + " " + target + " HTTP/1.1\r\n" + kHost;
  if (!body.empty() || r.Chance(0.5)) c.bytes += ClHeader(body.size());
  c.bytes += "\r\n" + body;
  std::string p = target.substr(0, target.find('?'));
  if (method == "GET" && (p == "/v1/models" || p == "/v1/models/")) c.expect = Expect::kMay2xx;
  return c;
}

// Puts s at a random position inside a string value of body (after `"key":"`).
std::string InsertInString(Rng& r, std::string body, std::string_view s) {
  std::vector<size_t> spots;
  for (std::string_view key : {"\"model\":\"", "\"role\":\"", "\"content\":\"", "\"input\":\"", "\"text\":\"",
                               "\"system\":\"", "\"instructions\":\""}) {
    for (size_t p = body.find(key); p != std::string::npos; p = body.find(key, p + 1)) spots.push_back(p + key.size());
  }
  size_t at = spots.empty() ? r.Below(body.size() + 1) : spots[r.Below(spots.size())];
  body.insert(at, s);
  return body;
}

// Inserts `,"key":value` before the final '}' of an object body.
std::string AddField(std::string body, std::string_view key, std::string_view value) {
  body.insert(body.size() - 1, ",\"" + std::string(key) + "\":" + std::string(value));
  return body;
}

std::string BodyWith(int ep, const std::string& model, const std::string& payload, const std::string& stream = "") {
  std::string b = "{\"model\":" + model;
  switch (ep) {
    case kChat:
      b += ",\"messages\":" + payload;
      break;
    case kMessages:
      b += ",\"max_tokens\":16,\"messages\":" + payload;
      break;
    default:
      b += ",\"input\":" + payload;
      break;
  }
  if (!stream.empty()) b += ",\"stream\":" + stream;
  return b + "}";
}

Case GenJson(Rng& r) {
  Case c;
  int ep = static_cast<int>(r.Below(4));
  std::string path(kEndpoints[ep]);
  std::string body;
  bool messages_ep = ep == kChat || ep == kMessages;
  std::string good_payload = messages_ep ? "[{\"role\":\"user\",\"content\":\"hi\"}]" : "\"hi\"";
  switch (r.Below(19)) {
    case 0:
      c.sub = "truncated";
      body = ValidBody(r, ep);
      body.resize(r.Below(body.size()));
      break;
    case 1:
      c.sub = "invalid_utf8_in_string";
      body = r.Chance(0.85) ? InsertInString(r, ValidBody(r, ep), BadUtf8(r))
                            : "{\"mo" + BadUtf8(r) + "del\":\"echo\"," + ValidBody(r, ep).substr(1);
      break;
    case 2: {
      c.sub = "deep_nesting";
      size_t n = r.Chance(0.3) ? 10000 : std::stoul(r.Pick({"65", "100", "1000", "5000", "20000", "30000", "60000"}));
      switch (r.Below(6)) {
        case 0:
          body = std::string(n, '[');
          break;
        case 1:
          body = std::string(n, '[') + std::string(n, ']');
          break;
        case 2:
          body = BodyWith(ep, "\"echo\"", std::string(n, '[') + std::string(n, ']'));
          break;
        case 3: {
          std::string v;
          for (size_t i = 0; i < n; ++i) v += "{\"a\":";
          v += "1" + std::string(n, '}');
          body = BodyWith(ep, "\"echo\"", messages_ep ? "[{\"role\":\"user\",\"content\":" + v + "}]" : v);
          break;
        }
        case 4: {
          std::string v;
          for (size_t i = 0; i < n; ++i) v += "{\"a\":";
          body = v;
          break;
        }
        default: {
          size_t d = r.Range(50, 70);  // around the parser's depth limit
          body = AddField(ValidBody(r, ep), "metadata", std::string(d, '[') + std::string(d, ']'));
          break;
        }
      }
      if (body.size() > kMaxBodyBytes) body.resize(kMaxBodyBytes);  // over-limit bodies are another category
      break;
    }
    case 3: {
      c.sub = "wrong_types";
      std::string model = "\"echo\"", payload = good_payload, stream;
      switch (r.Below(4)) {
        case 0:
          model = r.Pick({"123", "null", "true", "[]", "{}", "\"\"", "[\"echo\"]", "{\"id\":\"echo\"}", "1.5", "-0",
                          "\"" + std::string(300, 'm') + "\""});
          break;
        case 1:
          payload = messages_ep
                        ? r.Pick({"\"hi\"", "{}", "1", "null", "[\"hi\"]", "[[]]", "[{\"role\":1,\"content\":\"x\"}]",
                                  "[{}]", "[{\"content\":\"x\"}]", "[{\"role\":\"user\",\"content\":{}}]",
                                  "[{\"role\":\"user\",\"content\":123}]", "[null]", "true", "[{\"role\":null}]",
                                  "[{\"role\":[\"user\"]}]"})
                        : r.Pick({"1", "{}", "null", "[]", "true", "[null]", "[{}]", "[[]]", "[1.5e300]", "-1"});
          break;
        case 2:
          stream = r.Pick({"\"true\"", "1", "0", "{}", "[]", "\"yes\"", "\"\""});
          break;
        default: {
          body = AddField(ValidBody(r, ep, false),
                          r.Pick({"max_tokens", "temperature", "dimensions", "encoding_format", "stream_options",
                                  "system", "instructions", "n", "tools", "metadata", "user"}),
                          r.Pick({"\"16\"", "\"hot\"", "0", "-1", "100000", "\"hex\"", "1", "\"x\"", "123", "[]", "{}",
                                  "null", "{\"include_usage\":\"yes\"}", "[1,2]", "true"}));
          break;
        }
      }
      if (body.empty()) body = BodyWith(ep, model, payload, stream);
      break;
    }
    case 4: {
      c.sub = "huge_numbers";
      std::string num = r.Pick({"1e999999", "-1e999999", "1E+400", "1e-400", "123456789012345678901234567890",
                                "-9223372036854775809", "18446744073709551616", "9223372036854775807", "-0",
                                "1.7976931348623157e309", "4.9e-325", "0.1e-2147483649", "1e2147483648"});
      if (r.Chance(0.2)) num = std::string(r.Range(400, 20000), '9');
      if (r.Chance(0.1)) num = "0." + std::string(r.Range(400, 20000), '1');
      body = r.Chance(0.15)
                 ? BodyWith(ep, num, good_payload)
                 : AddField(ValidBody(r, ep),
                            r.Pick({"max_tokens", "temperature", "top_p", "n", "dimensions", "seed", "x"}), num);
      break;
    }
    case 5:
      c.sub = "invalid_numbers";
      body = AddField(ValidBody(r, ep), r.Pick({"max_tokens", "temperature", "x"}),
                      r.Pick({"01", "1.", ".5", "+1", "1e", "1e+", "--1", "NaN", "Infinity", "-Infinity", "0x10",
                              "1_000", "\xd9\xa1", "1.2.3", "1e1.5", "-", "00", "1ee5", "0.e1"}));
      break;
    case 6: {
      c.sub = "duplicate_keys";
      switch (r.Below(8)) {
        case 0:
          body = "{\"model\":\"echo\",\"model\":123," + BodyWith(ep, "\"echo\"", good_payload).substr(1);
          break;
        case 1:
          body = "{\"model\":123," + BodyWith(ep, "\"echo\"", good_payload).substr(1);
          break;
        case 2:
          body = "{\"model\":\"a\"," + BodyWith(ep, "\"b\"", good_payload).substr(1);
          break;
        case 3:
          body = AddField(BodyWith(ep, "\"echo\"", good_payload), messages_ep ? "messages" : "input", "\"x\"");
          break;
        case 4:
          body = AddField(BodyWith(ep, "\"echo\"", good_payload, "true"), "stream", "\"x\"");
          break;
        case 5: {
          std::string d = "{";
          size_t k = r.Range(100, 3000);
          for (size_t i = 0; i < k; ++i) d += "\"model\":\"echo\",";
          body = d + BodyWith(ep, "\"echo\"", good_payload).substr(1);
          break;
        }
        case 6:
          body = "{\"mod\\u0065l\":\"echo\"," + BodyWith(ep, "\"x\"", good_payload).substr(1);
          break;
        default:
          body = "{\"model\":{\"model\":\"echo\"}," + BodyWith(ep, "\"echo\"", good_payload).substr(1);
          break;
      }
      break;
    }
    case 7:
      c.sub = "empty_or_whitespace";
      body = r.Pick({"", " ", "\n\t\r ", std::string(1, '\0'), "\r\n\r\n"});
      break;
    case 8: {
      c.sub = "non_object_top_level";
      std::string v = ValidBody(r, ep);
      body = r.Pick({"[]", "\"str\"", "123", "null", "true", "false", "[" + v + "]",
                     "\"" + ReplaceAll(v, "\"", "\\\"") + "\"", "[" + v + "," + v + "]", "-1e5"});
      break;
    }
    case 9: {
      c.sub = "byte_mutation";
      body = ValidBody(r, ep);
      size_t k = r.Range(1, 5);
      for (size_t i = 0; i < k && !body.empty(); ++i) {
        size_t at = r.Below(body.size());
        switch (r.Below(5)) {
          case 0:
            body[at] = static_cast<char>(body[at] ^ (1 << r.Below(8)));
            break;
          case 1:
            body[at] = static_cast<char>(r.Below(256));
            break;
          case 2:
            body.insert(at, 1, static_cast<char>(r.Below(256)));
            break;
          case 3:
            body.erase(at, 1);
            break;
          default:
            body.insert(at, body.substr(at, r.Range(1, 20)));
            break;
        }
      }
      break;
    }
    case 10:
      c.sub = "trailing_data";
      body = ValidBody(r, ep) + r.Pick({"x", "}", "]", ",", "{}", ValidBody(r, ep), std::string(1, '\0'), "\xff", " ",
                                        "\n", "//c", "/*c*/", "\r\n\r\nGET / HTTP/1.1"});
      break;
    case 11: {
      c.sub = "json5_syntax";
      body = r.Pick(
          {"{model:\"echo\",messages:[]}", "{'model':'echo','messages':[]}", "{\"model\":\"echo\",\"messages\":[],}",
           "{\"model\":\"echo\",\"messages\":[1,2,],\"input\":\"x\"}",
           "/*c*/{\"model\":\"echo\",\"messages\":[],\"input\":\"x\"}",
           "{\"model\":\"echo\" // c\n,\"messages\":[],\"input\":\"x\"}",
           "{\"model\":\"echo\",\"messages\":[],\"input\":\"x\",\"t\":NaN}", "{\"model\":\"echo\" \"messages\":[]}",
           "{\"model\"=\"echo\"}", "{\"model\":\"echo\";\"input\":\"x\"}", "{\"model\":'echo',\"input\":\"x\"}",
           "{\"model\":\"echo\",,\"input\":\"x\"}", "{\"model\":\"echo\",\"input\":\"x\",\"messages\":[]",
           "{\"model\":\"echo\",\"input\":\"x\"}}", "{\"model\":`echo`}",
           "{\"model\":\"echo\",\"input\":\"x\",\"v\":undefined}", "{\"model\":\"echo\",\"input\":\"x\",\"v\":True}"});
      break;
    }
    case 12: {
      c.sub = "raw_control_chars";
      std::string ctl(1, static_cast<char>(r.Below(0x20)));
      body = InsertInString(r, ValidBody(r, ep), ctl);
      break;
    }
    case 13: {
      c.sub = "escapes";
      std::string e =
          r.Pick({"\\u0000", "\\ud800", "\\udc00", "\\ud800\\u0041", "\\uDFFF\\uD800", "\\uZZZZ", "\\u12", "\\x41",
                  "\\a", "\\'", "\\", "\\u00e9\\u0301", "\\/", "\\b\\f\\n\\r\\t", "\\U0001F600", "\\u{1F600}", "\\0"});
      body = InsertInString(r, ValidBody(r, ep), e);
      break;
    }
    case 14: {
      c.sub = "big_valid_under_limit";
      if (messages_ep && r.Chance(0.5)) {
        std::string m = "[";
        size_t k = r.Range(100, 1500);
        for (size_t i = 0; i < k; ++i) m += std::string(i ? "," : "") + "{\"role\":\"user\",\"content\":\"m\"}";
        body = BodyWith(ep, "\"echo\"", m + "]");
      } else {
        std::string text(r.Range(1000, 60000), 'w');
        body = BodyWith(ep, "\"echo\"",
                        messages_ep ? "[{\"role\":\"user\",\"content\":\"" + text + "\"}]" : "\"" + text + "\"");
      }
      break;
    }
    case 15:
      c.sub = "bom_prefix";
      body = "\xEF\xBB\xBF" + ValidBody(r, ep);
      break;
    case 16:
      c.sub = "weird_model_strings";
      body = BodyWith(ep,
                      "\"" +
                          r.Pick({"*", "?", "../../etc/passwd", "echo\\u0000", "echo\\r\\nX-Injected: 1", "\\u202e",
                                  std::string(256, 'a'), std::string(257, 'a'), " ", "echo ", "%00", "${jndi:ldap://x}",
                                  "\\ud83d\\ude00", "\\ud800", "{{model}}"}) +
                          "\"",
                      good_payload);
      break;
    case 17:
      c.sub = "content_type_variants";
      body = ValidBody(r, ep);
      c.bytes = "POST " + path + " HTTP/1.1\r\n" + kHost +
                r.Pick({"", "Content-Type: text/plain\r\n", "Content-Type: application/x-www-form-urlencoded\r\n",
                        "Content-Type: multipart/form-data; boundary=x\r\n",
                        "Content-Type: application/json; charset=utf-16\r\n",
                        "Content-Type: application/json; charset=latin1\r\n", "Content-Type: \r\n",
                        "Content-Encoding: gzip\r\nContent-Type: application/json\r\n"}) +
                ClHeader(body.size()) + "\r\n" + body;
      break;
    default:
      c.sub = "odd_content_shapes";
      body = BodyWith(ep, "\"echo\"",
                      messages_ep ? "[{\"role\":\"user\",\"content\":" +
                                        r.Pick({"[{\"type\":\"text\",\"text\":1}]",
                                                "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,x\"}}]",
                                                "[null,1,true,[]]", "{\"text\":\"x\"}", "[{\"text\":{\"nested\":[]}}]",
                                                "\"\"", "[]", "null", "[\"a\",\"b\"]"}) +
                                        "}]"
                                  : r.Pick({"[\"\"]", "[1,2,3]", "[[1],[2]]", "\"\"", "[{\"role\":1}]",
                                            "[{\"content\":[{\"text\":1}]}]"}));
      break;
  }
  if (c.bytes.empty()) c.bytes = Post(path, body);
  c.expect = MayBeAccepted(ep, body) ? Expect::kMay2xx : Expect::kReject;
  return c;
}

// A valid body of exactly n bytes (n >= ~100).
std::string BodyOfSize(int ep, size_t n) {
  std::string pre, post;
  if (ep == kChat || ep == kMessages) {
    pre = std::string("{\"model\":\"echo\",") + (ep == kMessages ? "\"max_tokens\":8," : "") +
          "\"messages\":[{\"role\":\"user\",\"content\":\"";
    post = "\"}]}";
  } else {
    pre = "{\"model\":\"echo\",\"input\":\"";
    post = "\"}";
  }
  size_t fill = n > pre.size() + post.size() ? n - pre.size() - post.size() : 0;
  return pre + std::string(fill, 'z') + post;
}

Case GenOversize(Rng& r) {
  Case c;
  int ep = static_cast<int>(r.Below(4));
  std::string path(kEndpoints[ep]);
  switch (r.Below(6)) {
    case 0:
      c.sub = "cl_over_limit";
      c.bytes = Post(path, BodyOfSize(ep, r.Range(kMaxBodyBytes + 1, 256 * 1024)));
      break;
    case 1:
      c.sub = "exactly_at_limit";
      c.bytes = Post(path, BodyOfSize(ep, kMaxBodyBytes));
      c.expect = Expect::kMay2xx;
      break;
    case 2:
      c.sub = "limit_plus_one";
      c.bytes = Post(path, BodyOfSize(ep, kMaxBodyBytes + 1));
      break;
    case 3:
      c.sub = "chunked_over_limit";
      c.bytes = "POST " + path + " HTTP/1.1\r\n" + kHost + kJsonType + "Transfer-Encoding: chunked\r\n\r\n" +
                Chunked(r, BodyOfSize(ep, r.Range(kMaxBodyBytes + 1, 200 * 1024)));
      break;
    case 4:
      c.sub = "body_1mib";
      c.bytes = Post(path, BodyOfSize(ep, r.Chance(0.2) ? 1024 * 1024 : r.Range(256 * 1024, 512 * 1024)));
      break;
    default:
      c.sub = "cl_over_limit_no_body";
      c.bytes = "POST " + path + " HTTP/1.1\r\n" + kHost + kJsonType + ClHeader(r.Range(kMaxBodyBytes + 1, 1u << 30)) +
                "\r\n" + std::string(r.Below(1000), '{');
      break;
  }
  return c;
}

Case GenStall(Rng& r) {
  Case c;
  c.half_close = false;  // the server's own timeouts must end these
  std::string body = ValidBody(r, kChat);
  std::string start = "POST /v1/chat/completions HTTP/1.1\r\n" + kHost + kJsonType;
  switch (r.Below(5)) {
    case 0:
      c.sub = "silent";
      break;
    case 1:
      c.sub = "partial_request_line";
      c.bytes = "POST /v1/chat";
      break;
    case 2:
      c.sub = "partial_headers";
      c.bytes = start;
      break;
    case 3:
      c.sub = "partial_body";
      c.bytes = start + ClHeader(body.size()) + "\r\n" + body.substr(0, body.size() / 2);
      break;
    default:
      c.sub = "partial_chunked";
      c.bytes = start + "Transfer-Encoding: chunked\r\n\r\n" + Hex(body.size()) + "\r\n" + body.substr(0, 5);
      break;
  }
  return c;
}

const std::string& KeepAliveRequest() {
  static const std::string s =
      Post("/v1/chat/completions", "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  return s;
}

Case GenValid(Rng& r) {
  Case c;
  c.expect = Expect::kMust2xx;
  c.half_close = false;
  int ep = static_cast<int>(r.Below(4));
  std::string path(kEndpoints[ep]);
  std::string body = ValidBody(r, ep);
  switch (r.Below(10)) {
    case 0:
      c.sub = "minimal_chat";
      c.bytes =
          Post("/v1/chat/completions", "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
               "Connection: close\r\n");
      break;
    case 1:
      c.sub = "post_close";
      c.bytes = Post(path, body, "Connection: close\r\n");
      break;
    case 2:
      c.sub = "post_keepalive";
      c.bytes = Post(path, body);
      break;
    case 3:
      c.sub = "post_with_extras";
      c.bytes = Post(path, body,
                     "User-Agent: hostile-test/1\r\nAccept: */*\r\nX-Aigis-Principal: spoofed\r\n"
                     "X-Request-Id: req-" +
                         std::to_string(r.Below(1000000)) + "\r\nanthropic-version: 2023-06-01\r\n");
      break;
    case 4:
      c.sub = "models_get";
      c.bytes = std::string("GET /v1/models HTTP/1.1\r\n") + kHost +
                (r.Chance(0.5) ? "anthropic-version: 2023-06-01\r\n" : "") + "Connection: close\r\n\r\n";
      break;
    case 5:
      c.sub = "chunked_request";
      c.bytes = "POST " + path + " HTTP/1.1\r\n" + kHost + kJsonType + "Transfer-Encoding: chunked\r\n\r\n" +
                Chunked(r, body);
      break;
    case 6:
      c.sub = "expect_100_continue";
      c.bytes = Post(path, body, "Expect: 100-continue\r\n");
      break;
    case 7:
      c.sub = "http10";
      c.bytes = Post(path, body, "", "HTTP/1.0");
      break;
    case 8:
      c.sub = "pipelined_two";
      c.responses = 2;
      c.bytes = Post(path, body) + Post("/v1/chat/completions",
                                        "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"2\"}]}",
                                        "Connection: close\r\n");
      break;
    default:
      c.sub = "second_on_keepalive";
      c.keepalive_prefix = true;
      c.bytes = Post(path, body, "Connection: close\r\n");
      break;
  }
  return c;
}

Case Generate(uint64_t seed, uint64_t index) {
  Rng r(SplitMix(seed ^ SplitMix(index + 1)));
  int total = 0;
  for (int w : kCatWeights) total += w;
  int pick = static_cast<int>(r.Below(static_cast<size_t>(total)));
  int cat = 0;
  while (pick >= kCatWeights[cat]) pick -= kCatWeights[cat++];
  Case c;
  switch (static_cast<Cat>(cat)) {
    case kFraming:
      c = GenFraming(r);
      break;
    case kHugeHeaders:
      c = GenHugeHeaders(r);
      break;
    case kLongUrl:
      c = GenLongUrl(r);
      break;
    case kBadUtf8:
      c = GenBadUtf8(r);
      break;
    case kRandomPath:
      c = GenRandomPath(r);
      break;
    case kJson:
      c = GenJson(r);
      break;
    case kOversize:
      c = GenOversize(r);
      break;
    case kStall:
      c = GenStall(r);
      break;
    default:
      c = GenValid(r);
      break;
  }
  c.cat = static_cast<Cat>(cat);
  // Some hostile inputs arrive on a connection that already served a request.
  if ((c.cat == kFraming || c.cat == kJson || c.cat == kBadUtf8 || c.cat == kRandomPath) && r.Chance(0.1)) {
    c.keepalive_prefix = true;
  }
  return c;
}

// ------------------------------------------------------------- client -----

int RemainingMs(Clock::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return d <= 0 ? 0 : static_cast<int>(std::min<int64_t>(d, 1 << 30));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int Connect(uint16_t port, Clock::time_point deadline, std::string* err, int* err_no) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *err_no = errno;
    *err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (rc != 0 && errno != EINPROGRESS) {
    *err_no = errno;
    *err = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int pr;
    do pr = ::poll(&p, 1, RemainingMs(deadline));
    while (pr < 0 && errno == EINTR);
    int so = 0;
    socklen_t len = sizeof so;
    if (pr <= 0) {
      *err_no = ETIMEDOUT;
      *err = "connect: timed out";
      ::close(fd);
      return -1;
    }
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
    if (so != 0) {
      *err_no = so;
      *err = std::string("connect: ") + std::strerror(so);
      ::close(fd);
      return -1;
    }
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  linger lg{1, 0};  // close with RST: no TIME_WAIT pile-up over ~10k connections, and one more abrupt client
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  return fd;
}

enum class WriteResult { kOk, kPeerClosed, kPeerAnswered, kTimeout };

WriteResult SendAll(int fd, std::string_view data, Clock::time_point deadline) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT | POLLIN, 0};
      int pr = ::poll(&p, 1, RemainingMs(deadline));
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) return WriteResult::kTimeout;
      if (!(p.revents & POLLOUT) && (p.revents & (POLLIN | POLLHUP | POLLERR))) return WriteResult::kPeerAnswered;
      continue;
    }
    return WriteResult::kPeerClosed;  // EPIPE, ECONNRESET, ...
  }
  return WriteResult::kOk;
}

struct HttpResult {
  enum Kind { kResponse, kNoResponse, kTimeout, kGarbage, kTruncated } kind = kNoResponse;
  int status = 0;       // of the final (non-1xx) response, 0 if none
  std::string headers;  // lower-cased header block
  std::string body;
  std::string detail;
  bool reset = false;
};

bool ParseStatusLine(std::string_view buf, int* status) {
  size_t eol = buf.find("\r\n");
  if (eol == std::string_view::npos) return false;
  std::string_view line = buf.substr(0, eol);
  if (line.size() < 12 || (line.substr(0, 9) != "HTTP/1.1 " && line.substr(0, 9) != "HTTP/1.0 ")) return false;
  int s = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    s = s * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return false;
  *status = s;
  return true;
}

// 1: complete, 0: need more, -1: malformed.
int DecodeChunked(std::string_view in, std::string* out, size_t* used) {
  size_t pos = 0;
  out->clear();
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) return 0;
    std::string_view line = in.substr(pos, eol - pos);
    line = line.substr(0, line.find(';'));
    if (line.empty() || line.size() > 15) return -1;
    size_t size = 0;
    for (char ch : line) {
      int h = ch >= '0' && ch <= '9'   ? ch - '0'
              : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                       : -1;
      if (h < 0) return -1;
      size = size * 16 + static_cast<size_t>(h);
    }
    pos = eol + 2;
    if (size == 0) {
      if (in.substr(pos, 2) == "\r\n") {
        *used = pos + 2;
        return 1;
      }
      size_t end = in.find("\r\n\r\n", pos);
      if (end == std::string_view::npos) return 0;
      *used = end + 4;
      return 1;
    }
    if (in.size() < pos + size + 2) return 0;
    if (in.substr(pos + size, 2) != "\r\n") return -1;
    out->append(in.substr(pos, size));
    pos += size + 2;
  }
}

std::optional<std::string> HeaderValue(const std::string& lower_headers, std::string_view name) {
  std::string key = "\r\n" + std::string(name) + ":";
  size_t p = lower_headers.find(key);
  if (p == std::string::npos) return std::nullopt;
  p += key.size();
  size_t e = lower_headers.find("\r\n", p);
  std::string v = lower_headers.substr(p, e == std::string::npos ? std::string::npos : e - p);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return v;
}

// Reads one response (skipping 1xx). With need_body, also its whole body.
// *carry holds bytes read past the previous response and receives the bytes
// read past this one.
HttpResult ReadResponse(int fd, Clock::time_point deadline, bool need_body, std::string* carry = nullptr) {
  HttpResult r;
  std::string buf;
  if (carry) buf.swap(*carry);
  bool eof = false;
  auto fill = [&]() -> bool {  // false: deadline passed
    char tmp[16384];
    for (;;) {
      int ms = RemainingMs(deadline);
      if (ms <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      int pr = ::poll(&p, 1, ms);
      if (pr < 0 && errno == EINTR) continue;
      if (pr <= 0) return false;
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n > 0) {
        buf.append(tmp, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) {
        eof = true;
        return true;
      }
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      eof = true;
      r.reset = true;
      return true;
    }
  };
  size_t hend;
  for (;;) {
    hend = buf.find("\r\n\r\n");
    if (hend != std::string::npos) {
      int st = 0;
      if (!ParseStatusLine(buf, &st)) {
        r.kind = HttpResult::kGarbage;
        r.detail = "unparseable status line: " + Escape(buf, 200);
        return r;
      }
      if (st >= 100 && st < 200) {
        buf.erase(0, hend + 4);
        continue;
      }
      r.status = st;
      break;
    }
    if (buf.size() > (1u << 20) ||
        (!buf.empty() && std::string_view("HTTP/").substr(0, std::min<size_t>(buf.size(), 5)) !=
                             std::string_view(buf).substr(0, std::min<size_t>(buf.size(), 5)))) {
      r.kind = HttpResult::kGarbage;
      r.detail = "not an HTTP response: " + Escape(buf, 200);
      return r;
    }
    if (eof) {
      if (buf.empty()) {
        r.kind = HttpResult::kNoResponse;
        return r;
      }
      int st = 0;
      if (ParseStatusLine(buf, &st)) r.status = st;
      r.kind = HttpResult::kTruncated;
      r.detail = "connection ended inside the response head: " + Escape(buf, 200);
      return r;
    }
    if (!fill()) {
      r.kind = HttpResult::kTimeout;
      r.detail = buf.empty() ? "no response bytes" : "partial response head: " + Escape(buf, 200);
      return r;
    }
  }
  r.headers = ToLower(buf.substr(0, hend + 2));
  buf.erase(0, hend + 4);
  if (!need_body || r.status == 204 || r.status == 304) {
    r.kind = HttpResult::kResponse;
    if (carry) *carry = std::move(buf);
    return r;
  }
  auto te = HeaderValue(r.headers, "transfer-encoding");
  auto cl = HeaderValue(r.headers, "content-length");
  if (te && te->find("chunked") != std::string::npos) {
    for (;;) {
      size_t used = 0;
      int d = DecodeChunked(buf, &r.body, &used);
      if (d == 1) {
        buf.erase(0, used);
        break;
      }
      if (d < 0) {
        r.kind = HttpResult::kGarbage;
        r.detail = "malformed chunked response body: " + Escape(buf, 200);
        return r;
      }
      if (eof) {
        r.kind = HttpResult::kTruncated;
        r.detail = "connection ended inside the chunked response body";
        return r;
      }
      if (!fill()) {
        r.kind = HttpResult::kTimeout;
        r.detail = "chunked response body incomplete";
        return r;
      }
    }
  } else if (cl) {
    size_t want = std::strtoull(cl->c_str(), nullptr, 10);
    while (buf.size() < want) {
      if (eof) {
        r.kind = HttpResult::kTruncated;
        r.detail = "connection ended after " + std::to_string(buf.size()) + " of " + *cl + " body bytes";
        return r;
      }
      if (!fill()) {
        r.kind = HttpResult::kTimeout;
        r.detail = "response body incomplete: " + std::to_string(buf.size()) + " of " + *cl + " bytes";
        return r;
      }
    }
    r.body = buf.substr(0, want);
    buf.erase(0, want);
  } else {
    while (!eof) {
      if (!fill()) {
        r.kind = HttpResult::kTimeout;
        r.detail = "close-delimited response body never ended";
        return r;
      }
    }
    r.body = buf;
    buf.clear();
  }
  r.kind = HttpResult::kResponse;
  if (carry) *carry = std::move(buf);
  return r;
}

std::string Describe(const HttpResult& r) {
  switch (r.kind) {
    case HttpResult::kResponse:
      return "HTTP " + std::to_string(r.status);
    case HttpResult::kNoResponse:
      return std::string("connection closed without a response") + (r.reset ? " (reset)" : "");
    case HttpResult::kTimeout:
      return "no complete response within 5 s (" + r.detail + ")";
    case HttpResult::kGarbage:
      return r.detail;
    case HttpResult::kTruncated:
      return "truncated response" + (r.status ? " (HTTP " + std::to_string(r.status) + ")" : "") + ": " + r.detail;
  }
  return "?";
}

HttpResult HttpGet(uint16_t port, std::string_view path) {
  auto deadline = Clock::now() + kResponseTimeout;
  std::string err;
  int err_no = 0;
  Fd fd(Connect(port, deadline, &err, &err_no));
  HttpResult r;
  if (fd.get() < 0) {
    r.kind = HttpResult::kNoResponse;
    r.detail = err;
    return r;
  }
  std::string req = "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (SendAll(fd.get(), req, deadline) != WriteResult::kOk) {
    r.kind = HttpResult::kNoResponse;
    r.detail = "write failed";
    return r;
  }
  return ReadResponse(fd.get(), deadline, true);
}

enum class Kind { k4xx, kClosed, k2xx, kFail };

struct Outcome {
  Kind kind;
  std::string why;
  int err_no = 0;
};

Outcome Classify(const Case& c, const HttpResult& r) {
  auto fail = [](std::string why) { return Outcome{Kind::kFail, std::move(why)}; };
  switch (r.kind) {
    case HttpResult::kTimeout:
      return fail("hang: " + Describe(r));
    case HttpResult::kGarbage:
      return fail("bad response: " + Describe(r));
    case HttpResult::kNoResponse:
      if (c.expect == Expect::kMust2xx) return fail("valid request: " + Describe(r));
      return {Kind::kClosed, ""};
    case HttpResult::kTruncated:
      if (c.expect == Expect::kMust2xx) return fail("valid request: " + Describe(r));
      if (r.status == 0) return {Kind::kClosed, ""};
      break;
    case HttpResult::kResponse:
      break;
  }
  int s = r.status;
  if (s >= 200 && s < 300) {
    if (c.expect == Expect::kReject) return fail("HTTP " + std::to_string(s) + " for an input that must be rejected");
    if (c.close_after_2xx) {
      auto conn = HeaderValue(r.headers, "connection");
      if (!conn || conn->find("close") == std::string::npos)
        return fail("HTTP " + std::to_string(s) +
                    " for a request with both Content-Length and Transfer-Encoding without closing the connection "
                    "(RFC 9112 §6.1)");
    }
    if (c.expect == Expect::kMust2xx && r.body.empty())
      return fail("HTTP " + std::to_string(s) + " with an empty body");
    return {Kind::k2xx, ""};
  }
  if (s >= 400 && s < 500) {
    if (c.expect == Expect::kMust2xx)
      return fail("valid request answered HTTP " + std::to_string(s) + ": " + Escape(r.body, 300));
    return {Kind::k4xx, ""};
  }
  if (s >= 500)
    return fail("server error HTTP " + std::to_string(s) + (r.headers.empty() ? "" : ": " + Escape(r.body, 300)));
  return fail("unexpected HTTP " + std::to_string(s));
}

Outcome RunCase(uint16_t port, const Case& c) {
  auto deadline = Clock::now() + kResponseTimeout;
  std::string err;
  int err_no = 0;
  Fd fd(Connect(port, deadline, &err, &err_no));
  if (fd.get() < 0) return {Kind::kFail, err, err_no};
  if (c.keepalive_prefix) {
    if (SendAll(fd.get(), KeepAliveRequest(), deadline) != WriteResult::kOk)
      return {Kind::kFail, "keep-alive prefix request: write failed"};
    HttpResult r = ReadResponse(fd.get(), deadline, true);
    if (r.kind != HttpResult::kResponse || r.status != 200)
      return {Kind::kFail, "keep-alive prefix request (valid): " + Describe(r)};
    deadline = Clock::now() + kResponseTimeout;
  }
  if (SendAll(fd.get(), c.bytes, deadline) == WriteResult::kTimeout)
    return {Kind::kFail, "hang: the server neither read the request nor answered within 5 s"};
  if (c.half_close) ::shutdown(fd.get(), SHUT_WR);
  deadline = Clock::now() + kResponseTimeout;
  std::string carry;
  HttpResult r = ReadResponse(fd.get(), deadline, !c.head, &carry);
  if (c.head && r.kind == HttpResult::kResponse) {
    // Whatever follows the head of a HEAD response would be taken for the
    // next response by a keep-alive client.
    if (carry.empty()) {
      pollfd p{fd.get(), POLLIN, 0};
      char tmp[512];
      if (::poll(&p, 1, 1000) > 0) {
        ssize_t n = ::recv(fd.get(), tmp, sizeof tmp, 0);
        if (n > 0) carry.assign(tmp, static_cast<size_t>(n));
      }
    }
    if (!carry.empty())
      return {Kind::kFail, "the response (HTTP " + std::to_string(r.status) +
                               ") to a HEAD request carries a body (RFC 9110 §9.3.2): " + Escape(carry, 160)};
  }
  Outcome o = Classify(c, r);
  for (int i = 1; i < c.responses && o.kind != Kind::kFail; ++i) {
    Outcome next = Classify(c, ReadResponse(fd.get(), deadline, true, &carry));
    if (next.kind != Kind::k2xx || o.kind != Kind::k2xx) o = next;
    if (o.kind == Kind::kFail) o.why = "pipelined response " + std::to_string(i + 1) + ": " + o.why;
  }
  return o;
}

// ------------------------------------------------------------- server -----

class ServerProcess {
 public:
  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  bool Start(const std::string& bin, const std::vector<std::string>& args, const std::string& dir,
             const std::string& out_path, const std::string& err_path, std::string* error) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    auto set_default = [&](const char* name, const char* value) {
      if (!std::getenv(name)) env.push_back(std::string(name) + "=" + value);
    };
    set_default("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0");
    // Fixed test-only secrets: aigis refuses to start without them.
    set_default("AIGIS_MASTER_KEY", "aG9zdGlsZS10ZXN0LW1hc3Rlci1rZXktMDEyMzQ1Njc4OWFiY2RlZg==");
    set_default("AIGIS_ADMIN_TOKEN", "hostile-test-admin-token-0123456789abcdef");
    set_default("UBSAN_OPTIONS", "print_stacktrace=1");
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || err < 0 || in < 0) {
      *error = std::string("open: ") + std::strerror(errno);
      return false;
    }
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
      *error = std::string("fork: ") + std::strerror(errno);
      return false;
    }
    if (pid == 0) {
#ifdef __linux__
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      if (::getppid() != parent) ::_exit(126);
#endif
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      if (::chdir(dir.c_str()) != 0) ::_exit(125);  // the default data_dir is relative
      ::execve(bin.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    (void)parent;
    ::close(out);
    ::close(err);
    ::close(in);
    pid_ = pid;
    return true;
  }

  // Reaps without blocking; false once the process has exited.
  bool Alive() {
    std::lock_guard lock(mu_);
    if (exited_) return false;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = st;
    }
    return !exited_;
  }

  // SIGTERM, then wait up to `limit`; SIGKILL after that. Returns false if killed.
  bool Stop(std::chrono::seconds limit) {
    if (!Alive()) return true;
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      if (!Alive()) return true;
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid_, SIGKILL);
    std::lock_guard lock(mu_);
    ::waitpid(pid_, &status_, 0);
    exited_ = true;
    return false;
  }

  int raw_status() {
    std::lock_guard lock(mu_);
    return status_;
  }
  std::string StatusText() {
    std::lock_guard lock(mu_);
    if (!exited_) return "running";
    if (WIFEXITED(status_)) return "exit status " + std::to_string(WEXITSTATUS(status_));
    if (WIFSIGNALED(status_))
      return "killed by signal " + std::to_string(WTERMSIG(status_)) + " (" + strsignal(WTERMSIG(status_)) + ")";
    return "status " + std::to_string(status_);
  }

 private:
  std::mutex mu_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

bool ParsePorts(const std::string& s, uint16_t* proxy, uint16_t* admin) {
  auto get = [&](std::string_view key, uint16_t* out) {
    size_t p = s.find("\"" + std::string(key) + "\"");
    if (p == std::string::npos) return false;
    p = s.find(':', p);
    if (p == std::string::npos) return false;
    unsigned long v = std::strtoul(s.c_str() + p + 1, nullptr, 10);
    if (v == 0 || v > 65535) return false;
    *out = static_cast<uint16_t>(v);
    return true;
  };
  return get("proxy", proxy) && get("admin", admin);
}

// ----------------------------------------------------------- bookkeeping --

struct Tally {
  uint64_t inputs = 0, c4xx = 0, closed = 0, c2xx = 0, fail = 0;
  void Add(Kind k) {
    ++inputs;
    switch (k) {
      case Kind::k4xx:
        ++c4xx;
        break;
      case Kind::kClosed:
        ++closed;
        break;
      case Kind::k2xx:
        ++c2xx;
        break;
      case Kind::kFail:
        ++fail;
        break;
    }
  }
};

struct Failure {
  uint64_t index;
  Case c;
  std::string why;
};

class Results {
 public:
  void Add(uint64_t index, const Case& c, const Outcome& o) {
    std::lock_guard lock(mu_);
    by_cat_[c.cat].Add(o.kind);
    by_sub_[std::string(kCatNames[c.cat]) + "/" + c.sub].Add(o.kind);
    if (o.kind == Kind::kFail) failures_.push_back({index, c, o.why});
  }
  void AddOther(std::string what) {
    std::lock_guard lock(mu_);
    other_failures_.push_back(std::move(what));
  }
  const Tally& cat(int i) const { return by_cat_[i]; }
  const std::map<std::string, Tally>& subs() const { return by_sub_; }
  const std::vector<Failure>& failures() const { return failures_; }
  const std::vector<std::string>& others() const { return other_failures_; }
  uint64_t failure_count() const { return failures_.size() + other_failures_.size(); }

 private:
  std::mutex mu_;
  Tally by_cat_[kNumCats];
  std::map<std::string, Tally> by_sub_;
  std::vector<Failure> failures_;
  std::vector<std::string> other_failures_;
};

// The last pattern is what aigis logs when an exception escapes a
// connection's coroutine (which is then torn down without its cleanup).
constexpr const char* kBadStderr[] = {"AddressSanitizer", "LeakSanitizer",
                                      "runtime error:", "UndefinedBehaviorSanitizer", "unhandled exception"};

bool StderrClean(const std::string& err, std::string* which) {
  which->clear();
  for (const char* bad : kBadStderr) {
    if (err.find(bad) != std::string::npos) *which += std::string(which->empty() ? "" : ", ") + "\"" + bad + "\"";
  }
  return which->empty();
}

// Lines cut to `width`, at most `max_lines` of them from `from`.
std::string Lines(std::string_view s, size_t from, size_t max_lines, size_t width = 240) {
  std::string out;
  size_t n = 0;
  while (from < s.size() && n < max_lines) {
    size_t eol = s.find('\n', from);
    std::string_view line = s.substr(from, eol == std::string_view::npos ? std::string_view::npos : eol - from);
    out += std::string(line.substr(0, width)) + (line.size() > width ? " [...]\n" : "\n");
    ++n;
    if (eol == std::string_view::npos) break;
    from = eol + 1;
  }
  return out;
}

// The first report of each bad pattern (stack frames cut short) and the tail.
std::string StderrExcerpt(const std::string& err) {
  std::string out;
  for (const char* bad : kBadStderr) {
    size_t p = err.find(bad);
    if (p == std::string::npos) continue;
    size_t bol = err.rfind('\n', p);
    out += "---- aigis stderr at the first \"" + std::string(bad) + "\" ----\n" +
           Lines(err, bol == std::string::npos ? 0 : bol + 1, 40);
  }
  size_t tail = err.size() > 6000 ? err.find('\n', err.size() - 6000) : 0;
  out += "---- aigis stderr (tail) ----\n" + Lines(err, tail == std::string::npos ? 0 : tail, 80) + "----";
  return out;
}

// ---------------------------------------------------------------- test ----

TEST(Hostile, SurvivesGeneratedHostileInputs) {
  const std::string bin = Env("AIGIS_BIN") ? Env("AIGIS_BIN") : AIGIS_BIN;
  ASSERT_FALSE(bin.empty()) << "no aigis binary: set AIGIS_BIN";
  ASSERT_EQ(::access(bin.c_str(), X_OK), 0) << "aigis binary not executable: " << bin;
  const uint64_t seed = EnvU64("AIGIS_HOSTILE_SEED", 0x41494749535f4831ULL);
  const std::optional<uint64_t> only =
      Env("AIGIS_HOSTILE_CASE") ? std::optional<uint64_t>(EnvU64("AIGIS_HOSTILE_CASE", 0)) : std::nullopt;
  const uint64_t max_inputs = only ? 1 : EnvU64("AIGIS_HOSTILE_INPUTS", 20000);
  const auto budget = std::chrono::seconds(EnvU64("AIGIS_HOSTILE_SECONDS", 200));
  const int threads = static_cast<int>(std::clamp<uint64_t>(EnvU64("AIGIS_HOSTILE_THREADS", 4), 1, 64));

  // Temp dir with config, ports file and the server's output.
  std::string tmpl = (Env("TMPDIR") ? std::string(Env("TMPDIR")) : std::string("/tmp")) + "/aigis-hostile-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
  const std::string dir = std::filesystem::absolute(tmpl).string();
  const std::string cfg = dir + "/aigis.yaml", ports = dir + "/ports.json";
  const std::string out_log = dir + "/stdout.log", err_log = dir + "/stderr.log";
  std::ofstream(cfg) << kConfig;
  std::printf("[hostile] binary %s\n[hostile] work dir %s\n[hostile] seed 0x%" PRIx64 ", up to %" PRIu64
              " inputs / %lld s, %d connections\n",
              bin.c_str(), dir.c_str(), seed, max_inputs, static_cast<long long>(budget.count()), threads);
  std::fflush(stdout);

  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start(bin, {"serve", "--config", cfg, "--ports-file", ports}, dir, out_log, err_log, &error))
      << error;
  auto stderr_tail = [&] { return StderrExcerpt(ReadFile(err_log)); };

  uint16_t proxy = 0, admin = 0;
  {
    auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline && !ParsePorts(ReadFile(ports), &proxy, &admin)) {
      if (!server.Alive()) break;
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(proxy && admin) << "aigis did not write its ports within 30 s (" << server.StatusText() << ")\n"
                                << stderr_tail();
  }
  std::printf("[hostile] aigis listening: proxy %u, admin %u\n", proxy, admin);
  std::fflush(stdout);

  Results results;
  std::mutex health_mu;
  uint64_t health_checks = 0;
  bool death_reported = false;
  auto report_death = [&](const char* when) {  // under health_mu
    if (!death_reported) results.AddOther(std::string("aigis died (") + when + "): " + server.StatusText());
    death_reported = true;
  };
  auto health = [&](const char* when) -> bool {
    std::lock_guard lock(health_mu);
    ++health_checks;
    if (!server.Alive()) {
      report_death(when);
      return false;
    }
    HttpResult h = HttpGet(admin, "/healthz");
    if (h.kind != HttpResult::kResponse || h.status != 200) {
      results.AddOther(std::string("GET /healthz on the admin port (") + when + "): " + Describe(h));
      return server.Alive();
    }
    return true;
  };

  std::atomic<uint64_t> next{0}, sent{0};
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  auto worker = [&] {
    for (;;) {
      if (stop.load() || Clock::now() - t0 > budget) return;
      uint64_t i = next.fetch_add(1);
      if (i >= max_inputs) return;
      uint64_t index = only ? *only : i;
      if (i > 0 && i % 1000 == 0 && !health("periodic check")) {
        stop = true;
        return;
      }
      Case c = Generate(seed, index);
      if (only) {
        std::printf("[hostile] input %" PRIu64 ": %s/%s expect %s%s%s\n  %s\n", index, kCatNames[c.cat], c.sub.c_str(),
                    ExpectName(c.expect), c.keepalive_prefix ? " (after a keep-alive request)" : "",
                    c.half_close ? "" : " (no half-close)", Escape(c.bytes, 4000).c_str());
      }
      Outcome o = RunCase(proxy, c);
      sent.fetch_add(1);
      results.Add(index, c, o);
      if (o.kind == Kind::kFail && o.err_no == ECONNREFUSED && !server.Alive()) {
        std::lock_guard lock(health_mu);
        report_death("connection refused");
        stop = true;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();

  // Still healthy at the end, and /metrics answers.
  bool alive = health("after the last input");
  if (alive) {
    HttpResult m = HttpGet(admin, "/metrics");
    if (m.kind != HttpResult::kResponse || m.status != 200)
      results.AddOther("GET /metrics on the admin port: " + Describe(m));
  }
  const bool stopped_in_time = server.Stop(30s);
  if (!stopped_in_time) results.AddOther("aigis did not exit within 30 s of SIGTERM (SIGKILLed)");
  const int st = server.raw_status();
  const bool clean_exit = stopped_in_time && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (stopped_in_time && !clean_exit && !death_reported)
    results.AddOther("aigis ended: " + server.StatusText() + " (expected exit status 0)");
  const std::string err_text = ReadFile(err_log);
  std::string which;
  const bool err_clean = StderrClean(err_text, &which);
  if (!err_clean) results.AddOther("aigis stderr contains " + which);

  // Summary.
  std::printf("\n[hostile] %-16s %8s %8s %8s %8s %8s\n", "category", "inputs", "4xx", "closed", "2xx", "FAIL");
  Tally total;
  for (int i = 0; i < kNumCats; ++i) {
    const Tally& t = results.cat(i);
    std::printf("[hostile] %-16s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n", kCatNames[i],
                t.inputs, t.c4xx, t.closed, t.c2xx, t.fail);
    total.inputs += t.inputs, total.c4xx += t.c4xx, total.closed += t.closed, total.c2xx += t.c2xx,
        total.fail += t.fail;
  }
  std::printf("[hostile] %-16s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n", "TOTAL",
              total.inputs, total.c4xx, total.closed, total.c2xx, total.fail);
  std::printf("[hostile] %" PRIu64 " inputs in %.1f s (%.0f/s), %" PRIu64 " health checks, aigis %s\n", total.inputs,
              elapsed, elapsed > 0 ? static_cast<double>(total.inputs) / elapsed : 0.0, health_checks,
              server.StatusText().c_str());
  std::printf("[hostile] sub-cases answered 2xx (allowed) or failing:\n");
  for (const auto& [name, t] : results.subs()) {
    if (t.c2xx == 0 && t.fail == 0) continue;
    if (name.rfind("valid/", 0) == 0 && t.fail == 0) continue;
    std::printf("[hostile]   %-48s %6" PRIu64 " inputs: %6" PRIu64 " 4xx %6" PRIu64 " closed %6" PRIu64 " 2xx %6" PRIu64
                " FAIL\n",
                name.c_str(), t.inputs, t.c4xx, t.closed, t.c2xx, t.fail);
  }

  // Failure details (and the inputs, for replay).
  const auto& fails = results.failures();
  if (!fails.empty()) {
    std::filesystem::create_directories(dir + "/failures");
    std::printf(
        "\n[hostile] %zu failing inputs (replay one with AIGIS_HOSTILE_CASE=<index> AIGIS_HOSTILE_SEED=0x%" PRIx64
        "):\n",
        fails.size(), seed);
    std::map<std::string, size_t> reasons;
    for (const auto& f : fails) {
      std::string why = f.why.substr(0, std::min(f.why.find(": "), size_t{90}));
      ++reasons[std::string(kCatNames[f.c.cat]) + "/" + f.c.sub + ": " + why];
    }
    std::printf("[hostile] failures by sub-case and reason:\n");
    for (const auto& [k, n] : reasons) std::printf("[hostile]   %6zu  %s\n", n, k.c_str());
    size_t shown = 0;
    std::map<std::string, size_t> per_reason;
    for (const auto& f : fails) {
      std::string key = std::string(kCatNames[f.c.cat]) + "/" + f.c.sub + ": " + f.why.substr(0, 60);
      if (per_reason[key]++ >= 3 || shown >= 40) continue;
      ++shown;
      std::string file = dir + "/failures/input-" + std::to_string(f.index) + ".bin";
      std::ofstream(file, std::ios::binary) << f.c.bytes;
      std::printf("[hostile] #%" PRIu64 " %s/%s (expect %s%s): %s\n  input (%zu bytes, %s): %s\n", f.index,
                  kCatNames[f.c.cat], f.c.sub.c_str(), ExpectName(f.c.expect),
                  f.c.keepalive_prefix ? ", after a keep-alive request" : "", f.why.c_str(), f.c.bytes.size(),
                  file.c_str(), Escape(f.c.bytes, 600).c_str());
    }
  }
  for (const auto& o : results.others()) std::printf("[hostile] FAILURE: %s\n", o.c_str());
  std::fflush(stdout);

  EXPECT_GE(sent.load(), only ? 1 : std::min<uint64_t>(10000, max_inputs)) << "too few inputs sent";
  EXPECT_EQ(total.fail, 0u) << total.fail << " inputs failed (see above)";
  EXPECT_TRUE(results.others().empty()) << "server-level failures (see above)";
  EXPECT_TRUE(stopped_in_time) << "aigis did not stop within 30 s of SIGTERM";
  EXPECT_TRUE(clean_exit) << "aigis: " << server.StatusText();
  EXPECT_TRUE(err_clean) << "sanitizer report or unhandled exception in aigis stderr: " << which;
  if (::testing::Test::HasFailure()) {
    std::printf("%s\n[hostile] kept %s for inspection\n", stderr_tail().c_str(), dir.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::fflush(stdout);
}

}  // namespace

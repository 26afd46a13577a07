// A bounded tree-walking evaluator for the CEL subset used by OpenFGA
// conditions: literals, parameters, arithmetic, comparisons, logic, the
// ternary, `in`, indexing and member access, list/map literals, size,
// contains/startsWith/endsWith/matches, int/uint/double/string conversions,
// timestamp/duration, and OpenFGA's ipaddress extension (in_cidr).
#include "authz/cel.h"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <unordered_map>
#include <variant>

namespace aigis::authz::cel {

// ------------------------------------------------------------------ values --

struct Value;
using List = std::vector<Value>;
using Map = std::map<std::string, Value>;  // string keys only (JSON contexts)

struct Duration { int64_t ns; };
struct Timestamp { int64_t ns; };
struct IpAddr {
  std::array<uint8_t, 16> bytes{};
  bool v6 = false;
};
struct Null {};

struct Value {
  std::variant<Null, bool, int64_t, uint64_t, double, std::string, Duration, Timestamp, IpAddr,
               std::shared_ptr<const List>, std::shared_ptr<const Map>>
      v;
};

namespace {

Status Err(std::string m) { return InvalidArgument(std::move(m)); }

const char* TypeName(const Value& v) {
  switch (v.v.index()) {
    case 0: return "null_type";
    case 1: return "bool";
    case 2: return "int";
    case 3: return "uint";
    case 4: return "double";
    case 5: return "string";
    case 6: return "google.protobuf.Duration";
    case 7: return "google.protobuf.Timestamp";
    case 8: return "ipaddress";
    case 9: return "list";
    case 10: return "map";
  }
  return "?";
}

// ---- time parsing ----

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<Timestamp> ParseTimestamp(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto num = [&](size_t pos, size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20) return std::nullopt;
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), se = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !se || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (*mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 || *se > 60) return std::nullopt;
  size_t p = 19;
  int64_t frac = 0;
  if (p < s.size() && s[p] == '.') {
    ++p;
    int digits = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      if (digits < 9) frac = frac * 10 + (s[p] - '0'), ++digits;
      ++p;
    }
    if (digits == 0) return std::nullopt;
    while (digits++ < 9) frac *= 10;
  }
  if (p >= s.size()) return std::nullopt;
  int64_t offset = 0;
  if (s[p] == 'Z' || s[p] == 'z') {
    ++p;
  } else if (s[p] == '+' || s[p] == '-') {
    auto oh = num(p + 1, 2), om = num(p + 4, 2);
    if (!oh || !om || s[p + 3] != ':') return std::nullopt;
    offset = (*oh * 60 + *om) * 60;
    if (s[p] == '-') offset = -offset;
    p += 6;
  } else {
    return std::nullopt;
  }
  if (p != s.size()) return std::nullopt;
  int64_t days = DaysFromCivil(*y, *mo, *d);
  int64_t secs = days * 86400 + *h * 3600 + *mi * 60 + *se - offset;
  return Timestamp{secs * 1000000000 + frac};
}

std::optional<Duration> ParseDurationText(std::string_view s) {
  // Go's time.ParseDuration: [-+]? (number unit)+ | "0"
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) neg = s[0] == '-', s.remove_prefix(1);
  if (s == "0") return Duration{0};
  if (s.empty()) return std::nullopt;
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    long double v = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0'), digits = true;
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') v += (s[i++] - '0') * scale, scale /= 10, digits = true;
    }
    if (!digits) return std::nullopt;
    s.remove_prefix(i);
    static const std::pair<std::string_view, int64_t> kUnits[] = {
        {"ns", 1}, {"us", 1000}, {"\xC2\xB5s", 1000}, {"\xCE\xBCs", 1000}, {"ms", 1000000},
        {"s", 1000000000LL}, {"m", 60000000000LL}, {"h", 3600000000000LL}};
    bool found = false;
    // Longest match first among units sharing a prefix ("ms" before "m").
    for (std::string_view u : {"ns", "us", "\xC2\xB5s", "\xCE\xBCs", "ms", "s", "h", "m"}) {
      if (s.substr(0, u.size()) == u) {
        for (const auto& [name, mult] : kUnits) {
          if (name == u) total += v * mult;
        }
        s.remove_prefix(u.size());
        found = true;
        break;
      }
    }
    if (!found) return std::nullopt;
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  }
  int64_t ns = static_cast<int64_t>(total);
  return Duration{neg ? -ns : ns};
}

std::optional<IpAddr> ParseIp(std::string_view s) {
  IpAddr ip;
  if (s.find(':') == std::string_view::npos) {
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
      if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
      int v = 0, n = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (s[i++] - '0');
        if (++n > 3 || v > 255) return std::nullopt;
      }
      if (n > 1 && s[i - n] == '0') return std::nullopt;  // no leading zeros (Go's netip)
      ip.bytes[parts++] = static_cast<uint8_t>(v);
      if (parts < 4) {
        if (i >= s.size() || s[i] != '.') return std::nullopt;
        ++i;
      }
    }
    if (i != s.size()) return std::nullopt;
    return ip;
  }
  // IPv6: groups separated by ':' with at most one "::".
  ip.v6 = true;
  std::vector<uint16_t> head, tail;
  bool gap = false;
  size_t i = 0;
  if (s.substr(0, 2) == "::") gap = true, i = 2;
  else if (!s.empty() && s[0] == ':') return std::nullopt;
  while (i < s.size()) {
    uint32_t v = 0;
    int n = 0;
    while (i < s.size() && std::isxdigit(static_cast<unsigned char>(s[i]))) {
      v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0'
                                                                                         : (std::tolower(s[i]) - 'a' + 10));
      ++i;
      if (++n > 4) return std::nullopt;
    }
    if (n == 0) return std::nullopt;
    (gap ? tail : head).push_back(static_cast<uint16_t>(v));
    if (i == s.size()) break;
    if (s[i] != ':') return std::nullopt;
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (gap) return std::nullopt;
      gap = true;
      ++i;
    } else if (i == s.size()) {
      return std::nullopt;
    }
  }
  size_t groups = head.size() + tail.size();
  if (gap ? groups > 7 : groups != 8) return std::nullopt;
  std::vector<uint16_t> all = head;
  all.resize(8 - tail.size(), 0);
  all.insert(all.end(), tail.begin(), tail.end());
  for (int g = 0; g < 8; ++g) ip.bytes[2 * g] = all[g] >> 8, ip.bytes[2 * g + 1] = all[g] & 0xff;
  return ip;
}

Result<bool> InCidr(const IpAddr& ip, std::string_view cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string_view::npos) return Err("invalid CIDR '" + std::string(cidr) + "'");
  auto net = ParseIp(cidr.substr(0, slash));
  std::string_view bits_text = cidr.substr(slash + 1);
  int bits = 0;
  if (!net || bits_text.empty() || bits_text.size() > 3) return Err("invalid CIDR '" + std::string(cidr) + "'");
  for (char c : bits_text) {
    if (c < '0' || c > '9') return Err("invalid CIDR '" + std::string(cidr) + "'");
    bits = bits * 10 + (c - '0');
  }
  if (bits > (net->v6 ? 128 : 32)) return Err("invalid CIDR '" + std::string(cidr) + "'");
  if (net->v6 != ip.v6) return false;
  for (int b = 0; b < bits; ++b) {
    int byte = b / 8, bit = 7 - b % 8;
    if (((ip.bytes[byte] >> bit) & 1) != ((net->bytes[byte] >> bit) & 1)) return false;
  }
  return true;
}

}  // namespace

// -------------------------------------------------------------------- AST --

enum class Op : uint8_t {
  kLiteral, kIdent, kList, kMap, kNot, kNeg, kAnd, kOr, kCond,
  kEq, kNe, kLt, kLe, kGt, kGe, kIn, kAdd, kSub, kMul, kDiv, kMod,
  kIndex, kSelect, kCall,  // kCall: name, children = [target?] + args; has_target
};

struct Node {
  Op op = Op::kLiteral;
  Value literal;
  std::string name;  // ident, selected field, function
  bool has_target = false;
  std::vector<const Node*> kids;
};

Program::Program() = default;
Program::~Program() = default;

// ----------------------------------------------------------------- parser --

struct Compiler {
  std::string_view src;
  size_t pos = 0;
  Program* prog;
  size_t depth = 0;

  Status Fail(const std::string& what) const {
    return Err("validation_error: invalid condition expression for '" + prog->condition_.name + "': " + what +
               " at offset " + std::to_string(pos));
  }
  Result<Node*> New(Op op) {
    if (prog->nodes_.size() >= kMaxNodes) return Fail("expression too large");
    prog->nodes_.push_back(std::make_unique<Node>());
    prog->nodes_.back()->op = op;
    return prog->nodes_.back().get();
  }
  void Skip() {
    while (pos < src.size()) {
      if (std::isspace(static_cast<unsigned char>(src[pos]))) {
        ++pos;
      } else if (src.substr(pos, 2) == "//") {
        while (pos < src.size() && src[pos] != '\n') ++pos;
      } else {
        break;
      }
    }
  }
  bool Eat(std::string_view tok) {
    Skip();
    if (src.substr(pos, tok.size()) != tok) return false;
    // Don't split "<=" as "<", "==" as "=", "&&" etc.
    if (tok.size() == 1 && pos + 1 < src.size()) {
      char n = src[pos + 1];
      if ((tok == "<" || tok == ">" || tok == "!" || tok == "=") && n == '=') return false;
    }
    pos += tok.size();
    return true;
  }
  bool EatWord(std::string_view w) {
    Skip();
    if (src.substr(pos, w.size()) != w) return false;
    size_t e = pos + w.size();
    if (e < src.size() && (std::isalnum(static_cast<unsigned char>(src[e])) || src[e] == '_')) return false;
    pos = e;
    return true;
  }
  struct DepthGuard {
    Compiler* c;
    explicit DepthGuard(Compiler* c) : c(c) { ++c->depth; }
    ~DepthGuard() { --c->depth; }
  };

  Result<Node*> Expr() {
    DepthGuard g(this);
    if (depth > kMaxDepth) return Fail("expression nested too deeply");
    ASSIGN_OR_RETURN(Node * c, Or());
    if (!Eat("?")) return c;
    ASSIGN_OR_RETURN(Node * a, Or());
    if (!Eat(":")) return Fail("expected ':'");
    ASSIGN_OR_RETURN(Node * b, Expr());
    ASSIGN_OR_RETURN(Node * n, New(Op::kCond));
    n->kids = {c, a, b};
    return n;
  }
  Result<Node*> Binary(Op op, Node* l, Node* r) {
    ASSIGN_OR_RETURN(Node * n, New(op));
    n->kids = {l, r};
    return n;
  }
  Result<Node*> Or() {
    ASSIGN_OR_RETURN(Node * l, And());
    while (Eat("||")) {
      ASSIGN_OR_RETURN(Node * r, And());
      ASSIGN_OR_RETURN(l, Binary(Op::kOr, l, r));
    }
    return l;
  }
  Result<Node*> And() {
    ASSIGN_OR_RETURN(Node * l, Rel());
    while (Eat("&&")) {
      ASSIGN_OR_RETURN(Node * r, Rel());
      ASSIGN_OR_RETURN(l, Binary(Op::kAnd, l, r));
    }
    return l;
  }
  Result<Node*> Rel() {
    ASSIGN_OR_RETURN(Node * l, Add());
    for (;;) {
      Op op;
      if (Eat("==")) op = Op::kEq;
      else if (Eat("!=")) op = Op::kNe;
      else if (Eat("<=")) op = Op::kLe;
      else if (Eat(">=")) op = Op::kGe;
      else if (Eat("<")) op = Op::kLt;
      else if (Eat(">")) op = Op::kGt;
      else if (EatWord("in")) op = Op::kIn;
      else return l;
      ASSIGN_OR_RETURN(Node * r, Add());
      ASSIGN_OR_RETURN(l, Binary(op, l, r));
    }
  }
  Result<Node*> Add() {
    ASSIGN_OR_RETURN(Node * l, Mul());
    for (;;) {
      Op op;
      if (Eat("+")) op = Op::kAdd;
      else if (Eat("-")) op = Op::kSub;
      else return l;
      ASSIGN_OR_RETURN(Node * r, Mul());
      ASSIGN_OR_RETURN(l, Binary(op, l, r));
    }
  }
  Result<Node*> Mul() {
    ASSIGN_OR_RETURN(Node * l, Unary());
    for (;;) {
      Op op;
      if (Eat("*")) op = Op::kMul;
      else if (Eat("/")) op = Op::kDiv;
      else if (Eat("%")) op = Op::kMod;
      else return l;
      ASSIGN_OR_RETURN(Node * r, Unary());
      ASSIGN_OR_RETURN(l, Binary(op, l, r));
    }
  }
  Result<Node*> Unary() {
    DepthGuard g(this);
    if (depth > kMaxDepth) return Fail("expression nested too deeply");
    if (Eat("!")) {
      ASSIGN_OR_RETURN(Node * x, Unary());
      ASSIGN_OR_RETURN(Node * n, New(Op::kNot));
      n->kids = {x};
      return n;
    }
    if (Eat("-")) {
      Skip();
      // A negative numeric literal is folded (so that -9223372036854775808 parses).
      if (pos < src.size() && std::isdigit(static_cast<unsigned char>(src[pos]))) return Number(true);
      ASSIGN_OR_RETURN(Node * x, Unary());
      ASSIGN_OR_RETURN(Node * n, New(Op::kNeg));
      n->kids = {x};
      return n;
    }
    return Postfix();
  }
  Result<std::vector<const Node*>> Args(std::string_view close) {
    std::vector<const Node*> args;
    if (Eat(close)) return args;
    for (;;) {
      ASSIGN_OR_RETURN(Node * a, Expr());
      args.push_back(a);
      if (Eat(close)) return args;
      if (!Eat(",")) return Fail("expected ',' or '" + std::string(close) + "'");
      if (Eat(close)) return args;  // trailing comma
    }
  }
  Result<Node*> Postfix() {
    ASSIGN_OR_RETURN(Node * x, Primary());
    for (;;) {
      if (Eat(".")) {
        Skip();
        std::string id = Ident();
        if (id.empty()) return Fail("expected a field or method name");
        if (Eat("(")) {
          ASSIGN_OR_RETURN(auto args, Args(")"));
          ASSIGN_OR_RETURN(Node * n, New(Op::kCall));
          n->name = id;
          n->has_target = true;
          n->kids.push_back(x);
          n->kids.insert(n->kids.end(), args.begin(), args.end());
          x = n;
        } else {
          ASSIGN_OR_RETURN(Node * n, New(Op::kSelect));
          n->name = id;
          n->kids = {x};
          x = n;
        }
      } else if (Eat("[")) {
        ASSIGN_OR_RETURN(Node * i, Expr());
        if (!Eat("]")) return Fail("expected ']'");
        ASSIGN_OR_RETURN(x, Binary(Op::kIndex, x, i));
      } else {
        return x;
      }
    }
  }
  std::string Ident() {
    size_t s = pos;
    if (pos < src.size() && (std::isalpha(static_cast<unsigned char>(src[pos])) || src[pos] == '_')) {
      while (pos < src.size() && (std::isalnum(static_cast<unsigned char>(src[pos])) || src[pos] == '_')) ++pos;
    }
    return std::string(src.substr(s, pos - s));
  }
  Result<Node*> Number(bool negative) {
    size_t s = pos;
    bool is_double = false, hex = false;
    if (src.substr(pos, 2) == "0x" || src.substr(pos, 2) == "0X") {
      hex = true;
      pos += 2;
      while (pos < src.size() && std::isxdigit(static_cast<unsigned char>(src[pos]))) ++pos;
    } else {
      while (pos < src.size() && std::isdigit(static_cast<unsigned char>(src[pos]))) ++pos;
      if (pos + 1 < src.size() && src[pos] == '.' && std::isdigit(static_cast<unsigned char>(src[pos + 1]))) {
        is_double = true;
        ++pos;
        while (pos < src.size() && std::isdigit(static_cast<unsigned char>(src[pos]))) ++pos;
      }
      if (pos < src.size() && (src[pos] == 'e' || src[pos] == 'E')) {
        is_double = true;
        ++pos;
        if (pos < src.size() && (src[pos] == '+' || src[pos] == '-')) ++pos;
        if (pos >= src.size() || !std::isdigit(static_cast<unsigned char>(src[pos]))) return Fail("bad exponent");
        while (pos < src.size() && std::isdigit(static_cast<unsigned char>(src[pos]))) ++pos;
      }
    }
    std::string text(src.substr(s, pos - s));
    ASSIGN_OR_RETURN(Node * n, New(Op::kLiteral));
    if (is_double) {
      double d = std::strtod(text.c_str(), nullptr);
      n->literal.v = negative ? -d : d;
      return n;
    }
    bool is_uint = pos < src.size() && (src[pos] == 'u' || src[pos] == 'U');
    if (is_uint) ++pos;
    errno = 0;
    unsigned long long u = std::strtoull(hex ? text.c_str() + 2 : text.c_str(), nullptr, hex ? 16 : 10);
    if (errno == ERANGE || (hex && text.size() == 2)) return Fail("integer literal out of range");
    if (is_uint) {
      if (negative) return Fail("negative uint literal");
      n->literal.v = static_cast<uint64_t>(u);
    } else if (negative) {
      if (u > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max()) + 1) return Fail("integer literal out of range");
      n->literal.v = static_cast<int64_t>(0 - u);
    } else {
      if (u > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) return Fail("integer literal out of range");
      n->literal.v = static_cast<int64_t>(u);
    }
    return n;
  }
  Result<std::string> String() {
    bool raw = false;
    if (src[pos] == 'r' || src[pos] == 'R') raw = true, ++pos;
    char q = src[pos];
    bool triple = src.substr(pos, 3) == std::string(3, q);
    pos += triple ? 3 : 1;
    std::string out;
    for (;;) {
      if (pos >= src.size()) return Fail("unterminated string");
      char c = src[pos];
      if (triple ? src.substr(pos, 3) == std::string(3, q) : c == q) {
        pos += triple ? 3 : 1;
        return out;
      }
      if (!triple && c == '\n') return Fail("newline in string");
      if (c == '\\' && !raw) {
        if (++pos >= src.size()) return Fail("unterminated string");
        char e = src[pos++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case '\\': out += '\\'; break;
          case '"': out += '"'; break;
          case '\'': out += '\''; break;
          case '`': out += '`'; break;
          case '?': out += '?'; break;
          case 'a': out += '\a'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'v': out += '\v'; break;
          default: return Fail(std::string("unsupported escape \\") + e);
        }
        continue;
      }
      out += c;
      ++pos;
    }
  }
  Result<Node*> Primary() {
    Skip();
    if (pos >= src.size()) return Fail("unexpected end of expression");
    char c = src[pos];
    if (std::isdigit(static_cast<unsigned char>(c))) return Number(false);
    if (c == '"' || c == '\'' ||
        ((c == 'r' || c == 'R') && pos + 1 < src.size() && (src[pos + 1] == '"' || src[pos + 1] == '\''))) {
      ASSIGN_OR_RETURN(std::string s, String());
      ASSIGN_OR_RETURN(Node * n, New(Op::kLiteral));
      n->literal.v = std::move(s);
      return n;
    }
    if (Eat("(")) {
      ASSIGN_OR_RETURN(Node * x, Expr());
      if (!Eat(")")) return Fail("expected ')'");
      return x;
    }
    if (Eat("[")) {
      ASSIGN_OR_RETURN(auto items, Args("]"));
      ASSIGN_OR_RETURN(Node * n, New(Op::kList));
      n->kids = std::move(items);
      return n;
    }
    if (Eat("{")) {
      ASSIGN_OR_RETURN(Node * n, New(Op::kMap));
      if (Eat("}")) return n;
      for (;;) {
        ASSIGN_OR_RETURN(Node * k, Expr());
        if (!Eat(":")) return Fail("expected ':' in map literal");
        ASSIGN_OR_RETURN(Node * v, Expr());
        n->kids.push_back(k);
        n->kids.push_back(v);
        if (Eat("}")) return n;
        if (!Eat(",")) return Fail("expected ',' or '}'");
        if (Eat("}")) return n;
      }
    }
    std::string id = Ident();
    if (id.empty()) return Fail(std::string("unexpected '") + c + "'");
    if (id == "true" || id == "false") {
      ASSIGN_OR_RETURN(Node * n, New(Op::kLiteral));
      n->literal.v = id == "true";
      return n;
    }
    if (id == "null") return New(Op::kLiteral);
    if (Eat("(")) {
      static const char* kFunctions[] = {"size", "timestamp", "duration", "int", "uint", "double",
                                         "string", "bool", "ipaddress", "matches", "contains",
                                         "startsWith", "endsWith", "type"};
      if (std::none_of(std::begin(kFunctions), std::end(kFunctions), [&](const char* f) { return id == f; })) {
        return Fail("undeclared reference to '" + id + "'");
      }
      ASSIGN_OR_RETURN(auto args, Args(")"));
      ASSIGN_OR_RETURN(Node * n, New(Op::kCall));
      n->name = id;
      n->kids = std::move(args);
      return n;
    }
    const auto& params = prog->condition_.parameters;
    if (std::none_of(params.begin(), params.end(), [&](const ConditionParameter& p) { return p.name == id; })) {
      return Fail("undeclared reference to '" + id + "'");
    }
    ASSIGN_OR_RETURN(Node * n, New(Op::kIdent));
    n->name = id;
    return n;
  }
};


// -------------------------------------------------------------- evaluator --

namespace {

std::optional<int> Cmp3(const Value& a, const Value& b) {
  // Numeric comparisons across int, uint and double (CEL heterogeneous).
  auto as_num = [](const Value& v) -> std::optional<long double> {
    if (auto* i = std::get_if<int64_t>(&v.v)) return static_cast<long double>(*i);
    if (auto* u = std::get_if<uint64_t>(&v.v)) return static_cast<long double>(*u);
    if (auto* d = std::get_if<double>(&v.v)) return static_cast<long double>(*d);
    return std::nullopt;
  };
  auto na = as_num(a), nb = as_num(b);
  if (na && nb) {
    if (std::isnan(*na) || std::isnan(*nb)) return std::nullopt;
    return *na < *nb ? -1 : *na > *nb ? 1 : 0;
  }
  if (a.v.index() != b.v.index()) return std::nullopt;
  auto cmp = [](auto x, auto y) { return x < y ? -1 : x > y ? 1 : 0; };
  if (auto* s = std::get_if<std::string>(&a.v)) return cmp(s->compare(std::get<std::string>(b.v)), 0);
  if (auto* x = std::get_if<bool>(&a.v)) return cmp(*x, std::get<bool>(b.v));
  if (auto* x = std::get_if<Duration>(&a.v)) return cmp(x->ns, std::get<Duration>(b.v).ns);
  if (auto* x = std::get_if<Timestamp>(&a.v)) return cmp(x->ns, std::get<Timestamp>(b.v).ns);
  return std::nullopt;
}

bool Equal(const Value& a, const Value& b) {
  if (auto c = Cmp3(a, b)) return *c == 0;
  if (a.v.index() != b.v.index()) return false;
  if (std::holds_alternative<Null>(a.v)) return true;
  if (auto* x = std::get_if<IpAddr>(&a.v)) {
    const auto& y = std::get<IpAddr>(b.v);
    return x->v6 == y.v6 && x->bytes == y.bytes;
  }
  if (auto* x = std::get_if<std::shared_ptr<const List>>(&a.v)) {
    const auto& y = std::get<std::shared_ptr<const List>>(b.v);
    if ((*x)->size() != y->size()) return false;
    for (size_t i = 0; i < y->size(); ++i) {
      if (!Equal((**x)[i], (*y)[i])) return false;
    }
    return true;
  }
  if (auto* x = std::get_if<std::shared_ptr<const Map>>(&a.v)) {
    const auto& y = std::get<std::shared_ptr<const Map>>(b.v);
    if ((*x)->size() != y->size()) return false;
    for (const auto& [k, v] : **x) {
      auto it = y->find(k);
      if (it == y->end() || !Equal(v, it->second)) return false;
    }
    return true;
  }
  return false;  // NaN
}

Status NoOverload(std::string_view op, const Value& a, const Value* b = nullptr) {
  std::string m = "no such overload: " + std::string(op) + "(" + TypeName(a);
  if (b) m += std::string(", ") + TypeName(*b);
  return Err(m + ")");
}

// std::regex backtracks without a step limit: reject the constructs that
// make that exponential (a repeated group that itself repeats or
// alternates, e.g. (a+)+ or (a|aa)*) and backreferences. nullptr when safe.
const char* UnsafeRegex(std::string_view p) {
  struct Group {
    bool risky = false;  // contains a quantifier or an alternation
  };
  std::vector<Group> groups;
  bool last_group_risky = false;  // the atom just closed was a risky group
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 < p.size() && p[i + 1] >= '1' && p[i + 1] <= '9' && !in_class) return "backreference";
      ++i;
      last_group_risky = false;
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
      continue;
    }
    bool quantifier = c == '*' || c == '+' || c == '?' || c == '{';
    if (quantifier) {
      if (last_group_risky) return "nested repetition";
      if (!groups.empty()) groups.back().risky = true;
      if (c == '{') {
        while (i < p.size() && p[i] != '}') ++i;
      }
      last_group_risky = false;
      continue;
    }
    last_group_risky = false;
    if (c == '[') {
      in_class = true;
      if (i + 1 < p.size() && p[i + 1] == ']') ++i;
    } else if (c == '(') {
      groups.push_back({});
    } else if (c == ')') {
      if (groups.empty()) continue;  // std::regex reports it
      bool risky = groups.back().risky;
      groups.pop_back();
      if (risky && !groups.empty()) groups.back().risky = true;
      last_group_risky = risky;
    } else if (c == '|') {
      if (!groups.empty()) groups.back().risky = true;
    }
  }
  return nullptr;
}

// Knuth-Morris-Pratt: linear in the worst case (std::string::find is not).
bool Contains(std::string_view s, std::string_view p) {
  if (p.empty()) return true;
  if (p.size() > s.size()) return false;
  std::vector<size_t> fail(p.size(), 0);
  for (size_t i = 1, k = 0; i < p.size(); ++i) {
    while (k > 0 && p[i] != p[k]) k = fail[k - 1];
    if (p[i] == p[k]) ++k;
    fail[i] = k;
  }
  for (size_t i = 0, k = 0; i < s.size(); ++i) {
    while (k > 0 && s[i] != p[k]) k = fail[k - 1];
    if (s[i] == p[k]) ++k;
    if (k == p.size()) return true;
  }
  return false;
}

struct Evaluator {
  const std::map<std::string, Value>& vars;
  size_t steps = 0;

  Result<Value> Eval(const Node& n) {
    if (++steps > kMaxSteps) return Err("evaluation exceeded " + std::to_string(kMaxSteps) + " steps");
    switch (n.op) {
      case Op::kLiteral:
        return n.literal;
      case Op::kIdent: {
        auto it = vars.find(n.name);
        if (it == vars.end()) return Err("no such attribute '" + n.name + "'");
        return it->second;
      }
      case Op::kList: {
        auto l = std::make_shared<List>();
        for (const Node* k : n.kids) {
          ASSIGN_OR_RETURN(Value v, Eval(*k));
          l->push_back(std::move(v));
        }
        return Value{std::shared_ptr<const List>(std::move(l))};
      }
      case Op::kMap: {
        auto m = std::make_shared<Map>();
        for (size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          ASSIGN_OR_RETURN(Value k, Eval(*n.kids[i]));
          ASSIGN_OR_RETURN(Value v, Eval(*n.kids[i + 1]));
          auto* ks = std::get_if<std::string>(&k.v);
          if (!ks) return Err("unsupported map key type " + std::string(TypeName(k)));
          if (!m->emplace(*ks, std::move(v)).second) return Err("repeated map key '" + *ks + "'");
        }
        return Value{std::shared_ptr<const Map>(std::move(m))};
      }
      case Op::kNot: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.kids[0]));
        auto* b = std::get_if<bool>(&v.v);
        if (!b) return NoOverload("!_", v);
        return Value{!*b};
      }
      case Op::kNeg: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.kids[0]));
        if (auto* i = std::get_if<int64_t>(&v.v)) {
          if (*i == std::numeric_limits<int64_t>::min()) return Err("integer overflow");
          return Value{-*i};
        }
        if (auto* d = std::get_if<double>(&v.v)) return Value{-*d};
        if (auto* d = std::get_if<Duration>(&v.v)) {
          if (d->ns == std::numeric_limits<int64_t>::min()) return Err("duration overflow");
          return Value{Duration{-d->ns}};
        }
        return NoOverload("-_", v);
      }
      case Op::kAnd:
      case Op::kOr: {
        // CEL's commutative logic: a definite answer from either side wins
        // over an error on the other.
        const bool short_value = n.op == Op::kOr;
        auto side = [&](const Node* k) -> Result<bool> {
          ASSIGN_OR_RETURN(Value v, Eval(*k));
          auto* b = std::get_if<bool>(&v.v);
          if (!b) return NoOverload(short_value ? "_||_" : "_&&_", v);
          return *b;
        };
        auto l = side(n.kids[0]);
        if (l.ok() && *l == short_value) return Value{short_value};
        if (steps > kMaxSteps) return l.status();
        auto r = side(n.kids[1]);
        if (r.ok() && *r == short_value) return Value{short_value};
        if (!l.ok()) return l.status();
        if (!r.ok()) return r.status();
        return Value{!short_value};
      }
      case Op::kCond: {
        ASSIGN_OR_RETURN(Value c, Eval(*n.kids[0]));
        auto* b = std::get_if<bool>(&c.v);
        if (!b) return NoOverload("_?_:_", c);
        return Eval(*n.kids[*b ? 1 : 2]);
      }
      case Op::kEq:
      case Op::kNe: {
        ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0]));
        ASSIGN_OR_RETURN(Value b, Eval(*n.kids[1]));
        bool eq = Equal(a, b);
        return Value{n.op == Op::kEq ? eq : !eq};
      }
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0]));
        ASSIGN_OR_RETURN(Value b, Eval(*n.kids[1]));
        auto c = Cmp3(a, b);
        if (!c) {
          // NaN compares false; other mismatches have no overload.
          bool nan = (std::holds_alternative<double>(a.v) && std::isnan(std::get<double>(a.v))) ||
                     (std::holds_alternative<double>(b.v) && std::isnan(std::get<double>(b.v)));
          if (nan) return Value{false};
          return NoOverload("_<_", a, &b);
        }
        switch (n.op) {
          case Op::kLt: return Value{*c < 0};
          case Op::kLe: return Value{*c <= 0};
          case Op::kGt: return Value{*c > 0};
          default: return Value{*c >= 0};
        }
      }
      case Op::kIn: {
        ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0]));
        ASSIGN_OR_RETURN(Value b, Eval(*n.kids[1]));
        if (auto* l = std::get_if<std::shared_ptr<const List>>(&b.v)) {
          for (const Value& x : **l) {
            if (++steps > kMaxSteps) return Err("evaluation exceeded steps");
            if (Equal(a, x)) return Value{true};
          }
          return Value{false};
        }
        if (auto* m = std::get_if<std::shared_ptr<const Map>>(&b.v)) {
          auto* k = std::get_if<std::string>(&a.v);
          if (!k) return Value{false};
          return Value{(*m)->contains(*k)};
        }
        return NoOverload("@in", a, &b);
      }
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod: {
        ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0]));
        ASSIGN_OR_RETURN(Value b, Eval(*n.kids[1]));
        return Arith(n.op, a, b);
      }
      case Op::kIndex: {
        ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0]));
        ASSIGN_OR_RETURN(Value i, Eval(*n.kids[1]));
        if (auto* l = std::get_if<std::shared_ptr<const List>>(&a.v)) {
          int64_t idx;
          if (auto* x = std::get_if<int64_t>(&i.v)) idx = *x;
          else if (auto* u = std::get_if<uint64_t>(&i.v); u && *u <= INT64_MAX) idx = static_cast<int64_t>(*u);
          else if (auto* d = std::get_if<double>(&i.v); d && *d == std::floor(*d) && std::abs(*d) < 1e18) idx = static_cast<int64_t>(*d);
          else return NoOverload("_[_]", a, &i);
          if (idx < 0 || static_cast<size_t>(idx) >= (*l)->size()) {
            return Err("index out of range: " + std::to_string(idx));
          }
          return (**l)[idx];
        }
        if (auto* m = std::get_if<std::shared_ptr<const Map>>(&a.v)) {
          auto* k = std::get_if<std::string>(&i.v);
          if (!k) return NoOverload("_[_]", a, &i);
          auto it = (*m)->find(*k);
          if (it == (*m)->end()) return Err("no such key: '" + *k + "'");
          return it->second;
        }
        return NoOverload("_[_]", a, &i);
      }
      case Op::kSelect: {
        ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0]));
        auto* m = std::get_if<std::shared_ptr<const Map>>(&a.v);
        if (!m) return Err("type '" + std::string(TypeName(a)) + "' does not support field selection");
        auto it = (*m)->find(n.name);
        if (it == (*m)->end()) return Err("no such key: '" + n.name + "'");
        return it->second;
      }
      case Op::kCall:
        return Call(n);
    }
    return Err("unknown node");
  }

  static Result<Value> Arith(Op op, const Value& a, const Value& b) {
    const char* name = op == Op::kAdd ? "_+_" : op == Op::kSub ? "_-_" : op == Op::kMul ? "_*_" : op == Op::kDiv ? "_/_" : "_%_";
    if (auto* x = std::get_if<int64_t>(&a.v)) {
      auto* y = std::get_if<int64_t>(&b.v);
      if (!y) return NoOverload(name, a, &b);
      int64_t r = 0;
      bool overflow = false;
      switch (op) {
        case Op::kAdd: overflow = __builtin_add_overflow(*x, *y, &r); break;
        case Op::kSub: overflow = __builtin_sub_overflow(*x, *y, &r); break;
        case Op::kMul: overflow = __builtin_mul_overflow(*x, *y, &r); break;
        case Op::kDiv:
        case Op::kMod:
          if (*y == 0) return Err(op == Op::kDiv ? "division by zero" : "modulus by zero");
          if (*x == INT64_MIN && *y == -1) return Err("integer overflow");
          r = op == Op::kDiv ? *x / *y : *x % *y;
          break;
        default: break;
      }
      if (overflow) return Err("integer overflow");
      return Value{r};
    }
    if (auto* x = std::get_if<uint64_t>(&a.v)) {
      auto* y = std::get_if<uint64_t>(&b.v);
      if (!y) return NoOverload(name, a, &b);
      uint64_t r = 0;
      bool overflow = false;
      switch (op) {
        case Op::kAdd: overflow = __builtin_add_overflow(*x, *y, &r); break;
        case Op::kSub: overflow = __builtin_sub_overflow(*x, *y, &r); break;
        case Op::kMul: overflow = __builtin_mul_overflow(*x, *y, &r); break;
        case Op::kDiv:
        case Op::kMod:
          if (*y == 0) return Err(op == Op::kDiv ? "division by zero" : "modulus by zero");
          r = op == Op::kDiv ? *x / *y : *x % *y;
          break;
        default: break;
      }
      if (overflow) return Err("unsigned integer overflow");
      return Value{r};
    }
    if (auto* x = std::get_if<double>(&a.v)) {
      auto* y = std::get_if<double>(&b.v);
      if (!y || op == Op::kMod) return NoOverload(name, a, &b);
      switch (op) {
        case Op::kAdd: return Value{*x + *y};
        case Op::kSub: return Value{*x - *y};
        case Op::kMul: return Value{*x * *y};
        default: return Value{*x / *y};
      }
    }
    if (auto* x = std::get_if<std::string>(&a.v)) {
      auto* y = std::get_if<std::string>(&b.v);
      if (!y || op != Op::kAdd) return NoOverload(name, a, &b);
      if (x->size() + y->size() > kMaxStringSize) return Err("string exceeds " + std::to_string(kMaxStringSize) + " bytes");
      return Value{*x + *y};
    }
    if (auto* x = std::get_if<std::shared_ptr<const List>>(&a.v)) {
      auto* y = std::get_if<std::shared_ptr<const List>>(&b.v);
      if (!y || op != Op::kAdd) return NoOverload(name, a, &b);
      if ((*x)->size() + (*y)->size() > kMaxListSize) return Err("list exceeds " + std::to_string(kMaxListSize) + " elements");
      auto l = std::make_shared<List>(**x);
      l->insert(l->end(), (*y)->begin(), (*y)->end());
      return Value{std::shared_ptr<const List>(std::move(l))};
    }
    auto checked = [](int64_t p, int64_t q, bool sub, int64_t* r) {
      return sub ? __builtin_sub_overflow(p, q, r) : __builtin_add_overflow(p, q, r);
    };
    if (auto* t = std::get_if<Timestamp>(&a.v)) {
      int64_t r;
      if (auto* d = std::get_if<Duration>(&b.v); d && (op == Op::kAdd || op == Op::kSub)) {
        if (checked(t->ns, d->ns, op == Op::kSub, &r)) return Err("timestamp overflow");
        return Value{Timestamp{r}};
      }
      if (auto* u = std::get_if<Timestamp>(&b.v); u && op == Op::kSub) {
        if (checked(t->ns, u->ns, true, &r)) return Err("duration overflow");
        return Value{Duration{r}};
      }
      return NoOverload(name, a, &b);
    }
    if (auto* d = std::get_if<Duration>(&a.v)) {
      int64_t r;
      if (auto* e = std::get_if<Duration>(&b.v); e && (op == Op::kAdd || op == Op::kSub)) {
        if (checked(d->ns, e->ns, op == Op::kSub, &r)) return Err("duration overflow");
        return Value{Duration{r}};
      }
      if (auto* t = std::get_if<Timestamp>(&b.v); t && op == Op::kAdd) {
        if (checked(t->ns, d->ns, false, &r)) return Err("timestamp overflow");
        return Value{Timestamp{r}};
      }
      return NoOverload(name, a, &b);
    }
    return NoOverload(name, a, &b);
  }

  Result<Value> Call(const Node& n) {
    std::vector<Value> args;
    for (const Node* k : n.kids) {
      ASSIGN_OR_RETURN(Value v, Eval(*k));
      args.push_back(std::move(v));
    }
    const std::string& f = n.name;
    auto arity = [&](size_t want) -> Status {
      if (args.size() != want) return Err("no matching overload for '" + f + "' with " + std::to_string(args.size()) + " arguments");
      return Status::Ok();
    };
    auto str_arg = [&](size_t i) -> const std::string* { return std::get_if<std::string>(&args[i].v); };
    if (f == "size") {
      RETURN_IF_ERROR(arity(1));
      const Value& v = args[0];
      if (auto* s = std::get_if<std::string>(&v.v)) {
        // Code points, as CEL counts.
        int64_t count = 0;
        for (unsigned char c : *s) count += (c & 0xC0) != 0x80;
        return Value{count};
      }
      if (auto* l = std::get_if<std::shared_ptr<const List>>(&v.v)) return Value{static_cast<int64_t>((*l)->size())};
      if (auto* m = std::get_if<std::shared_ptr<const Map>>(&v.v)) return Value{static_cast<int64_t>((*m)->size())};
      return NoOverload("size", v);
    }
    if (f == "contains" || f == "startsWith" || f == "endsWith" || f == "matches") {
      RETURN_IF_ERROR(arity(2));
      const std::string* s = str_arg(0);
      const std::string* p = str_arg(1);
      if (!s || !p) return NoOverload(f, args[0], &args[1]);
      steps += (s->size() + p->size()) / 64;  // linear work, charged to the step budget
      if (steps > kMaxSteps) return Err("evaluation exceeded steps");
      if (f == "contains") return Value{Contains(*s, *p)};
      if (f == "startsWith") return Value{s->size() >= p->size() && s->compare(0, p->size(), *p) == 0};
      if (f == "endsWith") return Value{s->size() >= p->size() && s->compare(s->size() - p->size(), p->size(), *p) == 0};
      // matches: ECMAScript regex (close to RE2 for common patterns), with
      // bounded pattern and input sizes since std::regex backtracks.
      if (p->size() > kMaxRegexPattern || s->size() > kMaxRegexInput) return Err("matches: pattern or input too large");
      if (auto why = UnsafeRegex(*p)) return Err("matches: unsupported pattern (" + std::string(why) + ")");
      steps += s->size() * 10;
      if (steps > kMaxSteps) return Err("evaluation exceeded steps");
      try {
        std::regex re(*p, std::regex::ECMAScript);
        return Value{std::regex_search(*s, re)};
      } catch (const std::exception& e) {
        return Err(std::string("matches: invalid regular expression: ") + e.what());
      }
    }
    if (f == "timestamp") {
      RETURN_IF_ERROR(arity(1));
      if (std::holds_alternative<Timestamp>(args[0].v)) return args[0];
      if (auto* i = std::get_if<int64_t>(&args[0].v)) {
        int64_t r;
        if (__builtin_mul_overflow(*i, int64_t{1000000000}, &r)) return Err("timestamp overflow");
        return Value{Timestamp{r}};
      }
      const std::string* s = str_arg(0);
      if (!s) return NoOverload(f, args[0]);
      auto t = ParseTimestamp(*s);
      if (!t) return Err("timestamp: invalid RFC3339 value '" + *s + "'");
      return Value{*t};
    }
    if (f == "duration") {
      RETURN_IF_ERROR(arity(1));
      if (std::holds_alternative<Duration>(args[0].v)) return args[0];
      const std::string* s = str_arg(0);
      if (!s) return NoOverload(f, args[0]);
      auto d = ParseDurationText(*s);
      if (!d) return Err("duration: invalid value '" + *s + "'");
      return Value{*d};
    }
    if (f == "ipaddress") {
      RETURN_IF_ERROR(arity(1));
      if (std::holds_alternative<IpAddr>(args[0].v)) return args[0];
      const std::string* s = str_arg(0);
      if (!s) return NoOverload(f, args[0]);
      auto ip = ParseIp(*s);
      if (!ip) return Err("ipaddress: invalid value '" + *s + "'");
      return Value{*ip};
    }
    if (f == "in_cidr") {
      RETURN_IF_ERROR(arity(2));
      auto* ip = std::get_if<IpAddr>(&args[0].v);
      const std::string* c = str_arg(1);
      if (!ip || !c) return NoOverload(f, args[0], &args[1]);
      ASSIGN_OR_RETURN(bool in, InCidr(*ip, *c));
      return Value{in};
    }
    if (f == "int") {
      RETURN_IF_ERROR(arity(1));
      const Value& v = args[0];
      if (std::holds_alternative<int64_t>(v.v)) return v;
      if (auto* u = std::get_if<uint64_t>(&v.v)) {
        if (*u > INT64_MAX) return Err("int: range error");
        return Value{static_cast<int64_t>(*u)};
      }
      if (auto* d = std::get_if<double>(&v.v)) {
        if (!(*d > -9.2233720368547758e18 && *d < 9.2233720368547758e18)) return Err("int: range error");
        return Value{static_cast<int64_t>(*d)};
      }
      if (auto* s = std::get_if<std::string>(&v.v)) {
        errno = 0;
        char* end = nullptr;
        long long r = std::strtoll(s->c_str(), &end, 10);
        if (s->empty() || *end != '\0' || errno == ERANGE) return Err("int: cannot convert '" + *s + "'");
        return Value{static_cast<int64_t>(r)};
      }
      if (auto* t = std::get_if<Timestamp>(&v.v)) {
        int64_t secs = t->ns / 1000000000;
        if (t->ns % 1000000000 < 0) --secs;
        return Value{secs};
      }
      if (auto* d = std::get_if<Duration>(&v.v)) return Value{d->ns};
      return NoOverload(f, v);
    }
    if (f == "uint") {
      RETURN_IF_ERROR(arity(1));
      const Value& v = args[0];
      if (std::holds_alternative<uint64_t>(v.v)) return v;
      if (auto* i = std::get_if<int64_t>(&v.v)) {
        if (*i < 0) return Err("uint: range error");
        return Value{static_cast<uint64_t>(*i)};
      }
      if (auto* d = std::get_if<double>(&v.v)) {
        if (!(*d > -1 && *d < 1.8446744073709552e19)) return Err("uint: range error");
        return Value{static_cast<uint64_t>(*d)};
      }
      if (auto* s = std::get_if<std::string>(&v.v)) {
        errno = 0;
        char* end = nullptr;
        if (s->empty() || (*s)[0] == '-') return Err("uint: cannot convert '" + *s + "'");
        unsigned long long r = std::strtoull(s->c_str(), &end, 10);
        if (*end != '\0' || errno == ERANGE) return Err("uint: cannot convert '" + *s + "'");
        return Value{static_cast<uint64_t>(r)};
      }
      return NoOverload(f, v);
    }
    if (f == "double") {
      RETURN_IF_ERROR(arity(1));
      const Value& v = args[0];
      if (std::holds_alternative<double>(v.v)) return v;
      if (auto* i = std::get_if<int64_t>(&v.v)) return Value{static_cast<double>(*i)};
      if (auto* u = std::get_if<uint64_t>(&v.v)) return Value{static_cast<double>(*u)};
      if (auto* s = std::get_if<std::string>(&v.v)) {
        char* end = nullptr;
        double d = std::strtod(s->c_str(), &end);
        if (s->empty() || *end != '\0') return Err("double: cannot convert '" + *s + "'");
        return Value{d};
      }
      return NoOverload(f, v);
    }
    if (f == "string") {
      RETURN_IF_ERROR(arity(1));
      const Value& v = args[0];
      if (std::holds_alternative<std::string>(v.v)) return v;
      if (auto* i = std::get_if<int64_t>(&v.v)) return Value{std::to_string(*i)};
      if (auto* u = std::get_if<uint64_t>(&v.v)) return Value{std::to_string(*u)};
      if (auto* b = std::get_if<bool>(&v.v)) return Value{std::string(*b ? "true" : "false")};
      if (auto* d = std::get_if<double>(&v.v)) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%g", *d);
        return Value{std::string(buf)};
      }
      return NoOverload(f, v);
    }
    if (f == "bool") {
      RETURN_IF_ERROR(arity(1));
      if (std::holds_alternative<bool>(args[0].v)) return args[0];
      const std::string* s = str_arg(0);
      if (s && (*s == "true" || *s == "false")) return Value{*s == "true"};
      return NoOverload(f, args[0]);
    }
    // Timestamp accessors (UTC).
    if (n.has_target && !args.empty()) {
      if (auto* t = std::get_if<Timestamp>(&args[0].v); t && args.size() == 1) {
        int64_t secs = t->ns / 1000000000;
        if (t->ns % 1000000000 < 0) --secs;
        int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
        int64_t sod = secs - days * 86400;
        // civil_from_days
        int64_t z = days + 719468;
        const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        const unsigned doe = static_cast<unsigned>(z - era * 146097);
        const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        const int64_t y0 = static_cast<int64_t>(yoe) + era * 400;
        const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        const unsigned mp = (5 * doy + 2) / 153;
        const unsigned d = doy - (153 * mp + 2) / 5 + 1;
        const unsigned m = mp < 10 ? mp + 3 : mp - 9;
        const int64_t y = y0 + (m <= 2);
        if (f == "getFullYear") return Value{y};
        if (f == "getMonth") return Value{static_cast<int64_t>(m - 1)};
        if (f == "getDate") return Value{static_cast<int64_t>(d)};
        if (f == "getDayOfMonth") return Value{static_cast<int64_t>(d - 1)};
        if (f == "getDayOfYear") return Value{days - DaysFromCivil(y, 1, 1)};
        if (f == "getDayOfWeek") return Value{((days % 7) + 11) % 7};  // 1970-01-01 was a Thursday (4)
        if (f == "getHours") return Value{sod / 3600};
        if (f == "getMinutes") return Value{sod / 60 % 60};
        if (f == "getSeconds") return Value{sod % 60};
      }
      if (auto* d = std::get_if<Duration>(&args[0].v); d && args.size() == 1) {
        if (f == "getHours") return Value{d->ns / 3600000000000LL};
        if (f == "getMinutes") return Value{d->ns / 60000000000LL};
        if (f == "getSeconds") return Value{d->ns / 1000000000LL};
        if (f == "getMilliseconds") return Value{d->ns / 1000000LL};
      }
    }
    return Err("no matching overload for '" + f + "'");
  }
};

// Converts a JSON context value to a declared parameter type.
Result<Value> Convert(const boost::json::value& j, std::string_view type, const std::vector<std::string>& generics,
                      size_t* budget) {
  if (*budget == 0) return Err("context too large");
  --*budget;
  auto bad = [&]() { return Err("could not convert value to type " + std::string(type)); };
  auto number = [&]() -> std::optional<long double> {
    if (j.is_int64()) return static_cast<long double>(j.get_int64());
    if (j.is_uint64()) return static_cast<long double>(j.get_uint64());
    if (j.is_double()) return static_cast<long double>(j.get_double());
    if (j.is_string()) {
      std::string s(j.get_string());
      char* end = nullptr;
      long double d = std::strtold(s.c_str(), &end);
      if (!s.empty() && *end == '\0') return d;
    }
    return std::nullopt;
  };
  if (type == "string") {
    if (!j.is_string()) return bad();
    if (j.get_string().size() > kMaxStringSize) return Err("string exceeds size limit");
    return Value{std::string(j.get_string())};
  }
  if (type == "bool") {
    if (!j.is_bool()) return bad();
    return Value{j.get_bool()};
  }
  if (type == "int") {
    if (j.is_int64()) return Value{j.get_int64()};
    auto n = number();
    if (!n || *n != std::floor(*n) || *n < -9.223372036854775808e18L || *n >= 9.223372036854775808e18L) return bad();
    return Value{static_cast<int64_t>(*n)};
  }
  if (type == "uint") {
    if (j.is_uint64()) return Value{j.get_uint64()};
    if (j.is_int64() && j.get_int64() >= 0) return Value{static_cast<uint64_t>(j.get_int64())};
    auto n = number();
    if (!n || *n != std::floor(*n) || *n < 0 || *n >= 1.8446744073709551616e19L) return bad();
    return Value{static_cast<uint64_t>(*n)};
  }
  if (type == "double") {
    auto n = number();
    if (!n || !std::isfinite(*n) || std::fabs(*n) > std::numeric_limits<double>::max()) return bad();
    return Value{static_cast<double>(*n)};
  }
  if (type == "duration") {
    if (!j.is_string()) return bad();
    auto d = ParseDurationText(std::string(j.get_string()));
    if (!d) return bad();
    return Value{*d};
  }
  if (type == "timestamp") {
    if (!j.is_string()) return bad();
    auto t = ParseTimestamp(std::string(j.get_string()));
    if (!t) return bad();
    return Value{*t};
  }
  if (type == "ipaddress") {
    if (!j.is_string()) return bad();
    auto ip = ParseIp(std::string(j.get_string()));
    if (!ip) return bad();
    return Value{*ip};
  }
  if (type == "list") {
    if (!j.is_array()) return bad();
    if (j.get_array().size() > kMaxListSize) return Err("list exceeds size limit");
    std::string elem = generics.empty() ? "any" : generics[0];
    auto l = std::make_shared<List>();
    for (const auto& e : j.get_array()) {
      ASSIGN_OR_RETURN(Value v, Convert(e, elem, {}, budget));
      l->push_back(std::move(v));
    }
    return Value{std::shared_ptr<const List>(std::move(l))};
  }
  if (type == "map") {
    if (!j.is_object()) return bad();
    if (j.get_object().size() > kMaxListSize) return Err("map exceeds size limit");
    std::string elem = generics.empty() ? "any" : generics[0];
    auto m = std::make_shared<Map>();
    for (const auto& [k, e] : j.get_object()) {
      ASSIGN_OR_RETURN(Value v, Convert(e, elem, {}, budget));
      m->emplace(std::string(k), std::move(v));
    }
    return Value{std::shared_ptr<const Map>(std::move(m))};
  }
  if (type == "any" || type.empty()) {
    if (j.is_null()) return Value{};
    if (j.is_bool()) return Value{j.get_bool()};
    if (j.is_int64()) return Value{j.get_int64()};
    if (j.is_uint64()) return Value{j.get_uint64()};
    if (j.is_double()) {
      if (!std::isfinite(j.get_double())) return Err("number out of range");
      return Value{j.get_double()};
    }
    if (j.is_string()) return Convert(j, "string", {}, budget);
    if (j.is_array()) return Convert(j, "list", {}, budget);
    return Convert(j, "map", {}, budget);
  }
  return Err("unsupported parameter type " + std::string(type));
}

Result<boost::json::object> ParseObjectText(std::string_view text, const char* which) {
  if (text.empty()) return boost::json::object();
  if (text.size() > 1024 * 1024) return Err(std::string(which) + " context too large");
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return Err(std::string(which) + " context is not a JSON object");
  return std::move(v.get_object());
}

}  // namespace

namespace {

// Static types for the checker ("dyn" when unknown until evaluation).
enum class T : uint8_t { kDyn, kNull, kBool, kInt, kUint, kDouble, kString, kDuration, kTimestamp, kIp, kList, kMap };

const char* TName(T t) {
  static const char* kNames[] = {"dyn", "null", "bool", "int", "uint", "double", "string",
                                 "duration", "timestamp", "ipaddress", "list", "map"};
  return kNames[static_cast<int>(t)];
}

T ParamType(std::string_view type) {
  if (type == "bool") return T::kBool;
  if (type == "int") return T::kInt;
  if (type == "uint") return T::kUint;
  if (type == "double") return T::kDouble;
  if (type == "string") return T::kString;
  if (type == "duration") return T::kDuration;
  if (type == "timestamp") return T::kTimestamp;
  if (type == "ipaddress") return T::kIp;
  if (type == "list") return T::kList;
  if (type == "map") return T::kMap;
  return T::kDyn;
}

T LiteralType(const Value& v) {
  switch (v.v.index()) {
    case 0: return T::kNull;
    case 1: return T::kBool;
    case 2: return T::kInt;
    case 3: return T::kUint;
    case 4: return T::kDouble;
    case 5: return T::kString;
    default: return T::kDyn;
  }
}

bool Numeric(T t) { return t == T::kInt || t == T::kUint || t == T::kDouble; }

}  // namespace

// A conservative type check: rejects only definite mismatches (as cel-go's
// checker would), and a result that cannot be a bool.
Status TypeCheck(const Compiler& c, const Condition& cond, const Node* root,
                 const std::unordered_map<const Node*, size_t>& height) {
  std::unordered_map<const Node*, T> types;
  // Post-order over the AST, children first (heights give a safe order).
  std::vector<const Node*> order;
  order.reserve(height.size());
  for (const auto& [n, h] : height) order.push_back(n);
  std::sort(order.begin(), order.end(), [&](const Node* a, const Node* b) { return height.at(a) < height.at(b); });
  (void)c;
  auto fail = [&](const std::string& m) {
    return Err("validation_error: invalid condition expression for '" + cond.name + "': " + m);
  };
  auto is = [](T t, std::initializer_list<T> ok) {
    return t == T::kDyn || std::find(ok.begin(), ok.end(), t) != ok.end();
  };
  for (const Node* n : order) {
    std::vector<T> k;
    for (const Node* kid : n->kids) k.push_back(types.at(kid));
    T t = T::kDyn;
    switch (n->op) {
      case Op::kLiteral: t = LiteralType(n->literal); break;
      case Op::kIdent: {
        for (const auto& p : cond.parameters) {
          if (p.name == n->name) t = ParamType(p.type);
        }
        break;
      }
      case Op::kList: t = T::kList; break;
      case Op::kMap:
        for (size_t i = 0; i < k.size(); i += 2) {
          if (!is(k[i], {T::kString})) return fail(std::string("unsupported map key type ") + TName(k[i]));
        }
        t = T::kMap;
        break;
      case Op::kNot:
        if (!is(k[0], {T::kBool})) return fail(std::string("found no matching overload for '!_' applied to '") + TName(k[0]) + "'");
        t = T::kBool;
        break;
      case Op::kNeg:
        if (!is(k[0], {T::kInt, T::kDouble, T::kDuration})) return fail(std::string("found no matching overload for '-_' applied to '") + TName(k[0]) + "'");
        t = k[0];
        break;
      case Op::kAnd:
      case Op::kOr:
        for (T x : k) {
          if (!is(x, {T::kBool})) return fail(std::string("found no matching overload for logical operator applied to '") + TName(x) + "'");
        }
        t = T::kBool;
        break;
      case Op::kCond:
        if (!is(k[0], {T::kBool})) return fail("ternary condition is not a bool");
        t = k[1] == k[2] ? k[1] : T::kDyn;
        break;
      case Op::kEq:
      case Op::kNe:
        if (k[0] != T::kDyn && k[1] != T::kDyn && k[0] != k[1] && !(Numeric(k[0]) && Numeric(k[1])) &&
            k[0] != T::kNull && k[1] != T::kNull) {
          return fail(std::string("found no matching overload for equality on '") + TName(k[0]) + "', '" + TName(k[1]) + "'");
        }
        t = T::kBool;
        break;
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe:
        for (T x : k) {
          if (!is(x, {T::kBool, T::kInt, T::kUint, T::kDouble, T::kString, T::kDuration, T::kTimestamp})) {
            return fail(std::string("found no matching overload for comparison on '") + TName(x) + "'");
          }
        }
        if (k[0] != T::kDyn && k[1] != T::kDyn && k[0] != k[1] && !(Numeric(k[0]) && Numeric(k[1]))) {
          return fail(std::string("found no matching overload for comparison on '") + TName(k[0]) + "', '" + TName(k[1]) + "'");
        }
        t = T::kBool;
        break;
      case Op::kIn:
        if (!is(k[1], {T::kList, T::kMap})) return fail(std::string("found no matching overload for 'in' on '") + TName(k[1]) + "'");
        t = T::kBool;
        break;
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod: {
        if (k[0] == T::kDyn || k[1] == T::kDyn) break;
        Value a, b;  // representative values: reuse the runtime overload rules
        auto sample = [](T x) -> std::optional<Value> {
          switch (x) {
            case T::kInt: return Value{int64_t{1}};
            case T::kUint: return Value{uint64_t{1}};
            case T::kDouble: return Value{1.0};
            case T::kString: return Value{std::string()};
            case T::kDuration: return Value{Duration{1}};
            case T::kTimestamp: return Value{Timestamp{1}};
            case T::kList: return Value{std::make_shared<const List>()};
            default: return std::nullopt;
          }
        };
        auto sa = sample(k[0]), sb = sample(k[1]);
        auto r = sa && sb ? Evaluator::Arith(n->op, *sa, *sb) : Result<Value>(InvalidArgument("no overload"));
        if (!r.ok()) {
          return fail(std::string("found no matching overload for arithmetic on '") + TName(k[0]) + "', '" + TName(k[1]) + "'");
        }
        t = LiteralType(*r);
        if (std::holds_alternative<Duration>(r->v)) t = T::kDuration;
        if (std::holds_alternative<Timestamp>(r->v)) t = T::kTimestamp;
        if (std::holds_alternative<std::shared_ptr<const List>>(r->v)) t = T::kList;
        break;
      }
      case Op::kIndex:
      case Op::kSelect:
        if (!is(k[0], {T::kList, T::kMap})) return fail(std::string("type '") + TName(k[0]) + "' does not support indexing or field selection");
        break;
      case Op::kCall: {
        const std::string& f = n->name;
        T recv = n->has_target ? k[0] : T::kDyn;
        if (f == "size") t = T::kInt;
        else if (f == "contains" || f == "startsWith" || f == "endsWith" || f == "matches") {
          if (n->has_target && !is(recv, {T::kString})) return fail("found no matching overload for '" + f + "' on '" + TName(recv) + "'");
          t = T::kBool;
        } else if (f == "in_cidr") {
          if (!n->has_target || !is(recv, {T::kIp})) return fail("found no matching overload for 'in_cidr' on '" + std::string(TName(recv)) + "'");
          t = T::kBool;
        } else if (f == "timestamp") t = T::kTimestamp;
        else if (f == "duration") t = T::kDuration;
        else if (f == "ipaddress") t = T::kIp;
        else if (f == "int") t = T::kInt;
        else if (f == "uint") t = T::kUint;
        else if (f == "double") t = T::kDouble;
        else if (f == "string") t = T::kString;
        else if (f == "bool") t = T::kBool;
        else if (f.starts_with("get") && n->has_target) {
          static const char* kGetters[] = {"getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfYear",
                                           "getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds"};
          if (std::none_of(std::begin(kGetters), std::end(kGetters), [&](const char* g) { return f == g; })) {
            return fail("undeclared reference to '" + f + "'");
          }
          if (!is(recv, {T::kTimestamp, T::kDuration})) return fail("found no matching overload for '" + f + "'");
          t = T::kInt;
        } else {
          return fail("undeclared reference to '" + f + "'");
        }
        break;
      }
    }
    types[n] = t;
  }
  T rt = types.at(root);
  if (rt != T::kDyn && rt != T::kBool) {
    return Err("validation_error: condition '" + cond.name + "' expression must evaluate to a bool, not " + TName(rt));
  }
  return Status::Ok();
}

Result<std::shared_ptr<const Program>> Program::Compile(const Condition& condition) {
  auto prog = std::make_shared<Program>();
  prog->condition_ = condition;
  Compiler c{condition.expression, 0, prog.get()};
  if (condition.expression.size() > kMaxExpressionSize) return c.Fail("expression too long");
  ASSIGN_OR_RETURN(Node * root, c.Expr());
  c.Skip();
  if (c.pos != c.src.size()) return c.Fail("unexpected trailing input");
  // The evaluator recurses along the AST: bound its height (iteratively, so
  // that checking cannot itself overflow).
  std::unordered_map<const Node*, size_t> height;
  std::vector<std::pair<const Node*, bool>> stack = {{root, false}};
  while (!stack.empty()) {
    auto [n, expanded] = stack.back();
    stack.pop_back();
    if (expanded) {
      size_t h = 0;
      for (const Node* k : n->kids) h = std::max(h, height[k]);
      if (h + 1 > kMaxAstDepth) return c.Fail("expression nested too deeply");
      height[n] = h + 1;
      continue;
    }
    stack.push_back({n, true});
    for (const Node* k : n->kids) stack.push_back({k, false});
  }
  RETURN_IF_ERROR(TypeCheck(c, condition, root, height));
  prog->root_ = root;
  return std::shared_ptr<const Program>(std::move(prog));
}

Status ValidateContext(const Condition& condition, std::string_view context) {
  auto obj = ParseObjectText(context, "condition");
  if (!obj.ok()) return obj.status();
  size_t budget = kMaxListSize * 4;
  for (const auto& [key, value] : *obj) {
    auto p = std::find_if(condition.parameters.begin(), condition.parameters.end(),
                          [&](const ConditionParameter& cp) { return cp.name == key; });
    if (p == condition.parameters.end()) {
      return Err("found invalid context parameter: " + std::string(key) + " (condition '" + condition.name + "')");
    }
    auto v = Convert(value, p->type, p->generic_types, &budget);
    if (!v.ok()) return Err("context parameter '" + std::string(key) + "': " + v.status().message());
  }
  return Status::Ok();
}

Result<Program::Outcome> Program::Evaluate(std::string_view tuple_context, std::string_view request_context) const {
  auto wrap = [&](const Status& s) {
    return InvalidArgument("validation_error: failed to evaluate relationship condition '" + condition_.name +
                           "': " + s.message());
  };
  auto tctx = ParseObjectText(tuple_context, "tuple");
  if (!tctx.ok()) return wrap(tctx.status());
  auto rctx = ParseObjectText(request_context, "request");
  if (!rctx.ok()) return wrap(rctx.status());
  std::map<std::string, Value> vars;
  Outcome out;
  size_t budget = kMaxListSize * 4;
  for (const auto& p : condition_.parameters) {
    const boost::json::value* j = tctx->if_contains(p.name);  // the tuple's value wins
    if (j == nullptr) j = rctx->if_contains(p.name);
    if (j == nullptr) {
      out.missing.push_back(p.name);
      continue;
    }
    auto v = Convert(*j, p.type, p.generic_types, &budget);
    if (!v.ok()) return wrap(InvalidArgument("parameter '" + p.name + "': " + v.status().message()));
    vars.emplace(p.name, std::move(*v));
  }
  if (!out.missing.empty()) return out;
  Evaluator ev{vars};
  auto r = ev.Eval(*root_);
  if (!r.ok()) return wrap(r.status());
  auto* b = std::get_if<bool>(&r->v);
  if (!b) return wrap(InvalidArgument(std::string("expected a bool result, got ") + TypeName(*r)));
  out.value = *b;
  return out;
}

}  // namespace aigis::authz::cel

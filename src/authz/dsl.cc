// The OpenFGA modeling language (schema 1.1): a hand-written lexer and
// recursive-descent parser, and the writer (ToDsl) that formats a model the
// way OpenFGA's transformer does.
//
// The grammar follows OpenFGA's (OpenFGAParser.g4) where it matters to users:
// operators are not mixed without parentheses (`a or b and c` is an error),
// `but not` takes one base and one subtrahend, direct type restrictions
// (`[...]`) appear only as the first operand of a definition or of a
// parenthesized group, and type restrictions and condition parameters may span
// lines. Indentation is not significant. Comments start with `#` at the start
// of a line or after whitespace (so `team#member` is not a comment).
#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string>
#include <utility>

#include "authz/authz.h"
#include "authz/model_internal.h"

namespace aigis::authz {

namespace {

constexpr int kMaxDepth = 64;                  // nested parentheses in a definition
constexpr size_t kMaxInput = 4 * 1024 * 1024;  // bytes of DSL

enum class Tok : uint8_t { kEof, kNewline, kIdent, kPunct };

struct Token {
  Tok kind = Tok::kEof;
  std::string text;
  int line = 1;    // 1-based
  int column = 1;  // 1-based
  size_t offset = 0;
  size_t end = 0;
};

// Identifiers, extended ones (`a/b`, `_.a_/_b._`) and the schema version.
bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == '/';
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  Token Next() {
    for (;;) {
      while (pos_ < src_.size() && (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\r'))
        Advance();
      if (pos_ >= src_.size()) return Make(Tok::kEof, pos_, pos_);
      char c = src_[pos_];
      if (c == '#' && (pos_ == 0 || IsSpace(src_[pos_ - 1]))) {
        while (pos_ < src_.size() && src_[pos_] != '\n') Advance();
        continue;
      }
      size_t start = pos_;
      int line = line_, col = col_;
      if (c == '\n') {
        Advance();
        return Make(Tok::kNewline, start, pos_, line, col);
      }
      if (IsIdentChar(c)) {
        while (pos_ < src_.size() && IsIdentChar(src_[pos_])) Advance();
        return Make(Tok::kIdent, start, pos_, line, col);
      }
      Advance();
      return Make(Tok::kPunct, start, pos_, line, col);
    }
  }

  // The raw text up to the `}` matching an already consumed `{` (which is
  // consumed too); nullopt at end of input.
  std::optional<std::string> RawBlock() {
    int depth = 1;
    size_t start = pos_;
    char quote = 0;
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (quote != 0) {
        if (c == '\\') {
          Advance();
        } else if (c == quote) {
          quote = 0;
        }
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}') {
        if (--depth == 0) {
          std::string body(src_.substr(start, pos_ - start));
          Advance();
          return body;
        }
      }
      if (pos_ < src_.size()) Advance();
    }
    return std::nullopt;
  }

  size_t pos() const { return pos_; }
  void Reset(size_t pos, int line, int col) {
    pos_ = pos;
    line_ = line;
    col_ = col;
  }

 private:
  static bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  void Advance() {
    if (src_[pos_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++pos_;
  }
  Token Make(Tok kind, size_t start, size_t end) { return Make(kind, start, end, line_, col_); }
  Token Make(Tok kind, size_t start, size_t end, int line, int col) {
    Token t;
    t.kind = kind;
    t.text = std::string(src_.substr(start, end - start));
    t.line = line;
    t.column = col;
    t.offset = start;
    t.end = end;
    return t;
  }

  std::string_view src_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
};

// The first syntax error. Thrown inside the parser to unwind the recursive
// descent and caught in ParseDsl: it never leaves this file.
struct ParseError {
  ModelError error;
};

class Parser {
 public:
  explicit Parser(std::string_view src) : src_(src), lexer_(src) { Shift(); }

  Model Parse() {
    SkipNewlines();
    if (!IsIdent("model")) {
      Fail(fmt::format("extraneous input '{}' expecting {{{}'#', 'module', 'model', NEWLINE}}",
                       Shown(), cur_.offset == 0 ? "WHITESPACE, " : ""));
    }
    Shift();
    ExpectNewline();
    SkipNewlines();
    if (!IsIdent("schema")) Fail(fmt::format("mismatched input '{}' expecting 'schema'", Shown()));
    Shift();
    if (cur_.kind != Tok::kIdent)
      Fail(fmt::format("mismatched input '{}' expecting SCHEMA_VERSION", Shown()));
    if (cur_.text != "1.1" && cur_.text != "1.0" && !IsVersionLike(cur_.text)) {
      Fail(fmt::format("mismatched input '{}' expecting SCHEMA_VERSION", Shown()));
    }
    model_.schema_version = cur_.text;
    Shift();
    EndOfStatement();
    for (;;) {
      SkipNewlines();
      if (cur_.kind == Tok::kEof) break;
      if (IsIdent("type")) {
        ParseType();
      } else if (IsIdent("condition")) {
        ParseCondition();
      } else if (IsIdent("extend")) {
        Shift();
        if (IsIdent("type")) Shift();
        Fail("extend can only be used in a modular model");
      } else if (cur_.kind == Tok::kIdent) {
        FailNoViableAlternative();
      } else {
        Fail(fmt::format("extraneous input '{}' expecting {{<EOF>, 'type', 'condition', NEWLINE}}",
                         Shown()));
      }
    }
    return std::move(model_);
  }

 private:
  static bool IsVersionLike(std::string_view v) {
    // N.N: anything else is a syntax error; an unsupported N.N is semantic.
    size_t dot = v.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == v.size()) return false;
    for (size_t i = 0; i < v.size(); ++i) {
      if (i != dot && (v[i] < '0' || v[i] > '9')) return false;
    }
    return true;
  }

  std::string Shown() const {
    return cur_.kind == Tok::kEof ? "<EOF>" : cur_.kind == Tok::kNewline ? "\\n" : cur_.text;
  }

  [[noreturn]] void Fail(std::string message) { Fail(std::move(message), cur_); }
  [[noreturn]] void Fail(std::string message, const Token& at) {
    throw ParseError{ModelError{std::move(message), at.line, at.column,
                                at.kind == Tok::kEof ? "<EOF>" : at.text}};
  }

  void Shift() {
    prev_ = std::move(cur_);
    cur_ = lexer_.Next();
  }
  bool IsIdent(std::string_view text) const {
    return cur_.kind == Tok::kIdent && cur_.text == text;
  }
  bool IsPunct(char c) const {
    return cur_.kind == Tok::kPunct && cur_.text.size() == 1 && cur_.text[0] == c;
  }
  void SkipNewlines() {
    while (cur_.kind == Tok::kNewline) Shift();
  }
  void ExpectPunct(char c) {
    if (!IsPunct(c)) Fail(fmt::format("mismatched input '{}' expecting '{}'", Shown(), c));
    Shift();
  }
  void ExpectNewline() {
    if (cur_.kind != Tok::kNewline && cur_.kind != Tok::kEof) {
      Fail(fmt::format("extraneous input '{}' expecting NEWLINE", Shown()));
    }
  }
  void EndOfStatement() {
    if (cur_.kind != Tok::kNewline && cur_.kind != Tok::kEof) {
      Fail(fmt::format("extraneous input '{}' expecting {{<EOF>, NEWLINE}}", Shown()));
    }
  }
  std::string ExpectIdent(std::string_view what) {
    if (cur_.kind != Tok::kIdent)
      Fail(fmt::format("mismatched input '{}' expecting {}", Shown(), what));
    std::string text = cur_.text;
    Shift();
    return text;
  }

  void ParseType() {
    Shift();  // type
    TypeDefinition type;
    relation_names_.clear();
    type.line = cur_.line;
    type.name = ExpectIdent("TYPE_NAME");
    EndOfStatement();
    SkipNewlines();
    if (IsIdent("relations")) {
      Shift();
      EndOfStatement();
      SkipNewlines();
      if (cur_.kind == Tok::kIdent && !IsIdent("define")) FailNoViableAlternative();
      if (!IsIdent("define")) {
        Fail(fmt::format("mismatched input '{}' expecting 'define'", Shown()));
      }
      while (IsIdent("define")) {
        ParseDefine(&type);
        SkipNewlines();
      }
    } else if (IsIdent("define")) {
      FailNoViableAlternative();
    }
    model_.types.push_back(std::move(type));
  }

  void ParseDefine(TypeDefinition* type) {
    Shift();  // define
    Relation rel;
    rel.line = cur_.line;
    Token name_tok = cur_;
    rel.name = ExpectIdent("RELATION_NAME");
    if (!IsPunct(':')) Fail(fmt::format("missing ':' at '{}'", Shown()));
    Shift();
    direct_seen_ = false;
    rel.rewrite = ParseExpr(&rel, 0);
    if (cur_.kind != Tok::kNewline && cur_.kind != Tok::kEof) {
      Fail(fmt::format("extraneous input '{}' expecting {{<EOF>, NEWLINE}}", Shown()));
    }
    if (!relation_names_.insert(rel.name).second) {
      Fail(fmt::format("'{}' is already defined in '{}'", rel.name, type->name), name_tok);
    }
    type->relations.push_back(std::move(rel));
  }

  // expr := operand ( ('or' operand)+ | ('and' operand)+ | 'but' 'not' operand )?
  Rewrite ParseExpr(Relation* rel, int depth) {
    if (depth > kMaxDepth) Fail(fmt::format("definition nested deeper than {} levels", kMaxDepth));
    Rewrite first = ParseOperand(rel, depth, /*allow_direct=*/true);
    if (IsIdent("or") || IsIdent("and")) {
      std::string op = cur_.text;
      Rewrite node;
      node.kind = op == "or" ? Rewrite::Kind::kUnion : Rewrite::Kind::kIntersection;
      node.children.push_back(std::move(first));
      while (IsIdent(op)) {
        Shift();
        node.children.push_back(ParseOperand(rel, depth, false));
      }
      FailOnMixedOperators(depth);
      return node;
    }
    if (IsIdent("but")) {
      Shift();
      if (!IsIdent("not")) Fail(fmt::format("mismatched input '{}' expecting 'not'", Shown()));
      Shift();
      Rewrite node;
      node.kind = Rewrite::Kind::kDifference;
      node.children.push_back(std::move(first));
      node.children.push_back(ParseOperand(rel, depth, false));
      FailOnMixedOperators(depth);
      return node;
    }
    return first;
  }

  // Operators are not mixed without parentheses. Worded as OpenFGA's ANTLR
  // parser words it: at top level the whitespace before the operator is the
  // unexpected token; inside parentheses, the operator.
  void FailOnMixedOperators(int depth) {
    if (!IsIdent("or") && !IsIdent("and") && !IsIdent("but")) return;
    if (depth == 0 && prev_.end < cur_.offset) {
      Token space = cur_;
      space.column -= static_cast<int>(cur_.offset - prev_.end);
      space.text = " ";
      Fail("mismatched input ' ' expecting {<EOF>, NEWLINE}", space);
    }
    Fail(fmt::format("extraneous input '{}' expecting {{')', WHITESPACE}}", OperatorShown()));
  }

  // A word that starts no statement, worded as ANTLR words it: the input
  // from the preceding line break (shown as \n) to the end of the word.
  [[noreturn]] void FailNoViableAlternative() {
    size_t line_start = src_.rfind('\n', cur_.offset == 0 ? 0 : cur_.offset - 1);
    line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
    std::string shown =
        "\\n" + std::string(src_.substr(line_start, cur_.offset - line_start)) + cur_.text;
    Fail(fmt::format("no viable alternative at input '{}'", shown));
  }

  std::string OperatorShown() const { return IsIdent("but") ? "but not" : Shown(); }

  Rewrite ParseOperand(Relation* rel, int depth, bool allow_direct) {
    if (IsPunct('[')) {
      if (!allow_direct || direct_seen_)
        Fail(fmt::format("extraneous input '{}' expecting {{'(', {}}}", Shown(), kIdentifiers));
      direct_seen_ = true;
      ParseRestrictions(rel);
      return Rewrite{};
    }
    if (IsPunct('(')) {
      Shift();
      SkipNewlines();
      Rewrite inner = ParseExpr(rel, depth + 1);
      SkipNewlines();
      ExpectPunct(')');
      return inner;
    }
    if (cur_.kind != Tok::kIdent || IsKeyword(cur_.text)) {
      Fail(fmt::format("mismatched input '{}' expecting {{'[', '(', {}}}", OperatorShown(),
                       kIdentifiers));
    }
    Rewrite rw;
    rw.relation = cur_.text;
    Shift();
    if (IsIdent("from")) {
      Shift();
      if (cur_.kind != Tok::kIdent || IsKeyword(cur_.text)) {
        Fail(fmt::format("mismatched input '{}' expecting IDENTIFIER", Shown()));
      }
      rw.kind = Rewrite::Kind::kTupleToUserset;
      rw.tupleset = cur_.text;
      Shift();
    } else {
      rw.kind = Rewrite::Kind::kComputed;
    }
    return rw;
  }

  static constexpr std::string_view kIdentifiers =
      "IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation', EXTENDED_IDENTIFIER";

  static bool IsKeyword(std::string_view w) {
    return w == "or" || w == "and" || w == "but" || w == "not" || w == "from";
  }

  // '[' restriction (',' restriction)* ']', newlines allowed inside.
  void ParseRestrictions(Relation* rel) {
    Shift();  // [
    bool spaced = prev_.end < cur_.offset;
    SkipNewlines();
    if (IsPunct(']')) {
      Fail(fmt::format("extraneous input '{}' expecting {{{}{}, NEWLINE}}", Shown(),
                       spaced ? "" : "WHITESPACE, ", kIdentifiers));
    }
    for (;;) {
      SkipNewlines();
      TypeRestriction tr;
      tr.type = ExpectIdent("IDENTIFIER");
      if (IsPunct(':')) {
        Shift();
        if (!IsPunct('*')) Fail(fmt::format("mismatched input '{}' expecting '*'", Shown()));
        Shift();
        tr.wildcard = true;
      }
      if (IsPunct('#')) {
        Shift();
        tr.relation = ExpectIdent("IDENTIFIER");
      }
      if (IsIdent("with")) {
        Shift();
        tr.condition = ExpectIdent("IDENTIFIER");
      }
      rel->directly_related.push_back(std::move(tr));
      SkipNewlines();
      if (IsPunct(',')) {
        Shift();
        continue;
      }
      if (IsPunct(']')) {
        Shift();
        return;
      }
      Fail(fmt::format("mismatched input '{}' expecting {{',', WHITESPACE, ']'}}", Shown()));
    }
  }

  void ParseCondition() {
    Shift();  // condition
    Condition cond;
    cond.line = cur_.line;
    Token name_tok = cur_;
    cond.name = ExpectIdent("CONDITION_NAME");
    SkipNewlines();
    ExpectPunct('(');
    for (;;) {
      SkipNewlines();
      ConditionParameter p;
      Token ptok = cur_;
      // Parameter types are keywords: they cannot name a parameter.
      if (cur_.kind != Tok::kIdent || IsParamType(cur_.text)) {
        Fail(fmt::format("mismatched input '{}' expecting {{WHITESPACE, IDENTIFIER, NEWLINE}}",
                         Shown()));
      }
      p.name = cur_.text;
      Shift();
      SkipNewlines();
      ExpectPunct(':');
      SkipNewlines();
      p.type = ParamType(/*generic=*/false);
      if (p.type == "list" || p.type == "map") {
        if (!IsPunct('<')) Fail(fmt::format("mismatched input '{}' expecting '<'", Shown()));
        Shift();
        p.generic_types.push_back(ParamType(/*generic=*/true));
        ExpectPunct('>');
      }
      for (const auto& other : cond.parameters) {
        if (other.name == p.name) {
          Fail(fmt::format("parameter '{}' is already defined in the condition '{}'", p.name,
                           cond.name),
               ptok);
        }
      }
      cond.parameters.push_back(std::move(p));
      SkipNewlines();
      if (IsPunct(',')) {
        Shift();
        continue;
      }
      if (IsPunct(')')) break;
      Fail(fmt::format("extraneous input '{}' expecting {{',', ')'}}", Shown()));
    }
    // The ')' is current; the body is read raw from just after '{'.
    Shift();
    SkipNewlines();
    if (!IsPunct('{')) Fail(fmt::format("mismatched input '{}' expecting '{{'", Shown()));
    Token brace = cur_;
    lexer_.Reset(brace.end, brace.line, brace.column + 1);
    std::optional<std::string> body = lexer_.RawBlock();
    if (!body) Fail("missing '}' at '<EOF>'", brace);
    cond.expression = std::string(Trim(*body));
    if (cond.expression.empty()) Fail("mismatched input '}' expecting CONDITION_EXPRESSION", brace);
    if (!condition_names_.insert(cond.name).second) {
      Fail(fmt::format("condition '{}' is already defined in the model", cond.name), name_tok);
    }
    model_.conditions.push_back(std::move(cond));
    cur_ = lexer_.Next();
    EndOfStatement();
  }

  static bool IsParamType(std::string_view t) {
    return t == "string" || t == "int" || t == "uint" || t == "double" || t == "bool" ||
           t == "duration" || t == "timestamp" || t == "ipaddress" || t == "any" || t == "list" ||
           t == "map";
  }

  std::string ParamType(bool generic) {
    static const std::set<std::string, std::less<>> kScalar = {
        "string", "int", "uint", "double", "bool", "duration", "timestamp", "ipaddress", "any"};
    if (cur_.kind == Tok::kIdent && (kScalar.contains(cur_.text) ||
                                     (!generic && (cur_.text == "list" || cur_.text == "map")))) {
      std::string t = cur_.text;
      Shift();
      return t;
    }
    Fail(fmt::format("mismatched input '{}' expecting CONDITION_PARAM_TYPE", Shown()));
  }

  static std::string_view Trim(std::string_view s) {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
      s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
      s.remove_suffix(1);
    return s;
  }

  std::string_view src_;
  Lexer lexer_;
  Token cur_;
  Token prev_;
  Model model_;
  bool direct_seen_ = false;
  // Names seen so far (the type's relations, the model's conditions), so that
  // duplicates are found without quadratic scans.
  std::set<std::string, std::less<>> relation_names_;
  std::set<std::string, std::less<>> condition_names_;
};

// Finds `word` as a whole identifier in `line` at or after `from`; returns a
// 0-based index or npos.
size_t FindWord(std::string_view line, std::string_view word, size_t from) {
  if (word.empty()) return std::string_view::npos;
  for (size_t pos = line.find(word, from); pos != std::string_view::npos;
       pos = line.find(word, pos + 1)) {
    bool left = pos == 0 || !IsIdentChar(line[pos - 1]);
    size_t end = pos + word.size();
    bool right = end >= line.size() || !IsIdentChar(line[end]);
    if (left && right) return pos;
  }
  return std::string_view::npos;
}

std::string_view LineOf(std::string_view src, int line) {
  size_t pos = 0;
  for (int i = 1; i < line; ++i) {
    pos = src.find('\n', pos);
    if (pos == std::string_view::npos) return {};
    ++pos;
  }
  size_t end = src.find('\n', pos);
  return src.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
}

// OpenFGA places a semantic error at its symbol on the relation's line.
void Locate(std::string_view src, ModelError* e, internal::SymbolAt where) {
  if (e->symbol.empty()) return;
  if (where == internal::SymbolAt::kSchema) {
    // The schema version is on the first line that starts with `schema`.
    for (int n = 1;; ++n) {
      std::string_view line = LineOf(src, n);
      if (line.data() == nullptr) return;
      size_t at = line.find_first_not_of(" \t");
      if (at != std::string_view::npos && line.substr(at, 6) == "schema") {
        size_t v = FindWord(line, e->symbol, at + 6);
        if (v == std::string_view::npos) return;
        e->line = n;
        e->column = static_cast<int>(v) + 1;
        return;
      }
    }
  }
  if (e->line <= 0) return;
  std::string_view line = LineOf(src, e->line);
  size_t from = 0;
  if (where != internal::SymbolAt::kName) {
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) from = colon + 1;
  }
  if (where == internal::SymbolAt::kTupleset) {
    for (size_t f = line.find("from", from); f != std::string_view::npos;
         f = line.find("from", f + 1)) {
      size_t at = line.find_first_not_of(" \t", f + 4);
      if (at != std::string_view::npos && FindWord(line, e->symbol, at) == at) {
        e->column = static_cast<int>(at) + 1;
        return;
      }
    }
  }
  size_t at = e->symbol.find(' ') == std::string::npos ? FindWord(line, e->symbol, from)
                                                       : line.find(e->symbol, from);
  if (at == std::string_view::npos) at = FindWord(line, e->symbol, 0);
  if (at != std::string_view::npos) e->column = static_cast<int>(at) + 1;
}

// ------------------------------------------------------------- writer ----

void WriteRewrite(const Rewrite& rw, const Relation& rel, bool nested, std::string* out);

void WriteOperand(const Rewrite& rw, const Relation& rel, std::string* out) {
  bool compound = rw.kind == Rewrite::Kind::kUnion || rw.kind == Rewrite::Kind::kIntersection ||
                  rw.kind == Rewrite::Kind::kDifference;
  WriteRewrite(rw, rel, compound, out);
}

void WriteRewrite(const Rewrite& rw, const Relation& rel, bool nested, std::string* out) {
  switch (rw.kind) {
    case Rewrite::Kind::kThis: {
      *out += '[';
      for (size_t i = 0; i < rel.directly_related.size(); ++i) {
        const auto& tr = rel.directly_related[i];
        if (i > 0) *out += ", ";
        *out += tr.type;
        if (tr.wildcard) *out += ":*";
        if (!tr.relation.empty()) *out += "#" + tr.relation;
        if (!tr.condition.empty()) *out += " with " + tr.condition;
      }
      *out += ']';
      return;
    }
    case Rewrite::Kind::kComputed:
      *out += rw.relation;
      return;
    case Rewrite::Kind::kTupleToUserset:
      *out += rw.relation + " from " + rw.tupleset;
      return;
    case Rewrite::Kind::kUnion:
    case Rewrite::Kind::kIntersection:
    case Rewrite::Kind::kDifference: {
      const char* op = rw.kind == Rewrite::Kind::kUnion          ? " or "
                       : rw.kind == Rewrite::Kind::kIntersection ? " and "
                                                                 : " but not ";
      // The language has direct type restrictions only in first place; a
      // union or intersection is written with them there, as OpenFGA does.
      // (A difference that subtracts them cannot be written in the language.)
      std::vector<const Rewrite*> children;
      for (const auto& c : rw.children) children.push_back(&c);
      if (rw.kind != Rewrite::Kind::kDifference) {
        std::stable_partition(children.begin(), children.end(),
                              [](const Rewrite* c) { return c->kind == Rewrite::Kind::kThis; });
      }
      if (nested) *out += '(';
      for (size_t i = 0; i < children.size(); ++i) {
        if (i > 0) *out += op;
        WriteOperand(*children[i], rel, out);
      }
      if (nested) *out += ')';
      return;
    }
  }
}

}  // namespace

Result<Model> ParseDsl(std::string_view dsl, std::vector<ModelError>* errors,
                       Validation validation) {
  if (dsl.size() > kMaxInput) {
    ModelError e{fmt::format("model is larger than {} bytes", kMaxInput), 0, 0, ""};
    if (errors != nullptr) errors->push_back(e);
    return InvalidArgument(e.message);
  }
  if (!IsValidUtf8(dsl)) {
    ModelError e{"model is not valid UTF-8", 0, 0, ""};
    if (errors != nullptr) errors->push_back(e);
    return InvalidArgument(e.message);
  }
  Model model;
  try {
    model = Parser(dsl).Parse();
  } catch (const ParseError& pe) {
    if (errors != nullptr) errors->push_back(pe.error);
    return InvalidArgument(
        fmt::format("{}:{}: {}", pe.error.line, pe.error.column, pe.error.message));
  }
  if (validation == Validation::kSyntaxOnly) return model;
  std::vector<ModelError> found;
  std::vector<internal::SymbolAt> in_def;
  internal::ValidateModelDetailed(model, &found, &in_def);
  if (found.empty()) return model;
  // Locating is a scan per error: bounded for hostile inputs.
  for (size_t i = 0; i < found.size() && i < 256; ++i) Locate(dsl, &found[i], in_def[i]);
  const ModelError& first = found.front();
  Status st = InvalidArgument(
      first.line > 0 ? fmt::format("{}:{}: {}", first.line, first.column, first.message)
                     : first.message);
  if (errors != nullptr) errors->insert(errors->end(), found.begin(), found.end());
  return st;
}

std::string ToDsl(const Model& model) {
  std::string out = "model\n  schema " + model.schema_version + "\n";
  for (const auto& type : model.types) {
    out += "\ntype " + type.name + "\n";
    if (type.relations.empty()) continue;
    out += "  relations\n";
    for (const auto& rel : type.relations) {
      out += "    define " + rel.name + ": ";
      WriteRewrite(rel.rewrite, rel, /*nested=*/false, &out);
      out += '\n';
    }
  }
  std::vector<const Condition*> conds;
  for (const auto& c : model.conditions) conds.push_back(&c);
  std::stable_sort(conds.begin(), conds.end(),
                   [](const Condition* a, const Condition* b) { return a->name < b->name; });
  for (const Condition* c : conds) {
    out += "\ncondition " + c->name + "(";
    // Parameters are a map in OpenFGA's JSON; its transformer writes them by name.
    std::vector<const ConditionParameter*> params;
    for (const auto& p : c->parameters) params.push_back(&p);
    std::stable_sort(
        params.begin(), params.end(),
        [](const ConditionParameter* a, const ConditionParameter* b) { return a->name < b->name; });
    for (size_t i = 0; i < params.size(); ++i) {
      const auto& p = *params[i];
      if (i > 0) out += ", ";
      out += p.name + ": " + p.type;
      if (!p.generic_types.empty()) {
        out += '<';
        for (size_t j = 0; j < p.generic_types.size(); ++j) {
          if (j > 0) out += ", ";
          out += p.generic_types[j];
        }
        out += '>';
      }
    }
    out += ") {\n  " + c->expression + "\n}\n";
  }
  return out;
}

}  // namespace aigis::authz

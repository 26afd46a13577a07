// The CEL subset evaluator behind OpenFGA conditions: each operator, type and
// function, conversions of context values, errors and bounds.
#include "authz/cel.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace aigis::authz::cel {
namespace {

Condition Cond(std::string expr, std::vector<ConditionParameter> params = {}) {
  return Condition{"cond", std::move(params), std::move(expr), 0};
}

// Evaluates `expr` with the given parameters and request context.
Result<bool> RunExpr(const std::string& expr, std::vector<ConditionParameter> params = {},
                 const std::string& request = "", const std::string& tuple = "") {
  ASSIGN_OR_RETURN(auto prog, Program::Compile(Cond(expr, std::move(params))));
  ASSIGN_OR_RETURN(auto out, prog->Evaluate(tuple, request));
  if (!out.missing.empty()) return InvalidArgument("missing");
  return out.value;
}

bool True(const std::string& expr, std::vector<ConditionParameter> params = {}, const std::string& ctx = "") {
  auto r = RunExpr(expr, std::move(params), ctx);
  EXPECT_TRUE(r.ok()) << expr << ": " << r.status().ToString();
  return r.ok() && *r;
}
bool False(const std::string& expr, std::vector<ConditionParameter> params = {}, const std::string& ctx = "") {
  auto r = RunExpr(expr, std::move(params), ctx);
  EXPECT_TRUE(r.ok()) << expr << ": " << r.status().ToString();
  return r.ok() && !*r;
}
bool Fails(const std::string& expr, std::vector<ConditionParameter> params = {}, const std::string& ctx = "") {
  return !RunExpr(expr, std::move(params), ctx).ok();
}
bool CompileFails(const std::string& expr, std::vector<ConditionParameter> params = {}) {
  return !Program::Compile(Cond(expr, std::move(params))).ok();
}

ConditionParameter P(std::string name, std::string type, std::vector<std::string> generics = {}) {
  return {std::move(name), std::move(type), std::move(generics)};
}

TEST(Cel, Literals) {
  EXPECT_TRUE(True("true"));
  EXPECT_TRUE(False("false"));
  EXPECT_TRUE(True("1 == 1"));
  EXPECT_TRUE(True("-5 < 0"));
  EXPECT_TRUE(True("0x10 == 16"));
  EXPECT_TRUE(True("3u == 3u"));
  EXPECT_TRUE(True("1.5e1 == 15.0"));
  EXPECT_TRUE(True("'a' == \"a\""));
  EXPECT_TRUE(True("'a\\nb' == \"a\\nb\""));
  EXPECT_TRUE(True("r'a\\n' == 'a\\\\n'"));
  EXPECT_TRUE(True("null == null"));
  EXPECT_TRUE(True("[1, 2, 3] == [1, 2, 3]"));
  EXPECT_TRUE(True("{'a': 1}['a'] == 1"));
  EXPECT_TRUE(True("-9223372036854775808 < 0"));
  EXPECT_TRUE(CompileFails("9223372036854775808"));
}

TEST(Cel, Arithmetic) {
  EXPECT_TRUE(True("1 + 2 * 3 == 7"));
  EXPECT_TRUE(True("(1 + 2) * 3 == 9"));
  EXPECT_TRUE(True("7 / 2 == 3 && 7 % 2 == 1"));
  EXPECT_TRUE(True("-7 / 2 == -3"));
  EXPECT_TRUE(True("10u - 3u == 7u"));
  EXPECT_TRUE(True("1.5 + 1.5 == 3.0"));
  EXPECT_TRUE(True("'ab' + 'cd' == 'abcd'"));
  EXPECT_TRUE(True("[1] + [2] == [1, 2]"));
  EXPECT_TRUE(True("-(3) == -3"));
  EXPECT_TRUE(Fails("1 / 0 == 0"));
  EXPECT_TRUE(Fails("1 % 0 == 0"));
  EXPECT_TRUE(Fails("9223372036854775807 + 1 > 0"));
  EXPECT_TRUE(Fails("-9223372036854775808 / -1 > 0"));
  EXPECT_TRUE(Fails("0u - 1u > 0u"));
  EXPECT_TRUE(Fails("1 + 1u == 2"));   // no implicit conversion in arithmetic
  EXPECT_TRUE(Fails("1 + 'a' == 'a'"));
  EXPECT_TRUE(Fails("1.0 % 2.0 == 1.0"));
}

TEST(Cel, Comparisons) {
  EXPECT_TRUE(True("1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3 && 1 != 2"));
  EXPECT_TRUE(True("'abc' < 'abd'"));
  EXPECT_TRUE(True("1 == 1.0 && 1u == 1 && 2 > 1.5"));  // numeric across types
  EXPECT_TRUE(True("false < true"));
  EXPECT_TRUE(CompileFails("1 == 'a'"));  // the checker rejects definite mismatches
  EXPECT_TRUE(Fails("1 < 'a'"));
  EXPECT_TRUE(True("[1, 'a'] != [1, 'b']"));
}

TEST(Cel, Logic) {
  EXPECT_TRUE(True("!false"));
  EXPECT_TRUE(True("true || false"));
  EXPECT_TRUE(False("true && false"));
  EXPECT_TRUE(True("1 < 2 ? true : false"));
  EXPECT_TRUE(True("false ? 1 / 0 == 0 : true"));
  // Commutative error absorption: a definite side wins over an error.
  EXPECT_TRUE(True("1 / 0 == 0 || true"));
  EXPECT_TRUE(False("1 / 0 == 0 && false"));
  EXPECT_TRUE(Fails("1 / 0 == 0 || false"));
  EXPECT_TRUE(Fails("!1"));
  EXPECT_TRUE(Fails("1 ? true : false"));
  EXPECT_TRUE(Fails("1"));  // not a bool result
}

TEST(Cel, ListsAndMaps) {
  EXPECT_TRUE(True("2 in [1, 2, 3]"));
  EXPECT_TRUE(False("4 in [1, 2, 3]"));
  EXPECT_TRUE(True("'a' in {'a': 1}"));
  EXPECT_TRUE(True("[1, 2, 3][1] == 2"));
  EXPECT_TRUE(Fails("[1, 2, 3][3] == 2"));
  EXPECT_TRUE(Fails("[1][-1] == 1"));
  EXPECT_TRUE(Fails("{'a': 1}['b'] == 1"));
  EXPECT_TRUE(Fails("{'a': 1, 'a': 2}['a'] == 1"));
  EXPECT_TRUE(True("size([1, 2]) == 2 && [1, 2].size() == 2 && size({'a': 1}) == 1"));
  std::vector<ConditionParameter> ps = {P("m", "map", {"string"}), P("l", "list", {"int"})};
  EXPECT_TRUE(True("m.k == 'v' && m['k'] == 'v' && 'k' in m && 3 in l && l[0] == 1", ps,
                   R"({"m": {"k": "v"}, "l": [1, 2, 3]})"));
  EXPECT_TRUE(Fails("m.nope == 'v'", ps, R"({"m": {"k": "v"}, "l": []})"));
  EXPECT_TRUE(Fails("size(l) == 1", ps, R"({"m": {}, "l": ["x"]})"));  // list<int> with a string
}

TEST(Cel, Strings) {
  EXPECT_TRUE(True("'hello'.contains('ell') && 'hello'.contains('') && 'aab'.contains('ab')"));
  EXPECT_TRUE(True("'abcabd'.contains('abd') && !'abcab'.contains('abd') && !'a'.contains('ab')"));
  EXPECT_TRUE(True("'hello'.startsWith('he') && 'hello'.endsWith('lo')"));
  EXPECT_TRUE(False("'hello'.startsWith('lo')"));
  EXPECT_TRUE(True("size('héllo') == 5"));
  EXPECT_TRUE(True("'hello'.matches('^h.*o$')"));
  EXPECT_TRUE(True("'abc123'.matches('[0-9]+')"));
  EXPECT_TRUE(False("'abc'.matches('^[0-9]+$')"));
  EXPECT_TRUE(Fails("'abc'.matches('(')"));
  EXPECT_TRUE(Fails("1.contains('a')"));
  EXPECT_TRUE(True("string(12) == '12' && int('42') == 42 && uint(3) == 3u && double(2) == 2.0"));
  EXPECT_TRUE(Fails("int('x') == 1"));
  EXPECT_TRUE(Fails("uint(-1) == 1u"));
}

TEST(Cel, TimestampsAndDurations) {
  EXPECT_TRUE(True("timestamp('2023-10-11T10:00:00Z') < timestamp('2023-10-11T10:00:01Z')"));
  EXPECT_TRUE(True("timestamp('2023-10-11T12:00:00+02:00') == timestamp('2023-10-11T10:00:00.000Z')"));
  EXPECT_TRUE(True("duration('1h30m') == duration('90m')"));
  EXPECT_TRUE(True("duration('1.5s') == duration('1500ms')"));
  EXPECT_TRUE(True("duration('-1h') < duration('0')"));
  EXPECT_TRUE(True(
      "timestamp('2023-10-11T10:00:00Z') + duration('1h') == timestamp('2023-10-11T11:00:00Z')"));
  EXPECT_TRUE(True(
      "timestamp('2023-10-11T11:00:00Z') - timestamp('2023-10-11T10:00:00Z') == duration('3600s')"));
  EXPECT_TRUE(True("timestamp('2023-10-11T11:00:00Z') - duration('1h') == timestamp('2023-10-11T10:00:00Z')"));
  EXPECT_TRUE(True("duration('1h') + duration('1m') == duration('61m')"));
  EXPECT_TRUE(True("timestamp('2023-10-11T11:22:33Z').getHours() == 11"));
  EXPECT_TRUE(True("timestamp('2023-10-11T11:22:33Z').getFullYear() == 2023"));
  EXPECT_TRUE(True("timestamp('2023-10-11T11:22:33Z').getMonth() == 9"));
  EXPECT_TRUE(True("int(timestamp('1970-01-01T00:01:00Z')) == 60"));
  EXPECT_TRUE(Fails("timestamp('yesterday') < timestamp('2023-10-11T10:00:00Z')"));
  EXPECT_TRUE(Fails("duration('1x') < duration('1h')"));
  EXPECT_TRUE(Fails("timestamp('2023-10-11T10:00:00Z') + timestamp('2023-10-11T10:00:00Z') > "
                    "timestamp('2023-10-11T10:00:00Z')"));
  std::vector<ConditionParameter> ps = {P("ts", "timestamp"), P("d", "duration")};
  EXPECT_TRUE(True("ts < timestamp('2023-10-11T10:00:00.000Z') && d > duration('1m')", ps,
                   R"({"ts": "2023-10-11T09:00:00Z", "d": "2m"})"));
  EXPECT_TRUE(Fails("ts < timestamp('2023-10-11T10:00:00.000Z')", ps, R"({"ts": "soon", "d": "1m"})"));
}

TEST(Cel, IpAddress) {
  EXPECT_TRUE(True("ipaddress('10.1.2.3').in_cidr('10.0.0.0/8')"));
  EXPECT_TRUE(False("ipaddress('11.1.2.3').in_cidr('10.0.0.0/8')"));
  EXPECT_TRUE(True("ipaddress('192.168.0.1').in_cidr('192.168.0.0/24')"));
  EXPECT_TRUE(True("ipaddress('2001:db8::1').in_cidr('2001:db8::/32')"));
  EXPECT_TRUE(False("ipaddress('2001:db9::1').in_cidr('2001:db8::/32')"));
  EXPECT_TRUE(False("ipaddress('10.0.0.1').in_cidr('::/0')"));
  EXPECT_TRUE(True("ipaddress('0.0.0.0').in_cidr('0.0.0.0/0')"));
  EXPECT_TRUE(Fails("ipaddress('10.0.0.256').in_cidr('10.0.0.0/8')"));
  EXPECT_TRUE(Fails("ipaddress('10.0.0.1').in_cidr('10.0.0.0/33')"));
  EXPECT_TRUE(Fails("ipaddress('10.0.0.1').in_cidr('nope')"));
  EXPECT_TRUE(Fails("ipaddress('1::2::3').in_cidr('::/0')"));
  std::vector<ConditionParameter> ps = {P("ip", "ipaddress"), P("cidr", "string")};
  EXPECT_TRUE(True("ip.in_cidr(cidr)", ps, R"({"ip": "192.168.0.1", "cidr": "192.168.0.0/24"})"));
  EXPECT_TRUE(Fails("ip.in_cidr(cidr)", ps, R"({"ip": "not an ip", "cidr": "192.168.0.0/24"})"));
}

TEST(Cel, ParameterConversion) {
  EXPECT_TRUE(True("x < 100", {P("x", "int")}, R"({"x": 10})"));
  EXPECT_TRUE(True("x < 100", {P("x", "int")}, R"({"x": 10.0})"));  // integral double
  EXPECT_TRUE(Fails("x < 100", {P("x", "int")}, R"({"x": 10.5})"));
  EXPECT_TRUE(Fails("x < 100", {P("x", "int")}, R"({"x": true})"));
  EXPECT_TRUE(True("x == 5u", {P("x", "uint")}, R"({"x": 5})"));
  EXPECT_TRUE(Fails("x == 5u", {P("x", "uint")}, R"({"x": -5})"));
  EXPECT_TRUE(True("x > 0.0", {P("x", "double")}, R"({"x": 1})"));
  EXPECT_TRUE(Fails("x > 0.0", {P("x", "double")}, R"({"x": "1e400"})"));
  EXPECT_TRUE(True("b", {P("b", "bool")}, R"({"b": true})"));
  EXPECT_TRUE(Fails("b", {P("b", "bool")}, R"({"b": "yes"})"));
  EXPECT_TRUE(Fails("s == 'a'", {P("s", "string")}, R"({"s": 1})"));
  EXPECT_TRUE(True("a == 1 && size(a2) == 2", {P("a", "any"), P("a2", "any")}, R"({"a": 1, "a2": [1, "x"]})"));
  // Missing parameters are reported, not evaluated.
  auto prog = Program::Compile(Cond("x < 1 || y < 1", {P("x", "int"), P("y", "int")}));
  ASSERT_TRUE(prog.ok());
  auto out = (*prog)->Evaluate("", R"({"x": 0})");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->missing, std::vector<std::string>{"y"});
  // The tuple's context wins over the request's.
  auto merged = (*prog)->Evaluate(R"({"x": 5, "y": 5})", R"({"x": 0, "y": 0})");
  ASSERT_TRUE(merged.ok());
  EXPECT_FALSE(merged->value);
  // Malformed contexts.
  EXPECT_FALSE((*prog)->Evaluate("[1]", "").ok());
  EXPECT_FALSE((*prog)->Evaluate("", "{not json").ok());
}

TEST(Cel, CompileErrors) {
  EXPECT_TRUE(CompileFails(""));
  EXPECT_TRUE(CompileFails("x <"));
  EXPECT_TRUE(CompileFails("(1 < 2"));
  EXPECT_TRUE(CompileFails("1 < 2)"));
  EXPECT_TRUE(CompileFails("y < 1", {P("x", "int")}));  // undeclared parameter
  EXPECT_TRUE(CompileFails("nosuchfn(1)"));
  EXPECT_TRUE(CompileFails("'unterminated"));
  EXPECT_TRUE(CompileFails("'bad \\q escape'"));
  EXPECT_TRUE(CompileFails("1 = 1"));
  auto st = Program::Compile(Cond("x <", {P("x", "int")})).status();
  EXPECT_EQ(OpenFgaErrorCode(st), 2000);
}

TEST(Cel, TypeCheck) {
  std::vector<ConditionParameter> ps = {P("x", "int"), P("s", "string"), P("ts", "timestamp"), P("ip", "ipaddress"),
                                        P("l", "list", {"int"}), P("a", "any")};
  EXPECT_FALSE(CompileFails("x < 10 && s == 'a' && ts < timestamp('2023-01-01T00:00:00Z') && "
                            "ip.in_cidr('10.0.0.0/8') && 1 in l && a == 1", ps));
  EXPECT_TRUE(CompileFails("x + 1", ps));           // not a bool
  EXPECT_TRUE(CompileFails("s", ps));               // not a bool
  EXPECT_TRUE(CompileFails("x < 'a'", ps));
  EXPECT_TRUE(CompileFails("x + s == 1", ps));
  EXPECT_TRUE(CompileFails("!x", ps));
  EXPECT_TRUE(CompileFails("x && true", ps));
  EXPECT_TRUE(CompileFails("s.in_cidr('10.0.0.0/8')", ps));
  EXPECT_TRUE(CompileFails("x.contains('a')", ps));
  EXPECT_TRUE(CompileFails("1 in x", ps));
  EXPECT_TRUE(CompileFails("x[0] == 1", ps));
  EXPECT_TRUE(CompileFails("s.nosuchmethod()", ps));
  EXPECT_TRUE(CompileFails("ts.getNothing() == 1", ps));
  EXPECT_TRUE(CompileFails("ts + ts > ts", ps));
  EXPECT_FALSE(CompileFails("ts - ts > duration('1h')", ps));
  EXPECT_FALSE(CompileFails("a", ps));               // dyn: checked at evaluation
  EXPECT_FALSE(CompileFails("x == 1.0 && x < 2u", ps));  // numeric comparisons across types
}

TEST(Cel, Bounds) {
  // Too many nodes.
  std::string big = "1";
  for (int i = 0; i < 3000; ++i) big += " + 1";
  EXPECT_TRUE(CompileFails(big + " > 0"));
  // Too deep.
  EXPECT_TRUE(CompileFails(std::string(500, '(') + "true" + std::string(500, ')')));
  EXPECT_TRUE(CompileFails(std::string(500, '!') + "true"));
  // Too long.
  EXPECT_TRUE(CompileFails("'" + std::string(kMaxExpressionSize, 'a') + "' == ''"));
  // Growing strings and lists stop at the size limits.
  std::vector<ConditionParameter> ps = {P("s", "string"), P("l", "list", {"int"})};
  std::string s(kMaxStringSize / 2 + 1, 'a');
  EXPECT_TRUE(Fails("size(s + s) > 0", ps, R"({"s": ")" + s + R"(", "l": []})"));
  std::string list = "[";
  for (size_t i = 0; i < kMaxListSize / 2 + 1; ++i) list += (i ? ",1" : "1");
  list += "]";
  EXPECT_TRUE(Fails("size(l + l) > 0", ps, R"({"s": "", "l": )" + list + "}"));
  std::string huge = "[";
  for (size_t i = 0; i < kMaxListSize + 1; ++i) huge += (i ? ",1" : "1");
  huge += "]";
  EXPECT_TRUE(Fails("size(l) > 0", ps, R"({"s": "", "l": )" + huge + "}"));
  // Worst-case substring search stays fast.
  std::string hay(kMaxStringSize - 1, 'a');
  std::string needle(kMaxStringSize / 2, 'a');
  needle.back() = 'b';
  EXPECT_TRUE(False("s.contains(s2)", {P("s", "string"), P("s2", "string")},
                    R"({"s": ")" + hay + R"(", "s2": ")" + needle + R"("})"));
  // Regex input bounded.
  std::string longs(kMaxRegexInput + 1, 'a');
  EXPECT_TRUE(Fails("s.matches('a+')", ps, R"({"s": ")" + longs + R"(", "l": []})"));
}

TEST(Cel, HostileExpressionsStayBounded) {
  // Wide expressions within the node bound evaluate quickly; `in` over large
  // lists is bounded by the step budget.
  std::string wide = "true";
  for (int i = 0; i < 200; ++i) wide += " && true";
  EXPECT_TRUE(True(wide));
  std::string wide_list = "[1";
  for (int i = 0; i < 1500; ++i) wide_list += ",1";
  EXPECT_TRUE(True(wide_list + "][0] == 1"));  // wide (not deep) literals are fine
  std::vector<ConditionParameter> ps = {P("l", "list", {"int"})};
  std::string list = "[";
  for (size_t i = 0; i < kMaxListSize; ++i) list += (i ? ",1" : "1");
  list += "]";
  EXPECT_TRUE(False("2 in l", ps, R"({"l": )" + list + "}"));
  // Long postfix and operator chains (deep ASTs) are bounded by the AST
  // height limit; the longest allowed evaluate without exhausting the stack.
  auto size_chain = [](size_t n) {
    std::string chain = "y";
    for (size_t i = 0; i < n; ++i) chain += ".size()";
    return chain + " > 0";
  };
  EXPECT_TRUE(CompileFails(size_chain(1900), {P("y", "string")}));
  auto deep = Program::Compile(Cond(size_chain(kMaxAstDepth - 3), {P("y", "string")}));
  ASSERT_TRUE(deep.ok()) << deep.status().ToString();
  EXPECT_FALSE((*deep)->Evaluate("", R"({"y": "a"})").ok());
  auto sum = [](size_t n) {
    std::string s = "x";
    for (size_t i = 0; i < n; ++i) s += " + x";
    return s + " > 0";
  };
  EXPECT_TRUE(CompileFails(sum(990), {P("x", "int")}));
  EXPECT_TRUE(True(sum(kMaxAstDepth - 3), {P("x", "int")}, R"({"x": 1})"));
  // Patterns that make std::regex backtrack exponentially are refused.
  std::string as = R"({"s": ")" + std::string(kMaxRegexInput, 'a') + R"("})";
  for (const char* bad : {"(a|aa)*b", "(a+)+b", "(a*)*b", "((a)+)+b", "(a|a)+$", "(a)\\\\1"}) {
    EXPECT_TRUE(Fails(std::string("s.matches('") + bad + "')", {P("s", "string")}, as)) << bad;
  }
  for (const char* ok : {"^a+$", "(ab)+", "a{2,5}", "[a-z]+@(x|y)\\\\.com", "(a)?b"}) {
    auto r = RunExpr(std::string("s.matches('") + ok + "')", {P("s", "string")}, as);
    EXPECT_TRUE(r.ok()) << ok << ": " << r.status().ToString();
  }
  // Random byte soup never crashes the parser.
  std::string alphabet = "()[]{}!<>=&|?:.,'\"+-*/%0123456789abxyz \\";
  uint32_t seed = 12345;
  for (int i = 0; i < 2000; ++i) {
    std::string e;
    int n = static_cast<int>(seed % 40);
    for (int k = 0; k < n; ++k) {
      seed = seed * 1103515245u + 12345u;
      e += alphabet[(seed >> 16) % alphabet.size()];
    }
    seed = seed * 1103515245u + 12345u;
    auto p = Program::Compile(Cond(e, {P("x", "int"), P("y", "string")}));
    if (p.ok()) (void)(*p)->Evaluate("", R"({"x": 1, "y": "a"})");
  }
}

}  // namespace
}  // namespace aigis::authz::cel

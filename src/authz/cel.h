// Internal to the authz module: a bounded evaluator for the subset of CEL
// that OpenFGA conditions use. Not part of the public API.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "authz/authz.h"

namespace aigis::authz::cel {

// Bounds: a compiled expression has at most kMaxNodes AST nodes; one
// evaluation takes at most kMaxSteps steps; strings and lists built or
// received are at most kMaxStringSize bytes / kMaxListSize elements.
constexpr size_t kMaxExpressionSize = 16 * 1024;
constexpr size_t kMaxNodes = 2000;
constexpr size_t kMaxDepth = 100;      // parenthesis / unary nesting while parsing
constexpr size_t kMaxAstDepth = 250;  // any chain (a + b + ..., x.f().g()...) bounds the evaluator's recursion
constexpr size_t kMaxSteps = 100000;
constexpr size_t kMaxStringSize = 64 * 1024;
constexpr size_t kMaxListSize = 10000;
constexpr size_t kMaxRegexInput = 1024;  // std::regex backtracks recursively
constexpr size_t kMaxRegexPattern = 256;

struct Node;

// A tuple's condition context as OpenFGA's Write checks it: a JSON object
// (or "") whose keys are parameters of `condition` and whose values convert
// to the declared types. kInvalidArgument with the reason otherwise.
Status ValidateContext(const Condition& condition, std::string_view context);

// A condition's expression, parsed and checked against its parameters.
class Program {
 public:
  // kInvalidArgument ("validation_error: ...") when the expression does not
  // parse, names an undeclared parameter or exceeds the bounds.
  static Result<std::shared_ptr<const Program>> Compile(const Condition& condition);
  ~Program();

  struct Outcome {
    bool value = false;
    std::vector<std::string> missing;  // parameters absent from both contexts (value is false then)
  };
  // Evaluates with the merged context: the tuple's context wins over the
  // request's on a conflict (OpenFGA). Each context is JSON object text or
  // "". Values are converted to the declared parameter types. Errors
  // (malformed context, conversion, evaluation, non-bool result, bounds) are
  // kInvalidArgument "validation_error: failed to evaluate relationship
  // condition '<name>': ...".
  Result<Outcome> Evaluate(std::string_view tuple_context, std::string_view request_context) const;

  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  Program();

 private:
  friend struct Compiler;
  Condition condition_;
  std::vector<std::unique_ptr<Node>> nodes_;
  const Node* root_ = nullptr;
};

}  // namespace aigis::authz::cel

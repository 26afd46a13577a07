// Internal to the gateway module: the guard screens (screen.cc).
//
//   request:  messages --scan--> verdict --block--> 400 content_blocked
//                                        --mask---> vault, forward body and
//                                                   ex.messages rewritten
//             --> external classifier (gateway.cc does the HTTP call)
//   response: body or SSE text deltas --scan (stream mode across events)-->
//             verdict --block--> error (event); new secrets masked (never
//             restored); the request's placeholders restored (unmasking,
//             a placeholder split across events is held back until whole)
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/json/value.hpp>

#include "gateway/gateway.h"
#include "guard/guard.h"

namespace aigis::gateway {

// Scans every message of the request with the guard rules (tool messages as
// tool results, the rest as request text) under the policy that applies to
// the route and principal, records the outcome on the exchange, denies with
// 400 `content_blocked` (naming the rule and category, never the matched
// text) when enforce mode blocks, and masks what `mask` rules found: in the
// forward body and in ex.messages, with a per-exchange vault the response
// screen uses to restore the values.
class ScreenRequestStage : public Stage {
 public:
  virtual void SetRules(std::shared_ptr<const guard::RuleSet> rules) = 0;
  virtual std::shared_ptr<const guard::RuleSet> rules() const = 0;
};
std::shared_ptr<ScreenRequestStage> MakeScreenRequestStage(std::shared_ptr<const guard::RuleSet> rules);

// Scans what the upstream answered (the whole body, or each SSE event's
// text delta through one stream-mode scanner, so a value split across
// events is still found), blocks, masks and unmasks. It acts only on
// exchanges the request screen screened.
std::shared_ptr<ResponseStage> MakeScreenResponseStage();

// The external classifier (guard.classifier): the JSON body to POST for
// this exchange, or nullopt when it is not to be asked (no classifier, guard
// off, or the request is already blocked).
std::optional<std::string> ClassifierRequestBody(const Exchange& ex);
// Judges the classifier's answer (HTTP status and body), or the error that
// prevented one, under the exchange's policy and the configured failure mode.
struct ClassifierAnswer {
  int status = 0;
  std::string body;
};
Decision JudgeClassifier(Exchange& ex, const Result<ClassifierAnswer>& answer);

// MCP tool traffic (gateway/mcp.cc), under the policy that applies to the
// exchange's route ("mcp/<server>") and principal; nothing is screened when
// guard is off. Tool arguments (`where` kToolArgs, before the call) are the
// request side of ex.guard, a tool result (kToolResult) its response side.
// Every string of `doc` (and every member name) is scanned; a block denies
// with 400 content_blocked; mask rules rewrite the strings in `doc` in place
// (arguments: restorable, so the result carries the caller's values back;
// results: never restored), and a result gets the arguments' placeholders
// restored. Fails closed (503) when guard is on without rules.
Decision ScreenToolJson(Exchange& ex, const std::shared_ptr<const guard::RuleSet>& rules, guard::Where where,
                        boost::json::value& doc);
// A tool definition (one element of tools/list) screened for poisoning at
// discovery (kToolDescription), under the exchange's policy. `verdict.block`
// means: hide it and refuse its calls.
guard::Verdict ScreenToolDefinition(const Exchange& ex, const guard::RuleSet& rules, std::string_view tool_json);

// `text` with every value the exchange's masking vault holds replaced by its
// placeholder (the audit record's copy of a response the client saw
// unmasked).
std::string RemaskForRecord(const Exchange& ex, std::string_view text);

}  // namespace aigis::gateway

// Internal to the gateway module: the request screen (screen.cc).
#pragma once

#include <memory>

#include "gateway/gateway.h"
#include "guard/guard.h"

namespace aigis::gateway {

// Scans every message of the request with the guard rules (tool messages as
// tool results, the rest as request text), judges the findings with the
// config's thresholds and mode, records the outcome on the exchange, and
// denies with 400 `content_blocked` (naming the rule and category, never
// the matched text) when enforce mode blocks.
class ScreenRequestStage : public Stage {
 public:
  virtual void SetRules(std::shared_ptr<const guard::RuleSet> rules) = 0;
};
std::shared_ptr<ScreenRequestStage> MakeScreenRequestStage(std::shared_ptr<const guard::RuleSet> rules);

}  // namespace aigis::gateway

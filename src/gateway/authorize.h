// Internal to the gateway module: the authorize stage (authorize.cc).
#pragma once

#include <memory>

#include "authz/authz.h"
#include "gateway/gateway.h"

namespace aigis::gateway {

// Runs the checks of config.authz.checks for the exchange's route kind
// against the store config.authz.store of the caller's tenant. Every check
// must allow; anything that cannot be answered denies (fail closed).
class AuthorizeStage : public Stage {
 public:
  struct Stats {
    uint64_t allowed = 0, denied = 0, errors = 0, cache_hits = 0;
  };
  virtual Stats stats() const = 0;
};
std::shared_ptr<AuthorizeStage> MakeAuthorizeStage(std::shared_ptr<authz::Service> service);

// Who a check is repeated for: the caller as "type:id" ("user:*" when
// anonymous) and each actor of its `act` chain as "agent:<id>".
std::vector<std::string> SubjectsOf(const Principal& p);
// The request context for conditions: only the values the model's
// conditions declare (client_ip, request_time, principal_kind), so that
// unconditional models keep an empty context and the check cache stays
// effective. JSON object text, "" when empty.
std::string ConditionContext(const authz::Engine& engine, const Exchange& ex);
// "1.2.3.4:567" / "::1:567" -> the address.
std::string AddressOf(std::string_view remote);

// Expands "{name}" references; unknown names expand to "".
std::string ExpandTemplate(std::string_view tmpl, const std::vector<std::pair<std::string_view, std::string>>& vars);

}  // namespace aigis::gateway

// Mounting on the gateway. Kept apart from admin.cc so that the handler and
// its tests do not link the gateway's listener machinery.
#include <spdlog/spdlog.h>

#include "admin/admin.h"

namespace aigis::admin {

void Install(gateway::Gateway& gw, std::shared_ptr<identity::Identity> id, AdminOptions opt) {
  if (opt.token.size() < kMinAdminTokenChars) {
    spdlog::error("admin API: no usable admin token; every admin call will be refused (401)");
  }
  auto shared_opt = std::make_shared<const AdminOptions>(std::move(opt));
  gw.Handle(
      gateway::Listener::kAdmin, "/admin/v1/",
      [id = std::move(id), shared_opt](const gateway::HttpRequest& req) { return HandleAdmin(*id, *shared_opt, req); },
      /*blocking=*/true);
}

}  // namespace aigis::admin

// The MCP tool registry's admin API (docs/mcp.md):
//   GET  /admin/v1/mcp/servers/{server}/tools               every tool ever listed, with state and diff
//   POST /admin/v1/mcp/servers/{server}/tools/{tool}:approve {"fingerprint": "<the version reviewed>"}
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "admin/internal.h"
#include "registry/registry.h"

namespace aigis::admin {

namespace json = boost::json;
using namespace internal;  // NOLINT

namespace {

constexpr std::string_view kPrefix = "/admin/v1/mcp/servers/";

json::object ToJson(const registry::ToolStatus& t) {
  json::array changes;
  for (const auto& c : t.changes) changes.push_back(json::object{{"pointer", c.pointer}, {"before", c.before}, {"after", c.after}});
  json::object o{{"server", t.server},
                 {"tool", t.tool},
                 {"state", registry::ToString(t.state)},
                 {"fingerprint", t.fingerprint},
                 {"approved_fingerprint", t.approved_fingerprint}};
  if (!changes.empty()) o["changes"] = std::move(changes);
  return o;
}

// "%2F" and friends in a path segment (tool names may hold any character).
Result<std::string> Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) {
      return InvalidArgument("bad percent-encoding in the path");
    }
    out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
    i += 2;
  }
  return out;
}

gateway::HttpResponse Route(registry::ToolPins& pins, const gateway::HttpRequest& req, const std::string& tenant) {
  std::string_view rest = req.path.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return NoRoute(req.path);
  auto server = Unescape(rest.substr(0, slash));
  if (!server.ok()) return ErrorResponse(server.status());
  rest.remove_prefix(slash + 1);
  if (rest == "tools") {
    if (req.method != "GET") return MethodNotAllowed(req.method, "GET");
    auto list = pins.List(tenant, *server);
    if (!list.ok()) return ErrorResponse(list.status());
    json::array tools;
    for (const auto& t : *list) tools.push_back(ToJson(t));
    return JsonResponse(200, json::object{{"tools", std::move(tools)}});
  }
  constexpr std::string_view kApprove = ":approve";
  if (!rest.starts_with("tools/") || !rest.ends_with(kApprove)) return NoRoute(req.path);
  if (req.method != "POST") return MethodNotAllowed(req.method, "POST");
  auto tool = Unescape(rest.substr(6, rest.size() - 6 - kApprove.size()));
  if (!tool.ok()) return ErrorResponse(tool.status());
  std::error_code ec;
  json::value body = json::parse(json::string_view(req.body.data(), req.body.size()), ec);
  const json::object* o = ec ? nullptr : body.if_object();
  if (o == nullptr) return ErrorResponse(400, "invalid_argument", "send a JSON object: {\"fingerprint\": \"<the version you reviewed>\"}");
  for (const auto& kv : *o) {
    if (kv.key() != "fingerprint") return ErrorResponse(400, "invalid_argument", fmt::format("unknown field '{}'", Printable(kv.key(), 64)));
  }
  const json::value* fp = o->if_contains("fingerprint");
  if (fp == nullptr || !fp->is_string() || fp->get_string().empty()) {
    return ErrorResponse(400, "invalid_argument",
                         "'fingerprint' is required: the fingerprint of the version you reviewed "
                         "(GET /admin/v1/mcp/servers/{server}/tools lists it)");
  }
  auto approved = pins.Approve(tenant, *server, *tool, std::string_view(fp->get_string()), "admin");
  if (!approved.ok()) return ErrorResponse(approved.status());
  spdlog::info("mcp: tool {}/{} approved at fingerprint {}", *server, *tool, approved->fingerprint);
  return JsonResponse(200, ToJson(*approved));
}

}  // namespace

gateway::HttpResponse HandleMcp(registry::ToolPins& pins, const AdminOptions& opt, const gateway::HttpRequest& req) {
  try {
    std::string why;
    if (!Authorized(opt, req, &why)) return Unauthorized(why);
    auto q = ParseQuery(req.query);
    if (!q.ok()) return ErrorResponse(q.status());
    if (Status st = q->Only({}); !st.ok()) return ErrorResponse(st);
    auto tenant = ResolveTenant(req, *q);
    if (!tenant.ok()) return ErrorResponse(tenant.status());
    return Route(pins, req, *tenant);
  } catch (const std::exception& e) {
    spdlog::error("admin: {} {} failed: {}", Printable(req.method, 16), Printable(req.path, 128), e.what());
    return ErrorResponse(Internal("internal error"));
  }
}

void InstallMcp(gateway::Gateway& gw, std::shared_ptr<registry::ToolPins> pins, AdminOptions opt) {
  auto shared_opt = std::make_shared<const AdminOptions>(std::move(opt));
  gw.Handle(
      gateway::Listener::kAdmin, std::string(kPrefix),
      [pins = std::move(pins), shared_opt](const gateway::HttpRequest& req) { return HandleMcp(*pins, *shared_opt, req); },
      /*blocking=*/true);
}

}  // namespace aigis::admin

// admin: the REST API that manages identity (agents, client secrets, API
// keys, signing keys), served on the admin listener under /admin/v1/.
//
// Contract:
// * Every call needs `Authorization: Bearer <admin token>` (compared in
//   constant time); anything else is 401 with `WWW-Authenticate`. There is no
//   anonymous admin call, and an empty configured token admits nobody.
// * The tenant is the `X-Aigis-Tenant` header, else the `tenant` query
//   parameter, else "default". Every call acts inside that tenant only.
// * JSON in and out. Request bodies are JSON objects; unknown fields, wrong
//   types and unknown query parameters are 400 naming the culprit. Errors are
//   {"error":{"code":"<CodeName>","message":"..."}}; the HTTP status is
//   HttpStatusFor(code), except kFailedPrecondition (a state conflict such as
//   "suspend a decommissioned agent"), which is 409 here: core maps it to 503
//   because for the data plane it means "draining", and an admin client must
//   not retry a conflict as if the server were unavailable.
// * Secrets (client secrets, API keys) appear once, in the response that
//   creates them; every response carries `Cache-Control: no-store`.
//
// HandleAdmin is a pure request -> response function over an Identity; it
// blocks on the store (identity writes), so Install mounts it as a blocking
// handler (the gateway's blocking pool, never an I/O thread).
#pragma once

#include <memory>
#include <string>

#include "audit/audit.h"
#include "authz/authz.h"
#include "core/core.h"
#include "gateway/gateway.h"
#include "identity/identity.h"

namespace aigis::registry {
class ToolPins;
}

namespace aigis::admin {

// At least this many characters in an admin token (env or file).
inline constexpr size_t kMinAdminTokenChars = 32;

// The admin bearer token. `env_value` is getenv("AIGIS_ADMIN_TOKEN"), nullptr
// if unset.
// * Set: it must be >= 32 printable ASCII characters (surrounding whitespace
//   trimmed), else kInvalidArgument (aigis refuses to start).
// * Unset: <data_dir>/admin.token is read if it exists; it is refused if it
//   is not a regular file, if group or others have any access to it, or if
//   its token is too short. If it does not exist, 32 random bytes are
//   generated (base64url), data_dir is created (0700) if needed, the file is
//   written with mode 0600 (O_CREAT|O_EXCL, fchmod), and *created is set so
//   that the caller can log where the token is.
// `created` and `path` may be null; *path is set to the file's path whenever
// the file is used.
Result<std::string> LoadAdminToken(const std::string& data_dir, const char* env_value, bool* created,
                                   std::string* path);

struct AdminOptions {
  std::string token;  // the admin bearer token (LoadAdminToken); "" admits nobody
};

// Serves one admin request. Thread-safe (Identity is); blocks on the store.
gateway::HttpResponse HandleAdmin(identity::Identity& id, const AdminOptions& opt, const gateway::HttpRequest& req);

// Mounts HandleAdmin on the admin listener under "/admin/v1/" (blocking).
// Call before Gateway::Start().
void Install(gateway::Gateway& gw, std::shared_ptr<identity::Identity> id, AdminOptions opt);

// The OpenFGA-compatible HTTP API (OpenFGA's paths, JSON shapes and error
// shape {"code","message"}) over authz::Service: /stores, /stores/{id},
// authorization-models, write, read, check, batch-check, list-objects,
// list-users, expand, changes. Same admin bearer token (what
// the OpenFGA SDKs send with the api_token method) and X-Aigis-Tenant.
gateway::HttpResponse HandleOpenFga(authz::Service& svc, const AdminOptions& opt, const gateway::HttpRequest& req);
// Mounts HandleOpenFga on the admin listener at "/stores" and "/stores/"
// (blocking). Call before Gateway::Start().
void InstallOpenFga(gateway::Gateway& gw, std::shared_ptr<authz::Service> svc, AdminOptions opt);

// The audit log's API under /admin/v1/audit/ (docs/audit.md): checkpoint
// (GET latest, POST issue), keys (GET, POST keys/rotate), records (GET with
// from, to, since, until, principal, decision, limit; records/{index}),
// proof/inclusion (index or request_id, size), proof/consistency (from, to),
// export (from, to; JSON lines), verify (POST). Same token and tenant rules.
gateway::HttpResponse HandleAudit(audit::Log& log, const std::string& origin, const AdminOptions& opt,
                                  const gateway::HttpRequest& req);
// Mounts HandleAudit at "/admin/v1/audit/" (blocking). Call before Install,
// whose "/admin/v1/" prefix would otherwise take these paths.
void InstallAudit(gateway::Gateway& gw, std::shared_ptr<audit::Log> log, std::string origin, AdminOptions opt);

// The MCP tool registry under /admin/v1/mcp/servers/ (docs/mcp.md): GET
// {server}/tools (state, fingerprints, the diff of a quarantined tool) and
// POST {server}/tools/{tool}:approve with {"fingerprint": ...}, the version
// reviewed. Same token and tenant rules.
gateway::HttpResponse HandleMcp(registry::ToolPins& pins, const AdminOptions& opt, const gateway::HttpRequest& req);
void InstallMcp(gateway::Gateway& gw, std::shared_ptr<registry::ToolPins> pins, AdminOptions opt);

}  // namespace aigis::admin

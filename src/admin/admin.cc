// The admin REST API: routing, validation and JSON mapping over Identity.
// Identity enforces the rules (name lengths, scope syntax, state changes);
// this file checks only the shape of requests (fields, types, query
// parameters) and turns Statuses into HTTP.
#include "admin/admin.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <utility>

#include "admin/internal.h"
#include "crypto/crypto.h"

namespace aigis::admin {

// Helpers shared with audit.cc (admin/internal.h), then this file's own.
namespace internal {

namespace json = boost::json;
using gateway::HttpRequest;
using gateway::HttpResponse;
using identity::Identity;

constexpr std::string_view kPrefix = "/admin/v1/";
constexpr std::string_view kRealm = "Bearer realm=\"aigis-admin\"";
constexpr size_t kMaxQueryParams = 16;
constexpr size_t kMaxQueryValue = 1024;
constexpr size_t kMaxIdChars = 128;
constexpr size_t kMaxTenantChars = 64;
constexpr size_t kMaxJsonDepth = 32;

// ------------------------------------------------------------ responses ----

int AdminHttpStatus(Code code) {
  // A state conflict, not "the server is draining" (see admin.h).
  return code == Code::kFailedPrecondition ? 409 : HttpStatusFor(code);
}

// Caller-supplied text echoed in a message: printable ASCII only, bounded,
// so that an error body is always valid UTF-8 and never a megabyte.
std::string Printable(std::string_view s, size_t max = 64) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  if (s.size() > max) out += "...";
  return out;
}

HttpResponse JsonResponse(int status, const json::value& v) {
  HttpResponse r;
  r.status = status;
  r.headers.Set("Content-Type", "application/json");
  r.headers.Set("Cache-Control", "no-store");
  r.body = json::serialize(v);
  return r;
}

HttpResponse NoContent() {
  HttpResponse r;
  r.status = 204;
  r.headers.Set("Cache-Control", "no-store");
  return r;
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  json::object e;
  e["code"] = code;
  e["message"] = message;
  json::object body;
  body["error"] = std::move(e);
  return JsonResponse(status, body);
}

HttpResponse ErrorResponse(const Status& st) {
  return ErrorResponse(AdminHttpStatus(st.code()), CodeName(st.code()), st.message());
}

HttpResponse Unauthorized(std::string_view message) {
  HttpResponse r = ErrorResponse(401, CodeName(Code::kUnauthenticated), message);
  r.headers.Set("WWW-Authenticate", std::string(kRealm));
  return r;
}

HttpResponse MethodNotAllowed(std::string_view method, std::string_view allow) {
  HttpResponse r = ErrorResponse(405, "method_not_allowed",
                                 fmt::format("method {} is not allowed here; use {}", Printable(method, 16), allow));
  r.headers.Set("Allow", std::string(allow));
  return r;
}

HttpResponse NoRoute(std::string_view path) {
  return ErrorResponse(NotFound(fmt::format("no admin endpoint at '{}'", Printable(path, 128))));
}

// ---------------------------------------------------------------- input ----

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}
// Agent, credential and API key ids are all of this shape; anything else in
// a path cannot name a resource (and never reaches a message unescaped).
bool PlausibleId(std::string_view s) {
  return !s.empty() && s.size() <= kMaxIdChars && std::all_of(s.begin(), s.end(), IsIdChar);
}


bool IsCleanText(std::string_view s) {
  return IsValidUtf8(s) && std::none_of(s.begin(), s.end(), [](char c) {
           auto u = static_cast<unsigned char>(c);
           return u < 0x20 || u == 0x7f;
         });
}

const std::string* Query::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string Query::Get(std::string_view key) const {
  const std::string* v = Find(key);
  return v ? *v : std::string();
}

Status Query::Only(std::initializer_list<std::string_view> allowed) const {
  for (const auto& [k, v] : items) {
    if (k == "tenant") continue;
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return InvalidArgument(fmt::format("unknown query parameter '{}'", Printable(k)));
    }
  }
  return {};
}

Result<Query> ParseQuery(std::string_view text) {
  Query q;
  ASSIGN_OR_RETURN(auto pairs, ParseUrlEncoded(text, kMaxQueryParams));
  for (auto& [key, value] : pairs) {
    if (value.size() > kMaxQueryValue) {
      return InvalidArgument(fmt::format("query parameter '{}' is too long", Printable(key)));
    }
    if (!IsCleanText(key) || !IsCleanText(value)) {
      return InvalidArgument(fmt::format("query parameter '{}' is not clean UTF-8 text", Printable(key)));
    }
    if (q.Find(key)) return InvalidArgument(fmt::format("query parameter '{}' is repeated", Printable(key)));
    q.items.emplace_back(std::move(key), std::move(value));
  }
  return q;
}

Result<std::string> ResolveTenant(const HttpRequest& req, const Query& q) {
  const std::string* header = req.headers ? req.headers->Find("X-Aigis-Tenant") : nullptr;
  const std::string* param = q.Find("tenant");
  std::string tenant = header ? std::string(TrimWhitespace(*header)) : param ? *param : "default";
  if (header && param && tenant != *param) {
    return InvalidArgument("the X-Aigis-Tenant header and the tenant query parameter disagree");
  }
  if (tenant.empty() || tenant.size() > kMaxTenantChars || !IsCleanText(tenant)) {
    return InvalidArgument(fmt::format("tenant must be 1..{} characters of printable UTF-8", kMaxTenantChars));
  }
  return tenant;
}

Result<json::object> ParseBody(std::string_view body) {
  if (TrimWhitespace(body).empty()) return json::object();
  json::parse_options po;
  po.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec, {}, po);
  if (ec) return InvalidArgument(fmt::format("request body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) return InvalidArgument("request body must be a JSON object");
  return std::move(v.get_object());
}

// Typed access to a request body's fields; every error names the field.
class Fields {
 public:
  explicit Fields(const json::object& o) : o_(o) {}

  Status Only(std::initializer_list<std::string_view> allowed) const {
    for (const auto& kv : o_) {
      std::string_view k(kv.key().data(), kv.key().size());
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        return InvalidArgument(fmt::format("unknown field '{}'", Printable(k)));
      }
    }
    return {};
  }

  Result<std::optional<std::string>> String(std::string_view key) const {
    const json::value* v = o_.if_contains(key);
    if (!v) return std::optional<std::string>();
    if (!v->is_string()) return WrongType(key, "a string");
    return std::optional<std::string>(std::string(v->get_string()));
  }

  Result<std::optional<std::vector<std::string>>> Strings(std::string_view key) const {
    const json::value* v = o_.if_contains(key);
    if (!v) return std::optional<std::vector<std::string>>();
    if (!v->is_array()) return WrongType(key, "an array of strings");
    std::vector<std::string> out;
    const json::array& a = v->get_array();
    out.reserve(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_string()) return InvalidArgument(fmt::format("field '{}[{}]' must be a string", key, i));
      out.emplace_back(a[i].get_string());
    }
    return std::optional<std::vector<std::string>>(std::move(out));
  }

  Result<std::optional<int64_t>> Int(std::string_view key) const {
    const json::value* v = o_.if_contains(key);
    if (!v) return std::optional<int64_t>();
    if (v->is_int64()) return std::optional<int64_t>(v->get_int64());
    if (v->is_uint64()) return InvalidArgument(fmt::format("field '{}' is out of range", key));
    return WrongType(key, "an integer (seconds)");
  }

  // A JSON object, returned as its text; `null` is "" when allowed.
  Result<std::optional<std::string>> ObjectText(std::string_view key, bool null_ok) const {
    const json::value* v = o_.if_contains(key);
    if (!v) return std::optional<std::string>();
    if (v->is_null() && null_ok) return std::optional<std::string>(std::string());
    if (!v->is_object()) return WrongType(key, null_ok ? "a JSON object or null" : "a JSON object");
    return std::optional<std::string>(json::serialize(*v));
  }

 private:
  static Status WrongType(std::string_view key, std::string_view what) {
    return InvalidArgument(fmt::format("field '{}' must be {}", key, what));
  }
  const json::object& o_;
};

std::optional<std::chrono::seconds> Seconds(const std::optional<int64_t>& v) {
  if (!v) return std::nullopt;
  return std::chrono::seconds(*v);
}

// --------------------------------------------------------------- output ----

json::value ParsedOr(std::string_view text, json::value fallback) {
  if (text.empty()) return fallback;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? fallback : v;
}

json::value OptTime(const std::optional<WallTime>& t) {
  if (!t) return nullptr;
  return json::value(FormatRfc3339(*t));
}

json::array StringArray(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

json::object AgentJson(const identity::Agent& a) {
  json::object o;
  o["id"] = a.id;
  o["tenant"] = a.tenant;
  o["name"] = a.name;
  o["owner"] = a.owner;
  o["description"] = a.description;
  o["scopes"] = StringArray(a.scopes);
  o["metadata"] = ParsedOr(a.metadata, json::object());
  o["jwks"] = ParsedOr(a.jwks, nullptr);
  o["status"] = identity::AgentStatusName(a.status);
  o["created_at"] = FormatRfc3339(a.created_at);
  o["updated_at"] = FormatRfc3339(a.updated_at);
  return o;
}

json::object SecretInfoJson(const identity::Credential& c) {
  json::object o;
  o["credential_id"] = c.id;
  o["client_id"] = c.subject;
  o["created_at"] = FormatRfc3339(c.created_at);
  o["expires_at"] = OptTime(c.expires_at);
  o["revoked_at"] = OptTime(c.revoked_at);
  o["last_used_at"] = OptTime(c.last_used_at);
  o["replaced_by"] = c.replaced_by.empty() ? json::value(nullptr) : json::value(c.replaced_by);
  return o;
}

json::object IssuedSecretJson(const identity::IssuedSecret& s) {
  json::object o;
  o["client_id"] = s.client_id;
  o["client_secret"] = s.client_secret;
  o["credential_id"] = s.credential.id;
  o["created_at"] = FormatRfc3339(s.credential.created_at);
  if (s.credential.expires_at) o["expires_at"] = FormatRfc3339(*s.credential.expires_at);
  return o;
}

json::object ApiKeyInfoJson(const identity::Credential& c) {
  json::object o;
  o["key_id"] = c.id;
  o["subject"] = c.subject;
  o["subject_kind"] = c.subject_kind;
  o["scopes"] = StringArray(c.scopes);
  o["created_at"] = FormatRfc3339(c.created_at);
  o["expires_at"] = OptTime(c.expires_at);
  o["revoked_at"] = OptTime(c.revoked_at);
  o["last_used_at"] = OptTime(c.last_used_at);
  return o;
}

json::object KidsJson(const std::vector<std::string>& kids) {
  json::object o;
  o["kids"] = StringArray(kids);
  return o;
}

// ------------------------------------------------------------- handlers ----

// One request, after authentication and routing.
struct Call {
  Identity& id;
  const HttpRequest& req;
  Query query;
  std::string tenant;
};

#define ADMIN_TRY(lhs, expr)                      \
  auto AIGIS_CONCAT(_r_, __LINE__) = (expr);      \
  if (!AIGIS_CONCAT(_r_, __LINE__).ok())          \
    return ErrorResponse(AIGIS_CONCAT(_r_, __LINE__).status()); \
  lhs = std::move(AIGIS_CONCAT(_r_, __LINE__)).value()

#define ADMIN_CHECK(expr)                         \
  do {                                            \
    ::aigis::Status _s = (expr);                  \
    if (!_s.ok()) return ErrorResponse(_s);       \
  } while (0)

Result<identity::AgentStatus> ParseAgentStatus(std::string_view s) {
  if (s == "active") return identity::AgentStatus::kActive;
  if (s == "suspended") return identity::AgentStatus::kSuspended;
  if (s == "decommissioned") return identity::AgentStatus::kDecommissioned;
  return InvalidArgument("status must be one of active, suspended, decommissioned");
}

Result<int> ParsePageSize(std::string_view s) {
  int n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || n < 1 || n > 500) {
    return InvalidArgument("page_size must be an integer from 1 to 500");
  }
  return n;
}

HttpResponse ListAgents(Call& c) {
  ADMIN_CHECK(c.query.Only({"status", "owner", "name_prefix", "page_size", "page_token"}));
  identity::AgentQuery q;
  q.tenant = c.tenant;
  if (const std::string* s = c.query.Find("status")) {
    ADMIN_TRY(q.status, ParseAgentStatus(*s));
  }
  q.owner = c.query.Get("owner");
  q.name_prefix = c.query.Get("name_prefix");
  if (const std::string* s = c.query.Find("page_size")) {
    ADMIN_TRY(q.page_size, ParsePageSize(*s));
  }
  q.page_token = c.query.Get("page_token");
  ADMIN_TRY(identity::AgentPage page, c.id.ListAgents(q));
  json::array agents;
  agents.reserve(page.agents.size());
  for (const auto& a : page.agents) agents.emplace_back(AgentJson(a));
  json::object o;
  o["agents"] = std::move(agents);
  if (!page.next_page_token.empty()) o["next_page_token"] = page.next_page_token;
  return JsonResponse(200, o);
}

HttpResponse CreateAgent(Call& c, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  Fields f(body);
  ADMIN_CHECK(f.Only({"id", "name", "owner", "description", "scopes", "metadata", "jwks"}));
  identity::AgentSpec spec;
  spec.tenant = c.tenant;
  ADMIN_TRY(auto id, f.String("id"));
  ADMIN_TRY(auto name, f.String("name"));
  ADMIN_TRY(auto owner, f.String("owner"));
  ADMIN_TRY(auto description, f.String("description"));
  ADMIN_TRY(auto scopes, f.Strings("scopes"));
  ADMIN_TRY(auto metadata, f.ObjectText("metadata", false));
  ADMIN_TRY(auto jwks, f.ObjectText("jwks", true));
  if (!name) return ErrorResponse(InvalidArgument("field 'name' is required"));
  spec.id = id.value_or("");
  spec.name = *name;
  spec.owner = owner.value_or("");
  spec.description = description.value_or("");
  if (scopes) spec.scopes = std::move(*scopes);
  if (metadata) spec.metadata = std::move(*metadata);
  spec.jwks = jwks.value_or("");
  ADMIN_TRY(identity::Agent a, c.id.CreateAgent(spec));
  spdlog::info("admin: agent {} created in tenant {} (from {})", a.id, a.tenant, Printable(c.req.remote));
  HttpResponse r = JsonResponse(201, AgentJson(a));
  r.headers.Set("Location", fmt::format("{}agents/{}", kPrefix, a.id));
  return r;
}

HttpResponse GetAgent(Call& c, std::string_view agent_id) {
  ADMIN_CHECK(c.query.Only({}));
  ADMIN_TRY(identity::Agent a, c.id.GetAgent(c.tenant, agent_id));
  return JsonResponse(200, AgentJson(a));
}

HttpResponse PatchAgent(Call& c, std::string_view agent_id, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  Fields f(body);
  ADMIN_CHECK(f.Only({"name", "owner", "description", "scopes", "metadata", "jwks"}));
  identity::AgentPatch p;
  ADMIN_TRY(p.name, f.String("name"));
  ADMIN_TRY(p.owner, f.String("owner"));
  ADMIN_TRY(p.description, f.String("description"));
  ADMIN_TRY(p.scopes, f.Strings("scopes"));
  ADMIN_TRY(p.metadata, f.ObjectText("metadata", false));
  ADMIN_TRY(p.jwks, f.ObjectText("jwks", true));
  ADMIN_TRY(identity::Agent a, c.id.UpdateAgent(c.tenant, agent_id, p));
  spdlog::info("admin: agent {} updated in tenant {} (from {})", a.id, a.tenant, Printable(c.req.remote));
  return JsonResponse(200, AgentJson(a));
}

HttpResponse AgentAction(Call& c, std::string_view agent_id, std::string_view action, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  ADMIN_CHECK(Fields(body).Only({}));
  Result<identity::Agent> r = action == "suspend"      ? c.id.SuspendAgent(c.tenant, agent_id)
                              : action == "reactivate" ? c.id.ReactivateAgent(c.tenant, agent_id)
                                                       : c.id.DecommissionAgent(c.tenant, agent_id);
  if (!r.ok()) return ErrorResponse(r.status());
  spdlog::info("admin: agent {} {} in tenant {} (from {})", r->id, action, r->tenant, Printable(c.req.remote));
  return JsonResponse(200, AgentJson(*r));
}

HttpResponse ListCredentials(Call& c, std::string_view agent_id) {
  ADMIN_CHECK(c.query.Only({}));
  ADMIN_TRY(auto creds, c.id.ListCredentials(c.tenant, agent_id));
  json::array a;
  a.reserve(creds.size());
  for (const auto& cred : creds) a.emplace_back(SecretInfoJson(cred));
  json::object o;
  o["credentials"] = std::move(a);
  return JsonResponse(200, o);
}

HttpResponse CreateCredential(Call& c, std::string_view agent_id, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  Fields f(body);
  ADMIN_CHECK(f.Only({"expires_in"}));
  ADMIN_TRY(auto expires_in, f.Int("expires_in"));
  ADMIN_TRY(identity::IssuedSecret s, c.id.CreateClientSecret(c.tenant, agent_id, Seconds(expires_in)));
  spdlog::info("admin: client secret {} issued for agent {} in tenant {} (from {})", s.credential.id, agent_id,
               c.tenant, Printable(c.req.remote));
  return JsonResponse(201, IssuedSecretJson(s));
}

HttpResponse RotateCredential(Call& c, std::string_view agent_id, std::string_view cid, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  Fields f(body);
  ADMIN_CHECK(f.Only({"grace"}));
  ADMIN_TRY(auto grace, f.Int("grace"));
  ADMIN_TRY(identity::IssuedSecret s, c.id.RotateClientSecret(c.tenant, agent_id, cid, Seconds(grace)));
  spdlog::info("admin: client secret {} of agent {} rotated to {} in tenant {} (from {})", cid, agent_id,
               s.credential.id, c.tenant, Printable(c.req.remote));
  json::object o = IssuedSecretJson(s);
  o["replaces"] = cid;
  return JsonResponse(201, o);
}

HttpResponse RevokeCredential(Call& c, std::string_view agent_id, std::string_view cid, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  ADMIN_CHECK(Fields(body).Only({}));
  ADMIN_CHECK(c.id.RevokeCredential(c.tenant, agent_id, cid));
  spdlog::info("admin: client secret {} of agent {} revoked in tenant {} (from {})", cid, agent_id, c.tenant,
               Printable(c.req.remote));
  return NoContent();
}

HttpResponse CreateApiKey(Call& c, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  Fields f(body);
  ADMIN_CHECK(f.Only({"agent_id", "service_account", "scopes", "expires_in"}));
  identity::ApiKeySpec spec;
  spec.tenant = c.tenant;
  ADMIN_TRY(auto agent_id, f.String("agent_id"));
  ADMIN_TRY(auto service_account, f.String("service_account"));
  ADMIN_TRY(auto scopes, f.Strings("scopes"));
  ADMIN_TRY(auto expires_in, f.Int("expires_in"));
  spec.agent_id = agent_id.value_or("");
  spec.service_account = service_account.value_or("");
  if (scopes) spec.scopes = std::move(*scopes);
  spec.ttl = Seconds(expires_in);
  ADMIN_TRY(identity::IssuedApiKey k, c.id.CreateApiKey(spec));
  spdlog::info("admin: API key {} issued for {} {} in tenant {} (from {})", k.credential.id,
               k.credential.subject_kind, k.credential.subject, c.tenant, Printable(c.req.remote));
  json::object o;
  o["api_key"] = k.api_key;
  o["key_id"] = k.credential.id;
  o["subject"] = k.credential.subject;
  o["subject_kind"] = k.credential.subject_kind;
  o["scopes"] = StringArray(k.credential.scopes);
  o["created_at"] = FormatRfc3339(k.credential.created_at);
  if (k.credential.expires_at) o["expires_at"] = FormatRfc3339(*k.credential.expires_at);
  return JsonResponse(201, o);
}

HttpResponse ListApiKeys(Call& c) {
  ADMIN_CHECK(c.query.Only({"subject"}));
  ADMIN_TRY(auto keys, c.id.ListApiKeys(c.tenant, c.query.Get("subject")));
  json::array a;
  a.reserve(keys.size());
  for (const auto& k : keys) a.emplace_back(ApiKeyInfoJson(k));
  json::object o;
  o["api_keys"] = std::move(a);
  return JsonResponse(200, o);
}

HttpResponse RevokeApiKey(Call& c, std::string_view key_id, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  ADMIN_CHECK(Fields(body).Only({}));
  ADMIN_CHECK(c.id.RevokeApiKey(c.tenant, key_id));
  spdlog::info("admin: API key {} revoked in tenant {} (from {})", key_id, c.tenant, Printable(c.req.remote));
  return NoContent();
}

HttpResponse ListSigningKeys(Call& c) {
  ADMIN_CHECK(c.query.Only({}));
  return JsonResponse(200, KidsJson(c.id.PublishedKids()));
}

HttpResponse RotateSigningKey(Call& c, const json::object& body) {
  ADMIN_CHECK(c.query.Only({}));
  ADMIN_CHECK(Fields(body).Only({}));
  ADMIN_CHECK(c.id.RotateSigningKey());
  std::vector<std::string> kids = c.id.PublishedKids();
  spdlog::info("admin: signing key rotated, active kid {} (from {})", kids.empty() ? "?" : kids.front(),
               Printable(c.req.remote));
  return JsonResponse(200, KidsJson(kids));
}

// ------------------------------------------------------------- routing ----

bool Authorized(const AdminOptions& opt, const HttpRequest& req, std::string* why) {
  std::string_view auth = req.headers ? req.headers->Get("Authorization") : std::string_view();
  auth = TrimWhitespace(auth);
  if (auth.empty()) {
    *why = "admin API: missing 'Authorization: Bearer <admin token>'";
    return false;
  }
  constexpr std::string_view kScheme = "bearer ";
  if (auth.size() <= kScheme.size() || !EqualsIgnoreCase(auth.substr(0, kScheme.size()), kScheme)) {
    *why = "admin API: the Authorization scheme must be Bearer";
    return false;
  }
  std::string_view token = TrimWhitespace(auth.substr(kScheme.size()));
  // An unset token admits nobody. Hashing first keeps the compare's timing
  // independent of the presented token's length, too.
  if (opt.token.empty() ||
      !crypto::ConstantTimeEqual(crypto::Sha256(token), crypto::Sha256(opt.token))) {
    *why = "admin API: invalid admin token";
    return false;
  }
  return true;
}

std::vector<std::string_view> SplitPath(std::string_view rest) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (true) {
    size_t slash = rest.find('/', pos);
    out.push_back(rest.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return out;
}

// "name:action" -> (name, action); action "" if there is no ':'.
std::pair<std::string_view, std::string_view> SplitAction(std::string_view seg) {
  size_t colon = seg.find(':');
  if (colon == std::string_view::npos) return {seg, {}};
  return {seg.substr(0, colon), seg.substr(colon + 1)};
}

HttpResponse Route(Call& c) {
  const HttpRequest& req = c.req;
  std::string_view method = req.method;
  std::string_view path = req.path;
  if (!StartsWith(path, kPrefix)) return NoRoute(path);
  std::vector<std::string_view> seg = SplitPath(path.substr(kPrefix.size()));
  if (seg.size() > 4 || std::any_of(seg.begin(), seg.end(), [](std::string_view s) { return s.empty(); })) {
    return NoRoute(path);
  }
  bool get = method == "GET", post = method == "POST", patch = method == "PATCH", del = method == "DELETE";
  // Bodies are parsed only where the endpoint takes one.
  auto with_body = [&](auto&& fn) -> HttpResponse {
    ADMIN_TRY(json::object body, ParseBody(req.body));
    return fn(body);
  };

  if (seg[0] == "agents") {
    if (seg.size() == 1) {
      if (get) return ListAgents(c);
      if (post) return with_body([&](const json::object& b) { return CreateAgent(c, b); });
      return MethodNotAllowed(method, "GET, POST");
    }
    auto [agent_id, action] = SplitAction(seg[1]);
    if (!PlausibleId(agent_id)) {
      return ErrorResponse(NotFound(fmt::format("no agent '{}' in tenant '{}'", Printable(agent_id), c.tenant)));
    }
    if (seg.size() == 2) {
      if (!action.empty()) {
        if (action != "suspend" && action != "reactivate" && action != "decommission") return NoRoute(path);
        if (!post) return MethodNotAllowed(method, "POST");
        return with_body([&](const json::object& b) { return AgentAction(c, agent_id, action, b); });
      }
      if (get) return GetAgent(c, agent_id);
      if (patch) return with_body([&](const json::object& b) { return PatchAgent(c, agent_id, b); });
      return MethodNotAllowed(method, "GET, PATCH");
    }
    if (!action.empty() || seg[2] != "credentials") return NoRoute(path);
    if (seg.size() == 3) {
      if (get) return ListCredentials(c, agent_id);
      if (post) return with_body([&](const json::object& b) { return CreateCredential(c, agent_id, b); });
      return MethodNotAllowed(method, "GET, POST");
    }
    auto [cid, cred_action] = SplitAction(seg[3]);
    if (!PlausibleId(cid)) {
      return ErrorResponse(NotFound(fmt::format("no client secret '{}' for agent '{}'", Printable(cid), agent_id)));
    }
    if (cred_action.empty()) {
      if (del) return RevokeCredential(c, agent_id, cid, json::object());
      return MethodNotAllowed(method, "DELETE");
    }
    if (cred_action != "rotate" && cred_action != "revoke") return NoRoute(path);
    if (!post) return MethodNotAllowed(method, "POST");
    if (cred_action == "rotate") {
      return with_body([&](const json::object& b) { return RotateCredential(c, agent_id, cid, b); });
    }
    return with_body([&](const json::object& b) { return RevokeCredential(c, agent_id, cid, b); });
  }

  if (seg[0] == "api-keys") {
    if (seg.size() == 1) {
      if (get) return ListApiKeys(c);
      if (post) return with_body([&](const json::object& b) { return CreateApiKey(c, b); });
      return MethodNotAllowed(method, "GET, POST");
    }
    if (seg.size() != 2) return NoRoute(path);
    auto [key_id, action] = SplitAction(seg[1]);
    if (!PlausibleId(key_id)) {
      return ErrorResponse(NotFound(fmt::format("no API key '{}' in tenant '{}'", Printable(key_id), c.tenant)));
    }
    if (action.empty()) {
      if (del) return RevokeApiKey(c, key_id, json::object());
      return MethodNotAllowed(method, "DELETE");
    }
    if (action != "revoke") return NoRoute(path);
    if (!post) return MethodNotAllowed(method, "POST");
    return with_body([&](const json::object& b) { return RevokeApiKey(c, key_id, b); });
  }

  if (seg.size() == 1 && seg[0] == "signing-keys") {
    if (get) return ListSigningKeys(c);
    return MethodNotAllowed(method, "GET");
  }
  if (seg.size() == 1 && seg[0] == "signing-keys:rotate") {
    if (post) return with_body([&](const json::object& b) { return RotateSigningKey(c, b); });
    return MethodNotAllowed(method, "POST");
  }
  return NoRoute(path);
}

// ------------------------------------------------------------ the token ----

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string Errno() { return std::strerror(errno); }

Result<std::string> CheckToken(std::string_view text, std::string_view where) {
  text = TrimWhitespace(text);
  if (text.size() < kMinAdminTokenChars) {
    return InvalidArgument(fmt::format(
        "{} is {} characters long; an admin token needs at least {} (generate one with `openssl rand -base64 32`)",
        where, text.size(), kMinAdminTokenChars));
  }
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return InvalidArgument(fmt::format("{} must be printable ASCII without spaces", where));
  }
  return std::string(text);
}

// nullopt if the file does not exist.
Result<std::optional<std::string>> ReadTokenFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return InvalidArgument(fmt::format("cannot open the admin token file {}: {}", path, Errno()));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return InvalidArgument(fmt::format("cannot stat {}: {}", path, Errno()));
  if (!S_ISREG(st.st_mode)) return InvalidArgument(fmt::format("the admin token file {} is not a regular file", path));
  if ((st.st_mode & 077) != 0) {
    return InvalidArgument(fmt::format(
        "the admin token file {} is accessible by group or others (mode {:04o}); run `chmod 600 {}`", path,
        st.st_mode & 07777, path));
  }
  constexpr size_t kMaxFile = 4096;
  std::string text;
  char buf[1024];
  while (text.size() <= kMaxFile) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return InvalidArgument(fmt::format("cannot read {}: {}", path, Errno()));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  if (text.size() > kMaxFile) return InvalidArgument(fmt::format("the admin token file {} is too large", path));
  ASSIGN_OR_RETURN(std::string token, CheckToken(text, "the admin token in " + path));
  return std::optional<std::string>(std::move(token));
}

// mkdir -p with 0700 for the directories it creates.
Status MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return InvalidArgument(fmt::format("cannot create the data directory {}: {}", prefix, Errno()));
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument(fmt::format("the data directory {} is not a directory", dir));
  }
  return {};
}

// Writes a new token file; nullopt if another process created it first.
Result<std::optional<std::string>> CreateTokenFile(const std::string& path) {
  std::string token = crypto::Base64UrlEncode(crypto::RandomBytes(32));
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    if (errno == EEXIST) return std::optional<std::string>();
    return InvalidArgument(fmt::format("cannot create the admin token file {}: {}", path, Errno()));
  }
  auto fail = [&](std::string what) -> Status {
    std::string msg = fmt::format("cannot {} the admin token file {}: {}", what, path, Errno());
    ::unlink(path.c_str());  // never leave an empty or partial token behind
    return InvalidArgument(std::move(msg));
  };
  // The umask may have narrowed 0600 (harmless) but fchmod makes the mode
  // exact whatever the umask was.
  if (::fchmod(fd.get(), 0600) != 0) return fail("chmod");
  std::string data = token + "\n";
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("sync");
  if (::close(fd.release()) != 0) return fail("close");
  return std::optional<std::string>(std::move(token));
}

}  // namespace internal

using namespace internal;  // NOLINT: this file's own helpers

Result<std::string> LoadAdminToken(const std::string& data_dir, const char* env_value, bool* created,
                                   std::string* path) {
  if (created) *created = false;
  if (env_value) return CheckToken(env_value, "AIGIS_ADMIN_TOKEN");
  if (data_dir.empty()) return InvalidArgument("no data directory for the admin token file (set data_dir)");
  std::string file = data_dir;
  while (file.size() > 1 && file.back() == '/') file.pop_back();
  file += "/admin.token";
  if (path) *path = file;
  ASSIGN_OR_RETURN(std::optional<std::string> existing, ReadTokenFile(file));
  if (existing) return std::move(*existing);
  RETURN_IF_ERROR(MakeDirs(data_dir));
  ASSIGN_OR_RETURN(std::optional<std::string> fresh, CreateTokenFile(file));
  if (fresh) {
    if (created) *created = true;
    return std::move(*fresh);
  }
  // Lost a creation race: the winner's file is the token.
  ASSIGN_OR_RETURN(existing, ReadTokenFile(file));
  if (existing) return std::move(*existing);
  return InvalidArgument(fmt::format("the admin token file {} vanished while it was being created", file));
}

gateway::HttpResponse HandleAdmin(identity::Identity& id, const AdminOptions& opt, const gateway::HttpRequest& req) {
  try {
    std::string why;
    if (!Authorized(opt, req, &why)) {
      spdlog::debug("admin: 401 for {} {} from {}: {}", Printable(req.method, 16), Printable(req.path, 128),
                    Printable(req.remote), why);
      return Unauthorized(why);
    }
    ADMIN_TRY(Query query, ParseQuery(req.query));
    ADMIN_TRY(std::string tenant, ResolveTenant(req, query));
    Call call{id, req, std::move(query), std::move(tenant)};
    return Route(call);
  } catch (const std::exception& e) {
    // Last resort: a bug, or allocation failure on a hostile body.
    spdlog::error("admin: {} {} failed: {}", Printable(req.method, 16), Printable(req.path, 128), e.what());
    return ErrorResponse(Internal("internal error"));
  } catch (...) {
    spdlog::error("admin: {} {} failed with an unknown exception", Printable(req.method, 16),
                  Printable(req.path, 128));
    return ErrorResponse(Internal("internal error"));
  }
}

#undef ADMIN_TRY
#undef ADMIN_CHECK

}  // namespace aigis::admin

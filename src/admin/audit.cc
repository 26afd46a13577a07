// The audit log's admin API (/admin/v1/audit/...): checkpoints, keys,
// records, proofs, export and a live verification. docs/audit.md lists the
// calls; the conventions (bearer token, tenant, errors) are admin.cc's.
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <ctime>
#include <iomanip>
#include <sstream>

#include "admin/internal.h"
#include "audit/audit.h"
#include "crypto/crypto.h"

namespace aigis::admin {

namespace {

using namespace internal;  // NOLINT: the admin API's helpers
namespace json = boost::json;
using gateway::HttpRequest;
using gateway::HttpResponse;

constexpr std::string_view kPrefix = "/admin/v1/audit/";
constexpr uint64_t kMaxExport = 100'000;  // records per export call
constexpr uint64_t kMaxLimit = 1000;      // records per read

Result<uint64_t> Index(const Query& q, std::string_view key, uint64_t fallback) {
  const std::string* v = q.Find(key);
  if (v == nullptr) return fallback;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (v->empty() || ec != std::errc() || p != v->data() + v->size()) {
    return InvalidArgument(fmt::format("query parameter '{}' must be a non-negative integer", key));
  }
  return n;
}

Result<std::optional<WallTime>> Time(const Query& q, std::string_view key) {
  const std::string* v = q.Find(key);
  if (v == nullptr) return std::optional<WallTime>();
  // Unix seconds or RFC 3339 (UTC, "Z").
  int64_t secs = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), secs);
  if (!v->empty() && ec == std::errc() && p == v->data() + v->size()) {
    return std::optional<WallTime>(WallTime(std::chrono::seconds(secs)));
  }
  std::tm tm{};
  std::istringstream in(*v);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) {
    return InvalidArgument(fmt::format("query parameter '{}' must be Unix seconds or RFC 3339 UTC (2026-01-31T12:00:00Z)", key));
  }
  return std::optional<WallTime>(WallTime(std::chrono::seconds(timegm(&tm))));
}

json::array Hashes(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& h : v) a.emplace_back(json::string(crypto::Base64Encode(h)));
  return a;
}

HttpResponse Text(int status, std::string body, std::string_view type = "text/plain; charset=utf-8") {
  HttpResponse r;
  r.status = status;
  r.headers.Add("Content-Type", std::string(type));
  r.headers.Add("Cache-Control", "no-store");
  r.body = std::move(body);
  return r;
}

json::value RecordValue(const std::string& rec) {
  boost::system::error_code ec;
  json::value v = json::parse(rec, ec);
  return ec ? json::value(json::string(rec)) : v;
}

// The latest checkpoint, issued now if there is none or it is older than
// the log (so that proofs can be checked against a signed root).
Result<audit::Checkpoint> Current(audit::Log& log, const std::string& tenant) {
  auto cp = log.LatestCheckpoint(tenant);
  if (cp.ok() && cp->size == log.Size(tenant)) return cp;
  return log.IssueCheckpoint(tenant);
}

json::object KeysJson(const audit::Log& log, const std::string& origin) {
  json::array keys;
  for (const auto& k : log.Keys()) {
    json::object o{{"version", k.version}, {"vkey", k.vkey}, {"created", k.created}};
    if (!k.retired.empty()) o["retired"] = k.retired;
    keys.push_back(std::move(o));
  }
  return json::object{{"origin", origin}, {"keys", std::move(keys)}};
}

HttpResponse Route(audit::Log& log, const std::string& origin, const HttpRequest& req, const Query& q,
                   const std::string& tenant) {
  std::string_view rest = req.path.substr(kPrefix.size());
  auto method_is = [&](std::string_view m) { return req.method == m; };
  auto need_log = [&]() -> Status {
    if (log.Size(tenant) == 0 && !log.LatestCheckpoint(tenant).ok()) {
      auto tenants = log.Tenants();
      if (std::find(tenants.begin(), tenants.end(), tenant) == tenants.end()) {
        return NotFound(fmt::format("no audit records for tenant '{}'", Printable(tenant, 64)));
      }
    }
    return Status::Ok();
  };

  if (rest == "checkpoint") {
    if (!method_is("GET") && !method_is("POST")) return MethodNotAllowed(req.method, "GET, POST");
    if (Status st = q.Only({}); !st.ok()) return ErrorResponse(st);
    if (!audit::ValidTenant(tenant)) return ErrorResponse(InvalidArgument("bad tenant name for the audit log"));
    auto cp = method_is("POST") ? log.IssueCheckpoint(tenant) : Current(log, tenant);
    if (!cp.ok()) return ErrorResponse(cp.status());
    return Text(200, cp->note);
  }
  if (rest == "keys") {
    if (!method_is("GET")) return MethodNotAllowed(req.method, "GET");
    return JsonResponse(200, KeysJson(log, origin));
  }
  if (rest == "keys/rotate") {
    if (!method_is("POST")) return MethodNotAllowed(req.method, "POST");
    if (Status st = log.RotateKey(); !st.ok()) return ErrorResponse(st);
    spdlog::info("audit: signing key rotated (now version {})", log.Keys().back().version);
    return JsonResponse(200, KeysJson(log, origin));
  }
  if (rest == "records") {
    if (!method_is("GET")) return MethodNotAllowed(req.method, "GET");
    if (Status st = q.Only({"from", "to", "since", "until", "principal", "decision", "limit"}); !st.ok()) return ErrorResponse(st);
    if (Status st = need_log(); !st.ok()) return ErrorResponse(st);
    audit::Query aq;
    auto from = Index(q, "from", 0), to = Index(q, "to", UINT64_MAX), limit = Index(q, "limit", 100);
    auto since = Time(q, "since"), until = Time(q, "until");
    for (const Status* st : {&from.status(), &to.status(), &limit.status(), &since.status(), &until.status()}) {
      if (!st->ok()) return ErrorResponse(*st);
    }
    if (*limit < 1 || *limit > kMaxLimit) return ErrorResponse(InvalidArgument(fmt::format("limit must be 1..{}", kMaxLimit)));
    aq.from = *from;
    aq.to = *to;
    aq.limit = static_cast<size_t>(*limit);
    aq.since = *since;
    aq.until = *until;
    aq.principal = q.Get("principal");
    aq.decision = q.Get("decision");
    if (!aq.decision.empty() && aq.decision != "allow" && aq.decision != "deny" && aq.decision != "error") {
      return ErrorResponse(InvalidArgument("decision must be allow, deny or error"));
    }
    auto rows = log.Read(tenant, aq);
    if (!rows.ok()) return ErrorResponse(rows.status());
    json::array records;
    for (const auto& [i, rec] : *rows) records.push_back(json::object{{"index", i}, {"record", RecordValue(rec)}});
    json::object out{{"size", log.Size(tenant)}, {"records", std::move(records)}};
    if (rows->size() == aq.limit) out["next"] = rows->back().first + 1;
    return JsonResponse(200, out);
  }
  if (rest.substr(0, 8) == "records/") {
    if (!method_is("GET")) return MethodNotAllowed(req.method, "GET");
    Query one;
    one.items.emplace_back("index", std::string(rest.substr(8)));
    auto idx = Index(one, "index", 0);
    if (!idx.ok()) return ErrorResponse(NotFound("no such record: the path ends in a record index"));
    auto rec = log.Record(tenant, *idx);
    if (!rec.ok()) return ErrorResponse(rec.status());
    return JsonResponse(200, json::object{{"index", *idx},
                                          {"leaf_hash", crypto::Base64Encode(audit::LeafHash(*rec))},
                                          {"record", RecordValue(*rec)}});
  }
  if (rest == "proof/inclusion") {
    if (!method_is("GET")) return MethodNotAllowed(req.method, "GET");
    if (Status st = q.Only({"index", "request_id", "size"}); !st.ok()) return ErrorResponse(st);
    if (Status st = need_log(); !st.ok()) return ErrorResponse(st);
    uint64_t index = 0;
    if (q.Find("request_id") != nullptr) {
      if (q.Find("index") != nullptr) return ErrorResponse(InvalidArgument("give index or request_id, not both"));
      auto found = log.FindRequest(tenant, q.Get("request_id"));
      if (!found.ok()) return ErrorResponse(found.status());
      if (!found->has_value()) return ErrorResponse(NotFound(fmt::format("no record of request '{}'", Printable(q.Get("request_id"), 128))));
      index = **found;
    } else {
      auto i = Index(q, "index", UINT64_MAX);
      if (!i.ok()) return ErrorResponse(i.status());
      if (*i == UINT64_MAX) return ErrorResponse(InvalidArgument("index or request_id is required"));
      index = *i;
    }
    auto cp = Current(log, tenant);
    if (!cp.ok()) return ErrorResponse(cp.status());
    auto size = Index(q, "size", cp->size);
    if (!size.ok()) return ErrorResponse(size.status());
    auto proof = log.InclusionProof(tenant, index, *size);
    if (!proof.ok()) return ErrorResponse(proof.status());
    auto rec = log.Record(tenant, index);
    auto root = log.RootHash(tenant, *size);
    if (!rec.ok() || !root.ok()) return ErrorResponse(!rec.ok() ? rec.status() : root.status());
    json::object out{{"index", index},
                     {"tree_size", *size},
                     {"leaf_hash", crypto::Base64Encode(audit::LeafHash(*rec))},
                     {"root", crypto::Base64Encode(*root)},
                     {"proof", Hashes(*proof)},
                     {"record", RecordValue(*rec)}};
    if (*size == cp->size) out["checkpoint"] = cp->note;
    return JsonResponse(200, out);
  }
  if (rest == "proof/consistency") {
    if (!method_is("GET")) return MethodNotAllowed(req.method, "GET");
    if (Status st = q.Only({"from", "to"}); !st.ok()) return ErrorResponse(st);
    if (Status st = need_log(); !st.ok()) return ErrorResponse(st);
    auto cp = Current(log, tenant);
    if (!cp.ok()) return ErrorResponse(cp.status());
    auto from = Index(q, "from", UINT64_MAX), to = Index(q, "to", cp->size);
    if (!from.ok() || !to.ok()) return ErrorResponse(!from.ok() ? from.status() : to.status());
    if (*from == UINT64_MAX) return ErrorResponse(InvalidArgument("from (the older tree size) is required"));
    auto proof = log.ConsistencyProof(tenant, *from, *to);
    if (!proof.ok()) return ErrorResponse(proof.status());
    auto r1 = log.RootHash(tenant, *from), r2 = log.RootHash(tenant, *to);
    if (!r1.ok() || !r2.ok()) return ErrorResponse(!r1.ok() ? r1.status() : r2.status());
    json::object out{{"size1", *from}, {"size2", *to}, {"root1", crypto::Base64Encode(*r1)},
                     {"root2", crypto::Base64Encode(*r2)}, {"proof", Hashes(*proof)}};
    if (*to == cp->size) out["checkpoint"] = cp->note;
    return JsonResponse(200, out);
  }
  if (rest == "export") {
    if (!method_is("GET")) return MethodNotAllowed(req.method, "GET");
    if (Status st = q.Only({"from", "to"}); !st.ok()) return ErrorResponse(st);
    if (Status st = need_log(); !st.ok()) return ErrorResponse(st);
    auto from = Index(q, "from", 0), to = Index(q, "to", UINT64_MAX);
    if (!from.ok() || !to.ok()) return ErrorResponse(!from.ok() ? from.status() : to.status());
    uint64_t end = std::min(*to, log.Size(tenant));
    if (end > *from && end - *from > kMaxExport) {
      return ErrorResponse(InvalidArgument(fmt::format(
          "at most {} records per export: ask for from={}&to={}, then continue from there", kMaxExport, *from, *from + kMaxExport)));
    }
    std::ostringstream out;
    auto cp = log.Export(tenant, *from, *to, out);
    if (!cp.ok()) return ErrorResponse(cp.status());
    HttpResponse r = Text(200, out.str(), "application/x-ndjson");
    return r;
  }
  if (rest == "verify") {
    if (!method_is("POST")) return MethodNotAllowed(req.method, "POST");
    if (Status st = need_log(); !st.ok()) return ErrorResponse(st);
    if (auto cp = Current(log, tenant); !cp.ok()) return ErrorResponse(cp.status());
    audit::VerifyReport rep = log.Verify(tenant);
    json::object out{{"ok", rep.ok}, {"records", rep.records}, {"checkpoints", rep.checkpoints}};
    if (!rep.ok) {
      out["kind"] = rep.kind;
      out["message"] = rep.message;
      if (rep.index) out["index"] = *rep.index;
      spdlog::error("audit: live verification of tenant {} failed: {}", tenant, rep.ToString());
    }
    return JsonResponse(200, out);
  }
  return NoRoute(req.path);
}

}  // namespace

gateway::HttpResponse HandleAudit(audit::Log& log, const std::string& origin, const AdminOptions& opt,
                                  const gateway::HttpRequest& req) {
  try {
    std::string why;
    if (!Authorized(opt, req, &why)) return Unauthorized(why);
    auto q = ParseQuery(req.query);
    if (!q.ok()) return ErrorResponse(q.status());
    auto tenant = ResolveTenant(req, *q);
    if (!tenant.ok()) return ErrorResponse(tenant.status());
    return Route(log, origin, req, *q, *tenant);
  } catch (const std::exception& e) {
    spdlog::error("admin: {} {} failed: {}", Printable(req.method, 16), Printable(req.path, 128), e.what());
    return ErrorResponse(Internal("internal error"));
  }
}

void InstallAudit(gateway::Gateway& gw, std::shared_ptr<audit::Log> log, std::string origin, AdminOptions opt) {
  auto shared_opt = std::make_shared<const AdminOptions>(std::move(opt));
  gw.Handle(
      gateway::Listener::kAdmin, std::string(kPrefix),
      [log = std::move(log), origin = std::move(origin), shared_opt](const gateway::HttpRequest& req) {
        return HandleAudit(*log, origin, *shared_opt, req);
      },
      /*blocking=*/true);
}

}  // namespace aigis::admin

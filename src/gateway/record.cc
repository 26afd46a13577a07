// Audit records (docs/audit.md, "The record"). Integers only: scores are in
// thousandths, durations in microseconds; the log canonicalizes the JSON.
#include "gateway/record.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>

#include "crypto/crypto.h"
#include "gateway/screen.h"

namespace aigis::gateway {

namespace json = boost::json;

namespace {

json::array Strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(json::string(s));
  return a;
}

int64_t Milli(double score) { return static_cast<int64_t>(std::lround(score * 1000)); }

// Members in name order at every level, so that the serialized record is
// already canonical (RFC 8785: Boost.JSON escapes strings as JCS does) and
// the log takes it without rebuilding it. Names here are ASCII, where byte
// order is UTF-16 order.
json::value Sorted(const json::value& v) {
  if (v.is_array()) {
    json::array a;
    for (const auto& x : v.get_array()) a.push_back(Sorted(x));
    return a;
  }
  if (!v.is_object()) return v;
  std::vector<const json::key_value_pair*> members;
  for (const auto& kv : v.get_object()) members.push_back(&kv);
  std::sort(members.begin(), members.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
  json::object o;
  for (const auto* kv : members) o.emplace(kv->key(), Sorted(kv->value()));
  return o;
}

std::string Serialize(const json::object& r) { return json::serialize(Sorted(r)); }

}  // namespace

std::string_view ExchangeDecision(const Exchange& ex, int status) {
  for (const auto& d : ex.decisions) {
    if (d.outcome == "deny") return "deny";
  }
  if (status >= 400 || !ex.decisions.empty() || ex.mcp.error_code != 0) return "error";
  return "allow";
}

std::string ExchangeRecord(const Exchange& ex, const RecordInputs& in) {
  json::object r;
  r["v"] = 1;
  r["kind"] = "exchange";
  r["time"] = FormatRfc3339(ex.time);
  r["tenant"] = ex.tenant;
  r["request_id"] = ex.request_id;
  json::object p{{"kind", ex.principal.kind}, {"id", ex.principal.id}};
  if (!ex.principal.issuer.empty()) p["issuer"] = ex.principal.issuer;
  if (!ex.principal.client_id.empty()) p["client_id"] = ex.principal.client_id;
  if (!ex.principal.credential_id.empty()) p["credential_id"] = ex.principal.credential_id;
  if (!ex.principal.act.empty()) p["act"] = Strings(ex.principal.act);
  r["principal"] = std::move(p);
  r["method"] = ex.method;
  r["path"] = ex.path;
  r["remote"] = ex.remote;
  r["protocol"] = std::string(ProtocolName(ex.protocol));
  r["endpoint"] = std::string(EndpointName(ex.endpoint));
  if (!ex.route.empty()) r["route"] = ex.route;
  if (!ex.model.empty()) r["model"] = ex.model;
  if (!ex.upstream_model.empty() && ex.upstream_model != ex.model) r["upstream_model"] = ex.upstream_model;
  r["stream"] = ex.stream;
  r["status"] = in.status;
  r["decision"] = std::string(ExchangeDecision(ex, in.status));

  // Every stage that decided something, in pipeline order.
  json::array stages;
  auto denied = [&](std::string_view stage) -> const StageRecord* {
    for (const auto& d : ex.decisions) {
      if (d.stage == stage) return &d;
    }
    return nullptr;
  };
  auto stage = [&](std::string_view name, std::string_view outcome) {
    json::object s{{"stage", name}, {"outcome", outcome}};
    if (const StageRecord* d = denied(name)) {
      s["outcome"] = d->outcome;
      s["code"] = d->code;
      s["reason"] = d->reason;
    }
    return s;
  };
  if (ex.principal.kind != "anonymous" || denied("authenticate") != nullptr) {
    stages.push_back(stage("authenticate", "allow"));
  }
  if (!ex.authz.empty() || denied("authorize") != nullptr) {
    json::object s = stage("authorize", "allow");
    json::array checks;
    for (const auto& a : ex.authz) {
      json::object c{{"decision_id", a.decision_id}, {"allowed", a.allowed},    {"user", a.user},
                     {"relation", a.relation},       {"object", a.object},      {"model_id", a.model_id},
                     {"revision", static_cast<int64_t>(a.revision)}, {"cached", a.cached},
                     {"explanation", Strings(a.explanation)}};
      if (!a.error.empty()) c["error"] = a.error;
      checks.push_back(std::move(c));
    }
    s["checks"] = std::move(checks);
    stages.push_back(std::move(s));
  }
  const GuardRecord& g = ex.guard;
  if (g.screened || denied("screen_request") != nullptr) {
    json::object s = stage("screen_request", g.outcome.empty() ? "pass" : g.outcome);
    if (!g.policy.empty()) s["policy"] = g.policy;
    s["score_milli"] = Milli(g.score);
    s["rules"] = Strings(g.rules);
    s["fields"] = Strings(g.fields);
    json::array masked;
    for (const auto& [ph, hash] : g.masked) masked.push_back(json::object{{"placeholder", ph}, {"sha256_prefix", hash}});
    s["masked"] = std::move(masked);
    stages.push_back(std::move(s));
  }
  if (!g.classifier.empty()) {
    json::object s = stage("guard_classifier", g.classifier == "unsafe" ? "flag" : g.classifier == "error" ? "error" : "pass");
    s["verdict"] = g.classifier;
    if (!g.classifier_categories.empty()) s["categories"] = g.classifier_categories;
    stages.push_back(std::move(s));
  }
  // Denies by stages not named above (admit, later modules), and errors.
  for (const auto& d : ex.decisions) {
    static const char* kKnown[] = {"authenticate", "authorize", "screen_request", "guard_classifier", "screen_response"};
    if (std::find(std::begin(kKnown), std::end(kKnown), d.stage) != std::end(kKnown)) continue;
    stages.push_back(json::object{{"stage", d.stage}, {"outcome", d.outcome}, {"code", d.code}, {"reason", d.reason}});
  }
  if (g.response_screened || denied("screen_response") != nullptr) {
    json::object s = stage("screen_response", g.response_outcome.empty() ? "pass" : g.response_outcome);
    s["score_milli"] = Milli(g.response_score);
    s["rules"] = Strings(g.response_rules);
    stages.push_back(std::move(s));
  }
  r["stages"] = std::move(stages);

  if (!ex.upstream.empty()) {
    r["upstream"] = json::object{{"name", ex.upstream},
                                 {"status", ex.upstream_status},
                                 {"attempts", ex.attempts},
                                 {"latency_us", static_cast<int64_t>(ex.upstream_latency.count())}};
  }
  if (ex.protocol == Protocol::kMcp) {
    const McpRecord& m = ex.mcp;
    json::object o{{"method", m.method}};
    if (!m.server.empty()) o["server"] = m.server;
    if (!m.tool.empty()) o["tool"] = m.tool;
    if (!m.session.empty()) o["session"] = m.session;
    if (!m.rpc_id.empty()) o["rpc_id"] = m.rpc_id;
    if (m.error_code != 0) o["error"] = json::object{{"code", m.error_code}, {"message", m.error}};
    if (!m.upstream_error.empty()) o["upstream_error"] = m.upstream_error;
    if (!m.alerts.empty()) o["alerts"] = Strings(m.alerts);
    r["mcp"] = std::move(o);
  }
  if (ex.usage.reported) {
    r["usage"] = json::object{{"input_tokens", ex.usage.input_tokens}, {"output_tokens", ex.usage.output_tokens}};
  }
  r["latency_us"] = static_cast<int64_t>(in.latency.count());
  r["request_sha256"] = crypto::HexEncode(crypto::Sha256(ex.raw_body));
  if (!in.response_sha256.empty()) r["response_sha256"] = in.response_sha256;
  if (in.capture_bodies) {
    // After masking: what went upstream, and the response with the
    // request's values masked again.
    r["request_body"] = ex.forward_body.empty() ? std::string(ex.raw_body) : ex.forward_body;
    if (in.response_body != nullptr) r["response_body"] = RemaskForRecord(ex, *in.response_body);
  }
  return Serialize(r);
}

std::string AdminRecord(const ActionRecord& a) {
  json::object r;
  r["v"] = 1;
  r["kind"] = a.kind;
  r["time"] = FormatRfc3339(a.time);
  r["tenant"] = a.tenant;
  r["request_id"] = a.request_id;
  r["principal"] = json::object{{"kind", a.kind == "admin" ? "admin" : "client"}, {"id", a.principal}};
  r["action"] = a.action;
  if (!a.method.empty()) {
    r["method"] = a.method;
    r["path"] = a.path;
    r["remote"] = a.remote;
  }
  r["status"] = a.status;
  r["decision"] = a.status >= 200 && a.status < 400 ? "allow" : a.status == 401 || a.status == 403 ? "deny" : "error";
  if (!a.request_sha256.empty()) r["request_sha256"] = a.request_sha256;
  if (!a.detail.empty()) r["detail"] = a.detail;
  return Serialize(r);
}

}  // namespace aigis::gateway

// Audit records (docs/audit.md, "The record"). Integers only: scores are in
// thousandths, durations in microseconds; the log canonicalizes the JSON.
#include "gateway/record.h"

#include <algorithm>
#include <cmath>

#include "audit/audit.h"
#include "crypto/crypto.h"
#include "gateway/screen.h"

namespace aigis::gateway {

using audit::CanonicalArray;
using audit::CanonicalObject;

namespace {

int64_t Milli(double score) { return static_cast<int64_t>(std::lround(score * 1000)); }

}  // namespace

std::string_view ExchangeDecision(const Exchange& ex, int status) {
  for (const auto& d : ex.decisions) {
    if (d.outcome == "deny") return "deny";
  }
  if (status >= 400 || !ex.decisions.empty() || ex.mcp.error_code != 0) return "error";
  return "allow";
}

// Written canonical as it goes (audit::CanonicalObject): the log then takes
// the text as it is.
std::string ExchangeRecord(const Exchange& ex, const RecordInputs& in) {
  CanonicalObject r, o;  // o: the nested object being built
  r.Int("v", 1).Str("kind", "exchange").Str("time", FormatRfc3339(ex.time));
  r.Str("tenant", ex.tenant).Str("request_id", ex.request_id);
  o.Str("kind", ex.principal.kind).Str("id", ex.principal.id);
  if (!ex.principal.issuer.empty()) o.Str("issuer", ex.principal.issuer);
  if (!ex.principal.client_id.empty()) o.Str("client_id", ex.principal.client_id);
  if (!ex.principal.credential_id.empty()) o.Str("credential_id", ex.principal.credential_id);
  if (!ex.principal.act.empty()) o.Strs("act", ex.principal.act);
  r.Raw("principal", o.Finish());
  r.Str("method", ex.method).Str("path", ex.path).Str("remote", ex.remote);
  r.Str("protocol", ProtocolName(ex.protocol)).Str("endpoint", EndpointName(ex.endpoint));
  if (!ex.route.empty()) r.Str("route", ex.route);
  if (!ex.model.empty()) r.Str("model", ex.model);
  if (!ex.upstream_model.empty() && ex.upstream_model != ex.model) r.Str("upstream_model", ex.upstream_model);
  r.Bool("stream", ex.stream).Int("status", in.status).Str("decision", ExchangeDecision(ex, in.status));

  // Every stage that decided something, in pipeline order.
  CanonicalArray stages;
  auto denied = [&](std::string_view stage) -> const StageRecord* {
    for (const auto& d : ex.decisions) {
      if (d.stage == stage) return &d;
    }
    return nullptr;
  };
  // Starts `o` as the record of a stage; a deny by it overrides `outcome`.
  auto stage = [&](std::string_view name, std::string_view outcome) -> CanonicalObject& {
    o.Str("stage", name).Str("outcome", outcome);
    if (const StageRecord* d = denied(name)) o.Str("outcome", d->outcome).Str("code", d->code).Str("reason", d->reason);
    return o;
  };
  if (ex.principal.kind != "anonymous" || denied("authenticate") != nullptr) {
    stages.Raw(stage("authenticate", "allow").Finish());
  }
  if (!ex.authz.empty() || denied("authorize") != nullptr) {
    CanonicalArray checks;
    CanonicalObject c;
    for (const auto& a : ex.authz) {
      c.Str("decision_id", a.decision_id).Bool("allowed", a.allowed).Str("user", a.user);
      c.Str("relation", a.relation).Str("object", a.object).Str("model_id", a.model_id);
      c.Int("revision", static_cast<int64_t>(a.revision)).Bool("cached", a.cached).Strs("explanation", a.explanation);
      if (!a.error.empty()) c.Str("error", a.error);
      checks.Raw(c.Finish());
    }
    stages.Raw(stage("authorize", "allow").Raw("checks", checks.Finish()).Finish());
  }
  const GuardRecord& g = ex.guard;
  if (g.screened || denied("screen_request") != nullptr) {
    stage("screen_request", g.outcome.empty() ? "pass" : g.outcome);
    if (!g.policy.empty()) o.Str("policy", g.policy);
    o.Int("score_milli", Milli(g.score)).Strs("rules", g.rules).Strs("fields", g.fields);
    CanonicalArray masked;
    CanonicalObject m;
    for (const auto& [ph, hash] : g.masked) masked.Raw(m.Str("placeholder", ph).Str("sha256_prefix", hash).Finish());
    stages.Raw(o.Raw("masked", masked.Finish()).Finish());
  }
  if (!g.classifier.empty()) {
    stage("guard_classifier", g.classifier == "unsafe" ? "flag" : g.classifier == "error" ? "error" : "pass");
    o.Str("verdict", g.classifier);
    if (!g.classifier_categories.empty()) o.Str("categories", g.classifier_categories);
    stages.Raw(o.Finish());
  }
  // Denies by stages not named above (admit, later modules), and errors.
  for (const auto& d : ex.decisions) {
    static const char* kKnown[] = {"authenticate", "authorize", "screen_request", "guard_classifier", "screen_response"};
    if (std::find(std::begin(kKnown), std::end(kKnown), d.stage) != std::end(kKnown)) continue;
    stages.Raw(o.Str("stage", d.stage).Str("outcome", d.outcome).Str("code", d.code).Str("reason", d.reason).Finish());
  }
  if (g.response_screened || denied("screen_response") != nullptr) {
    stage("screen_response", g.response_outcome.empty() ? "pass" : g.response_outcome);
    stages.Raw(o.Int("score_milli", Milli(g.response_score)).Strs("rules", g.response_rules).Finish());
  }
  r.Raw("stages", stages.Finish());

  if (!ex.upstream.empty()) {
    o.Str("name", ex.upstream).Int("status", ex.upstream_status).Int("attempts", ex.attempts);
    r.Raw("upstream", o.Int("latency_us", static_cast<int64_t>(ex.upstream_latency.count())).Finish());
  }
  if (ex.protocol == Protocol::kMcp) {
    const McpRecord& m = ex.mcp;
    o.Str("method", m.method);
    if (!m.server.empty()) o.Str("server", m.server);
    if (!m.tool.empty()) o.Str("tool", m.tool);
    if (!m.session.empty()) o.Str("session", m.session);
    if (!m.rpc_id.empty()) o.Str("rpc_id", m.rpc_id);
    if (m.error_code != 0) o.Raw("error", CanonicalObject().Int("code", m.error_code).Str("message", m.error).Finish());
    if (!m.upstream_error.empty()) o.Str("upstream_error", m.upstream_error);
    if (!m.alerts.empty()) o.Strs("alerts", m.alerts);
    r.Raw("mcp", o.Finish());
  }
  if (ex.usage.reported) {
    r.Raw("usage", o.Int("input_tokens", ex.usage.input_tokens).Int("output_tokens", ex.usage.output_tokens).Finish());
  }
  r.Int("latency_us", static_cast<int64_t>(in.latency.count()));
  r.Str("request_sha256", crypto::HexEncode(crypto::Sha256(ex.raw_body)));
  if (!in.response_sha256.empty()) r.Str("response_sha256", in.response_sha256);
  if (in.capture_bodies) {
    // After masking: what went upstream, and the response with the
    // request's values masked again.
    r.Str("request_body", ex.forward_body.empty() ? std::string_view(ex.raw_body) : std::string_view(ex.forward_body));
    if (in.response_body != nullptr) r.Str("response_body", RemaskForRecord(ex, *in.response_body));
  }
  return r.Finish();
}

std::string AdminRecord(const ActionRecord& a) {
  CanonicalObject r;
  r.Int("v", 1).Str("kind", a.kind).Str("time", FormatRfc3339(a.time));
  r.Str("tenant", a.tenant).Str("request_id", a.request_id);
  r.Raw("principal",
        CanonicalObject().Str("kind", a.kind == "admin" ? "admin" : "client").Str("id", a.principal).Finish());
  r.Str("action", a.action);
  if (!a.method.empty()) r.Str("method", a.method).Str("path", a.path).Str("remote", a.remote);
  r.Int("status", a.status);
  r.Str("decision", a.status >= 200 && a.status < 400 ? "allow" : a.status == 401 || a.status == 403 ? "deny" : "error");
  if (!a.request_sha256.empty()) r.Str("request_sha256", a.request_sha256);
  if (!a.detail.empty()) r.Str("detail", a.detail);
  return r.Finish();
}

}  // namespace aigis::gateway

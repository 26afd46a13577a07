// The authorize stage: "may this caller do this?" as relationship checks
// (docs/authz.md). For each configured check and each subject (the caller,
// and every actor when it acts on behalf of someone) it asks the authz
// service, records the answer with its explanation on the exchange, and
// denies with 403 at the first "no". Errors deny too.
#include "gateway/authorize.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <atomic>
#include <mutex>
#include <set>
#include <unordered_map>

namespace aigis::gateway {
namespace {

namespace json = boost::json;

std::string SubjectOf(std::string_view kind, std::string_view id) {
  if (kind == "anonymous" || id.empty()) return "user:*";  // public access only
  return fmt::format("{}:{}", kind, id);
}


class AuthorizeStageImpl final : public AuthorizeStage {
 public:
  explicit AuthorizeStageImpl(std::shared_ptr<authz::Service> service) : service_(std::move(service)) {}
  std::string_view name() const override { return "authorize"; }
  Stats stats() const override {
    return {allowed_.load(std::memory_order_relaxed), denied_.load(std::memory_order_relaxed),
            errors_.load(std::memory_order_relaxed), cache_hits_.load(std::memory_order_relaxed)};
  }

  Decision OnRequest(Exchange& ex) override {
    if (ex.config == nullptr || !ex.config->authz.enabled) return Decision::Continue();
    if (ex.endpoint == Endpoint::kModels) return Decision::Continue();  // listing names grants nothing
    const config::AuthzConfig& cfg = ex.config->authz;
    auto it = cfg.checks.find("llm");
    if (it == cfg.checks.end() || it->second.empty()) return Decision::Continue();

    std::vector<std::string> subjects = SubjectsOf(ex.principal);
    std::vector<std::pair<std::string_view, std::string>> vars = {
        {"principal.id", ex.principal.id},         {"principal.kind", ex.principal.kind},
        {"principal.tenant", ex.principal.tenant}, {"request.model", ex.model},
        {"request.upstream_model", ex.upstream_model}, {"route", ex.route},
        {"subject", ""},
    };

    auto store = StoreId(ex.tenant, cfg.store);
    if (!store.ok()) return Fail(ex, "", "", "", store.status().message());
    auto model = service_->GetModel(ex.tenant, *store, "");
    if (!model.ok()) {
      Forget(ex.tenant, cfg.store);  // the store may have been deleted: look it up again next time
      return Fail(ex, "", "", "", model.status().message());
    }
    std::string context = ConditionContext(*model->engine, ex);

    for (const auto& chk : it->second) {
      bool per_subject = chk.user.find("{subject}") != std::string::npos;
      size_t rounds = per_subject ? subjects.size() : 1;
      for (size_t i = 0; i < rounds; ++i) {
        vars.back().second = subjects[i];
        authz::CheckRequest req;
        req.tuple.user = ExpandTemplate(chk.user, vars);
        req.tuple.relation = ExpandTemplate(chk.relation, vars);
        req.tuple.object = ExpandTemplate(chk.object, vars);
        req.context = context;
        req.explain = true;
        for (const auto& t : chk.contextual_tuples) {
          auto key = authz::ParseTupleString(ExpandTemplate(t, vars));
          if (!key.ok()) return Fail(ex, req.tuple.user, req.tuple.relation, req.tuple.object, key.status().message());
          req.contextual_tuples.push_back(std::move(*key));
        }
        auto out = service_->Check(ex.tenant, *store, model->id, req);
        if (!out.ok()) {
          return Fail(ex, req.tuple.user, req.tuple.relation, req.tuple.object, out.status().message());
        }
        AuthzRecord& rec = Add(ex, req.tuple);
        rec.allowed = out->result.allowed;
        rec.explanation = std::move(out->result.explanation);
        rec.model_id = out->model_id;
        rec.revision = out->revision;
        rec.cached = out->cached;
        if (rec.cached) cache_hits_.fetch_add(1, std::memory_order_relaxed);
        (rec.allowed ? allowed_ : denied_).fetch_add(1, std::memory_order_relaxed);
        if (!rec.allowed) {
          return Deny(rec, fmt::format("{} may not {} {}", rec.user, rec.relation, rec.object));
        }
      }
    }
    return Decision::Continue();
  }

 private:
  AuthzRecord& Add(Exchange& ex, const authz::TupleKey& t) {
    AuthzRecord& rec = ex.authz.emplace_back();
    rec.decision_id = fmt::format("{}.authz.{}", ex.request_id, ex.authz.size() - 1);
    rec.user = t.user;
    rec.relation = t.relation;
    rec.object = t.object;
    return rec;
  }

  static Decision Deny(const AuthzRecord& rec, std::string why) {
    Decision d = Decision::Deny(403, "permission_denied", fmt::format("{} (decision {})", why, rec.decision_id));
    d.headers.push_back({"X-Aigis-Decision-Id", rec.decision_id});
    return d;
  }

  // A check that could not be answered: recorded, and denied (fail closed).
  Decision Fail(Exchange& ex, std::string user, std::string relation, std::string object, std::string_view error) {
    AuthzRecord& rec = Add(ex, {std::move(object), std::move(relation), std::move(user), "", ""});
    rec.error = std::string(error);
    errors_.fetch_add(1, std::memory_order_relaxed);
    return Deny(rec, fmt::format("authorization could not be decided: {}", error));
  }

  Result<std::string> StoreId(const std::string& tenant, const std::string& name) {
    std::string key = tenant + '\0' + name;
    {
      std::lock_guard lock(mu_);
      if (auto it = store_ids_.find(key); it != store_ids_.end()) return it->second;
    }
    auto found = service_->FindStoreByName(tenant, name);
    if (!found.ok()) {
      return NotFound(fmt::format("tenant '{}' has no authorization store '{}'", tenant, name));
    }
    std::lock_guard lock(mu_);
    store_ids_[key] = found->id;
    return found->id;
  }
  void Forget(const std::string& tenant, const std::string& name) {
    std::lock_guard lock(mu_);
    store_ids_.erase(tenant + '\0' + name);
  }

  std::shared_ptr<authz::Service> service_;
  std::atomic<uint64_t> allowed_{0}, denied_{0}, errors_{0}, cache_hits_{0};
  std::mutex mu_;
  std::unordered_map<std::string, std::string> store_ids_;  // tenant\0name -> store id
};

}  // namespace

std::vector<std::string> SubjectsOf(const Principal& p) {
  std::vector<std::string> subjects{SubjectOf(p.kind, p.id)};
  for (const auto& a : p.act) subjects.push_back("agent:" + a);
  return subjects;
}

std::string ConditionContext(const authz::Engine& engine, const Exchange& ex) {
  json::object o;
  for (const auto& c : engine.model().conditions) {
    for (const auto& p : c.parameters) {
      if (p.name == "client_ip" && !ex.remote.empty()) o["client_ip"] = AddressOf(ex.remote);
      if (p.name == "request_time") o["request_time"] = FormatRfc3339(ex.time);
      if (p.name == "principal_kind") o["principal_kind"] = ex.principal.kind;
    }
  }
  return o.empty() ? std::string() : json::serialize(o);
}

std::string AddressOf(std::string_view remote) {
  size_t colon = remote.rfind(':');
  return std::string(colon == std::string_view::npos ? remote : remote.substr(0, colon));
}

std::string ExpandTemplate(std::string_view tmpl, const std::vector<std::pair<std::string_view, std::string>>& vars) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  size_t i = 0;
  while (i < tmpl.size()) {
    size_t open = tmpl.find('{', i);
    size_t close = open == std::string_view::npos ? open : tmpl.find('}', open);
    if (close == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    out.append(tmpl.substr(i, open - i));
    std::string_view name = tmpl.substr(open + 1, close - open - 1);
    for (const auto& [k, v] : vars) {
      if (k == name) {
        out.append(v);
        break;
      }
    }
    i = close + 1;
  }
  return out;
}

std::shared_ptr<AuthorizeStage> MakeAuthorizeStage(std::shared_ptr<authz::Service> service) {
  return std::make_shared<AuthorizeStageImpl>(std::move(service));
}

}  // namespace aigis::gateway

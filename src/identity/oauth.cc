// The OAuth 2.0 endpoints: token (RFC 6749 client_credentials, RFC 7523
// private_key_jwt client authentication, RFC 8693 token exchange),
// introspection (RFC 7662), revocation (RFC 7009) and metadata (RFC 8414).
#include <fmt/format.h>

#include <algorithm>

#include "identity/internal.h"

namespace aigis::identity {

namespace {

constexpr std::string_view kJwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
constexpr std::string_view kTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange";
constexpr std::string_view kAccessTokenType = "urn:ietf:params:oauth:token-type:access_token";
constexpr std::string_view kJwtTokenType = "urn:ietf:params:oauth:token-type:jwt";
constexpr size_t kMaxParams = 32;

std::string_view Param(const std::unordered_map<std::string, std::string>& f, std::string_view name) {
  auto it = f.find(std::string(name));
  return it == f.end() ? std::string_view() : std::string_view(it->second);
}

std::string_view Str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return it->value().get_string();
}

OAuthError Err(int status, std::string error, std::string description) {
  return {status, std::move(error), std::move(description)};
}

json::value ActClaim(const std::vector<std::string>& chain) {
  json::object act;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    json::object outer{{"sub", *it}};
    if (!act.empty()) outer["act"] = std::move(act);
    act = std::move(outer);
  }
  return act;
}

}  // namespace

Result<std::unordered_map<std::string, std::string>> ParseForm(std::string_view body) {
  ASSIGN_OR_RETURN(auto pairs, ParseUrlEncoded(body, kMaxParams));
  std::unordered_map<std::string, std::string> out;
  for (auto& [name, value] : pairs) {
    // RFC 6749 §3.1: parameters MUST NOT be included more than once.
    if (!out.emplace(std::move(name), std::move(value)).second) {
      return InvalidArgument("a parameter appears more than once");
    }
  }
  return out;
}

OAuthResponse JsonResponse(const json::object& body) {
  OAuthResponse r;
  r.body = json::serialize(body);
  r.headers = {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}, {"Pragma", "no-cache"}};
  return r;
}

OAuthResponse ErrorResponse(const OAuthError& e, bool basic_challenge) {
  OAuthResponse r = JsonResponse({{"error", e.error}, {"error_description", e.description}});
  r.status = e.status;
  // RFC 6749 §5.2: a 401 names the scheme the client should have used.
  if (e.status == 401) r.headers.push_back({"WWW-Authenticate", basic_challenge ? "Basic realm=\"aigis\"" : "Bearer realm=\"aigis\""});
  return r;
}

// -------------------------------------------------- client authentication ----

const AgentEntry* Identity::Impl::AuthenticateClient(std::unordered_map<std::string, std::string>& form,
                                                     std::string_view authorization, const Directory& d,
                                                     OAuthError& err) {
  std::string client_id, secret;
  std::string_view assertion_type = Param(form, "client_assertion_type");
  bool has_basic = StartsWith(ToLowerAscii(authorization.substr(0, 6)), "basic ");
  bool has_post = form.count("client_secret") > 0;
  bool has_jwt = !assertion_type.empty() || form.count("client_assertion");
  // RFC 6749 §2.3: a client uses exactly one authentication method.
  if (int(has_basic) + int(has_post) + int(has_jwt) > 1) {
    err = Err(400, "invalid_request", "use exactly one client authentication method");
    return nullptr;
  }
  if (!authorization.empty() && !has_basic) {
    err = Err(401, "invalid_client", "the Authorization header must use the Basic scheme here");
    return nullptr;
  }
  if (has_basic) {
    auto decoded = crypto::Base64Decode(TrimWhitespace(authorization.substr(6)));
    size_t colon = decoded.ok() ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      err = Err(401, "invalid_client", "malformed Basic credentials");
      return nullptr;
    }
    // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
    auto id = FormUrlDecode(std::string_view(*decoded).substr(0, colon));
    auto sec = FormUrlDecode(std::string_view(*decoded).substr(colon + 1));
    if (!id.ok() || !sec.ok()) {
      err = Err(401, "invalid_client", "malformed Basic credentials");
      return nullptr;
    }
    client_id = std::move(*id);
    secret = std::move(*sec);
    if (auto p = Param(form, "client_id"); !p.empty() && p != client_id) {
      err = Err(400, "invalid_request", "client_id differs from the Basic credentials");
      return nullptr;
    }
  } else if (has_post) {
    client_id = std::string(Param(form, "client_id"));
    secret = std::string(Param(form, "client_secret"));
  }

  const AgentEntry* agent = nullptr;
  if (has_jwt) {
    if (assertion_type != kJwtBearer) {
      err = Err(400, "invalid_request", fmt::format("client_assertion_type must be {}", kJwtBearer));
      return nullptr;
    }
    std::string_view assertion = Param(form, "client_assertion");
    auto jws = crypto::ParseCompact(assertion);
    if (!jws.ok()) {
      err = Err(401, "invalid_client", "client_assertion: " + jws.status().message());
      return nullptr;
    }
    boost::system::error_code ec;
    json::value pv = json::parse(jws->payload, ec);
    if (ec || !pv.is_object()) {
      err = Err(401, "invalid_client", "client_assertion payload is not a JSON object");
      return nullptr;
    }
    const json::object& c = pv.get_object();
    std::string_view iss = Str(c, "iss"), sub = Str(c, "sub");
    // RFC 7523 §3: iss and sub are both the client_id.
    if (iss.empty() || iss != sub) {
      err = Err(401, "invalid_client", "client_assertion iss and sub must both be the client_id");
      return nullptr;
    }
    client_id = std::string(iss);
    if (auto p = Param(form, "client_id"); !p.empty() && p != client_id) {
      err = Err(401, "invalid_client", "client_id differs from the assertion's subject");
      return nullptr;
    }
    agent = FindAgent(d, client_id);
    if (!agent || agent->keys.empty()) {
      err = Err(401, "invalid_client", "unknown client, or no public key registered for private_key_jwt");
      return nullptr;
    }
    bool verified = false;
    for (const auto& k : agent->keys) {
      if ((jws->kid.empty() || k.kid().empty() || k.kid() == jws->kid) && crypto::VerifyJws(*jws, k)) {
        verified = true;
        break;
      }
    }
    if (!verified) {
      err = Err(401, "invalid_client", "client_assertion signature does not verify with the client's keys");
      return nullptr;
    }
    std::string iss_url = Issuer();
    std::vector<std::string> auds = {iss_url, iss_url + "/oauth2/token"};
    bool aud_ok = false;
    if (auto it = c.find("aud"); it != c.end()) {
      auto one = [&](const json::value& v) {
        return v.is_string() && std::find(auds.begin(), auds.end(), std::string_view(v.get_string())) != auds.end();
      };
      if (it->value().is_array()) {
        for (const auto& v : it->value().get_array()) aud_ok |= one(v);
      } else {
        aud_ok = one(it->value());
      }
    }
    if (!aud_ok) {
      err = Err(401, "invalid_client", "client_assertion aud must be the issuer or the token endpoint");
      return nullptr;
    }
    int64_t now_s = ToUnix(now());
    int64_t skew = opt.clock_skew.count();
    auto exp_it = c.find("exp");
    if (exp_it == c.end() || !exp_it->value().is_number()) {
      err = Err(401, "invalid_client", "client_assertion has no exp");
      return nullptr;
    }
    int64_t exp = static_cast<int64_t>(exp_it->value().to_number<double>());
    if (exp + skew <= now_s) {
      err = Err(401, "invalid_client", "client_assertion has expired");
      return nullptr;
    }
    if (exp - now_s > opt.assertion_max_lifetime.count() + skew) {
      err = Err(401, "invalid_client", "client_assertion lives too long (exp too far ahead)");
      return nullptr;
    }
    if (auto nbf = c.find("nbf"); nbf != c.end() && nbf->value().is_number() &&
                                  static_cast<int64_t>(nbf->value().to_number<double>()) - skew > now_s) {
      err = Err(401, "invalid_client", "client_assertion is not valid yet");
      return nullptr;
    }
    std::string_view jti = Str(c, "jti");
    if (jti.empty()) {
      err = Err(401, "invalid_client", "client_assertion has no jti");
      return nullptr;
    }
    {
      // RFC 7523 §3 (7): a jti is used once.
      std::lock_guard lock(assertion_mu);
      if (seen_assertions.size() > 100000) std::erase_if(seen_assertions, [&](const auto& kv) { return kv.second <= now_s; });
      if (!seen_assertions.emplace(client_id + "\n" + std::string(jti), exp + skew).second) {
        err = Err(401, "invalid_client", "client_assertion jti was already used");
        return nullptr;
      }
    }
  } else {
    if (client_id.empty()) {
      err = Err(401, "invalid_client", "client authentication is required (Basic, client_secret or private_key_jwt)");
      return nullptr;
    }
    agent = FindAgent(d, client_id);
    bool ok = false;
    if (agent) {
      WallTime t = now();
      if (auto it = d.secrets.find(agent->agent.id); it != d.secrets.end()) {
        for (const auto& s : it->second) {
          if (s->expires_at && *s->expires_at <= t) continue;
          // Compare every live secret: the time taken does not say which matched.
          ok |= crypto::ConstantTimeEqual(CredentialHash(s->id, secret), s->hash);
        }
      }
    }
    if (!ok) {
      err = Err(401, "invalid_client", "unknown client or wrong secret");
      return nullptr;
    }
  }
  if (agent->agent.status != AgentStatus::kActive) {
    err = Err(401, "invalid_client", fmt::format("client is {}", AgentStatusName(agent->agent.status)));
    return nullptr;
  }
  return agent;
}

std::optional<OAuthResponse> Identity::Impl::BeginClientCall(const OAuthRequest& req, ClientCall& call) {
  if (req.method != "POST") {
    OAuthResponse r = ErrorResponse(Err(405, "invalid_request", "use POST"), false);
    r.headers.push_back({"Allow", "POST"});
    return r;
  }
  if (!StartsWith(ToLowerAscii(TrimWhitespace(req.content_type)), "application/x-www-form-urlencoded")) {
    return ErrorResponse(Err(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"), false);
  }
  auto form = ParseForm(req.body);
  if (!form.ok()) return ErrorResponse(Err(400, "invalid_request", form.status().message()), false);
  call.form = std::move(*form);
  call.dir = Dir();
  OAuthError err;
  call.client = AuthenticateClient(call.form, req.authorization, *call.dir, err);
  if (!call.client) {
    failures.fetch_add(1, std::memory_order_relaxed);
    return ErrorResponse(err, true);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- token ----

OAuthResponse Identity::Token(const OAuthRequest& req) {
  Impl& m = *impl_;
  Impl::ClientCall call;
  if (auto fail = m.BeginClientCall(req, call)) return std::move(*fail);
  auto& form = call.form;
  const auto& d = call.dir;
  const AgentEntry* client = call.client;
  const Agent& agent = client->agent;
  std::string_view grant = Param(form, "grant_type");
  bool scope_given = form.count("scope") > 0;
  std::vector<std::string> requested = SplitScopes(Param(form, "scope"));
  int64_t now_s = ToUnix(m.now());
  int64_t exp = now_s + m.opt.token_ttl.count();
  json::object claims;
  claims["iss"] = m.Issuer();
  claims["aud"] = m.opt.audience;
  claims["client_id"] = agent.id;
  claims["tenant"] = agent.tenant;
  std::vector<std::string> scopes;
  json::object out;

  if (grant == "client_credentials") {
    if (!scope_given) requested = agent.scopes;
    if (!ScopesWithin(requested, agent.scopes)) {
      return ErrorResponse(Err(400, "invalid_scope", "requested scope exceeds the client's allowed scopes"), false);
    }
    scopes = requested;
    claims["sub"] = agent.id;
    claims["principal_kind"] = "agent";
  } else if (grant == kTokenExchange) {
    std::string_view subject_token = Param(form, "subject_token");
    std::string_view stt = Param(form, "subject_token_type");
    if (subject_token.empty() || (stt != kAccessTokenType && stt != kJwtTokenType)) {
      return ErrorResponse(Err(400, "invalid_request",
                               fmt::format("subject_token and subject_token_type ({} or {}) are required",
                                           kAccessTokenType, kJwtTokenType)),
                           false);
    }
    if (auto rtt = Param(form, "requested_token_type"); !rtt.empty() && rtt != kAccessTokenType && rtt != kJwtTokenType) {
      return ErrorResponse(Err(400, "invalid_request", "requested_token_type must be an access token or jwt"), false);
    }
    auto subject = m.VerifyJwt(subject_token, true);
    Status live = subject.ok() ? m.CheckLive(*subject, *d) : subject.status();
    if (!live.ok()) return ErrorResponse(Err(400, "invalid_grant", "subject_token: " + live.message()), false);
    if (std::string_view at = Param(form, "actor_token"); !at.empty()) {
      std::string_view att = Param(form, "actor_token_type");
      if (att != kAccessTokenType && att != kJwtTokenType) {
        return ErrorResponse(Err(400, "invalid_request", "actor_token_type is required with actor_token"), false);
      }
      auto actor = m.VerifyJwt(at, false);
      Status alive = actor.ok() ? m.CheckLive(*actor, *d) : actor.status();
      if (!alive.ok()) return ErrorResponse(Err(400, "invalid_grant", "actor_token: " + alive.message()), false);
      // The actor is the authenticated agent itself, not someone it names.
      if (actor->principal.kind != "agent" || actor->principal.id != agent.id || !actor->principal.act.empty()) {
        return ErrorResponse(Err(400, "invalid_grant", "actor_token must be the calling agent's own token"), false);
      }
    }
    const Principal& sp = subject->principal;
    if (sp.tenant != agent.tenant) {
      return ErrorResponse(Err(400, "invalid_grant", "subject and agent belong to different tenants"), false);
    }
    if (sp.kind == "agent" && sp.id == agent.id) {
      return ErrorResponse(Err(400, "invalid_grant", "an agent cannot act on behalf of itself"), false);
    }
    std::vector<std::string> chain = {agent.id};
    chain.insert(chain.end(), sp.act.begin(), sp.act.end());
    if (static_cast<int>(chain.size()) > m.opt.max_delegation_depth) {
      return ErrorResponse(Err(400, "invalid_request", fmt::format("delegation chain deeper than {}",
                                                                   m.opt.max_delegation_depth)),
                           false);
    }
    std::vector<std::string> both;
    for (const auto& s : sp.scopes) {
      if (std::find(agent.scopes.begin(), agent.scopes.end(), s) != agent.scopes.end()) both.push_back(s);
    }
    if (!scope_given) requested = both;
    if (!ScopesWithin(requested, both)) {
      return ErrorResponse(Err(400, "invalid_scope", "requested scope exceeds what both the subject and the agent hold"),
                           false);
    }
    scopes = requested;
    claims["sub"] = sp.id;
    claims["principal_kind"] = sp.kind;
    if (!sp.email.empty()) claims["email"] = sp.email;
    if (!sp.groups.empty()) {
      json::array g;
      for (const auto& x : sp.groups) g.emplace_back(x);
      claims["groups"] = std::move(g);
    }
    if (sp.issuer != m.Issuer()) claims["subject_issuer"] = sp.issuer;
    claims["act"] = ActClaim(chain);
    exp = std::min<int64_t>(exp, ToUnix(sp.expires_at));
    out["issued_token_type"] = kAccessTokenType;
  } else if (grant.empty()) {
    return ErrorResponse(Err(400, "invalid_request", "grant_type is required"), false);
  } else {
    return ErrorResponse(Err(400, "unsupported_grant_type",
                             fmt::format("grant_type must be client_credentials or {}", kTokenExchange)),
                         false);
  }
  std::string scope = JoinScopes(scopes);
  std::string jti = RandomId("", 22);
  claims["scope"] = scope;
  claims["iat"] = now_s;
  claims["nbf"] = now_s;
  claims["exp"] = exp;
  claims["jti"] = jti;
  auto token = m.SignToken(std::move(claims), "at+jwt");
  if (!token.ok()) return ErrorResponse(Err(500, "server_error", token.status().message()), false);
  m.issued.fetch_add(1, std::memory_order_relaxed);
  out["access_token"] = std::move(*token);
  out["token_type"] = "Bearer";
  out["expires_in"] = exp - now_s;
  out["scope"] = scope;
  return JsonResponse(out);
}

// -------------------------------------------------------- introspection ----

OAuthResponse Identity::Introspect(const OAuthRequest& req) {
  Impl& m = *impl_;
  Impl::ClientCall call;
  if (auto fail = m.BeginClientCall(req, call)) return std::move(*fail);
  auto& form = call.form;
  const AgentEntry* caller = call.client;
  std::string token(Param(form, "token"));
  if (token.empty()) return ErrorResponse(Err(400, "invalid_request", "token is required"), false);
  json::object inactive{{"active", false}};
  auto p = Authenticate(token, "");
  // RFC 7662 §2.2: anything not active (or not the caller's tenant's) is
  // just {"active":false}, with no reason that would help a prober.
  if (!p.ok() || p->tenant != caller->agent.tenant) return JsonResponse(inactive);
  json::object out{{"active", true}, {"sub", p->id}, {"tenant", p->tenant}, {"scope", JoinScopes(p->scopes)},
                   {"principal_kind", p->kind}, {"token_type", "Bearer"}};
  if (p->issuer == "api_key") {
    out["token_type"] = "api_key";
    out["key_id"] = p->credential_id;
  } else {
    out["iss"] = p->issuer;
    if (!p->client_id.empty()) out["client_id"] = p->client_id;
    if (!p->credential_id.empty()) out["jti"] = p->credential_id;
    if (!p->act.empty()) out["act"] = ActClaim(p->act);
    if (auto v = m.cache.Find(token)) {
      if (auto it = v->claims.find("aud"); it != v->claims.end()) out["aud"] = it->value();
      if (v->iat) out["iat"] = v->iat;
      if (v->nbf) out["nbf"] = v->nbf;
    }
  }
  if (p->expires_at != WallTime{}) out["exp"] = ToUnix(p->expires_at);
  if (!p->email.empty()) out["email"] = p->email;
  return JsonResponse(out);
}

// ----------------------------------------------------------- revocation ----

OAuthResponse Identity::Revoke(const OAuthRequest& req) {
  Impl& m = *impl_;
  Impl::ClientCall call;
  if (auto fail = m.BeginClientCall(req, call)) return std::move(*fail);
  auto& form = call.form;
  const AgentEntry* caller = call.client;
  std::string token(Param(form, "token"));
  if (token.empty()) return ErrorResponse(Err(400, "invalid_request", "token is required"), false);
  OAuthResponse ok;
  ok.headers = {{"Cache-Control", "no-store"}};
  if (StartsWith(token, "aig_")) {
    auto p = m.AuthenticateApiKey(token);
    if (!p.ok()) return ok;  // RFC 7009 §2.2: invalid tokens are not an error
    if (p->kind != "agent" || p->id != caller->agent.id) {
      return ErrorResponse(Err(403, "unauthorized_client", "the token was not issued to this client"), false);
    }
    if (Status st = RevokeApiKey(p->tenant, p->credential_id); !st.ok() && st.code() != Code::kNotFound) {
      return ErrorResponse(Err(503, "temporarily_unavailable", st.message()), false);
    }
    return ok;
  }
  auto v = m.VerifyJwt(token, false);
  if (!v.ok()) return ok;
  const Principal& p = v->principal;
  if (p.client_id != caller->agent.id && p.id != caller->agent.id) {
    return ErrorResponse(Err(403, "unauthorized_client", "the token was not issued to this client"), false);
  }
  std::lock_guard lock(m.write_mu);
  if (m.Dir()->revoked_jti.count(v->jti)) return ok;
  auto st = m.store->Exec("INSERT INTO revoked_tokens (tenant, jti, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4) "
                          "ON CONFLICT (tenant, jti) DO NOTHING",
                          {p.tenant, v->jti, v->exp + m.opt.clock_skew.count(), ToUnix(m.now())});
  if (!st.ok()) return ErrorResponse(Err(503, "temporarily_unavailable", st.status().message()), false);
  (void)m.Mutate([&](Directory& dd) {
    dd.revoked_jti[v->jti] = v->exp + m.opt.clock_skew.count();
    return Status();
  });
  return ok;
}

// ------------------------------------------------------------- metadata ----

std::string Identity::MetadataJson() const {
  std::string iss = impl_->Issuer();
  json::array algs = {crypto::AlgName(impl_->alg)};
  json::object md{
      {"issuer", iss},
      {"token_endpoint", iss + "/oauth2/token"},
      {"jwks_uri", iss + "/.well-known/jwks.json"},
      {"introspection_endpoint", iss + "/oauth2/introspect"},
      {"revocation_endpoint", iss + "/oauth2/revoke"},
      {"grant_types_supported", json::array{"client_credentials", kTokenExchange}},
      {"response_types_supported", json::array{}},
      {"token_endpoint_auth_methods_supported",
       json::array{"client_secret_basic", "client_secret_post", "private_key_jwt"}},
      {"token_endpoint_auth_signing_alg_values_supported", json::array{"EdDSA", "ES256", "ES384", "RS256", "PS256"}},
      {"introspection_endpoint_auth_methods_supported",
       json::array{"client_secret_basic", "client_secret_post", "private_key_jwt"}},
      {"revocation_endpoint_auth_methods_supported",
       json::array{"client_secret_basic", "client_secret_post", "private_key_jwt"}},
      {"access_token_signing_alg_values_supported", algs},
  };
  return json::serialize(md);
}

}  // namespace aigis::identity

// Signing keys, JWT access tokens (RFC 9068), their verification and the
// authenticate path with its cache.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "identity/internal.h"

namespace aigis::identity {

namespace {

constexpr std::string_view kKeysTenant = "default";  // one issuer serves every tenant

std::string_view Str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return it->value().get_string();
}

// NumericDate (RFC 7519 §2): integers only here; fractions are truncated.
std::optional<int64_t> Num(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return std::nullopt;
  const json::value& v = it->value();
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() < (1ULL << 62)) return static_cast<int64_t>(v.get_uint64());
  if (v.is_double() && v.get_double() > -1e15 && v.get_double() < 1e15) return static_cast<int64_t>(v.get_double());
  return std::nullopt;
}

bool AudienceMatches(const json::object& claims, const std::vector<std::string>& wanted) {
  auto it = claims.find("aud");
  if (it == claims.end()) return false;
  auto match = [&](const json::value& v) {
    return v.is_string() && std::find(wanted.begin(), wanted.end(), std::string_view(v.get_string())) != wanted.end();
  };
  if (it->value().is_array()) {
    const auto& arr = it->value().get_array();
    return std::any_of(arr.begin(), arr.end(), match);
  }
  return match(it->value());
}

std::vector<std::string> StringList(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end()) return out;
  if (it->value().is_string()) return SplitScopes(it->value().get_string());
  if (it->value().is_array()) {
    for (const auto& v : it->value().get_array()) {
      if (v.is_string() && out.size() < 256) out.emplace_back(v.get_string());
    }
  }
  return out;
}

// The `act` chain (RFC 8693 §4.1), nearest actor first; nullopt if malformed
// or deeper than `max`.
std::optional<std::vector<std::string>> ActChain(const json::object& claims, int max) {
  std::vector<std::string> chain;
  const json::object* cur = &claims;
  for (;;) {
    auto it = cur->find("act");
    if (it == cur->end()) return chain;
    if (!it->value().is_object()) return std::nullopt;
    cur = &it->value().get_object();
    std::string_view sub = Str(*cur, "sub");
    if (sub.empty() || static_cast<int>(chain.size()) >= max) return std::nullopt;
    chain.emplace_back(sub);
  }
}

Status Unauth(std::string m) { return Status(Code::kUnauthenticated, std::move(m)); }

}  // namespace

// ----------------------------------------------------------------- keys ----

void Identity::Impl::PublishKeys(std::vector<std::shared_ptr<const SigningKey>> keys) {
  // A retired key stays published until the longest-lived token it could have
  // signed has expired (plus the skew verifiers allow).
  WallTime t = now();
  std::erase_if(keys, [&](const auto& k) {
    return k->retired_at && *k->retired_at + opt.token_ttl + opt.clock_skew < t;
  });
  std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    if (a->retired_at.has_value() != b->retired_at.has_value()) return !a->retired_at.has_value();
    return a->created_at > b->created_at;
  });
  auto ks = std::make_shared<KeySet>();
  ks->published = std::move(keys);
  if (!ks->published.empty() && !ks->published.front()->retired_at) ks->active = ks->published.front();
  std::vector<crypto::Key> pub;
  for (const auto& k : ks->published) pub.push_back(k->key);
  ks->jwks_json = crypto::JwksJson(pub);
  keyset.store(std::move(ks), std::memory_order_release);
}

Status Identity::Impl::LoadKeys() {
  ASSIGN_OR_RETURN(auto rows, store->Query("SELECT kid, alg, sealed, created_at, retired_at FROM signing_keys "
                                           "WHERE tenant=?1",
                                           {std::string(kKeysTenant)}));
  std::vector<std::shared_ptr<const SigningKey>> keys;
  bool have_active = false;
  for (const auto& r : rows) {
    auto k = std::make_shared<SigningKey>();
    k->kid = r.Text(0);
    auto parsed = crypto::ParseAlg(r.Text(1));
    if (!parsed) return Internal(fmt::format("signing key {} has unknown alg {}", k->kid, r.Text(1)));
    k->alg = *parsed;
    auto pem = crypto::Open(seal_key, r.Text(2), "aigis signing key " + k->kid);
    if (!pem.ok()) {
      return InvalidArgument(
          "identity.master_key cannot unseal the stored signing keys: it is not the key they were sealed with");
    }
    ASSIGN_OR_RETURN(crypto::Key key, crypto::Key::FromPem(*pem));
    k->key = key.WithKid(k->kid);
    k->created_at = FromUnix(r.Int(3));
    if (!r.IsNull(4)) k->retired_at = FromUnix(r.Int(4));
    // A key whose algorithm no longer matches the configured one is retired
    // on the next rotation; it still verifies what it signed.
    if (!k->retired_at && k->alg == alg) have_active = true;
    keys.push_back(std::move(k));
  }
  PublishKeys(std::move(keys));
  if (!have_active) return CreateKey(true);
  return {};
}

Status Identity::Impl::CreateKey(bool retire_current) {
  ASSIGN_OR_RETURN(crypto::Key key, crypto::Key::Generate(alg));
  ASSIGN_OR_RETURN(std::string thumb, key.Thumbprint());
  auto k = std::make_shared<SigningKey>();
  k->kid = thumb.substr(0, 16);
  k->alg = alg;
  k->key = key.WithKid(k->kid);
  k->created_at = FromUnix(ToUnix(now()));
  ASSIGN_OR_RETURN(std::string pem, key.PrivatePem());
  ASSIGN_OR_RETURN(std::string sealed, crypto::Seal(seal_key, pem, "aigis signing key " + k->kid));
  auto current = keyset.load();
  int64_t t = ToUnix(k->created_at);
  RETURN_IF_ERROR(store->Transaction([&](store::Session& s) -> Status {
    if (retire_current) {
      RETURN_IF_ERROR(s.Exec("UPDATE signing_keys SET retired_at=?2 WHERE tenant=?1 AND retired_at IS NULL",
                             {std::string(kKeysTenant), t})
                          .status());
    }
    return s.Exec("INSERT INTO signing_keys (tenant, kid, alg, sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                  {std::string(kKeysTenant), k->kid, std::string(crypto::AlgName(alg)), store::Blob{sealed}, t})
        .status();
  }));
  std::vector<std::shared_ptr<const SigningKey>> keys;
  if (current) {
    for (const auto& old : current->published) {
      if (!old->retired_at && retire_current) {
        auto r = std::make_shared<SigningKey>(*old);
        r->retired_at = k->created_at;
        keys.push_back(std::move(r));
      } else {
        keys.push_back(old);
      }
    }
  }
  keys.push_back(std::move(k));
  PublishKeys(std::move(keys));
  spdlog::info("signing key {} ({}) is now active", keyset.load()->active->kid, crypto::AlgName(alg));
  return {};
}

Status Identity::RotateSigningKey() {
  std::lock_guard lock(impl_->write_mu);
  return impl_->CreateKey(true);
}

std::vector<std::string> Identity::PublishedKids() const {
  std::vector<std::string> out;
  for (const auto& k : impl_->keyset.load()->published) out.push_back(k->kid);
  return out;
}

std::string Identity::JwksJson() const { return impl_->keyset.load()->jwks_json; }

Result<std::string> Identity::Impl::SignToken(json::object claims, std::string_view typ) {
  auto ks = keyset.load(std::memory_order_acquire);
  if (!ks || !ks->active) return Internal("no active signing key");
  return crypto::SignCompact(ks->active->key, ks->active->alg, typ, json::serialize(claims));
}

// --------------------------------------------------------- verification ----

Result<Verified> Identity::Impl::VerifyJwt(std::string_view token, bool allow_idp) {
  auto jws = crypto::ParseCompact(token);
  if (!jws.ok()) return Unauth("malformed token: " + jws.status().message());
  boost::system::error_code ec;
  json::value payload = json::parse(jws->payload, ec);
  if (ec || !payload.is_object()) return Unauth("token payload is not a JSON object");
  Verified v;
  v.claims = std::move(payload.get_object());
  const json::object& c = v.claims;
  std::string_view iss = Str(c, "iss");
  std::string our_issuer = Issuer();
  int64_t now_s = ToUnix(now());
  int64_t skew = opt.clock_skew.count();
  std::vector<std::string> audiences;
  const TrustedIssuer* idp = nullptr;
  std::shared_ptr<const IssuerKeys> hold;  // keeps the IdP key alive while in use

  if (!our_issuer.empty() && iss == our_issuer) {
    // RFC 9068 §4: access tokens carry typ at+jwt; this also keeps principal
    // headers and client assertions from being replayed as access tokens.
    if (!EqualsIgnoreCase(jws->typ, "at+jwt") && !EqualsIgnoreCase(jws->typ, "application/at+jwt")) {
      return Unauth("token typ is not at+jwt");
    }
    auto ks = keyset.load(std::memory_order_acquire);
    const SigningKey* key = nullptr;
    for (const auto& k : ks->published) {
      if (k->kid == jws->kid) key = k.get();
    }
    if (!key) return Unauth("token signed by an unknown key (kid '" + jws->kid + "')");
    if (key->alg != jws->alg || !crypto::VerifyJws(*jws, key->key)) return Unauth("token signature is invalid");
    v.ours = true;
    audiences = {opt.audience};
  } else if (allow_idp) {
    IssuerState* state = nullptr;
    for (auto& s : issuers) {
      if (s->cfg.issuer == iss) state = s.get();
    }
    if (!state) return Unauth(iss.empty() ? "token has no iss" : fmt::format("issuer '{}' is not trusted", iss));
    idp = &state->cfg;
    if (std::find(idp->algorithms.begin(), idp->algorithms.end(), crypto::AlgName(jws->alg)) ==
        idp->algorithms.end()) {
      return Unauth(fmt::format("algorithm {} is not allowed for issuer '{}'", crypto::AlgName(jws->alg), iss));
    }
    ASSIGN_OR_RETURN(const crypto::Key* key, IssuerKey(*state, *jws, hold));
    if (!crypto::VerifyJws(*jws, *key)) return Unauth("token signature is invalid");
    audiences = idp->audiences;
    skew = idp->clock_skew.count();
  } else {
    return Unauth("token was not issued by aigis");
  }

  auto exp = Num(c, "exp");
  if (!exp) return Unauth("token has no exp");
  if (*exp + skew <= now_s) return Unauth("token has expired");
  if (auto nbf = Num(c, "nbf")) {
    if (*nbf - skew > now_s) return Unauth("token is not valid yet (nbf)");
    v.nbf = *nbf;
  }
  if (auto iat = Num(c, "iat")) {
    if (*iat - skew > now_s) return Unauth("token was issued in the future (iat)");
    v.iat = *iat;
  }
  if (!AudienceMatches(c, audiences)) return Unauth("token audience is not accepted here");
  v.exp = *exp;
  v.jti = std::string(Str(c, "jti"));

  Principal& p = v.principal;
  p.expires_at = FromUnix(*exp);
  p.issuer = std::string(iss);
  auto act = ActChain(c, opt.max_delegation_depth);
  if (!act) return Unauth("token act chain is malformed or too deep");
  p.act = std::move(*act);
  if (v.ours) {
    if (v.jti.empty()) return Unauth("token has no jti");
    p.id = std::string(Str(c, "sub"));
    p.tenant = std::string(Str(c, "tenant"));
    p.client_id = std::string(Str(c, "client_id"));
    p.kind = std::string(Str(c, "principal_kind"));
    if (p.kind.empty()) p.kind = "agent";
    if (p.kind != "agent" && p.kind != "user" && p.kind != "service") return Unauth("token principal_kind is unknown");
    p.scopes = StringList(c, "scope");
    p.groups = StringList(c, "groups");
    p.email = std::string(Str(c, "email"));
    p.credential_id = v.jti;
  } else {
    p.kind = "user";
    p.tenant = idp->tenant;
    p.id = std::string(Str(c, idp->claims.subject));
    p.email = std::string(Str(c, idp->claims.email));
    p.groups = StringList(c, idp->claims.groups);
    p.scopes = StringList(c, idp->claims.scope);
    if (p.scopes.empty()) p.scopes = idp->default_scopes;
    p.client_id = std::string(Str(c, "azp"));
    if (p.client_id.empty()) p.client_id = std::string(Str(c, "client_id"));
    p.credential_id = v.jti;
  }
  if (p.id.empty() || p.tenant.empty()) return Unauth("token has no subject or tenant");
  return v;
}

Status Identity::Impl::CheckLive(const Verified& v, const Directory& d) const {
  if (!v.jti.empty() && d.revoked_jti.count(v.jti)) return Unauth("token has been revoked");
  if (v.ours) {
    const Principal& p = v.principal;
    // Every aigis identity in the token must still be active: the subject
    // (when an agent), the client that obtained it and every actor.
    if (p.kind == "agent" && !AgentActive(d, p.id)) return Unauth("agent '" + p.id + "' is not active");
    if (!p.client_id.empty() && !AgentActive(d, p.client_id)) {
      return Unauth("client '" + p.client_id + "' is not active");
    }
    for (const auto& a : p.act) {
      if (d.agents.count(a) && !AgentActive(d, a)) return Unauth("actor '" + a + "' is not active");
    }
  }
  return {};
}

Result<Principal> Identity::Impl::AuthenticateApiKey(std::string_view key) {
  // aig_<16 base32 chars>_<43 base64url chars>
  if (key.size() != 4 + 16 + 1 + 43 || key[20] != '_') return Unauth("malformed API key");
  std::string id(key.substr(4, 16));
  std::string_view secret = key.substr(21);
  auto d = Dir();
  auto it = d->api_keys.find(id);
  if (it == d->api_keys.end()) return Unauth("unknown or revoked API key");
  const ApiKeyEntry& k = *it->second;
  if (!crypto::ConstantTimeEqual(CredentialHash(id, secret), k.hash)) return Unauth("API key does not match");
  WallTime t = now();
  if (k.cred.expires_at && *k.cred.expires_at <= t) return Unauth("API key has expired");
  if (k.cred.subject_kind == "agent" && !AgentActive(*d, k.cred.subject)) {
    return Unauth("agent '" + k.cred.subject + "' is not active");
  }
  k.last_used.store(ToUnix(t), std::memory_order_relaxed);
  Principal p;
  p.tenant = k.cred.tenant;
  p.kind = k.cred.subject_kind;
  p.id = k.cred.subject;
  p.issuer = "api_key";
  p.credential_id = k.cred.id;
  p.scopes = k.cred.scopes;
  if (k.cred.expires_at) p.expires_at = *k.cred.expires_at;
  return p;
}

// ---------------------------------------------------------------- cache ----

std::shared_ptr<const Verified> TokenCache::Find(std::string_view token) const {
  size_t h = std::hash<std::string_view>{}(token);
  const Shard& s = shards_[h % kShards];
  std::lock_guard lock(s.mu);
  auto it = s.map.find(h);
  if (it == s.map.end() || !crypto::ConstantTimeEqual(it->second.token, token)) return nullptr;
  return it->second.v;
}

void TokenCache::Insert(std::string_view token, std::shared_ptr<const Verified> v) {
  size_t h = std::hash<std::string_view>{}(token);
  Shard& s = shards_[h % kShards];
  std::lock_guard lock(s.mu);
  // Bounded: a full shard starts over rather than growing (an attacker with
  // many valid tokens can only cost us re-verification).
  if (s.map.size() >= per_shard_) s.map.clear();
  s.map[h] = Entry{std::string(token), std::move(v)};
}

void TokenCache::Clear() {
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    s.map.clear();
  }
}

Result<Principal> Identity::Authenticate(std::string_view bearer, std::string_view api_key) {
  Impl& m = *impl_;
  std::string_view presented = !bearer.empty() ? bearer : api_key;
  if (presented.empty()) return Unauth("no credentials");
  Result<Principal> out = Unauth("");
  if (StartsWith(presented, "aig_")) {
    out = m.AuthenticateApiKey(presented);
  } else if (presented.size() > crypto::kMaxJwsBytes) {
    out = Unauth("token too large");
  } else {
    auto d = m.Dir();
    int64_t now_s = ToUnix(m.now());
    std::shared_ptr<const Verified> v = m.cache.Find(presented);
    if (v) {
      m.hits.fetch_add(1, std::memory_order_relaxed);
      if (v->exp + m.opt.clock_skew.count() <= now_s) {
        out = Unauth("token has expired");
      } else if (Status st = m.CheckLive(*v, *d); !st.ok()) {
        out = st;
      } else {
        out = v->principal;
      }
    } else {
      m.misses.fetch_add(1, std::memory_order_relaxed);
      auto verified = m.VerifyJwt(presented, true);
      if (!verified.ok()) {
        out = verified.status();
      } else if (Status st = m.CheckLive(*verified, *d); !st.ok()) {
        out = st;
      } else {
        auto shared = std::make_shared<const Verified>(std::move(*verified));
        out = shared->principal;
        m.cache.Insert(presented, std::move(shared));
      }
    }
  }
  if (!out.ok()) m.failures.fetch_add(1, std::memory_order_relaxed);
  return out;
}

Result<std::string> Identity::SignPrincipal(const Principal& p, seconds ttl) {
  Impl& m = *impl_;
  int64_t now_s = ToUnix(m.now());
  json::object c;
  c["iss"] = m.Issuer();
  c["aud"] = "aigis-upstream";
  c["sub"] = p.id;
  c["principal_kind"] = p.kind;
  c["tenant"] = p.tenant;
  if (!p.client_id.empty()) c["client_id"] = p.client_id;
  if (!p.email.empty()) c["email"] = p.email;
  c["scope"] = JoinScopes(p.scopes);
  if (!p.groups.empty()) {
    json::array g;
    for (const auto& x : p.groups) g.emplace_back(x);
    c["groups"] = std::move(g);
  }
  if (!p.act.empty()) {
    json::object act;
    for (auto it = p.act.rbegin(); it != p.act.rend(); ++it) {
      json::object outer{{"sub", *it}};
      if (!act.empty()) outer["act"] = std::move(act);
      act = std::move(outer);
    }
    c["act"] = std::move(act);
  }
  c["iat"] = now_s;
  c["exp"] = now_s + ttl.count();
  c["jti"] = RandomId("", 20);
  return m.SignToken(std::move(c), "aigis-principal+jwt");
}

}  // namespace aigis::identity

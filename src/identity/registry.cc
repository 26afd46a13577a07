// The agent registry and credentials: the store is the truth, the Directory
// snapshot is what the request path reads.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "identity/internal.h"

namespace aigis::identity {

namespace {

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> kMigrations = {
      {1, "agents, credentials, signing keys, revoked tokens", R"sql(
CREATE TABLE agents (
  tenant TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
  owner TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
  scopes TEXT NOT NULL DEFAULT '', metadata TEXT NOT NULL DEFAULT '{}',
  jwks TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, id));
CREATE UNIQUE INDEX agents_id ON agents (id);
CREATE INDEX agents_by_name ON agents (tenant, name);
CREATE TABLE credentials (
  tenant TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
  subject TEXT NOT NULL, subject_kind TEXT NOT NULL, hash BLOB NOT NULL,
  scopes TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL,
  expires_at INTEGER, revoked_at INTEGER, last_used_at INTEGER,
  replaced_by TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant, id));
CREATE UNIQUE INDEX credentials_id ON credentials (id);
CREATE INDEX credentials_by_subject ON credentials (tenant, subject);
CREATE TABLE signing_keys (
  tenant TEXT NOT NULL, kid TEXT NOT NULL, alg TEXT NOT NULL, sealed BLOB NOT NULL,
  created_at INTEGER NOT NULL, retired_at INTEGER,
  PRIMARY KEY (tenant, kid));
CREATE TABLE revoked_tokens (
  tenant TEXT NOT NULL, jti TEXT NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, jti));
)sql"}};
  return kMigrations;
}

constexpr std::string_view kAgentColumns =
    "tenant, id, name, owner, description, scopes, metadata, jwks, status, created_at, updated_at";

Agent AgentFromRow(const store::Row& r) {
  Agent a;
  a.tenant = r.Text(0);
  a.id = r.Text(1);
  a.name = r.Text(2);
  a.owner = r.Text(3);
  a.description = r.Text(4);
  a.scopes = SplitScopes(r.Text(5));
  a.metadata = r.Text(6);
  a.jwks = r.Text(7);
  const std::string& st = r.Text(8);
  a.status = st == "active" ? AgentStatus::kActive
             : st == "suspended" ? AgentStatus::kSuspended
                                 : AgentStatus::kDecommissioned;  // unknown: fail closed
  a.created_at = FromUnix(r.Int(9));
  a.updated_at = FromUnix(r.Int(10));
  return a;
}

std::optional<WallTime> OptTime(const store::Row& r, size_t i) {
  if (r.IsNull(i)) return std::nullopt;
  return FromUnix(r.Int(i));
}
store::Value OptValue(const std::optional<WallTime>& t) {
  if (!t) return nullptr;
  return ToUnix(*t);
}

constexpr std::string_view kCredentialColumns =
    "tenant, id, kind, subject, subject_kind, hash, scopes, created_at, expires_at, revoked_at, last_used_at, "
    "replaced_by";

Credential CredentialFromRow(const store::Row& r, std::string* hash) {
  Credential c;
  c.tenant = r.Text(0);
  c.id = r.Text(1);
  c.kind = r.Text(2) == "api_key" ? CredentialKind::kApiKey : CredentialKind::kClientSecret;
  c.subject = r.Text(3);
  c.subject_kind = r.Text(4);
  if (hash) *hash = r.Text(5);
  c.scopes = SplitScopes(r.Text(6));
  c.created_at = FromUnix(r.Int(7));
  c.expires_at = OptTime(r, 8);
  c.revoked_at = OptTime(r, 9);
  c.last_used_at = OptTime(r, 10);
  c.replaced_by = r.Text(11);
  return c;
}

bool ValidName(std::string_view s, size_t max) { return !s.empty() && s.size() <= max && IsValidUtf8(s); }

bool ValidId(std::string_view s) {
  if (s.size() < 3 || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

Status ValidScopes(const std::vector<std::string>& scopes) {
  if (scopes.size() > 256) return InvalidArgument("at most 256 scopes");
  for (const auto& s : scopes) {
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    if (s.empty() || s.size() > 128) return InvalidArgument("scope names are 1..128 characters");
    for (unsigned char c : s) {
      if (c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E) {
        return InvalidArgument(fmt::format("scope '{}' has a character RFC 6749 does not allow", s));
      }
    }
  }
  return {};
}

Status ValidMetadata(std::string_view text) {
  if (text.size() > 16 * 1024) return InvalidArgument("metadata is limited to 16 KiB");
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgument("metadata must be a JSON object");
  return {};
}

// Agents register public keys only: private_key_jwt must never accept a
// shared secret (that would let anyone who reads the registry sign).
Result<std::vector<crypto::Key>> AgentKeys(std::string_view jwks) {
  if (jwks.empty()) return std::vector<crypto::Key>{};
  if (jwks.size() > 64 * 1024) return InvalidArgument("jwks is limited to 64 KiB");
  auto keys = crypto::ParseJwks(jwks);
  if (!keys.ok()) return InvalidArgument("jwks: " + keys.status().message());
  if (keys->empty()) return InvalidArgument("jwks has no usable signature key");
  for (const auto& k : *keys) {
    if (k.type() == crypto::KeyType::kOct) return InvalidArgument("jwks: symmetric (oct) keys are not accepted");
    if (k.has_private()) return InvalidArgument("jwks: register public keys only (found a private key)");
  }
  return keys;
}

std::string Placeholders(size_t n) {
  std::string s;
  for (size_t i = 1; i <= n; ++i) s += fmt::format("{}?{}", i > 1 ? "," : "", i);
  return s;
}

}  // namespace

// ------------------------------------------------------------- helpers ----

int64_t ToUnix(WallTime t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }
WallTime FromUnix(int64_t s) { return WallTime(std::chrono::seconds(s)); }

std::string RandomId(std::string_view prefix, size_t chars) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string raw = crypto::RandomBytes(chars);
  std::string out(prefix);
  for (unsigned char c : raw) out.push_back(kAlphabet[c & 31]);
  return out;
}

std::string JoinScopes(const std::vector<std::string>& scopes) {
  std::string s;
  for (const auto& x : scopes) {
    if (!s.empty()) s.push_back(' ');
    s += x;
  }
  return s;
}

std::vector<std::string> SplitScopes(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t j = i;
    while (j < text.size() && text[j] != ' ') ++j;
    if (j > i) {
      std::string s(text.substr(i, j - i));
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
    }
    i = j;
  }
  return out;
}

bool ScopesWithin(const std::vector<std::string>& wanted, const std::vector<std::string>& allowed) {
  return std::all_of(wanted.begin(), wanted.end(),
                     [&](const std::string& s) { return std::find(allowed.begin(), allowed.end(), s) != allowed.end(); });
}

std::string_view AgentStatusName(AgentStatus s) {
  switch (s) {
    case AgentStatus::kActive: return "active";
    case AgentStatus::kSuspended: return "suspended";
    case AgentStatus::kDecommissioned: return "decommissioned";
  }
  return "decommissioned";
}

std::string Identity::Impl::CredentialHash(std::string_view id, std::string_view secret) const {
  // Bound to the credential id so that a hash copied onto another row does
  // not verify there.
  std::string msg;
  msg.reserve(id.size() + 1 + secret.size());
  msg.append(id).push_back(':');
  msg.append(secret);
  return crypto::HmacSha256(hash_key, msg);
}

// ------------------------------------------------------------ directory ----

Status Identity::Impl::Load() {
  auto d = std::make_shared<Directory>();
  ASSIGN_OR_RETURN(auto agents, store->Query(fmt::format("SELECT {} FROM agents", kAgentColumns)));
  for (const auto& r : agents) {
    auto e = std::make_shared<AgentEntry>();
    e->agent = AgentFromRow(r);
    auto keys = AgentKeys(e->agent.jwks);
    if (keys.ok()) e->keys = std::move(*keys);
    else spdlog::warn("agent {}: stored jwks unusable: {}", e->agent.id, keys.status().message());
    d->agents.emplace(e->agent.id, std::move(e));
  }
  ASSIGN_OR_RETURN(auto creds, store->Query(fmt::format(
                                   "SELECT {} FROM credentials WHERE revoked_at IS NULL", kCredentialColumns)));
  int64_t now_s = ToUnix(now());
  for (const auto& r : creds) {
    std::string hash;
    Credential c = CredentialFromRow(r, &hash);
    if (c.expires_at && ToUnix(*c.expires_at) <= now_s) continue;
    if (c.kind == CredentialKind::kClientSecret) {
      auto s = std::make_shared<SecretEntry>();
      s->tenant = c.tenant;
      s->id = c.id;
      s->agent_id = c.subject;
      s->hash = std::move(hash);
      s->expires_at = c.expires_at;
      d->secrets[c.subject].push_back(std::move(s));
    } else {
      auto k = std::make_shared<ApiKeyEntry>();
      int64_t used = c.last_used_at ? ToUnix(*c.last_used_at) : 0;
      k->cred = std::move(c);
      k->hash = std::move(hash);
      k->last_used = used;
      k->flushed_used = used;
      d->api_keys.emplace(k->cred.id, std::move(k));
    }
  }
  ASSIGN_OR_RETURN(auto revoked, store->Query("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > ?1",
                                              {now_s}));
  for (const auto& r : revoked) d->revoked_jti.emplace(r.Text(0), r.Int(1));
  dir.store(std::move(d), std::memory_order_release);
  return {};
}

Status Identity::Impl::Mutate(const std::function<Status(Directory&)>& fn) {
  // Callers hold write_mu. Copying the maps copies pointers, not entries.
  auto next = std::make_shared<Directory>(*Dir());
  RETURN_IF_ERROR(fn(*next));
  dir.store(std::move(next), std::memory_order_release);
  return {};
}

const AgentEntry* Identity::Impl::FindAgent(const Directory& d, std::string_view id) const {
  auto it = d.agents.find(std::string(id));
  return it == d.agents.end() ? nullptr : it->second.get();
}

bool Identity::Impl::AgentActive(const Directory& d, std::string_view id) const {
  const AgentEntry* a = FindAgent(d, id);
  return a && a->agent.status == AgentStatus::kActive;
}

// ------------------------------------------------------------ Identity ----

Result<std::string> DecodeMasterKey(std::string_view text) {
  text = TrimWhitespace(text);
  if (text.empty()) {
    return InvalidArgument(
        "identity.master_key is not set: generate one with `openssl rand -base64 32` and pass it as "
        "${env:AIGIS_MASTER_KEY} or ${file:/path/to/key}");
  }
  std::string lower = ToLowerAscii(text);
  for (std::string_view bad : {"change", "placeholder", "example", "replace", "your-", "your_", "xxxx", "todo",
                               "insert", "redacted", "dummy"}) {
    if (lower.find(bad) != std::string::npos) {
      return InvalidArgument(fmt::format(
          "identity.master_key looks like a placeholder (contains '{}'): generate one with `openssl rand -base64 32`",
          bad));
    }
  }
  std::string key;
  bool hex = text.size() % 2 == 0 && std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (hex) {
    for (size_t i = 0; i < text.size(); i += 2) key.push_back(static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  } else if (auto b = crypto::Base64Decode(text); b.ok()) {
    key = std::move(*b);
  } else if (auto u = crypto::Base64UrlDecode(text); u.ok()) {
    key = std::move(*u);
  } else {
    return InvalidArgument("identity.master_key must be base64 or hex (e.g. the output of `openssl rand -base64 32`)");
  }
  if (key.size() < 32) {
    return InvalidArgument(fmt::format(
        "identity.master_key decodes to {} bytes; at least 32 are required (`openssl rand -base64 32`)", key.size()));
  }
  std::unordered_set<char> distinct(key.begin(), key.end());
  if (distinct.size() < 12) {
    return InvalidArgument("identity.master_key has too little variety to be random: use `openssl rand -base64 32`");
  }
  return key;
}

Identity::Identity() = default;
Identity::~Identity() { Stop(); }

Result<std::unique_ptr<Identity>> Identity::Open(IdentityOptions options, store::Store& store) {
  ASSIGN_OR_RETURN(std::string master, DecodeMasterKey(options.master_key));
  auto alg = crypto::ParseAlg(options.signing_algorithm);
  if (!alg || (*alg != crypto::Alg::kEdDSA && *alg != crypto::Alg::kES256 && *alg != crypto::Alg::kRS256)) {
    return InvalidArgument(fmt::format("identity.signing_algorithm '{}' is not one of EdDSA, ES256, RS256",
                                       options.signing_algorithm));
  }
  if (options.max_delegation_depth < 1 || options.max_delegation_depth > 16) {
    return InvalidArgument("identity.max_delegation_depth must be 1..16");
  }
  if (!options.trusted_issuers.empty() && !options.fetcher) {
    return InvalidArgument("trusted issuers need a JWKS fetcher");
  }
  std::unique_ptr<Identity> id(new Identity());
  id->impl_ = std::make_unique<Impl>(std::move(options));
  Impl& m = *id->impl_;
  m.store = &store;
  m.clock = m.opt.clock ? m.opt.clock : &m.system_clock;
  m.alg = *alg;
  m.seal_key = crypto::HmacSha256(master, "aigis/v1/seal signing keys");
  m.hash_key = crypto::HmacSha256(master, "aigis/v1/credential hash");
  if (!m.opt.issuer.empty()) m.issuer.store(std::make_shared<const std::string>(m.opt.issuer));
  for (const auto& ti : m.opt.trusted_issuers) {
    auto s = std::make_unique<IssuerState>();
    s->cfg = ti;
    s->keys.store(std::make_shared<const IssuerKeys>());
    m.issuers.push_back(std::move(s));
  }
  RETURN_IF_ERROR(store.Migrate("identity", Migrations()));
  RETURN_IF_ERROR(m.Load());
  RETURN_IF_ERROR(m.LoadKeys());
  return id;
}

void Identity::SetIssuer(std::string issuer) {
  impl_->issuer.store(std::make_shared<const std::string>(std::move(issuer)), std::memory_order_release);
  impl_->cache.Clear();
}
std::string Identity::issuer() const { return impl_->Issuer(); }

Identity::Stats Identity::stats() const {
  return {impl_->hits.load(), impl_->misses.load(), impl_->issued.load(), impl_->failures.load()};
}

// --------------------------------------------------------------- agents ----

Result<Agent> Identity::CreateAgent(const AgentSpec& spec) {
  Impl& m = *impl_;
  if (!ValidName(spec.tenant, 64)) return InvalidArgument("tenant must be 1..64 characters");
  if (!ValidName(spec.name, 200)) return InvalidArgument("name is required (1..200 characters)");
  if (spec.owner.size() > 200 || spec.description.size() > 2000) {
    return InvalidArgument("owner is limited to 200 characters, description to 2000");
  }
  if (!spec.id.empty() && !ValidId(spec.id)) {
    return InvalidArgument("id must be 3..64 characters of a-z, 0-9, '.', '_' or '-'");
  }
  RETURN_IF_ERROR(ValidScopes(spec.scopes));
  RETURN_IF_ERROR(ValidMetadata(spec.metadata));
  ASSIGN_OR_RETURN(auto keys, AgentKeys(spec.jwks));
  Agent a;
  a.tenant = spec.tenant;
  a.id = spec.id.empty() ? RandomId("agt_", 20) : spec.id;
  a.name = spec.name;
  a.owner = spec.owner;
  a.description = spec.description;
  a.scopes = spec.scopes;
  a.metadata = spec.metadata;
  a.jwks = spec.jwks;
  a.created_at = a.updated_at = FromUnix(ToUnix(m.now()));
  std::lock_guard lock(m.write_mu);
  auto st = m.store->Exec(
      fmt::format("INSERT INTO agents ({}) VALUES ({})", kAgentColumns, Placeholders(11)),
      {a.tenant, a.id, a.name, a.owner, a.description, JoinScopes(a.scopes), a.metadata, a.jwks, "active",
       ToUnix(a.created_at), ToUnix(a.updated_at)});
  if (!st.ok()) {
    if (st.status().code() == Code::kAlreadyExists) return Status(Code::kAlreadyExists, "an agent with id '" + a.id + "' already exists");
    return st.status();
  }
  RETURN_IF_ERROR(m.Mutate([&](Directory& d) {
    auto e = std::make_shared<AgentEntry>();
    e->agent = a;
    e->keys = std::move(keys);
    d.agents[a.id] = std::move(e);
    return Status();
  }));
  return a;
}

Result<Agent> Identity::GetAgent(std::string_view tenant, std::string_view id) {
  auto d = impl_->Dir();
  const AgentEntry* e = impl_->FindAgent(*d, id);
  if (!e || e->agent.tenant != tenant) return NotFound(fmt::format("no agent '{}' in tenant '{}'", id, tenant));
  return e->agent;
}

Result<AgentPage> Identity::ListAgents(const AgentQuery& q) {
  if (q.page_size < 1 || q.page_size > 500) return InvalidArgument("page_size must be 1..500");
  std::string sql = fmt::format("SELECT {} FROM agents WHERE tenant = ?1 AND id > ?2", kAgentColumns);
  std::vector<store::Value> params = {q.tenant, q.page_token};
  if (q.status) {
    params.emplace_back(std::string(AgentStatusName(*q.status)));
    sql += fmt::format(" AND status = ?{}", params.size());
  }
  if (!q.owner.empty()) {
    params.emplace_back(q.owner);
    sql += fmt::format(" AND owner = ?{}", params.size());
  }
  if (!q.name_prefix.empty()) {
    // substr() instead of LIKE: no wildcard escaping, same on PostgreSQL.
    params.emplace_back(q.name_prefix);
    sql += fmt::format(" AND substr(name, 1, {}) = ?{}", q.name_prefix.size(), params.size());
  }
  params.emplace_back(int64_t{q.page_size} + 1);
  sql += fmt::format(" ORDER BY id LIMIT ?{}", params.size());
  ASSIGN_OR_RETURN(auto rows, impl_->store->Query(sql, params));
  AgentPage page;
  for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(q.page_size); ++i) page.agents.push_back(AgentFromRow(rows[i]));
  if (rows.size() > static_cast<size_t>(q.page_size)) page.next_page_token = page.agents.back().id;
  return page;
}

namespace {
// Writes the agent row. Caller holds write_mu and publishes the change.
Status SaveAgent(store::Session& s, const Agent& a) {
  ASSIGN_OR_RETURN(int64_t n, s.Exec("UPDATE agents SET name=?3, owner=?4, description=?5, scopes=?6, metadata=?7, "
                                     "jwks=?8, status=?9, updated_at=?10 WHERE tenant=?1 AND id=?2",
                                     {a.tenant, a.id, a.name, a.owner, a.description, JoinScopes(a.scopes),
                                      a.metadata, a.jwks, std::string(AgentStatusName(a.status)),
                                      ToUnix(a.updated_at)}));
  if (n != 1) return NotFound("agent vanished during the update");
  return {};
}
}  // namespace

Result<Agent> Identity::UpdateAgent(std::string_view tenant, std::string_view id, const AgentPatch& p) {
  Impl& m = *impl_;
  std::lock_guard lock(m.write_mu);
  auto d = m.Dir();
  const AgentEntry* e = m.FindAgent(*d, id);
  if (!e || e->agent.tenant != tenant) return NotFound(fmt::format("no agent '{}' in tenant '{}'", id, tenant));
  if (e->agent.status == AgentStatus::kDecommissioned) {
    return Status(Code::kFailedPrecondition, "agent is decommissioned; it cannot be changed");
  }
  Agent a = e->agent;
  std::vector<crypto::Key> keys = e->keys;
  if (p.name) {
    if (!ValidName(*p.name, 200)) return InvalidArgument("name must be 1..200 characters");
    a.name = *p.name;
  }
  if (p.owner) a.owner = *p.owner;
  if (p.description) a.description = *p.description;
  if (a.owner.size() > 200 || a.description.size() > 2000) {
    return InvalidArgument("owner is limited to 200 characters, description to 2000");
  }
  if (p.scopes) {
    RETURN_IF_ERROR(ValidScopes(*p.scopes));
    a.scopes = *p.scopes;
  }
  if (p.metadata) {
    RETURN_IF_ERROR(ValidMetadata(*p.metadata));
    a.metadata = *p.metadata;
  }
  if (p.jwks) {
    ASSIGN_OR_RETURN(keys, AgentKeys(*p.jwks));
    a.jwks = *p.jwks;
  }
  a.updated_at = FromUnix(ToUnix(m.now()));
  RETURN_IF_ERROR(SaveAgent(*m.store, a));
  RETURN_IF_ERROR(m.Mutate([&](Directory& dd) {
    auto ne = std::make_shared<AgentEntry>();
    ne->agent = a;
    ne->keys = std::move(keys);
    dd.agents[a.id] = std::move(ne);
    return Status();
  }));
  m.cache.Clear();  // scopes may have narrowed
  return a;
}

namespace {
Result<Agent> SetStatus(Identity::Impl& m, std::string_view tenant, std::string_view id, AgentStatus to) {
  std::lock_guard lock(m.write_mu);
  auto d = m.Dir();
  const AgentEntry* e = m.FindAgent(*d, id);
  if (!e || e->agent.tenant != tenant) return NotFound(fmt::format("no agent '{}' in tenant '{}'", id, tenant));
  if (e->agent.status == AgentStatus::kDecommissioned) {
    return Status(Code::kFailedPrecondition, "agent is decommissioned; that is final");
  }
  if (to == AgentStatus::kActive && e->agent.status != AgentStatus::kSuspended) {
    return Status(Code::kFailedPrecondition, "only a suspended agent can be reactivated");
  }
  if (to == AgentStatus::kSuspended && e->agent.status != AgentStatus::kActive) {
    return Status(Code::kFailedPrecondition, "only an active agent can be suspended");
  }
  Agent a = e->agent;
  a.status = to;
  a.updated_at = FromUnix(ToUnix(m.now()));
  int64_t now_s = ToUnix(a.updated_at);
  RETURN_IF_ERROR(m.store->Transaction([&](store::Session& s) -> Status {
    RETURN_IF_ERROR(SaveAgent(s, a));
    if (to == AgentStatus::kDecommissioned) {
      // Every credential dies with the agent; its tokens fail the status check.
      RETURN_IF_ERROR(s.Exec("UPDATE credentials SET revoked_at=?3 WHERE tenant=?1 AND subject=?2 AND "
                             "subject_kind='agent' AND revoked_at IS NULL",
                             {a.tenant, a.id, now_s})
                          .status());
    }
    return {};
  }));
  RETURN_IF_ERROR(m.Mutate([&](Directory& dd) {
    auto ne = std::make_shared<AgentEntry>(*e);
    ne->agent = a;
    dd.agents[a.id] = std::move(ne);
    if (to == AgentStatus::kDecommissioned) {
      dd.secrets.erase(a.id);
      std::erase_if(dd.api_keys, [&](const auto& kv) {
        return kv.second->cred.subject_kind == "agent" && kv.second->cred.subject == a.id;
      });
    }
    return Status();
  }));
  spdlog::info("agent {} ({}) is now {}", a.id, a.tenant, AgentStatusName(to));
  return a;
}
}  // namespace

Result<Agent> Identity::SuspendAgent(std::string_view t, std::string_view id) {
  return SetStatus(*impl_, t, id, AgentStatus::kSuspended);
}
Result<Agent> Identity::ReactivateAgent(std::string_view t, std::string_view id) {
  return SetStatus(*impl_, t, id, AgentStatus::kActive);
}
Result<Agent> Identity::DecommissionAgent(std::string_view t, std::string_view id) {
  return SetStatus(*impl_, t, id, AgentStatus::kDecommissioned);
}

// ---------------------------------------------------------- credentials ----

namespace {
Result<const AgentEntry*> LiveAgent(Identity::Impl& m, const Directory& d, std::string_view tenant,
                                    std::string_view id) {
  const AgentEntry* e = m.FindAgent(d, id);
  if (!e || e->agent.tenant != tenant) return NotFound(fmt::format("no agent '{}' in tenant '{}'", id, tenant));
  if (e->agent.status == AgentStatus::kDecommissioned) {
    return Status(Code::kFailedPrecondition, "agent is decommissioned");
  }
  return e;
}

Status CheckTtl(std::optional<seconds> ttl) {
  if (ttl && (ttl->count() < 60 || ttl->count() > 10LL * 365 * 24 * 3600)) {
    return InvalidArgument("expires_in must be between 60 seconds and 10 years");
  }
  return {};
}

Status InsertCredential(store::Session& s, const Credential& c, std::string_view hash) {
  return s.Exec(fmt::format("INSERT INTO credentials ({}) VALUES ({})", kCredentialColumns, Placeholders(12)),
                {c.tenant, c.id, std::string(c.kind == CredentialKind::kApiKey ? "api_key" : "client_secret"),
                 c.subject, c.subject_kind, store::Blob{std::string(hash)}, JoinScopes(c.scopes),
                 ToUnix(c.created_at), OptValue(c.expires_at), OptValue(c.revoked_at), OptValue(c.last_used_at),
                 c.replaced_by})
      .status();
}

IssuedSecret NewSecret(Identity::Impl& m, const Agent& a, std::optional<seconds> ttl, std::string* hash) {
  IssuedSecret out;
  out.client_id = a.id;
  out.client_secret = crypto::Base64UrlEncode(crypto::RandomBytes(32));
  Credential& c = out.credential;
  c.tenant = a.tenant;
  c.id = RandomId("cs_", 20);
  c.kind = CredentialKind::kClientSecret;
  c.subject = a.id;
  c.subject_kind = "agent";
  c.created_at = FromUnix(ToUnix(m.now()));
  if (ttl) c.expires_at = c.created_at + *ttl;
  *hash = m.CredentialHash(c.id, out.client_secret);
  return out;
}

void PublishSecret(Directory& d, const Credential& c, std::string hash) {
  auto s = std::make_shared<SecretEntry>();
  s->tenant = c.tenant;
  s->id = c.id;
  s->agent_id = c.subject;
  s->hash = std::move(hash);
  s->expires_at = c.expires_at;
  d.secrets[c.subject].push_back(std::move(s));
}
}  // namespace

Result<IssuedSecret> Identity::CreateClientSecret(std::string_view tenant, std::string_view agent_id,
                                                  std::optional<seconds> ttl) {
  Impl& m = *impl_;
  RETURN_IF_ERROR(CheckTtl(ttl));
  std::lock_guard lock(m.write_mu);
  auto d = m.Dir();
  ASSIGN_OR_RETURN(const AgentEntry* e, LiveAgent(m, *d, tenant, agent_id));
  auto live = d->secrets.find(e->agent.id);
  if (live != d->secrets.end() && live->second.size() >= 10) {
    return Status(Code::kFailedPrecondition, "an agent has at most 10 live client secrets; revoke one first");
  }
  std::string hash;
  IssuedSecret out = NewSecret(m, e->agent, ttl, &hash);
  RETURN_IF_ERROR(InsertCredential(*m.store, out.credential, hash));
  RETURN_IF_ERROR(m.Mutate([&](Directory& dd) {
    PublishSecret(dd, out.credential, hash);
    return Status();
  }));
  return out;
}

Result<IssuedSecret> Identity::RotateClientSecret(std::string_view tenant, std::string_view agent_id,
                                                  std::string_view credential_id, std::optional<seconds> grace) {
  Impl& m = *impl_;
  seconds g = grace.value_or(m.opt.secret_grace);
  if (g.count() < 0 || g.count() > 30LL * 24 * 3600) return InvalidArgument("grace must be 0s..30d");
  std::lock_guard lock(m.write_mu);
  auto d = m.Dir();
  ASSIGN_OR_RETURN(const AgentEntry* e, LiveAgent(m, *d, tenant, agent_id));
  std::shared_ptr<const SecretEntry> old;
  if (auto it = d->secrets.find(e->agent.id); it != d->secrets.end()) {
    for (const auto& s : it->second) {
      if (s->id == credential_id) old = s;
    }
  }
  if (!old) return NotFound(fmt::format("no live client secret '{}' for agent '{}'", credential_id, agent_id));
  std::optional<seconds> ttl;
  std::string hash;
  IssuedSecret out = NewSecret(m, e->agent, ttl, &hash);
  WallTime old_expiry = out.credential.created_at + g;
  if (old->expires_at && *old->expires_at < old_expiry) old_expiry = *old->expires_at;
  // New secret and the old one's shortened life commit together, or neither.
  RETURN_IF_ERROR(m.store->Transaction([&](store::Session& s) -> Status {
    RETURN_IF_ERROR(InsertCredential(s, out.credential, hash));
    return s.Exec("UPDATE credentials SET expires_at=?3, replaced_by=?4 WHERE tenant=?1 AND id=?2",
                  {old->tenant, old->id, ToUnix(old_expiry), out.credential.id})
        .status();
  }));
  RETURN_IF_ERROR(m.Mutate([&](Directory& dd) {
    auto& list = dd.secrets[e->agent.id];
    for (auto& s : list) {
      if (s->id == old->id) {
        auto copy = std::make_shared<SecretEntry>(*s);
        copy->expires_at = old_expiry;
        s = std::move(copy);
      }
    }
    PublishSecret(dd, out.credential, hash);
    return Status();
  }));
  return out;
}

Result<std::vector<Credential>> Identity::ListCredentials(std::string_view tenant, std::string_view agent_id) {
  auto d = impl_->Dir();
  const AgentEntry* e = impl_->FindAgent(*d, agent_id);
  if (!e || e->agent.tenant != tenant) return NotFound(fmt::format("no agent '{}' in tenant '{}'", agent_id, tenant));
  ASSIGN_OR_RETURN(auto rows, impl_->store->Query(fmt::format("SELECT {} FROM credentials WHERE tenant=?1 AND "
                                                              "subject=?2 AND subject_kind='agent' ORDER BY created_at, id",
                                                              kCredentialColumns),
                                                  {std::string(tenant), std::string(agent_id)}));
  std::vector<Credential> out;
  for (const auto& r : rows) out.push_back(CredentialFromRow(r, nullptr));
  return out;
}

Status Identity::RevokeCredential(std::string_view tenant, std::string_view agent_id, std::string_view credential_id) {
  Impl& m = *impl_;
  std::lock_guard lock(m.write_mu);
  ASSIGN_OR_RETURN(int64_t n, m.store->Exec("UPDATE credentials SET revoked_at=?4 WHERE tenant=?1 AND subject=?2 AND "
                                            "id=?3 AND kind='client_secret' AND revoked_at IS NULL",
                                            {std::string(tenant), std::string(agent_id), std::string(credential_id),
                                             ToUnix(m.now())}));
  if (n == 0) return NotFound(fmt::format("no live client secret '{}' for agent '{}'", credential_id, agent_id));
  return m.Mutate([&](Directory& d) {
    auto it = d.secrets.find(std::string(agent_id));
    if (it != d.secrets.end()) std::erase_if(it->second, [&](const auto& s) { return s->id == credential_id; });
    return Status();
  });
}

Result<IssuedApiKey> Identity::CreateApiKey(const ApiKeySpec& spec) {
  Impl& m = *impl_;
  RETURN_IF_ERROR(CheckTtl(spec.ttl));
  RETURN_IF_ERROR(ValidScopes(spec.scopes));
  if (spec.agent_id.empty() == spec.service_account.empty()) {
    return InvalidArgument("an API key belongs to exactly one of agent_id or service_account");
  }
  std::lock_guard lock(m.write_mu);
  auto d = m.Dir();
  IssuedApiKey out;
  Credential& c = out.credential;
  c.tenant = spec.tenant;
  c.kind = CredentialKind::kApiKey;
  c.scopes = spec.scopes;
  if (!spec.agent_id.empty()) {
    ASSIGN_OR_RETURN(const AgentEntry* e, LiveAgent(m, *d, spec.tenant, spec.agent_id));
    if (spec.scopes.empty()) c.scopes = e->agent.scopes;
    if (!ScopesWithin(c.scopes, e->agent.scopes)) {
      return InvalidArgument("an agent's API key cannot carry scopes the agent is not allowed");
    }
    c.subject = e->agent.id;
    c.subject_kind = "agent";
  } else {
    if (!ValidId(spec.service_account)) {
      return InvalidArgument("service_account must be 3..64 characters of a-z, 0-9, '.', '_' or '-'");
    }
    c.subject = spec.service_account;
    c.subject_kind = "service";
  }
  c.id = RandomId("", 16);
  c.created_at = FromUnix(ToUnix(m.now()));
  if (spec.ttl) c.expires_at = c.created_at + *spec.ttl;
  std::string secret = crypto::Base64UrlEncode(crypto::RandomBytes(32));
  out.api_key = "aig_" + c.id + "_" + secret;
  std::string hash = m.CredentialHash(c.id, secret);
  RETURN_IF_ERROR(InsertCredential(*m.store, c, hash));
  RETURN_IF_ERROR(m.Mutate([&](Directory& dd) {
    auto k = std::make_shared<ApiKeyEntry>();
    k->cred = c;
    k->hash = hash;
    dd.api_keys[c.id] = std::move(k);
    return Status();
  }));
  return out;
}

Result<std::vector<Credential>> Identity::ListApiKeys(std::string_view tenant, std::string_view subject) {
  std::string sql = fmt::format("SELECT {} FROM credentials WHERE tenant=?1 AND kind='api_key'", kCredentialColumns);
  std::vector<store::Value> params = {std::string(tenant)};
  if (!subject.empty()) {
    sql += " AND subject=?2";
    params.emplace_back(std::string(subject));
  }
  ASSIGN_OR_RETURN(auto rows, impl_->store->Query(sql + " ORDER BY created_at, id", params));
  auto d = impl_->Dir();
  std::vector<Credential> out;
  for (const auto& r : rows) {
    Credential c = CredentialFromRow(r, nullptr);
    if (auto it = d->api_keys.find(c.id); it != d->api_keys.end() && it->second->last_used.load() > 0) {
      c.last_used_at = FromUnix(it->second->last_used.load());
    }
    out.push_back(std::move(c));
  }
  return out;
}

Status Identity::RevokeApiKey(std::string_view tenant, std::string_view key_id) {
  Impl& m = *impl_;
  std::lock_guard lock(m.write_mu);
  ASSIGN_OR_RETURN(int64_t n, m.store->Exec("UPDATE credentials SET revoked_at=?3 WHERE tenant=?1 AND id=?2 AND "
                                            "kind='api_key' AND revoked_at IS NULL",
                                            {std::string(tenant), std::string(key_id), ToUnix(m.now())}));
  if (n == 0) return NotFound(fmt::format("no live API key '{}' in tenant '{}'", key_id, tenant));
  return m.Mutate([&](Directory& d) {
    d.api_keys.erase(std::string(key_id));
    return Status();
  });
}

// ----------------------------------------------------------- upkeep ----

void Identity::Maintain() {
  Impl& m = *impl_;
  int64_t now_s = ToUnix(m.now());
  // Key rotation when due, and retired keys leave the JWKS once every token
  // they signed has expired.
  if (auto ks = m.keyset.load(); ks && ks->active &&
                                 m.now() - ks->active->created_at >= m.opt.rotate_every) {
    if (Status st = RotateSigningKey(); !st.ok()) spdlog::error("signing key rotation failed: {}", st.ToString());
  } else if (ks) {
    std::lock_guard lock(m.write_mu);
    m.PublishKeys(ks->published);
  }
  // API key last-used times, written in one batch instead of per request.
  auto d = m.Dir();
  std::vector<std::pair<std::string, int64_t>> used;
  for (const auto& [id, k] : d->api_keys) {
    int64_t u = k->last_used.load(std::memory_order_relaxed);
    if (u != k->flushed_used.load(std::memory_order_relaxed)) used.emplace_back(id, u);
  }
  if (!used.empty()) {
    Status st = m.store->Transaction([&](store::Session& s) -> Status {
      for (const auto& [id, u] : used) {
        RETURN_IF_ERROR(s.Exec("UPDATE credentials SET last_used_at=?2 WHERE id=?1", {id, u}).status());
      }
      return {};
    });
    if (st.ok()) {
      for (const auto& [id, u] : used) d->api_keys.at(id)->flushed_used.store(u);
    } else {
      spdlog::warn("API key last-used flush failed: {}", st.ToString());
    }
  }
  // Expired secrets, keys and denylist entries leave the snapshot.
  bool stale = false;
  for (const auto& [a, list] : d->secrets) {
    for (const auto& s : list) stale |= s->expires_at && ToUnix(*s->expires_at) <= now_s;
  }
  for (const auto& [j, exp] : d->revoked_jti) stale |= exp <= now_s;
  if (stale) {
    std::lock_guard lock(m.write_mu);
    (void)m.Mutate([&](Directory& dd) {
      for (auto& [a, list] : dd.secrets) {
        std::erase_if(list, [&](const auto& s) { return s->expires_at && ToUnix(*s->expires_at) <= now_s; });
      }
      std::erase_if(dd.revoked_jti, [&](const auto& kv) { return kv.second <= now_s; });
      return Status();
    });
    (void)m.store->Exec("DELETE FROM revoked_tokens WHERE expires_at <= ?1", {now_s});
  }
  std::lock_guard lock(m.assertion_mu);
  std::erase_if(m.seen_assertions, [&](const auto& kv) { return kv.second <= now_s; });
}

}  // namespace aigis::identity

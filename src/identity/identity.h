// identity: who is calling.
//
// * Agent registry: agents with a tenant, owner, allowed scopes and a status
//   (active | suspended | decommissioned). Decommission is final and revokes
//   every credential and token of the agent.
// * Credentials: client secrets (256-bit, shown once, stored as a keyed hash)
//   with expiry, rotation with a grace period, and revocation; API keys
//   ("aig_<key id>_<secret>") for agents and service accounts.
// * An OAuth 2.0 authorization server: client_credentials (client_secret_basic,
//   client_secret_post, private_key_jwt per RFC 7523), token exchange
//   (RFC 8693) with an `act` chain, introspection (RFC 7662), revocation
//   (RFC 7009), JWKS and RFC 8414 metadata. Access tokens are RFC 9068 JWTs
//   signed with a rotating key (EdDSA by default) that is sealed at rest under
//   the master key.
// * Trust in external IdPs (Keycloak, Okta...) through their JWKS.
// * Authenticate(): bearer JWT (ours or a trusted IdP's) or API key to a
//   Principal. Verified tokens are cached until expiry; revocation, suspension
//   and decommission are checked on every call, so they apply at once.
//
// The module knows nothing of HTTP: the OAuth endpoints take the request's
// method, Authorization and Content-Type headers and body, and return a
// status, headers and a JSON body that the gateway sends as they are.
//
// Thread-safety: every method may be called from any thread. Reads
// (Authenticate, Jwks, Metadata, Token issuance) use immutable snapshots and
// never touch the store; writes (registry, credentials, revocation) go to the
// store first and then publish a new snapshot. Writes block on the store and
// belong off the I/O threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace aigis::store {
class Store;
}

namespace aigis::identity {

using std::chrono::seconds;

// ------------------------------------------------------------- principal ----

// The caller, as the rest of the pipeline sees it.
struct Principal {
  std::string tenant = "default";
  std::string kind = "anonymous";  // anonymous | agent | user | service
  std::string id;                  // agent id, IdP subject, service account
  std::string issuer;              // who vouched: our issuer, an IdP's, "api_key"
  std::string client_id;           // the OAuth client that obtained the token
  std::string credential_id;       // API key id or token jti
  std::string email;
  std::vector<std::string> scopes;
  std::vector<std::string> groups;
  // Delegation: actors from the nearest (the agent calling now) outwards.
  std::vector<std::string> act;
  WallTime expires_at{};
};

// -------------------------------------------------------------- registry ----

enum class AgentStatus { kActive, kSuspended, kDecommissioned };
std::string_view AgentStatusName(AgentStatus s);

struct Agent {
  std::string tenant;
  std::string id;  // "agt_" + 20 random base32 chars; also the OAuth client_id
  std::string name;
  std::string owner;
  std::string description;
  std::vector<std::string> scopes;  // what tokens for this agent may carry
  std::string metadata = "{}";      // JSON object text, opaque to aigis
  std::string jwks;                 // public keys for private_key_jwt, "" if none
  AgentStatus status = AgentStatus::kActive;
  WallTime created_at{};
  WallTime updated_at{};
};

struct AgentSpec {
  std::string tenant = "default";
  std::string id;  // optional: chosen by the caller ([a-z0-9._-], 3..64)
  std::string name;
  std::string owner;
  std::string description;
  std::vector<std::string> scopes;
  std::string metadata = "{}";
  std::string jwks;
};

struct AgentPatch {
  std::optional<std::string> name, owner, description, metadata, jwks;
  std::optional<std::vector<std::string>> scopes;
};

struct AgentQuery {
  std::string tenant = "default";
  std::optional<AgentStatus> status;
  std::string owner;        // exact, "" = any
  std::string name_prefix;  // "" = any
  int page_size = 50;       // 1..500
  std::string page_token;   // from the previous page
};
struct AgentPage {
  std::vector<Agent> agents;
  std::string next_page_token;  // "" on the last page
};

// ----------------------------------------------------------- credentials ----

enum class CredentialKind { kClientSecret, kApiKey };

struct Credential {
  std::string tenant;
  std::string id;          // "cs_..." for secrets, the key id for API keys
  CredentialKind kind = CredentialKind::kClientSecret;
  std::string subject;     // agent id, or service account name
  std::string subject_kind = "agent";  // agent | service
  std::vector<std::string> scopes;     // API keys: what they grant
  WallTime created_at{};
  std::optional<WallTime> expires_at;
  std::optional<WallTime> revoked_at;
  std::optional<WallTime> last_used_at;
  std::string replaced_by;  // rotation: the credential that took over
};

struct IssuedSecret {
  std::string client_id;
  std::string client_secret;  // shown once
  Credential credential;
};

struct ApiKeySpec {
  std::string tenant = "default";
  std::string agent_id;         // either an agent...
  std::string service_account;  // ...or a service account name
  std::vector<std::string> scopes;  // agents: must be within the agent's scopes
  std::optional<seconds> ttl;
};
struct IssuedApiKey {
  std::string api_key;  // shown once
  Credential credential;
};

// ----------------------------------------------------------------- OAuth ----

struct OAuthRequest {
  std::string method;
  std::string authorization;  // Authorization header, "" if absent
  std::string content_type;
  std::string body;
};
struct OAuthResponse {
  int status = 200;
  std::vector<Header> headers;
  std::string body;  // JSON
};

// ---------------------------------------------------------------- options ----

struct ClaimMapping {
  std::string subject = "sub";
  std::string email = "email";
  std::string groups = "groups";
  std::string scope = "scope";  // space-separated string or array
};

struct TrustedIssuer {
  std::string name;
  std::string issuer;    // exact "iss"
  std::string jwks_url;
  std::vector<std::string> audiences;  // token "aud" must contain one
  std::vector<std::string> algorithms = {"RS256", "ES256", "EdDSA"};
  seconds clock_skew{60};
  std::string tenant = "default";
  ClaimMapping claims;
  std::vector<std::string> default_scopes;  // when the token carries none
  seconds refresh_interval{300};
  seconds max_stale{3600};        // serve cached keys this long while the IdP is down
  seconds min_refetch_interval{10};  // unknown-kid refetch rate limit
};

// Fetches a URL (JWKS). Blocking; called from the refresher thread only.
using Fetcher = std::function<Result<std::string>(const std::string& url)>;

struct IdentityOptions {
  std::string issuer;                  // "" = set later by SetIssuer
  std::string audience = "aigis";      // "aud" of our tokens, required on input
  std::string master_key;              // >= 32 bytes of key material (decoded)
  std::string signing_algorithm = "EdDSA";  // EdDSA | ES256 | RS256
  seconds token_ttl{900};
  seconds rotate_every{30 * 24 * 3600};
  seconds clock_skew{60};
  seconds secret_grace{24 * 3600};     // default overlap when a secret rotates
  seconds assertion_max_lifetime{300}; // private_key_jwt client assertions
  int max_delegation_depth = 3;
  size_t token_cache_entries = 100000;
  std::vector<TrustedIssuer> trusted_issuers;
  const Clock* clock = nullptr;  // default: system clock
  Fetcher fetcher;               // required if trusted_issuers is not empty
};

// Checks a configured master key: decodes base64 (or hex) to >= 32 bytes and
// refuses placeholders ("changeme", "xxxx...", repeated bytes).
Result<std::string> DecodeMasterKey(std::string_view text);

class Identity {
 public:
  // Applies migrations, loads the registry, unseals signing keys (creating
  // the first one). Fails on a bad master key or one that cannot unseal the
  // stored keys.
  static Result<std::unique_ptr<Identity>> Open(IdentityOptions options, store::Store& store);
  ~Identity();

  // The issuer URL (when not configured, the gateway sets it once its
  // listener is bound; tokens and metadata use it from then on).
  void SetIssuer(std::string issuer);
  std::string issuer() const;

  // Starts the IdP JWKS refresher (first fetch before returning, bounded).
  void Start();
  void Stop();
  // Periodic upkeep: key rotation when due, last-used flush, denylist purge.
  void Maintain();

  // Registry.
  Result<Agent> CreateAgent(const AgentSpec& spec);
  Result<Agent> GetAgent(std::string_view tenant, std::string_view id);
  Result<AgentPage> ListAgents(const AgentQuery& query);
  Result<Agent> UpdateAgent(std::string_view tenant, std::string_view id, const AgentPatch& patch);
  Result<Agent> SuspendAgent(std::string_view tenant, std::string_view id);
  Result<Agent> ReactivateAgent(std::string_view tenant, std::string_view id);
  Result<Agent> DecommissionAgent(std::string_view tenant, std::string_view id);

  // Credentials.
  Result<IssuedSecret> CreateClientSecret(std::string_view tenant, std::string_view agent_id,
                                          std::optional<seconds> ttl);
  // Issues a new secret; the old one stays valid for `grace` (default
  // secret_grace), then expires.
  Result<IssuedSecret> RotateClientSecret(std::string_view tenant, std::string_view agent_id,
                                          std::string_view credential_id, std::optional<seconds> grace);
  Result<std::vector<Credential>> ListCredentials(std::string_view tenant, std::string_view agent_id);
  Status RevokeCredential(std::string_view tenant, std::string_view agent_id, std::string_view credential_id);
  Result<IssuedApiKey> CreateApiKey(const ApiKeySpec& spec);
  Result<std::vector<Credential>> ListApiKeys(std::string_view tenant, std::string_view subject);
  Status RevokeApiKey(std::string_view tenant, std::string_view key_id);

  // Signing keys: a new active key; old ones stay published until every
  // token they signed has expired.
  Status RotateSigningKey();
  std::vector<std::string> PublishedKids() const;

  // OAuth 2.0 endpoints.
  OAuthResponse Token(const OAuthRequest& request);
  OAuthResponse Introspect(const OAuthRequest& request);
  OAuthResponse Revoke(const OAuthRequest& request);
  std::string JwksJson() const;
  std::string MetadataJson() const;

  // Authentication of a data-plane call: `bearer` from "Authorization:
  // Bearer", `api_key` from "x-api-key" (either may be empty). kUnauthenticated
  // with a message on any failure.
  Result<Principal> Authenticate(std::string_view bearer, std::string_view api_key);
  // A short-lived compact JWS describing `p`, for upstreams (typ
  // "aigis-principal+jwt", signed with the current token key).
  Result<std::string> SignPrincipal(const Principal& p, seconds ttl);

  struct Stats {
    uint64_t cache_hits = 0, cache_misses = 0, tokens_issued = 0, auth_failures = 0;
  };
  Stats stats() const;

  struct Impl;  // defined in identity/internal.h, for the module's own files

 private:
  Identity();
  std::unique_ptr<Impl> impl_;
};

}  // namespace aigis::identity

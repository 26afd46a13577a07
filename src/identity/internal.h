// identity internals: shared between the module's .cc files only.
#pragma once

#include <boost/json.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "crypto/crypto.h"
#include "identity/identity.h"
#include "store/store.h"

namespace aigis::identity {

namespace json = boost::json;

int64_t ToUnix(WallTime t);
WallTime FromUnix(int64_t s);
std::string RandomId(std::string_view prefix, size_t chars);  // base32, lower case
std::string JoinScopes(const std::vector<std::string>& scopes);
std::vector<std::string> SplitScopes(std::string_view text);
bool ScopesWithin(const std::vector<std::string>& wanted, const std::vector<std::string>& allowed);

// The in-memory registry: published copy-on-write, read without locks.
struct AgentEntry {
  Agent agent;
  std::vector<crypto::Key> keys;  // parsed agent.jwks
};
struct SecretEntry {
  std::string tenant, id, agent_id;
  std::string hash;
  std::optional<WallTime> expires_at;
};
struct ApiKeyEntry {
  Credential cred;
  std::string hash;
  mutable std::atomic<int64_t> last_used{0};   // unix seconds, flushed by Maintain
  mutable std::atomic<int64_t> flushed_used{0};
};
struct Directory {
  std::unordered_map<std::string, std::shared_ptr<const AgentEntry>> agents;  // by id (ids are global)
  std::unordered_map<std::string, std::vector<std::shared_ptr<const SecretEntry>>> secrets;  // by agent id
  std::unordered_map<std::string, std::shared_ptr<const ApiKeyEntry>> api_keys;  // by key id
  std::unordered_map<std::string, int64_t> revoked_jti;  // jti -> token exp (unix)
};

struct SigningKey {
  std::string kid;
  crypto::Alg alg = crypto::Alg::kEdDSA;
  crypto::Key key;
  WallTime created_at{};
  std::optional<WallTime> retired_at;
};
struct KeySet {
  std::shared_ptr<const SigningKey> active;
  std::vector<std::shared_ptr<const SigningKey>> published;  // active first
  std::string jwks_json;
};

// The keys of one trusted IdP, as last fetched.
struct IssuerKeys {
  std::vector<crypto::Key> keys;
  WallTime fetched_at{};
  bool ok = false;
};
struct IssuerState {
  TrustedIssuer cfg;
  std::atomic<std::shared_ptr<const IssuerKeys>> keys;
  std::atomic<int64_t> last_attempt_ms{0};  // monotonic ms of the last fetch
  std::atomic<bool> refetch{false};         // an unknown kid was seen
};

// Claims of a verified token, ours or an IdP's.
struct Verified {
  Principal principal;
  json::object claims;
  std::string jti;
  bool ours = false;
  int64_t exp = 0, iat = 0, nbf = 0;
};

// The verified-token cache: sharded, bounded, keyed by a hash of the token;
// the entry keeps the token to compare in full.
class TokenCache {
 public:
  explicit TokenCache(size_t capacity) : per_shard_(std::max<size_t>(capacity / kShards, 16)) {}
  std::shared_ptr<const Verified> Find(std::string_view token) const;
  void Insert(std::string_view token, std::shared_ptr<const Verified> v);
  void Clear();

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    std::string token;
    std::shared_ptr<const Verified> v;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<size_t, Entry> map;
  };
  size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

struct OAuthError {
  int status = 400;
  std::string error;
  std::string description;
};
OAuthResponse ErrorResponse(const OAuthError& e, bool basic_challenge);
OAuthResponse JsonResponse(const json::object& body);
// application/x-www-form-urlencoded, each name at most once.
Result<std::unordered_map<std::string, std::string>> ParseForm(std::string_view body);

struct Identity::Impl {
  IdentityOptions opt;
  store::Store* store = nullptr;
  const Clock* clock = nullptr;
  SystemClock system_clock;
  std::string seal_key, hash_key;
  crypto::Alg alg = crypto::Alg::kEdDSA;

  std::atomic<std::shared_ptr<const std::string>> issuer;
  std::atomic<std::shared_ptr<const Directory>> dir;
  std::atomic<std::shared_ptr<const KeySet>> keyset;
  std::mutex write_mu;  // serializes writers (store + publish)

  TokenCache cache;
  std::vector<std::unique_ptr<IssuerState>> issuers;

  // private_key_jwt replay protection: assertion jti -> exp.
  std::mutex assertion_mu;
  std::unordered_map<std::string, int64_t> seen_assertions;

  std::thread refresher;
  std::mutex refresh_mu;
  std::condition_variable refresh_cv;
  bool stopping = false;

  std::atomic<uint64_t> hits{0}, misses{0}, issued{0}, failures{0};

  explicit Impl(IdentityOptions o) : opt(std::move(o)), cache(opt.token_cache_entries) {}

  WallTime now() const { return clock->Now(); }
  std::shared_ptr<const Directory> Dir() const { return dir.load(std::memory_order_acquire); }
  std::string Issuer() const {
    auto s = issuer.load(std::memory_order_acquire);
    return s ? *s : std::string();
  }
  std::string CredentialHash(std::string_view id, std::string_view secret) const;

  // registry.cc
  Status Load();
  Status Mutate(const std::function<Status(Directory&)>& fn);  // copy, change, publish (under write_mu)
  const AgentEntry* FindAgent(const Directory& d, std::string_view id) const;
  bool AgentActive(const Directory& d, std::string_view id) const;

  // tokens.cc
  Status LoadKeys();
  Status CreateKey(bool retire_current);
  void PublishKeys(std::vector<std::shared_ptr<const SigningKey>> keys);
  Result<std::string> SignToken(json::object claims, std::string_view typ);
  Result<Verified> VerifyJwt(std::string_view token, bool allow_idp);
  Status CheckLive(const Verified& v, const Directory& d) const;  // revocation, status
  Result<Principal> AuthenticateApiKey(std::string_view key);

  // issuers.cc
  Result<const crypto::Key*> IssuerKey(IssuerState& s, const crypto::Jws& jws, std::shared_ptr<const IssuerKeys>& hold);
  void RefreshLoop();
  void Fetch(IssuerState& s);

  // oauth.cc
  // The common start of every client-authenticated endpoint: POST, a form
  // body, an authenticated client. An error response, or nullopt and `call`.
  struct ClientCall {
    std::unordered_map<std::string, std::string> form;
    std::shared_ptr<const Directory> dir;
    const AgentEntry* client = nullptr;
  };
  std::optional<OAuthResponse> BeginClientCall(const OAuthRequest& req, ClientCall& call);
  // The authenticated OAuth client (an active agent), or nullptr with `err`.
  const AgentEntry* AuthenticateClient(std::unordered_map<std::string, std::string>& form,
                                       std::string_view authorization, const Directory& d, OAuthError& err);
};

}  // namespace aigis::identity

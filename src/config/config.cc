#include "config/config.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace aigis::config {
namespace {

// Walks a YAML document, converting nodes to typed fields and collecting
// every error with its line. Each Map() call lists the keys it accepts; any
// other key is reported as unknown.
class Reader {
 public:
  Reader(std::string name, std::string base_dir) : name_(std::move(name)), base_dir_(std::move(base_dir)) {}

  std::vector<std::string>& errors() { return errors_; }

  void Error(const YAML::Node& at, const std::string& msg) { ErrorAt(LineOf(at), msg); }
  void ErrorAt(int line, const std::string& msg) { errors_.push_back(fmt::format("{}:{}: {}", name_, line, msg)); }
  static int LineOf(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

  // Checks that `node` is a map whose keys are all in `allowed`.
  bool Map(const YAML::Node& node, const std::string& what, std::initializer_list<std::string_view> allowed) {
    if (!node.IsMap()) {
      Error(node, fmt::format("{} must be a mapping", what));
      return false;
    }
    for (const auto& kv : node) {
      std::string key = kv.first.Scalar();
      bool ok = false;
      for (auto a : allowed) ok = ok || a == key;
      if (!ok) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        Error(kv.first, fmt::format("unknown key '{}' in {} (allowed: {})", key, what, list));
      }
    }
    return true;
  }

  // Scalar string with ${env:NAME} / ${file:PATH} substitution.
  std::optional<std::string> String(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) {
      Error(n, fmt::format("{} must be a string", what));
      return std::nullopt;
    }
    return Substitute(n, n.Scalar(), what);
  }

  void Str(const YAML::Node& parent, const char* key, std::string& out, const std::string& what) {
    if (auto n = parent[key]) {
      if (auto v = String(n, what + "." + key)) out = *v;
    }
  }
  void SecretField(const YAML::Node& parent, const char* key, Secret& out, const std::string& what) {
    if (auto n = parent[key]) {
      if (auto v = String(n, what + "." + key)) out = Secret(*v);
    }
  }
  void Bool(const YAML::Node& parent, const char* key, bool& out, const std::string& what) {
    auto n = parent[key];
    if (!n) return;
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) {
      out = n.Scalar() == "true";
    } else {
      Error(n, fmt::format("{}.{} must be true or false", what, key));
    }
  }
  template <typename Int>
  void Integer(const YAML::Node& parent, const char* key, Int& out, const std::string& what, int64_t lo, int64_t hi) {
    auto n = parent[key];
    if (!n) return;
    int64_t v = 0;
    const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
      Error(n, fmt::format("{}.{} must be an integer", what, key));
    } else if (v < lo || v > hi) {
      Error(n, fmt::format("{}.{} must be between {} and {}", what, key, lo, hi));
    } else {
      out = static_cast<Int>(v);
    }
  }
  // Sizes accept plain bytes or KiB/MiB/GiB suffixes ("16KiB", "10MiB").
  void Size(const YAML::Node& parent, const char* key, size_t& out, const std::string& what, size_t lo, size_t hi) {
    auto n = parent[key];
    if (!n) return;
    std::string s = n.IsScalar() ? n.Scalar() : "";
    uint64_t mult = 1;
    for (auto [suffix, m] : {std::pair{"KiB", 1ULL << 10}, {"MiB", 1ULL << 20}, {"GiB", 1ULL << 30}}) {
      if (s.size() > 3 && s.ends_with(suffix)) {
        mult = m;
        s.resize(s.size() - 3);
        break;
      }
    }
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > hi / mult) {
      Error(n, fmt::format("{}.{} must be a size in bytes (e.g. 16384, 64KiB, 10MiB) of at most {}", what, key, hi));
      return;
    }
    v *= mult;
    if (v < lo) {
      Error(n, fmt::format("{}.{} must be at least {} bytes", what, key, lo));
      return;
    }
    out = v;
  }
  void Duration(const YAML::Node& parent, const char* key, milliseconds& out, const std::string& what,
                milliseconds lo = milliseconds(1)) {
    auto n = parent[key];
    if (!n) return;
    auto d = ParseDuration(n.IsScalar() ? n.Scalar() : "");
    if (!d.ok()) {
      Error(n, fmt::format("{}.{}: {}", what, key, d.status().message()));
    } else if (*d < lo) {
      Error(n, fmt::format("{}.{} must be at least {}ms", what, key, lo.count()));
    } else {
      out = *d;
    }
  }
  std::vector<std::string> StringList(const YAML::Node& n, const std::string& what) {
    std::vector<std::string> out;
    if (!n.IsSequence()) {
      Error(n, fmt::format("{} must be a list of strings", what));
      return out;
    }
    for (const auto& item : n) {
      if (auto v = String(item, what + "[]")) out.push_back(*v);
    }
    return out;
  }

 private:
  std::optional<std::string> Substitute(const YAML::Node& n, const std::string& in, const std::string& what) {
    std::string out;
    size_t i = 0;
    while (i < in.size()) {
      size_t start = in.find("${", i);
      if (start == std::string::npos) {
        out.append(in, i);
        break;
      }
      out.append(in, i, start - i);
      size_t end = in.find('}', start);
      if (end == std::string::npos) {
        Error(n, fmt::format("{}: unterminated '${{' (write ${{env:NAME}} or ${{file:PATH}})", what));
        return std::nullopt;
      }
      std::string_view ref(in.data() + start + 2, end - start - 2);
      if (StartsWith(ref, "env:")) {
        std::string var(ref.substr(4));
        const char* v = var.empty() ? nullptr : std::getenv(var.c_str());
        if (!v) {
          Error(n, fmt::format("{}: environment variable '{}' is not set", what, var));
          return std::nullopt;
        }
        out += v;
      } else if (StartsWith(ref, "file:")) {
        std::filesystem::path p(std::string(ref.substr(5)));
        if (p.is_relative()) p = std::filesystem::path(base_dir_) / p;
        std::ifstream f(p, std::ios::binary);
        if (!f) {
          Error(n, fmt::format("{}: cannot read secret file '{}'", what, p.string()));
          return std::nullopt;
        }
        std::stringstream ss;
        ss << f.rdbuf();
        std::string content = ss.str();
        while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
        out += content;
      } else {
        Error(n, fmt::format("{}: unknown reference '${{{}}}' (write ${{env:NAME}} or ${{file:PATH}})", what, ref));
        return std::nullopt;
      }
      i = end + 1;
    }
    return out;
  }

  std::string name_;
  std::string base_dir_;
  std::vector<std::string> errors_;
};

void ParseListener(Reader& r, const YAML::Node& n, ListenerConfig& out, const std::string& what) {
  if (!r.Map(n, what, {"address", "tls"})) return;
  if (auto a = n["address"]) {
    if (auto s = r.String(a, what + ".address")) {
      size_t colon = s->rfind(':');
      std::string host = colon == std::string::npos ? "" : s->substr(0, colon);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      std::string port = colon == std::string::npos ? "" : s->substr(colon + 1);
      unsigned char buf[16];
      int p = -1;
      auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
      bool ip_ok = inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
      if (!ip_ok || port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p < 0 || p > 65535) {
        r.Error(a, fmt::format("{}.address must be IP:PORT (e.g. 127.0.0.1:8080, [::1]:8080), got '{}'", what, *s));
      } else {
        out.host = host;
        out.port = static_cast<uint16_t>(p);
      }
    }
  }
  if (auto t = n["tls"]) {
    if (r.Map(t, what + ".tls", {"cert_file", "key_file"})) {
      TlsServerConfig tls;
      r.Str(t, "cert_file", tls.cert_file, what + ".tls");
      r.Str(t, "key_file", tls.key_file, what + ".tls");
      if (tls.cert_file.empty() || tls.key_file.empty()) {
        r.Error(t, fmt::format("{}.tls needs both cert_file and key_file", what));
      }
      out.tls = tls;
    }
  }
}

void ParseServer(Reader& r, const YAML::Node& n, ServerConfig& s) {
  if (!r.Map(n, "server", {"threads", "max_header_bytes", "max_body_bytes", "max_response_bytes",
                           "max_sse_event_bytes", "max_connections", "header_timeout", "body_timeout",
                           "idle_timeout", "write_timeout", "shutdown_timeout"})) {
    return;
  }
  r.Integer(n, "threads", s.threads, "server", 0, 256);
  // Capped below 64 KiB: Beast refuses single fields of 64 KiB or more.
  r.Size(n, "max_header_bytes", s.max_header_bytes, "server", 1024, 60 * 1024);
  r.Size(n, "max_body_bytes", s.max_body_bytes, "server", 1024, 1ULL << 30);
  r.Size(n, "max_response_bytes", s.max_response_bytes, "server", 1024, 1ULL << 32);
  r.Size(n, "max_sse_event_bytes", s.max_sse_event_bytes, "server", 1024, 64ULL << 20);
  r.Integer(n, "max_connections", s.max_connections, "server", 1, 1'000'000);
  r.Duration(n, "header_timeout", s.header_timeout, "server");
  r.Duration(n, "body_timeout", s.body_timeout, "server");
  r.Duration(n, "idle_timeout", s.idle_timeout, "server");
  r.Duration(n, "write_timeout", s.write_timeout, "server");
  r.Duration(n, "shutdown_timeout", s.shutdown_timeout, "server", milliseconds(0));
}

void ParseUpstream(Reader& r, const YAML::Node& n, Config& cfg) {
  UpstreamConfig u;
  u.line = Reader::LineOf(n);
  if (!r.Map(n, "upstream", {"name", "provider", "base_url", "api_key", "headers", "anthropic_version",
                             "connect_timeout", "response_timeout", "idle_timeout", "max_idle_connections",
                             "tls", "send_principal"})) {
    return;
  }
  r.Str(n, "name", u.name, "upstream");
  std::string what = fmt::format("upstream '{}'", u.name);
  if (u.name.empty()) r.Error(n, "upstream needs a name");
  std::string provider;
  r.Str(n, "provider", provider, what);
  if (provider == "openai") u.provider = Provider::kOpenAI;
  else if (provider == "anthropic") u.provider = Provider::kAnthropic;
  else if (provider == "echo") u.provider = Provider::kEcho;
  else r.Error(n["provider"] ? n["provider"] : n, fmt::format("{}: provider must be openai, anthropic or echo", what));
  r.Str(n, "base_url", u.base_url, what);
  if (u.base_url.empty()) {
    if (u.provider == Provider::kOpenAI) u.base_url = "https://api.openai.com/v1";
    if (u.provider == Provider::kAnthropic) u.base_url = "https://api.anthropic.com/v1";
  } else if (!StartsWith(u.base_url, "http://") && !StartsWith(u.base_url, "https://")) {
    r.Error(n["base_url"], fmt::format("{}: base_url must start with http:// or https://", what));
  }
  r.SecretField(n, "api_key", u.api_key, what);
  if (auto h = n["headers"]) {
    if (h.IsMap()) {
      for (const auto& kv : h) {
        if (auto v = r.String(kv.second, what + ".headers")) u.headers[kv.first.Scalar()] = Secret(*v);
      }
    } else {
      r.Error(h, what + ".headers must be a mapping of header name to value");
    }
  }
  r.Str(n, "anthropic_version", u.anthropic_version, what);
  r.Duration(n, "connect_timeout", u.connect_timeout, what);
  r.Duration(n, "response_timeout", u.response_timeout, what);
  r.Duration(n, "idle_timeout", u.idle_timeout, what);
  r.Integer(n, "max_idle_connections", u.max_idle_connections, what, 0, 10'000);
  r.Bool(n, "send_principal", u.send_principal, what);
  if (auto t = n["tls"]) {
    if (r.Map(t, what + ".tls", {"verify", "ca_file", "server_name"})) {
      r.Bool(t, "verify", u.tls.verify, what + ".tls");
      r.Str(t, "ca_file", u.tls.ca_file, what + ".tls");
      r.Str(t, "server_name", u.tls.server_name, what + ".tls");
    }
  }
  for (const auto& other : cfg.upstreams) {
    if (!u.name.empty() && other.name == u.name) {
      r.Error(n, fmt::format("upstream '{}' is declared twice (first at line {})", u.name, other.line));
    }
  }
  cfg.upstreams.push_back(std::move(u));
}

void ParseRoute(Reader& r, const YAML::Node& n, Config& cfg) {
  RouteConfig rt;
  rt.line = Reader::LineOf(n);
  if (!r.Map(n, "route", {"name", "paths", "models", "upstreams", "anonymous"})) return;
  r.Str(n, "name", rt.name, "route");
  if (rt.name.empty()) r.Error(n, "route needs a name");
  std::string what = fmt::format("route '{}'", rt.name);
  if (auto p = n["paths"]) {
    rt.paths = r.StringList(p, what + ".paths");
    for (const auto& path : rt.paths) {
      bool known = false;
      for (const auto& k : KnownLlmPaths()) known = known || k == path;
      if (!known) {
        r.Error(p, fmt::format("{}: unknown path '{}' (known: /v1/chat/completions, /v1/responses, "
                               "/v1/embeddings, /v1/messages)", what, path));
      }
    }
  } else {
    rt.paths = KnownLlmPaths();
  }
  if (auto m = n["models"]) rt.models = r.StringList(m, what + ".models");
  else rt.models = {"*"};
  if (auto u = n["upstreams"]) rt.upstreams = r.StringList(u, what + ".upstreams");
  r.Bool(n, "anonymous", rt.anonymous, what);
  if (rt.upstreams.empty()) r.Error(n, fmt::format("{} needs at least one upstream", what));
  for (const auto& name : rt.upstreams) {
    if (!cfg.FindUpstream(name)) {
      r.Error(n["upstreams"], fmt::format("{}: upstream '{}' is not declared under upstreams", what, name));
    }
  }
  for (const auto& other : cfg.routes) {
    if (!rt.name.empty() && other.name == rt.name) {
      r.Error(n, fmt::format("route '{}' is declared twice (first at line {})", rt.name, other.line));
    }
  }
  cfg.routes.push_back(std::move(rt));
}

void ParseTrustedIssuer(Reader& r, const YAML::Node& n, IdentityConfig& id) {
  TrustedIssuerConfig t;
  t.line = Reader::LineOf(n);
  if (!r.Map(n, "trusted issuer", {"name", "issuer", "jwks_url", "audiences", "algorithms", "clock_skew", "tenant",
                                   "claims", "default_scopes", "refresh_interval", "max_stale",
                                   "min_refetch_interval"})) {
    return;
  }
  r.Str(n, "name", t.name, "trusted issuer");
  std::string what = fmt::format("identity.trusted_issuers '{}'", t.name);
  if (t.name.empty()) r.Error(n, "a trusted issuer needs a name");
  r.Str(n, "issuer", t.issuer, what);
  r.Str(n, "jwks_url", t.jwks_url, what);
  if (t.issuer.empty()) r.Error(n, what + " needs issuer (the exact iss of its tokens)");
  if (!StartsWith(t.jwks_url, "https://") && !StartsWith(t.jwks_url, "http://")) {
    r.Error(n, what + " needs jwks_url (http:// or https://)");
  }
  if (auto a = n["audiences"]) t.audiences = r.StringList(a, what + ".audiences");
  if (t.audiences.empty()) r.Error(n, what + " needs audiences: the aud values aigis accepts from it");
  if (auto a = n["algorithms"]) {
    t.algorithms = r.StringList(a, what + ".algorithms");
    static const std::set<std::string> kAsym{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                             "ES256", "ES384", "ES512", "EdDSA"};
    for (const auto& alg : t.algorithms) {
      if (!kAsym.count(alg)) {
        r.Error(a, fmt::format("{}: algorithm '{}' is not allowed (asymmetric JWS algorithms only; never none or HS*)",
                               what, alg));
      }
    }
  }
  r.Duration(n, "clock_skew", t.clock_skew, what, milliseconds(0));
  r.Str(n, "tenant", t.tenant, what);
  if (auto c = n["claims"]) {
    if (r.Map(c, what + ".claims", {"subject", "email", "groups", "scope"})) {
      r.Str(c, "subject", t.subject_claim, what + ".claims");
      r.Str(c, "email", t.email_claim, what + ".claims");
      r.Str(c, "groups", t.groups_claim, what + ".claims");
      r.Str(c, "scope", t.scope_claim, what + ".claims");
    }
  }
  if (auto d = n["default_scopes"]) t.default_scopes = r.StringList(d, what + ".default_scopes");
  r.Duration(n, "refresh_interval", t.refresh_interval, what, milliseconds(1000));
  r.Duration(n, "max_stale", t.max_stale, what, milliseconds(0));
  r.Duration(n, "min_refetch_interval", t.min_refetch_interval, what, milliseconds(0));
  for (const auto& other : id.trusted_issuers) {
    if (other.issuer == t.issuer && !t.issuer.empty()) {
      r.Error(n, fmt::format("issuer '{}' is trusted twice (first at line {})", t.issuer, other.line));
    }
  }
  id.trusted_issuers.push_back(std::move(t));
}

void ParseIdentity(Reader& r, const YAML::Node& n, IdentityConfig& id) {
  if (!r.Map(n, "identity", {"issuer", "audience", "master_key", "signing_algorithm", "token_ttl", "rotate_every",
                             "clock_skew", "secret_grace", "assertion_max_lifetime", "max_delegation_depth",
                             "strip_headers", "principal_header_ttl", "trusted_issuers", "bootstrap_agent"})) {
    return;
  }
  r.Str(n, "issuer", id.issuer, "identity");
  if (!id.issuer.empty() && !StartsWith(id.issuer, "https://") && !StartsWith(id.issuer, "http://")) {
    r.Error(n["issuer"], "identity.issuer must be an http(s) URL");
  }
  while (!id.issuer.empty() && id.issuer.back() == '/') id.issuer.pop_back();
  r.Str(n, "audience", id.audience, "identity");
  r.SecretField(n, "master_key", id.master_key, "identity");
  r.Str(n, "signing_algorithm", id.signing_algorithm, "identity");
  if (id.signing_algorithm != "EdDSA" && id.signing_algorithm != "ES256" && id.signing_algorithm != "RS256") {
    r.Error(n["signing_algorithm"], "identity.signing_algorithm must be EdDSA, ES256 or RS256");
  }
  r.Duration(n, "token_ttl", id.token_ttl, "identity", milliseconds(10'000));
  r.Duration(n, "rotate_every", id.rotate_every, "identity", milliseconds(60'000));
  r.Duration(n, "clock_skew", id.clock_skew, "identity", milliseconds(0));
  r.Duration(n, "secret_grace", id.secret_grace, "identity", milliseconds(0));
  r.Duration(n, "assertion_max_lifetime", id.assertion_max_lifetime, "identity", milliseconds(10'000));
  r.Integer(n, "max_delegation_depth", id.max_delegation_depth, "identity", 1, 16);
  if (auto s = n["strip_headers"]) id.strip_headers = r.StringList(s, "identity.strip_headers");
  r.Duration(n, "principal_header_ttl", id.principal_header_ttl, "identity", milliseconds(1000));
  if (auto t = n["trusted_issuers"]) {
    if (!t.IsSequence()) r.Error(t, "identity.trusted_issuers must be a list");
    else for (const auto& item : t) ParseTrustedIssuer(r, item, id);
  }
  if (auto b = n["bootstrap_agent"]) {
    if (r.Map(b, "identity.bootstrap_agent", {"id", "name", "scopes", "api_key_file"})) {
      BootstrapAgentConfig a;
      r.Str(b, "id", a.id, "identity.bootstrap_agent");
      r.Str(b, "name", a.name, "identity.bootstrap_agent");
      if (auto s = b["scopes"]) a.scopes = r.StringList(s, "identity.bootstrap_agent.scopes");
      r.Str(b, "api_key_file", a.api_key_file, "identity.bootstrap_agent");
      if (a.id.empty() || a.api_key_file.empty()) r.Error(b, "identity.bootstrap_agent needs id and api_key_file");
      if (a.name.empty()) a.name = a.id;
      id.bootstrap_agent = std::move(a);
    }
  }
}

// "{name}" references in a template; false (with an error) on an unknown or
// unterminated one.
bool CheckTemplate(Reader& r, const YAML::Node& at, const std::string& text, const std::string& what) {
  const auto& known = AuthzTemplateVariables();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '}') {
      r.Error(at, fmt::format("{}: unmatched '}}' in '{}'", what, text));
      return false;
    }
    if (text[i] != '{') continue;
    size_t end = text.find('}', i);
    if (end == std::string::npos) {
      r.Error(at, fmt::format("{}: unterminated '{{' in '{}'", what, text));
      return false;
    }
    std::string name = text.substr(i + 1, end - i - 1);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + ("{" + k + "}");
      r.Error(at, fmt::format("{}: unknown variable '{{{}}}' (known: {})", what, name, list));
      return false;
    }
    i = end;
  }
  return true;
}

// "object#relation@user" (the OpenFGA tuple string form).
bool IsTupleText(const std::string& t) {
  size_t hash = t.find('#'), at = t.find('@', hash == std::string::npos ? 0 : hash);
  return hash != std::string::npos && at != std::string::npos && hash > 0 && at > hash + 1 && at + 1 < t.size() &&
         t.substr(0, hash).find(':') != std::string::npos;
}

void ParseAuthz(Reader& r, const YAML::Node& n, AuthzConfig& a) {
  if (!r.Map(n, "authz", {"enabled", "store", "model_file", "seed_tuples", "checks"})) return;
  r.Bool(n, "enabled", a.enabled, "authz");
  r.Str(n, "store", a.store, "authz");
  if (a.store.empty()) r.Error(n["store"], "authz.store must name a store");
  r.Str(n, "model_file", a.model_file, "authz");
  if (auto s = n["seed_tuples"]) {
    a.seed_tuples = r.StringList(s, "authz.seed_tuples");
    for (const auto& t : a.seed_tuples) {
      if (!IsTupleText(t)) r.Error(s, fmt::format("authz.seed_tuples: '{}' is not object#relation@user", t));
    }
  }
  if (auto c = n["checks"]) {
    if (!r.Map(c, "authz.checks", {"llm"})) return;
    for (const auto& kv : c) {
      std::string kind = kv.first.Scalar();
      if (kind != "llm") continue;  // reported by Map
      std::string what = "authz.checks." + kind;
      auto& list = a.checks[kind];
      if (!kv.second.IsSequence()) {
        r.Error(kv.second, what + " must be a list of checks (an empty list means no check)");
        continue;
      }
      for (const auto& item : kv.second) {
        if (!r.Map(item, what + "[]", {"user", "relation", "object", "contextual_tuples"})) continue;
        AuthzCheckConfig chk;
        chk.line = Reader::LineOf(item);
        r.Str(item, "user", chk.user, what);
        r.Str(item, "relation", chk.relation, what);
        r.Str(item, "object", chk.object, what);
        if (auto t = item["contextual_tuples"]) chk.contextual_tuples = r.StringList(t, what + ".contextual_tuples");
        if (chk.relation.empty() || chk.object.empty() || chk.user.empty()) {
          r.Error(item, what + ": a check needs user, relation and object");
          continue;
        }
        if (chk.object.find(':') == std::string::npos) r.Error(item, what + ": object must be type:id");
        CheckTemplate(r, item, chk.user, what + ".user");
        CheckTemplate(r, item, chk.relation, what + ".relation");
        CheckTemplate(r, item, chk.object, what + ".object");
        for (const auto& t : chk.contextual_tuples) {
          if (!IsTupleText(t)) r.Error(item, fmt::format("{}.contextual_tuples: '{}' is not object#relation@user", what, t));
          else CheckTemplate(r, item, t, what + ".contextual_tuples");
        }
        list.push_back(std::move(chk));
      }
    }
  }
  if (!a.checks.count("llm")) {
    AuthzCheckConfig d;
    d.relation = "can_use";
    d.object = "llm_model:{request.model}";
    a.checks["llm"].push_back(std::move(d));
  }
}

// A number in [0, 1] at parent[key], if present.
void Fraction(Reader& r, const YAML::Node& parent, const char* key, double& out, const std::string& what) {
  auto v = parent[key];
  if (!v) return;
  double d = -1;
  const std::string& s = v.IsScalar() ? v.Scalar() : std::string();
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || d < 0 || d > 1) {
    r.Error(v, fmt::format("{}.{} must be a number between 0 and 1", what, key));
  } else {
    out = d;
  }
}

void GuardMode(Reader& r, const YAML::Node& n, std::string& mode, const std::string& what) {
  r.Str(n, "mode", mode, what);
  if (mode != "enforce" && mode != "monitor" && mode != "off") {
    r.Error(n["mode"], what + ".mode must be enforce, monitor or off");
  }
}

void ParseGuard(Reader& r, const YAML::Node& n, GuardConfig& g) {
  if (!r.Map(n, "guard", {"enabled", "mode", "builtin_rules", "rules", "block_threshold", "alert_threshold",
                          "screen_responses", "policies", "classifier"})) {
    return;
  }
  r.Bool(n, "enabled", g.enabled, "guard");
  GuardMode(r, n, g.mode, "guard");
  r.Bool(n, "builtin_rules", g.builtin_rules, "guard");
  r.Bool(n, "screen_responses", g.screen_responses, "guard");
  if (auto l = n["rules"]) g.rules = r.StringList(l, "guard.rules");
  Fraction(r, n, "block_threshold", g.block_threshold, "guard");
  Fraction(r, n, "alert_threshold", g.alert_threshold, "guard");
  if (g.alert_threshold > g.block_threshold) r.Error(n, "guard.alert_threshold must not be above guard.block_threshold");
  if (!g.builtin_rules && g.rules.empty() && g.enabled) r.Error(n, "guard is enabled without rules: keep builtin_rules or list packs in guard.rules");
  if (auto ps = n["policies"]) {
    if (!ps.IsSequence()) {
      r.Error(ps, "guard.policies must be a list");
    } else {
      for (const auto& item : ps) {
        if (!r.Map(item, "guard.policies[]", {"name", "routes", "principals", "mode", "block_threshold",
                                               "alert_threshold", "disabled_rules"})) {
          continue;
        }
        GuardPolicyConfig p;
        p.line = Reader::LineOf(item);
        p.mode = g.mode;
        p.block_threshold = g.block_threshold;
        p.alert_threshold = g.alert_threshold;
        r.Str(item, "name", p.name, "guard.policies[]");
        if (p.name.empty()) p.name = fmt::format("policy-{}", g.policies.size() + 1);
        std::string what = "guard.policies." + p.name;
        if (auto l = item["routes"]) p.routes = r.StringList(l, what + ".routes");
        if (auto l = item["principals"]) p.principals = r.StringList(l, what + ".principals");
        if (auto l = item["disabled_rules"]) p.disabled_rules = r.StringList(l, what + ".disabled_rules");
        GuardMode(r, item, p.mode, what);
        Fraction(r, item, "block_threshold", p.block_threshold, what);
        Fraction(r, item, "alert_threshold", p.alert_threshold, what);
        if (p.alert_threshold > p.block_threshold) r.Error(item, what + ".alert_threshold must not be above its block_threshold");
        for (const auto& q : g.policies) {
          if (q.name == p.name) r.Error(item, fmt::format("{}: a policy of that name is declared at line {}", what, q.line));
        }
        g.policies.push_back(std::move(p));
      }
    }
  }
  if (auto c = n["classifier"]) {
    auto& k = g.classifier;
    if (r.Map(c, "guard.classifier", {"url", "kind", "model", "api_key", "timeout", "failure_mode"})) {
      r.Str(c, "url", k.url, "guard.classifier");
      r.Str(c, "kind", k.kind, "guard.classifier");
      r.Str(c, "model", k.model, "guard.classifier");
      r.SecretField(c, "api_key", k.api_key, "guard.classifier");
      r.Duration(c, "timeout", k.timeout, "guard.classifier");
      r.Str(c, "failure_mode", k.failure_mode, "guard.classifier");
      if (k.url.empty()) r.Error(c, "guard.classifier.url is required (the guard model's endpoint)");
      else if (!StartsWith(k.url, "http://") && !StartsWith(k.url, "https://")) r.Error(c["url"], "guard.classifier.url must be an http(s) URL");
      if (k.kind != "moderation" && k.kind != "chat") r.Error(c["kind"], "guard.classifier.kind must be moderation or chat");
      if (k.kind == "chat" && k.model.empty()) r.Error(c, "guard.classifier.model is required for kind chat");
      if (k.failure_mode != "closed" && k.failure_mode != "open") r.Error(c["failure_mode"], "guard.classifier.failure_mode must be closed or open");
    }
  }
}

void ParseAudit(Reader& r, const YAML::Node& n, AuditConfig& a) {
  if (!r.Map(n, "audit", {"enabled", "mode", "origin", "checkpoint_interval", "max_queue", "capture_bodies",
                          "async_linger", "sinks"})) {
    return;
  }
  r.Bool(n, "enabled", a.enabled, "audit");
  r.Str(n, "mode", a.mode, "audit");
  if (a.mode != "async" && a.mode != "sync") r.Error(n["mode"], "audit.mode must be async or sync");
  r.Str(n, "origin", a.origin, "audit");
  // A C2SP key name and checkpoint origin: printable, no spaces or '+'.
  bool ok = !a.origin.empty();
  for (char c : a.origin) ok = ok && static_cast<unsigned char>(c) > 0x20 && c != '+' && c != 0x7F;
  if (!ok) r.Error(n["origin"], "audit.origin must be non-empty, without spaces or '+' (e.g. example.com/aigis)");
  r.Duration(n, "checkpoint_interval", a.checkpoint_interval, "audit", milliseconds(100));
  r.Integer(n, "max_queue", a.max_queue, "audit", 1000, 100'000'000);
  r.Bool(n, "capture_bodies", a.capture_bodies, "audit");
  r.Duration(n, "async_linger", a.async_linger, "audit", milliseconds(0));
  if (a.async_linger > milliseconds(1000)) r.Error(n["async_linger"], "audit.async_linger must be at most 1s");
  if (auto list = n["sinks"]) {
    if (!list.IsSequence()) {
      r.Error(list, "audit.sinks must be a list");
      return;
    }
    for (const auto& item : list) {
      AuditSinkConfig k;
      if (!r.Map(item, "audit.sinks[]", {"type", "path", "max_bytes", "keep", "url", "secret", "timeout", "address",
                                         "app_name", "facility", "max_queue"})) {
        continue;
      }
      const std::string what = "audit.sinks[]";
      r.Str(item, "type", k.type, what);
      r.Str(item, "path", k.path, what);
      r.Size(item, "max_bytes", k.max_bytes, what, 4096, size_t{1} << 40);
      r.Integer(item, "keep", k.keep, what, 0, 1000);
      r.Str(item, "url", k.url, what);
      r.SecretField(item, "secret", k.secret, what);
      r.Duration(item, "timeout", k.timeout, what);
      r.Str(item, "address", k.address, what);
      r.Str(item, "app_name", k.app_name, what);
      r.Integer(item, "facility", k.facility, what, 0, 23);
      r.Integer(item, "max_queue", k.max_queue, what, 1, 100'000'000);
      if (k.type == "file") {
        if (k.path.empty()) r.Error(item, "audit.sinks[]: a file sink needs path");
      } else if (k.type == "webhook") {
        if (!StartsWith(k.url, "http://") && !StartsWith(k.url, "https://")) r.Error(item, "audit.sinks[]: a webhook sink needs an http(s) url");
        if (k.secret.Reveal().size() < 16) r.Error(item, "audit.sinks[]: a webhook sink needs a secret of at least 16 characters (it signs every POST)");
      } else if (k.type == "syslog") {
        if (!StartsWith(k.address, "udp://") && !StartsWith(k.address, "tcp://")) {
          r.Error(item, "audit.sinks[]: a syslog sink needs address: udp://ip:port or tcp://ip:port");
        }
      } else {
        r.Error(item, "audit.sinks[].type must be file, webhook or syslog");
      }
      a.sinks.push_back(std::move(k));
    }
  }
}

void SecretMap(Reader& r, const YAML::Node& n, std::map<std::string, Secret>& out, const std::string& what) {
  if (!n.IsMap()) {
    r.Error(n, what + " must be a mapping of name to value");
    return;
  }
  for (const auto& kv : n) {
    if (auto v = r.String(kv.second, what + "." + kv.first.Scalar())) out[kv.first.Scalar()] = Secret(*v);
  }
}

void ParseMcp(Reader& r, const YAML::Node& n, McpConfig& m) {
  if (!r.Map(n, "mcp", {"separator", "page_size", "max_sessions", "session_idle_timeout", "catalog_ttl", "servers"})) return;
  r.Str(n, "separator", m.separator, "mcp");
  if (m.separator.empty() || m.separator.size() > 8) r.Error(n["separator"], "mcp.separator must be 1 to 8 characters");
  r.Integer(n, "page_size", m.page_size, "mcp", 1, 10'000);
  r.Integer(n, "max_sessions", m.max_sessions, "mcp", 1, 10'000'000);
  r.Duration(n, "session_idle_timeout", m.session_idle_timeout, "mcp", milliseconds(1000));
  r.Duration(n, "catalog_ttl", m.catalog_ttl, "mcp", milliseconds(0));
  auto list = n["servers"];
  if (!list) return;
  if (!list.IsSequence()) {
    r.Error(list, "mcp.servers must be a list");
    return;
  }
  for (const auto& item : list) {
    McpServerConfig s;
    s.line = Reader::LineOf(item);
    if (!r.Map(item, "mcp.servers[]", {"name", "url", "headers", "tls", "command", "args", "env", "cwd",
                                       "restart_backoff", "max_restart_backoff", "auto_approve", "connect_timeout",
                                       "timeout"})) {
      continue;
    }
    r.Str(item, "name", s.name, "mcp.servers[]");
    std::string what = fmt::format("mcp server '{}'", s.name);
    bool name_ok = !s.name.empty() && s.name.size() <= 64;
    for (char c : s.name) name_ok = name_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
    if (!name_ok) r.Error(item, fmt::format("{}: name must be 1 to 64 of a-z, 0-9, '-' and '_'", what));
    else if (s.name.find(m.separator) != std::string::npos) {
      r.Error(item, fmt::format("{}: the name must not contain the separator '{}'", what, m.separator));
    }
    r.Str(item, "url", s.url, what);
    r.Str(item, "command", s.command, what);
    if (s.url.empty() == s.command.empty()) r.Error(item, fmt::format("{}: give either url (Streamable HTTP) or command (stdio)", what));
    if (!s.url.empty() && !StartsWith(s.url, "http://") && !StartsWith(s.url, "https://")) {
      r.Error(item["url"], fmt::format("{}: url must start with http:// or https://", what));
    }
    if (auto h = item["headers"]) SecretMap(r, h, s.headers, what + ".headers");
    if (auto e = item["env"]) SecretMap(r, e, s.env, what + ".env");
    if (auto a = item["args"]) s.args = r.StringList(a, what + ".args");
    r.Str(item, "cwd", s.cwd, what);
    if (!s.url.empty() && (item["args"] || item["env"] || item["cwd"])) r.Error(item, fmt::format("{}: args, env and cwd are for stdio servers (command)", what));
    if (auto t = item["tls"]) {
      if (r.Map(t, what + ".tls", {"verify", "ca_file", "server_name"})) {
        r.Bool(t, "verify", s.tls.verify, what + ".tls");
        r.Str(t, "ca_file", s.tls.ca_file, what + ".tls");
        r.Str(t, "server_name", s.tls.server_name, what + ".tls");
      }
    }
    r.Duration(item, "restart_backoff", s.restart_backoff, what, milliseconds(10));
    r.Duration(item, "max_restart_backoff", s.max_restart_backoff, what, milliseconds(10));
    if (s.max_restart_backoff < s.restart_backoff) r.Error(item, what + ": max_restart_backoff must not be below restart_backoff");
    r.Bool(item, "auto_approve", s.auto_approve, what);
    r.Duration(item, "connect_timeout", s.connect_timeout, what);
    r.Duration(item, "timeout", s.timeout, what);
    for (const auto& other : m.servers) {
      if (!s.name.empty() && other.name == s.name) {
        r.Error(item, fmt::format("{} is declared twice (first at line {})", what, other.line));
      }
    }
    m.servers.push_back(std::move(s));
  }
}

LoadResult Parse(const YAML::Node& root, Reader& r, const std::string& source) {
  Config cfg;
  cfg.source = source;
  bool declared_upstreams = false, declared_routes = false;
  if (root.IsNull()) {
    // An empty file means "all defaults".
  } else if (r.Map(root, "the top level", {"listeners", "server", "data_dir", "log", "reload", "upstreams",
                                           "model_aliases", "routes", "identity", "authz", "guard", "audit", "mcp"})) {
    if (auto l = root["listeners"]) {
      if (r.Map(l, "listeners", {"proxy", "admin"})) {
        if (auto p = l["proxy"]) ParseListener(r, p, cfg.proxy, "listeners.proxy");
        if (auto a = l["admin"]) ParseListener(r, a, cfg.admin, "listeners.admin");
      }
    }
    if (auto s = root["server"]) ParseServer(r, s, cfg.server);
    if (auto d = root["data_dir"]) {
      if (auto v = r.String(d, "data_dir")) cfg.data_dir = *v;
    }
    if (auto l = root["log"]) {
      if (r.Map(l, "log", {"level", "access_log"})) {
        r.Str(l, "level", cfg.log.level, "log");
        r.Str(l, "access_log", cfg.log.access_log, "log");
        static const std::set<std::string> kLevels{"trace", "debug", "info", "warn", "error", "off"};
        if (!kLevels.count(cfg.log.level)) r.Error(l["level"], "log.level must be trace, debug, info, warn, error or off");
        if (cfg.log.access_log.empty()) r.Error(l["access_log"], "log.access_log must be stdout, off or a file path");
      }
    }
    if (auto rl = root["reload"]) {
      if (r.Map(rl, "reload", {"watch", "interval"})) {
        r.Bool(rl, "watch", cfg.reload.watch, "reload");
        r.Duration(rl, "interval", cfg.reload.interval, "reload", milliseconds(50));
      }
    }
    if (auto u = root["upstreams"]) {
      declared_upstreams = true;
      if (!u.IsSequence()) r.Error(u, "upstreams must be a list");
      else for (const auto& item : u) ParseUpstream(r, item, cfg);
    }
    if (auto a = root["model_aliases"]) {
      if (!a.IsMap()) {
        r.Error(a, "model_aliases must be a mapping of alias to model name");
      } else {
        for (const auto& kv : a) {
          if (auto v = r.String(kv.second, "model_aliases." + kv.first.Scalar())) {
            cfg.model_aliases[kv.first.Scalar()] = *v;
          }
        }
      }
    }
    if (auto id = root["identity"]) ParseIdentity(r, id, cfg.identity);
    if (auto az = root["authz"]) ParseAuthz(r, az, cfg.authz);
    if (auto g = root["guard"]) ParseGuard(r, g, cfg.guard);
    if (auto a = root["audit"]) ParseAudit(r, a, cfg.audit);
    if (auto m = root["mcp"]) ParseMcp(r, m, cfg.mcp);
    if (auto rt = root["routes"]) {
      declared_routes = true;
      if (!rt.IsSequence()) r.Error(rt, "routes must be a list");
      else for (const auto& item : rt) ParseRoute(r, item, cfg);
    }
  }
  if (!declared_upstreams && !declared_routes) {
    Config d = Defaults();
    cfg.upstreams = d.upstreams;
    cfg.routes = d.routes;
  } else if (!declared_routes) {
    r.ErrorAt(1, "upstreams are declared but no routes: add routes that send models to them");
  }
  for (const auto& p : cfg.guard.policies) {
    for (const auto& name : p.routes) {
      bool known = std::any_of(cfg.routes.begin(), cfg.routes.end(), [&](const RouteConfig& rc) { return rc.name == name; });
      if (!known) r.ErrorAt(p.line, fmt::format("guard.policies.{}: unknown route '{}'", p.name, name));
    }
  }
  if (cfg.identity.master_key.empty()) {
    if (const char* v = std::getenv("AIGIS_MASTER_KEY")) cfg.identity.master_key = Secret(v);
  }
  if (cfg.proxy.host == cfg.admin.host && cfg.proxy.port == cfg.admin.port && cfg.proxy.port != 0) {
    r.ErrorAt(1, "listeners.proxy and listeners.admin must not use the same address");
  }
  LoadResult out;
  out.errors = std::move(r.errors());
  if (out.errors.empty()) out.config = std::move(cfg);
  return out;
}

// yaml-cpp parses flow collections recursively; bound nesting and size before
// handing it text, so a hostile file is an error rather than a stack overflow.
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr int kMaxFlowDepth = 64;

std::optional<std::string> CheckBounds(const std::string& text, const std::string& name) {
  if (text.size() > kMaxConfigBytes) {
    return fmt::format("{}:1: config file is larger than {} bytes", name, kMaxConfigBytes);
  }
  int depth = 0, line = 1;
  char quote = 0;
  bool comment = false;
  for (char c : text) {
    if (c == '\n') { ++line; comment = false; continue; }
    if (comment) continue;
    if (quote) { if (c == quote) quote = 0; continue; }
    if (c == '#') comment = true;
    else if (c == '"' || c == '\'') quote = c;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxFlowDepth) {
        return fmt::format("{}:{}: nesting deeper than {} levels", name, line, kMaxFlowDepth);
      }
    } else if ((c == ']' || c == '}') && depth > 0) --depth;
  }
  return std::nullopt;
}

LoadResult LoadImpl(const std::string& text, const std::string& name, const std::string& base_dir) {
  if (auto err = CheckBounds(text, name)) {
    LoadResult out;
    out.errors.push_back(*err);
    return out;
  }
  Reader r(name, base_dir);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    LoadResult out;
    out.errors.push_back(fmt::format("{}:{}: {}", name, e.mark.line + 1, e.msg));
    return out;
  }
  try {
    return Parse(root, r, name);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed structures (e.g. aliases used as keys).
    r.ErrorAt(e.mark.line + 1, e.msg);
    LoadResult out;
    out.errors = std::move(r.errors());
    return out;
  }
}

}  // namespace

std::string_view ProviderName(Provider p) {
  switch (p) {
    case Provider::kOpenAI: return "openai";
    case Provider::kAnthropic: return "anthropic";
    case Provider::kEcho: return "echo";
  }
  return "unknown";
}

const std::vector<std::string>& KnownLlmPaths() {
  static const std::vector<std::string> kPaths{"/v1/chat/completions", "/v1/responses", "/v1/embeddings",
                                               "/v1/messages"};
  return kPaths;
}

const McpServerConfig* McpConfig::Find(std::string_view name) const {
  for (const auto& s : servers) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const UpstreamConfig* Config::FindUpstream(std::string_view name) const {
  for (const auto& u : upstreams) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

const std::vector<std::string>& AuthzTemplateVariables() {
  static const std::vector<std::string> kVars{"subject",       "principal.id", "principal.kind", "principal.tenant",
                                              "request.model", "request.upstream_model", "route"};
  return kVars;
}

Config Defaults() {
  Config c;
  UpstreamConfig echo;
  echo.name = "echo";
  echo.provider = Provider::kEcho;
  c.upstreams.push_back(echo);
  RouteConfig route;
  route.name = "default";
  route.paths = KnownLlmPaths();
  route.models = {"*"};
  route.upstreams = {"echo"};
  c.routes.push_back(route);
  if (const char* v = std::getenv("AIGIS_MASTER_KEY")) c.identity.master_key = Secret(v);
  return c;
}

LoadResult LoadString(const std::string& text, const std::string& name, const std::string& base_dir) {
  return LoadImpl(text, name, base_dir);
}

LoadResult LoadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    LoadResult out;
    out.errors.push_back(fmt::format("{}:0: cannot open config file", path));
    return out;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  auto dir = std::filesystem::path(path).parent_path().string();
  return LoadImpl(ss.str(), path, dir.empty() ? "." : dir);
}

FileStamp StampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          static_cast<int64_t>(st.st_size), static_cast<uint64_t>(st.st_ino)};
}

}  // namespace aigis::config

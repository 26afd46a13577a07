// JWS compact serialization (RFC 7515 §7.1): parsing with the gateway's rules,
// verification and signing.
#include <array>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <string>
#include <utility>

#include "crypto/crypto.h"
#include "crypto/internal.h"

namespace aigis::crypto {
namespace {

struct AlgEntry {
  Alg alg;
  std::string_view name;
  size_t hash_size;  // SHA-2 output bytes; 0 for EdDSA (hash is internal)
};

constexpr std::array<AlgEntry, 13> kAlgs = {{
    {Alg::kEdDSA, "EdDSA", 0},
    {Alg::kES256, "ES256", 32}, {Alg::kES384, "ES384", 48}, {Alg::kES512, "ES512", 64},
    {Alg::kRS256, "RS256", 32}, {Alg::kRS384, "RS384", 48}, {Alg::kRS512, "RS512", 64},
    {Alg::kPS256, "PS256", 32}, {Alg::kPS384, "PS384", 48}, {Alg::kPS512, "PS512", 64},
    {Alg::kHS256, "HS256", 32}, {Alg::kHS384, "HS384", 48}, {Alg::kHS512, "HS512", 64},
}};

const AlgEntry& Entry(Alg alg) {
  for (const auto& e : kAlgs) {
    if (e.alg == alg) return e;
  }
  return kAlgs[0];  // unreachable: every enumerator is in the table
}

}  // namespace

std::optional<Alg> ParseAlg(std::string_view name) {
  // Case-sensitive (RFC 7515 §4.1.1): "NONE", "hs256" and friends are unknown.
  for (const auto& e : kAlgs) {
    if (e.name == name) return e.alg;
  }
  return std::nullopt;
}

std::string_view AlgName(Alg alg) { return Entry(alg).name; }

namespace internal {
size_t HashSize(Alg alg) { return Entry(alg).hash_size; }
}  // namespace internal

Result<Jws> ParseCompact(std::string_view token) {
  if (token.size() > kMaxJwsBytes) return InvalidArgument("jws: token too large");
  size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return InvalidArgument("jws: expected three parts");
  size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return InvalidArgument("jws: expected three parts");
  }
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_b64 = token.substr(dot2 + 1);
  if (header_b64.empty()) return InvalidArgument("jws: empty header");
  // Every supported algorithm produces a non-empty signature ("none" is not one).
  if (signature_b64.empty()) return InvalidArgument("jws: empty signature");

  Jws jws;
  ASSIGN_OR_RETURN(jws.header_json, Base64UrlDecode(header_b64));
  ASSIGN_OR_RETURN(jws.payload, Base64UrlDecode(payload_b64));
  ASSIGN_OR_RETURN(jws.signature, Base64UrlDecode(signature_b64));

  ASSIGN_OR_RETURN(boost::json::value header, internal::ParseStrictJson(jws.header_json, kMaxJwsBytes));
  const boost::json::object* obj = header.if_object();
  if (obj == nullptr) return InvalidArgument("jws: header is not a JSON object");

  ASSIGN_OR_RETURN(std::optional<std::string> alg_name, internal::OptionalString(*obj, "alg"));
  if (!alg_name) return InvalidArgument("jws: header has no \"alg\"");
  std::optional<Alg> alg = ParseAlg(*alg_name);
  if (!alg) return InvalidArgument("jws: unsupported alg \"" + *alg_name + "\"");
  jws.alg = *alg;

  // RFC 7515 §4.1.11: a recipient must reject a token whose "crit" names an
  // extension it does not understand. We implement no extensions, so any
  // "crit" (well-formed or not) is a rejection.
  if (obj->contains("crit")) return InvalidArgument("jws: unsupported critical header");
  // RFC 7797 unencoded payloads change what is signed; never accept them.
  if (const boost::json::value* b64 = obj->if_contains("b64")) {
    if (!b64->is_bool()) return InvalidArgument("jws: \"b64\" must be a boolean");
    if (!b64->get_bool()) return InvalidArgument("jws: unencoded payload (b64=false) not supported");
  }

  ASSIGN_OR_RETURN(std::optional<std::string> kid, internal::OptionalString(*obj, "kid"));
  ASSIGN_OR_RETURN(std::optional<std::string> typ, internal::OptionalString(*obj, "typ"));
  jws.kid = kid.value_or("");
  jws.typ = typ.value_or("");
  jws.signing_input.assign(token.substr(0, dot2));
  return jws;
}

bool VerifyJws(const Jws& jws, const Key& key) {
  // Key::Verify enforces the key's type, curve, alg, use and key_ops.
  return key.Verify(jws.alg, jws.signing_input, jws.signature);
}

Result<std::string> SignCompact(const Key& key, Alg alg, std::string_view typ, std::string_view payload) {
  boost::json::object header;
  header["alg"] = AlgName(alg);
  if (!key.kid().empty()) header["kid"] = key.kid();
  if (!typ.empty()) header["typ"] = boost::json::string_view(typ.data(), typ.size());
  std::string token = Base64UrlEncode(boost::json::serialize(header));
  token.push_back('.');
  token += Base64UrlEncode(payload);
  ASSIGN_OR_RETURN(std::string signature, key.Sign(alg, token));
  token.push_back('.');
  token += Base64UrlEncode(signature);
  return token;
}

}  // namespace aigis::crypto

// Keys: generation, JWK/PEM import and export, thumbprints, and the JWS
// signature primitives. Every OpenSSL handle is owned by an RAII wrapper;
// every OpenSSL error raised here is popped before returning, so that a failed
// verification never leaves stale entries for the TLS code on the same thread.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crypto/crypto.h"
#include "crypto/internal.h"

namespace aigis::crypto {
namespace {

// Bounds on what we accept from outside.
constexpr size_t kMaxJwkBytes = 64 * 1024;
constexpr size_t kMaxJwksBytes = 1024 * 1024;
constexpr size_t kMaxJwksKeys = 256;
constexpr size_t kMaxPemBytes = 64 * 1024;
constexpr int kMinRsaBits = 2048;
// Verification cost grows with the modulus; nobody signs JWTs with more.
constexpr int kMaxRsaBits = 8192;
// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output, so
// the shortest usable one is 32 bytes (HS256).
constexpr size_t kMinHmacKeyBytes = 32;

// ---------------------------------------------------------- RAII handles ----

struct Free {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
  void operator()(BIGNUM* p) const { BN_clear_free(p); }  // may hold private values
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Free>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Free>;
using BnPtr = std::unique_ptr<BIGNUM, Free>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Free>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Free>;
using BioPtr = std::unique_ptr<BIO, Free>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Free>;
// Shared so that copies of a Key (and WithKid) share one immutable handle.
using PkeyPtr = std::shared_ptr<EVP_PKEY>;

PkeyPtr WrapPkey(EVP_PKEY* pkey) {
  if (pkey == nullptr) return nullptr;
  return PkeyPtr(pkey, EVP_PKEY_free);
}

// Pops every OpenSSL error raised in this scope (see the file comment).
class ErrorScope {
 public:
  ErrorScope() { ERR_set_mark(); }
  ~ErrorScope() { ERR_pop_to_mark(); }
  ErrorScope(const ErrorScope&) = delete;
  ErrorScope& operator=(const ErrorScope&) = delete;
};

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

BnPtr BnFromBytes(std::string_view bytes) {
  return BnPtr(BN_bin2bn(Bytes(bytes), static_cast<int>(bytes.size()), nullptr));
}

std::string BnToBytes(const BIGNUM* bn, int pad_to = 0) {
  int size = pad_to > 0 ? pad_to : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(size), '\0');
  if (size == 0) return out;
  if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), size) != size) return {};
  return out;
}

// ---------------------------------------------------------------- curves ----

enum class Curve : uint8_t { kNone, kP256, kP384, kP521, kEd25519 };

struct EcCurve {
  Curve curve;
  std::string_view jwk_name;  // JWK "crv"
  const char* group_name;     // OpenSSL group name
  int coord_size;             // bytes per coordinate / scalar / half-signature
  Alg alg;
};

constexpr std::array<EcCurve, 3> kEcCurves = {{
    {Curve::kP256, "P-256", "prime256v1", 32, Alg::kES256},
    {Curve::kP384, "P-384", "secp384r1", 48, Alg::kES384},
    {Curve::kP521, "P-521", "secp521r1", 66, Alg::kES512},
}};

const EcCurve* FindEcCurve(Curve curve) {
  for (const auto& c : kEcCurves) {
    if (c.curve == curve) return &c;
  }
  return nullptr;
}

bool IsEs(Alg a) { return a == Alg::kES256 || a == Alg::kES384 || a == Alg::kES512; }
bool IsRs(Alg a) { return a == Alg::kRS256 || a == Alg::kRS384 || a == Alg::kRS512; }
bool IsPs(Alg a) { return a == Alg::kPS256 || a == Alg::kPS384 || a == Alg::kPS512; }
bool IsHs(Alg a) { return a == Alg::kHS256 || a == Alg::kHS384 || a == Alg::kHS512; }

const EVP_MD* Digest(Alg alg) {
  switch (internal::HashSize(alg)) {
    case 32: return EVP_sha256();
    case 48: return EVP_sha384();
    case 64: return EVP_sha512();
    default: return nullptr;  // EdDSA hashes internally
  }
}

constexpr std::array<Alg, 13> kAllAlgs = {
    Alg::kEdDSA, Alg::kES256, Alg::kES384, Alg::kES512, Alg::kRS256, Alg::kRS384, Alg::kRS512,
    Alg::kPS256, Alg::kPS384, Alg::kPS512, Alg::kHS256, Alg::kHS384, Alg::kHS512};

// --------------------------------------------------------------- key data ----

// Everything a Key is. Key::Rep derives from it so that the free functions in
// this file can work on it without naming the private Key::Rep.
struct KeyData {
  KeyType type = KeyType::kOct;
  Curve curve = Curve::kNone;
  PkeyPtr pkey;        // null for kOct
  std::string secret;  // kOct only
  bool has_private = false;
  std::string kid;
  std::optional<Alg> alg;
  std::optional<std::string> use;
  std::optional<std::vector<std::string>> key_ops;

  KeyData() = default;
  KeyData(const KeyData&) = default;
  KeyData(KeyData&&) = default;
  ~KeyData() {
    if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  }
};

enum class Op { kSign, kVerify };

// Type and curve (and, for HMAC, key length) fit `alg`.
bool TypeFits(const KeyData& key, Alg alg) {
  switch (key.type) {
    case KeyType::kOkp: return alg == Alg::kEdDSA && key.curve == Curve::kEd25519;
    case KeyType::kEc: {
      const EcCurve* c = FindEcCurve(key.curve);
      return c != nullptr && c->alg == alg;
    }
    case KeyType::kRsa: return IsRs(alg) || IsPs(alg);
    case KeyType::kOct: return IsHs(alg) && key.secret.size() >= internal::HashSize(alg);
  }
  return false;
}

bool Permits(const KeyData& key, Alg alg, Op op) {
  if (!TypeFits(key, alg)) return false;
  if (key.alg && *key.alg != alg) return false;
  if (key.use && *key.use != "sig") return false;
  if (key.key_ops) {
    std::string_view wanted = op == Op::kSign ? "sign" : "verify";
    if (std::find(key.key_ops->begin(), key.key_ops->end(), wanted) == key.key_ops->end()) return false;
  }
  if (op == Op::kSign && !key.has_private) return false;
  return true;
}

// ------------------------------------------------------------ primitives ----

Result<std::string> DigestSign(EVP_PKEY* pkey, Alg alg, std::string_view data) {
  MdCtxPtr md_ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by md_ctx
  if (!md_ctx || EVP_DigestSignInit(md_ctx.get(), &pctx, Digest(alg), nullptr, pkey) != 1) {
    return Internal("sign: init failed");
  }
  if (IsPs(alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
                    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, Digest(alg)) != 1)) {
    return Internal("sign: PSS setup failed");
  }
  size_t size = 0;
  if (EVP_DigestSign(md_ctx.get(), nullptr, &size, Bytes(data), data.size()) != 1) {
    return Internal("sign: failed");
  }
  std::string sig(size, '\0');
  if (EVP_DigestSign(md_ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &size, Bytes(data),
                     data.size()) != 1) {
    return Internal("sign: failed");
  }
  sig.resize(size);
  return sig;
}

bool DigestVerify(EVP_PKEY* pkey, Alg alg, std::string_view data, std::string_view sig) {
  MdCtxPtr md_ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!md_ctx || EVP_DigestVerifyInit(md_ctx.get(), &pctx, Digest(alg), nullptr, pkey) != 1) return false;
  if (IsPs(alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                    // On verify, "digest" means: the salt must be exactly hLen.
                    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
                    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, Digest(alg)) != 1)) {
    return false;
  }
  return EVP_DigestVerify(md_ctx.get(), Bytes(sig), sig.size(), Bytes(data), data.size()) == 1;
}

// JWS carries ECDSA signatures as r||s, each left-padded to the curve size
// (RFC 7518 §3.4); OpenSSL speaks DER.
Result<std::string> DerToP1363(std::string_view der, int coord_size) {
  const unsigned char* p = Bytes(der);
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return Internal("sign: bad ECDSA signature from OpenSSL");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out = BnToBytes(r, coord_size) + BnToBytes(s, coord_size);
  if (out.size() != static_cast<size_t>(2 * coord_size)) return Internal("sign: ECDSA value too large");
  return out;
}

std::string P1363ToDer(std::string_view sig, int coord_size) {
  EcdsaSigPtr ecdsa(ECDSA_SIG_new());
  BnPtr r = BnFromBytes(sig.substr(0, coord_size));
  BnPtr s = BnFromBytes(sig.substr(coord_size));
  if (!ecdsa || !r || !s || ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) return {};
  r.release();  // now owned by ecdsa
  s.release();
  int size = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
  if (size <= 0) return {};
  std::string der(static_cast<size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(ecdsa.get(), &out) != size) return {};
  return der;
}

std::string Hmac(Alg alg, std::string_view key, std::string_view data) {
  std::string out(internal::HashSize(alg), '\0');
  unsigned int len = 0;
  if (HMAC(Digest(alg), key.data(), static_cast<int>(key.size()), Bytes(data), data.size(),
           reinterpret_cast<unsigned char*>(out.data()), &len) == nullptr ||
      len != out.size()) {
    return {};
  }
  return out;
}


Result<std::string> SignWith(const KeyData& key, Alg alg, std::string_view data) {
  if (!Permits(key, alg, Op::kSign)) {
    return InvalidArgument("sign: key does not allow " + std::string(AlgName(alg)) + " signing");
  }
  ErrorScope errors;
  if (IsHs(alg)) {
    std::string mac = Hmac(alg, key.secret, data);
    if (mac.empty()) return Internal("sign: HMAC failed");
    return mac;
  }
  ASSIGN_OR_RETURN(std::string sig, DigestSign(key.pkey.get(), alg, data));
  if (IsEs(alg)) return DerToP1363(sig, FindEcCurve(key.curve)->coord_size);
  return sig;
}

bool VerifyWith(const KeyData& key, Alg alg, std::string_view data, std::string_view sig) {
  if (!Permits(key, alg, Op::kVerify)) return false;
  ErrorScope errors;
  if (IsHs(alg)) {
    std::string mac = Hmac(alg, key.secret, data);
    return !mac.empty() && ConstantTimeEqual(mac, sig);
  }
  // Fixed sizes first: no truncated, padded or DER-wrapped signature is ever
  // handed to OpenSSL.
  if (IsEs(alg)) {
    int coord_size = FindEcCurve(key.curve)->coord_size;
    if (sig.size() != static_cast<size_t>(2 * coord_size)) return false;
    std::string der = P1363ToDer(sig, coord_size);
    return !der.empty() && DigestVerify(key.pkey.get(), alg, data, der);
  }
  if (alg == Alg::kEdDSA) {
    if (sig.size() != 64) return false;
  } else if (sig.size() != static_cast<size_t>(EVP_PKEY_get_size(key.pkey.get()))) {
    return false;  // RSA: exactly the modulus length
  }
  return DigestVerify(key.pkey.get(), alg, data, sig);
}

// ------------------------------------------------------------ validation ----

// Moduli from Infineon's flawed generator (ROCA, CVE-2017-15361) are
// factorable. Their fingerprint: n mod p lies in the subgroup generated by
// 65537 for every small prime p (false-positive rate about 2^-154).
bool HasRocaFingerprint(const BIGNUM* n) {
  static constexpr unsigned kPrimes[] = {3,  5,  7,   11,  13,  17,  19,  23,  29,  31,  37,  41,  43,
                                         47, 53, 59,  61,  67,  71,  73,  79,  83,  89,  97,  101, 103,
                                         107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167};
  for (unsigned p : kPrimes) {
    BN_ULONG r = BN_mod_word(n, p);
    if (r == static_cast<BN_ULONG>(-1)) return false;
    unsigned g = 65537 % p;
    unsigned x = 1;
    bool in_subgroup = false;
    do {
      if (x == r) {
        in_subgroup = true;
        break;
      }
      x = x * g % p;
    } while (x != 1);
    if (!in_subgroup) return false;
  }
  return true;
}

// A pairwise sign/verify: the private half must produce signatures that the
// public half accepts. Catches any private/public mismatch OpenSSL's own
// checks cannot see (RSA without CRT factors, Ed25519).
Status TestSignature(EVP_PKEY* pkey, Alg alg) {
  static constexpr std::string_view kProbe = "aigis key consistency probe";
  Result<std::string> sig = DigestSign(pkey, alg, kProbe);
  if (!sig.ok()) return InvalidArgument("key: private key cannot sign");
  std::string_view to_verify = *sig;
  if (!DigestVerify(pkey, alg, kProbe, to_verify)) {
    return InvalidArgument("key: private and public halves do not match");
  }
  return Status::Ok();
}

Status ValidateRsa(EVP_PKEY* pkey, bool has_private, bool has_factors) {
  int bits = EVP_PKEY_get_bits(pkey);
  if (bits < kMinRsaBits) return InvalidArgument("rsa: modulus under 2048 bits");
  if (bits > kMaxRsaBits) return InvalidArgument("rsa: modulus over 8192 bits");
  BIGNUM* n_raw = nullptr;
  BIGNUM* e_raw = nullptr;
  EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n_raw);
  EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e_raw);
  BnPtr n(n_raw);
  BnPtr e(e_raw);
  if (!n || !e) return InvalidArgument("rsa: missing n or e");
  if (!BN_is_odd(n.get())) return InvalidArgument("rsa: even modulus");
  // e = 1 makes the "signature" the padded message itself; even e is not a
  // valid RSA exponent. 3 is weak but legitimate.
  if (!BN_is_odd(e.get()) || BN_is_one(e.get()) || BN_num_bits(e.get()) > 64) {
    return InvalidArgument("rsa: bad public exponent");
  }
  if (HasRocaFingerprint(n.get())) return InvalidArgument("rsa: ROCA-vulnerable modulus");
  if (has_private) {
    if (has_factors) {
      PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
      if (!ctx || EVP_PKEY_pairwise_check(ctx.get()) != 1) {
        return InvalidArgument("rsa: inconsistent private key");
      }
    }
    RETURN_IF_ERROR(TestSignature(pkey, Alg::kRS256));
  }
  return Status::Ok();
}

Status ValidateEc(EVP_PKEY* pkey, bool has_private) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!ctx) return Internal("ec: no context");
  // The full public check: on the curve, not infinity, in the prime-order
  // subgroup. With the private half also the scalar range and d*G == Q.
  int ok = has_private ? EVP_PKEY_check(ctx.get()) : EVP_PKEY_public_check(ctx.get());
  if (ok != 1) return InvalidArgument("ec: invalid key (point not on curve or halves mismatch)");
  return Status::Ok();
}

// --------------------------------------------------------------- JWK in ----

// Decodes the base64url member `name`; nullopt if absent.
Result<std::optional<std::string>> B64Member(const boost::json::object& jwk, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<std::string> text, internal::OptionalString(jwk, name));
  if (!text) return std::optional<std::string>();
  Result<std::string> bytes = Base64UrlDecode(*text);
  if (!bytes.ok()) return InvalidArgument("jwk: \"" + std::string(name) + "\" is not base64url");
  return std::optional<std::string>(std::move(bytes).value());
}

Result<std::string> RequiredB64(const boost::json::object& jwk, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes, B64Member(jwk, name));
  if (!bytes) return InvalidArgument("jwk: missing \"" + std::string(name) + "\"");
  return std::move(*bytes);
}

Result<PkeyPtr> FromData(const char* type, OSSL_PARAM_BLD* bld, int selection) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, selection, params.get()) != 1 || pkey == nullptr) {
    return InvalidArgument(std::string("jwk: OpenSSL rejected the ") + type + " key");
  }
  return WrapPkey(pkey);
}

Status ImportRsa(const boost::json::object& jwk, KeyData& key) {
  ASSIGN_OR_RETURN(std::string n, RequiredB64(jwk, "n"));
  ASSIGN_OR_RETURN(std::string e, RequiredB64(jwk, "e"));
  ASSIGN_OR_RETURN(std::optional<std::string> d, B64Member(jwk, "d"));
  if (jwk.contains("oth")) return InvalidArgument("jwk: multi-prime RSA keys are not supported");
  static constexpr std::array<std::string_view, 5> kCrtNames = {"p", "q", "dp", "dq", "qi"};
  static constexpr std::array<const char*, 5> kCrtParams = {
      OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
      OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
  std::array<std::optional<std::string>, 5> crt;
  size_t crt_count = 0;
  for (size_t i = 0; i < kCrtNames.size(); ++i) {
    ASSIGN_OR_RETURN(crt[i], B64Member(jwk, kCrtNames[i]));
    crt_count += crt[i].has_value();
  }
  // RFC 7518 §6.3.2: the CRT members come all together, and only with "d".
  if (crt_count != 0 && (crt_count != kCrtNames.size() || !d)) {
    return InvalidArgument("jwk: incomplete RSA private key");
  }

  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  std::vector<BnPtr> bns;  // must outlive the param build
  auto push = [&](const char* name, std::string_view bytes) {
    bns.push_back(BnFromBytes(bytes));
    return bns.back() && OSSL_PARAM_BLD_push_BN(bld.get(), name, bns.back().get()) == 1;
  };
  bool ok = bld && push(OSSL_PKEY_PARAM_RSA_N, n) && push(OSSL_PKEY_PARAM_RSA_E, e);
  if (ok && d) ok = push(OSSL_PKEY_PARAM_RSA_D, *d);
  for (size_t i = 0; ok && i < crt.size() && crt_count > 0; ++i) ok = push(kCrtParams[i], *crt[i]);
  if (!ok) return Internal("jwk: out of memory");
  ASSIGN_OR_RETURN(key.pkey, FromData("RSA", bld.get(), d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY));
  key.type = KeyType::kRsa;
  key.has_private = d.has_value();
  return ValidateRsa(key.pkey.get(), key.has_private, crt_count > 0);
}

Status ImportEc(const boost::json::object& jwk, KeyData& key) {
  ASSIGN_OR_RETURN(std::optional<std::string> crv, internal::OptionalString(jwk, "crv"));
  if (!crv) return InvalidArgument("jwk: EC key without \"crv\"");
  const EcCurve* curve = nullptr;
  for (const auto& c : kEcCurves) {
    if (c.jwk_name == *crv) curve = &c;
  }
  if (curve == nullptr) return InvalidArgument("jwk: unsupported curve \"" + *crv + "\"");
  ASSIGN_OR_RETURN(std::string x, RequiredB64(jwk, "x"));
  ASSIGN_OR_RETURN(std::string y, RequiredB64(jwk, "y"));
  ASSIGN_OR_RETURN(std::optional<std::string> d, B64Member(jwk, "d"));
  // RFC 7518 §6.2.1.2/§6.2.2.1: full-length, left-padded values only.
  size_t size = static_cast<size_t>(curve->coord_size);
  if (x.size() != size || y.size() != size || (d && d->size() != size)) {
    return InvalidArgument("jwk: EC coordinate of the wrong length for " + *crv);
  }
  std::string point = "\x04" + x + y;  // SEC1 uncompressed

  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  BnPtr d_bn = d ? BnFromBytes(*d) : nullptr;
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve->group_name, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1 ||
      (d && (!d_bn || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d_bn.get()) != 1))) {
    return Internal("jwk: out of memory");
  }
  ASSIGN_OR_RETURN(key.pkey, FromData("EC", bld.get(), d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY));
  if (d_bn) BN_clear(d_bn.get());
  key.type = KeyType::kEc;
  key.curve = curve->curve;
  key.has_private = d.has_value();
  return ValidateEc(key.pkey.get(), key.has_private);
}

Status ImportOkp(const boost::json::object& jwk, KeyData& key) {
  ASSIGN_OR_RETURN(std::optional<std::string> crv, internal::OptionalString(jwk, "crv"));
  // Ed448 would be a valid "EdDSA" key too, but we only verify Ed25519; X25519
  // and X448 are key-agreement keys.
  if (!crv || *crv != "Ed25519") return InvalidArgument("jwk: unsupported OKP curve");
  ASSIGN_OR_RETURN(std::string x, RequiredB64(jwk, "x"));
  ASSIGN_OR_RETURN(std::optional<std::string> d, B64Member(jwk, "d"));
  if (x.size() != 32 || (d && d->size() != 32)) return InvalidArgument("jwk: Ed25519 key of the wrong length");
  EVP_PKEY* pkey = d ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, Bytes(*d), d->size())
                     : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(x), x.size());
  key.pkey = WrapPkey(pkey);
  if (d) OPENSSL_cleanse(d->data(), d->size());
  if (!key.pkey) return InvalidArgument("jwk: OpenSSL rejected the Ed25519 key");
  if (d) {
    // The public key is derived from the seed; "x" must be that key.
    std::string derived(32, '\0');
    size_t len = derived.size();
    if (EVP_PKEY_get_raw_public_key(key.pkey.get(), reinterpret_cast<unsigned char*>(derived.data()), &len) != 1 ||
        len != 32 || derived != x) {
      return InvalidArgument("jwk: Ed25519 \"x\" does not match \"d\"");
    }
  }
  key.type = KeyType::kOkp;
  key.curve = Curve::kEd25519;
  key.has_private = d.has_value();
  return Status::Ok();
}

Status ImportOct(const boost::json::object& jwk, KeyData& key) {
  ASSIGN_OR_RETURN(key.secret, RequiredB64(jwk, "k"));
  if (key.secret.size() < kMinHmacKeyBytes) return InvalidArgument("jwk: HMAC key shorter than 256 bits");
  key.type = KeyType::kOct;
  key.has_private = true;
  return Status::Ok();
}

Status ImportMetadata(const boost::json::object& jwk, KeyData& key) {
  ASSIGN_OR_RETURN(std::optional<std::string> kid, internal::OptionalString(jwk, "kid"));
  key.kid = kid.value_or("");
  ASSIGN_OR_RETURN(std::optional<std::string> alg, internal::OptionalString(jwk, "alg"));
  if (alg) {
    // A key meant for another algorithm ("RSA-OAEP", "A256KW", a typo such as
    // "ES521") is unusable here; failing loudly beats silently ignoring it.
    key.alg = ParseAlg(*alg);
    if (!key.alg) return InvalidArgument("jwk: unsupported alg \"" + *alg + "\"");
  }
  ASSIGN_OR_RETURN(key.use, internal::OptionalString(jwk, "use"));
  if (const boost::json::value* ops = jwk.if_contains("key_ops")) {
    if (!ops->is_array()) return InvalidArgument("jwk: \"key_ops\" must be an array");
    std::vector<std::string> list;
    for (const boost::json::value& op : ops->get_array()) {
      if (!op.is_string()) return InvalidArgument("jwk: \"key_ops\" must hold strings");
      std::string name(op.get_string().data(), op.get_string().size());
      // RFC 7517 §4.3: duplicate values MUST NOT be present.
      if (std::find(list.begin(), list.end(), name) != list.end()) {
        return InvalidArgument("jwk: duplicate \"key_ops\" value");
      }
      list.push_back(std::move(name));
    }
    key.key_ops = std::move(list);
  }
  return Status::Ok();
}

Result<KeyData> ImportJwk(const boost::json::object& jwk) {
  ErrorScope errors;
  KeyData key;
  RETURN_IF_ERROR(ImportMetadata(jwk, key));
  ASSIGN_OR_RETURN(std::optional<std::string> kty, internal::OptionalString(jwk, "kty"));
  if (!kty) return InvalidArgument("jwk: missing \"kty\"");
  if (*kty == "RSA") {
    RETURN_IF_ERROR(ImportRsa(jwk, key));
  } else if (*kty == "EC") {
    RETURN_IF_ERROR(ImportEc(jwk, key));
  } else if (*kty == "OKP") {
    RETURN_IF_ERROR(ImportOkp(jwk, key));
  } else if (*kty == "oct") {
    RETURN_IF_ERROR(ImportOct(jwk, key));
  } else {
    return InvalidArgument("jwk: unsupported kty \"" + *kty + "\"");
  }
  if (key.alg && !TypeFits(key, *key.alg)) {
    return InvalidArgument("jwk: alg " + std::string(AlgName(*key.alg)) + " does not fit the key");
  }
  return key;
}

// --------------------------------------------------------------- PEM in ----

int NoPassword(char*, int, int, void*) { return -1; }  // never prompt on a terminal

Result<KeyData> ImportPem(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) return InvalidArgument("pem: too large");
  ErrorScope errors;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Internal("pem: out of memory");
  KeyData key;
  bool is_private = pem.find("PRIVATE KEY-----") != std::string_view::npos;
  EVP_PKEY* pkey = is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr)
                              : PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassword, nullptr);
  key.pkey = WrapPkey(pkey);
  if (!key.pkey) return InvalidArgument("pem: not a PKCS#8 private key or SubjectPublicKeyInfo");
  key.has_private = is_private;

  if (EVP_PKEY_is_a(pkey, "RSA")) {
    key.type = KeyType::kRsa;
    RETURN_IF_ERROR(ValidateRsa(pkey, is_private, /*has_factors=*/is_private));
  } else if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len) != 1) {
      return InvalidArgument("pem: EC key without a named curve");
    }
    std::string_view name(group, len);
    for (const auto& c : kEcCurves) {
      if (name == c.group_name || name == c.jwk_name) key.curve = c.curve;
    }
    if (key.curve == Curve::kNone) return InvalidArgument("pem: unsupported curve " + std::string(name));
    key.type = KeyType::kEc;
    RETURN_IF_ERROR(ValidateEc(pkey, is_private));
  } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
    key.type = KeyType::kOkp;
    key.curve = Curve::kEd25519;
  } else {
    return InvalidArgument("pem: unsupported key type");
  }
  return key;
}

// -------------------------------------------------------------- JWK out ----

// The public members as (name, base64url value) pairs in lexicographic order,
// which is both our export order and RFC 7638's canonical order.
Result<std::vector<std::pair<std::string_view, std::string>>> PublicMembers(const KeyData& key) {
  ErrorScope errors;
  std::vector<std::pair<std::string_view, std::string>> members;
  switch (key.type) {
    case KeyType::kRsa: {
      BIGNUM* n = nullptr;
      BIGNUM* e = nullptr;
      EVP_PKEY_get_bn_param(key.pkey.get(), OSSL_PKEY_PARAM_RSA_N, &n);
      EVP_PKEY_get_bn_param(key.pkey.get(), OSSL_PKEY_PARAM_RSA_E, &e);
      BnPtr n_ptr(n), e_ptr(e);
      if (!n || !e) return Internal("jwk: cannot read RSA key");
      members = {{"e", Base64UrlEncode(BnToBytes(e))}, {"kty", "RSA"}, {"n", Base64UrlEncode(BnToBytes(n))}};
      break;
    }
    case KeyType::kEc: {
      const EcCurve* curve = FindEcCurve(key.curve);
      BIGNUM* x = nullptr;
      BIGNUM* y = nullptr;
      EVP_PKEY_get_bn_param(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x);
      EVP_PKEY_get_bn_param(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y);
      BnPtr x_ptr(x), y_ptr(y);
      if (!x || !y) return Internal("jwk: cannot read EC key");
      members = {{"crv", std::string(curve->jwk_name)},
                 {"kty", "EC"},
                 {"x", Base64UrlEncode(BnToBytes(x, curve->coord_size))},
                 {"y", Base64UrlEncode(BnToBytes(y, curve->coord_size))}};
      break;
    }
    case KeyType::kOkp: {
      std::string raw(32, '\0');
      size_t len = raw.size();
      if (EVP_PKEY_get_raw_public_key(key.pkey.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 ||
          len != 32) {
        return Internal("jwk: cannot read Ed25519 key");
      }
      members = {{"crv", "Ed25519"}, {"kty", "OKP"}, {"x", Base64UrlEncode(raw)}};
      break;
    }
    case KeyType::kOct:
      return InvalidArgument("jwk: an HMAC key has no public half");
  }
  return members;
}

}  // namespace

// ------------------------------------------------------------------- Key ----

struct Key::Rep : KeyData {
  explicit Rep(KeyData data) : KeyData(std::move(data)) {}
};

Key::Key() = default;
Key::~Key() = default;
Key::Key(const Key&) = default;
Key& Key::operator=(const Key&) = default;

Result<Key> Key::Generate(Alg alg) {
  ErrorScope errors;
  KeyData data;
  data.alg = alg;
  data.has_private = true;
  EVP_PKEY* pkey = nullptr;
  if (IsHs(alg)) {
    data.type = KeyType::kOct;
    data.secret = RandomBytes(internal::HashSize(alg));
  } else if (alg == Alg::kEdDSA) {
    data.type = KeyType::kOkp;
    data.curve = Curve::kEd25519;
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  } else if (IsEs(alg)) {
    data.type = KeyType::kEc;
    for (const auto& c : kEcCurves) {
      if (c.alg == alg) {
        data.curve = c.curve;
        pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", c.group_name);
      }
    }
  } else {
    data.type = KeyType::kRsa;
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(kMinRsaBits));
  }
  if (data.type != KeyType::kOct) {
    data.pkey = WrapPkey(pkey);
    if (!data.pkey) return Internal("generate: key generation failed");
  }
  Key key;
  key.rep_ = std::make_shared<const Rep>(std::move(data));
  return key;
}

Result<Key> Key::FromJwk(std::string_view json) {
  ASSIGN_OR_RETURN(boost::json::value value, internal::ParseStrictJson(json, kMaxJwkBytes));
  if (!value.is_object()) return InvalidArgument("jwk: not a JSON object");
  ASSIGN_OR_RETURN(KeyData data, ImportJwk(value.get_object()));
  Key key;
  key.rep_ = std::make_shared<const Rep>(std::move(data));
  return key;
}

Result<Key> Key::FromPem(std::string_view pem) {
  ASSIGN_OR_RETURN(KeyData data, ImportPem(pem));
  Key key;
  key.rep_ = std::make_shared<const Rep>(std::move(data));
  return key;
}

bool Key::empty() const { return rep_ == nullptr; }
KeyType Key::type() const { return rep_ ? rep_->type : KeyType::kOct; }
bool Key::has_private() const { return rep_ && rep_->has_private; }

bool Key::Allows(Alg alg) const {
  return rep_ && (Permits(*rep_, alg, Op::kVerify) || Permits(*rep_, alg, Op::kSign));
}

const std::string& Key::kid() const {
  static const std::string kEmpty;
  return rep_ ? rep_->kid : kEmpty;
}

Key Key::WithKid(std::string kid) const {
  if (!rep_) return *this;
  KeyData data = *rep_;
  data.kid = std::move(kid);
  Key key;
  key.rep_ = std::make_shared<const Rep>(std::move(data));
  return key;
}

std::optional<Alg> Key::alg() const { return rep_ ? rep_->alg : std::nullopt; }

Result<std::string> Key::PublicJwk() const {
  if (!rep_) return InvalidArgument("jwk: empty key");
  ASSIGN_OR_RETURN(auto members, PublicMembers(*rep_));
  boost::json::object jwk;
  jwk["kty"] = "";  // kty first, for readers; the value is set from members
  for (const auto& [name, value] : members) jwk[boost::json::string_view(name.data(), name.size())] = value;
  if (!rep_->kid.empty()) jwk["kid"] = rep_->kid;
  if (rep_->alg) jwk["alg"] = AlgName(*rep_->alg);
  jwk["use"] = "sig";
  return boost::json::serialize(jwk);
}

Result<std::string> Key::PrivatePem() const {
  if (!rep_ || !rep_->pkey || !rep_->has_private) return InvalidArgument("pem: no private key");
  ErrorScope errors;
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), rep_->pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("pem: encoding failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<std::string> Key::PublicPem() const {
  if (!rep_ || !rep_->pkey) return InvalidArgument("pem: no public key");
  ErrorScope errors;
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), rep_->pkey.get()) != 1) return Internal("pem: encoding failed");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<std::string> Key::Thumbprint() const {
  if (!rep_) return InvalidArgument("jwk: empty key");
  std::vector<std::pair<std::string_view, std::string>> members;
  if (rep_->type == KeyType::kOct) {
    members = {{"k", Base64UrlEncode(rep_->secret)}, {"kty", "oct"}};
  } else {
    ASSIGN_OR_RETURN(members, PublicMembers(*rep_));
  }
  // RFC 7638 §3: required members only, sorted, no whitespace. The values are
  // base64url or fixed names, so no JSON escaping is needed.
  std::string canonical = "{";
  for (const auto& [name, value] : members) {
    if (canonical.size() > 1) canonical.push_back(',');
    canonical += fmt::format("\"{}\":\"{}\"", name, value);
  }
  canonical.push_back('}');
  return Base64UrlEncode(Sha256(canonical));
}

Result<std::string> Key::Sign(Alg alg, std::string_view data) const {
  if (!rep_) return InvalidArgument("sign: empty key");
  return SignWith(*rep_, alg, data);
}

bool Key::Verify(Alg alg, std::string_view data, std::string_view signature) const {
  return rep_ && VerifyWith(*rep_, alg, data, signature);
}

// ------------------------------------------------------------------ JWKS ----

Result<std::vector<Key>> ParseJwks(std::string_view json) {
  ASSIGN_OR_RETURN(boost::json::value doc, internal::ParseStrictJson(json, kMaxJwksBytes));
  const boost::json::object* obj = doc.if_object();
  if (obj == nullptr) return InvalidArgument("jwks: not a JSON object");
  const boost::json::value* keys = obj->if_contains("keys");
  if (keys == nullptr || !keys->is_array()) return InvalidArgument("jwks: no \"keys\" array");
  if (keys->get_array().size() > kMaxJwksKeys) return InvalidArgument("jwks: too many keys");
  std::vector<Key> out;
  for (const boost::json::value& member : keys->get_array()) {
    if (!member.is_object()) continue;
    // Re-serializing a member already checked by the strict parser is cheap
    // and keeps one import path.
    Result<Key> key = Key::FromJwk(boost::json::serialize(member));
    if (!key.ok()) continue;
    bool usable = std::any_of(kAllAlgs.begin(), kAllAlgs.end(), [&](Alg a) { return key->Allows(a); });
    if (usable) out.push_back(std::move(key).value());
  }
  return out;
}

std::string JwksJson(const std::vector<Key>& keys) {
  std::string out = "{\"keys\":[";
  bool first = true;
  for (const Key& key : keys) {
    Result<std::string> jwk = key.PublicJwk();
    if (!jwk.ok()) continue;  // HMAC keys have no public half to publish
    if (!first) out.push_back(',');
    out += *jwk;
    first = false;
  }
  out += "]}";
  return out;
}

}  // namespace aigis::crypto

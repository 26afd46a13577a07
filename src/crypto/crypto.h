// crypto: the one wrapper around OpenSSL for the rest of aigis.
//
// * Bytes: CSPRNG, SHA-256, HMAC, constant-time compare, base64/base64url
//   (strict decoding: no padding, no foreign characters, canonical bits).
// * Sealing: AES-256-GCM with associated data, for secrets at rest (signing
//   keys under the master key).
// * Keys: Ed25519, ECDSA P-256/384/521, RSA (>= 2048 bits) and HMAC keys,
//   imported from and exported to JWK (RFC 7517/7518/8037) and PEM; JWK
//   thumbprints (RFC 7638).
// * JWS compact serialization (RFC 7515) signing and verification, with the
//   rules a gateway needs: "none" is never accepted, a key signs/verifies
//   only with algorithms of its own type (no HS256-with-an-RSA-public-key
//   confusion), a JWK's own "alg", "use" and "key_ops" are honoured, and
//   unknown "crit" extensions are rejected.
//
// No OpenSSL type appears here. Key is immutable and cheap to copy (shared
// handle); every function is thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace aigis::crypto {

// ---------------------------------------------------------------- bytes ----

// `n` bytes from the OS-seeded CSPRNG (RAND_bytes). Aborts the process if the
// generator fails: nothing secure can continue without randomness.
std::string RandomBytes(size_t n);
std::string Sha256(std::string_view data);                          // 32 bytes
// SHA-256 of the concatenation of `parts`, without copying them; fast for
// many small inputs (Merkle trees): the digest is fetched once per process.
std::string Sha256Concat(std::initializer_list<std::string_view> parts);
// The same into `out` (32 bytes), with no allocation.
void Sha256ConcatTo(std::initializer_list<std::string_view> parts, char* out);
std::string HmacSha256(std::string_view key, std::string_view data);  // 32 bytes
// SHA-256 over data that arrives in pieces (a streamed response).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(std::string_view data);
  std::string Final();  // 32 bytes; the hasher starts over
  bool empty() const { return bytes_ == 0; }

 private:
  void* ctx_;  // EVP_MD_CTX
  uint64_t bytes_ = 0;
};

// Compares in time that depends only on the lengths.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

std::string Base64UrlEncode(std::string_view bytes);  // no padding
// Rejects '=', characters outside [A-Za-z0-9_-], a length of 1 mod 4 and
// non-zero unused trailing bits (so every value has one encoding).
Result<std::string> Base64UrlDecode(std::string_view text);
std::string Base64Encode(std::string_view bytes);  // standard alphabet, padded
Result<std::string> Base64Decode(std::string_view text);  // padding required
std::string HexEncode(std::string_view bytes);  // lower case

// AES-256-GCM. `key` must be 32 bytes. Output: 12-byte nonce || ciphertext ||
// 16-byte tag. Open fails (kInvalidArgument) if anything was altered,
// including the associated data.
Result<std::string> Seal(std::string_view key, std::string_view plaintext, std::string_view aad);
Result<std::string> Open(std::string_view key, std::string_view sealed, std::string_view aad);

// ----------------------------------------------------------------- keys ----

enum class Alg : uint8_t {
  kEdDSA,
  kES256, kES384, kES512,
  kRS256, kRS384, kRS512,
  kPS256, kPS384, kPS512,
  kHS256, kHS384, kHS512,
};
// JWS "alg" names; nullopt for anything else, including "none".
std::optional<Alg> ParseAlg(std::string_view name);
std::string_view AlgName(Alg alg);

enum class KeyType : uint8_t { kOkp, kEc, kRsa, kOct };

class Key {
 public:
  Key();  // empty: signs and verifies nothing
  ~Key();
  Key(const Key&);
  Key& operator=(const Key&);

  // A fresh private key for `alg`: Ed25519, the algorithm's EC curve, RSA
  // 2048 (RS*/PS*) or an HMAC secret as long as the hash (HS*; RFC 7518
  // §3.2). The key is pinned to `alg` (alg() == alg, exported in its JWK).
  static Result<Key> Generate(Alg alg);
  // One JWK (JSON object text). Public or private; "oct" needs "k". RSA
  // moduli under 2048 bits, unknown curves and inconsistent members are
  // rejected, as are an "alg" we do not implement or that does not fit the
  // key, and HMAC secrets under 256 bits. Keeps "kid", "alg", "use" and
  // "key_ops".
  static Result<Key> FromJwk(std::string_view json);
  // PKCS#8 private key or SubjectPublicKeyInfo public key, PEM.
  static Result<Key> FromPem(std::string_view pem);

  bool empty() const;
  KeyType type() const;
  bool has_private() const;
  // True if this key may be used with `alg`: the type and curve match (HMAC:
  // the secret is at least as long as the hash), and the JWK's own
  // alg/use/key_ops (if any) allow signing or verifying with it. Sign and
  // Verify check the same rules for their own operation ("sign"/"verify").
  bool Allows(Alg alg) const;

  const std::string& kid() const;
  Key WithKid(std::string kid) const;
  std::optional<Alg> alg() const;  // the JWK's "alg" member, if any

  // Public JWK (JSON object text) with kid, alg (if set) and "use":"sig".
  // Fails for "oct" keys, which have no public half.
  Result<std::string> PublicJwk() const;
  Result<std::string> PrivatePem() const;  // PKCS#8
  Result<std::string> PublicPem() const;   // SPKI
  // RFC 7638 thumbprint: base64url(SHA-256(canonical required members)).
  Result<std::string> Thumbprint() const;

  // JWS signature over `data` (ES* signatures in the fixed r||s form).
  Result<std::string> Sign(Alg alg, std::string_view data) const;
  // False on any mismatch: wrong type for `alg`, bad length, bad signature.
  bool Verify(Alg alg, std::string_view data, std::string_view signature) const;

 private:
  struct Rep;
  std::shared_ptr<const Rep> rep_;
};

// A JWK Set (RFC 7517 §5). Members that are not usable signature keys
// (unknown kty, "use":"enc", RSA < 2048 bits) are skipped, not fatal; a
// document that is not a JSON object with a "keys" array is an error.
Result<std::vector<Key>> ParseJwks(std::string_view json);
// {"keys":[...]} of the public halves ("oct" keys, having none, are left out).
std::string JwksJson(const std::vector<Key>& keys);

// ------------------------------------------------------------------ JWS ----

struct Jws {
  Alg alg = Alg::kEdDSA;
  std::string kid;          // "" if absent
  std::string typ;          // "" if absent
  std::string header_json;  // decoded protected header
  std::string payload;      // decoded payload
  std::string signing_input;  // ASCII(BASE64URL(header) . BASE64URL(payload))
  std::string signature;      // decoded signature bytes
};

// Limits applied before any decoding.
inline constexpr size_t kMaxJwsBytes = 16 * 1024;

// Parses a compact JWS: three base64url parts, a JSON object header with a
// supported "alg" (never "none"), no unknown "crit" member, no "b64":false.
// Does not verify the signature.
Result<Jws> ParseCompact(std::string_view token);
// True if `key` allows `jws.alg` and the signature verifies.
bool VerifyJws(const Jws& jws, const Key& key);
// header = {"alg":..,"kid":key.kid() (if any),"typ":typ (if not empty)}.
Result<std::string> SignCompact(const Key& key, Alg alg, std::string_view typ, std::string_view payload);

}  // namespace aigis::crypto

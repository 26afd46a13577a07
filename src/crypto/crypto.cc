// Bytes: randomness, hashes, encodings, AES-GCM sealing, and the strict JSON
// reader shared by the JOSE code.
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "crypto/crypto.h"
#include "crypto/internal.h"

namespace aigis::crypto {
namespace {

constexpr size_t kGcmKeySize = 32;
constexpr size_t kGcmNonceSize = 12;
constexpr size_t kGcmTagSize = 16;

constexpr char kBase64Std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Reverse lookup table: 0..63 for alphabet characters, -1 otherwise.
using DecodeTable = std::array<int8_t, 256>;
constexpr DecodeTable MakeDecodeTable(const char* alphabet) {
  DecodeTable table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr DecodeTable kStdTable = MakeDecodeTable(kBase64Std);
constexpr DecodeTable kUrlTable = MakeDecodeTable(kBase64Url);

std::string Encode(std::string_view bytes, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* in = Bytes(bytes);
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = uint32_t{in[i]} << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    if (pad) out.push_back('=');
  }
  return out;
}

// Decodes unpadded text. Rejects foreign characters, a length of 1 mod 4 and
// non-zero unused bits in the last character, so that every byte string has
// exactly one accepted encoding (no malleable tokens).
Result<std::string> DecodeUnpadded(std::string_view text, const DecodeTable& table) {
  if (text.size() % 4 == 1) return InvalidArgument("base64: impossible length");
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = table[static_cast<unsigned char>(c)];
    if (v < 0) return InvalidArgument("base64: invalid character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // 2 or 4 bits are left over after 2 or 3 trailing characters; they must be 0.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return InvalidArgument("base64: non-zero trailing bits");
  }
  return out;
}

// Records the member names of every open object and fails on a repeat. Used
// as a first pass: boost::json::parse silently keeps the last duplicate.
class DuplicateKeyCheck {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  bool duplicate_found() const { return duplicate_found_; }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    open_objects_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    open_objects_.pop_back();
    return true;
  }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
    key_.append(s.data(), s.size());
    bool inserted = open_objects_.back().insert(std::move(key_)).second;
    key_.clear();
    if (!inserted) {
      duplicate_found_ = true;
      ec = boost::json::error::syntax;  // any error stops the parser
      return false;
    }
    return true;
  }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(int64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(uint64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

 private:
  std::vector<std::unordered_set<std::string>> open_objects_;
  std::string key_;
  bool duplicate_found_ = false;
};

}  // namespace

// ---------------------------------------------------------------- bytes ----

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fputs("aigis: RAND_bytes failed; aborting\n", stderr);
    std::abort();
  }
  return out;
}

// OpenSSL 3 looks an algorithm up by name on every call that names it
// through EVP_sha256() or HMAC() (an implicit fetch, a lock and a hash-table
// probe); fetching once is several times faster for the short inputs that
// dominate here (leaf hashes, credential hashes).
const EVP_MD* FetchedSha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (md == nullptr) std::abort();  // no default provider: nothing can work
  return md;
}

void Sha256ConcatTo(std::initializer_list<std::string_view> parts, char* out) {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned int len = 0;
  bool ok = ctx != nullptr && EVP_DigestInit_ex2(ctx.get(), FetchedSha256(), nullptr) == 1;
  for (std::string_view p : parts) ok = ok && EVP_DigestUpdate(ctx.get(), p.data(), p.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out), &len) == 1 && len == 32;
  if (!ok) std::abort();  // only fails on allocation failure
}

std::string Sha256(std::string_view data) {
  std::string out(32, '\0');
  Sha256ConcatTo({data}, out.data());
  return out;
}

std::string Sha256Concat(std::initializer_list<std::string_view> parts) {
  std::string out(32, '\0');
  Sha256ConcatTo(parts, out.data());
  return out;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex2(static_cast<EVP_MD_CTX*>(ctx_), FetchedSha256(), nullptr) != 1) std::abort();
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256Hasher::Update(std::string_view data) {
  bytes_ += data.size();
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) != 1) std::abort();
}

std::string Sha256Hasher::Final() {
  std::string out(32, '\0');
  unsigned int len = 0;
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  if (EVP_DigestFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 || len != 32 ||
      EVP_DigestInit_ex2(ctx, FetchedSha256(), nullptr) != 1) {
    std::abort();
  }
  bytes_ = 0;
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  // One HMAC context per thread, its digest set once (see FetchedSha256);
  // EVP_MAC_init with a key starts it over with that key.
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  thread_local std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx = [] {
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> c(mac ? EVP_MAC_CTX_new(mac) : nullptr, &EVP_MAC_CTX_free);
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (c != nullptr && EVP_MAC_CTX_set_params(c.get(), params) != 1) c.reset();
    return c;
  }();
  std::string out(32, '\0');
  size_t len = 0;
  // A null key means "the previous key" to EVP_MAC_init; string_view may hold one.
  static const unsigned char kEmpty = 0;
  const unsigned char* key_bytes = key.empty() ? &kEmpty : Bytes(key);
  if (ctx == nullptr || EVP_MAC_init(ctx.get(), key_bytes, key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx.get(), Bytes(data), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) != 1 || len != 32) {
    std::abort();  // only fails on allocation failure
  }
  return out;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Base64UrlEncode(std::string_view bytes) { return Encode(bytes, kBase64Url, false); }

Result<std::string> Base64UrlDecode(std::string_view text) { return DecodeUnpadded(text, kUrlTable); }

std::string Base64Encode(std::string_view bytes) { return Encode(bytes, kBase64Std, true); }

Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return InvalidArgument("base64: length is not a multiple of 4");
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  // A third '=' (or one in the middle) fails as an invalid character below.
  return DecodeUnpadded(text.substr(0, text.size() - pad), kStdTable);
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// -------------------------------------------------------------- sealing ----

Result<std::string> Seal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  if (key.size() != kGcmKeySize) return InvalidArgument("seal: key must be 32 bytes");
  if (plaintext.size() > (size_t{1} << 30)) return InvalidArgument("seal: plaintext too large");
  std::string out = RandomBytes(kGcmNonceSize);
  out.resize(kGcmNonceSize + plaintext.size() + kGcmTagSize);
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  auto* ciphertext = nonce + kGcmNonceSize;

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key), nonce) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1) ||
      (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ciphertext, &len, Bytes(plaintext),
                                               static_cast<int>(plaintext.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), ciphertext + plaintext.size(), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagSize, ciphertext + plaintext.size()) != 1) {
    return Internal("seal: AES-GCM encryption failed");
  }
  return out;
}

Result<std::string> Open(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (key.size() != kGcmKeySize) return InvalidArgument("open: key must be 32 bytes");
  if (sealed.size() < kGcmNonceSize + kGcmTagSize) return InvalidArgument("open: input too short");
  size_t text_size = sealed.size() - kGcmNonceSize - kGcmTagSize;
  std::string_view nonce = sealed.substr(0, kGcmNonceSize);
  std::string_view ciphertext = sealed.substr(kGcmNonceSize, text_size);
  std::string tag(sealed.substr(kGcmNonceSize + text_size));
  std::string plaintext(text_size, '\0');

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key), Bytes(nonce)) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1) ||
      (text_size > 0 &&
       EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()), &len, Bytes(ciphertext),
                         static_cast<int>(text_size)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize, tag.data()) != 1) {
    return Internal("open: AES-GCM setup failed");
  }
  // The tag is checked here; nothing decrypted is returned unless it matches.
  if (EVP_DecryptFinal_ex(ctx.get(), nullptr, &len) != 1) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return InvalidArgument("open: authentication failed");
  }
  return plaintext;
}

// ------------------------------------------------------------- internal ----

namespace internal {

Result<boost::json::value> ParseStrictJson(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) return InvalidArgument("json: document too large");
  boost::json::parse_options options;
  options.max_depth = kMaxJsonDepth;  // comments, trailing commas, invalid UTF-8: all off by default

  boost::json::basic_parser<DuplicateKeyCheck> checker(options);
  boost::system::error_code ec;
  checker.write_some(false, text.data(), text.size(), ec);
  if (checker.handler().duplicate_found()) return InvalidArgument("json: duplicate member name");
  if (ec) return InvalidArgument("json: " + ec.message());

  boost::json::value value = boost::json::parse(boost::json::string_view(text.data(), text.size()), ec,
                                                boost::json::storage_ptr(), options);
  if (ec) return InvalidArgument("json: " + ec.message());
  return value;
}

Result<std::optional<std::string>> OptionalString(const boost::json::object& obj, std::string_view name) {
  const boost::json::value* v = obj.if_contains(boost::json::string_view(name.data(), name.size()));
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return InvalidArgument(fmt::format("\"{}\" must be a string", name));
  const boost::json::string& s = v->get_string();
  return std::optional<std::string>(std::string(s.data(), s.size()));
}

}  // namespace internal
}  // namespace aigis::crypto

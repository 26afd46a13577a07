// Checkpoints as C2SP signed notes (c2sp.org/signed-note,
// c2sp.org/tlog-checkpoint), signed with Ed25519.
#include <boost/json.hpp>
#include <fmt/format.h>

#include <charconv>

#include "audit/audit.h"
#include "crypto/crypto.h"

namespace aigis::audit {

namespace {

constexpr std::string_view kDash = "\xE2\x80\x94 ";  // "— " (U+2014, then a space)
constexpr char kEd25519Type = 0x01;

uint32_t KeyId(std::string_view name, std::string_view public_key) {
  std::string h = crypto::Sha256Concat({name, "\n", std::string_view(&kEd25519Type, 1), public_key});
  return (static_cast<uint32_t>(static_cast<unsigned char>(h[0])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(h[1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(h[2])) << 8) | static_cast<unsigned char>(h[3]);
}

std::string IdBytes(uint32_t id) {
  return {static_cast<char>(id >> 24), static_cast<char>(id >> 16), static_cast<char>(id >> 8), static_cast<char>(id)};
}

// A key name: non-empty, no spaces, no '+', printable (signed-note).
bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || c == '+' || u == 0x7F) return false;
  }
  return true;
}

Result<crypto::Key> PublicKey(std::string_view raw) {
  return crypto::Key::FromJwk(fmt::format(R"({{"kty":"OKP","crv":"Ed25519","x":"{}"}})", crypto::Base64UrlEncode(raw)));
}

VerifierKey MakeVerifierKey(std::string name, std::string public_key) {
  VerifierKey k;
  k.id = KeyId(name, public_key);
  k.text = fmt::format("{}+{:08x}+{}", name, k.id, crypto::Base64Encode(std::string(1, kEd25519Type) + public_key));
  k.name = std::move(name);
  k.public_key = std::move(public_key);
  return k;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// The note's text (through its last newline) and its signature lines.
Result<std::pair<std::string_view, std::vector<std::string_view>>> SplitNote(std::string_view note) {
  size_t blank = note.find("\n\n");
  if (blank == std::string_view::npos) return InvalidArgument("note: no blank line before the signatures");
  std::string_view text = note.substr(0, blank + 1);
  std::string_view rest = note.substr(blank + 2);
  std::vector<std::string_view> sigs;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return InvalidArgument("note: a signature line does not end in a newline");
    sigs.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  if (sigs.empty()) return InvalidArgument("note: no signature");
  return std::make_pair(text, sigs);
}

}  // namespace

Result<VerifierKey> ParseVerifierKey(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  size_t p1 = text.find('+');
  size_t p2 = p1 == std::string_view::npos ? p1 : text.find('+', p1 + 1);
  if (p2 == std::string_view::npos) return InvalidArgument("verifier key: expected <name>+<key id>+<key>");
  std::string name(text.substr(0, p1));
  std::string_view id_hex = text.substr(p1 + 1, p2 - p1 - 1);
  if (!ValidName(name)) return InvalidArgument("verifier key: bad key name");
  uint32_t id = 0;
  auto [end, ec] = std::from_chars(id_hex.data(), id_hex.data() + id_hex.size(), id, 16);
  if (id_hex.size() != 8 || ec != std::errc() || end != id_hex.data() + id_hex.size()) {
    return InvalidArgument("verifier key: the key id is not 8 hex digits");
  }
  auto raw = crypto::Base64Decode(text.substr(p2 + 1));
  if (!raw.ok() || raw->size() != 33 || (*raw)[0] != kEd25519Type) {
    return InvalidArgument("verifier key: not an Ed25519 key (base64 of 0x01 and 32 bytes)");
  }
  VerifierKey k = MakeVerifierKey(name, raw->substr(1));
  if (k.id != id) return InvalidArgument("verifier key: the key id does not match the name and key");
  return k;
}

Result<Checkpoint> ParseCheckpoint(std::string_view note) {
  ASSIGN_OR_RETURN(auto parts, SplitNote(note));
  std::string_view text = parts.first;
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < text.size();) {
    size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  if (lines.size() < 3) return InvalidArgument("checkpoint: expected origin, size and root lines");
  Checkpoint c;
  c.origin = std::string(lines[0]);
  if (c.origin.empty()) return InvalidArgument("checkpoint: empty origin");
  if (!ParseU64(lines[1], &c.size)) return InvalidArgument("checkpoint: the size is not a decimal number");
  auto root = crypto::Base64Decode(lines[2]);
  if (!root.ok() || root->size() != kHashSize) return InvalidArgument("checkpoint: the root is not base64 of 32 bytes");
  c.root = std::move(root).value();
  c.note = std::string(note);
  return c;
}

Status VerifyNote(std::string_view note, const std::vector<VerifierKey>& keys) {
  ASSIGN_OR_RETURN(auto parts, SplitNote(note));
  auto [text, sigs] = parts;
  bool verified = false;
  for (std::string_view line : sigs) {
    if (line.substr(0, kDash.size()) != kDash) return InvalidArgument("note: a signature line does not start with \"— \"");
    line.remove_prefix(kDash.size());
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return InvalidArgument("note: a signature line has no signature");
    std::string_view name = line.substr(0, sp);
    auto sig = crypto::Base64Decode(line.substr(sp + 1));
    if (!sig.ok() || sig->size() < 5) return InvalidArgument("note: a signature is not base64 of a key id and signature");
    uint32_t id = (static_cast<uint32_t>(static_cast<unsigned char>((*sig)[0])) << 24) |
                  (static_cast<uint32_t>(static_cast<unsigned char>((*sig)[1])) << 16) |
                  (static_cast<uint32_t>(static_cast<unsigned char>((*sig)[2])) << 8) |
                  static_cast<unsigned char>((*sig)[3]);
    for (const auto& k : keys) {
      if (k.name != name || k.id != id) continue;
      auto pub = PublicKey(k.public_key);
      if (!pub.ok() || !pub->Verify(crypto::Alg::kEdDSA, text, std::string_view(*sig).substr(4))) {
        return InvalidArgument(fmt::format("note: the signature by {}+{:08x} does not verify", name, id));
      }
      verified = true;
    }
  }
  if (!verified) return InvalidArgument("note: no signature by a known key");
  return Status::Ok();
}

struct Signer::Rep {
  crypto::Key key;
  VerifierKey verifier;
};

Signer::Signer() = default;
Signer::~Signer() = default;
Signer::Signer(const Signer&) = default;
Signer& Signer::operator=(const Signer&) = default;

Result<Signer> Signer::Generate(std::string name) {
  ASSIGN_OR_RETURN(crypto::Key key, crypto::Key::Generate(crypto::Alg::kEdDSA));
  ASSIGN_OR_RETURN(std::string pem, key.PrivatePem());
  return FromPem(std::move(name), pem);
}

Result<Signer> Signer::FromPem(std::string name, std::string_view pem) {
  if (!ValidName(name)) return InvalidArgument(fmt::format("signer: bad key name \"{}\"", name));
  ASSIGN_OR_RETURN(crypto::Key key, crypto::Key::FromPem(pem));
  if (key.type() != crypto::KeyType::kOkp || !key.has_private() || !key.Allows(crypto::Alg::kEdDSA)) {
    return InvalidArgument("signer: not an Ed25519 private key");
  }
  ASSIGN_OR_RETURN(std::string jwk, key.PublicJwk());
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(jwk, ec);
  const boost::json::string* x = ec ? nullptr : v.as_object().if_contains("x") ? v.as_object().at("x").if_string() : nullptr;
  if (x == nullptr) return Internal("signer: the public key has no x");
  ASSIGN_OR_RETURN(std::string raw, crypto::Base64UrlDecode(std::string_view(x->data(), x->size())));
  auto rep = std::make_shared<Rep>();
  rep->key = std::move(key);
  rep->verifier = MakeVerifierKey(std::move(name), std::move(raw));
  Signer s;
  s.rep_ = std::move(rep);
  return s;
}

const std::string& Signer::name() const { return rep_->verifier.name; }
const VerifierKey& Signer::verifier() const { return rep_->verifier; }
Result<std::string> Signer::PrivatePem() const { return rep_->key.PrivatePem(); }

Result<std::string> Signer::Sign(std::string_view body) const {
  if (body.empty() || body.back() != '\n' || body.find("\n\n") != std::string_view::npos) {
    return InvalidArgument("note: the text must end in a newline and have no blank line");
  }
  ASSIGN_OR_RETURN(std::string sig, rep_->key.Sign(crypto::Alg::kEdDSA, body));
  return fmt::format("{}\n{}{} {}\n", body, kDash, rep_->verifier.name,
                     crypto::Base64Encode(IdBytes(rep_->verifier.id) + sig));
}

}  // namespace aigis::audit

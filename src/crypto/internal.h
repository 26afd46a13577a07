// Private to src/crypto: helpers shared by crypto.cc, keys.cc and jose.cc.
// Nothing outside this folder includes this file.
#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/core.h"
#include "crypto/crypto.h"

namespace aigis::crypto::internal {

// Nesting limit for every JSON document we parse (JWS headers, JWKs, JWK
// Sets). Real documents nest two or three levels.
inline constexpr size_t kMaxJsonDepth = 16;

// Parses one JSON document of at most `max_bytes`, with bounded depth, valid
// UTF-8 only, and no duplicate member names in any object (RFC 7515 §5.2
// requires rejecting them in a JWS header; elsewhere they are equally
// ambiguous: two parsers could disagree on which value wins).
Result<boost::json::value> ParseStrictJson(std::string_view text, size_t max_bytes);

// The member `name` of `obj` if it is a string; nullopt if absent. An error if
// present with another type.
Result<std::optional<std::string>> OptionalString(const boost::json::object& obj,
                                                  std::string_view name);

// SHA-2 output size in bytes for the hash an algorithm uses (EdDSA: 0).
size_t HashSize(Alg alg);

}  // namespace aigis::crypto::internal

// Internal to net: shared by server.cc and net.cc (client). Not a public header.
#pragma once

#include "net/pch.h"
#include "net/net.h"

#include <optional>

namespace aigis::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
inline constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// HTTP/1.1 message heads written by hand: Beast's serializer (a variant of
// buffer sequences per message) was ~12 us of the ~26 us of user time aigis
// spent per proxied request; appending to one string and sending it with the
// body in a single gather write is a fraction of that. Parsing stays Beast's.
//
// Framing headers (Content-Length, Transfer-Encoding, Connection) in
// `headers` are dropped: the framing is decided here. A header whose name is
// not a token or whose value holds CR, LF or NUL is dropped too (no header
// injection, whatever an upstream or a stage produced).
void AppendHeaders(std::string& out, const Headers& headers);
std::string ResponseHead(int status, const Headers& headers, bool keep_alive,
                         std::optional<uint64_t> content_length /* nullopt = chunked */);
std::string RequestHead(std::string_view method, std::string_view target, std::string_view host,
                        const Headers& headers, uint64_t content_length);

}  // namespace aigis::net

// Internal to net: shared by server.cc and net.cc (client). Not a public header.
#pragma once

#include "net/pch.h"
#include "net/net.h"

#include <algorithm>
#include <optional>
#include <type_traits>

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

// Completing at once, without the event loop. Asio never runs a completion
// handler inside the call that starts the operation: a write that the
// socket takes whole, or a read whose bytes are already buffered, is posted
// and runs on the loop's next turn — after an epoll_wait with a zero
// timeout, since the loop polls for events whenever handlers are queued.
// On a proxied request that was five extra turns, a system call each (and
// on a VM each system call is costly). These helpers first try what needs
// no waiting; the caller awaits the asynchronous operation only for the rest.
// Plain TCP only: TLS streams keep the asynchronous path throughout.

template <typename Stream>
inline constexpr bool kPlain = std::is_same_v<Stream, beast::tcp_stream>;

// Sends what the socket takes now (it is put in non-blocking mode: this
// never waits) and returns the bytes sent. would_block is not an error.
template <typename Buffers>
size_t SendNow(tcp::socket& sock, const Buffers& buffers, beast::error_code& ec) {
  if (!sock.non_blocking()) sock.non_blocking(true, ec);
  beast::buffers_suffix<Buffers> rest(buffers);
  size_t sent = 0;
  while (!ec && beast::buffer_bytes(rest) > 0) {
    size_t n = sock.send(rest, 0, ec);
    rest.consume(n);
    sent += n;
  }
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  return sent;
}

// Writes `buffers` whole: at once when the socket takes them (the usual case
// for a message that fits its send buffer), the rest with async_write under
// the stream's timeout.
template <typename Stream, typename Buffers>
Task<beast::error_code> WriteAll(Stream& s, const Buffers& buffers) {
  size_t sent = 0;
  if constexpr (kPlain<Stream>) {
    beast::error_code ec;
    sent = SendNow(s.socket(), buffers, ec);
    if (ec || sent == beast::buffer_bytes(buffers)) co_return ec;
  }
  beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(sent);
  auto [ec, n] = co_await asio::async_write(s, rest, kTuple);
  co_return ec;
}

// Parses what `buffer` already holds, as http::async_read(_header) would but
// without I/O. True when that reached the goal (the header, or the whole
// message) or ended in an error (in `ec`; need_buffer included: the body
// buffer of a buffer_body is full). False: more bytes are needed.
template <bool isRequest, typename Body>
bool ParseBuffered(http::parser<isRequest, Body>& p, beast::flat_buffer& buffer, bool header_only,
                   beast::error_code& ec) {
  while (buffer.size() > 0) {
    size_t used = p.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      return false;
    }
    if (ec || (header_only ? p.is_header_done() : p.is_done())) return true;
    if (used == 0) return false;
  }
  return header_only ? p.is_header_done() : p.is_done();
}

// Reads what the socket holds now into `buffer` (never waits). Errors and
// EOF are left to the asynchronous read that follows, which meets them
// again and reports them as Beast does.
inline void ReadNow(tcp::socket& sock, beast::flat_buffer& buffer) {
  beast::error_code ec;
  if (!sock.non_blocking()) sock.non_blocking(true, ec);
  size_t room = beast::read_size(buffer, 64 * 1024);  // as Beast's reads size theirs
  if (ec || room == 0) return;
  size_t n = sock.receive(buffer.prepare(room), 0, ec);
  buffer.commit(ec ? 0 : n);
}

}  // namespace aigis::net

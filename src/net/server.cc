// The HTTP/1.1 server: accept loop, one coroutine per connection, response
// writer, graceful drain.
#include "net/internal.h"

#include <cstring>
#include <mutex>
#include <unordered_map>

namespace aigis::net {

namespace {

// What Drain/CloseAll need to reach a connection: its executor and socket.
// Touched only on that executor's thread, except `id` and `ex`.
struct ConnState {
  asio::any_io_executor ex;
  beast::tcp_stream* stream = nullptr;  // null once the session ended
  bool idle = true;                     // waiting for a request
};

std::string JsonError(int status, std::string_view message) {
  boost::json::object err{{"message", message}, {"type", status >= 500 ? "server_error" : "invalid_request_error"},
                          {"param", nullptr}, {"code", nullptr}};
  return boost::json::serialize(boost::json::object{{"error", std::move(err)}});
}

// Request-line and framing rules Beast leaves to the server (RFC 9112).
Status CheckFraming(const http::request<http::string_body>& msg, bool chunked) {
  auto host = msg.find(http::field::host);
  if (msg.version() >= 11 && host == msg.end()) return InvalidArgument("missing Host header");
  if (msg.count(http::field::host) > 1) return InvalidArgument("more than one Host header");
  if (host != msg.end()) {
    for (unsigned char c : host->value()) {
      // reg-name / IP-literal / port characters (RFC 3986 §3.2.2)
      if (!(std::isalnum(c) || (c != 0 && std::strchr("-._~!$&'()*+,;=:%[]", c)))) return InvalidArgument("invalid Host header");
    }
  }
  if (chunked && msg.version() < 11) return InvalidArgument("chunked transfer coding requires HTTP/1.1");
  return Status::Ok();
}

template <typename Stream>
beast::tcp_stream& Lowest(Stream& s) {
  return beast::get_lowest_layer(s);
}

template <typename Stream>
class Writer final : public ResponseWriter {
 public:
  Writer(Stream& s, milliseconds write_timeout, bool keep_alive, bool head)
      : s_(s), write_timeout_(write_timeout), keep_alive_(keep_alive), head_(head) {}

  bool started() const override { return started_; }
  Cancellation& cancellation() override { return cancel_; }
  bool finished() const { return finished_; }
  bool failed() const { return failed_; }
  bool keep_alive() const { return keep_alive_; }

  Task<Status> Send(Response r) override {
    if (started_) co_return Internal("response already started");
    started_ = true;
    std::string head = ResponseHead(r.status, r.headers, keep_alive_, r.body.size());
    // HEAD: the headers of the GET, no body (RFC 9110 §9.3.2).
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(r.body.data(), head_ ? 0 : r.body.size())};
    Lowest(s_).expires_after(write_timeout_);
    beast::error_code ec = co_await WriteAll(s_, bufs);
    co_return Done(ec, true);
  }

  Task<Status> Start(int status, Headers headers) override {
    if (started_) co_return Internal("response already started");
    started_ = true;
    std::string head = ResponseHead(status, headers, keep_alive_, std::nullopt);
    Lowest(s_).expires_after(write_timeout_);
    const asio::const_buffer buf(head.data(), head.size());
    beast::error_code ec = co_await WriteAll(s_, buf);
    co_return Done(ec, false);
  }

  Task<Status> Write(std::string_view data) override {
    if (failed_) co_return Status(Code::kCancelled, "client went away");
    if (data.empty() || head_) co_return Status::Ok();
    char size_line[24];
    int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    std::array<asio::const_buffer, 3> bufs{asio::buffer(size_line, static_cast<size_t>(len)),
                                           asio::buffer(data.data(), data.size()), asio::buffer("\r\n", 2)};
    Lowest(s_).expires_after(write_timeout_);
    beast::error_code ec = co_await WriteAll(s_, bufs);
    co_return Done(ec, false);
  }

  Task<Status> Finish() override {
    if (failed_) co_return Status(Code::kCancelled, "client went away");
    if (head_) {
      finished_ = true;
      co_return Status::Ok();
    }
    Lowest(s_).expires_after(write_timeout_);
    const asio::const_buffer last("0\r\n\r\n", 5);
    beast::error_code ec = co_await WriteAll(s_, last);
    co_return Done(ec, true);
  }

 private:
  Status Done(beast::error_code ec, bool finish) {
    if (ec) {
      failed_ = true;
      return Status(Code::kCancelled, fmt::format("client went away: {}", ec.message()));
    }
    finished_ = finish;
    return Status::Ok();
  }

  Stream& s_;
  milliseconds write_timeout_;
  bool keep_alive_;
  bool head_;
  Cancellation cancel_;
  bool started_ = false, finished_ = false, failed_ = false;
};

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(IoPool& p, ServerOptions o, Handler h) : pool(p), opts(std::move(o)), handler(std::move(h)) {}

  Result<uint16_t> Listen() {
    if (!opts.tls_cert_file.empty()) {
      ssl_ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
      beast::error_code ec;
      ssl_ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      ssl_ctx->use_certificate_chain_file(opts.tls_cert_file, ec);
      if (ec) return InvalidArgument(fmt::format("{}: cannot load TLS certificate '{}': {}", opts.name, opts.tls_cert_file, ec.message()));
      ssl_ctx->use_private_key_file(opts.tls_key_file, ssl::context::pem, ec);
      if (ec) return InvalidArgument(fmt::format("{}: cannot load TLS key '{}': {}", opts.name, opts.tls_key_file, ec.message()));
    }
    beast::error_code ec;
    auto addr = asio::ip::make_address(opts.host, ec);
    if (ec) return InvalidArgument(fmt::format("{}: invalid listen host '{}'", opts.name, opts.host));
    tcp::endpoint ep(addr, opts.port);
    acceptor.emplace(pool.context(0));
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable(fmt::format("{}: cannot listen on {}:{}: {}", opts.name, opts.host, opts.port, ec.message()));
    }
    uint16_t port = acceptor->local_endpoint().port();
    asio::co_spawn(pool.context(0), AcceptLoop(shared_from_this()), asio::detached);
    return port;
  }

  static Task<void> AcceptLoop(std::shared_ptr<Impl> self) {
    size_t next = 0;
    while (self->acceptor && self->acceptor->is_open()) {
      int worker = static_cast<int>(next++ % static_cast<size_t>(self->pool.size()));
      auto [ec, sock] = co_await self->acceptor->async_accept(self->pool.context(worker), kTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !self->acceptor->is_open()) co_return;
        // Out of descriptors or similar: back off briefly instead of spinning.
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
        co_await t.async_wait(kTuple);
        continue;
      }
      if (self->draining.load()) co_return;
      if (self->stats.open_connections.load() >= static_cast<int64_t>(self->opts.max_connections)) {
        self->stats.rejected_requests.fetch_add(1);
        beast::error_code ignored;
        sock.close(ignored);
        continue;
      }
      asio::co_spawn(self->pool.context(worker), RunConnection(self, std::move(sock), worker), asio::detached);
    }
  }

  static Task<void> RunConnection(std::shared_ptr<Impl> self, tcp::socket sock, int worker) {
    self->stats.open_connections.fetch_add(1);
    beast::error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    auto remote = sock.remote_endpoint(ec);
    std::string remote_str = ec ? "" : fmt::format("{}:{}", remote.address().to_string(), remote.port());
    auto st = std::make_shared<ConnState>();
    st->ex = sock.get_executor();
    uint64_t id = self->Register(st);
    // Runs however this frame ends, including when it is destroyed without
    // resuming (io_context shutdown): never leave a dangling stream pointer
    // or a leaked connection slot behind.
    struct Cleanup {
      Impl* self;
      ConnState* st;
      uint64_t id;
      ~Cleanup() {
        st->stream = nullptr;
        self->Unregister(id);
        self->stats.open_connections.fetch_sub(1);
      }
    } cleanup{self.get(), st.get(), id};
    try {
      if (self->ssl_ctx) {
        beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(sock)), *self->ssl_ctx);
        st->stream = &beast::get_lowest_layer(stream);
        beast::get_lowest_layer(stream).expires_after(self->opts.header_timeout);
        auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, kTuple);
        if (!hec) co_await self->Serve(stream, worker, remote_str, *st);
        st->stream = nullptr;
      } else {
        beast::tcp_stream stream(std::move(sock));
        st->stream = &stream;
        co_await self->Serve(stream, worker, remote_str, *st);
        st->stream = nullptr;
      }
    } catch (const std::exception& e) {
      spdlog::error("{}: connection from {} failed: {}", self->opts.name, remote_str, e.what());
    }
  }

  template <typename Stream>
  Task<void> WriteError(Stream& s, int status, std::string_view message) {
    stats.rejected_requests.fetch_add(1);
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "application/json");
    res.body() = JsonError(status, message);
    res.keep_alive(false);
    res.prepare_payload();
    Lowest(s).expires_after(opts.write_timeout);
    co_await http::async_write(s, res, kTuple);
  }

  template <typename Stream>
  Task<void> Serve(Stream& s, int worker, const std::string& remote, ConnState& st) {
    // Bounded: the request head, every chunk-size line and the trailer section
    // must fit, so none of them can grow without limit (max_header_bytes is
    // capped below Beast's 64 KiB per-field limit, which would throw).
    beast::flat_buffer buffer(opts.max_header_bytes + 4096);
    bool first = true;
    bool unread_body = false;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(opts.max_header_bytes));
      parser.body_limit(boost::none);  // checked below, so the handler can answer 413 in its own shape
      st.idle = true;
      if (draining.load()) break;
      // The first request gets header_timeout; later ones may idle first.
      Lowest(s).expires_after(first ? opts.header_timeout : opts.idle_timeout);
      beast::error_code ec;
      bool have_header = false;
      if constexpr (kPlain<Stream>) {
        ReadNow(Lowest(s).socket(), buffer);
        have_header = ParseBuffered(parser, buffer, true, ec);
      }
      if (!have_header) {
        auto [rec, n] = co_await http::async_read_header(s, buffer, parser, kTuple);
        ec = rec;
      }
      st.idle = false;
      if (ec) {
        if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
            ec == asio::error::connection_reset || ec == asio::error::eof || ec == ssl::error::stream_truncated ||
            ec == asio::error::bad_descriptor) {
          break;
        }
        if (ec == http::error::header_limit) {
          co_await WriteError(s, 431, "request header fields too large");
        } else if (ec != http::error::partial_message) {
          co_await WriteError(s, 400, fmt::format("malformed HTTP request: {}", ec.message()));
        }
        break;
      }
      first = false;
      auto& msg = parser.get();
      if (Status bad = CheckFraming(msg, parser.chunked()); !bad.ok()) {
        co_await WriteError(s, 400, bad.message());
        break;
      }
      Request req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      for (const auto& f : msg) req.headers.Add(std::string(f.name_string()), std::string(f.value()));
      req.remote = remote;
      req.worker = worker;
      bool keep_alive = msg.keep_alive();

      if (!parser.is_done()) {
        auto len = parser.content_length();
        if (len && *len > opts.max_body_bytes) {
          req.body_status = Status(Code::kPayloadTooLarge,
                                   fmt::format("request body of {} bytes exceeds the limit of {} bytes", *len, opts.max_body_bytes));
          unread_body = true;
        } else {
          if (EqualsIgnoreCase(req.headers.Get("expect"), "100-continue")) {
            http::response<http::empty_body> cont{http::status::continue_, 11};
            Lowest(s).expires_after(opts.write_timeout);
            auto [cec, cn] = co_await http::async_write(s, cont, kTuple);
            if (cec) break;
          }
          parser.body_limit(opts.max_body_bytes);
          Lowest(s).expires_after(opts.body_timeout);
          beast::error_code bec;
          if (!ParseBuffered(parser, buffer, false, bec)) {
            auto [rec, bn] = co_await http::async_read(s, buffer, parser, kTuple);
            bec = rec;
          }
          if (bec == http::error::body_limit) {
            req.body_status = Status(Code::kPayloadTooLarge,
                                     fmt::format("request body exceeds the limit of {} bytes", opts.max_body_bytes));
            unread_body = true;
          } else if (bec == beast::error::timeout) {
            co_await WriteError(s, 408, "request body not received in time");
            break;
          } else if (bec == http::error::end_of_stream || bec == http::error::partial_message ||
                     bec == asio::error::connection_reset || bec == asio::error::eof) {
            break;  // client went away mid-body
          } else if (bec) {
            co_await WriteError(s, 400, fmt::format("malformed request body: {}", bec.message()));
            break;
          } else {
            req.body = std::move(msg.body());
          }
        }
      }
      if (unread_body) keep_alive = false;

      Writer<Stream> w(s, opts.write_timeout, keep_alive && !draining.load(), msg.method() == http::verb::head);
      stats.active_requests.fetch_add(1);
      // While the handler runs, watch the client socket: EOF or a reset
      // means the client left, and the handler's upstream work is cancelled.
      // (Readable with data = a pipelined request: stop watching.)
      auto watching = std::make_shared<bool>(true);
      auto& sock = Lowest(s).socket();
      sock.async_wait(tcp::socket::wait_read, [watching, &sock, &w](beast::error_code ec) {
        if (!*watching || ec) return;
        char c;
        ssize_t n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) w.cancellation().Cancel();
      });
      try {
        co_await handler(req, w);
      } catch (const std::exception& e) {
        spdlog::error("{}: handler failed for {} {}: {}", opts.name, req.method, req.target, e.what());
      }
      *watching = false;
      {
        beast::error_code ignored;
        sock.cancel(ignored);  // completes the watch (it sees *watching == false)
      }
      stats.active_requests.fetch_sub(1);
      if (w.cancellation().cancelled()) break;
      if (!w.started()) {
        Response r;
        r.status = 500;
        r.headers.Add("Content-Type", "application/json");
        r.body = JsonError(500, "internal error: no response produced");
        (void)co_await w.Send(std::move(r));
      }
      if (w.failed() || !w.finished() || !w.keep_alive()) break;
    }
    co_await Close(s, unread_body);
  }

  // TCP: half-close and drain briefly so that a client still sending an
  // oversize body reads our error instead of a reset (a "lingering close").
  Task<void> Close(beast::tcp_stream& s, bool linger) {
    beast::error_code ec;
    if (linger) {
      s.socket().shutdown(tcp::socket::shutdown_send, ec);
      s.expires_after(std::chrono::seconds(2));
      char sink[16 * 1024];
      size_t total = 0;
      while (total < (8u << 20)) {
        auto [rec, n] = co_await s.async_read_some(asio::buffer(sink), kTuple);
        if (rec) break;
        total += n;
      }
    }
    s.socket().shutdown(tcp::socket::shutdown_both, ec);
    s.socket().close(ec);
  }
  Task<void> Close(beast::ssl_stream<beast::tcp_stream>& s, bool) {
    beast::error_code ec;
    beast::get_lowest_layer(s).socket().close(ec);
    co_return;
  }

  uint64_t Register(std::shared_ptr<ConnState> st) {
    std::lock_guard lock(mu);
    uint64_t id = next_id++;
    conns.emplace(id, std::move(st));
    return id;
  }
  void Unregister(uint64_t id) {
    std::lock_guard lock(mu);
    conns.erase(id);
  }

  // Runs fn(ConnState&) on every connection's own thread.
  template <typename F>
  void ForEachConnection(F fn) {
    std::lock_guard lock(mu);
    for (auto& [id, st] : conns) {
      asio::post(st->ex, [st, fn] { fn(*st); });
    }
  }

  IoPool& pool;
  ServerOptions opts;
  Handler handler;
  ServerStats stats;
  std::unique_ptr<ssl::context> ssl_ctx;
  std::optional<tcp::acceptor> acceptor;
  std::atomic<bool> draining{false};
  std::mutex mu;  // guards conns/next_id (connect/disconnect only, never per request)
  std::unordered_map<uint64_t, std::shared_ptr<ConnState>> conns;
  uint64_t next_id = 0;
};

Server::Server(IoPool& pool, ServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(pool, std::move(options), std::move(handler))) {}

Server::~Server() {
  if (impl_->acceptor) {
    beast::error_code ec;
    impl_->acceptor->close(ec);
  }
}

Result<uint16_t> Server::Listen() { return impl_->Listen(); }

const ServerStats& Server::stats() const { return impl_->stats; }

void Server::Drain() {
  impl_->draining.store(true);
  auto self = impl_;
  asio::post(impl_->pool.context(0), [self] {
    beast::error_code ec;
    if (self->acceptor) self->acceptor->close(ec);
  });
  impl_->ForEachConnection([](ConnState& st) {
    if (st.stream && st.idle) {
      beast::error_code ec;
      st.stream->socket().cancel(ec);
    }
  });
}

void Server::CloseAll() {
  impl_->draining.store(true);
  impl_->ForEachConnection([](ConnState& st) {
    if (st.stream) {
      beast::error_code ec;
      st.stream->socket().shutdown(tcp::socket::shutdown_both, ec);
      st.stream->socket().cancel(ec);
    }
  });
}

}  // namespace aigis::net

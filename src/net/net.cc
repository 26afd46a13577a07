// Headers, Endpoint, IoPool and the upstream HttpClient.
#include "net/internal.h"

#include <boost/url/parse.hpp>

#include <thread>
#include <unordered_map>

namespace aigis::net {


// ---------------------------------------------------------------- Headers --

bool IsHopByHop(std::string_view name, const Headers& message_headers) {
  static constexpr std::string_view kHop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                              "te", "trailer", "upgrade", "proxy-authenticate",
                                              "proxy-authorization"};
  for (auto h : kHop) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  // Tokens listed in Connection are hop-by-hop too (RFC 9110 §7.6.1).
  std::string_view conn = message_headers.Get("connection");
  while (!conn.empty()) {
    size_t comma = conn.find(',');
    std::string_view token = TrimWhitespace(conn.substr(0, comma));
    if (!token.empty() && EqualsIgnoreCase(token, name)) return true;
    if (comma == std::string_view::npos) break;
    conn.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view Request::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const {
  size_t q = target.find('?');
  return q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1);
}

// --------------------------------------------------------------- Endpoint --

Result<Endpoint> Endpoint::Parse(std::string_view url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return InvalidArgument(fmt::format("invalid URL '{}': {}", url, parsed.error().message()));
  Endpoint ep;
  auto scheme = parsed->scheme();
  if (scheme == "https") ep.tls = true;
  else if (scheme != "http") return InvalidArgument(fmt::format("URL '{}' must use http or https", url));
  if (parsed->has_userinfo()) return InvalidArgument(fmt::format("URL '{}' must not carry credentials", url));
  ep.host = parsed->host_address();
  if (parsed->host_type() == boost::urls::host_type::ipv6) {
    ep.host = std::string(parsed->host_ipv6_address().to_string());
  }
  if (ep.host.empty()) return InvalidArgument(fmt::format("URL '{}' has no host", url));
  ep.port = ep.tls ? 443 : 80;
  if (parsed->has_port()) {
    if (parsed->port_number() == 0) return InvalidArgument(fmt::format("URL '{}' has an invalid port", url));
    ep.port = parsed->port_number();
  }
  if (parsed->has_query() || parsed->has_fragment()) {
    return InvalidArgument(fmt::format("base URL '{}' must not have a query or fragment", url));
  }
  ep.base_path = std::string(parsed->encoded_path());
  while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
  return ep;
}

// ----------------------------------------------------------------- IoPool --

struct IoPool::Impl {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::unique_ptr<asio::steady_timer>> ticks;  // before the contexts go
  std::vector<std::thread> threads;
};

namespace {

// Every context keeps a timer due within half a second. Asio rewrites its
// timerfd (a system call, and on a VM an expensive one) whenever a timer
// becomes the earliest one pending; each stream operation arms a timeout,
// and on a connection waiting for its next request that timeout was the
// earliest every time — several rewrites per request. With a nearer timer
// always pending they happen twice a second instead.
void Tick(asio::steady_timer& t) {
  t.expires_after(std::chrono::milliseconds(500));
  t.async_wait([&t](const boost::system::error_code& ec) {
    if (!ec) Tick(t);
  });
}

}  // namespace

IoPool::IoPool(int threads) : impl_(std::make_unique<Impl>()) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) impl_->contexts.push_back(std::make_unique<asio::io_context>(1));
}

IoPool::~IoPool() { Stop(); }

int IoPool::size() const { return static_cast<int>(impl_->contexts.size()); }
asio::io_context& IoPool::context(int i) { return *impl_->contexts[static_cast<size_t>(i)]; }

void IoPool::Start() {
  for (auto& c : impl_->contexts) {
    c->restart();
    impl_->guards.push_back(asio::make_work_guard(*c));
    Tick(*impl_->ticks.emplace_back(std::make_unique<asio::steady_timer>(*c)));
    impl_->threads.emplace_back([ctx = c.get()] {
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          // A handler escaped its own catch: log and keep the thread serving.
          spdlog::error("unhandled exception on I/O thread: {}", e.what());
        }
      }
    });
  }
}

void IoPool::Stop() {
  impl_->guards.clear();
  for (auto& c : impl_->contexts) c->stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
  impl_->ticks.clear();
}

// ------------------------------------------------------------- HttpClient --

namespace {

// One upstream connection, plain or TLS.
struct Conn {
  explicit Conn(ClientStats* s) : stats(s) {
    if (stats) stats->open_connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~Conn() {
    if (stats) stats->open_connections.fetch_sub(1, std::memory_order_relaxed);
    beast::error_code ec;
    lowest().socket().close(ec);
  }
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  // Aborts whatever is pending on the connection (used on cancellation).
  void Abort() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }
  // True when the pooled socket is still usable: no EOF and no stray bytes.
  bool LooksAlive() {
    auto& sock = lowest().socket();
    if (!sock.is_open()) return false;
    char c;
    ssize_t n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  ClientStats* stats;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  // Bounded: a response head, one chunk-size line or the trailers must fit,
  // so a hostile upstream cannot make us buffer without limit.
  beast::flat_buffer buffer{64 * 1024};
  std::string key;
  MonoTime idle_since{};
  // Body pieces are read into this; it lives as long as the connection, so
  // pooled connections do not allocate it per request.
  static constexpr size_t kBodyBufferSize = 16 * 1024;
  char* BodyBuffer() {
    if (!body_buffer) body_buffer = std::make_unique<char[]>(kBodyBufferSize);
    return body_buffer.get();
  }
  std::unique_ptr<char[]> body_buffer;
};

template <typename F>
auto OnStream(Conn& c, F&& f) {
  return c.tls ? f(*c.tls) : f(*c.plain);
}

constexpr auto kMaxPooledIdle = std::chrono::seconds(30);

}  // namespace

struct HttpClient::Impl : std::enable_shared_from_this<HttpClient::Impl> {
  Impl(asio::io_context& c, ClientStats* s) : ctx(c), stats(s), resolver(c) {}
  ~Impl() {
    for (auto& [k, v] : idle) {
      if (stats) stats->idle_connections.fetch_sub(static_cast<int64_t>(v.size()), std::memory_order_relaxed);
    }
  }

  std::unique_ptr<Conn> TakeIdle(const std::string& key) {
    auto it = idle.find(key);
    if (it == idle.end()) return nullptr;
    auto& list = it->second;
    auto now = std::chrono::steady_clock::now();
    while (!list.empty()) {
      std::unique_ptr<Conn> c = std::move(list.back());
      list.pop_back();
      if (stats) stats->idle_connections.fetch_sub(1, std::memory_order_relaxed);
      // A connection released moments ago is almost never stale, and a stale
      // one is retried anyway (Send): probe with a syscall only after 1 s idle.
      auto idle_for = now - c->idle_since;
      if (idle_for < kMaxPooledIdle && (idle_for < std::chrono::seconds(1) || c->LooksAlive())) {
        if (stats) stats->reused_connections.fetch_add(1, std::memory_order_relaxed);
        return c;
      }
    }
    return nullptr;
  }

  void Release(std::unique_ptr<Conn> c, size_t max_idle) {
    auto& list = idle[c->key];
    if (list.size() >= max_idle || !c->lowest().socket().is_open()) return;  // c closes
    c->idle_since = std::chrono::steady_clock::now();
    c->lowest().expires_never();
    if (stats) stats->idle_connections.fetch_add(1, std::memory_order_relaxed);
    list.push_back(std::move(c));
  }

  Result<ssl::context*> SslContextFor(const ClientOptions& o) {
    std::string key = fmt::format("{}|{}", o.tls_verify, o.ca_file);
    auto it = ssl_contexts.find(key);
    if (it != ssl_contexts.end()) return it->second.get();
    auto ctx_ptr = std::make_unique<ssl::context>(ssl::context::tls_client);
    beast::error_code ec;
    ctx_ptr->set_default_verify_paths(ec);
    if (!o.ca_file.empty()) {
      ctx_ptr->load_verify_file(o.ca_file, ec);
      if (ec) return InvalidArgument(fmt::format("cannot load CA file '{}': {}", o.ca_file, ec.message()));
    }
    ctx_ptr->set_verify_mode(o.tls_verify ? ssl::verify_peer : ssl::verify_none);
    SSL_CTX_set_min_proto_version(ctx_ptr->native_handle(), TLS1_2_VERSION);
    auto* raw = ctx_ptr.get();
    ssl_contexts.emplace(key, std::move(ctx_ptr));
    return raw;
  }

  Task<Result<std::unique_ptr<Conn>>> Connect(const Endpoint& ep, const ClientOptions& o, std::string key,
                                              Cancellation* cancel) {
    auto c = std::make_unique<Conn>(stats);
    c->key = std::move(key);
    c->plain.emplace(ctx);
    if (cancel) cancel->OnCancel([raw = c.get()] { raw->Abort(); });
    c->plain->expires_after(o.connect_timeout);
    auto [rec, results] = co_await resolver.async_resolve(ep.host, std::to_string(ep.port), kTuple);
    if (rec) co_return Unavailable(fmt::format("cannot resolve upstream host '{}': {}", ep.host, rec.message()));
    auto [cec, endpoint] = co_await c->plain->async_connect(results, kTuple);
    if (cec == beast::error::timeout) {
      co_return DeadlineExceeded(fmt::format("connect to {}:{} timed out", ep.host, ep.port));
    }
    if (cec) co_return Unavailable(fmt::format("cannot connect to {}:{}: {}", ep.host, ep.port, cec.message()));
    c->plain->socket().set_option(tcp::no_delay(true));
    if (ep.tls) {
      auto sslctx = SslContextFor(o);
      if (!sslctx.ok()) co_return sslctx.status();
      c->tls.emplace(std::move(*c->plain), **sslctx);
      c->plain.reset();
      const std::string& name = o.server_name.empty() ? ep.host : o.server_name;
      beast::error_code ignored;
      asio::ip::make_address(name, ignored);
      bool is_ip = !ignored;
      if (!is_ip && !SSL_set_tlsext_host_name(c->tls->native_handle(), name.c_str())) {
        co_return Unavailable("cannot set TLS SNI");
      }
      if (o.tls_verify) c->tls->set_verify_callback(ssl::host_name_verification(name));
      beast::get_lowest_layer(*c->tls).expires_after(o.connect_timeout);
      auto [hec] = co_await c->tls->async_handshake(ssl::stream_base::client, kTuple);
      if (hec == beast::error::timeout) co_return DeadlineExceeded("TLS handshake with upstream timed out");
      if (hec) co_return Unavailable(fmt::format("TLS handshake with {}:{} failed: {}", ep.host, ep.port, hec.message()));
    }
    co_return c;
  }

  asio::io_context& ctx;
  ClientStats* stats;
  tcp::resolver resolver;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Conn>>> idle;
  std::unordered_map<std::string, std::unique_ptr<ssl::context>> ssl_contexts;
};

namespace {

class PooledResponse final : public UpstreamResponse {
 public:
  PooledResponse(std::shared_ptr<HttpClient::Impl> client, std::unique_ptr<Conn> conn, ClientOptions options,
                 Cancellation* cancel)
      : client_(std::move(client)), conn_(std::move(conn)), options_(std::move(options)), cancel_(cancel) {
    parser_.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    parser_.body_limit(boost::none);
    if (cancel_) cancel_->OnCancel([raw = conn_.get()] { raw->Abort(); });
  }
  ~PooledResponse() override { Unbind(); }

  Task<beast::error_code> ReadHeader() {
    beast::error_code ec;
    bool have_header = false;
    if (conn_->plain) {
      ReadNow(conn_->plain->socket(), conn_->buffer);
      have_header = ParseBuffered(parser_, conn_->buffer, true, ec);
    }
    if (!have_header) {
      auto [rec, n] = co_await OnStream(*conn_, [&](auto& s) { return http::async_read_header(s, conn_->buffer, parser_, kTuple); });
      ec = rec;
    }
    if (!ec) {
      status = static_cast<int>(parser_.get().result_int());
      for (const auto& f : parser_.get()) headers.Add(std::string(f.name_string()), std::string(f.value()));
    }
    co_return ec;
  }

  Task<Result<std::string_view>> Read() override {
    if (!conn_) co_return std::string_view();
    for (;;) {
      if (parser_.is_done()) {
        Unbind();
        bool reusable = parser_.get().keep_alive();
        if (reusable) client_->Release(std::move(conn_), options_.max_idle_connections);
        conn_.reset();
        co_return std::string_view();
      }
      char* buf = conn_->BodyBuffer();
      parser_.get().body().data = buf;
      parser_.get().body().size = Conn::kBodyBufferSize;
      // The bytes already buffered first (usually the whole of a small body).
      beast::error_code ec;
      bool parsed = ParseBuffered(parser_, conn_->buffer, false, ec);
      if (!parsed && Conn::kBodyBufferSize == parser_.get().body().size) {
        conn_->lowest().expires_after(options_.idle_timeout);
        auto [rec, n] = co_await OnStream(*conn_, [&](auto& s) { return http::async_read_some(s, conn_->buffer, parser_, kTuple); });
        ec = rec;
      }
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        Unbind();
        conn_.reset();
        if (cancel_ && cancel_->cancelled()) co_return Status(Code::kCancelled, "client went away");
        if (ec == beast::error::timeout) co_return DeadlineExceeded("upstream stopped sending (idle timeout)");
        co_return Unavailable(fmt::format("upstream body read failed: {}", ec.message()));
      }
      size_t got = Conn::kBodyBufferSize - parser_.get().body().size;
      if (got) co_return std::string_view(buf, got);
    }
  }

 private:
  void Unbind() {
    if (cancel_) cancel_->Clear();
    cancel_ = nullptr;
  }

  std::shared_ptr<HttpClient::Impl> client_;
  std::unique_ptr<Conn> conn_;
  ClientOptions options_;
  Cancellation* cancel_;
  http::response_parser<http::buffer_body> parser_;
};

}  // namespace

Task<Result<std::string>> UpstreamResponse::ReadAll(size_t max_bytes) {
  std::string out;
  for (;;) {
    auto piece = co_await Read();
    if (!piece.ok()) co_return piece.status();
    if (piece->empty()) co_return out;
    if (out.size() + piece->size() > max_bytes) {
      co_return Status(Code::kPayloadTooLarge, fmt::format("upstream response larger than {} bytes", max_bytes));
    }
    out.append(*piece);
  }
}

HttpClient::HttpClient(asio::io_context& context, ClientStats* stats)
    : impl_(std::make_shared<Impl>(context, stats)) {}
HttpClient::~HttpClient() = default;

Task<Result<std::unique_ptr<UpstreamResponse>>> HttpClient::Send(const Endpoint& ep, const ClientOptions& o,
                                                                  ClientRequest req, Cancellation* cancel) {
  auto self = impl_;
  const std::string& sni = o.server_name.empty() ? ep.host : o.server_name;
  std::string key = fmt::format("{}|{}|{}|{}|{}|{}", ep.tls, ep.host, ep.port, sni, o.ca_file, o.tls_verify);

  bool default_port = ep.port == (ep.tls ? 443 : 80);
  std::string host = ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host;
  if (!default_port) host += ":" + std::to_string(ep.port);
  const std::string head = RequestHead(req.method, req.target, host, req.headers, req.body.size());
  const std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(req.body)};

  // A pooled connection may have been closed by the upstream just as we
  // picked it; such a failure (before any response byte) is retried once on
  // a fresh connection.
  // The callback bound to `cancel` points at a connection of this frame:
  // unbind it on every path that drops the connection.
  auto unbind = [cancel] {
    if (cancel) cancel->Clear();
  };
  const Status cancelled(Code::kCancelled, "client went away");
  for (int attempt = 0;; ++attempt) {
    if (cancel && cancel->cancelled()) co_return cancelled;
    std::unique_ptr<Conn> c = attempt == 0 ? self->TakeIdle(key) : nullptr;
    bool reused = c != nullptr;
    if (!c) {
      auto conn = co_await self->Connect(ep, o, key, cancel);
      if (!conn.ok()) {
        unbind();
        if (cancel && cancel->cancelled()) co_return cancelled;
        co_return conn.status();
      }
      c = std::move(conn).value();
    }
    if (cancel) cancel->OnCancel([raw = c.get()] { raw->Abort(); });
    c->lowest().expires_after(o.response_timeout);
    beast::error_code wec = co_await OnStream(*c, [&](auto& s) { return WriteAll(s, wire); });
    if (wec) {
      unbind();
      if (cancel && cancel->cancelled()) co_return cancelled;
      if (reused) continue;
      if (wec == beast::error::timeout) co_return DeadlineExceeded("sending the request upstream timed out");
      co_return Unavailable(fmt::format("sending the request upstream failed: {}", wec.message()));
    }
    auto resp = std::make_unique<PooledResponse>(self, std::move(c), o, cancel);
    beast::error_code ec = co_await resp->ReadHeader();
    if (ec) {
      resp.reset();  // unbinds
      if (cancel && cancel->cancelled()) co_return cancelled;
      if (reused && (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                     ec == asio::error::eof)) {
        continue;
      }
      if (ec == beast::error::timeout) co_return DeadlineExceeded("upstream did not answer in time");
      co_return Unavailable(fmt::format("upstream response unreadable: {}", ec.message()));
    }
    co_return std::unique_ptr<UpstreamResponse>(std::move(resp));
  }
}

}  // namespace aigis::net

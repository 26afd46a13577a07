// net: HTTP/1.1 server and client on Boost.Beast + Asio C++20 coroutines.
//
// This header keeps Beast out: it exposes our own request/response types, a
// ResponseWriter the handler streams through, an upstream HttpClient with a
// keep-alive pool, and an incremental SSE parser. Only asio::awaitable is
// visible (coroutines need it); Beast and SSL headers stay in net's .cc files.
//
// Threading: IoPool runs one io_context per thread. A Server accepts on the
// first context and hands each connection to the next context round-robin;
// the connection coroutine and everything it calls (handler, HttpClient of
// that worker) then run on that one thread, so per-worker state needs no lock.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace boost::asio {
class io_context;
}

namespace aigis::net {

template <typename T>
using Task = boost::asio::awaitable<T>;
using std::chrono::milliseconds;

using aigis::Header;
using aigis::Headers;

// True for headers that describe one hop (RFC 9110 §7.6.1) plus any header
// named in the message's Connection header: never forwarded.
bool IsHopByHop(std::string_view name, const Headers& message_headers);

struct Request {
  std::string method;
  std::string target;  // as received: path plus optional ?query
  std::string_view path() const;   // target without the query
  std::string_view query() const;  // after '?', "" if none
  Headers headers;
  std::string body;
  std::string remote;  // "ip:port" of the client
  int worker = 0;      // index of the IoPool thread running this request
  // Not OK when the body was not read (kPayloadTooLarge, kDeadlineExceeded,
  // kInvalidArgument for bad framing). The handler still answers; the
  // connection is closed afterwards because its framing is lost.
  Status body_status;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
};

// Raised on the connection's thread when the client of a request goes away
// before its response is complete. Whoever is doing upstream work for the
// request registers one callback that aborts it (closes the upstream
// connection), so an abandoned request releases everything at once instead
// of waiting for an upstream timeout. Single-threaded by design.
class Cancellation {
 public:
  bool cancelled() const { return cancelled_; }
  void Cancel() {
    cancelled_ = true;
    Fire();
  }
  // Replaces the callback; runs it at once if already cancelled.
  void OnCancel(std::function<void()> fn) {
    fn_ = std::move(fn);
    if (cancelled_) Fire();
  }
  void Clear() { fn_ = nullptr; }

 private:
  void Fire() {
    if (!fn_) return;
    auto fn = std::move(fn_);
    fn_ = nullptr;
    fn();
  }
  bool cancelled_ = false;
  std::function<void()> fn_;
};

// How a handler answers: either Send() once, or Start() + Write()* + Finish()
// for a streamed (chunked) body. Every call returns kCancelled once the client
// has gone away; the handler should then stop producing.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual Task<Status> Send(Response response) = 0;
  virtual Task<Status> Start(int status, Headers headers) = 0;
  virtual Task<Status> Write(std::string_view data) = 0;
  virtual Task<Status> Finish() = 0;
  virtual bool started() const = 0;
  // Cancelled when the client disconnects while the handler runs.
  virtual Cancellation& cancellation() = 0;
};

using Handler = std::function<Task<void>(Request&, ResponseWriter&)>;

// Runs N io_contexts on N threads.
class IoPool {
 public:
  explicit IoPool(int threads);  // 0 = one per core
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  int size() const;
  boost::asio::io_context& context(int i);
  void Start();  // starts the threads (returns at once)
  void Stop();   // stops the contexts and joins the threads
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ServerOptions {
  std::string name = "server";  // for logs
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string tls_cert_file;  // both set = TLS listener
  std::string tls_key_file;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 10 * 1024 * 1024;
  size_t max_connections = 10000;
  milliseconds header_timeout{10'000};
  milliseconds body_timeout{30'000};
  milliseconds idle_timeout{60'000};
  milliseconds write_timeout{30'000};
};

// Connection-level counters a server keeps (read by /metrics).
struct ServerStats {
  std::atomic<int64_t> open_connections{0};
  std::atomic<int64_t> active_requests{0};
  std::atomic<uint64_t> rejected_requests{0};  // answered 4xx by the server itself (bad framing etc.)
};

class Server {
 public:
  Server(IoPool& pool, ServerOptions options, Handler handler);
  ~Server();
  // Binds and starts accepting. Returns the bound port.
  Result<uint16_t> Listen();
  // Graceful: stop accepting, close idle keep-alive connections, and close
  // busy ones after their current response.
  void Drain();
  // Forceful: close every connection now.
  void CloseAll();
  const ServerStats& stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// An upstream endpoint parsed from a base URL.
struct Endpoint {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
  std::string base_path;  // without trailing '/', "" for root
  static Result<Endpoint> Parse(std::string_view url);
};

struct ClientOptions {
  milliseconds connect_timeout{5'000};
  milliseconds response_timeout{120'000};  // request sent -> response headers
  milliseconds idle_timeout{120'000};      // between body reads
  size_t max_idle_connections = 64;
  size_t max_header_bytes = 60 * 1024;  // < 64 KiB: Beast's limit for one field
  bool tls_verify = true;
  std::string ca_file;
  std::string server_name;  // SNI and verified name; default Endpoint::host
};

struct ClientRequest {
  std::string method = "POST";
  std::string target;  // path + query
  Headers headers;     // Host and Content-Length are set by the client
  std::string body;
};

// Counters shared by all HttpClients of a process (read by /metrics).
struct ClientStats {
  std::atomic<int64_t> open_connections{0};
  std::atomic<int64_t> idle_connections{0};
  std::atomic<uint64_t> reused_connections{0};
};

// A response whose body is read piece by piece. Destroying it before the body
// was read to the end closes the connection (so the upstream sees the client
// go away); a fully read keep-alive connection returns to the pool.
class UpstreamResponse {
 public:
  virtual ~UpstreamResponse() = default;
  int status = 0;
  Headers headers;
  // Next piece of the body; an empty view means the body is complete. The view
  // is valid until the next call.
  virtual Task<Result<std::string_view>> Read() = 0;
  // The rest of the body, failing with kPayloadTooLarge past max_bytes.
  Task<Result<std::string>> ReadAll(size_t max_bytes);
};

// One per worker thread: not thread-safe; must be used from its context.
class HttpClient {
 public:
  HttpClient(boost::asio::io_context& context, ClientStats* stats);
  ~HttpClient();
  // Sends a request; returns once the response headers arrived. The error
  // Status is kUnavailable (connect/protocol), kDeadlineExceeded (timeout) or
  // kCancelled (`cancel` fired). While the request or its response body is
  // in flight, `cancel` (which must outlive the response) closes the upstream
  // connection.
  Task<Result<std::unique_ptr<UpstreamResponse>>> Send(const Endpoint& endpoint, const ClientOptions& options,
                                                       ClientRequest request, Cancellation* cancel = nullptr);

  struct Impl;  // public so that response objects can return connections to the pool

 private:
  std::shared_ptr<Impl> impl_;
};

// One Server-Sent Event as parsed from a stream (WHATWG HTML §9.2).
struct SseEvent {
  std::string_view raw;  // the bytes of the event, including its blank line
  std::string_view event;  // "" when no event: field (means "message")
  std::string data;        // data: lines joined with '\n'
  std::string_view id;
};

// Incremental SSE parser: bytes in, whole events out, however the stream was
// split. Pending bytes are bounded by max_event_bytes.
class SseParser {
 public:
  explicit SseParser(size_t max_event_bytes = 1 << 20) : max_event_bytes_(max_event_bytes) {}
  // Calls on_event(const SseEvent&) for every event completed by `bytes`.
  // Fails with kPayloadTooLarge when one event exceeds the bound.
  template <typename OnEvent>
  Status Feed(std::string_view bytes, OnEvent&& on_event) {
    buffer_.append(bytes);
    SseEvent ev;
    while (NextEvent(ev)) on_event(static_cast<const SseEvent&>(ev));
    Compact();
    if (buffer_.size() - consumed_ > max_event_bytes_) {
      return {Code::kPayloadTooLarge, "server-sent event larger than the configured limit"};
    }
    return Status::Ok();
  }
  // Bytes of an event not yet terminated (sent as-is at end of stream).
  std::string_view pending() const { return std::string_view(buffer_).substr(consumed_); }

 private:
  bool NextEvent(SseEvent& ev);
  void Compact();

  size_t max_event_bytes_;
  std::string buffer_;
  size_t consumed_ = 0;  // bytes of buffer_ already dispatched
  size_t scan_ = 0;      // where line scanning resumes
};

}  // namespace aigis::net

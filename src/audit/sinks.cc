// Sinks: a bounded queue and a delivery thread each; files with rotation,
// RFC 5424 syslog over UDP or TCP, and delivery through a function (the
// gateway's webhooks). Plain POSIX sockets: two message formats over a
// socket do not justify an I/O framework in this module.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "audit/audit.h"

namespace aigis::audit {

std::string SinkLine(std::string_view tenant, uint64_t index, std::string_view record) {
  // The record is canonical JSON already; the tenant is a validated name.
  return fmt::format(R"({{"index":{},"record":{},"tenant":"{}"}})", index, record, tenant);
}

namespace {

// The queue and the delivery thread every sink shares.
class QueuedSink : public Sink {
 public:
  QueuedSink(std::string name, SinkQueueOptions o) : name_(std::move(name)), opt_(o) {}
  ~QueuedSink() override { Stop(); }

  const std::string& name() const override { return name_; }

  void Offer(std::string_view tenant, uint64_t index, std::string_view record) override {
    {
      std::lock_guard l(mu_);
      if (queue_.size() >= opt_.max_queue) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      queue_.push_back(SinkLine(tenant, index, record));
    }
    cv_.notify_one();
  }

  Stats stats() const override {
    Stats s;
    s.delivered = delivered_.load();
    s.dropped = dropped_.load();
    s.failures = failures_.load();
    std::lock_guard l(mu_);
    s.queued = queue_.size();
    return s;
  }

 protected:
  // Delivers a batch of lines; an error is retried with backoff.
  virtual Status Deliver(const std::vector<std::string>& lines) = 0;

  void Start() { thread_ = std::thread([this] { Run(); }); }
  // Delivers what is queued (bounded by the retry policy), then stops.
  void Stop() {
    {
      std::lock_guard l(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    auto backoff = opt_.min_backoff;
    std::vector<std::string> batch;
    int attempts = 0;
    for (;;) {
      if (batch.empty()) {
        std::unique_lock l(mu_);
        cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        while (!queue_.empty() && batch.size() < opt_.max_batch) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        attempts = 0;
      }
      Status st = Deliver(batch);
      if (st.ok()) {
        delivered_.fetch_add(batch.size());
        batch.clear();
        backoff = opt_.min_backoff;
        continue;
      }
      failures_.fetch_add(1);
      if (++attempts >= opt_.max_attempts) {
        dropped_.fetch_add(batch.size());
        batch.clear();
        continue;
      }
      std::unique_lock l(mu_);
      if (stopping_) {
        // Shutting down with a failing destination: do not hold the exit.
        dropped_.fetch_add(batch.size() + queue_.size());
        queue_.clear();
        return;
      }
      cv_.wait_for(l, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2, opt_.max_backoff);
    }
  }

  std::string name_;
  SinkQueueOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::thread thread_;
  std::atomic<uint64_t> delivered_{0}, dropped_{0}, failures_{0};
};

// ------------------------------------------------------------------ file ----

class FileSink final : public QueuedSink {
 public:
  explicit FileSink(FileSinkOptions o) : QueuedSink("file:" + o.path, o.queue), opt_(std::move(o)) { Start(); }
  ~FileSink() override {
    Stop();
    if (fd_ >= 0) ::close(fd_);
  }

 protected:
  Status Deliver(const std::vector<std::string>& lines) override {
    if (fd_ < 0) RETURN_IF_ERROR(Open());
    // Line by line into one write, rotating before a line that would take
    // the file past max_bytes (a file holds at least one line).
    std::string chunk;
    for (const auto& l : lines) {
      if (size_ + chunk.size() > 0 && size_ + chunk.size() + l.size() + 1 > opt_.max_bytes) {
        RETURN_IF_ERROR(Write(chunk));
        chunk.clear();
        RETURN_IF_ERROR(Rotate());
      }
      chunk.append(l).push_back('\n');
    }
    return Write(chunk);
  }

 private:
  Status Write(std::string_view rest) {
    while (!rest.empty()) {
      ssize_t n = ::write(fd_, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Status st = Internal(fmt::format("audit sink {}: {}", opt_.path, std::strerror(errno)));
        ::close(fd_);
        fd_ = -1;
        return st;
      }
      rest.remove_prefix(static_cast<size_t>(n));
      size_ += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }
  Status Open() {
    fd_ = ::open(opt_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) return Internal(fmt::format("audit sink: opening {}: {}", opt_.path, std::strerror(errno)));
    struct stat st {};
    size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    return Status::Ok();
  }
  Status Rotate() {
    ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    std::filesystem::remove(fmt::format("{}.{}", opt_.path, opt_.keep), ec);
    for (int i = opt_.keep - 1; i >= 1; --i) {
      std::filesystem::rename(fmt::format("{}.{}", opt_.path, i), fmt::format("{}.{}", opt_.path, i + 1), ec);
    }
    if (opt_.keep > 0) {
      std::filesystem::rename(opt_.path, opt_.path + ".1", ec);
    } else {
      std::filesystem::remove(opt_.path, ec);
    }
    return Open();
  }

  FileSinkOptions opt_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// ---------------------------------------------------------------- syslog ----

class SyslogSink final : public QueuedSink {
 public:
  SyslogSink(SyslogSinkOptions o, bool tcp, sockaddr_storage addr, socklen_t len)
      : QueuedSink("syslog:" + o.address, o.queue), opt_(std::move(o)), tcp_(tcp), addr_(addr), addr_len_(len) {
    if (opt_.hostname.empty()) {
      char host[256] = {0};
      ::gethostname(host, sizeof host - 1);
      opt_.hostname = host[0] != 0 ? host : "-";
    }
    Start();
  }
  ~SyslogSink() override {
    Stop();
    if (fd_ >= 0) ::close(fd_);
  }

 protected:
  Status Deliver(const std::vector<std::string>& lines) override {
    for (const auto& line : lines) {
      // RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG;
      // severity 6 (informational), MSGID "audit", no structured data.
      std::string msg = fmt::format("<{}>1 {} {} {} {} audit - {}", opt_.facility * 8 + 6,
                                    FormatRfc3339(std::chrono::system_clock::now()), opt_.hostname, opt_.app_name,
                                    ::getpid(), line);
      if (fd_ < 0) RETURN_IF_ERROR(Connect());
      Status st = tcp_ ? SendAll(fmt::format("{} {}", msg.size(), msg)) : SendDatagram(msg);
      if (!st.ok()) {
        ::close(fd_);
        fd_ = -1;
        return st;
      }
    }
    return Status::Ok();
  }

 private:
  Status Connect() {
    fd_ = ::socket(addr_.ss_family, (tcp_ ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Internal(fmt::format("audit sink {}: socket: {}", name(), std::strerror(errno)));
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) != 0) {
      Status st = Unavailable(fmt::format("audit sink {}: connect: {}", name(), std::strerror(errno)));
      ::close(fd_);
      fd_ = -1;
      return st;
    }
    return Status::Ok();
  }
  Status SendAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Unavailable(fmt::format("audit sink {}: send: {}", name(), std::strerror(errno)));
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }
  Status SendDatagram(std::string_view msg) {
    ssize_t n = ::send(fd_, msg.data(), msg.size(), MSG_NOSIGNAL);
    if (n < 0) return Unavailable(fmt::format("audit sink {}: send: {}", name(), std::strerror(errno)));
    return Status::Ok();
  }

  SyslogSinkOptions opt_;
  bool tcp_;
  sockaddr_storage addr_;
  socklen_t addr_len_;
  int fd_ = -1;
};

// -------------------------------------------------------------- function ----

class DeliverySink final : public QueuedSink {
 public:
  DeliverySink(std::string name, SinkQueueOptions o, std::function<Status(const std::vector<std::string>&)> fn)
      : QueuedSink(std::move(name), o), fn_(std::move(fn)) {
    Start();
  }
  ~DeliverySink() override { Stop(); }

 protected:
  Status Deliver(const std::vector<std::string>& lines) override { return fn_(lines); }

 private:
  std::function<Status(const std::vector<std::string>&)> fn_;
};

}  // namespace

Result<std::shared_ptr<Sink>> MakeFileSink(FileSinkOptions options) {
  if (options.path.empty()) return InvalidArgument("audit file sink: no path");
  if (options.max_bytes < 4096) return InvalidArgument("audit file sink: max_bytes must be at least 4096");
  if (options.keep < 0 || options.keep > 1000) return InvalidArgument("audit file sink: keep must be 0..1000");
  return std::shared_ptr<Sink>(std::make_shared<FileSink>(std::move(options)));
}

Result<std::shared_ptr<Sink>> MakeSyslogSink(SyslogSinkOptions options) {
  std::string_view a = options.address;
  bool tcp;
  if (a.substr(0, 6) == "udp://") {
    tcp = false;
  } else if (a.substr(0, 6) == "tcp://") {
    tcp = true;
  } else {
    return InvalidArgument(fmt::format("audit syslog sink: address must be udp://host:port or tcp://host:port, not '{}'", a));
  }
  a.remove_prefix(6);
  size_t colon = a.rfind(':');
  if (colon == std::string_view::npos) return InvalidArgument("audit syslog sink: the address has no port");
  std::string host(a.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  for (char c : a.substr(colon + 1)) port = (c >= '0' && c <= '9' && port < 70000) ? port * 10 + (c - '0') : 70000;
  if (port <= 0 || port > 65535) return InvalidArgument("audit syslog sink: bad port");
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    return InvalidArgument(fmt::format("audit syslog sink: host must be an IP address, not '{}'", host));
  }
  if (options.facility < 0 || options.facility > 23) return InvalidArgument("audit syslog sink: facility must be 0..23");
  return std::shared_ptr<Sink>(std::make_shared<SyslogSink>(std::move(options), tcp, ss, len));
}

std::shared_ptr<Sink> MakeDeliverySink(std::string name, SinkQueueOptions options,
                                       std::function<Status(const std::vector<std::string>& lines)> deliver) {
  return std::make_shared<DeliverySink>(std::move(name), options, std::move(deliver));
}

}  // namespace aigis::audit

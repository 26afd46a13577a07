// core: the vocabulary every aigis module speaks.
//
// * Status / Result<T>: errors are values across module boundaries. A Code is
//   mapped to an HTTP status in exactly one place (HttpStatusFor).
// * Clock: injected wherever time is read, so tests never sleep.
// * Event: a structured record emitted by a stage (access, decision, alert),
//   consumed by EventSinks (access log, audit, detectors).
// * Small string helpers used on the request path (no allocation).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace aigis {

// Canonical error codes (after absl::StatusCode), plus the two HTTP-specific
// outcomes a gateway has to report (payload too large, payment required).
enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,    // 400: the caller sent something malformed
  kUnauthenticated,    // 401
  kPaymentRequired,    // 402: budget exhausted
  kPermissionDenied,   // 403
  kNotFound,           // 404
  kAlreadyExists,      // 409
  kPayloadTooLarge,    // 413
  kResourceExhausted,  // 429: rate limited
  kCancelled,          // 499: the client went away
  kInternal,           // 500
  kUnavailable,        // 502 at the gateway: upstream unreachable or failed
  kDeadlineExceeded,   // 504 at the gateway: upstream too slow
  kFailedPrecondition, // 503: not ready / draining
};

std::string_view CodeName(Code code);
// The one mapping from Code to HTTP status.
int HttpStatusFor(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }

// Result<T>: a T or a non-OK Status. (std::expected is C++23.)
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define AIGIS_CONCAT_INNER(a, b) a##b
#define AIGIS_CONCAT(a, b) AIGIS_CONCAT_INNER(a, b)
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::aigis::Status _st = (expr);            \
    if (!_st.ok()) return _st;               \
  } while (0)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(AIGIS_CONCAT(_res_, __LINE__), lhs, expr)

// Time. Wall time for records, monotonic time for durations and deadlines.
using WallTime = std::chrono::system_clock::time_point;
using MonoTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual WallTime Now() const = 0;
  virtual MonoTime Monotonic() const = 0;
};
class SystemClock final : public Clock {
 public:
  WallTime Now() const override { return std::chrono::system_clock::now(); }
  MonoTime Monotonic() const override { return std::chrono::steady_clock::now(); }
};

// RFC 3339 with microseconds, UTC ("2026-11-23T14:45:00.123456Z").
std::string FormatRfc3339(WallTime t);

// Parses "250ms", "10s", "5m", "1h", "1m30s". Bare numbers are rejected so
// that a config never silently means milliseconds when seconds were meant.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// An Event is one structured fact: an access record, a stage decision, an
// alert. Fields keep insertion order so that sinks print them predictably.
struct Event {
  using Value = std::variant<std::string, int64_t, double, bool>;
  std::string kind;          // "access", "config_reload", ...
  WallTime time{};
  std::string tenant = "default";
  std::string request_id;
  std::vector<std::pair<std::string, Value>> fields;

  Event& Set(std::string key, Value value) {
    fields.emplace_back(std::move(key), std::move(value));
    return *this;
  }
};

// Receives events. Implementations must be thread-safe and must not block the
// caller on I/O (queue, then write elsewhere).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Emit(const Event& event) = 0;
};

// HTTP header fields, in order, with case-insensitive lookup. Lives in core so
// that stages (gateway.h) can read request headers without the net module.
struct Header {
  std::string name;
  std::string value;
};

class Headers {
 public:
  const std::string* Find(std::string_view name) const;
  std::string_view Get(std::string_view name) const;  // "" if absent
  void Add(std::string name, std::string value) { items_.push_back({std::move(name), std::move(value)}); }
  void Set(std::string name, std::string value);  // replaces every existing value
  void Remove(std::string_view name);
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  std::vector<Header>::const_iterator begin() const { return items_.begin(); }
  std::vector<Header>::const_iterator end() const { return items_.end(); }
  std::vector<Header>::iterator begin() { return items_.begin(); }  // to move values out
  std::vector<Header>::iterator end() { return items_.end(); }

 private:
  std::vector<Header> items_;
};

// ASCII-only helpers for protocol tokens (header names, schemes).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWith(std::string_view s, std::string_view prefix);
std::string ToLowerAscii(std::string_view s);
std::string_view TrimWhitespace(std::string_view s);
// Shell-style glob with '*' (any run) and '?' (one char), case-sensitive.
bool GlobMatch(std::string_view pattern, std::string_view text);
// True if every byte sequence in s is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);
// application/x-www-form-urlencoded value: '+' is a space, %XX a byte;
// kInvalidArgument on a truncated or non-hex escape.
Result<std::string> FormUrlDecode(std::string_view s);
// "a=1&b=2" (a form body or a URL query): the decoded pairs in order, empty
// parts skipped; kInvalidArgument on a bad escape or more than `max_pairs`.
Result<std::vector<std::pair<std::string, std::string>>> ParseUrlEncoded(std::string_view text, size_t max_pairs);

}  // namespace aigis

// Internal to the gateway module: the audit record of an exchange or of an
// admin action (record.cc), as docs/audit.md specifies it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "gateway/gateway.h"

namespace aigis::gateway {

struct RecordInputs {
  int status = 0;                        // what the client got (499: it left)
  std::chrono::microseconds latency{0};  // from the request's arrival to the record
  std::string response_sha256;           // hex, of the bytes sent to the client ("" if none)
  bool capture_bodies = false;
  const std::string* response_body = nullptr;  // what the client got, when captured
};

// The record's JSON (canonicalized by the log on append).
std::string ExchangeRecord(const Exchange& ex, const RecordInputs& in);

// "allow", "deny" (a stage denied) or "error" (refused before any stage, or
// the upstream failed).
std::string_view ExchangeDecision(const Exchange& ex, int status);

// An admin action: a call to the admin listener, or to the proxy's identity
// endpoints, that changed something (any method but GET and HEAD).
struct ActionRecord {
  std::string kind = "admin";  // admin | identity | config
  std::string tenant = "default";
  std::string request_id;
  WallTime time{};
  std::string method, path, remote;
  int status = 0;
  std::string action;     // e.g. "POST /admin/v1/agents"
  std::string principal;  // who: "admin" (the admin token), or the client id
  std::string request_sha256;
  std::string detail;     // free text (config reload: what changed or why it failed)
};
std::string AdminRecord(const ActionRecord& a);

}  // namespace aigis::gateway

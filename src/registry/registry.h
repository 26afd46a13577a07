// registry: what aigis knows about the things agents call. For now, MCP
// tools pinned by fingerprint (the "rug pull" defence of issue 8): a tool a
// server lists for the first time waits for an admin's approval (unless the
// server is configured to auto-approve new tools), and a tool whose
// definition changes after approval is quarantined, with a diff of what
// changed, until the new version is approved.
//
// Domain only: the gateway's MCP adapter feeds it each server's tools/list
// and hides or refuses what is not approved; the admin API approves.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"
#include "store/store.h"

namespace aigis::registry {

// The fingerprint of an MCP tool (one element of tools/list's "tools"): the
// hex SHA-256 of its defining members — name, title, description,
// inputSchema, outputSchema and annotations — serialised as one JSON object
// with the members of every object sorted by name. Other members (_meta,
// icons) do not count. Errors: not a JSON object, or no string "name".
Result<std::string> ToolFingerprint(std::string_view tool_json);

enum class ToolState {
  kApproved,     // callable
  kPending,      // never approved: hidden and uncallable until an admin approves
  kQuarantined,  // changed since its approval: hidden and uncallable until the new version is approved
};
std::string_view ToString(ToolState s);

// One place where two versions of a tool differ: an RFC 6901 pointer into
// the tool, and the JSON text there before and after ("" where absent).
// Long values are cut to 512 bytes, ending in "…".
struct ToolChange {
  std::string pointer, before, after;
  bool operator==(const ToolChange&) const = default;
};

struct ToolStatus {
  std::string server, tool;
  ToolState state = ToolState::kPending;
  std::string fingerprint;           // of the version last listed
  std::string approved_fingerprint;  // "" if never approved
  std::vector<ToolChange> changes;   // approved version -> listed one, when quarantined (at most 64)
  // This listing is the first to show this version (a new tool or a new
  // change): the caller raises its alert event once, here.
  bool first_seen = false;
};

struct PinPolicy {
  bool auto_approve = false;  // approve tools seen for the first time (never changed ones)
};

// Persistent pins, per tenant and server, in the store (table
// registry_tools). Thread-safe; calls block on the store.
class ToolPins {
 public:
  static Result<std::unique_ptr<ToolPins>> Open(std::shared_ptr<store::Store> store, const Clock* clock = nullptr);

  // Records a server's tools/list result (`tools_json`: the "tools" array)
  // and returns each listed tool's status, in list order. Refused whole (and
  // nothing recorded) when the list is not an array of tool objects with
  // unique string names.
  Result<std::vector<ToolStatus>> Observe(std::string_view tenant, std::string_view server, std::string_view tools_json,
                                          const PinPolicy& policy);
  // Approves the version of `tool` last listed. `fingerprint` must be that
  // version's (what the admin reviewed, not something listed since):
  // FailedPrecondition otherwise; NotFound for a tool never listed.
  Result<ToolStatus> Approve(std::string_view tenant, std::string_view server, std::string_view tool,
                             std::string_view fingerprint, std::string_view approved_by);
  // Every tool of the server ever listed, by name.
  Result<std::vector<ToolStatus>> List(std::string_view tenant, std::string_view server);
  // Grows with every approval in this process: a reader that caches
  // statuses drops them when it changed.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  ToolPins(std::shared_ptr<store::Store> store, const Clock* clock) : store_(std::move(store)), clock_(clock) {}
  std::shared_ptr<store::Store> store_;
  const Clock* clock_;
  SystemClock system_clock_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace aigis::registry

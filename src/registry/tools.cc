// MCP tool pinning: fingerprints, the approve / quarantine state machine,
// and diffs between versions, kept in the store.
#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "crypto/crypto.h"
#include "registry/registry.h"

namespace aigis::registry {
namespace {

namespace json = boost::json;

constexpr std::string_view kDefining[] = {"annotations", "description", "inputSchema", "name", "outputSchema", "title"};
constexpr size_t kMaxChanges = 64;
constexpr size_t kMaxValue = 512;

// JSON text with the members of every object in name order: the same tool
// always gives the same bytes, whatever order its server wrote them in.
void WriteSorted(const json::value& v, std::string& out) {
  if (v.is_object()) {
    std::vector<const json::key_value_pair*> members;
    for (const auto& kv : v.get_object()) members.push_back(&kv);
    std::sort(members.begin(), members.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
    out += '{';
    for (size_t i = 0; i < members.size(); ++i) {
      if (i > 0) out += ',';
      out += json::serialize(json::string(members[i]->key()));
      out += ':';
      WriteSorted(members[i]->value(), out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    bool first = true;
    for (const auto& x : v.get_array()) {
      if (!first) out += ',';
      first = false;
      WriteSorted(x, out);
    }
    out += ']';
  } else {
    out += json::serialize(v);
  }
}

// The defining members of a tool object, sorted.
Result<std::pair<std::string, std::string>> Definition(const json::value& tool) {  // name, sorted text
  if (!tool.is_object()) return InvalidArgument("a tool is not a JSON object");
  const auto& o = tool.get_object();
  const json::value* name = o.if_contains("name");
  if (name == nullptr || !name->is_string() || name->get_string().empty()) {
    return InvalidArgument("a tool has no \"name\" string");
  }
  json::object def;
  for (std::string_view k : kDefining) {
    if (const json::value* v = o.if_contains(k)) def.emplace(k, *v);
  }
  std::string text;
  WriteSorted(def, text);
  return std::pair{std::string(name->get_string()), std::move(text)};
}

std::string Fingerprint(std::string_view definition) { return crypto::HexEncode(crypto::Sha256(definition)); }

std::string Cut(std::string s) {
  if (s.size() <= kMaxValue) return s;
  s.resize(kMaxValue);
  while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();  // whole UTF-8 characters
  if (!s.empty()) s.pop_back();
  return s + "…";
}

std::string Escape(std::string_view key) {  // RFC 6901
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

void Diff(const json::value* a, const json::value* b, const std::string& pointer, std::vector<ToolChange>& out) {
  if (out.size() >= kMaxChanges) return;
  if (a != nullptr && b != nullptr && a->is_object() && b->is_object()) {
    std::map<std::string_view, std::pair<const json::value*, const json::value*>> keys;
    for (const auto& kv : a->get_object()) keys[kv.key()].first = &kv.value();
    for (const auto& kv : b->get_object()) keys[kv.key()].second = &kv.value();
    for (const auto& [k, v] : keys) Diff(v.first, v.second, pointer + "/" + Escape(k), out);
    return;
  }
  if (a != nullptr && b != nullptr && a->is_array() && b->is_array()) {
    const auto &x = a->get_array(), &y = b->get_array();
    for (size_t i = 0; i < std::max(x.size(), y.size()); ++i) {
      Diff(i < x.size() ? &x[i] : nullptr, i < y.size() ? &y[i] : nullptr, pointer + "/" + std::to_string(i), out);
    }
    return;
  }
  if (a != nullptr && b != nullptr && *a == *b) return;
  std::string before, after;
  if (a != nullptr) WriteSorted(*a, before);
  if (b != nullptr) WriteSorted(*b, after);
  out.push_back({pointer, Cut(std::move(before)), Cut(std::move(after))});
}

std::vector<ToolChange> Changes(std::string_view approved_def, std::string_view listed_def) {
  std::vector<ToolChange> out;
  json::error_code ea, eb;
  json::value a = json::parse(approved_def, ea), b = json::parse(listed_def, eb);
  if (ea || eb) return {{"", std::string(approved_def), std::string(listed_def)}};  // not ours: show both whole
  Diff(&a, &b, "", out);
  return out;
}

int64_t Micros(WallTime t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> m = {
      {1, "mcp tool pins", R"(
CREATE TABLE registry_tools (
  tenant TEXT NOT NULL,
  server TEXT NOT NULL,
  tool TEXT NOT NULL,
  approved_fingerprint TEXT NOT NULL DEFAULT '',
  approved_def TEXT NOT NULL DEFAULT '',
  listed_fingerprint TEXT NOT NULL,
  listed_def TEXT NOT NULL,
  first_seen_us INTEGER NOT NULL,
  listed_changed_us INTEGER NOT NULL,
  approved_us INTEGER NOT NULL DEFAULT 0,
  approved_by TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant, server, tool)
);
)"}};
  return m;
}

constexpr std::string_view kColumns =
    "tool, approved_fingerprint, approved_def, listed_fingerprint, listed_def";

// A tool's status from its approved and listed versions (fingerprint and
// definition each).
ToolStatus StatusOf(std::string_view server, std::string_view tool, std::string_view approved_fp,
                    std::string_view approved_def, std::string_view listed_fp, std::string_view listed_def) {
  ToolStatus s;
  s.server = std::string(server);
  s.tool = std::string(tool);
  s.approved_fingerprint = std::string(approved_fp);
  s.fingerprint = std::string(listed_fp);
  if (approved_fp.empty()) {
    s.state = ToolState::kPending;
  } else if (approved_fp == listed_fp) {
    s.state = ToolState::kApproved;
  } else {
    s.state = ToolState::kQuarantined;
    s.changes = Changes(approved_def, listed_def);
  }
  return s;
}

ToolStatus StatusOf(std::string_view server, const store::Row& r) {  // a row of kColumns
  return StatusOf(server, r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4));
}

}  // namespace

std::string_view ToString(ToolState s) {
  switch (s) {
    case ToolState::kApproved: return "approved";
    case ToolState::kPending: return "pending";
    case ToolState::kQuarantined: return "quarantined";
  }
  return "pending";
}

Result<std::string> ToolFingerprint(std::string_view tool_json) {
  json::error_code ec;
  json::value v = json::parse(tool_json, ec);
  if (ec) return InvalidArgument("a tool is not JSON: " + ec.message());
  ASSIGN_OR_RETURN(auto def, Definition(v));
  return Fingerprint(def.second);
}

Result<std::unique_ptr<ToolPins>> ToolPins::Open(std::shared_ptr<store::Store> store, const Clock* clock) {
  if (store == nullptr) return InvalidArgument("registry: no store");
  RETURN_IF_ERROR(store->Migrate("registry", Migrations()));
  std::unique_ptr<ToolPins> p(new ToolPins(std::move(store), clock));
  if (p->clock_ == nullptr) p->clock_ = &p->system_clock_;
  return p;
}

Result<std::vector<ToolStatus>> ToolPins::Observe(std::string_view tenant, std::string_view server,
                                                  std::string_view tools_json, const PinPolicy& policy) {
  json::error_code ec;
  json::value v = json::parse(tools_json, ec);
  if (ec || !v.is_array()) return InvalidArgument(fmt::format("registry: {}: the tools list is not a JSON array", server));
  std::vector<std::pair<std::string, std::string>> defs;  // name, definition
  for (const auto& t : v.get_array()) {
    auto d = Definition(t);
    if (!d.ok()) return InvalidArgument(fmt::format("registry: {}: {}", server, d.status().message()));
    for (const auto& seen : defs) {
      if (seen.first == d->first) {
        return InvalidArgument(fmt::format("registry: {}: the tool \"{}\" is listed twice", server, d->first));
      }
    }
    defs.push_back(std::move(d).value());
  }
  const int64_t now = Micros(clock_->Now());
  std::vector<ToolStatus> out;
  Status st = store_->Transaction([&](store::Session& s) -> Status {
    out.clear();
    for (const auto& [name, def] : defs) {
      std::string fp = Fingerprint(def);
      ASSIGN_OR_RETURN(auto row, s.QueryOne(fmt::format("SELECT {} FROM registry_tools WHERE tenant = ?1 AND server = ?2 "
                                                        "AND tool = ?3",
                                                        kColumns),
                                            {std::string(tenant), std::string(server), name}));
      ToolStatus status;
      if (!row) {
        bool approve = policy.auto_approve;
        RETURN_IF_ERROR(s.Exec("INSERT INTO registry_tools (tenant, server, tool, approved_fingerprint, approved_def, "
                               "listed_fingerprint, listed_def, first_seen_us, listed_changed_us, approved_us, approved_by) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
                               {std::string(tenant), std::string(server), name, approve ? fp : std::string(),
                                approve ? def : std::string(), fp, def, now, approve ? now : int64_t{0},
                                approve ? std::string("auto_approve") : std::string()})
                            .status());
        status = StatusOf(server, name, approve ? fp : "", approve ? def : "", fp, def);
        status.first_seen = true;
      } else {
        bool changed = row->Text(3) != fp;
        if (changed) {
          RETURN_IF_ERROR(s.Exec("UPDATE registry_tools SET listed_fingerprint = ?4, listed_def = ?5, "
                                 "listed_changed_us = ?6 WHERE tenant = ?1 AND server = ?2 AND tool = ?3",
                                 {std::string(tenant), std::string(server), name, fp, def, now})
                              .status());
        }
        status = StatusOf(server, name, row->Text(1), row->Text(2), fp, def);
        status.first_seen = changed;
      }
      out.push_back(std::move(status));
    }
    return Status::Ok();
  });
  RETURN_IF_ERROR(st);
  return out;
}

Result<ToolStatus> ToolPins::Approve(std::string_view tenant, std::string_view server, std::string_view tool,
                                     std::string_view fingerprint, std::string_view approved_by) {
  const int64_t now = Micros(clock_->Now());
  ToolStatus out;
  Status st = store_->Transaction([&](store::Session& s) -> Status {
    ASSIGN_OR_RETURN(auto row, s.QueryOne(fmt::format("SELECT {} FROM registry_tools WHERE tenant = ?1 AND server = ?2 "
                                                      "AND tool = ?3",
                                                      kColumns),
                                          {std::string(tenant), std::string(server), std::string(tool)}));
    if (!row) return NotFound(fmt::format("registry: server \"{}\" has never listed a tool \"{}\"", server, tool));
    if (row->Text(3) != fingerprint) {
      return Status(Code::kFailedPrecondition,
                    fmt::format("registry: {}/{}: the version listed now has fingerprint {}, not {} (review it again)",
                                server, tool, row->Text(3), fingerprint));
    }
    RETURN_IF_ERROR(s.Exec("UPDATE registry_tools SET approved_fingerprint = listed_fingerprint, approved_def = listed_def, "
                           "approved_us = ?4, approved_by = ?5 WHERE tenant = ?1 AND server = ?2 AND tool = ?3",
                           {std::string(tenant), std::string(server), std::string(tool), now, std::string(approved_by)})
                        .status());
    out = StatusOf(server, tool, row->Text(3), row->Text(4), row->Text(3), row->Text(4));
    return Status::Ok();
  });
  RETURN_IF_ERROR(st);
  generation_.fetch_add(1, std::memory_order_release);
  return out;
}

Result<std::vector<ToolStatus>> ToolPins::List(std::string_view tenant, std::string_view server) {
  ASSIGN_OR_RETURN(auto rows, store_->Query(fmt::format("SELECT {} FROM registry_tools WHERE tenant = ?1 AND server = ?2 "
                                                        "ORDER BY tool",
                                                        kColumns),
                                            {std::string(tenant), std::string(server)}));
  std::vector<ToolStatus> out;
  for (const auto& r : rows) out.push_back(StatusOf(server, r));
  return out;
}

}  // namespace aigis::registry

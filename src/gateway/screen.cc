// The guard screens: rules over the prompt before it goes upstream, and over
// the answer (whole or streamed) before the client sees it; masking and
// unmasking; the external classifier's request and verdict.
#include "gateway/screen.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>

#include "gateway/llm.h"

namespace aigis::gateway {

namespace json = boost::json;

// What the request screen leaves for the response screen and the classifier.
struct ScreenState {
  std::shared_ptr<const guard::RuleSet> rules;
  guard::Policy policy;
  const config::GuardPolicyConfig* policy_cfg = nullptr;  // in the exchange's config snapshot
  bool blocked = false;
  guard::MaskingVault vault;
  // The response stream: one scanner across all text deltas.
  std::unique_ptr<guard::RuleSet::Stream> stream;
  std::optional<guard::MaskingVault::StreamUnmasker> unmasker;
  uint64_t stream_bytes = 0;                   // text fed to the scanner so far
  std::vector<guard::Finding> stream_findings;  // non-mask findings, for the verdict
  bool response_masked = false;                 // a mask rule matched the response

  bool Applies(const guard::Rule& r) const {
    if (policy_cfg == nullptr) return true;
    const auto& off = policy_cfg->disabled_rules;
    return std::find(off.begin(), off.end(), r.id) == off.end() &&
           std::find(off.begin(), off.end(), r.category) == off.end();
  }
  std::vector<guard::Finding> Filter(std::vector<guard::Finding> fs) const {
    if (policy_cfg == nullptr || policy_cfg->disabled_rules.empty()) return fs;
    std::erase_if(fs, [&](const guard::Finding& f) { return !Applies(*f.rule); });
    return fs;
  }
  bool enforce() const { return policy.mode == guard::Policy::Mode::kEnforce; }
};

namespace {

guard::Policy::Mode ModeOf(const std::string& m) {
  if (m == "monitor") return guard::Policy::Mode::kMonitor;
  if (m == "off") return guard::Policy::Mode::kOff;
  return guard::Policy::Mode::kEnforce;
}

// The first policy whose routes and principals match, else the guard-wide one.
void ResolvePolicy(const config::GuardConfig& cfg, const Exchange& ex, ScreenState& st) {
  st.policy.mode = ModeOf(cfg.mode);
  st.policy.block_threshold = cfg.block_threshold;
  st.policy.alert_threshold = cfg.alert_threshold;
  std::string who = ex.principal.kind + ":" + ex.principal.id;
  for (const auto& p : cfg.policies) {
    bool route = p.routes.empty() || std::find(p.routes.begin(), p.routes.end(), ex.route) != p.routes.end();
    bool principal = p.principals.empty() || std::any_of(p.principals.begin(), p.principals.end(),
                                                         [&](const std::string& g) { return GlobMatch(g, who); });
    if (!route || !principal) continue;
    st.policy_cfg = &p;
    st.policy.mode = ModeOf(p.mode);
    st.policy.block_threshold = p.block_threshold;
    st.policy.alert_threshold = p.alert_threshold;
    return;
  }
}

guard::Where WhereFor(std::string_view role) {
  return role == "tool" ? guard::Where::kToolResult : guard::Where::kRequest;
}

void AddIds(const std::vector<guard::Finding>& fs, std::vector<std::string>& ids) {
  for (const auto& f : fs) {
    if (std::find(ids.begin(), ids.end(), f.rule->id) == ids.end()) ids.push_back(f.rule->id);
  }
}

bool HasMask(const std::vector<guard::Finding>& fs) {
  return std::any_of(fs.begin(), fs.end(), [](const guard::Finding& f) { return f.rule->action == guard::Action::kMask; });
}

// pass | alert | block | monitor, for a verdict under a mode.
std::string Outcome(const guard::Verdict& v, const ScreenState& st, bool masked_something) {
  if (v.block) return "block";
  bool would_block = v.top != nullptr && (v.top->action == guard::Action::kBlock || v.score >= st.policy.block_threshold);
  if (st.policy.mode == guard::Policy::Mode::kMonitor && (would_block || masked_something)) return "monitor";
  return v.alert ? "alert" : "pass";
}

Decision BlockedBy(const guard::Verdict& v, std::string_view what) {
  return Decision::Deny(400, "content_blocked",
                        fmt::format("the {} was blocked by guardrail rule {} ({}): {} (risk score {:.2f})", what,
                                    v.top->id, v.top->category, v.top->message, v.score));
}

class ScreenRequestStageImpl final : public ScreenRequestStage {
 public:
  explicit ScreenRequestStageImpl(std::shared_ptr<const guard::RuleSet> rules) : rules_(std::move(rules)) {}
  std::string_view name() const override { return "screen_request"; }
  void SetRules(std::shared_ptr<const guard::RuleSet> rules) override { rules_.store(std::move(rules)); }
  std::shared_ptr<const guard::RuleSet> rules() const override { return rules_.load(); }

  Decision OnRequest(Exchange& ex) override {
    if (ex.config == nullptr || !ex.config->guard.enabled) return Decision::Continue();
    auto st = std::make_shared<ScreenState>();
    ResolvePolicy(ex.config->guard, ex, *st);
    if (st->policy_cfg) ex.guard.policy = st->policy_cfg->name;
    if (st->policy.mode == guard::Policy::Mode::kOff) return Decision::Continue();
    st->rules = rules_.load();
    if (!st->rules) return Decision::Deny(503, "guard_unavailable", "the guard rules are not loaded");  // fail closed
    const guard::RuleSet& rules = *st->rules;

    std::vector<std::vector<guard::Finding>> per_message(ex.messages.size());
    std::vector<guard::Finding> all;
    for (size_t i = 0; i < ex.messages.size(); ++i) {
      per_message[i] = st->Filter(rules.Scan(ex.messages[i].text, WhereFor(ex.messages[i].role)));
      for (auto& f : per_message[i]) f.pointer = ex.messages[i].pointer;
      all.insert(all.end(), per_message[i].begin(), per_message[i].end());
    }
    bool to_mask = HasMask(all);
    guard::Verdict v = guard::Judge(std::move(all), st->policy);
    ex.guard.screened = true;
    ex.guard.score = v.score;
    AddIds(v.findings, ex.guard.rules);
    for (const auto& f : v.findings) {
      std::string field = f.rule->id + "@" + f.pointer;
      if (std::find(ex.guard.fields.begin(), ex.guard.fields.end(), field) == ex.guard.fields.end()) {
        ex.guard.fields.push_back(std::move(field));
      }
    }
    ex.guard.outcome = Outcome(v, *st, to_mask);
    ex.screen = st;
    if (v.block) {
      st->blocked = true;
      return BlockedBy(v, "request");
    }
    if (to_mask && st->enforce()) {
      // The upstream reads the forward body: mask it field by field (spans
      // are per field there), and the protocol-neutral view the same way
      // (the vault gives a value the same placeholder in both).
      for (size_t i = 0; i < ex.messages.size(); ++i) {
        if (HasMask(per_message[i])) ex.messages[i].text = st->vault.Mask(ex.messages[i].text, per_message[i]);
      }
      auto rewritten = llm::RewriteRequestText(ex.endpoint, &ex.forward_body, [&](std::string& text, std::string_view role) {
        auto fs = st->Filter(rules.Scan(text, WhereFor(role)));
        if (!HasMask(fs)) return false;
        text = st->vault.Mask(text, fs);
        return true;
      });
      if (!rewritten) {
        return Decision::Deny(500, "guard_error", "the request could not be masked: its body is not a JSON object");
      }
      ex.guard.masked = st->vault.Digest();
    }
    return Decision::Continue();
  }

 private:
  std::atomic<std::shared_ptr<const guard::RuleSet>> rules_;
};

class ScreenResponseStage final : public ResponseStage {
 public:
  std::string_view name() const override { return "screen_response"; }

  Decision OnBody(Exchange& ex, std::string& body) override {
    ScreenState* st = Active(ex);
    if (st == nullptr) return Decision::Continue();
    std::vector<guard::Finding> all;
    auto rewritten = llm::RewriteResponseText(ex.protocol, ex.endpoint, &body, [&](std::string& text, std::string_view) {
      auto fs = st->Filter(st->rules->Scan(text, guard::Where::kResponse));
      std::string out = st->enforce() && HasMask(fs) ? st->vault.Mask(text, fs, /*restore=*/false) : text;
      all.insert(all.end(), fs.begin(), fs.end());
      if (st->vault.restores()) out = st->vault.Unmask(out);
      if (out == text) return false;
      text = std::move(out);
      return true;
    });
    if (!rewritten) {
      // Not JSON: the text cannot be located, so the body is scanned whole
      // and what must be masked cannot be: fail closed.
      all = st->Filter(st->rules->Scan(body, guard::Where::kResponse));
      if (HasMask(all) && st->enforce()) {
        ex.guard.response_screened = true;
        ex.guard.response_outcome = "block";
        AddIds(all, ex.guard.response_rules);
        return Decision::Deny(502, "content_blocked",
                              "the upstream answered a body aigis cannot parse that carries a value to mask");
      }
    }
    st->response_masked = HasMask(all);
    return Verdict(ex, *st, std::move(all));
  }

  Decision OnEvent(Exchange& ex, std::string_view event, std::string& data) override {
    ScreenState* st = Active(ex);
    if (st == nullptr) return Decision::Continue();
    if (!st->stream) {
      st->stream = st->rules->OpenStream(guard::Where::kResponse);
      st->unmasker.emplace(st->vault);
    }
    const guard::Rule* split = nullptr;  // a value to mask that began in an event already sent
    auto take = [&](std::vector<guard::Finding> fs, uint64_t base, std::vector<guard::Finding>* local) {
      for (auto& f : st->Filter(std::move(fs))) {
        if (f.rule->action != guard::Action::kMask) {
          st->stream_findings.push_back(f);
          continue;
        }
        st->response_masked = true;
        AddIds({f}, ex.guard.response_rules);
        if (!st->enforce()) continue;
        if (local != nullptr && f.begin >= base) {
          f.begin -= base;
          f.end -= base;
          local->push_back(f);
        } else if (split == nullptr) {
          split = f.rule;
        }
      }
    };
    auto rewritten = llm::RewriteEventText(ex.protocol, ex.endpoint, event, &data, [&](std::string& text, std::string_view) {
      uint64_t base = st->stream_bytes;
      st->stream_bytes += text.size();
      std::vector<guard::Finding> local;
      take(st->stream->Feed(text), base, &local);
      std::string out = local.empty() ? text : st->vault.Mask(text, local, /*restore=*/false);
      out = st->unmasker->Feed(out);
      if (out == text) return false;
      text = std::move(out);
      return true;
    });
    if (!rewritten && data != "[DONE]" && !data.empty()) {
      // An event that is not JSON: its text cannot be located; scan it as is.
      take(st->rules->Scan(data, guard::Where::kResponse), 0, nullptr);
    }
    if (llm::IsStreamEnd(ex.protocol, event, data)) take(st->stream->Finish(), st->stream_bytes, nullptr);
    if (split != nullptr) {
      ex.guard.response_screened = true;
      ex.guard.response_outcome = "block";
      AddIds({guard::Finding{split}}, ex.guard.response_rules);
      return Decision::Deny(400, "content_blocked",
                            fmt::format("the response was ended: guardrail rule {} ({}) found {} split across "
                                        "streamed events, part of it already sent",
                                        split->id, split->category, split->message));
    }
    return Verdict(ex, *st, st->stream_findings);
  }

 private:
  static ScreenState* Active(Exchange& ex) {
    ScreenState* st = ex.screen.get();
    if (st == nullptr || st->blocked || st->rules == nullptr || ex.config == nullptr ||
        !ex.config->guard.screen_responses || ex.upstream_status < 200 || ex.upstream_status >= 300) {
      return nullptr;
    }
    return st;
  }

  static Decision Verdict(Exchange& ex, ScreenState& st, std::vector<guard::Finding> findings) {
    guard::Verdict v = guard::Judge(std::move(findings), st.policy);
    ex.guard.response_screened = true;
    ex.guard.response_score = v.score;
    AddIds(v.findings, ex.guard.response_rules);
    ex.guard.response_outcome = Outcome(v, st, st.response_masked);
    if (v.block) {
      st.blocked = true;
      return BlockedBy(v, "response");
    }
    return Decision::Continue();
  }
};

}  // namespace

std::shared_ptr<ScreenRequestStage> MakeScreenRequestStage(std::shared_ptr<const guard::RuleSet> rules) {
  return std::make_shared<ScreenRequestStageImpl>(std::move(rules));
}

std::shared_ptr<ResponseStage> MakeScreenResponseStage() { return std::make_shared<ScreenResponseStage>(); }

// ------------------------------------------------------------ Classifier ----

std::optional<std::string> ClassifierRequestBody(const Exchange& ex) {
  if (ex.config == nullptr || !ex.config->guard.enabled || ex.config->guard.classifier.url.empty()) return std::nullopt;
  const ScreenState* st = ex.screen.get();
  if (st == nullptr || st->blocked || st->policy.mode == guard::Policy::Mode::kOff) return std::nullopt;
  const auto& k = ex.config->guard.classifier;
  json::object body;
  if (!k.model.empty()) body["model"] = k.model;
  // ex.messages is already masked: the classifier sees what the upstream sees.
  if (k.kind == "moderation") {
    json::array input;
    for (const auto& m : ex.messages) {
      if (!m.text.empty()) input.emplace_back(m.text);
    }
    body["input"] = std::move(input);
  } else {
    // A guard model over chat completions (Llama Guard): the conversation
    // with its system prompt left out, roles folded to user / assistant.
    json::array msgs;
    for (const auto& m : ex.messages) {
      if (m.role == "system" || m.text.empty()) continue;
      msgs.push_back(json::object{{"role", m.role == "assistant" ? "assistant" : "user"}, {"content", m.text}});
    }
    body["messages"] = std::move(msgs);
    body["temperature"] = 0;
    body["max_tokens"] = 20;
  }
  return json::serialize(body);
}

namespace {

// {flagged, categories} from the classifier's body, or why it is unreadable.
Result<std::pair<bool, std::string>> ReadClassifier(const std::string& kind, const std::string& text) {
  std::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgument("the answer is not a JSON object");
  const auto& obj = v.get_object();
  if (kind == "moderation") {
    // {"results":[{"flagged":true,"categories":{"violence":true,...}}]}
    const auto* results = obj.if_contains("results");
    if (!results || !results->is_array() || results->get_array().empty()) return InvalidArgument("no 'results' in the answer");
    bool flagged = false;
    std::string cats;
    for (const auto& r : results->get_array()) {
      const auto* ro = r.if_object();
      const auto* f = ro ? ro->if_contains("flagged") : nullptr;
      if (!f || !f->is_bool()) return InvalidArgument("a result has no boolean 'flagged'");
      flagged |= f->get_bool();
      if (const auto* c = ro->if_contains("categories"); c && c->is_object()) {
        for (const auto& [name, on] : c->get_object()) {
          if (on.is_bool() && on.get_bool() && cats.find(std::string(name)) == std::string::npos) {
            cats += (cats.empty() ? "" : ",") + std::string(name);
          }
        }
      }
    }
    return std::pair{flagged, cats};
  }
  // {"choices":[{"message":{"content":"unsafe\nS1,S10"}}]}
  const auto* choices = obj.if_contains("choices");
  if (!choices || !choices->is_array() || choices->get_array().empty()) return InvalidArgument("no 'choices' in the answer");
  const auto* co = choices->get_array()[0].if_object();
  const auto* msg = co ? co->if_contains("message") : nullptr;
  const auto* content = msg && msg->is_object() ? msg->get_object().if_contains("content") : nullptr;
  if (!content || !content->is_string()) return InvalidArgument("no message content in the answer");
  std::string_view answer = TrimWhitespace(std::string_view(content->get_string()));
  std::string lower = ToLowerAscii(answer.substr(0, std::min<size_t>(answer.size(), 6)));
  if (StartsWith(lower, "unsafe")) {
    std::string_view rest = TrimWhitespace(answer.substr(6));
    return std::pair{true, std::string(rest.substr(0, std::min<size_t>(rest.size(), 64)))};
  }
  if (StartsWith(lower, "safe")) return std::pair{false, std::string()};
  return InvalidArgument("the answer is neither 'safe' nor 'unsafe'");
}

}  // namespace

Decision JudgeClassifier(Exchange& ex, const Result<ClassifierAnswer>& answer) {
  const auto& k = ex.config->guard.classifier;
  ScreenState& st = *ex.screen;
  Status error = Status::Ok();
  std::pair<bool, std::string> verdict;
  if (!answer.ok()) {
    error = answer.status();
  } else if (answer->status != 200) {
    error = Unavailable(fmt::format("it answered HTTP {}", answer->status));
  } else if (auto r = ReadClassifier(k.kind, answer->body); !r.ok()) {
    error = r.status();
  } else {
    verdict = *r;
  }
  if (!error.ok()) {
    ex.guard.classifier = "error";
    if (k.failure_mode == "open" || !st.enforce()) return Decision::Continue();
    return Decision::Deny(503, "guard_unavailable",
                          fmt::format("the guard classifier could not judge the request: {}", error.message()));
  }
  ex.guard.classifier = verdict.first ? "unsafe" : "safe";
  ex.guard.classifier_categories = verdict.second;
  if (!verdict.first) return Decision::Continue();
  if (!st.enforce()) {
    ex.guard.outcome = "monitor";
    return Decision::Continue();
  }
  ex.guard.outcome = "block";
  st.blocked = true;
  return Decision::Deny(400, "content_blocked",
                        fmt::format("the request was blocked by the guard classifier{}",
                                    verdict.second.empty() ? "" : " (categories " + verdict.second + ")"));
}

namespace {

// The string at an RFC 6901 pointer of `doc`, or null (a member name, a
// number, a pointer that does not resolve).
json::string* StringAt(json::value& doc, std::string_view pointer) {
  json::value* v = &doc;
  size_t i = 0;
  while (i < pointer.size()) {
    if (pointer[i] != '/') return nullptr;
    size_t end = pointer.find('/', i + 1);
    if (end == std::string_view::npos) end = pointer.size();
    std::string token;
    for (size_t k = i + 1; k < end; ++k) {
      if (pointer[k] == '~' && k + 1 < end) {
        token.push_back(pointer[k + 1] == '1' ? '/' : '~');
        ++k;
      } else {
        token.push_back(pointer[k]);
      }
    }
    if (auto* o = v->if_object()) {
      v = o->if_contains(token);
    } else if (auto* a = v->if_array()) {
      size_t idx = 0;
      auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), idx);
      v = ec == std::errc() && p == token.data() + token.size() && idx < a->size() ? &(*a)[idx] : nullptr;
    } else {
      v = nullptr;
    }
    if (v == nullptr) return nullptr;
    i = end;
  }
  return v->if_string();
}

// The caller's masked values put back in every string of a tool result.
void UnmaskStrings(json::value& v, const guard::MaskingVault& vault) {
  if (auto* s = v.if_string()) {
    if (s->find('[') != json::string::npos) *s = vault.Unmask(std::string_view(s->data(), s->size()));
  } else if (auto* a = v.if_array()) {
    for (auto& x : *a) UnmaskStrings(x, vault);
  } else if (auto* o = v.if_object()) {
    for (auto& kv : *o) UnmaskStrings(kv.value(), vault);
  }
}

}  // namespace

Decision ScreenToolJson(Exchange& ex, const std::shared_ptr<const guard::RuleSet>& rules, guard::Where where,
                        json::value& doc) {
  if (ex.config == nullptr || !ex.config->guard.enabled) return Decision::Continue();
  if (!ex.screen) {
    auto st = std::make_shared<ScreenState>();
    ResolvePolicy(ex.config->guard, ex, *st);
    if (st->policy_cfg) ex.guard.policy = st->policy_cfg->name;
    st->rules = rules;
    ex.screen = std::move(st);
  }
  ScreenState& st = *ex.screen;
  if (st.policy.mode == guard::Policy::Mode::kOff) return Decision::Continue();
  if (!st.rules) return Decision::Deny(503, "guard_unavailable", "the guard rules are not loaded");  // fail closed
  bool result = where == guard::Where::kToolResult;
  if (result && !ex.config->guard.screen_responses) {
    // Not screened, but the caller's own values still come back.
    if (st.vault.restores()) UnmaskStrings(doc, st.vault);
    return Decision::Continue();
  }
  std::string text = json::serialize(doc);
  auto scanned = guard::ScanJson(*st.rules, text, where);
  if (!scanned.ok()) return Decision::Deny(500, "guard_error", scanned.status().message());
  std::vector<guard::Finding> fs = st.Filter(std::move(scanned).value());
  bool to_mask = HasMask(fs);
  std::vector<guard::Finding> masks;
  if (to_mask) {
    for (const auto& f : fs) {
      if (f.rule->action == guard::Action::kMask) masks.push_back(f);
    }
  }
  guard::Verdict v = guard::Judge(std::move(fs), st.policy);
  std::string outcome = Outcome(v, st, to_mask);
  if (result) {
    ex.guard.response_screened = true;
    ex.guard.response_score = std::max(ex.guard.response_score, v.score);
    ex.guard.response_outcome = outcome;
    AddIds(v.findings, ex.guard.response_rules);
  } else {
    ex.guard.screened = true;
    ex.guard.score = std::max(ex.guard.score, v.score);
    ex.guard.outcome = outcome;
    AddIds(v.findings, ex.guard.rules);
  }
  for (const auto& f : v.findings) {
    std::string field = fmt::format("{}@{}{}", f.rule->id, result ? "result" : "arguments", f.pointer);
    if (std::find(ex.guard.fields.begin(), ex.guard.fields.end(), field) == ex.guard.fields.end()) {
      ex.guard.fields.push_back(std::move(field));
    }
  }
  if (v.block) {
    st.blocked = true;
    return BlockedBy(v, result ? "tool result" : "tool call's arguments");
  }
  if (to_mask && st.enforce()) {
    // Spans are per string value; a finding in a member name is not
    // masked (a name is not a value) but it still counts in the verdict.
    // Field by field in document order (a value seen first gets the first
    // placeholder).
    std::vector<std::string> pointers;
    for (const auto& f : masks) {
      if (std::find(pointers.begin(), pointers.end(), f.pointer) == pointers.end()) pointers.push_back(f.pointer);
    }
    for (const auto& pointer : pointers) {
      json::string* s = StringAt(doc, pointer);
      std::vector<guard::Finding> group;
      for (const auto& f : masks) {
        if (f.pointer == pointer && !f.in_key && s != nullptr && f.end <= s->size()) group.push_back(f);
      }
      if (!group.empty()) *s = st.vault.Mask(std::string_view(s->data(), s->size()), group, /*restore=*/!result);
    }
    ex.guard.masked = st.vault.Digest();
  }
  if (result && st.vault.restores()) UnmaskStrings(doc, st.vault);
  return Decision::Continue();
}

guard::Verdict ScreenToolDefinition(const Exchange& ex, const guard::RuleSet& rules, std::string_view tool_json) {
  ScreenState st;
  ResolvePolicy(ex.config->guard, ex, st);
  auto fs = guard::ScanJson(rules, tool_json, guard::Where::kToolDescription);
  if (!fs.ok()) return guard::Judge(st.Filter(rules.Scan(tool_json, guard::Where::kToolDescription)), st.policy);
  return guard::Judge(st.Filter(std::move(fs).value()), st.policy);
}

std::string RemaskForRecord(const Exchange& ex, std::string_view text) {
  if (!ex.screen || ex.screen->vault.empty()) return std::string(text);
  return ex.screen->vault.Remask(text);
}

}  // namespace aigis::gateway

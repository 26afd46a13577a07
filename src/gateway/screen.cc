// The request screen: guard rules over the prompt, before it goes upstream.
#include "gateway/screen.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>

namespace aigis::gateway {
namespace {

class ScreenRequestStageImpl final : public ScreenRequestStage {
 public:
  explicit ScreenRequestStageImpl(std::shared_ptr<const guard::RuleSet> rules) : rules_(std::move(rules)) {}
  std::string_view name() const override { return "screen_request"; }
  void SetRules(std::shared_ptr<const guard::RuleSet> rules) override { rules_.store(std::move(rules)); }

  Decision OnRequest(Exchange& ex) override {
    if (ex.config == nullptr || !ex.config->guard.enabled || ex.config->guard.mode == "off") return Decision::Continue();
    auto rules = rules_.load();
    if (!rules) return Decision::Deny(503, "guard_unavailable", "the guard rules are not loaded");  // fail closed
    const config::GuardConfig& cfg = ex.config->guard;
    std::vector<guard::Finding> findings;
    for (const auto& m : ex.messages) {
      guard::Where where = m.role == "tool" ? guard::Where::kToolResult : guard::Where::kRequest;
      for (auto& f : rules->Scan(m.text, where)) findings.push_back(f);
    }
    guard::Policy policy;
    policy.mode = cfg.mode == "monitor" ? guard::Policy::Mode::kMonitor : guard::Policy::Mode::kEnforce;
    policy.block_threshold = cfg.block_threshold;
    policy.alert_threshold = cfg.alert_threshold;
    guard::Verdict v = guard::Judge(std::move(findings), policy);
    ex.guard.screened = true;
    ex.guard.score = v.score;
    for (const auto& f : v.findings) {
      if (std::find(ex.guard.rules.begin(), ex.guard.rules.end(), f.rule->id) == ex.guard.rules.end()) {
        ex.guard.rules.push_back(f.rule->id);
      }
    }
    bool would_block = v.top != nullptr && (v.top->action == guard::Action::kBlock || v.score >= cfg.block_threshold);
    if (v.block) {
      ex.guard.outcome = "block";
      return Decision::Deny(400, "content_blocked",
                            fmt::format("the request was blocked by guardrail rule {} ({}): {} (risk score {:.2f})",
                                        v.top->id, v.top->category, v.top->message, v.score));
    }
    ex.guard.outcome = would_block ? "monitor" : v.alert ? "alert" : "pass";
    return Decision::Continue();
  }

 private:
  std::atomic<std::shared_ptr<const guard::RuleSet>> rules_;
};

}  // namespace

std::shared_ptr<ScreenRequestStage> MakeScreenRequestStage(std::shared_ptr<const guard::RuleSet> rules) {
  return std::make_shared<ScreenRequestStageImpl>(std::move(rules));
}

}  // namespace aigis::gateway

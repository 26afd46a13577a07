// Verdicts from findings, and the per-exchange masking vault.
#include <algorithm>
#include <fmt/format.h>
#include <set>

#include "crypto/crypto.h"
#include "guard/internal.h"

namespace aigis::guard {

Verdict Judge(std::vector<Finding> findings, const Policy& policy) {
  Verdict v;
  v.findings = std::move(findings);
  if (policy.mode == Policy::Mode::kOff) return v;
  std::set<const Rule*> counted;
  double keep = 1.0;
  bool block_rule = false;
  for (const auto& f : v.findings) {
    // A masked value is neutralised before the upstream sees it: it is
    // recorded, it does not make the exchange riskier.
    if (f.rule->action == Action::kMask || !counted.insert(f.rule).second) continue;
    keep *= 1.0 - std::clamp(f.rule->score, 0.0, 1.0);
    if (f.rule->action == Action::kBlock) block_rule = true;
    // The deciding rule: block rules first, then the highest score.
    if (v.top == nullptr || (f.rule->action == Action::kBlock && v.top->action != Action::kBlock) ||
        (f.rule->action == v.top->action && f.rule->score > v.top->score) ||
        (v.top->action != Action::kBlock && f.rule->action != Action::kBlock && f.rule->score > v.top->score)) {
      v.top = f.rule;
    }
  }
  v.score = 1.0 - keep;
  bool over = block_rule || v.score >= policy.block_threshold;
  v.block = over && policy.mode == Policy::Mode::kEnforce;
  v.alert = over || v.score >= policy.alert_threshold ||
            std::any_of(v.findings.begin(), v.findings.end(), [](const Finding& f) { return f.rule->action == Action::kAlert; });
  return v;
}

std::string MaskingVault::Mask(std::string_view text, const std::vector<Finding>& findings, bool restore) {
  std::vector<const Finding*> masks;
  for (const auto& f : findings) {
    if (f.rule->action == Action::kMask && f.end <= text.size() && f.begin < f.end) masks.push_back(&f);
  }
  std::sort(masks.begin(), masks.end(), [](const Finding* a, const Finding* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end > b->end;
  });
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  for (const Finding* f : masks) {
    if (f->begin < at) continue;  // overlaps a span already masked
    out.append(text.substr(at, f->begin - at));
    std::string value(text.substr(f->begin, f->end - f->begin));
    std::string placeholder;
    for (const auto& e : values_) {
      if (e.value == value) placeholder = e.placeholder;
    }
    if (placeholder.empty()) {
      int n = 0;
      for (auto& [label, last] : counters_) {
        if (label == f->rule->mask_as) n = ++last;
      }
      if (n == 0) {
        counters_.emplace_back(f->rule->mask_as, 1);
        n = 1;
      }
      placeholder = fmt::format("[{}_{}]", f->rule->mask_as, n);
      values_.push_back({placeholder, std::move(value), restore});
    }
    out.append(placeholder);
    at = f->end;
  }
  out.append(text.substr(at));
  return out;
}

std::string MaskingVault::Remask(std::string_view text) const {
  std::string out(text);
  // Longest values first, so that a value containing another is replaced whole.
  std::vector<const Entry*> order;
  for (const auto& e : values_) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->value.size() > b->value.size(); });
  for (const Entry* e : order) {
    if (e->value.empty()) continue;
    for (size_t at = out.find(e->value); at != std::string::npos; at = out.find(e->value, at + e->placeholder.size())) {
      out.replace(at, e->value.size(), e->placeholder);
    }
  }
  return out;
}

std::string MaskingVault::Unmask(std::string_view text) const {
  if (values_.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  while (at < text.size()) {
    size_t open = text.find('[', at);
    if (open == std::string_view::npos) break;
    size_t close = text.find(']', open);
    if (close == std::string_view::npos) break;
    std::string_view candidate = text.substr(open, close - open + 1);
    const std::string* value = nullptr;
    for (const auto& e : values_) {
      if (e.restore && e.placeholder == candidate) value = &e.value;
    }
    out.append(text.substr(at, open - at));
    if (value) {
      out.append(*value);
      at = close + 1;
    } else {
      out.push_back('[');
      at = open + 1;
    }
  }
  out.append(text.substr(std::min(at, text.size())));
  return out;
}

std::vector<std::pair<std::string, std::string>> MaskingVault::Digest() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : values_) out.emplace_back(e.placeholder, crypto::HexEncode(crypto::Sha256(e.value)).substr(0, 16));
  return out;
}

std::string MaskingVault::StreamUnmasker::Feed(std::string_view chunk) {
  pending_.append(chunk);
  // Hold back the tail that could still become a placeholder: from the
  // last '[' without a ']' after it, if it is the start of one we restore.
  size_t hold = pending_.size();
  size_t open = pending_.rfind('[');
  if (open != std::string::npos && pending_.find(']', open) == std::string::npos &&
      vault_.IsPlaceholderPrefix(std::string_view(pending_).substr(open))) {
    hold = open;
  }
  std::string ready = vault_.Unmask(std::string_view(pending_).substr(0, hold));
  pending_.erase(0, hold);
  return ready;
}

bool MaskingVault::IsPlaceholderPrefix(std::string_view s) const {
  for (const auto& e : values_) {
    if (e.restore && e.placeholder.size() > s.size() && e.placeholder.compare(0, s.size(), s) == 0) return true;
  }
  return false;
}

bool MaskingVault::restores() const {
  return std::any_of(values_.begin(), values_.end(), [](const Entry& e) { return e.restore; });
}

std::string MaskingVault::StreamUnmasker::Finish() {
  std::string out = vault_.Unmask(pending_);
  pending_.clear();
  return out;
}

}  // namespace aigis::guard

// Trusted external IdPs: their JWKS, fetched by a background thread, cached,
// refetched on an unknown kid (rate-limited), served stale for a bounded time
// while the IdP is down, then dropped (fail closed).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "identity/internal.h"

namespace aigis::identity {

namespace {
int64_t MonoMs(const Clock& c) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(c.Monotonic().time_since_epoch()).count();
}
}  // namespace

void Identity::Impl::Fetch(IssuerState& s) {
  s.last_attempt_ms.store(MonoMs(*clock));
  s.refetch.store(false);
  auto body = opt.fetcher(s.cfg.jwks_url);
  Result<std::vector<crypto::Key>> keys = body.ok() ? crypto::ParseJwks(*body) : Result<std::vector<crypto::Key>>(body.status());
  if (keys.ok()) {
    // Symmetric keys from a JWKS are never trusted: anyone who can read the
    // JWKS could sign with them.
    std::erase_if(*keys, [](const crypto::Key& k) { return k.type() == crypto::KeyType::kOct; });
  }
  if (!keys.ok() || keys->empty()) {
    spdlog::warn("trusted issuer {}: JWKS fetch from {} failed: {}", s.cfg.name, s.cfg.jwks_url,
                 keys.ok() ? "no usable keys" : keys.status().message());
    return;  // keep what we had; IssuerKey decides whether it is too stale
  }
  auto k = std::make_shared<IssuerKeys>();
  k->keys = std::move(*keys);
  k->fetched_at = now();
  k->ok = true;
  spdlog::info("trusted issuer {}: {} keys from {}", s.cfg.name, k->keys.size(), s.cfg.jwks_url);
  s.keys.store(std::move(k));
}

Result<const crypto::Key*> Identity::Impl::IssuerKey(IssuerState& s, const crypto::Jws& jws,
                                                     std::shared_ptr<const IssuerKeys>& hold) {
  hold = s.keys.load();
  if (!hold->ok) {
    s.refetch.store(true);
    refresh_cv.notify_one();
    return Status(Code::kUnauthenticated, fmt::format("keys of issuer '{}' are not available", s.cfg.issuer));
  }
  if (now() - hold->fetched_at > s.cfg.refresh_interval + s.cfg.max_stale) {
    s.refetch.store(true);
    refresh_cv.notify_one();
    return Status(Code::kUnauthenticated,
                  fmt::format("keys of issuer '{}' are too stale (the IdP has been unreachable)", s.cfg.issuer));
  }
  const crypto::Key* found = nullptr;
  for (const auto& k : hold->keys) {
    if (!k.Allows(jws.alg)) continue;
    if (jws.kid.empty() ? hold->keys.size() == 1 : k.kid() == jws.kid) found = &k;
  }
  if (!found) {
    s.refetch.store(true);  // the IdP may have rotated: look again (rate-limited)
    refresh_cv.notify_one();
    return Status(Code::kUnauthenticated,
                  fmt::format("no key of issuer '{}' matches kid '{}' and alg {}", s.cfg.issuer, jws.kid,
                              crypto::AlgName(jws.alg)));
  }
  return found;
}

void Identity::Impl::RefreshLoop() {
  std::unique_lock lock(refresh_mu);
  while (!stopping) {
    int64_t now_ms = MonoMs(*clock);
    for (auto& s : issuers) {
      int64_t since = now_ms - s->last_attempt_ms.load();
      auto k = s->keys.load();
      bool due = !k->ok ? since >= 1000 * std::min<int64_t>(5, s->cfg.min_refetch_interval.count())
                        : since >= 1000 * s->cfg.refresh_interval.count();
      bool asked = s->refetch.load() && since >= 1000 * s->cfg.min_refetch_interval.count();
      if (due || asked) {
        lock.unlock();
        Fetch(*s);
        lock.lock();
        if (stopping) return;
      }
    }
    refresh_cv.wait_for(lock, std::chrono::milliseconds(250));
  }
}

void Identity::Start() {
  Impl& m = *impl_;
  if (m.issuers.empty() || m.refresher.joinable()) return;
  for (auto& s : m.issuers) m.Fetch(*s);  // first fetch before serving
  m.refresher = std::thread([&m] { m.RefreshLoop(); });
}

void Identity::Stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->refresh_mu);
    impl_->stopping = true;
  }
  impl_->refresh_cv.notify_all();
  if (impl_->refresher.joinable()) impl_->refresher.join();
}

}  // namespace aigis::identity

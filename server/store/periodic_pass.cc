#include "server/store/periodic_pass.h"

#include <utility>

#include "absl/time/time.h"

namespace compressd {

PeriodicPass::PeriodicPass(int64_t interval_ms, int64_t first_delay_ms, std::function<void()> pass)
    : interval_ms_(interval_ms), first_delay_ms_(first_delay_ms), pass_(std::move(pass)) {}

PeriodicPass::~PeriodicPass() { Stop(); }

void PeriodicPass::Start() {
  if (interval_ms_ <= 0 || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void PeriodicPass::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool PeriodicPass::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void PeriodicPass::Loop() {
  int64_t wait_ms = first_delay_ms_;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(wait_ms))) {
        return;
      }
    }
    wait_ms = interval_ms_;
    pass_();
  }
}

}  // namespace compressd

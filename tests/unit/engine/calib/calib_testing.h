// Helpers of the calibration tests: a tiny model's logits on a few sequences.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/forward.h"

namespace compressd::testing {

// The logits of `seqs` packed in one batch, on one CPU thread (empty on error,
// with a test failure).
inline std::vector<float> TinyLogits(engine::LlamaModel* model,
                                     const std::vector<std::vector<int32_t>>& seqs) {
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 64});
  absl::StatusOr<engine::LlamaForward> fwd =
      engine::LlamaForward::Create(model, &backend, engine::ForwardOptions{100});
  EXPECT_TRUE(fwd.ok()) << fwd.status();
  if (!fwd.ok()) return {};
  absl::StatusOr<engine::SequenceBatch> batch = engine::SequenceBatch::Pack(seqs);
  EXPECT_TRUE(batch.ok());
  if (!batch.ok()) return {};
  absl::StatusOr<std::vector<float>> logits = fwd->Logits(*batch);
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? *logits : std::vector<float>();
}

// max_i |got_i - want_i| / (1 + |want_i|).
inline float WorstRelative(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  float worst = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]) / (1 + std::fabs(want[i])));
  }
  return worst;
}

}  // namespace compressd::testing

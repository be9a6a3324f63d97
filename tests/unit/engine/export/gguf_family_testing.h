// Helpers of the per-family GGUF export tests (gguf_moe_export_test.cc,
// gguf_family_export_test.cc): write a model as an all-F32 GGUF, open it,
// read it back and compare every tensor.
#pragma once

#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/model/gguf/gguf_model.h"

namespace compressd::engine::gguf_family_testing {

inline GgufExportOptions AllF32() {
  GgufExportOptions o;
  o.target_type = GgmlType::kF32;
  o.other_type = GgmlType::kF32;
  return o;
}

// `src` written with AllF32() to a fresh temporary path (`*out`), opened.
inline absl::StatusOr<std::unique_ptr<GgufFile>> WriteF32(const testing_export::Source& src,
                                                          std::string* out) {
  *out = testing_export::UniqueTempPath(".gguf");
  absl::StatusOr<GgufExportReport> report =
      WriteGgufLlama(src.model, src.file.get(), {}, AllF32(), *out);
  if (!report.ok()) return report.status();
  return GgufFile::Open(*out);
}

// Every tensor of `a` is in `b` with its shape and values within `tolerance`.
inline void ExpectSameTensors(LlamaModel* a, LlamaModel* b, float tolerance) {
  std::map<std::string, Tensor*> x = testing_export::ByName(a), y = testing_export::ByName(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, t] : x) {
    ASSERT_TRUE(y.count(name)) << name;
    ASSERT_EQ(y[name]->shape, t->shape) << name;
    for (int64_t i = 0; i < t->numel(); ++i)
      ASSERT_LE(std::fabs(y[name]->data[i] - t->data[i]), tolerance) << name << "[" << i << "]";
  }
}

}  // namespace compressd::engine::gguf_family_testing

// Helpers shared by the GPTQ export tests: RTN-quantize a LlamaModel's
// projections the way a compression job leaves them, and unique temp dirs.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::testing {

// RTN-quantizes every "*_proj.weight" of `model` whose name contains none of
// `skip`, in place: the model keeps the dequantized values (as after
// compression) and the codes are returned by HF name.
inline std::map<std::string, engine::QuantizedTensor> QuantizeProjections(
    engine::LlamaModel* model, const engine::QuantGrid& grid,
    const std::vector<std::string>& skip = {}) {
  std::map<std::string, engine::QuantizedTensor> out;
  for (engine::NamedTensor& t : engine::NamedTensors(model)) {
    if (t.name.find("_proj.weight") == std::string::npos) continue;
    bool skipped = false;
    for (const std::string& s : skip) skipped = skipped || t.name.find(s) != std::string::npos;
    if (skipped) continue;
    std::vector<float> w(t.tensor->data, t.tensor->data + t.tensor->numel());
    auto q = engine::QuantizeRtn(w.data(), t.tensor->rows(), t.tensor->cols(), grid, t.name);
    EXPECT_TRUE(q.ok()) << q.status();
    if (!q.ok()) continue;
    *t.tensor = engine::Tensor::Owned(t.tensor->shape, std::move(w));
    out.emplace(t.name, std::move(*q));
  }
  return out;
}

// RTN with act-order groups: the inputs of each weight, sorted by
// decreasing column norm (a stand-in for GPTQ's Hessian diagonal), are cut
// into groups in that order, so group_index is a permuted i / group_size.
// Same contract as QuantizeProjections otherwise.
inline std::map<std::string, engine::QuantizedTensor> QuantizeProjectionsActOrder(
    engine::LlamaModel* model, const engine::QuantGrid& grid,
    const std::vector<std::string>& skip = {}) {
  std::map<std::string, engine::QuantizedTensor> out;
  for (engine::NamedTensor& t : engine::NamedTensors(model)) {
    if (t.name.find("_proj.weight") == std::string::npos) continue;
    bool skipped = false;
    for (const std::string& s : skip) skipped = skipped || t.name.find(s) != std::string::npos;
    if (skipped) continue;
    const int64_t rows = t.tensor->rows();
    const int64_t cols = t.tensor->cols();
    const float* w = t.tensor->data;
    std::vector<double> norm(cols, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) norm[c] += double{w[r * cols + c]} * w[r * cols + c];
    }
    std::vector<int64_t> perm(cols);
    for (int64_t c = 0; c < cols; ++c) perm[c] = c;
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return norm[a] > norm[b]; });
    std::vector<float> permuted(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < cols; ++k) permuted[r * cols + k] = w[r * cols + perm[k]];
    }
    auto q = engine::QuantizeRtn(permuted.data(), rows, cols, grid, t.name);
    EXPECT_TRUE(q.ok()) << q.status();
    if (!q.ok()) continue;
    engine::QuantizedTensor result = *q;
    std::vector<float> values(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < cols; ++k) {
        result.codes[r * cols + perm[k]] = q->codes[r * cols + k];
        values[r * cols + perm[k]] = permuted[r * cols + k];
      }
    }
    for (int64_t k = 0; k < cols; ++k) result.group_index[perm[k]] = q->group_index[k];
    *t.tensor = engine::Tensor::Owned(t.tensor->shape, std::move(values));
    out.emplace(t.name, std::move(result));
  }
  return out;
}

inline std::map<std::string, const engine::QuantizedTensor*> Pointers(
    const std::map<std::string, engine::QuantizedTensor>& m) {
  std::map<std::string, const engine::QuantizedTensor*> out;
  for (const auto& [name, q] : m) out[name] = &q;
  return out;
}

// A path under the temp directory unique to this process and `tag`.
inline std::string TempDir(const std::string& tag) {
  return (std::filesystem::temp_directory_path() /
          ("gptq_export_test_" + tag + "_" + std::to_string(::getpid())))
      .string();
}

}  // namespace compressd::testing

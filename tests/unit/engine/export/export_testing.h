// Helpers for the GGUF export tests: dequantization, error measures, unique
// temp paths and the golden quantizer fixture
// (tests/golden/ggml_quantize_fixtures.py). Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/gguf/ggml_types.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::testing_export {

// Our dequantization of `n` elements (a test failure if it fails).
std::vector<float> Dequant(engine::GgmlType type, const std::string& bytes, size_t n);
// ||x - y|| / ||x|| (0 when x is all zeros and y == x).
double RelRmse(const float* x, const float* y, size_t n);
// "byte 17: 0x3c vs 0x3d" or "sizes 10 vs 12"; "" when equal.
std::string FirstDifference(const std::string& a, const std::string& b);
// A path under the test temp dir unique to this process and test.
std::string UniqueTempPath(const std::string& suffix);

struct QuantizeInput {
  std::string name;
  int64_t rows = 0, row_len = 0;
  std::vector<float> values;
};
struct QuantizeOutput {
  size_t input = 0;
  engine::GgmlType type = engine::GgmlType::kF32;
  uint32_t source = 0;  // 0: gguf-py, 1: ggml
  std::string bytes;
};
struct QuantizeFixture {
  std::vector<QuantizeInput> inputs;
  std::vector<QuantizeOutput> outputs;
};
// tests/golden/fixtures/ggml_quantize.bin; test failures on a malformed file.
QuantizeFixture ReadQuantizeFixture();

// A tiny GGUF (tiny_llama_gguf.h) and the model loaded from it.
struct Source {
  std::shared_ptr<const engine::GgufFile> file;
  engine::LlamaModel model;
};
Source FromSpec(const engine::testing::TinyLlamaSpec& spec);
// An F32 tiny spec (one head) with llama3 rope scaling (factor 8, low 1,
// high 4, 8192 positions) written as rope_freqs.weight.
engine::testing::TinyLlamaSpec Llama3RopeSpec();
// Every tensor of `m` by HF name.
std::map<std::string, engine::Tensor*> ByName(engine::LlamaModel* m);
// RTN-quantizes `name` of `m` in place (its tensor replaced by the grid values).
engine::QuantizedTensor QuantizeInModel(engine::LlamaModel* m, const std::string& name, int bits,
                                        bool sym, int64_t group);

}  // namespace compressd::testing_export

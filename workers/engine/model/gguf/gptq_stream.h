// A GPTQ-packed Hugging Face checkpoint (export/gptq_export.h's layout, as
// GPTQModel, transformers and vLLM read it) read block by block as float32:
// the reader the post-export reload check (pipeline/reload_gate.h) re-opens a
// gptq output with, independent of the writer's code.
//
// config.json is the family's (ReadHfLlamaConfig) plus quantization_config
// {quant_method: gptq, bits 2/3/4/8, checkpoint_format or format: gptq (zero
// points stored minus one) or gptq_v2}. A module with `<m>.qweight` is
// dequantized from qweight (codes packed along the input, lowest bits first,
// a code may straddle two words), qzeros (packed along the output), scales
// (F16) and g_idx: w[o][i] = scale[g][o] * (code[o][i] - zero[g][o]),
// g = g_idx[i]; any other tensor is read as a dense float. Fused modules
// (Phi-3's qkv_proj) are dequantized once per block and split by rows as
// StoredPlaceOf says. Open checks every tensor's presence and shape against
// the config (packed or dense), naming the tensor; a module's qzeros, scales
// and g_idx when it is read.
//
// It reads compressed-tensors' pack-quantized checkpoints the same way
// (export/compressed_tensors_export.h): quantization_config {quant_method:
// compressed-tensors, format: pack-quantized, one config group of int
// weights, 2-8 bits, strategy group or channel}; a module with
// `<m>.weight_packed` [out, ceil(in * bits / 32)] (codes packed densely
// along the input per row) is dequantized with weight_scale [out, groups] and,
// for an asymmetric grid, weight_zero_point (packed along the output);
// symmetric: zero 2^(bits-1). int-quantized (W8A8): `<m>.weight` I8 times
// weight_scale [out, 1], every such linear's input quantized per token to
// int8; float-quantized: `<m>.weight` F8_E4M3 (model/fp8.h) times
// weight_scale, inputs quantized to E4M3 per token where the config group has
// input_activations. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/model_stream.h"

namespace compressd::engine {

class HfModel;

// Dense reads from a Hugging Face directory, as the quantized streams read
// the tensors they store unquantized: `name` as float32 of shape `shape`
// (INVALID_ARGUMENT naming the directory and tensor for a missing tensor, a
// shape or a non-float dtype); a whole tensor (NOT_FOUND when absent); rows
// [row, row + n) of a 2-D tensor; releasing a tensor's pages.
absl::StatusOr<std::vector<float>> HfDense(const HfModel& hf, const std::string& name,
                                           const std::vector<int64_t>& shape);
absl::StatusOr<Tensor> HfLoadTensor(const HfModel& hf, const std::string& name);
absl::Status HfReadRows(const HfModel& hf, const std::string& name, int64_t row, int64_t n,
                        float* out);
void HfRelease(const HfModel& hf, const std::string& name);

// Whether config.json's text declares a GPTQ or a compressed-tensors checkpoint.
bool IsGptqConfig(const std::string& config_json);

class GptqStream : public ModelStream {
 public:
  // The packing of a quantized module: GPTQ's (v1 or v2) or compressed-tensors'.
  struct Packing {
    int bits = 0;
    bool v2 = false;         // GPTQ: zeros stored as they are
    bool ct = false;         // compressed-tensors pack-quantized
    bool symmetric = true;   // compressed-tensors: no weight_zero_point
    // compressed-tensors int-quantized (W8A8): int8 `weight` per channel (and
    // float-quantized: E4M3 `weight`, with fp8), and with `act` every such
    // linear's input quantized per token at run time (act_quant, act_fp8).
    bool int8 = false;
    bool fp8 = false;
    bool act = false;
  };

  static absl::StatusOr<std::unique_ptr<GptqStream>> Open(const std::string& dir);

  const LlamaConfig& config() const override { return config_; }
  absl::StatusOr<BlockWeights> LoadBlock(int i) const override;
  void ReleaseBlock(int i) const override;
  absl::StatusOr<Tensor> LoadTensor(const std::string& name) const override;
  absl::Status ReadRows(const std::string& name, int64_t row, int64_t n,
                        float* out) const override;
  void Release(const std::string& name) const override;
  const std::string& path() const override;
  uint64_t weight_bytes() const override;

 private:
  GptqStream(std::shared_ptr<const HfModel> hf, LlamaConfig config, Packing packing)
      : hf_(std::move(hf)), config_(std::move(config)), packing_(packing), bits_(packing.bits) {}
  // The dtype of an int8 / fp8 layout's `weight`.
  DType NaiveDType() const;
  // Whether module `m` is stored packed.
  bool IsPacked(const std::string& m) const;
  // The tensor holding module m's codes (qweight, weight_packed, or int8 weight).
  std::string PackedName(const std::string& m) const;
  absl::StatusOr<std::vector<float>> DequantizeInt8(const std::string& m, int64_t out,
                                                    int64_t in) const;
  // Module `m` ("model.layers.0.self_attn.qkv_proj") dequantized to [out, in].
  absl::StatusOr<std::vector<float>> Dequantize(const std::string& m, int64_t out,
                                                int64_t in) const;
  absl::StatusOr<std::vector<float>> DequantizeCt(const std::string& m, int64_t out,
                                                  int64_t in) const;
  // Every tensor present with its shape (packed or dense): Open's check.
  absl::Status CheckTensors() const;
  // The stored tensor `name` ([rows, cols] or [rows]) as float32.
  absl::StatusOr<std::vector<float>> Dense(const std::string& name,
                                           const std::vector<int64_t>& shape) const;

  std::shared_ptr<const HfModel> hf_;
  LlamaConfig config_;
  Packing packing_;
  int bits_;
};

}  // namespace compressd::engine

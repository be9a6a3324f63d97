// Writes a LlamaModel as a Hugging Face safetensors model directory that
// transformers loads: config.json generated from the LlamaConfig (the
// family's class and fields from families.h; torch_dtype float32;
// tie_word_embeddings when lm_head is the embedding) and
// one model.safetensors with every tensor in F32 under its HF name
// (llama_names.h; lm_head.weight omitted when tied). The tensor bytes are
// written straight from the model's buffers, no copy. Stateless; thread-safe
// for distinct output directories.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

// OK when `config` is a supported family with that family's structure
// (FamilyOf); the exporters call it before writing anything.
absl::Status CheckHfExportable(const engine::LlamaConfig& config);

// config.json's text for `config` (tied as given).
std::string HfLlamaConfigJson(const engine::LlamaConfig& config, bool tied);

// Creates `out_dir` and writes config.json and model.safetensors, the
// weights in `dtype` (F32, BF16 or F16; rounded to nearest even).
// INVALID_ARGUMENT when CheckHfExportable fails (e.g. a llama config with
// q/k/v biases: LlamaForCausalLM would also expect an o_proj bias);
// INTERNAL for I/O errors.
absl::Status WriteHfLlama(engine::LlamaModel& model, const std::string& out_dir,
                          DType dtype = DType::kF32);

}  // namespace compressd::engine

// The one entry point for reading a model into the engine's LlamaModel: a
// directory is a Hugging Face safetensors checkpoint (gguf/hf_llama.h), a
// *.gguf file a llama.cpp GGUF (gguf/gguf_model.h). Both give weights in HF
// orientation and order, so a GGUF and the checkpoint it came from give the
// same logits (up to the GGUF's quantization).
//
// NOT_FOUND if `path` does not exist; INVALID_ARGUMENT for anything else
// that is neither, and for malformed or unsupported models (naming the file,
// tensor and offset). Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model/model_stream.h"

namespace compressd::engine {

absl::StatusOr<LlamaModel> LoadModel(const std::string& path);

// What a model is without reading its weights (headers and config only):
// for estimating a job's memory before committing to it.
struct StoredModel {
  LlamaConfig config;
  uint64_t weight_bytes = 0;  // the weights as stored (the files' tensor data)
};
absl::StatusOr<StoredModel> InspectModel(const std::string& path);

// The model block by block (model_stream.h); `gguf` as ResolveModelInput
// decided (pipeline/job_plan.h). An HF directory whose config.json has a
// GPTQ quantization_config is read by GptqStream.
absl::StatusOr<std::unique_ptr<ModelStream>> OpenModelStream(const std::string& path, bool gguf);

}  // namespace compressd::engine

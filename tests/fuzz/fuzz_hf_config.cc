// libFuzzer target: Hugging Face config.json parsing, the worker's
// ParseHfConfig and then ReadHfLlamaConfig (head_dim, rope_scaling /
// rope_parameters, token ids, bias flags). Failures must be INVALID_ARGUMENT;
// JSON exceptions must not escape.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "workers/engine/model/gguf/hf_llama.h"
#include "workers/engine/model/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<compressd::engine::HfConfig> base = compressd::engine::ParseHfConfig(text, "config.json");
  if (!base.ok()) {
    if (!absl::IsInvalidArgument(base.status())) std::abort();
    return 0;
  }
  absl::StatusOr<compressd::engine::LlamaConfig> c =
      compressd::engine::ReadHfLlamaConfig(*base, text, "config.json");
  if (!c.ok() && !absl::IsInvalidArgument(c.status())) std::abort();
  if (c.ok() && (c->head_dim <= 0 || c->n_heads % c->n_kv_heads != 0)) std::abort();
  return 0;
}

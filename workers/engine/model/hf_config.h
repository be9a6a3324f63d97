// The parts of a Hugging Face config.json every family shares (families.h
// lists the model_types; hf_llama.h reads each family's own fields). Plain
// value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace compressd::engine {

struct HfConfig {
  std::string model_type;
  std::vector<std::string> architectures;
  int64_t num_hidden_layers = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t vocab_size = 0;
  bool tie_word_embeddings = false;
  std::string torch_dtype;  // "float32", "float16", "bfloat16" or empty
};

// Parses config.json text. INVALID_ARGUMENT naming `what` (the file) and the
// field: missing or non-positive sizes, an unsupported model_type, heads not
// dividing hidden_size, kv heads not dividing heads, wrong JSON types.
absl::StatusOr<HfConfig> ParseHfConfig(absl::string_view json_text, const std::string& what);
// Reads and parses a config.json file (NOT_FOUND if it does not exist).
absl::StatusOr<HfConfig> ReadHfConfig(const std::string& path);

}  // namespace compressd::engine

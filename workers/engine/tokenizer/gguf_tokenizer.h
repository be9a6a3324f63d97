// Loads the tokenizer embedded in a GGUF file (tokenizer.ggml.* metadata,
// BPE model "gpt2"), so a GGUF alone is enough to tokenize calibration text.
// Reads tokens, merges, token_type (optional), pre, bos/eos token ids
// (optional), add_bos_token (optional; default as llama.cpp: true for the
// Llama 3 pre-tokenizers, else false) and add_eos_token (optional, default
// false), as Tokenizer::FromGgufVocab does.
// HfTokenizerFilesFromGguf writes the same tokenizer as the two files an HF
// model directory carries, for exports of a GGUF model to HF formats.
//
// Stateless functions: thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {

// INVALID_ARGUMENT naming the file and key for a missing or malformed
// tokenizer, or a tokenizer model other than "gpt2".
absl::StatusOr<Tokenizer> LoadTokenizerFromGguf(const GgufFile& file);
absl::StatusOr<Tokenizer> LoadTokenizerFromGguf(const std::string& path);

struct HfTokenizerFiles {
  std::string tokenizer_json;         // ToHfTokenizerJson of the GGUF's tokenizer
  std::string tokenizer_config_json;  // PreTrainedTokenizerFast; add_bos_token, bos / eos /
                                      // unk / pad tokens, model_max_length (llama.context_length),
                                      // chat_template (tokenizer.chat_template)
};
// The same errors as LoadTokenizerFromGguf, and ToHfTokenizerJson's.
absl::StatusOr<HfTokenizerFiles> HfTokenizerFilesFromGguf(const GgufFile& file);

}  // namespace compressd::engine

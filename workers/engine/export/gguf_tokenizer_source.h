// A GGUF export needs the tokenizer.ggml.* keys llama.cpp tokenizes with. A
// model read from a GGUF has them; for one read from a Hugging Face
// directory they are converted from its tokenizer.json
// (Tokenizer::GgufVocabFromSpec) into a metadata-only GGUF (no tensors),
// which the exporters then copy keys from exactly as from a source GGUF.
// Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {

// The bytes of a GGUF holding general.name = `name` and `vocab`'s
// tokenizer.ggml.* keys (model "gpt2", pre, tokens, token_type, merges,
// bos/eos ids when set, add_bos_token, add_eos_token), and
// tokenizer.chat_template when `chat_template` is not empty.
absl::StatusOr<std::string> TokenizerGgufBytes(const GgufVocab& vocab, const std::string& name,
                                               const std::string& chat_template = "");

// The metadata-only GGUF of `model_dir`/tokenizer.json (and its chat
// template: tokenizer_config.json's chat_template, else chat_template.jinja,
// as transformers saves it) for a model of
// `vocab_size` ids (<= 0: the tokenizer's own), in memory. NOT_FOUND without tokenizer.json; its errors
// (INVALID_ARGUMENT, UNIMPLEMENTED) prefixed with the path.
absl::StatusOr<std::unique_ptr<GgufFile>> TokenizerGgufFromHf(const std::string& model_dir,
                                                              int32_t vocab_size);

}  // namespace compressd::engine

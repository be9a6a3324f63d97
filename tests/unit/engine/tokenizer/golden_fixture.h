// Access to the tokenizer golden fixtures (tests/golden/tokenizer_fixtures.py):
// the reference tokenizer.json, the expected ids, and the shared texts they
// were computed on (read from $COMPRESSD_SOURCE_DIR/../shared/data).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine::testing {

// The repository root (COMPRESSD_SOURCE_DIR, else the configure-time path).
std::string SourceDir();
// Throws std::runtime_error (reported by gtest) when unreadable.
std::string ReadFileOrThrow(const std::string& path);

// tests/golden/fixtures/tokenizer_golden.json, parsed once.
const nlohmann::json& Golden();
// tests/golden/fixtures/tokenizer_smollm2.json, parsed once.
const nlohmann::json& BaseTokenizerJson();

// The bytes of a golden slice, read from the shared data and checked
// against the stored sha256.
absl::StatusOr<std::string> ReadSlice(const nlohmann::json& slice);
// A whole shared text file ("text/kjv.txt").
absl::StatusOr<std::string> ReadSharedText(const std::string& rel);

// tokenizer.json text of a golden variant (base with its pre_tokenizer,
// ignore_merges and post_processor).
std::string VariantJson(const std::string& variant);

// The GGUF-style arrays equivalent to the base tokenizer.json.
struct GgufArrays {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  std::vector<int32_t> token_types;
};
const GgufArrays& BaseGgufArrays();

// Cached tokenizers per variant, built on first use; nullptr (and a test
// failure) when building fails.
const Tokenizer* HfTokenizer(const std::string& variant);
const Tokenizer* GgufTokenizer(const std::string& variant);
// The GGUF-arrays spec of the variant written with ToHfTokenizerJson and read
// back with FromHfJson (the GGUF -> HF export path).
const Tokenizer* WrittenHfTokenizer(const std::string& variant);

// The variant's tokenizer.json converted to GGUF arrays (GgufVocabFromSpec,
// the HF -> GGUF export path) and read back as a GGUF vocabulary.
const Tokenizer* ConvertedGgufTokenizer(const std::string& variant);

std::vector<int32_t> Ids(const nlohmann::json& array);

}  // namespace compressd::engine::testing

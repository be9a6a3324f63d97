// Byte-level BPE tokenizer (GPT-2 / Llama 3 / Qwen2 / SmolLM families) that
// reproduces Hugging Face `tokenizers` ids exactly.
//
// Encode: added/special tokens are matched in the raw text first (see
// added_tokens.h); each remaining segment is pre-tokenized (pre_tokenizer.h),
// each piece is BPE-encoded (bpe_model.h) through a per-call word cache;
// with add_special the BOS/EOS ids are added as the spec says.
// Decode: concatenates each id's bytes (byte-level tokens mapped back to raw
// bytes, added tokens as their text).
//
// Built from a TokenizerSpec, which the two loaders fill:
//   FromHfJson      tokenizer.json (model BPE, pre_tokenizer Sequence of
//                   Digits / Split(Regex) / ByteLevel, added_tokens,
//                   TemplateProcessing for BOS/EOS);
//   FromGgufVocab   the GGUF tokenizer.ggml.* arrays (model "gpt2") and the
//                   tokenizer.ggml.pre name, mapped as llama.cpp does.
//
// ToHfTokenizerJson writes a spec back as tokenizer.json (HF tokenizers'
// serialization), so a model read from a GGUF can be exported with a
// tokenizer that transformers loads.
//
// A Tokenizer is immutable after construction; Encode/Decode are const and
// thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "workers/engine/tokenizer/added_tokens.h"
#include "workers/engine/tokenizer/bpe_model.h"
#include "workers/engine/tokenizer/pre_tokenizer.h"

namespace compressd::engine {

// The tokenizer.ggml.* form of a tokenizer (llama.cpp's "gpt2" BPE model).
struct GgufVocab {
  std::vector<std::string> tokens;   // id -> byte-level token
  std::vector<int32_t> token_types;  // 1 normal, 3 control (special added), 4 user-defined, 5 unused
  std::vector<std::string> merges;   // "a b", in rank order
  std::string pre;                   // tokenizer.ggml.pre
  int32_t bos_id = -1, eos_id = -1;  // -1: none
  int32_t pad_id = -1, unk_id = -1;
  bool add_bos = false, add_eos = false;
};

struct TokenizerSpec {
  // id -> token in GPT-2 byte-level form ("" for an unused id). Added tokens
  // may appear here too; their AddedToken entry decides matching/decoding.
  std::vector<std::string> vocab;
  // Merge pairs in rank order, byte-level form.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<AddedToken> added_tokens;
  // Must end with one ByteLevel step (and contain no other).
  std::vector<PreTokenizerStep> pre_tokenizer;
  bool ignore_merges = false;
  int32_t unk_id = -1;
  bool fuse_unk = false;
  int32_t bos_id = -1;  // -1: none
  int32_t eos_id = -1;
  bool add_bos = false;  // Encode(add_special=true) prepends bos_id
  bool add_eos = false;  // ... and appends eos_id
};

class Tokenizer {
 public:
  // Validates the spec: ids in range, merges resolvable, pre-tokenizer shape,
  // BOS/EOS present when they are to be added. INVALID_ARGUMENT otherwise.
  static absl::StatusOr<Tokenizer> Create(TokenizerSpec spec);

  // tokenizer.json text / file. INVALID_ARGUMENT naming the field for
  // anything malformed or unsupported (normalizers, other models, byte
  // fallback, unknown split regexes, ...); NOT_FOUND for a missing file.
  static absl::StatusOr<Tokenizer> FromHfJson(absl::string_view json_text);
  static absl::StatusOr<Tokenizer> FromHfJsonFile(const std::string& path);
  // The spec FromHfJson builds (the same errors).
  static absl::StatusOr<TokenizerSpec> SpecFromHfJson(absl::string_view json_text);

  // The GGUF form of a tokenizer.json spec, as convert_hf_to_gguf.py writes
  // it: tokenizer.ggml.pre is the name llama.cpp maps to exactly the spec's
  // pre-tokenizer (and ignore_merges); ids the spec leaves unused, and ids up
  // to `vocab_size` (a padded embedding), become "[PAD<id>]" unused tokens.
  // UNIMPLEMENTED when no pre name has that pre-tokenizer; INVALID_ARGUMENT
  // when the spec has more ids than vocab_size.
  static absl::StatusOr<GgufVocab> GgufVocabFromSpec(const TokenizerSpec& spec,
                                                     int32_t vocab_size);

  // The GGUF-embedded tokenizer: tokenizer.ggml.tokens / merges ("a b") /
  // token_type (1 normal, 2 unknown, 3 control -> special added token,
  // 4 user-defined -> added token, 5 unused, 6 byte), tokenizer.ggml.pre
  // (e.g. "smollm", "gpt-2", "llama-bpe", "qwen2"), bos/eos ids (-1: none).
  // `token_types` may be empty (all normal).
  static absl::StatusOr<Tokenizer> FromGgufVocab(const std::vector<std::string>& tokens,
                                                 const std::vector<std::string>& merges,
                                                 const std::vector<int32_t>& token_types,
                                                 const std::string& pre_name, int32_t bos_id,
                                                 int32_t eos_id, bool add_bos);
  // The spec FromGgufVocab builds (the same errors).
  static absl::StatusOr<TokenizerSpec> SpecFromGgufVocab(const std::vector<std::string>& tokens,
                                                         const std::vector<std::string>& merges,
                                                         const std::vector<int32_t>& token_types,
                                                         const std::string& pre_name,
                                                         int32_t bos_id, int32_t eos_id,
                                                         bool add_bos);
  // llama.cpp's add_bos default when a GGUF has no tokenizer.ggml.add_bos_token:
  // true for the Llama 3 pre-tokenizer names.
  static bool GgufPreAddsBosByDefault(const std::string& pre_name);

  // Token ids of `text` (any bytes; malformed UTF-8 is encoded byte-wise).
  // add_special: add BOS/EOS as configured. parse_special: recognise special
  // tokens written in the text (non-special added tokens always are).
  std::vector<int32_t> Encode(std::string_view text, bool add_special,
                              bool parse_special = true) const;

  // The bytes the ids stand for. INVALID_ARGUMENT for an id out of range or
  // unused, naming its position.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const;

  int32_t vocab_size() const { return static_cast<int32_t>(id_bytes_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // The raw bytes of a token ("" for an id out of range).
  std::string_view TokenBytes(int32_t id) const;
  const std::vector<PreTokenizerStep>& pre_tokenizer() const { return pre_tokenizer_; }

 private:
  Tokenizer() = default;

  std::vector<PreTokenizerStep> pre_tokenizer_;
  std::unique_ptr<BpeModel> bpe_;
  AddedTokenMatcher added_;
  std::vector<std::string> id_bytes_;  // id -> raw bytes
  std::vector<bool> id_valid_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
};

// tokenizer.json for `spec`: model BPE (vocab, merges, ignore_merges, unk),
// added_tokens, the pre-tokenizer steps (a Sequence when more than one),
// post_processor TemplateProcessing when the spec adds BOS / EOS (else
// ByteLevel), decoder ByteLevel. INVALID_ARGUMENT when two ids share a token
// string (tokenizer.json's vocabulary is a map) or an added BOS / EOS id is
// out of range.
absl::StatusOr<std::string> ToHfTokenizerJson(const TokenizerSpec& spec);

}  // namespace compressd::engine

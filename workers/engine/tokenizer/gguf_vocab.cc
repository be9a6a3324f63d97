// Tokenizer::FromGgufVocab: the GGUF-embedded BPE ("gpt2" model) tokenizer
// from plain arrays, with the pre-tokenizer chosen by tokenizer.ggml.pre as
// llama.cpp's llama-vocab.cpp does:
//   GPT-2 regex              gpt-2, phi-2, mpt, olmo, jais
//   \p{N} apart, then GPT-2  smollm, starcoder, refact, command-r, codeshell,
//                            exaone, minerva-7b   (HF: Digits(individual)
//                            then ByteLevel(use_regex))
//   Llama 3 regex            llama-bpe, llama3, llama-v3, falcon3
//                            (ignore_merges and BOS by default, as llama.cpp)
//   Qwen2 regex              qwen2, deepseek-r1-qwen, stablelm2, megrez
// The first name of each is the one GgufVocabFromSpec writes (as
// convert_hf_to_gguf.py names those tokenizers).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {
namespace {

enum GgufTokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct PreFamily {
  std::vector<const char*> names;
  std::vector<PreTokenizerStep> steps;
  bool ignore_merges;
  bool add_bos;  // llama.cpp's default when the GGUF does not say
};

const std::vector<PreFamily>& PreFamilies() {
  using Step = PreTokenizerStep;
  static const auto* const families = new std::vector<PreFamily>{
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais"}, {Step::ByteLevel(false, true)}, false, false},
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       {Step::Digits(true), Step::ByteLevel(false, true)},
       false,
       false},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3"},
       {Step::Split(SplitPattern::kLlama3), Step::ByteLevel(false, false)},
       true,
       true},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"},
       {Step::Split(SplitPattern::kQwen2), Step::ByteLevel(false, false)},
       false,
       false},
  };
  return *families;
}

const PreFamily* FindFamily(const std::string& pre_name) {
  for (const PreFamily& family : PreFamilies()) {
    for (const char* name : family.names) {
      if (pre_name == name) return &family;
    }
  }
  return nullptr;
}

bool SameStep(const PreTokenizerStep& a, const PreTokenizerStep& b) {
  using Kind = PreTokenizerStep::Kind;
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kDigits:
      return a.individual_digits == b.individual_digits;
    case Kind::kSplit:
      return a.pattern == b.pattern;
    case Kind::kByteLevel:
      return a.add_prefix_space == b.add_prefix_space && a.use_regex == b.use_regex;
  }
  return false;
}

bool SameSteps(const std::vector<PreTokenizerStep>& a, const std::vector<PreTokenizerStep>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!SameStep(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<GgufVocab> Tokenizer::GgufVocabFromSpec(const TokenizerSpec& spec,
                                                       int32_t vocab_size) {
  GgufVocab out;
  for (const PreFamily& family : PreFamilies()) {
    if (SameSteps(family.steps, spec.pre_tokenizer) && family.ignore_merges == spec.ignore_merges) {
      out.pre = family.names.front();
      break;
    }
  }
  if (out.pre.empty()) {
    return absl::UnimplementedError(
        "tokenizer.json: its pre_tokenizer (and ignore_merges) matches none that llama.cpp "
        "knows by a tokenizer.ggml.pre name (GPT-2, SmolLM/StarCoder digits, Llama 3, Qwen2)");
  }
  if (static_cast<int64_t>(spec.vocab.size()) > vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json has ", spec.vocab.size(),
                                                   " ids but the model's vocabulary is ",
                                                   vocab_size));
  }
  out.tokens.resize(static_cast<size_t>(vocab_size));
  out.token_types.assign(static_cast<size_t>(vocab_size), kNormal);
  for (int32_t id = 0; id < vocab_size; ++id) {
    const bool used = id < static_cast<int32_t>(spec.vocab.size()) && !spec.vocab[id].empty();
    out.tokens[id] = used ? spec.vocab[id] : absl::StrCat("[PAD", id, "]");
    if (!used) out.token_types[id] = kUnused;
  }
  for (const AddedToken& t : spec.added_tokens) {
    if (t.id < 0 || t.id >= vocab_size) continue;
    out.tokens[t.id] = t.content;
    out.token_types[t.id] = t.special ? kControl : kUserDefined;
  }
  out.merges.reserve(spec.merges.size());
  for (const auto& [a, b] : spec.merges) out.merges.push_back(absl::StrCat(a, " ", b));
  out.bos_id = spec.bos_id;
  out.eos_id = spec.eos_id;
  out.add_bos = spec.add_bos;
  out.add_eos = spec.add_eos;
  return out;
}

bool Tokenizer::GgufPreAddsBosByDefault(const std::string& pre_name) {
  const PreFamily* family = FindFamily(pre_name);
  return family != nullptr && family->add_bos;
}

absl::StatusOr<Tokenizer> Tokenizer::FromGgufVocab(const std::vector<std::string>& tokens,
                                                   const std::vector<std::string>& merges,
                                                   const std::vector<int32_t>& token_types,
                                                   const std::string& pre_name, int32_t bos_id,
                                                   int32_t eos_id, bool add_bos) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, SpecFromGgufVocab(tokens, merges, token_types, pre_name,
                                                         bos_id, eos_id, add_bos));
  return Create(std::move(spec));
}

absl::StatusOr<TokenizerSpec> Tokenizer::SpecFromGgufVocab(
    const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
    const std::vector<int32_t>& token_types, const std::string& pre_name, int32_t bos_id,
    int32_t eos_id, bool add_bos) {
  if (!token_types.empty() && token_types.size() != tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.token_type has ",
                                                   token_types.size(), " entries for ",
                                                   tokens.size(), " tokens"));
  }
  TokenizerSpec spec;
  const PreFamily* family = FindFamily(pre_name);
  if (family == nullptr) {
    std::vector<std::string> known;
    for (const PreFamily& f : PreFamilies())
      known.insert(known.end(), f.names.begin(), f.names.end());
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.ggml.pre \"", pre_name,
                     "\" is not supported (supported: ", absl::StrJoin(known, ", "), ")"));
  }
  spec.pre_tokenizer = family->steps;
  spec.ignore_merges = family->ignore_merges;
  spec.vocab = tokens;
  for (size_t id = 0; id < token_types.size(); ++id) {
    const int32_t type = token_types[id];
    if (type < kNormal || type > kByte) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.ggml.token_type[", id, "] = ", type, " is not a token type"));
    }
    if (type == kControl || type == kUserDefined) {
      AddedToken t;
      t.content = tokens[id];
      t.id = static_cast<int32_t>(id);
      t.special = type == kControl;
      spec.added_tokens.push_back(std::move(t));
    }
  }
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    // As llama.cpp: the first space after the first character separates the pair.
    const size_t space = merges[i].find(' ', 1);
    if (space == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.ggml.merges[", i, "] = \"", merges[i], "\" has no space"));
    }
    spec.merges.emplace_back(merges[i].substr(0, space), merges[i].substr(space + 1));
  }
  spec.bos_id = bos_id;
  spec.eos_id = eos_id;
  spec.add_bos = add_bos;
  return spec;
}

}  // namespace compressd::engine

// libFuzzer target for the tokenizer.json parser and the encoder.
// Built only with -DCOMPRESSD_FUZZ=ON and clang:
//   fuzz_tokenizer [-max_total_time=60] [corpus_dir]
// The first input byte picks the mode:
//   even: the rest is tokenizer.json text for Tokenizer::FromHfJson; when it
//         loads, a short text and the input are encoded and decoded.
//   odd:  the rest is text for four fixed byte-level tokenizers (GPT-2,
//         SmolLM, Llama 3, Qwen2 splits; a few merges; a special and an
//         overlapping non-special added token); decode(encode(text)) must
//         give the text back byte for byte (every byte has a token), with
//         and without special-token parsing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "workers/engine/tokenizer/byte_level.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {
namespace {

std::vector<Tokenizer> MakeTextTokenizers() {
  std::vector<Tokenizer> out;
  using Step = PreTokenizerStep;
  const std::vector<std::vector<Step>> pres = {
      {Step::ByteLevel(false, true)},
      {Step::Digits(true), Step::ByteLevel(false, true)},
      {Step::Split(SplitPattern::kLlama3), Step::ByteLevel(false, false)},
      {Step::Split(SplitPattern::kQwen2), Step::ByteLevel(false, false)},
  };
  for (const auto& pre : pres) {
    TokenizerSpec spec;
    for (int b = 0; b < 256; ++b) spec.vocab.push_back(BytesToByteLevel(std::string(1, char(b))));
    for (const auto& [l, r] :
         std::vector<std::pair<std::string, std::string>>{{"\xc4\xa0", "t"},
                                                          {"h", "e"},
                                                          {"\xc4\xa0t", "he"},
                                                          {"i", "n"},
                                                          {"a", "a"},
                                                          {"aa", "aa"},
                                                          {"\xc4\x8a", "\xc4\x8a"}}) {
      spec.vocab.push_back(l + r);
      spec.merges.emplace_back(l, r);
    }
    spec.vocab.push_back("<|im_start|>");
    spec.added_tokens.push_back(
        {"<|im_start|>", static_cast<int32_t>(spec.vocab.size() - 1), true});
    spec.added_tokens.push_back(
        {"<|im_start|><x>", static_cast<int32_t>(spec.vocab.size()), false});
    spec.pre_tokenizer = pre;
    spec.ignore_merges = pre.size() == 2 && pre[0].kind == Step::Kind::kSplit;
    spec.bos_id = 0;
    spec.add_bos = false;
    absl::StatusOr<Tokenizer> tok = Tokenizer::Create(std::move(spec));
    if (!tok.ok()) __builtin_trap();
    out.push_back(*std::move(tok));
  }
  return out;
}

void FuzzText(std::string_view text) {
  static const std::vector<Tokenizer>* const tokenizers =
      new std::vector<Tokenizer>(MakeTextTokenizers());
  for (const Tokenizer& tok : *tokenizers) {
    for (const bool parse_special : {true, false}) {
      const std::vector<int32_t> ids = tok.Encode(text, /*add_special=*/false, parse_special);
      absl::StatusOr<std::string> back = tok.Decode(ids);
      if (!back.ok() || *back != text) __builtin_trap();
    }
  }
}

void FuzzJson(std::string_view json) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromHfJson(absl::string_view(json.data(), json.size()));
  if (!tok.ok()) return;
  for (std::string_view text : {std::string_view("Hello world 12345 don't <|im_start|>"), json}) {
    const std::vector<int32_t> ids = tok->Encode(text.substr(0, 256), true);
    for (int32_t id : ids) {
      if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
    }
    (void)tok->Decode(ids);
  }
}

}  // namespace
}  // namespace compressd::engine

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    compressd::engine::FuzzText(rest);
  } else {
    compressd::engine::FuzzJson(rest);
  }
  return 0;
}

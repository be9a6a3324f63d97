// Added (and special) tokens: strings matched verbatim in the input before
// pre-tokenization, as HF tokenizers' AddedVocabulary does. Tokens with
// normalized=false are matched first over the whole text, then those with
// normalized=true in the gaps left (no normalizer is supported, so both see
// the raw text). Matching is leftmost-longest; lstrip/rstrip absorb the
// whitespace beside a match into it.
//
// Cost: O(n) byte scan plus a comparison per candidate whose first byte
// occurs in the text. Immutable after construction: thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace compressd::engine {

struct AddedToken {
  std::string content;  // raw UTF-8 text (not byte-level encoded)
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

class AddedTokenMatcher {
 public:
  // A piece of the input: an added token (id >= 0) or plain text (id < 0).
  struct Segment {
    std::string_view text;
    int32_t id;
  };

  AddedTokenMatcher() = default;
  // Tokens must have non-empty content (Tokenizer::Create checks).
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);

  // Appends the segments of `text` in order. With match_special false,
  // special tokens are not recognised (their text is left as plain text).
  void Split(std::string_view text, bool match_special, std::vector<Segment>* out) const;

 private:
  struct Pass {
    std::array<bool, 256> first_byte{};
    std::array<std::vector<AddedToken>, 256> by_first_byte;  // each longest first
  };
  struct Match {
    size_t start;
    size_t end;
    const AddedToken* token;
  };

  static void SplitPass(const Pass& pass, std::string_view text, bool match_special,
                        std::vector<Segment>* out);
  static bool FindLeftmostLongest(const Pass& pass, std::string_view text, size_t from,
                                  bool match_special, Match* match);

  Pass raw_;         // normalized == false
  Pass normalized_;  // normalized == true
  bool empty_ = true;
};

}  // namespace compressd::engine

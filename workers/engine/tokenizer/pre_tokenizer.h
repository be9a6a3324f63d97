// Pre-tokenization for byte-level BPE: cuts text into the pieces that BPE
// encodes independently, as HF tokenizers' pre-tokenizers do.
//
// The regex split patterns are hand-written scanners (std::regex has no
// \p{L} and is slow) that reproduce the leftmost-alternative, backtracking
// semantics of these exact patterns (as stored in tokenizer.json):
//   kGpt2   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kLlama3 (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2  as kLlama3 with \p{N} instead of \p{N}{1,3}
// Each pattern matches at every position (no gaps), so an "Isolated" split
// is the sequence of successive matches. Cost: O(n) in the piece length.
//
// Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"

namespace compressd::engine {

enum class SplitPattern { kGpt2, kLlama3, kQwen2 };

// One pre-tokenizer of a sequence (HF "Sequence" of these).
struct PreTokenizerStep {
  enum class Kind {
    kDigits,     // HF Digits: numeric chars apart from the rest
    kSplit,      // HF Split {Regex, behavior Isolated, invert false}
    kByteLevel,  // HF ByteLevel: optional prefix space, optional GPT-2 split
  };
  Kind kind = Kind::kByteLevel;
  bool individual_digits = false;              // kDigits: each digit its own piece
  SplitPattern pattern = SplitPattern::kGpt2;  // kSplit
  bool add_prefix_space = false;               // kByteLevel
  bool use_regex = true;                       // kByteLevel: split with kGpt2

  static PreTokenizerStep Digits(bool individual);
  static PreTokenizerStep Split(SplitPattern pattern);
  static PreTokenizerStep ByteLevel(bool add_prefix_space, bool use_regex);
};

// The pattern whose HF regex source is `regex` (the JSON-decoded string), or
// nullopt when it is not one of the supported patterns.
std::optional<SplitPattern> SplitPatternFromRegex(std::string_view regex);
// The canonical HF regex source of `pattern`.
std::string_view SplitPatternRegex(SplitPattern pattern);
const char* SplitPatternName(SplitPattern pattern);

// The end (> pos) of the pattern's match at byte `pos` < text.size().
size_t MatchSplitPattern(SplitPattern pattern, std::string_view text, size_t pos);

// Runs `steps` over `text` and calls `sink` with each non-empty final piece,
// in order. Pieces are views of `text` except where a ByteLevel step adds a
// prefix space (then a temporary, valid only during the call).
void PreTokenize(const std::vector<PreTokenizerStep>& steps, std::string_view text,
                 absl::FunctionRef<void(std::string_view)> sink);

// Convenience for tests: the pieces as strings.
std::vector<std::string> PreTokenizeToStrings(const std::vector<PreTokenizerStep>& steps,
                                              std::string_view text);

}  // namespace compressd::engine

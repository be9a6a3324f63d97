#include "workers/engine/tokenizer/pre_tokenizer.h"

#include <string>

#include "workers/engine/tokenizer/unicode_props.h"

namespace compressd::engine {
namespace {

constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// The same without the final \s+ (GPT-2's original form): a lone whitespace
// char before a non-space is then an unmatched gap, which Isolated also
// emits as its own piece, so the splits are identical.
constexpr std::string_view kGpt2RegexShort =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr uint8_t kLetterOrNumber = kClassLetter | kClassNumber;
constexpr uint8_t kNotOther = kClassLetter | kClassNumber | kClassWhitespace;

// Character access with an end sentinel (len 0, no class, cp 0).
struct Scanner {
  std::string_view text;
  Utf8Char At(size_t pos) const {
    return pos < text.size() ? DecodeUtf8(text, pos) : Utf8Char{0, 0, 0};
  }
  // End of the run of characters starting at `pos` for which pred(char) holds.
  template <typename Pred>
  size_t RunEnd(size_t pos, Pred pred) const {
    while (pos < text.size()) {
      const Utf8Char c = DecodeUtf8(text, pos);
      if (!pred(c)) break;
      pos += c.len;
    }
    return pos;
  }
};

bool IsLetter(const Utf8Char& c) { return (c.cls & kClassLetter) != 0; }
bool IsNumber(const Utf8Char& c) { return (c.cls & kClassNumber) != 0; }
bool IsSpace(const Utf8Char& c) { return (c.cls & kClassWhitespace) != 0; }
bool IsOther(const Utf8Char& c) { return c.len > 0 && (c.cls & kNotOther) == 0; }
bool IsCrLf(const Utf8Char& c) { return c.cp == '\r' || c.cp == '\n'; }

char32_t AsciiLower(char32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d at `pos` (text[pos] == '\''); 0 when none matches.
// `fold` makes it case-insensitive as Oniguruma's (?i:) does (U+017F folds to s).
size_t MatchContraction(const Scanner& s, size_t pos, bool fold) {
  const Utf8Char a = s.At(pos + 1);
  char32_t ca = a.cp;
  if (fold) ca = (ca == 0x17F) ? 's' : AsciiLower(ca);
  if (ca == 's' || ca == 't' || ca == 'm' || ca == 'd') return 1 + a.len;
  if (ca != 'r' && ca != 'v' && ca != 'l') return 0;
  const char32_t want = (ca == 'l') ? 'l' : 'e';
  const Utf8Char b = s.At(pos + 1 + a.len);
  const char32_t cb = fold ? AsciiLower(b.cp) : b.cp;
  return cb == want ? 1 + a.len + b.len : 0;
}

// \s+(?!\S)|\s+ at `pos` (a whitespace char): the run, less its last char
// when a non-space follows and the run is longer than one char.
size_t MatchTrailingSpace(const Scanner& s, size_t pos) {
  size_t last = pos;
  size_t end = pos;
  while (end < s.text.size()) {
    const Utf8Char c = DecodeUtf8(s.text, end);
    if (!IsSpace(c)) break;
    last = end;
    end += c.len;
  }
  if (end == s.text.size() || last == pos) return end;
  return last;
}

size_t MatchGpt2(const Scanner& s, size_t pos) {
  const Utf8Char c = s.At(pos);
  if (c.cp == '\'') {
    if (const size_t n = MatchContraction(s, pos, /*fold=*/false)) return pos + n;
  }
  // ` ?X+` for X in letters, numbers, others.
  size_t start = pos;
  Utf8Char d = c;
  if (c.cp == ' ' && pos + 1 < s.text.size()) {
    start = pos + 1;
    d = s.At(start);
  }
  if (IsLetter(d)) return s.RunEnd(start, IsLetter);
  if (IsNumber(d)) return s.RunEnd(start, IsNumber);
  if (IsOther(d)) return s.RunEnd(start, IsOther);
  return MatchTrailingSpace(s, pos);
}

size_t MatchLlama3Family(const Scanner& s, size_t pos, size_t max_digits) {
  const Utf8Char c = s.At(pos);
  if (c.cp == '\'') {
    if (const size_t n = MatchContraction(s, pos, /*fold=*/true)) return pos + n;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (IsLetter(c)) return s.RunEnd(pos, IsLetter);
  if (!IsCrLf(c) && (c.cls & kLetterOrNumber) == 0 && IsLetter(s.At(pos + c.len))) {
    return s.RunEnd(pos + c.len, IsLetter);
  }
  // \p{N}{1,max_digits}
  if (IsNumber(c)) {
    size_t end = pos;
    for (size_t n = 0; n < max_digits; ++n) {
      const Utf8Char d = s.At(end);
      if (!IsNumber(d)) break;
      end += d.len;
    }
    return end;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  const size_t start = (c.cp == ' ') ? pos + 1 : pos;
  if (IsOther(s.At(start))) {
    return s.RunEnd(s.RunEnd(start, IsOther), IsCrLf);
  }
  // \s*[\r\n]+ : the whitespace run up to and including its last CR/LF.
  size_t after_newline = 0;
  for (size_t i = pos; i < s.text.size();) {
    const Utf8Char ch = DecodeUtf8(s.text, i);
    if (!IsSpace(ch)) break;
    i += ch.len;
    if (IsCrLf(ch)) after_newline = i;
  }
  if (after_newline > 0) return after_newline;
  return MatchTrailingSpace(s, pos);
}

template <typename Fn>
void SplitIsolated(std::string_view text, Fn match,
                   absl::FunctionRef<void(std::string_view)> sink) {
  const Scanner s{text};
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = match(s, pos);
    sink(text.substr(pos, end - pos));
    pos = end;
  }
}

void SplitDigits(std::string_view text, bool individual,
                 absl::FunctionRef<void(std::string_view)> sink) {
  size_t piece_start = 0;
  bool piece_numeric = false;
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char c = DecodeUtf8(text, pos);
    const bool numeric = (c.cls & kClassNumeric) != 0;
    if (pos > piece_start && (numeric != piece_numeric || (numeric && individual))) {
      sink(text.substr(piece_start, pos - piece_start));
      piece_start = pos;
    }
    piece_numeric = numeric;
    pos += c.len;
  }
  if (piece_start < text.size()) sink(text.substr(piece_start));
}

void RunSteps(const std::vector<PreTokenizerStep>& steps, size_t index, std::string_view piece,
              absl::FunctionRef<void(std::string_view)> sink) {
  if (piece.empty()) return;
  if (index == steps.size()) {
    sink(piece);
    return;
  }
  const PreTokenizerStep& step = steps[index];
  const auto next = [&](std::string_view sub) { RunSteps(steps, index + 1, sub, sink); };
  switch (step.kind) {
    case PreTokenizerStep::Kind::kDigits:
      SplitDigits(piece, step.individual_digits, next);
      return;
    case PreTokenizerStep::Kind::kSplit:
      SplitIsolated(
          piece,
          [&step](const Scanner& s, size_t pos) {
            return MatchSplitPattern(step.pattern, s.text, pos);
          },
          next);
      return;
    case PreTokenizerStep::Kind::kByteLevel: {
      std::string prefixed;
      if (step.add_prefix_space && piece.front() != ' ') {
        prefixed.reserve(piece.size() + 1);
        prefixed.push_back(' ');
        prefixed.append(piece);
        piece = prefixed;
      }
      if (step.use_regex) {
        SplitIsolated(piece, MatchGpt2, next);
      } else {
        next(piece);
      }
      return;
    }
  }
}

}  // namespace

PreTokenizerStep PreTokenizerStep::Digits(bool individual) {
  PreTokenizerStep step;
  step.kind = Kind::kDigits;
  step.individual_digits = individual;
  return step;
}

PreTokenizerStep PreTokenizerStep::Split(SplitPattern pattern) {
  PreTokenizerStep step;
  step.kind = Kind::kSplit;
  step.pattern = pattern;
  return step;
}

PreTokenizerStep PreTokenizerStep::ByteLevel(bool add_prefix_space, bool use_regex) {
  PreTokenizerStep step;
  step.kind = Kind::kByteLevel;
  step.add_prefix_space = add_prefix_space;
  step.use_regex = use_regex;
  return step;
}

std::optional<SplitPattern> SplitPatternFromRegex(std::string_view regex) {
  if (regex == kGpt2Regex || regex == kGpt2RegexShort) return SplitPattern::kGpt2;
  if (regex == kLlama3Regex) return SplitPattern::kLlama3;
  if (regex == kQwen2Regex) return SplitPattern::kQwen2;
  return std::nullopt;
}

std::string_view SplitPatternRegex(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2:
      return kGpt2Regex;
    case SplitPattern::kLlama3:
      return kLlama3Regex;
    case SplitPattern::kQwen2:
      return kQwen2Regex;
  }
  return kGpt2Regex;
}

const char* SplitPatternName(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2:
      return "gpt2";
    case SplitPattern::kLlama3:
      return "llama3";
    case SplitPattern::kQwen2:
      return "qwen2";
  }
  return "unknown";
}

size_t MatchSplitPattern(SplitPattern pattern, std::string_view text, size_t pos) {
  const Scanner s{text};
  switch (pattern) {
    case SplitPattern::kGpt2:
      return MatchGpt2(s, pos);
    case SplitPattern::kLlama3:
      return MatchLlama3Family(s, pos, 3);
    case SplitPattern::kQwen2:
      return MatchLlama3Family(s, pos, 1);
  }
  return pos + DecodeUtf8(text, pos).len;
}

void PreTokenize(const std::vector<PreTokenizerStep>& steps, std::string_view text,
                 absl::FunctionRef<void(std::string_view)> sink) {
  RunSteps(steps, 0, text, sink);
}

std::vector<std::string> PreTokenizeToStrings(const std::vector<PreTokenizerStep>& steps,
                                              std::string_view text) {
  std::vector<std::string> out;
  PreTokenize(steps, text, [&out](std::string_view piece) { out.emplace_back(piece); });
  return out;
}

}  // namespace compressd::engine

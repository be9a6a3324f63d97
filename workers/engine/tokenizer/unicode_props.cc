#include "workers/engine/tokenizer/unicode_props.h"

#include <algorithm>
#include <array>
#include <string>

namespace compressd::engine {
namespace {

struct CodepointRange {
  char32_t lo;
  char32_t hi;  // inclusive
};

#include "workers/engine/tokenizer/unicode_tables.inc"

template <size_t N>
bool InRanges(const CodepointRange (&ranges)[N], char32_t cp) {
  const CodepointRange* end = ranges + N;
  const CodepointRange* it = std::upper_bound(
      ranges, end, cp, [](char32_t v, const CodepointRange& r) { return v < r.lo; });
  return it != ranges && cp <= (it - 1)->hi;
}

uint8_t SlowClassOf(char32_t cp) {
  uint8_t cls = 0;
  if (InRanges(kLetterRanges, cp)) cls |= kClassLetter;
  if (InRanges(kNumberRanges, cp)) cls |= kClassNumber;
  if (InRanges(kNumericRanges, cp)) cls |= kClassNumeric;
  if (InRanges(kWhitespaceRanges, cp)) cls |= kClassWhitespace;
  return cls;
}

std::array<uint8_t, 128> MakeAsciiTable() {
  std::array<uint8_t, 128> table{};
  for (char32_t cp = 0; cp < 128; ++cp) table[cp] = SlowClassOf(cp);
  return table;
}

const std::array<uint8_t, 128> kAsciiClass = MakeAsciiTable();

}  // namespace

uint8_t CharClassOf(char32_t cp) {
  if (cp < 128) return kAsciiClass[cp];
  if (cp > 0x10FFFF) return 0;
  return SlowClassOf(cp);
}

Utf8Char DecodeUtf8(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) return Utf8Char{b0, 1, kAsciiClass[b0]};
  const Utf8Char invalid{kInvalidCodepoint, 1, 0};
  int len;
  char32_t cp;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return invalid;
  }
  if (pos + len > text.size()) return invalid;
  for (int i = 1; i < len; ++i) {
    const uint8_t b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return invalid;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return invalid;
  return Utf8Char{cp, static_cast<uint8_t>(len), SlowClassOf(cp)};
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace compressd::engine

#include "common/utf8.h"

#include <cstdint>

namespace compressd {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 character at text[i], or 0 if none starts there.
size_t ValidCharLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint32_t min = 0, cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = ValidCharLength(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToValidUtf8(std::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(text.size() < max_bytes ? text.size() : max_bytes);
  constexpr std::string_view kCut = "...";
  for (size_t i = 0; i < text.size();) {
    const size_t n = ValidCharLength(text, i);
    const std::string_view piece = n ? text.substr(i, n) : std::string_view(kReplacement);
    if (max_bytes != std::string::npos && out.size() + piece.size() > max_bytes) {
      while (!out.empty() && out.size() + kCut.size() > max_bytes) {
        // Drop whole characters: continuation bytes, then their lead byte.
        while (!out.empty() && (static_cast<uint8_t>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty()) out.pop_back();
      }
      if (kCut.size() <= max_bytes) out.append(kCut);
      return out;
    }
    out.append(piece);
    if (n == 0) {  // skip the rest of the invalid sequence (continuation bytes)
      ++i;
      while (i < text.size() && (static_cast<uint8_t>(text[i]) & 0xC0) == 0x80) ++i;
    } else {
      i += n;
    }
  }
  return out;
}

}  // namespace compressd

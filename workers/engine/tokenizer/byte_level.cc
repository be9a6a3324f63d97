#include "workers/engine/tokenizer/byte_level.h"

#include <array>

#include "workers/engine/tokenizer/unicode_props.h"

namespace compressd::engine {
namespace {

bool IsPrintableByte(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 512> char_to_byte{};  // all characters are < U+0144
  std::array<std::string, 256> byte_to_utf8;
};

Tables MakeTables() {
  Tables t;
  t.char_to_byte.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = IsPrintableByte(b) ? static_cast<char32_t>(b) : next++;
    t.byte_to_char[b] = c;
    t.char_to_byte[c] = static_cast<int16_t>(b);
    AppendUtf8(c, &t.byte_to_utf8[b]);
  }
  return t;
}

const Tables& GetTables() {
  static const Tables* const tables = new Tables(MakeTables());
  return *tables;
}

}  // namespace

char32_t ByteToByteLevelChar(uint8_t byte) { return GetTables().byte_to_char[byte]; }

std::string BytesToByteLevel(std::string_view bytes) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.byte_to_utf8[static_cast<uint8_t>(c)];
  return out;
}

bool ByteLevelToBytes(std::string_view text, std::string* out) {
  const Tables& t = GetTables();
  out->clear();
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char ch = DecodeUtf8(text, pos);
    if (ch.cp >= t.char_to_byte.size() || t.char_to_byte[ch.cp] < 0) return false;
    out->push_back(static_cast<char>(t.char_to_byte[ch.cp]));
    pos += ch.len;
  }
  return true;
}

}  // namespace compressd::engine

// GPT-2's reversible byte <-> printable-character mapping used by byte-level
// BPE vocabularies: the 188 printable bytes ('!'..'~', U+00A1..U+00AC,
// U+00AE..U+00FF) stand for themselves, the other 68 bytes (controls, space,
// U+007F..U+00A0, U+00AD) map in order to U+0100..U+0143 (space -> 'Ġ',
// '\n' -> 'Ċ'). Vocabulary and merge strings are written in this alphabet.
//
// Pure functions over constant tables: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace compressd::engine {

// The character that stands for `byte`.
char32_t ByteToByteLevelChar(uint8_t byte);

// Raw bytes -> byte-level string (UTF-8).
std::string BytesToByteLevel(std::string_view bytes);

// Byte-level string -> raw bytes. False (and *out unspecified) when `text` is
// not valid UTF-8 or has a character outside the 256-character alphabet.
bool ByteLevelToBytes(std::string_view text, std::string* out);

}  // namespace compressd::engine

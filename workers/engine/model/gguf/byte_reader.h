// A bounds-checked little-endian cursor over a byte range: every read first
// checks the bytes remaining and fails (returns false, position unchanged)
// rather than reading past the end. Internal to the GGUF parser. Not
// thread-safe (holds a position); cheap to copy.
#pragma once

#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"

namespace compressd::engine {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "GGUF reading assumes a little-endian host");

class ByteReader {
 public:
  ByteReader(const uint8_t* data, uint64_t size, uint64_t pos = 0)
      : data_(data), size_(size), pos_(pos > size ? size : pos) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <typename T>
  bool Read(T* out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Skip(uint64_t n) {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }
  // A GGUF string: u64 length then that many bytes (not NUL-terminated).
  bool ReadString(absl::string_view* out) {
    ByteReader save = *this;
    uint64_t len = 0;
    if (!Read(&len) || remaining() < len) {
      *this = save;
      return false;
    }
    *out = absl::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return true;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_;
};

}  // namespace compressd::engine

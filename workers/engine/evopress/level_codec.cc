#include "workers/engine/evopress/level_codec.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace compressd::engine::evopress {
namespace {

constexpr char kMagic[8] = {'E', 'V', 'O', 'L', 'V', 'L', '0', '1'};
constexpr uint8_t kPruned = 1;
constexpr uint8_t kQuantized = 2;

struct Header {
  uint8_t kind = 0, has_values = 0, bits = 0, grid_flags = 0;
  int64_t rows = 0, cols = 0, group_size = 0, groups = 0;
};

template <typename T>
void Put(std::string* out, const T* data, size_t count) {
  out->append(reinterpret_cast<const char*>(data), count * sizeof(T));
}
template <typename T>
void PutOne(std::string* out, T v) {
  Put(out, &v, 1);
}

void PutHeader(std::string* out, const Header& h) {
  out->append(kMagic, sizeof(kMagic));
  for (uint8_t b : {h.kind, h.has_values, h.bits, h.grid_flags}) PutOne(out, b);
  for (int64_t v : {h.rows, h.cols, h.group_size, h.groups}) PutOne(out, v);
}

// Sequential reads with bounds checks.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  absl::Status Read(T* data, size_t count) {
    const size_t n = count * sizeof(T);
    if (n > bytes_.size() - pos_) {
      return absl::DataLossError(absl::StrCat("truncated at byte ", pos_));
    }
    std::memcpy(data, bytes_.data() + pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }
  bool at_end() const { return pos_ == bytes_.size(); }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

void EncodePruned(const float* w, int64_t n, std::string* out) {
  std::vector<uint8_t> mask((n + 7) / 8, 0);
  std::vector<float> kept;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits = 0;
    std::memcpy(&bits, &w[i], sizeof(bits));
    if (bits == 0) continue;
    mask[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    kept.push_back(w[i]);
  }
  PutOne<uint64_t>(out, kept.size());
  Put(out, mask.data(), mask.size());
  Put(out, kept.data(), kept.size());
}

void EncodeQuantized(const engine::QuantizedTensor& q, const float* w, bool has_values,
                     std::string* out) {
  const int64_t n = q.rows * q.cols;
  std::vector<uint8_t> packed((n * q.grid.bits + 7) / 8, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t code = q.codes[i];
    for (int b = 0; b < q.grid.bits; ++b) {
      const int64_t bit = i * q.grid.bits + b;
      if (code & (1u << b)) packed[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
  Put(out, packed.data(), packed.size());
  Put(out, q.scales.data(), q.scales.size());
  Put(out, q.zeros.data(), q.zeros.size());
  Put(out, q.group_index.data(), q.group_index.size());
  if (has_values) Put(out, w, n);
}

absl::StatusOr<LevelWeight> DecodePruned(Reader& in, const Header& h) {
  const int64_t n = h.rows * h.cols;
  uint64_t stored = 0;
  std::vector<uint8_t> mask((n + 7) / 8);
  if (absl::Status s = in.Read(&stored, 1); !s.ok()) return s;
  if (absl::Status s = in.Read(mask.data(), mask.size()); !s.ok()) return s;
  if (stored > static_cast<uint64_t>(n)) return absl::DataLossError("bad stored-value count");
  std::vector<float> values(stored);
  if (absl::Status s = in.Read(values.data(), values.size()); !s.ok()) return s;
  std::vector<float> w(n, 0.0f);
  uint64_t next = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!(mask[i / 8] & (1u << (i % 8)))) continue;
    if (next == stored) return absl::DataLossError("mask has more set bits than stored values");
    w[i] = values[next++];
  }
  if (next != stored) return absl::DataLossError("mask has fewer set bits than stored values");
  LevelWeight out;
  out.weight = engine::Tensor::Owned({h.rows, h.cols}, std::move(w));
  return out;
}

absl::StatusOr<LevelWeight> DecodeQuantized(Reader& in, const Header& h) {
  engine::QuantizedTensor q;
  q.rows = h.rows;
  q.cols = h.cols;
  q.grid = engine::QuantGrid{h.bits, h.group_size, (h.grid_flags & 1) != 0, h.grid_flags >> 1};
  q.groups = h.groups;
  const int64_t n = h.rows * h.cols;
  std::vector<uint8_t> packed((n * h.bits + 7) / 8);
  q.scales.resize(h.rows * h.groups);
  q.zeros.resize(h.rows * h.groups);
  q.group_index.resize(h.cols);
  for (absl::Status s : {in.Read(packed.data(), packed.size()),
                         in.Read(q.scales.data(), q.scales.size()),
                         in.Read(q.zeros.data(), q.zeros.size()),
                         in.Read(q.group_index.data(), q.group_index.size())}) {
    if (!s.ok()) return s;
  }
  for (int32_t g : q.group_index) {
    if (g < 0 || g >= h.groups) return absl::DataLossError("group index out of range");
  }
  q.codes.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t code = 0;
    for (int b = 0; b < h.bits; ++b) {
      const int64_t bit = i * h.bits + b;
      if (packed[bit / 8] & (1u << (bit % 8))) code |= 1u << b;
    }
    q.codes[i] = static_cast<uint8_t>(code);
  }
  std::vector<float> w(n);
  if (h.has_values) {
    if (absl::Status s = in.Read(w.data(), w.size()); !s.ok()) return s;
  } else {
    q.DequantizeTo(w.data());
  }
  LevelWeight out;
  out.weight = engine::Tensor::Owned({h.rows, h.cols}, std::move(w));
  out.quantized = std::move(q);
  return out;
}

}  // namespace

std::string EncodeLevelWeight(const float* w, int64_t rows, int64_t cols,
                              const engine::QuantizedTensor* q) {
  Header h;
  h.rows = rows;
  h.cols = cols;
  std::string out;
  if (q == nullptr) {
    h.kind = kPruned;
    PutHeader(&out, h);
    EncodePruned(w, rows * cols, &out);
    return out;
  }
  std::vector<float> dq(rows * cols);
  q->DequantizeTo(dq.data());
  h.kind = kQuantized;
  h.has_values = std::memcmp(dq.data(), w, dq.size() * sizeof(float)) != 0 ? 1 : 0;
  h.bits = static_cast<uint8_t>(q->grid.bits);
  // bit 0: symmetric; bits 1..4: scale_bits (0 in entries written before it existed)
  h.grid_flags = static_cast<uint8_t>((q->grid.symmetric ? 1 : 0) | (q->grid.scale_bits << 1));
  h.group_size = q->grid.group_size;
  h.groups = q->groups;
  PutHeader(&out, h);
  EncodeQuantized(*q, w, h.has_values != 0, &out);
  return out;
}

absl::StatusOr<LevelWeight> DecodeLevelWeight(std::string_view bytes, const std::string& name,
                                              int64_t rows, int64_t cols) {
  Reader in(bytes);
  char magic[sizeof(kMagic)];
  Header h;
  absl::Status s = in.Read(magic, sizeof(magic));
  for (uint8_t* b : {&h.kind, &h.has_values, &h.bits, &h.grid_flags}) {
    if (s.ok()) s = in.Read(b, 1);
  }
  for (int64_t* v : {&h.rows, &h.cols, &h.group_size, &h.groups}) {
    if (s.ok()) s = in.Read(v, 1);
  }
  if (!s.ok()) return absl::DataLossError(absl::StrCat(name, ": ", s.message()));
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(name, ": not an evopress level entry"));
  }
  if (h.rows != rows || h.cols != cols) {
    return absl::DataLossError(absl::StrCat(name, ": shape [", h.rows, ",", h.cols,
                                            "], expected [", rows, ",", cols, "]"));
  }
  const bool quantized = h.kind == kQuantized;
  if (!quantized && h.kind != kPruned) {
    return absl::DataLossError(absl::StrCat(name, ": unknown kind ", int{h.kind}));
  }
  if (quantized && (h.bits < 1 || h.bits > 8 || h.groups < 1)) {
    return absl::DataLossError(absl::StrCat(name, ": bad quantization header"));
  }
  absl::StatusOr<LevelWeight> out = quantized ? DecodeQuantized(in, h) : DecodePruned(in, h);
  if (!out.ok()) {
    return absl::DataLossError(absl::StrCat(name, ": ", out.status().message()));
  }
  if (!in.at_end()) return absl::DataLossError(absl::StrCat(name, ": trailing bytes"));
  return out;
}

}  // namespace compressd::engine::evopress

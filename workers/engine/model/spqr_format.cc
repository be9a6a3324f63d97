// The "spqr" output's layout; see spqr_format.h.
#include "workers/engine/model/spqr_format.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace compressd::engine {
namespace {

using nlohmann::json;

int64_t PackedBytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

// A part of SpqrPartSpecs, checked against `file`: its bytes.
absl::StatusOr<absl::string_view> Part(const SafetensorsFile& file, const SpqrPartSpec& spec) {
  const TensorInfo* t = file.Find(spec.name);
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": tensor \"", spec.name, "\" is missing"));
  }
  if (t->dtype != spec.dtype || t->shape != spec.shape) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": tensor \"", spec.name, "\" is ", DTypeName(t->dtype), " [",
                     absl::StrJoin(t->shape, ", "), "], expected ", DTypeName(spec.dtype), " [",
                     absl::StrJoin(spec.shape, ", "), "]"));
  }
  return file.Bytes(*t);
}

// Indices stored as U16 or I32.
std::vector<int64_t> Indices(absl::string_view bytes, DType dtype) {
  const size_t size = DTypeSize(dtype), n = bytes.size() / size;
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DType::kU16) {
      uint16_t v;
      std::memcpy(&v, bytes.data() + i * 2, 2);
      out[i] = v;
    } else {
      int32_t v;
      std::memcpy(&v, bytes.data() + i * 4, 4);
      out[i] = v;
    }
  }
  return out;
}

std::vector<float> Halves(absl::string_view bytes) {
  std::vector<uint16_t> h(bytes.size() / 2);
  std::memcpy(h.data(), bytes.data(), h.size() * 2);
  std::vector<float> out(h.size());
  HalfToFloat(h.data(), out.data(), h.size());
  return out;
}

// The dequantized scales or zeros [G, rows] of one statistic.
std::vector<float> Statistics(absl::string_view codes_bytes, absl::string_view stats_bytes,
                              const SpqrModuleMeta& m, int64_t groups) {
  const int64_t chunks = (m.rows + m.stat_group - 1) / m.stat_group;
  std::vector<uint8_t> codes(groups * m.rows);
  UnpackBits(codes_bytes.data(), groups * m.rows, m.stat_bits, codes.data());
  const std::vector<float> stats = Halves(stats_bytes);
  std::vector<float> out(groups * m.rows);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t r = 0; r < m.rows; ++r) {
      const float* st = &stats[(g * chunks + r / m.stat_group) * 2];
      out[g * m.rows + r] = st[0] * (static_cast<float>(codes[g * m.rows + r]) - st[1]);
    }
  }
  return out;
}

}  // namespace

std::string SpqrBlockFile(int block) {
  char name[64];
  std::snprintf(name, sizeof(name), "blocks/block-%05d.safetensors", block);
  return name;
}

std::string SpqrMetaJson(const SpqrModuleMeta& m) {
  return json{{"bits", m.bits},           {"group_size", m.group_size},
              {"stat_bits", m.stat_bits}, {"stat_group", m.stat_group},
              {"rows", m.rows},           {"cols", m.cols},
              {"outliers", m.outliers}}
      .dump();
}

absl::StatusOr<SpqrModuleMeta> ParseSpqrMeta(const std::string& text, const std::string& where) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  SpqrModuleMeta m;
  const auto get = [&](const char* key, int64_t lo, int64_t hi, auto* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < lo ||
        it->get<int64_t>() > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", key, "\" must be an integer in [", lo, ", ", hi, "]"));
    }
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(it->get<int64_t>());
    return absl::OkStatus();
  };
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
  constexpr int64_t kMaxDim = int64_t{1} << 31;
  RETURN_IF_ERROR(get("bits", 2, 8, &m.bits));
  RETURN_IF_ERROR(get("group_size", 1, kMaxDim, &m.group_size));
  RETURN_IF_ERROR(get("stat_bits", 2, 8, &m.stat_bits));
  RETURN_IF_ERROR(get("stat_group", 1, kMaxDim, &m.stat_group));
  RETURN_IF_ERROR(get("rows", 1, kMaxDim, &m.rows));
  RETURN_IF_ERROR(get("cols", 1, kMaxDim, &m.cols));
  RETURN_IF_ERROR(get("outliers", 0, m.rows * m.cols, &m.outliers));
  return m;
}

std::string PackBits(const uint8_t* values, int64_t n, int bits) {
  std::string out(static_cast<size_t>(PackedBytes(n, bits)), '\0');
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t v = values[i];
    for (int b = 0; b < bits; ++b) {
      const int64_t bit = i * bits + b;
      if ((v >> b) & 1u) out[bit / 8] = static_cast<char>(out[bit / 8] | (1 << (bit % 8)));
    }
  }
  return out;
}

void UnpackBits(const char* bytes, int64_t n, int bits, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t v = 0;
    for (int b = 0; b < bits; ++b) {
      const int64_t bit = i * bits + b;
      v |= ((static_cast<uint8_t>(bytes[bit / 8]) >> (bit % 8)) & 1u) << b;
    }
    out[i] = static_cast<uint8_t>(v);
  }
}

std::vector<SpqrPartSpec> SpqrPartSpecs(const std::string& module, const SpqrModuleMeta& m) {
  const int64_t groups = (m.cols + m.group_size - 1) / m.group_size;
  const int64_t chunks = (m.rows + m.stat_group - 1) / m.stat_group;
  const DType index = m.cols <= 65536 ? DType::kU16 : DType::kI32;
  const std::string p = module + ".spqr.";
  return {{p + "codes", DType::kU8, {PackedBytes(m.rows * m.cols, m.bits)}},
          {p + "perm", index, {m.cols}},
          {p + "scale_codes", DType::kU8, {PackedBytes(groups * m.rows, m.stat_bits)}},
          {p + "zero_codes", DType::kU8, {PackedBytes(groups * m.rows, m.stat_bits)}},
          {p + "scale_stats", DType::kF16, {groups, chunks, 2}},
          {p + "zero_stats", DType::kF16, {groups, chunks, 2}},
          {p + "outlier_rows", DType::kI32, {m.rows + 1}},
          {p + "outlier_cols", index, {m.outliers}},
          {p + "outlier_values", DType::kF16, {m.outliers}}};
}

absl::Status CheckSpqrParts(const SafetensorsFile& file, const std::string& module,
                            const SpqrModuleMeta& m) {
  for (const SpqrPartSpec& s : SpqrPartSpecs(module, m)) RETURN_IF_ERROR(Part(file, s).status());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> DecodeSpqr(const SafetensorsFile& file,
                                              const std::string& module, const SpqrModuleMeta& m) {
  const std::vector<SpqrPartSpec> specs = SpqrPartSpecs(module, m);
  std::vector<absl::string_view> b;
  for (const SpqrPartSpec& s : specs) {
    ASSIGN_OR_RETURN(const absl::string_view bytes, Part(file, s));
    b.push_back(bytes);
  }
  const auto bad = [&](int part, const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": tensor \"", specs[part].name, "\": ", what));
  };
  const std::vector<int64_t> perm = Indices(b[1], specs[1].dtype);
  std::vector<uint8_t> seen(m.cols, 0);
  for (int64_t p = 0; p < m.cols; ++p) {
    if (perm[p] < 0 || perm[p] >= m.cols || seen[perm[p]]++) {
      return bad(1, absl::StrCat("entry ", p, " (", perm[p], ") breaks the permutation"));
    }
  }
  const std::vector<int64_t> rows = Indices(b[6], DType::kI32);
  const std::vector<int64_t> cols = Indices(b[7], specs[7].dtype);
  for (int64_t r = 0; r < m.rows; ++r) {
    if (rows[0] != 0 || rows[r + 1] < rows[r] || rows[m.rows] != m.outliers) {
      return bad(6, absl::StrCat("row pointer ", r + 1, " is out of order or range"));
    }
  }
  for (int64_t k = 0; k < m.outliers; ++k) {
    if (cols[k] < 0 || cols[k] >= m.cols) return bad(7, absl::StrCat("entry ", k, " >= cols"));
  }
  const int64_t groups = (m.cols + m.group_size - 1) / m.group_size;
  const std::vector<float> scales = Statistics(b[2], b[4], m, groups);
  const std::vector<float> zeros = Statistics(b[3], b[5], m, groups);
  std::vector<uint8_t> codes(m.rows * m.cols);
  UnpackBits(b[0].data(), m.rows * m.cols, m.bits, codes.data());
  std::vector<float> w(m.rows * m.cols);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t p = 0; p < m.cols; ++p) {
      const int64_t g = p / m.group_size;
      w[r * m.cols + perm[p]] = scales[g * m.rows + r] *
                                (static_cast<float>(codes[r * m.cols + p]) - zeros[g * m.rows + r]);
    }
  }
  const std::vector<float> values = Halves(b[8]);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t k = rows[r]; k < rows[r + 1]; ++k) w[r * m.cols + cols[k]] = values[k];
  }
  return w;
}

}  // namespace compressd::engine

// The "spqr" output's files (written by export/spqr_writer.h, read back by
// gguf/spqr_stream.h; docs/algorithms.md "SpQR" shows the layout):
//
//   config.json      the family's, plus quantization_config {quant_method:
//                    "compressd-spqr", format_version: 1, blocks:
//                    "blocks/block-%05d.safetensors"}
//   model.safetensors the tensors outside the blocks (embedding, final norm,
//                    untied head) in float16
//   blocks/block-NNNNN.safetensors  block N's tensors: an SpQR module m
//                    (a linear's weight "m.weight") as the parts below, every
//                    other tensor dense in float16; the file's __metadata__
//                    maps each SpQR module to its SpqrModuleMeta JSON.
//
// Parts of module m (rows = out, cols = in, G = ceil(cols / group_size)
// groups in sweep order, C = ceil(rows / stat_group), index type U16 when
// cols <= 65536, else I32):
//   m.spqr.codes          U8 [ceil(rows * cols * bits / 8)]: the codes, row by
//                         row in sweep order, packed lowest bit first
//   m.spqr.perm           index [cols]: sweep position -> input column
//   m.spqr.scale_codes    U8 [ceil(G * rows * stat_bits / 8)]: [G, rows], packed
//   m.spqr.zero_codes     the same for the zero points
//   m.spqr.scale_stats    F16 [G, C, 2]: (scale2, zero2) per group and C rows
//   m.spqr.zero_stats     the same for the zero points
//   m.spqr.outlier_rows   I32 [rows + 1]: CSR row pointers
//   m.spqr.outlier_cols   index [outliers]: input column
//   m.spqr.outlier_values F16 [outliers]
// Decoding: s = scale2 * (scale_code - zero2) for group g, row r (its C
// group r / stat_group), z likewise; w[r][perm[p]] = s * (code[r][p] - z)
// with g = p / group_size; then each outlier replaces its entry.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/safetensors.h"

namespace compressd::engine {

inline constexpr char kSpqrQuantMethod[] = "compressd-spqr";
inline constexpr int kSpqrFormatVersion = 1;

// "blocks/block-00003.safetensors" (relative to the model directory).
std::string SpqrBlockFile(int block);

struct SpqrModuleMeta {
  int bits = 0;
  int64_t group_size = 0;
  int stat_bits = 0;
  int64_t stat_group = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t outliers = 0;
};

std::string SpqrMetaJson(const SpqrModuleMeta& m);
// INVALID_ARGUMENT naming `where` for malformed JSON or values out of range.
absl::StatusOr<SpqrModuleMeta> ParseSpqrMeta(const std::string& text, const std::string& where);

// n values of `bits` bits (each < 2^bits) packed lowest bit first.
std::string PackBits(const uint8_t* values, int64_t n, int bits);
void UnpackBits(const char* bytes, int64_t n, int bits, uint8_t* out);

struct SpqrPartSpec {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
};
// The parts of module m, in the order of the header comment.
std::vector<SpqrPartSpec> SpqrPartSpecs(const std::string& module, const SpqrModuleMeta& m);

// Every part of module m present in `file` with its dtype and shape;
// INVALID_ARGUMENT naming the file and tensor otherwise.
absl::Status CheckSpqrParts(const SafetensorsFile& file, const std::string& module,
                            const SpqrModuleMeta& m);

// Module m of `file` decoded to float32 [rows, cols]. INVALID_ARGUMENT naming
// the file and tensor for a missing part, a wrong dtype or shape, an order
// that is not a permutation, or outlier indices out of range.
absl::StatusOr<std::vector<float>> DecodeSpqr(const SafetensorsFile& file,
                                              const std::string& module, const SpqrModuleMeta& m);

}  // namespace compressd::engine

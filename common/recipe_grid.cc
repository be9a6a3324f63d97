#include "common/recipe_grid.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/recipe_field.h"

namespace compressd {
namespace {

constexpr int64_t kMaxGroupSize = int64_t{1} << 20;
constexpr int64_t kScaleSuperGroup = 256;  // quant_grid.h kScaleSuperGroup

bool Fractional(const v1::QuantGridSpec& grid) {
  return grid.asymmetric() && grid.scale_bits() > 0;
}

// The grid a stage quantizes with and its field path, or null.
const v1::QuantGridSpec* StageGrid(const v1::Stage& s, std::string* field) {
  if (s.has_gptq()) return *field = "gptq.grid", &s.gptq().grid();
  if (s.has_rtn()) return *field = "rtn.grid", &s.rtn().grid();
  if (s.has_sparsegpt() && s.sparsegpt().has_quantize()) {
    return *field = "sparsegpt.quantize", &s.sparsegpt().quantize();
  }
  if (s.has_evopress() && s.evopress().mode() == "bits") {
    return *field = "evopress.grid", &s.evopress().grid();
  }
  return nullptr;
}

bool Prunes(const v1::Stage& s) {
  return s.has_magnitude() || s.has_wanda() || s.has_sparsegpt() ||
         (s.has_evopress() && s.evopress().mode() == "sparsity");
}

}  // namespace

absl::Status ValidateGrid(const v1::QuantGridSpec& grid, const std::string& path) {
  if (!grid.type().empty() && grid.type() != "int" && grid.type() != "fp8") {
    return FieldError(path + ".type",
                      absl::StrCat("must be int or fp8 (E4M3), got \"", grid.type(), "\""));
  }
  if (GridIsFp8(grid) && (grid.bits() != 8 || grid.group_size() != -1 || grid.asymmetric() ||
                          grid.scale_bits() != 0)) {
    return FieldError(path + ".type",
                      absl::StrCat("an fp8 (E4M3) grid is 8 bits with one scale per output "
                                   "channel, symmetric (what vLLM's FP8 kernels run): bits 8, "
                                   "group_size -1, no asymmetric or scale_bits; got bits ",
                                   grid.bits(), ", group_size ", grid.group_size(),
                                   grid.asymmetric() ? ", asymmetric" : "",
                                   grid.scale_bits() ? ", scale_bits" : ""));
  }
  if (grid.bits() < 2 || grid.bits() > 8) {
    return FieldError(path + ".bits", absl::StrCat("must be in [2, 8], got ", grid.bits()));
  }
  if (grid.group_size() != -1 && (grid.group_size() < 1 || grid.group_size() > kMaxGroupSize)) {
    return FieldError(path + ".group_size",
                      absl::StrCat("must be -1 (per channel) or in [1, ", kMaxGroupSize, "], got ",
                                   grid.group_size()));
  }
  if (grid.scale_bits() == 0) return absl::OkStatus();
  if (grid.scale_bits() < 2 || grid.scale_bits() > 8) {
    return FieldError(
        path + ".scale_bits",
        absl::StrCat("must be 0 (float scales) or in [2, 8], got ", grid.scale_bits()));
  }
  if (grid.group_size() < 1 || kScaleSuperGroup % grid.group_size() != 0) {
    return FieldError(path + ".scale_bits",
                      absl::StrCat("scales on a lattice need a group_size dividing ",
                                   kScaleSuperGroup, ", got ", grid.group_size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateFractionalZeros(const v1::Recipe& recipe, int index, const v1::Stage& stage,
                                     const std::string& path) {
  std::string field;
  const v1::QuantGridSpec* grid = StageGrid(stage, &field);
  if (grid == nullptr || !Fractional(*grid)) return absl::OkStatus();
  bool pruned = stage.has_sparsegpt();
  for (int i = 0; i < index; ++i) pruned |= Prunes(recipe.stages(i));
  const std::string where = absl::StrCat(path, ".", field, ".scale_bits");
  if (pruned) {
    return FieldError(where,
                      "an asymmetric grid with scale_bits has no exact zero (value "
                      "d*sc*q - dmin*m, as ggml's Q2_K/Q4_K/Q5_K), so it cannot keep "
                      "pruned weights at zero: use a symmetric grid with pruning");
  }
  const std::string& format = recipe.output().format();
  if (format == "gptq" || format == "compressed_tensors") {
    return FieldError(where, absl::StrCat("an asymmetric grid with scale_bits has fractional zero "
                                          "points, which ",
                                          format,
                                          " output cannot store (integer zero points): use "
                                          "output.format gguf or hf_safetensors"));
  }
  return absl::OkStatus();
}

bool GridIsFp8(const v1::QuantGridSpec& grid) { return grid.type() == "fp8"; }

absl::Status ValidateEvoPressGrid(const v1::QuantGridSpec& grid, const std::string& path) {
  if (GridIsFp8(grid)) {
    return FieldError(path + ".type",
                      "evopress searches bit widths of integer grids; fp8 has one width");
  }
  return ValidateGrid(grid, path);
}

void Fp8GridDefaults(v1::QuantGridSpec* grid) {
  if (!GridIsFp8(*grid)) return;
  if (grid->bits() == 0) grid->set_bits(8);
  if (grid->group_size() == 0) grid->set_group_size(-1);
}

absl::Status ValidateGridType(const v1::Recipe& recipe, const v1::Stage& stage,
                              const std::string& path, const v1::Stage* base) {
  std::string field, base_field;
  const v1::QuantGridSpec* grid = StageGrid(stage, &field);
  if (grid == nullptr) return absl::OkStatus();
  const std::string where = absl::StrCat(path, ".", field, ".type");
  const v1::QuantGridSpec* base_grid = base != nullptr ? StageGrid(*base, &base_field) : nullptr;
  if (base_grid != nullptr && GridIsFp8(*base_grid) != GridIsFp8(*grid)) {
    return FieldError(where,
                      "an override cannot change the grid's type (int or fp8): the "
                      "checkpoint holds one");
  }
  if (!GridIsFp8(*grid)) return absl::OkStatus();  // (evopress: ValidateEvoPress refuses fp8)
  const std::string& format = recipe.output().format();
  if (format == "gguf" || format == "gptq") {
    return FieldError(where, absl::StrCat("an fp8 (E4M3) grid is stored by compressed_tensors "
                                          "(float-quantized) or hf_safetensors (dequantized); ",
                                          format, " has no E4M3 type"));
  }
  return absl::OkStatus();
}

}  // namespace compressd

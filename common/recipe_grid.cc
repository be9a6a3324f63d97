#include "common/recipe_grid.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/recipe_field.h"

namespace compressd {
namespace {

constexpr int64_t kMaxGroupSize = int64_t{1} << 20;
constexpr int64_t kScaleSuperGroup = 256;  // quant_grid.h kScaleSuperGroup


}  // namespace

absl::Status ValidateGrid(const v1::QuantGridSpec& grid, const std::string& path) {
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
  if (grid.asymmetric()) {
    return FieldError(path + ".scale_bits",
                      "scales on a lattice need a symmetric grid (asymmetric is set)");
  }
  if (grid.group_size() < 1 || kScaleSuperGroup % grid.group_size() != 0) {
    return FieldError(path + ".scale_bits",
                      absl::StrCat("scales on a lattice need a group_size dividing ",
                                   kScaleSuperGroup, ", got ", grid.group_size()));
  }
  return absl::OkStatus();
}

}  // namespace compressd

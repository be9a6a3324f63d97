// What the recipe validators (common/recipe*.cc) share.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace compressd {

// INVALID_ARGUMENT "<field>: <message>", the field named by its recipe path.
inline absl::Status FieldError(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// The most threads a recipe may ask for (calibration and evaluation).
inline constexpr int kMaxRecipeThreads = 1024;

}  // namespace compressd

#include "common/recipe_owl.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/recipe_field.h"

namespace compressd {

void OwlDefaults(v1::OwlSpec* owl) {
  if (owl->lambda() == 0.0) owl->set_lambda(kDefaultOwlLambda);
  if (owl->m() == 0.0) owl->set_m(kDefaultOwlM);
}

absl::Status ValidateOwl(const v1::OwlSpec& owl, double sparsity, const std::string& pattern,
                         const std::string& path) {
  if (!pattern.empty()) {
    return FieldError(path,
                      "OWL allocates unstructured sparsity across blocks: set sparsity, not "
                      "pattern");
  }
  // Block sparsities span a window of 2 lambda that contains S.
  if (!(owl.lambda() > 0.0) || !(sparsity - 2 * owl.lambda() > 0.0) ||
      !(sparsity + 2 * owl.lambda() < 1.0)) {
    return FieldError(path + ".lambda",
                      absl::StrCat("every block's sparsity (", sparsity, " +- 2 x lambda ",
                                   owl.lambda(), ") must stay inside (0, 1)"));
  }
  if (!(owl.m() > 0.0) || !std::isfinite(owl.m())) {
    return FieldError(path + ".m", absl::StrCat("must be a positive number, got ", owl.m()));
  }
  return absl::OkStatus();
}

const v1::OwlSpec* StageOwl(const v1::Stage& stage) {
  if (stage.has_wanda() && stage.wanda().has_owl()) return &stage.wanda().owl();
  if (stage.has_sparsegpt() && stage.sparsegpt().has_owl()) return &stage.sparsegpt().owl();
  return nullptr;
}

double OwlTargetSparsity(const v1::Stage& stage) {
  return stage.has_wanda() ? stage.wanda().sparsity() : stage.sparsegpt().sparsity();
}

void ResolveOwl(v1::Stage* stage, double sparsity) {
  if (stage->has_wanda()) {
    stage->mutable_wanda()->set_sparsity(sparsity);
    stage->mutable_wanda()->clear_owl();
  }
  if (stage->has_sparsegpt()) {
    stage->mutable_sparsegpt()->set_sparsity(sparsity);
    stage->mutable_sparsegpt()->clear_owl();
  }
}

}  // namespace compressd

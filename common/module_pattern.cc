#include "common/module_pattern.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace compressd {

absl::StatusOr<ModulePattern> ModulePattern::Compile(std::string_view pattern,
                                                     const std::string& field) {
  if (pattern.empty())
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  if (pattern.size() > kMaxLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": regex of ", pattern.size(), " characters; at most ", kMaxLength));
  }
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(kMaxProgramBytes);
  auto re = std::make_shared<const RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": invalid regex \"", std::string(pattern), "\": ", re->error()));
  }
  return ModulePattern(std::move(re));
}

bool ModulePattern::FullMatch(std::string_view text) const {
  return RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

const std::string& ModulePattern::pattern() const { return re_->pattern(); }

}  // namespace compressd

// A user-supplied pattern over module names (targets.include / ignore,
// overrides[].modules), compiled with RE2: matching is linear in the input,
// uses no recursion and a bounded amount of memory, so no pattern a client
// sends can crash or stall the server or a worker (std::regex recursed on a
// long pattern and overflowed a gRPC thread's stack). Matching is a full match.
//
// RE2 syntax is the familiar Perl/ECMAScript subset without backreferences
// and lookaround ("model\.layers\.[0-3]\..*_proj$" works as before).
// Immutable and thread-safe; copies share the compiled program.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace compressd {

class ModulePattern {
 public:
  // Limits on what a recipe may hold (each an INVALID_ARGUMENT naming the field).
  static constexpr size_t kMaxLength = 1024;            // characters per pattern
  static constexpr int kMaxPatternsPerList = 256;       // targets.ignore, overrides
  static constexpr int64_t kMaxProgramBytes = 1 << 20;  // RE2 memory per pattern

  // INVALID_ARGUMENT naming `field` for an empty pattern, one longer than
  // kMaxLength, one RE2 rejects (with its reason) or one whose program exceeds
  // kMaxProgramBytes.
  static absl::StatusOr<ModulePattern> Compile(std::string_view pattern, const std::string& field);

  bool FullMatch(std::string_view text) const;
  const std::string& pattern() const;

 private:
  explicit ModulePattern(std::shared_ptr<const re2::RE2> re) : re_(std::move(re)) {}
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace compressd

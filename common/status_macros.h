// The one error type inside compressd is absl::Status / absl::StatusOr<T>.
// These macros are the only early-return helpers; use them everywhere.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define COMPRESSD_CONCAT_INNER(a, b) a##b
#define COMPRESSD_CONCAT(a, b) COMPRESSD_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status _status = (expr);               \
    if (!_status.ok()) return _status;             \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr)     \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL(COMPRESSD_CONCAT(_statusor_, __LINE__), lhs, rexpr)

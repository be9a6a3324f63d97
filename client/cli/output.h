// Printing helpers shared by the commands: protobuf JSON, errors, times.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace compressd::client {

// Where a command writes. `err_is_tty` enables progress bars on `err`.
struct Io {
  std::ostream& out;
  std::ostream& err;
  bool err_is_tty = false;
};

// One-line JSON in protobuf's JSON mapping with the .proto field names and
// every primitive field present.
std::string ToJson(const google::protobuf::Message& message);

// "error: INVALID_ARGUMENT: <message>"
std::string FormatError(const absl::Status& status);

// "2024-05-01 12:34:56" (UTC), or "-" for 0.
std::string FormatTimeMs(int64_t ms);

}  // namespace compressd::client

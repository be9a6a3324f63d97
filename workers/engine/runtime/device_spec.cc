#include "workers/engine/runtime/device_spec.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace compressd::engine {

std::string DeviceSpec::ToString() const {
  switch (kind) {
    case Kind::kCpu:
      return "cpu";
    case Kind::kAuto:
      return "auto";
    case Kind::kCuda:
      return index < 0 ? std::string("cuda") : absl::StrCat("cuda:", index);
  }
  return "cpu";
}

absl::StatusOr<DeviceSpec> ParseDeviceSpec(const std::string& text) {
  DeviceSpec spec;
  if (text == "cpu") return spec;
  if (text == "auto") {
    spec.kind = DeviceSpec::Kind::kAuto;
    return spec;
  }
  if (text == "cuda") {
    spec.kind = DeviceSpec::Kind::kCuda;
    return spec;
  }
  int index = -1;
  if (absl::StartsWith(text, "cuda:") && absl::SimpleAtoi(text.substr(5), &index) && index >= 0 &&
      text.size() > 5 && text.find_first_not_of("0123456789", 5) == std::string::npos) {
    spec.kind = DeviceSpec::Kind::kCuda;
    spec.index = index;
    return spec;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "device \"", text, "\": expected cpu, cuda, cuda:N (N = 0, 1, ...) or auto"));
}

absl::StatusOr<DeviceSpec> ResolveDevice(const DeviceSpec& spec, const std::vector<GpuInfo>& gpus,
                                         const std::string& why_none) {
  DeviceSpec out = spec;
  switch (spec.kind) {
    case DeviceSpec::Kind::kCpu:
      return out;
    case DeviceSpec::Kind::kAuto:
      if (gpus.empty()) return DeviceSpec{};
      out.kind = DeviceSpec::Kind::kCuda;
      out.index = gpus.front().index;
      return out;
    case DeviceSpec::Kind::kCuda:
      break;
  }
  if (out.index < 0) out.index = 0;
  for (const GpuInfo& g : gpus) {
    if (g.index == out.index) return out;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "device ", out.ToString(), ": no such CUDA device on this machine (",
      gpus.empty() ? (why_none.empty() ? std::string("none found") : why_none)
                   : absl::StrCat(gpus.size(), " found"),
      ")"));
}

}  // namespace compressd::engine

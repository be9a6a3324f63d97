// Host-side device logic, tested on any machine: --device parsing and
// resolution against a machine's GPUs, and the solver factory without a GPU.
// (The CUDA solver's memory sizing is tested in tests/cuda/.)
#include "workers/engine/runtime/device_spec.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "workers/cuda/devices.h"

namespace compressd::engine {
namespace {

TEST(DeviceSpecTest, ParsesEveryForm) {
  EXPECT_EQ(ParseDeviceSpec("cpu")->kind, DeviceSpec::Kind::kCpu);
  EXPECT_EQ(ParseDeviceSpec("auto")->kind, DeviceSpec::Kind::kAuto);
  auto cuda = ParseDeviceSpec("cuda");
  ASSERT_TRUE(cuda.ok());
  EXPECT_EQ(cuda->kind, DeviceSpec::Kind::kCuda);
  EXPECT_EQ(cuda->index, -1);
  auto three = ParseDeviceSpec("cuda:3");
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three->index, 3);
  EXPECT_EQ(three->ToString(), "cuda:3");
}

TEST(DeviceSpecTest, RejectsMalformedNames) {
  for (const std::string bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:1x", "CUDA:0", "cuda:0:1"}) {
    auto s = ParseDeviceSpec(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find("\"" + bad + "\""), std::string::npos) << s.status();
  }
}

TEST(DeviceSpecTest, ResolvesAgainstTheMachinesGpus) {
  const std::vector<GpuInfo> two = {{0, "A", 9, 0, 1, 1}, {1, "B", 9, 0, 1, 1}};
  EXPECT_EQ(ResolveDevice(*ParseDeviceSpec("auto"), two, "")->ToString(), "cuda:0");
  EXPECT_EQ(ResolveDevice(*ParseDeviceSpec("auto"), {}, "no driver")->ToString(), "cpu");
  EXPECT_EQ(ResolveDevice(*ParseDeviceSpec("cuda"), two, "")->ToString(), "cuda:0");
  EXPECT_EQ(ResolveDevice(*ParseDeviceSpec("cuda:1"), two, "")->ToString(), "cuda:1");
  auto missing = ResolveDevice(*ParseDeviceSpec("cuda:2"), two, "");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("cuda:2"), std::string::npos);
  auto none = ResolveDevice(*ParseDeviceSpec("cuda"), {}, "CUDA runtime: no driver");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("no driver"), std::string::npos) << none.status();
}

TEST(DeviceSpecTest, TheCpuSolverAlwaysExists) {
  auto solver = cuda::CreateSolver(DeviceSpec{});
  ASSERT_TRUE(solver.ok()) << solver.status();
  EXPECT_EQ((*solver)->name(), "cpu");
}

// On any machine (with or without GPUs, with or without the CUDA plugin
// beside this binary): a device that is not there is FAILED_PRECONDITION
// naming it, from the resolution and from the solver factory alike.
TEST(DeviceSpecTest, AGpuThatIsNotThereIsAClearError) {
  std::string why;
  const std::vector<GpuInfo> gpus = cuda::ListGpus(&why);
  EXPECT_EQ(gpus.empty(), !why.empty()) << why;
  DeviceSpec spec;
  spec.kind = DeviceSpec::Kind::kCuda;
  spec.index = 999;
  auto resolved = ResolveDevice(spec, gpus, why);
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(resolved.status().message().find("cuda:999"), std::string::npos) << resolved.status();
  auto solver = cuda::CreateSolver(spec);
  EXPECT_EQ(solver.status().code(), absl::StatusCode::kFailedPrecondition) << solver.status();
  EXPECT_NE(solver.status().message().find("cuda:999"), std::string::npos) << solver.status();
}

}  // namespace
}  // namespace compressd::engine

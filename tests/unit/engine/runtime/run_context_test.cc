// The run options' helpers: byte sizes (--memory-budget) and the memory
// refusal a leased task reports to the scheduler.
#include "workers/engine/runtime/run_context.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace compressd::engine {
namespace {

TEST(ParseByteSizeTest, UnitsAndErrors) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("24g"), 24ull << 30);
  EXPECT_EQ(*ParseByteSize("1.5G"), 3ull << 29);
  for (const char* bad : {"", "G", "-1G", "0", "twenty", "1e30"}) {
    EXPECT_EQ(ParseByteSize(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(CgroupMemoryLimitTest, ReadsV2ThenV1AndIgnoresNoLimit) {
  const std::string dir = ::testing::TempDir();
  const std::string v2 = dir + "/memory.max", v1 = dir + "/memory.limit_in_bytes";
  std::ofstream(v2) << "8589934592\n";
  std::ofstream(v1) << "4294967296\n";
  EXPECT_EQ(CgroupMemoryLimit(v2, v1), uint64_t{8} << 30);
  std::ofstream(v2) << "max\n";
  EXPECT_EQ(CgroupMemoryLimit(v2, v1), uint64_t{4} << 30);
  std::ofstream(v1) << "9223372036854771712\n";  // v1 without a limit
  EXPECT_EQ(CgroupMemoryLimit(v2, v1), 0u);
  EXPECT_EQ(CgroupMemoryLimit(dir + "/absent", dir + "/absent2"), 0u);
  EXPECT_GT(DefaultMemoryBudgetBytes(), 0u);
}

TEST(MemoryRefusalTest, CarriesTheEstimate) {
  const absl::Status refused = MemoryRefusal(uint64_t{30} << 30, "too big");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(), "too big");
  EXPECT_EQ(MemoryNeeded(refused), uint64_t{30} << 30);
  EXPECT_EQ(MemoryNeeded(absl::ResourceExhaustedError("disk full")), 0u);
  EXPECT_EQ(MemoryNeeded(absl::OkStatus()), 0u);
}

}  // namespace
}  // namespace compressd::engine

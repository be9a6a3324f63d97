#include "common/channel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace compressd {
namespace {

using ::testing::HasSubstr;

TEST(ListTargetTest, AListOfReplicasBecomesOneTargetOfItsFamily) {
  EXPECT_EQ(ListTarget("localhost:50051").value(), "localhost:50051");
  EXPECT_EQ(ListTarget("dns:///compressd:50051").value(), "dns:///compressd:50051");
  EXPECT_EQ(ListTarget("10.0.0.1:50051, 10.0.0.2:50052").value(),
            "ipv4:10.0.0.1:50051,10.0.0.2:50052");
  EXPECT_EQ(ListTarget("[::1]:1,[fe80::2]:2").value(), "ipv6:[::1]:1,[fe80::2]:2");
  EXPECT_EQ(ListTarget("localhost:1,localhost:2").value(), "ipv4:127.0.0.1:1,127.0.0.1:2");
}

TEST(ListTargetTest, NamesAndMixedFamiliesInAListAreRefusedWithTheWayOut) {
  absl::StatusOr<std::string> named = ListTarget("10.0.0.1:1,compressd-1:50051");
  EXPECT_EQ(named.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(named.status().message(), HasSubstr("\"compressd-1:50051\""));
  EXPECT_THAT(named.status().message(), HasSubstr("dns:///"));
  EXPECT_EQ(ListTarget("10.0.0.1:1,[::1]:2").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ListTarget("10.0.0.1,10.0.0.2:2").status().code(),
            absl::StatusCode::kInvalidArgument);  // no port
}

}  // namespace
}  // namespace compressd

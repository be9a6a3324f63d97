#include "client/cli/args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

absl::Status Parse(const std::vector<std::string>& args, Invocation* inv) {
  return ParseCommandLine(args, "env:1", inv);
}

TEST(ArgsTest, GlobalFlagsAnywhereAndDefaults) {
  Invocation inv;
  ASSERT_TRUE(Parse({"models", "list"}, &inv).ok());
  EXPECT_EQ(inv.server, "env:1");
  EXPECT_FALSE(inv.json);
  ASSERT_NE(inv.command, nullptr);
  EXPECT_EQ(inv.command->group, "models");
  EXPECT_EQ(inv.command->verb, "list");

  ASSERT_TRUE(Parse({"--server", "h:9", "models", "get", "m-1", "--json"}, &inv).ok());
  EXPECT_EQ(inv.server, "h:9");
  EXPECT_TRUE(inv.json);
  EXPECT_THAT(inv.args, ElementsAre("m-1"));

  ASSERT_TRUE(Parse({"jobs", "--server=x:1", "get", "j-1"}, &inv).ok());
  EXPECT_EQ(inv.server, "x:1");
}

TEST(ArgsTest, DefaultServerFromEnvironment) {
  EXPECT_EQ(DefaultServer(nullptr), "localhost:50051");
  EXPECT_EQ(DefaultServer(""), "localhost:50051");
  EXPECT_EQ(DefaultServer("10.0.0.1:7000"), "10.0.0.1:7000");
}

TEST(ArgsTest, SubmitFlags) {
  Invocation inv;
  absl::Status s =
      Parse({"jobs", "submit", "--model", "m-1", "--recipe=r.yaml", "--dataset", "d-1", "--dataset",
             "d-2", "--max-attempts", "5", "--wait", "--request-id", "req-7"},
            &inv);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(inv.Get("model"), "m-1");
  EXPECT_EQ(inv.Get("recipe"), "r.yaml");
  EXPECT_THAT(inv.GetAll("dataset"), ElementsAre("d-1", "d-2"));
  EXPECT_EQ(inv.Get("max-attempts"), "5");
  EXPECT_EQ(inv.Get("request-id"), "req-7");
  EXPECT_TRUE(inv.Has("wait"));
  EXPECT_FALSE(inv.Has("nothing"));
  EXPECT_EQ(inv.Get("nothing", "fallback"), "fallback");
}

TEST(ArgsTest, VariadicPositionalsAndDoubleDash) {
  Invocation inv;
  ASSERT_TRUE(Parse({"datasets", "upload", "a.txt", "b.txt", "--name", "wiki"}, &inv).ok());
  EXPECT_THAT(inv.args, ElementsAre("a.txt", "b.txt"));
  ASSERT_TRUE(Parse({"datasets", "upload", "--name", "n", "--", "--odd-file"}, &inv).ok());
  EXPECT_THAT(inv.args, ElementsAre("--odd-file"));
}

struct BadCase {
  std::vector<std::string> args;
  std::string message;
};

TEST(ArgsTest, UsageErrors) {
  const std::vector<BadCase> cases = {
      {{}, "missing command"},
      {{"frobnicate"}, "unknown command \"frobnicate\""},
      {{"models"}, "models: missing command"},
      {{"models", "explode"}, "unknown command \"models explode\""},
      {{"models", "get"}, "missing ID"},
      {{"models", "get", "a", "b"}, "unexpected argument \"b\""},
      {{"models", "upload", "p", "--nmae", "x"}, "unknown flag --nmae"},
      {{"models", "upload", "p", "--name"}, "--name needs a value NAME"},
      {{"models", "upload", "p", "--name", "--json"}, "--name needs a value"},
      {{"models", "upload", "p", "--name="}, "--name must not be empty"},
      {{"models", "upload", "p", "--name", "a", "--name", "b"}, "given more than once"},
      {{"datasets", "upload", "--name", "n"}, "missing PATH..."},
      {{"datasets", "upload", "a.txt"}, "missing --name NAME"},
      {{"jobs", "submit", "--recipe", "r"}, "missing --model ID"},
      {{"jobs", "submit", "--model", "m"}, "missing --recipe FILE"},
      {{"jobs", "submit", "--model", "m", "--recipe", "r", "--max-attempts", "0"},
       "--max-attempts must be a positive integer"},
      {{"jobs", "submit", "--model", "m", "--recipe", "r", "--max-attempts", "x"},
       "--max-attempts must be a positive integer"},
      {{"jobs", "submit", "--model", "m", "--recipe", "r", "--wait=yes"}, "takes no value"},
      {{"jobs", "list", "--state", "done"}, "unknown job state \"done\""},
      {{"artifacts", "download", "j-1"}, "missing --out DIR"},
      {{"--server"}, "--server needs a value"},
      {{"--bogus", "models", "list"}, "unknown flag --bogus"},
  };
  for (const BadCase& c : cases) {
    Invocation inv;
    absl::Status s = Parse(c.args, &inv);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << testing::PrintToString(c.args);
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << testing::PrintToString(c.args);
  }
}

TEST(ArgsTest, ErrorKeepsRecognisedCommandForUsage) {
  Invocation inv;
  EXPECT_FALSE(Parse({"jobs", "submit", "--model", "m"}, &inv).ok());
  ASSERT_NE(inv.command, nullptr);
  EXPECT_THAT(CommandUsage(*inv.command), HasSubstr("jobs submit --model ID --recipe FILE"));
  EXPECT_FALSE(Parse({"jobs", "nope"}, &inv).ok());
  EXPECT_EQ(inv.group, "jobs");
  EXPECT_THAT(GroupUsage(inv.group), HasSubstr("jobs watch ID"));
  EXPECT_THAT(GroupUsage(inv.group), Not(HasSubstr("models upload")));
}

TEST(ArgsTest, HelpSkipsValidation) {
  Invocation inv;
  ASSERT_TRUE(Parse({"--help"}, &inv).ok());
  EXPECT_TRUE(inv.help);
  ASSERT_TRUE(Parse({"jobs", "submit", "--help"}, &inv).ok());
  EXPECT_TRUE(inv.help);
  ASSERT_NE(inv.command, nullptr);
  ASSERT_TRUE(Parse({"jobs", "-h"}, &inv).ok());
  EXPECT_EQ(inv.group, "jobs");
}

TEST(ArgsTest, ParseJobStateIsCaseInsensitive) {
  EXPECT_EQ(*ParseJobState("queued"), v1::QUEUED);
  EXPECT_EQ(*ParseJobState("Running"), v1::RUNNING);
  EXPECT_EQ(*ParseJobState("SUCCEEDED"), v1::SUCCEEDED);
  EXPECT_EQ(*ParseJobState("failed"), v1::FAILED);
  EXPECT_EQ(*ParseJobState("cancelled"), v1::CANCELLED);
  EXPECT_FALSE(ParseJobState("job_state_unspecified").ok());
  EXPECT_FALSE(ParseJobState("").ok());
}

TEST(ArgsTest, EveryCommandHasUsage) {
  for (const CommandSpec& command : Commands()) {
    EXPECT_THAT(UsageText(), HasSubstr(command.group + " " + command.verb));
    EXPECT_FALSE(command.summary.empty());
  }
}

}  // namespace
}  // namespace compressd::client

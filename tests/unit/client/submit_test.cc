// `jobs submit` request building: the recipe is parsed locally (syntax and
// field names) and sent as written; the server applies defaults and validates
// (fake_server_test.cc: its errors reach the user naming the file and field).
#include <cstdio>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli/app.h"
#include "client/cli/args.h"
#include "client/commands/jobs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class SubmitTest : public ::testing::Test {
 protected:
  std::string WriteRecipe(const std::string& text) {
    // ctest runs each test in its own process, in parallel: the name must be
    // unique per process and per call.
    const std::string path = ::testing::TempDir() + "/submit_test_recipe_" +
                             std::to_string(getpid()) + "_" + std::to_string(paths_.size()) +
                             ".yaml";
    std::ofstream(path) << text;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const std::string& path : paths_) std::remove(path.c_str());
  }

  absl::StatusOr<v1::SubmitJobRequest> Build(std::vector<std::string> extra) {
    std::vector<std::string> args = {"jobs", "submit", "--model", "m-1"};
    args.insert(args.end(), extra.begin(), extra.end());
    absl::Status parsed = ParseCommandLine(args, kDefaultServer, &invocation_);
    if (!parsed.ok()) return parsed;
    return BuildSubmitRequest(invocation_);
  }

  Invocation invocation_;
  std::vector<std::string> paths_;
};

TEST_F(SubmitTest, BuildsRequestAsWritten) {
  const std::string recipe = WriteRecipe("stages: [{magnitude: {pattern: \"2:4\"}}]\n");
  absl::StatusOr<v1::SubmitJobRequest> request =
      Build({"--recipe", recipe, "--dataset", "d-1", "--max-attempts", "2"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_id(), "m-1");
  EXPECT_THAT(request->dataset_ids(), ElementsAre("d-1"));
  EXPECT_EQ(request->max_attempts(), 2);
  EXPECT_EQ(request->recipe().stages(0).magnitude().pattern(), "2:4");
  // Defaults are the server's to apply.
  EXPECT_EQ(request->recipe().targets().include(), "");
  EXPECT_EQ(request->recipe().output().format(), "");
  EXPECT_THAT(request->request_id(), StartsWith("req-"));
}

TEST_F(SubmitTest, RequestIdIsRandomUnlessGiven) {
  const std::string recipe = WriteRecipe("stages: [{magnitude: {sparsity: 0.5}}]\n");
  absl::StatusOr<v1::SubmitJobRequest> a = Build({"--recipe", recipe});
  absl::StatusOr<v1::SubmitJobRequest> b = Build({"--recipe", recipe});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->request_id(), b->request_id());
  absl::StatusOr<v1::SubmitJobRequest> c = Build({"--recipe", recipe, "--request-id", "mine"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->request_id(), "mine");
  EXPECT_EQ(c->max_attempts(), 0);  // server default
}

TEST_F(SubmitTest, RecipeParseErrorsNameTheField) {
  // Out-of-range values are the server's to reject: the request is built.
  const std::string bad_range = WriteRecipe("stages: [{magnitude: {sparsity: 1.5}}]\n");
  absl::StatusOr<v1::SubmitJobRequest> r = Build({"--recipe", bad_range});
  ASSERT_TRUE(r.ok()) << r.status();

  const std::string unknown = WriteRecipe("stages: [{magnitude: {sparsity: 0.5}}]\nfoo: 1\n");
  r = Build({"--recipe", unknown});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("unknown field \"foo\""));

  r = Build({"--recipe", "/nonexistent/recipe.yaml"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SubmitTest, CliPrintsRecipeSyntaxErrorWithoutContactingServer) {
  const std::string recipe = WriteRecipe("stages: [{magnitude: {pattern: \"4:2\"}}]\nbogus: 1\n");
  std::ostringstream out;
  std::ostringstream err;
  // An unroutable server: the command must fail on the recipe before connecting.
  const int code = RunCompressctl(
      {"--server", "127.0.0.1:1", "jobs", "submit", "--model", "m", "--recipe", recipe},
      Io{out, err, false}, nullptr);
  EXPECT_EQ(code, kExitFailure);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(), StartsWith("error: INVALID_ARGUMENT: "));
  EXPECT_THAT(err.str(), HasSubstr("unknown field \"bogus\""));
}

TEST_F(SubmitTest, CliUsageErrorExitsTwo) {
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(RunCompressctl({"jobs", "submit", "--model", "m"}, Io{out, err, false}, nullptr),
            kExitUsage);
  EXPECT_THAT(err.str(), StartsWith("error: INVALID_ARGUMENT: jobs submit: missing --recipe"));
  EXPECT_THAT(err.str(), HasSubstr("usage: compressctl"));
  std::ostringstream help;
  EXPECT_EQ(RunCompressctl({"--help"}, Io{help, err, false}, nullptr), kExitOk);
  EXPECT_THAT(help.str(), HasSubstr("artifacts download JOB_ID --out DIR"));
}

TEST(DispatchTest, EveryCommandHasAHandler) {
  for (const CommandSpec& command : Commands()) {
    EXPECT_TRUE(HasHandler(command.group, command.verb)) << command.group << " " << command.verb;
  }
  EXPECT_FALSE(HasHandler("models", "explode"));
}

}  // namespace
}  // namespace compressd::client

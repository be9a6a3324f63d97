// BlockRunner: the linear-layer inputs it shows equal a reference block built
// from the _ref ops, replaced weights take effect, micro-batching is invisible.
#include "workers/engine/nn/block_runner.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/ops_ref.h"

namespace compressd::engine {
namespace {

using testing::RandomModel;
using testing::RandomTokens;
using testing::SmallConfig;

std::vector<std::vector<int32_t>> Seqs() {
  return {RandomTokens(37, 96, 1), RandomTokens(64, 96, 2), RandomTokens(9, 96, 3)};
}

struct RefTaps {
  std::vector<float> attn_in, o_in, mlp_in, down_in, out;
};

// One block with the reference ops only.
RefTaps RefBlock(const LlamaConfig& c, const BlockWeights& w, const SequenceBatch& b,
                 const std::vector<float>& x) {
  const int64_t t = b.tokens(), qd = int64_t{c.n_heads} * c.head_dim;
  const int64_t kvd = int64_t{c.n_kv_heads} * c.head_dim;
  RefTaps r;
  r.attn_in.resize(t * c.hidden);
  RmsNormRef(x.data(), w.attn_norm.data, t, c.hidden, c.rms_norm_eps, r.attn_in.data());
  std::vector<float> q(t * qd), k(t * kvd), v(t * kvd), o(t * c.hidden);
  LinearRef(r.attn_in.data(), t, c.hidden, w.q_proj.data, nullptr, qd, q.data());
  LinearRef(r.attn_in.data(), t, c.hidden, w.k_proj.data, nullptr, kvd, k.data());
  LinearRef(r.attn_in.data(), t, c.hidden, w.v_proj.data, nullptr, kvd, v.data());
  const RopeTable table = *BuildRopeTable(c, b.max_len);
  RopeRef(q.data(), t, c.n_heads, c.head_dim, b.positions.data(), table);
  RopeRef(k.data(), t, c.n_kv_heads, c.head_dim, b.positions.data(), table);
  r.o_in.resize(t * qd);
  AttentionRef(q.data(), k.data(), v.data(), b.seq_start.data(), b.n_seqs(),
               {c.n_heads, c.n_kv_heads, c.head_dim}, r.o_in.data());
  LinearRef(r.o_in.data(), t, qd, w.o_proj.data, nullptr, c.hidden, o.data());
  std::vector<float> x2 = x;
  AddRef(x2.data(), o.data(), t * c.hidden);
  r.mlp_in.resize(t * c.hidden);
  RmsNormRef(x2.data(), w.mlp_norm.data, t, c.hidden, c.rms_norm_eps, r.mlp_in.data());
  std::vector<float> g(t * c.intermediate), u(t * c.intermediate);
  LinearRef(r.mlp_in.data(), t, c.hidden, w.gate_proj.data, nullptr, c.intermediate, g.data());
  LinearRef(r.mlp_in.data(), t, c.hidden, w.up_proj.data, nullptr, c.intermediate, u.data());
  r.down_in.resize(t * c.intermediate);
  SiluMulRef(g.data(), u.data(), t * c.intermediate, r.down_in.data());
  LinearRef(r.down_in.data(), t, c.intermediate, w.down_proj.data, nullptr, c.hidden, o.data());
  AddRef(x2.data(), o.data(), t * c.hidden);
  r.out = std::move(x2);
  return r;
}

void ExpectNear(const float* got, const std::vector<float>& want, float tol, const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
  }
}

TEST(BlockRunner, ShowsEachBlocksLinearInputsAndMatchesReferenceBlocks) {
  LlamaModel model = RandomModel(SmallConfig(), 7);
  CpuBackend backend(CpuBackendOptions{2, 16});
  BlockRunnerOptions options;
  options.micro_batch_tokens = 50;
  auto runner = BlockRunner::Create(&model, &backend, Seqs(), options);
  ASSERT_TRUE(runner.ok()) << runner.status();
  const SequenceBatch batch = *SequenceBatch::Pack(Seqs());
  const int64_t n = batch.tokens() * model.config.hidden;
  int calls = 0;
  while (!(*runner)->done()) {
    const int i = (*runner)->next_block();
    std::vector<float> x((*runner)->hidden(), (*runner)->hidden() + n);
    const RefTaps ref = RefBlock(model.config, model.blocks[i], batch, x);
    auto st = (*runner)->RunNextBlock([&](int block, const LinearInputs& in, BlockWeights*) {
      EXPECT_EQ(block, i);
      EXPECT_EQ(in.tokens, batch.tokens());
      ExpectNear(in.attn_in, ref.attn_in, 1e-5f, "attn_in");
      ExpectNear(in.o_in, ref.o_in, 1e-5f, "o_in");
      ExpectNear(in.mlp_in, ref.mlp_in, 1e-5f, "mlp_in");
      ExpectNear(in.down_in, ref.down_in, 1e-5f, "down_in");
      ++calls;
      return absl::OkStatus();
    });
    ASSERT_TRUE(st.ok()) << st;
    ExpectNear((*runner)->hidden(), ref.out, 1e-5f, "block output");
  }
  EXPECT_EQ(calls, model.config.n_layers);
  EXPECT_EQ((*runner)->RunNextBlock(nullptr).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(BlockRunner, ReplacedWeightsAreUsedForTheBlockOutput) {
  LlamaModel model = RandomModel(SmallConfig(), 8);
  CpuBackend backend(CpuBackendOptions{2, 16});
  auto runner = BlockRunner::Create(&model, &backend, Seqs());
  ASSERT_TRUE(runner.ok());
  ASSERT_TRUE((*runner)->RunNextBlock(nullptr).ok());
  const int64_t n = (*runner)->tokens() * model.config.hidden;
  const std::vector<float> before((*runner)->hidden(), (*runner)->hidden() + n);
  // Zero o_proj and down_proj: the block becomes the identity on the residual.
  auto st = (*runner)->RunNextBlock([](int, const LinearInputs&, BlockWeights* w) {
    w->o_proj = Tensor::Owned(w->o_proj.shape, std::vector<float>(w->o_proj.numel(), 0.0f));
    w->down_proj =
        Tensor::Owned(w->down_proj.shape, std::vector<float>(w->down_proj.numel(), 0.0f));
    return absl::OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(std::vector<float>((*runner)->hidden(), (*runner)->hidden() + n), before);
  EXPECT_EQ(model.blocks[1].o_proj.data[0], 0.0f);  // the model itself was updated
}

TEST(BlockRunner, RejectsHookErrorsAndShapeChanges) {
  LlamaModel model = RandomModel(SmallConfig(), 9);
  CpuBackend backend(CpuBackendOptions{1, 16});
  auto runner = BlockRunner::Create(&model, &backend, Seqs());
  ASSERT_TRUE(runner.ok());
  EXPECT_EQ((*runner)
                ->RunNextBlock([](int, const LinearInputs&, BlockWeights*) {
                  return absl::InternalError("boom");
                })
                .code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ((*runner)->next_block(), 0);
  auto st = (*runner)->RunNextBlock([](int, const LinearInputs&, BlockWeights* w) {
    w->up_proj = Tensor::Owned({3, 3}, std::vector<float>(9, 0.0f));
    return absl::OkStatus();
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("blocks.0.up_proj"), std::string::npos) << st;
  EXPECT_EQ(BlockRunner::Create(&model, &backend, {{1, 200}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}


// Everything the hook sees and the stream after every block, for one run.
std::vector<std::vector<float>> RecordRun(const std::string& spill_dir) {
  LlamaModel model = RandomModel(SmallConfig(), 11);
  CpuBackend backend(CpuBackendOptions{2, 16});
  BlockRunnerOptions options;
  options.micro_batch_tokens = 40;  // three micro-batches
  options.spill_dir = spill_dir;
  auto runner = BlockRunner::Create(&model, &backend, Seqs(), options);
  EXPECT_TRUE(runner.ok()) << runner.status();
  std::vector<std::vector<float>> seen;
  const int64_t t = (*runner)->tokens();
  while (!(*runner)->done()) {
    auto st = (*runner)->RunNextBlock([&](int, const LinearInputs& in, BlockWeights* w) {
      const int64_t width[4] = {w->q_proj.cols(), w->o_proj.cols(), w->gate_proj.cols(),
                                w->down_proj.cols()};
      for (int k = 0; k < 4; ++k) {
        seen.emplace_back(in.input(k), in.input(k) + t * width[k]);
        in.release(k, 0, t);
      }
      w->down_proj = Tensor::Owned(w->down_proj.shape,
                                   std::vector<float>(w->down_proj.numel(), 0.001f));
      RETURN_IF_ERROR(in.refresh());  // reads the released rows back
      seen.emplace_back(in.input(3), in.input(3) + t * width[3]);
      return absl::OkStatus();
    });
    EXPECT_TRUE(st.ok()) << st;
    seen.emplace_back((*runner)->hidden(), (*runner)->hidden() + t * model.config.hidden);
  }
  return seen;
}

TEST(BlockRunner, SpilledActivationsGiveIdenticalResultsAndLeaveNoFiles) {
  const std::string dir = ::testing::TempDir() + "/spill";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto in_memory = RecordRun("");
  const auto spilled = RecordRun(dir);
  ASSERT_EQ(in_memory.size(), spilled.size());
  for (size_t i = 0; i < in_memory.size(); ++i) EXPECT_EQ(in_memory[i], spilled[i]) << i;
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // unlinked at creation
  // A directory not made yet (the job's output) is made.
  EXPECT_TRUE(ActivationBuffer::InFile(dir + "/new/out", 16, "x").ok());
  std::ofstream(dir + "/a-file") << "x";  // a directory cannot be made below a file
  auto bad = ActivationBuffer::InFile(dir + "/a-file/sub", 16, "calibration residual stream");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(bad.status().message().find(dir + "/a-file/sub"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("calibration residual stream"), std::string::npos);
}

int64_t ResidentKiB() {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t value = 0;
  while (status >> key) {
    if (key == "VmRSS:") return status >> value ? value : -1;
    status.ignore(1 << 10, '\n');
  }
  return -1;
}

TEST(ActivationBuffer, ReleasedPagesLeaveMemoryAndKeepTheirData) {
  constexpr size_t kFloats = size_t{64} << 18;  // 64 MiB
  auto buffer = ActivationBuffer::InFile(::testing::TempDir(), kFloats, "test buffer");
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  ASSERT_TRUE(buffer->in_file());
  const int64_t before = ResidentKiB();
  for (size_t i = 0; i < kFloats; ++i) buffer->data()[i] = static_cast<float>(i % 1000);
  const int64_t written = ResidentKiB();
  EXPECT_GT(written - before, 60 << 10);  // the pages written are resident...
  buffer->Release(0, kFloats);
  EXPECT_LT(ResidentKiB() - before, 4 << 10);  // ...until released
  for (size_t i = 0; i < kFloats; i += 4099) ASSERT_EQ(buffer->data()[i], float(i % 1000)) << i;
  ActivationBuffer memory = ActivationBuffer::InMemory(8);
  EXPECT_FALSE(memory.in_file());
  EXPECT_EQ(memory.data()[7], 0.0f);
}

}  // namespace
}  // namespace compressd::engine

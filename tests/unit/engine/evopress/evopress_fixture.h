// Shared helpers of the EvoPress tests: a tiny random model, calibration
// windows, a unique temporary directory, an event sink.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/evopress/search_space.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine::evopress {

// MakeSearchSpace with the stage's mode name read here (in the service the
// recipe's validation types it: common/recipe_spec.h).
inline absl::StatusOr<SearchSpace> MakeSearchSpace(const engine::LlamaModel& model,
                                                   const std::vector<std::string>& modules,
                                                   const v1::EvoPressStage& stage) {
  const Mode mode = stage.mode() == "drop"   ? Mode::kDrop
                    : stage.mode() == "bits" ? Mode::kBits
                                             : Mode::kSparsity;
  return MakeSearchSpace(model, modules, stage, mode);
}

}  // namespace compressd::engine::evopress

namespace compressd::engine::evopress::testing {

// SmallConfig with 4 layers: every projection group has 4 units.
inline engine::LlamaConfig TestConfig() {
  engine::LlamaConfig c = engine::testing::SmallConfig();
  c.n_layers = 4;
  return c;
}

inline engine::LlamaModel TestModel(uint32_t seed = 7) {
  return engine::testing::RandomModel(TestConfig(), seed);
}

inline std::vector<std::vector<int32_t>> Windows(int n, int len, uint32_t seed = 100) {
  std::vector<std::vector<int32_t>> w;
  for (int i = 0; i < n; ++i) {
    w.push_back(engine::testing::RandomTokens(len, TestConfig().vocab, seed + i));
  }
  return w;
}

inline std::vector<std::string> AllModules(int n_layers) {
  std::vector<std::string> m;
  for (int b = 0; b < n_layers; ++b) {
    for (const char* p : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      m.push_back("model.layers." + std::to_string(b) + "." + p);
    }
  }
  return m;
}

// A fresh directory, removed at destruction.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (std::filesystem::temp_directory_path() /
             ("evopress_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
              std::to_string(::getpid())))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A CheckpointStore in memory (no fsync: keeps the tests fast).
class MemoryStore : public CheckpointStore {
 public:
  absl::Status Put(const std::string& name, const std::string& bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    blobs_[name] = bytes;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Get(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blobs_.find(name);
    if (it == blobs_.end()) return absl::NotFoundError(name);
    return it->second;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> blobs_;
};

class RecordingSink : public EventSink {
 public:
  void Emit(const v1::JobEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    events.push_back(e);
  }
  std::vector<v1::JobEvent> events;

 private:
  std::mutex mu_;
};

}  // namespace compressd::engine::evopress::testing

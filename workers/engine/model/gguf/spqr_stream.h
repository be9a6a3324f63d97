// An "spqr" output (model/spqr_format.h's layout, written by
// export/spqr_writer.h) read block by block as float32: SpQR modules are
// decoded from their parts (DecodeSpqr), everything else is read dense. The
// reader the post-export reload check (pipeline/reload_gate.h) re-opens an
// spqr output with, and what a job given such a directory as its model
// loads. Open checks config.json's quantization_config, every block file,
// and every block tensor's presence (dense, or as an SpQR module whose
// metadata gives its shape and whose parts are all present with their
// dtypes and shapes), naming the file and tensor. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/model_stream.h"
#include "workers/engine/model/safetensors.h"

namespace compressd::engine {

class HfModel;

// Whether config.json's text declares an spqr output.
bool IsSpqrConfig(const std::string& config_json);

class SpqrStream : public ModelStream {
 public:
  static absl::StatusOr<std::unique_ptr<SpqrStream>> Open(const std::string& dir);

  const LlamaConfig& config() const override { return config_; }
  absl::StatusOr<BlockWeights> LoadBlock(int i) const override;
  void ReleaseBlock(int i) const override;
  absl::StatusOr<Tensor> LoadTensor(const std::string& name) const override;
  absl::Status ReadRows(const std::string& name, int64_t row, int64_t n, float* out) const override;
  void Release(const std::string& name) const override;
  const std::string& path() const override;
  uint64_t weight_bytes() const override;

 private:
  SpqrStream(std::shared_ptr<const HfModel> hf, LlamaConfig config)
      : hf_(std::move(hf)), config_(std::move(config)) {}
  // Block i's tensor `name` ([rows, cols] or [rows]) as float32.
  absl::StatusOr<std::vector<float>> Read(int i, const std::string& name,
                                          const std::vector<int64_t>& shape) const;
  absl::Status CheckBlock(int i) const;

  std::shared_ptr<const HfModel> hf_;
  LlamaConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> blocks_;
  uint64_t block_bytes_ = 0;
};

}  // namespace compressd::engine

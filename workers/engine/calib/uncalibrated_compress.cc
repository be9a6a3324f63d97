// CompressUncalibrated (calibrated_compress.h): magnitude / rtn without
// calibration inputs, on the whole model or block by block.
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/calib/compress_tensor.h"
#include "workers/engine/calib/smoothquant.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

absl::Status CompressUncalibrated(engine::LlamaModel& model, const v1::Recipe& recipe,
                                  const std::vector<ModelTarget>& targets, EventSink& events,
                                  const CancelToken& cancel, CompressionResult* result) {
  const bool tied = engine::LmHeadIsTied(model);
  std::map<std::string, Tensor*> by_name;
  for (const engine::NamedTensor& t : engine::NamedTensors(&model)) by_name[t.name] = t.tensor;
  const int total = static_cast<int>(targets.size());
  for (int i = 0; i < total; ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    auto it = by_name.find(targets[i].tensor);
    if (it == by_name.end()) {
      return absl::InternalError(absl::StrCat(targets[i].tensor, ": not a tensor of the model"));
    }
    RETURN_IF_ERROR(CompressTensor(recipe, targets[i].module, it->second, nullptr, 1, nullptr,
                                   events, result, nullptr));
    if (tied && it->second == &model.embed_tokens) model.lm_head = model.embed_tokens;
    EmitProgress(events, "prune", i + 1, total, targets[i].module);
  }
  const std::set<std::string> modules = TargetModules(targets);
  for (int b = 0; b < static_cast<int>(model.blocks.size()); ++b) {
    RETURN_IF_ERROR(MarkW8A8(recipe, modules, model.config, b, &model.blocks[b]));
  }
  return absl::OkStatus();
}

absl::Status CompressUncalibrated(const engine::LlamaConfig& config, const v1::Recipe& recipe,
                                  const std::vector<ModelTarget>& targets, EventSink& events,
                                  const CancelToken& cancel, CompressionResult* result,
                                  BlockStream& stream) {
  std::map<int, std::vector<const ModelTarget*>> by_block;
  for (const ModelTarget& t : targets) {
    int block = -1;
    if (std::sscanf(t.tensor.c_str(), "model.layers.%d.", &block) != 1 || block < 0 ||
        block >= config.n_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat(t.tensor, ": not in a decoder block (compressed on the whole-model path)"));
    }
    by_block[block].push_back(&t);
  }
  const int total = static_cast<int>(targets.size());
  int done = 0;
  for (int b = 0; b < config.n_layers; ++b) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    BlockWeights w;
    RETURN_IF_ERROR(stream.Load(b, &w));
    std::map<std::string, Tensor*> by_name;
    for (const engine::NamedTensor& t : engine::BlockTensors(config, b, &w))
      by_name[t.name] = t.tensor;
    for (const ModelTarget* t : by_block[b]) {
      auto it = by_name.find(t->tensor);
      if (it == by_name.end()) {
        return absl::InternalError(absl::StrCat(t->tensor, ": not a tensor of block ", b));
      }
      RETURN_IF_ERROR(CompressTensor(recipe, t->module, it->second, nullptr, 1, nullptr, events,
                                     result, nullptr));
      EmitProgress(events, "prune", ++done, total, t->module);
    }
    RETURN_IF_ERROR(MarkW8A8(recipe, TargetModules(targets), config, b, &w));
    RETURN_IF_ERROR(stream.Done(b, &w));
  }
  return absl::OkStatus();
}

}  // namespace compressd::engine

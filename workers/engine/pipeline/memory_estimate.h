// A job's peak resident memory and scratch disk, estimated before it starts
// from the model's config and stored size, the plan and the recipe, so that
// a worker refuses a job it cannot hold (RESOURCE_EXHAUSTED, up front)
// instead of being killed by the OOM killer halfway. Terms (bytes; P the
// model's parameters, T = calibration samples x seq_len tokens, d the input
// dimension of a layer group, r its largest output dimension):
//
//   process         the binary, its libraries and thread pools (measured)
//   model           whole-model path: P x 4 (float32), plus the stored
//                   weights' pages while they are converted
//   block           block stream: one block in float32 and its stored pages
//   evaluation      block stream with evaluation: the windows' residual
//                   streams (dense and compressed), one batch's normed copy,
//                   one LM-head chunk of rows and two of logits
//   activations     calibrated: the residual stream T x hidden and the four
//                   linear-input buffers T x (2 hidden + q dim + FFN) of a
//                   block, float32 (nn/block_runner.h); spilled (when they
//                   do not fit the budget): one micro-batch of them, the
//                   rest in scratch files (scratch_bytes)
//   solve           calibrated, the largest group: H (d^2 float32) with the
//                   solver's float64 workspace, which becomes its float32
//                   factor in place (12 d^2 in all; the accumulation before
//                   it peaks the same: float64 sum + float32 H), and copies
//                   of the layer's weights (4 x r x d x 4)
//   codes           whole-model path with a quantizing stage: one byte per
//                   targeted weight, kept for the GGUF / GPTQ exporters
//   forward         the forward passes' workspace (nn/forward.h
//   workspace       BlockWorkspace) for calibration's 4096-token micro-batch
//                   and evaluation's batch
//   bf16 packed     compute: bf16: P x 4 (a rounded and a packed bfloat16
//   weights         copy), at most the backend's cache bound (1 GiB), for
//                   each backend (two in a calibrated job)
//
// Scratch disk: the output (float32 for HF, or the quantized file) plus, for
// leased tasks, the model as fetched. Checked against measured peaks in
// docs/benchmarks.md ("Big models"). Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/recipe_spec.h"
#include "common/util.h"  // FormatBytes
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/pipeline/job_plan.h"

namespace compressd::engine {

struct MemoryEstimate {
  uint64_t peak_bytes = 0;
  uint64_t output_bytes = 0;   // written to the output directory
  uint64_t scratch_bytes = 0;  // spilled activations (scratch files beside the output)
  std::string breakdown;      // "process 110 MiB + block 243 MiB + ..."
};

MemoryEstimate EstimateJobMemory(const JobPlan& plan, const RecipeSpec& recipe,
                                 const LlamaConfig& config, uint64_t stored_weight_bytes,
                                 bool spill_activations = false);

// The device memory of a calibrated job's largest layer solve on `solver`
// (SolverBackend::DeviceBytes over the decoder blocks' linears, lazy blocks
// of 128 columns); 0 on the host.
uint64_t EstimateDeviceBytes(const LlamaConfig& config, const SolverBackend& solver);

}  // namespace compressd::engine

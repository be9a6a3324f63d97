// The calibration set of a recipe (recipe.proto Calibration; the shared
// protocol's calib-sotu by default): `samples` windows of `seq_len` tokens
// cut at random offsets from one long token stream.
//
// The stream: the source's text files (a file, or every regular file under a
// folder, recursively, in byte-wise path order) concatenated as bytes and
// tokenized whole with the model's tokenizer, no BOS/EOS. Offsets: a
// std::mt19937_64 seeded with `seed`; window s starts at rng() % (n - seq_len
// + 1), drawn in order s = 0, 1, ... (the engine is fully specified by the
// C++ standard, so the windows are the same on every platform). Windows may
// overlap. Cost: tokenizing the text (the sotu folder, 10.7 MB: a few seconds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/runtime/run_context.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {

struct CalibrationSet {
  std::string name;    // e.g. "calib-sotu"
  std::string source;  // the path, or "<dataset_id>/<file>"
  int64_t files = 0;
  int64_t text_tokens = 0;
  std::vector<int64_t> offsets;                // start of each window in the stream
  std::vector<std::vector<int32_t>> sequences;  // samples x seq_len
  std::vector<int32_t> stream;  // the whole tokenized text (EvoPress draws fitness windows from it)
};

// The offsets above for a stream of n tokens (n >= seq_len).
std::vector<int64_t> CalibrationOffsets(int64_t n, int32_t seq_len, int32_t samples, uint64_t seed);

// Reads, tokenizes and samples. INVALID_ARGUMENT naming calibration.path for a
// local path when !options.allow_local_paths, or naming the source when its
// text is shorter than seq_len tokens; NOT_FOUND for a missing file or an
// empty folder.
absl::StatusOr<CalibrationSet> LoadCalibrationSet(const v1::Calibration& calibration,
                                                  const engine::Tokenizer& tokenizer,
                                                  const RunOptions& options);

}  // namespace compressd::engine

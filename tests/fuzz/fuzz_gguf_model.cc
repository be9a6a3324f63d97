// libFuzzer target: GGUF -> LlamaModel (config from metadata, llama3
// rope_freqs, name mapping, shape checks against the config, dequantization
// and Q/K un-permutation) on arbitrary bytes; seeds in corpus/gguf are small
// valid llama GGUFs. A failure must be INVALID_ARGUMENT; a loaded model's
// tensors must have the shapes its config implies.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "workers/engine/model/gguf/gguf_model.h"

using namespace compressd::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f =
      GgufFile::FromBytes("fuzz.gguf", std::string(reinterpret_cast<const char*>(data), size));
  if (!f.ok()) return 0;
  absl::StatusOr<LlamaModel> m = LoadGgufModel(std::shared_ptr<const GgufFile>(std::move(*f)));
  if (!m.ok()) {
    if (!absl::IsInvalidArgument(m.status())) std::abort();
    return 0;
  }
  const LlamaConfig& c = m->config;
  if (m->embed_tokens.rows() != c.vocab || m->embed_tokens.cols() != c.hidden) std::abort();
  if (static_cast<int>(m->blocks.size()) != c.n_layers) std::abort();
  for (const BlockWeights& b : m->blocks) {
    if (b.q_proj.rows() != int64_t{c.n_heads} * c.head_dim || b.down_proj.cols() != c.intermediate)
      std::abort();
  }
  // Touch every element of the last tensor (ASan checks the bounds).
  volatile float sink = 0;
  for (int64_t i = 0; i < m->lm_head.numel(); ++i) sink = sink + m->lm_head.data[i];
  return 0;
}

// libFuzzer target: the GGUF container parser (header, metadata of every
// type incl. nested arrays, tensor infos, alignment, byte ranges), then
// every metadata accessor and a dequantization of each tensor's first row,
// on arbitrary bytes. Anything but INVALID_ARGUMENT from the parser, or any
// out-of-bounds access (ASan), is a bug.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "workers/engine/model/gguf/dequant.h"
#include "workers/engine/model/gguf/gguf_file.h"

using compressd::engine::CanDequantize;
using compressd::engine::Dequantize;
using compressd::engine::GgufFile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f =
      GgufFile::FromBytes("fuzz.gguf", std::string(reinterpret_cast<const char*>(data), size));
  if (!f.ok()) {
    if (!absl::IsInvalidArgument(f.status())) std::abort();
    return 0;
  }
  const GgufFile& g = **f;
  for (const auto& kv : g.metadata()) {
    (void)g.GetString(kv.key);
    (void)g.GetU32(kv.key);
    (void)g.GetI32(kv.key);
    (void)g.GetU64(kv.key);
    (void)g.GetF32(kv.key);
    (void)g.GetBool(kv.key);
    (void)g.GetStringArray(kv.key);
    (void)g.GetIntArray(kv.key);
    (void)g.GetF32Array(kv.key);
  }
  for (const auto& t : g.tensors()) {
    if (g.data_start() + t.offset + t.nbytes > g.file_size()) std::abort();
    if (!CanDequantize(t.type) || t.numel == 0) continue;
    const int64_t n = t.row_length() > 4096 ? 0 : t.row_length();
    std::vector<float> row(static_cast<size_t>(n));
    if (n > 0 && !Dequantize(t.type, g.TensorData(t), n, row.data()).ok()) std::abort();
  }
  return 0;
}

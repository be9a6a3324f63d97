// make-tiny-llama OUT_DIR [--sharded] [--dtype f32|f16|bf16] [--seed N]
// Writes a tiny genuine Llama model (see tests/unit/engine/model/tiny_llama.h).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "tests/unit/engine/model/tiny_llama.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: make-tiny-llama OUT_DIR [--sharded] [--dtype f32|f16|bf16] [--seed N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  compressd::testing::TinyLlamaOptions options;
  std::string out_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--sharded") {
      options.sharded = true;
    } else if (arg == "--dtype" && i + 1 < argc) {
      const std::string d = argv[++i];
      if (d == "f32") {
        options.dtype = compressd::engine::DType::kF32;
      } else if (d == "f16") {
        options.dtype = compressd::engine::DType::kF16;
      } else if (d == "bf16") {
        options.dtype = compressd::engine::DType::kBF16;
      } else {
        return Usage();
      }
    } else if (arg == "--seed" && i + 1 < argc) {
      if (!absl::SimpleAtoi(argv[++i], &options.seed)) return Usage();
    } else if (!arg.empty() && arg[0] != '-' && out_dir.empty()) {
      out_dir = arg;
    } else {
      return Usage();
    }
  }
  if (out_dir.empty()) return Usage();
  const absl::Status status = compressd::testing::WriteTinyLlama(out_dir, options);
  if (!status.ok()) {
    std::fprintf(stderr, "make-tiny-llama: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", out_dir.c_str());
  return 0;
}

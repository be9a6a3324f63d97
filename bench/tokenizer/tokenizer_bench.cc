// Tokenizer throughput on the shared texts (SmolLM2 vocabulary, built from
// the GGUF arrays, "smollm" pre-tokenizer unless --variant= names another
// golden variant). Prints bytes/s and tokens/s (best of 3) and the sha256 of
// the ids (int32 LE), checked against the golden hashes where the fixture has
// them. Usage: tokenizer_bench [--variant=NAME] [text/austen/persuasion.txt ...]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "tests/unit/engine/tokenizer/golden_fixture.h"

namespace compressd::engine {
namespace {

int Run(std::vector<std::string> args) {
  std::string variant = "smollm";
  std::vector<std::string> files;
  for (const std::string& arg : args) {
    if (arg.rfind("--variant=", 0) == 0) {
      variant = arg.substr(10);
    } else {
      files.push_back(arg);
    }
  }
  if (files.empty()) files = {"text/austen/persuasion.txt", "text/kjv.txt"};
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer* tok = testing::GgufTokenizer(variant);
  if (tok == nullptr) return 1;
  std::printf("build tokenizer: %.3f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  int failures = 0;
  for (const std::string& rel : files) {
    absl::StatusOr<std::string> text = testing::ReadSharedText(rel);
    if (!text.ok()) {
      std::fprintf(stderr, "%s\n", std::string(text.status().message()).c_str());
      return 1;
    }
    double best = 1e9;
    std::vector<int32_t> ids;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      ids = tok->Encode(*text, false);
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const std::string hash =
        Sha256Hex(std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * 4));
    std::string check = "no golden hash";
    for (const auto& full : testing::Golden()["full_texts"]) {
      if (full["file"] != rel || full["variant"] != variant) continue;
      const bool ok = hash == full["ids_sha256"] && ids.size() == full["count"];
      check = ok ? "ids match HF" : "IDS DIFFER FROM HF";
      failures += ok ? 0 : 1;
    }
    std::printf(
        "%-30s %8zu bytes %8zu tokens  %.3f s  %.2f MB/s  %.2f M tokens/s  ids %.16s (%s)\n",
        rel.c_str(), text->size(), ids.size(), best, text->size() / best / 1e6,
        ids.size() / best / 1e6, hash.c_str(), check.c_str());
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace compressd::engine

int main(int argc, char** argv) {
  return compressd::engine::Run(std::vector<std::string>(argv + 1, argv + argc));
}

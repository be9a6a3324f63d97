#include "tests/unit/engine/model/fixture_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace compressd::engine::testing {

std::string FixturePath(const std::string& name) {
  const char* src = std::getenv("COMPRESSD_SOURCE_DIR");
  EXPECT_NE(src, nullptr) << "COMPRESSD_SOURCE_DIR is unset: run the test through ctest";
  return std::string(src == nullptr ? "." : src) + "/tests/golden/fixtures/" + name;
}

std::string ReadFileOrFail(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string RealModelPath() {
  const char* p = std::getenv("COMPRESSD_REAL_MODEL");
  struct stat st;
  return p == nullptr || ::stat(p, &st) != 0 ? "" : p;
}

std::string RealModelPathOrFail() {
  const std::string path = RealModelPath();
  if (path.empty()) {
    const char* p = std::getenv("COMPRESSD_REAL_MODEL");
    ADD_FAILURE()
        << "the real model is missing (COMPRESSD_REAL_MODEL=\"" << (p == nullptr ? "" : p)
        << "\"): run scripts/fetch-model.sh and configure with -DCOMPRESSD_REAL_MODEL=<its path>";
    return "";
  }
  return path;
}

std::vector<DequantRecord> ReadDequantFixture() {
  const std::string bytes = ReadFileOrFail(FixturePath("gguf_dequant.bin"));
  std::vector<DequantRecord> out;
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    if (bytes.size() - pos < n) return false;
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
    return true;
  };
  char magic[4];
  uint32_t version = 0, count = 0;
  if (!take(magic, 4) || std::memcmp(magic, "CDQF", 4) != 0 || !take(&version, 4) || version != 1 ||
      !take(&count, 4)) {
    ADD_FAILURE() << "bad fixture header";
    return {};
  }
  for (uint32_t i = 0; i < count; ++i) {
    DequantRecord r;
    uint32_t len = 0, n = 0, n_raw = 0;
    if (!take(&len, 4) || bytes.size() - pos < len) break;
    r.name = bytes.substr(pos, len);
    pos += len;
    if (!take(&r.ggml_type, 4) || !take(&n, 4) || !take(&n_raw, 4) || bytes.size() - pos < n_raw)
      break;
    r.n = n;
    r.raw = bytes.substr(pos, n_raw);
    pos += n_raw;
    r.expected.resize(n);
    if (!take(r.expected.data(), 4ull * n)) break;
    out.push_back(std::move(r));
  }
  EXPECT_EQ(out.size(), count) << "truncated fixture";
  return out;
}

}  // namespace compressd::engine::testing

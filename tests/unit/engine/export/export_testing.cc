#include "tests/unit/engine/export/export_testing.h"

#include <unistd.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/fixture_util.h"
#include "workers/engine/model/gguf/dequant.h"

namespace compressd::testing_export {

std::vector<float> Dequant(engine::GgmlType type, const std::string& bytes, size_t n) {
  std::vector<float> out(n);
  const absl::Status s = engine::Dequantize(type, reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int64_t>(n), out.data());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

double RelRmse(const float* x, const float* y, size_t n) {
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(y[i]) - x[i];
    err += d * d;
    norm += static_cast<double>(x[i]) * x[i];
  }
  return norm == 0.0 ? std::sqrt(err) : std::sqrt(err / norm);
}

std::string FirstDifference(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return absl::StrCat("sizes ", a.size(), " vs ", b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      return absl::StrCat("byte ", i, ": ", static_cast<int>(static_cast<uint8_t>(a[i])), " vs ",
                          static_cast<int>(static_cast<uint8_t>(b[i])));
    }
  }
  return "";
}

std::string UniqueTempPath(const std::string& suffix) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = absl::StrCat("export_", info->test_suite_name(), "_", info->name());
  for (char& c : name) {
    if (c == '/') c = '_';  // parameterized test names
  }
  return absl::StrCat(::testing::TempDir(), "/", name, "_", ::getpid(), suffix);
}

namespace {

class Reader {
 public:
  explicit Reader(std::string bytes) : bytes_(std::move(bytes)) {}
  bool Take(void* dst, size_t n) {
    if (bytes_.size() - pos_ < n) return ok_ = false;
    std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  uint32_t U32() {
    uint32_t v = 0;
    Take(&v, 4);
    return v;
  }
  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    if (!Take(s.data(), n)) s.clear();
    return s;
  }
  bool ok() const { return ok_; }

 private:
  std::string bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

QuantizeFixture ReadQuantizeFixture() {
  Reader r(engine::testing::ReadFileOrFail(engine::testing::FixturePath("ggml_quantize.bin")));
  QuantizeFixture f;
  if (r.Bytes(4) != "CGQF" || r.U32() != 1) {
    ADD_FAILURE() << "bad ggml_quantize.bin header";
    return f;
  }
  const uint32_t n_inputs = r.U32();
  for (uint32_t i = 0; i < n_inputs && r.ok(); ++i) {
    QuantizeInput in;
    in.name = r.Bytes(r.U32());
    in.rows = r.U32();
    in.row_len = r.U32();
    in.values.resize(static_cast<size_t>(in.rows * in.row_len));
    r.Take(in.values.data(), in.values.size() * sizeof(float));
    f.inputs.push_back(std::move(in));
  }
  const uint32_t n_outputs = r.U32();
  for (uint32_t i = 0; i < n_outputs && r.ok(); ++i) {
    QuantizeOutput o;
    o.input = r.U32();
    o.type = static_cast<engine::GgmlType>(r.U32());
    o.source = r.U32();
    o.bytes = r.Bytes(r.U32());
    if (o.input >= f.inputs.size()) ADD_FAILURE() << "output " << i << ": bad input index";
    f.outputs.push_back(std::move(o));
  }
  if (!r.ok()) ADD_FAILURE() << "ggml_quantize.bin is truncated";
  return f;
}

}  // namespace compressd::testing_export

#include "tests/unit/engine/export/export_testing.h"

#include <unistd.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/fixture_util.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/model/gguf/dequant.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/llama_names.h"

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

Source FromSpec(const engine::testing::TinyLlamaSpec& spec) {
  absl::StatusOr<std::unique_ptr<engine::GgufFile>> f =
      engine::GgufFile::FromBytes("tiny.gguf", engine::testing::BuildTinyLlama(spec).bytes);
  EXPECT_TRUE(f.ok()) << f.status();
  Source s{std::shared_ptr<const engine::GgufFile>(std::move(*f)), engine::LlamaModel()};
  absl::StatusOr<engine::LlamaModel> m = engine::LoadGgufModel(s.file);
  EXPECT_TRUE(m.ok()) << m.status();
  s.model = std::move(*m);
  return s;
}

engine::testing::TinyLlamaSpec Llama3RopeSpec() {
  engine::testing::TinyLlamaSpec spec;
  spec.quantize = false;
  spec.rope_theta = 500000.0f;
  spec.n_heads = spec.n_kv_heads = 1;
  for (int i = 0; i < 64; i += 2) {  // as gguf_model_test
    const double wavelen = 2 * M_PI * std::pow(500000.0, i / 64.0);
    double f = wavelen > 8192 ? 8.0 : 1.0;
    if (wavelen >= 2048 && wavelen <= 8192) {
      const double smooth = (8192 / wavelen - 1) / 3;
      f = 1.0 / ((1 - smooth) / 8 + smooth);
    }
    spec.rope_freqs.push_back(static_cast<float>(f));
  }
  return spec;
}

std::map<std::string, engine::Tensor*> ByName(engine::LlamaModel* m) {
  std::map<std::string, engine::Tensor*> out;
  for (const engine::NamedTensor& t : engine::NamedTensors(m)) out[t.name] = t.tensor;
  return out;
}

engine::QuantizedTensor QuantizeInModel(engine::LlamaModel* m, const std::string& name, int bits,
                                        bool sym, int64_t group) {
  engine::Tensor* t = ByName(m).at(name);
  std::vector<float> w(t->data, t->data + t->numel());
  absl::StatusOr<engine::QuantizedTensor> q =
      engine::QuantizeRtn(w.data(), t->rows(), t->cols(), {bits, group, sym}, name);
  EXPECT_TRUE(q.ok()) << q.status();
  *t = engine::Tensor::Owned(t->shape, std::move(w));
  return *std::move(q);
}

}  // namespace compressd::testing_export

// The real model ($COMPRESSD_REAL_MODEL: SmolLM2-135M-Instruct Q4_1 GGUF)
// written back as GGUF with Q4_1 and Q8_0 targets and read again by our
// loader: weights close to the source's (with the source's own types,
// byte-identical tensors), tokenizer keys identical. Skipped when the model is unset.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "tests/unit/engine/model/fixture_util.h"
#include "workers/engine/export/ggml_quantize.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

using engine::GgmlType;
using engine::GgufFile;
using engine::LlamaModel;

class RealModelExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = engine::testing::RealModelPath();
    if (path.empty()) return;
    absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    file_ = new std::shared_ptr<const GgufFile>(std::move(*f));
    absl::StatusOr<LlamaModel> m = engine::LoadGgufModel(*file_);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = new LlamaModel(std::move(*m));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete file_;
    model_ = nullptr;
    file_ = nullptr;
  }
  void SetUp() override {
    if (engine::testing::RealModelPath().empty()) GTEST_SKIP() << "COMPRESSD_REAL_MODEL is unset";
    ASSERT_NE(model_, nullptr);
  }

  // Exports with linear targets of `type`, reloads, and checks every weight's
  // relative RMS error against the source model is below `max_rel`.
  // Returns the number of tensors whose bytes equal the source's.
  int ExportAndCompare(const std::string& type, double max_rel, GgufExportReport* report);
  static void ExpectSameTokenizer(const GgufFile& a, const GgufFile& b);

  static std::shared_ptr<const GgufFile>* file_;
  static LlamaModel* model_;
};
std::shared_ptr<const GgufFile>* RealModelExportTest::file_ = nullptr;
LlamaModel* RealModelExportTest::model_ = nullptr;

std::set<std::string> LinearWeights(LlamaModel* m) {
  std::set<std::string> out;
  for (const engine::NamedTensor& t : engine::NamedTensors(m)) {
    if (t.name.find(".mlp.") != std::string::npos ||
        t.name.find(".self_attn.") != std::string::npos)
      out.insert(t.name);
  }
  return out;
}

void RealModelExportTest::ExpectSameTokenizer(const GgufFile& a, const GgufFile& b) {
  int n = 0;
  for (const engine::GgufKv& kv : a.metadata()) {
    if (kv.key.rfind("tokenizer.", 0) != 0) continue;
    ++n;
    const engine::GgufKv* got = b.FindKv(kv.key);
    ASSERT_NE(got, nullptr) << kv.key;
    EXPECT_EQ(got->type, kv.type) << kv.key;
    EXPECT_EQ(got->elem_type, kv.elem_type) << kv.key;
    EXPECT_EQ(got->count, kv.count) << kv.key;
  }
  EXPECT_EQ(n, 12);
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"}) {
    EXPECT_TRUE(*a.GetStringArray(key) == *b.GetStringArray(key)) << key;
  }
  EXPECT_TRUE(*a.GetIntArray("tokenizer.ggml.token_type") ==
              *b.GetIntArray("tokenizer.ggml.token_type"));
  for (const char* key :
       {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template"}) {
    EXPECT_EQ(*a.GetString(key), *b.GetString(key)) << key;
  }
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"}) {
    EXPECT_EQ(*a.GetU32(key), *b.GetU32(key)) << key;
  }
  EXPECT_EQ(*a.GetBool("tokenizer.ggml.add_bos_token"), *b.GetBool("tokenizer.ggml.add_bos_token"));
}

int RealModelExportTest::ExportAndCompare(const std::string& type, double max_rel,
                                          GgufExportReport* report) {
  GgufExportOptions o;
  if (type != "auto") o.target_type = *ParseQuantizeType(type);
  o.targets = LinearWeights(model_);
  const std::string out = testing_export::UniqueTempPath(".gguf");
  absl::StatusOr<GgufExportReport> r = WriteGgufLlama(*model_, file_->get(), {}, o, out);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return -1;
  *report = *r;
  absl::StatusOr<std::unique_ptr<GgufFile>> written = GgufFile::Open(out);
  EXPECT_TRUE(written.ok()) << written.status();
  if (!written.ok()) return -1;
  ExpectSameTokenizer(**file_, **written);
  int same_bytes = 0;
  for (const engine::GgufTensorInfo& t : (*file_)->tensors()) {
    const engine::GgufTensorInfo* w = (*written)->FindTensor(t.name);
    EXPECT_NE(w, nullptr) << t.name;
    same_bytes += w != nullptr && w->type == t.type && w->ne == t.ne && w->nbytes == t.nbytes &&
                  std::memcmp((*written)->TensorData(*w), (*file_)->TensorData(t), t.nbytes) == 0;
  }
  EXPECT_EQ(*(*written)->GetString("general.name"), *(*file_)->GetString("general.name"));
  absl::StatusOr<LlamaModel> back = engine::LoadGgufModel(out);
  EXPECT_TRUE(back.ok()) << back.status();
  if (!back.ok()) return -1;
  std::vector<engine::NamedTensor> a = engine::NamedTensors(model_),
                                   b = engine::NamedTensors(&*back);
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    if (a[i].tensor->shape != b[i].tensor->shape) {
      ADD_FAILURE() << a[i].name << " changed shape";
      continue;
    }
    const double rel = testing_export::RelRmse(a[i].tensor->data, b[i].tensor->data,
                                               static_cast<size_t>(a[i].tensor->numel()));
    EXPECT_LT(rel, max_rel) << a[i].name;
    worst = std::max(worst, rel);
  }
  std::cout << type << " targets: largest relative RMS error " << worst << ", " << same_bytes
            << " tensors byte-identical to the source's, file " << r->file_size << " bytes\n";
  std::filesystem::remove(out);
  return same_bytes;
}

TEST_F(RealModelExportTest, Q4_1TargetsReproduceTheSource) {
  GgufExportReport report;
  // The source's types again (Q4_1 targets, Q8_0 embedding, F32 norms): the
  // min-max quantizers find the source's blocks again, so every tensor,
  // attn_q/attn_k rows in llama.cpp's order included, is byte-identical to
  // what llama.cpp's converter and quantizer wrote.
  const int same = ExportAndCompare("Q4_1", 1e-9, &report);
  EXPECT_EQ(same, static_cast<int>((*file_)->tensors().size()));
  EXPECT_EQ(report.file_type, 3u);
  for (const GgufTensorReport& t : report.tensors) {
    GgmlType want = GgmlType::kQ4_1;
    if (t.gguf_name == "token_embd.weight") want = GgmlType::kQ8_0;
    if (t.gguf_name.find("norm") != std::string::npos) want = GgmlType::kF32;
    EXPECT_EQ(t.type, want) << t.gguf_name;
    EXPECT_FALSE(t.exact_from_grid);
  }
  // Same types as the source: the same size up to the metadata.
  const double ratio = static_cast<double>(report.file_size) / (*file_)->file_size();
  EXPECT_NEAR(ratio, 1.0, 0.001);
}

TEST_F(RealModelExportTest, Q8_0TargetsAreClose) {
  GgufExportReport report;
  ExportAndCompare("Q8_0", 0.01, &report);
  EXPECT_EQ(report.file_type, 7u);
}

TEST_F(RealModelExportTest, KQuantTargetsFallBackOnNarrowRows) {
  GgufExportReport report;
  ExportAndCompare("Q6_K", 0.03, &report);
  for (const GgufTensorReport& t : report.tensors) {
    if (t.gguf_name.find("ffn_down") != std::string::npos) {
      EXPECT_EQ(t.type, GgmlType::kQ6_K);
    } else if (t.gguf_name.find("ffn_up") != std::string::npos) {  // rows of 576
      EXPECT_EQ(t.type, GgmlType::kQ8_0);
      EXPECT_THAT(t.note, ::testing::HasSubstr("do not divide rows of 576"));
    }
  }
}

}  // namespace
}  // namespace compressd::engine

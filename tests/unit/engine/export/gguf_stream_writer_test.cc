// GgufStreamWriter against WriteGgufLlama on tiny synthetic llamas: the same
// file byte for byte and the same report when the tensors arrive block by
// block (tied and untied heads, biases, llama3 rope factors, grids encoded
// exactly, re-quantized and unquantized targets), and calls out of order,
// early finishes and grids of other blocks refused without leaving a file.
#include "workers/engine/export/gguf_stream_writer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "workers/engine/model/gguf/tensor_map.h"

namespace compressd::engine {
namespace {

using engine::testing::TinyLlamaSpec;
using testing_export::ByName;
using testing_export::FromSpec;
using testing_export::QuantizeInModel;
using testing_export::Source;
using ::testing::HasSubstr;
using QuantizedMap = std::map<std::string, const QuantizedTensor*>;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

GgufStreamWriter::RowReader RowsOf(const Tensor& t) {
  return [&t](int64_t row, int64_t n, float* out) {
    const int64_t cols = t.shape.back();
    std::copy(t.data + row * cols, t.data + (row + n) * cols, out);
    return absl::OkStatus();
  };
}

// `m` through the writer as a block-stream job hands it over.
absl::StatusOr<GgufExportReport> Stream(const LlamaModel& m, const GgufFile& source,
                                        const QuantizedMap& quantized,
                                        const GgufExportOptions& options, const std::string& out) {
  const LlamaConfig& c = m.config;
  absl::StatusOr<std::unique_ptr<GgufStreamWriter>> w =
      GgufStreamWriter::Create(c, c.tie_word_embeddings, source, options, out);
  if (!w.ok()) return w.status();
  absl::Status s = (*w)->WriteRows("model.embed_tokens.weight", RowsOf(m.embed_tokens));
  for (int i = 0; s.ok() && i < c.n_layers; ++i) {
    QuantizedMap mine;
    for (const auto& [name, q] : quantized) {
      if (name.rfind(absl::StrCat("model.layers.", i, "."), 0) == 0) mine[name] = q;
    }
    s = (*w)->WriteBlock(i, m.blocks[i], mine);
  }
  if (s.ok()) s = (*w)->WriteRows("model.norm.weight", RowsOf(m.final_norm));
  if (s.ok() && !c.tie_word_embeddings) s = (*w)->WriteRows("lm_head.weight", RowsOf(m.lm_head));
  if (!s.ok()) return s;
  return (*w)->Finish();
}

void ExpectSameAsWholeModel(Source& src, const QuantizedMap& quantized,
                            const GgufExportOptions& options) {
  const std::string whole = testing_export::UniqueTempPath("_whole.gguf");
  const std::string streamed = testing_export::UniqueTempPath("_streamed.gguf");
  absl::StatusOr<GgufExportReport> a =
      WriteGgufLlama(src.model, src.file.get(), quantized, options, whole);
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<GgufExportReport> b = Stream(src.model, *src.file, quantized, options, streamed);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(testing_export::FirstDifference(Slurp(whole), Slurp(streamed)), "");
  EXPECT_EQ(a->file_size, b->file_size);
  EXPECT_EQ(a->file_type, b->file_type);
  EXPECT_EQ(a->dropped_keys, b->dropped_keys);
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  for (size_t i = 0; i < a->tensors.size(); ++i) {
    const GgufTensorReport &x = a->tensors[i], &y = b->tensors[i];
    EXPECT_EQ(x.gguf_name, y.gguf_name);
    EXPECT_EQ(x.type, y.type) << x.gguf_name;
    EXPECT_EQ(x.exact_from_grid, y.exact_from_grid) << x.gguf_name;
    EXPECT_EQ(x.note, y.note) << x.gguf_name;
    EXPECT_EQ(x.bytes, y.bytes) << x.gguf_name;
  }
  std::filesystem::remove(whole);
  std::filesystem::remove(streamed);
}

TEST(GgufStreamWriterTest, GridsAndTypesGiveTheSameFileAsTheWholeModelWriter) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    TinyLlamaSpec spec;
    spec.quantize = false;
    spec.tied = tied;
    spec.attention_bias = !tied;
    Source src = FromSpec(spec);
    const std::string p = "model.layers.1.";
    std::map<std::string, QuantizedTensor> grids;
    grids[p + "self_attn.q_proj.weight"] =
        QuantizeInModel(&src.model, p + "self_attn.q_proj.weight", 4, true, 32);
    grids[p + "self_attn.k_proj.weight"] =
        QuantizeInModel(&src.model, p + "self_attn.k_proj.weight", 4, false, 32);
    grids[p + "mlp.up_proj.weight"] =
        QuantizeInModel(&src.model, p + "mlp.up_proj.weight", 8, true, -1);
    grids["model.layers.0.mlp.gate_proj.weight"] =
        QuantizeInModel(&src.model, "model.layers.0.mlp.gate_proj.weight", 3, true, 32);
    QuantizedMap quantized;
    for (const auto& [name, q] : grids) quantized[name] = &q;
    GgufExportOptions o;
    o.targets = {p + "self_attn.v_proj.weight", "model.layers.0.mlp.down_proj.weight"};
    ExpectSameAsWholeModel(src, quantized, o);
    o.target_type = GgmlType::kQ8_0;  // a named target type
    ExpectSameAsWholeModel(src, quantized, o);
  }
}

TEST(GgufStreamWriterTest, Llama3RopeFactorsAreWrittenFirst) {
  Source src = FromSpec(testing_export::Llama3RopeSpec());
  ASSERT_EQ(src.model.config.rope_scaling.type, "llama3");
  ExpectSameAsWholeModel(src, {}, GgufExportOptions());
}

TEST(GgufStreamWriterTest, OutOfOrderEarlyFinishAndForeignGridsAreRefused) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  Source src = FromSpec(spec);
  const LlamaModel& m = src.model;
  const std::string dir = testing_export::UniqueTempPath("_dir");
  const std::string out = dir + "/m.gguf";
  {
    auto w = GgufStreamWriter::Create(m.config, true, *src.file, GgufExportOptions(), out);
    ASSERT_TRUE(w.ok()) << w.status();
    absl::Status s = (*w)->WriteBlock(0, m.blocks[0], {});
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(s.message(), HasSubstr("the next one is model.embed_tokens.weight"));
    ASSERT_TRUE((*w)->WriteRows("model.embed_tokens.weight", RowsOf(m.embed_tokens)).ok());
    QuantizedTensor other = QuantizeInModel(&src.model, "model.layers.1.mlp.up_proj.weight", 4,
                                            true, 32);
    s = (*w)->WriteBlock(0, m.blocks[0], {{"model.layers.1.mlp.up_proj.weight", &other}});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr("was given the quantized tensor model.layers.1.mlp.up_proj.weight of another block"));
    absl::StatusOr<GgufExportReport> early = (*w)->Finish();
    EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition) << early.status();
    EXPECT_THAT(early.status().message(), HasSubstr("finished before tensor model.layers.0.input_layernorm.weight"));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // the temporary file is gone
  GgufExportOptions bad;
  bad.targets = {"model.layers.7.mlp.up_proj.weight"};
  EXPECT_EQ(GgufStreamWriter::Create(m.config, true, *src.file, bad, out).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace compressd::engine

// GgufLlamaStream (a GGUF read block by block) against LoadGgufModel on small
// generated files: every block, row range and outside tensor bit-identical
// (quantized, F32, GQA with biases, tied and untied heads), and a malformed
// file refused when it is opened, before any block is read.
#include <memory>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/gguf/tensor_map.h"

namespace compressd::engine {
namespace {

using ::testing::HasSubstr;
using testing::BuildTinyLlama;
using testing::TinyLlamaSpec;

std::shared_ptr<const GgufFile> File(const TinyLlamaSpec& spec) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f =
      GgufFile::FromBytes("tiny.gguf", BuildTinyLlama(spec).bytes);
  EXPECT_TRUE(f.ok()) << f.status();
  return std::shared_ptr<const GgufFile>(std::move(*f));
}

void ExpectSame(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape, b.shape) << what;
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data[i], b.data[i]) << what << " " << i;
}

void ExpectStreamMatchesModel(const TinyLlamaSpec& spec) {
  std::shared_ptr<const GgufFile> file = File(spec);
  absl::StatusOr<LlamaModel> model = LoadGgufModel(file);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<GgufLlamaStream>> stream = GgufLlamaStream::Open(file);
  ASSERT_TRUE(stream.ok()) << stream.status();
  const ModelStream& s = **stream;
  EXPECT_EQ(s.gguf(), file.get());
  EXPECT_EQ(s.config().n_layers, model->config.n_layers);
  EXPECT_EQ(s.config().tie_word_embeddings, spec.tied);
  for (int i = 0; i < spec.n_layers; ++i) {
    absl::StatusOr<BlockWeights> w = s.LoadBlock(i);
    ASSERT_TRUE(w.ok()) << w.status();
    for (const BlockTensorSpec& t : BlockTensorSpecs()) {
      if ((t.is_bias && !spec.attention_bias) || t.is_qk_norm || t.is_sandwich_norm) continue;
      ExpectSame((*w).*t.slot, model->blocks[i].*t.slot, absl::StrCat(i, ".", t.hf_suffix));
    }
    s.ReleaseBlock(i);
  }
  absl::StatusOr<Tensor> norm = s.LoadTensor("model.norm.weight");
  ASSERT_TRUE(norm.ok()) << norm.status();
  ExpectSame(*norm, model->final_norm, "final norm");
  // Row ranges of the embedding and of an untied head, as the LM head and
  // the embedding lookup read them.
  const int64_t h = spec.hidden;
  for (const auto& [name, want] :
       std::vector<std::pair<std::string, const Tensor*>>{
           {"model.embed_tokens.weight", &model->embed_tokens}, {"lm_head.weight", &model->lm_head}}) {
    if (name == "lm_head.weight" && spec.tied) {
      EXPECT_EQ(s.LoadTensor(name).status().code(), absl::StatusCode::kNotFound);
      continue;
    }
    std::vector<float> rows(static_cast<size_t>(7 * h));
    ASSERT_TRUE(s.ReadRows(name, 5, 7, rows.data()).ok()) << name;
    for (int64_t i = 0; i < 7 * h; ++i) ASSERT_EQ(rows[i], want->data[5 * h + i]) << name << i;
    s.Release(name);
  }
}

TEST(GgufStreamTest, QuantizedBlocksAreBitIdenticalToTheWholeModel) {
  ExpectStreamMatchesModel(TinyLlamaSpec{});
}

TEST(GgufStreamTest, F32UntiedBlocksAreBitIdenticalToTheWholeModel) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  spec.tied = false;
  ExpectStreamMatchesModel(spec);
}

TEST(GgufStreamTest, GqaAndBiasesAreUnpermutedAsTheWholeModel) {
  TinyLlamaSpec spec;
  spec.n_heads = 8;
  spec.n_kv_heads = 1;
  spec.attention_bias = true;
  spec.tied = false;
  ExpectStreamMatchesModel(spec);
}

TEST(GgufStreamTest, AMalformedFileIsRefusedWhenOpened) {
  for (const auto& [field, value, what] : std::vector<std::tuple<int, std::string, std::string>>{
           {0, "blk.1.ffn_down.weight", "tensor \"blk.1.ffn_down.weight\" is missing"},
           {1, "blk.1.ffn_up.weight", "does not match the config: expected [96, 64]"},
           {2, "blk.0.attn_output.bias", "tensor \"blk.0.attn_output.bias\" (info at offset"}}) {
    TinyLlamaSpec spec;
    (field == 0 ? spec.drop_tensor : field == 1 ? spec.widen_tensor : spec.extra_tensor) = value;
    absl::StatusOr<std::unique_ptr<GgufLlamaStream>> s = GgufLlamaStream::Open(File(spec));
    ASSERT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
    EXPECT_THAT(s.status().message(), HasSubstr(what));
  }
}

TEST(GgufStreamTest, OutOfRangeBlocksRowsAndNamesAreErrors) {
  absl::StatusOr<std::unique_ptr<GgufLlamaStream>> s = GgufLlamaStream::Open(File(TinyLlamaSpec{}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->LoadBlock(2).status().code(), absl::StatusCode::kOutOfRange);
  std::vector<float> rows(64 * 2);
  absl::Status past = (*s)->ReadRows("model.embed_tokens.weight", 39, 2, rows.data());
  EXPECT_EQ(past.code(), absl::StatusCode::kOutOfRange) << past;
  EXPECT_THAT(past.message(), HasSubstr("rows [39, 41) outside [0, 40)"));
  absl::Status other = (*s)->ReadRows("model.layers.0.mlp.up_proj.weight", 0, 1, rows.data());
  EXPECT_EQ(other.code(), absl::StatusCode::kNotFound) << other;
  EXPECT_EQ((*s)->ReadRows("model.norm.weight", 0, 1, rows.data()).code(),
            absl::StatusCode::kNotFound);  // not 2-D
}

}  // namespace
}  // namespace compressd::engine

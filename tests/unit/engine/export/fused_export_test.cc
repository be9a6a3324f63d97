// Phi-3's fused projections at export: where each part lives in the stored
// tensor (StoredPlaceOf, StoredShapes) and FuseForExport's concatenation of
// values and quantized codes, with its refusals.
#include "workers/engine/export/fused_export.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd::engine {
namespace {

using ::testing::HasSubstr;

LlamaConfig Phi3() {
  LlamaConfig c;
  c.model_type = "phi3";
  c.fused_projections = true;
  c.n_layers = 1;
  c.hidden = 8;
  c.intermediate = 6;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.vocab = 10;
  return c;
}

// rows x 8 values, each row filled with `first + row`.
Tensor Rows(int64_t rows, float first) {
  std::vector<float> v(static_cast<size_t>(rows * 8));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < 8; ++i) v[r * 8 + i] = first + static_cast<float>(r);
  return Tensor::Owned({rows, 8}, std::move(v));
}

QuantizedTensor Codes(int64_t rows, uint8_t code) {
  QuantizedTensor q;
  q.rows = rows;
  q.cols = 8;
  q.grid.bits = 4;
  q.grid.group_size = 4;
  q.groups = 2;
  q.codes.assign(static_cast<size_t>(rows * 8), code);
  q.scales.assign(static_cast<size_t>(rows * 2), 0.5f);
  q.zeros.assign(static_cast<size_t>(rows * 2), 8.0f);
  q.group_index = {0, 0, 0, 0, 1, 1, 1, 1};
  return q;
}

TEST(FusedExport, PlacesAndStoredShapes) {
  const LlamaConfig c = Phi3();
  StoredPlace k = StoredPlaceOf(c, "model.layers.0.self_attn.k_proj.weight", {4, 8});
  EXPECT_EQ(k.name, "model.layers.0.self_attn.qkv_proj.weight");
  EXPECT_EQ(k.first_row, 8);  // after q's 2 heads x 4
  EXPECT_EQ(k.shape, (std::vector<int64_t>{16, 8}));
  StoredPlace up = StoredPlaceOf(c, "model.layers.0.mlp.up_proj.weight", {6, 8});
  EXPECT_EQ(up.name, "model.layers.0.mlp.gate_up_proj.weight");
  EXPECT_EQ(up.first_row, 6);
  EXPECT_EQ(StoredPlaceOf(c, "model.layers.0.self_attn.o_proj.weight", {8, 8}).name,
            "model.layers.0.self_attn.o_proj.weight");
  LlamaConfig llama = c;
  llama.fused_projections = false;
  EXPECT_EQ(StoredPlaceOf(llama, "model.layers.0.self_attn.k_proj.weight", {4, 8}).name,
            "model.layers.0.self_attn.k_proj.weight");
  std::vector<std::string> names;
  for (const NamedShape& s : StoredShapes(c)) names.push_back(s.name);
  EXPECT_THAT(names, ::testing::ElementsAre(
                         "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                         "model.layers.0.self_attn.qkv_proj.weight",
                         "model.layers.0.self_attn.o_proj.weight",
                         "model.layers.0.post_attention_layernorm.weight",
                         "model.layers.0.mlp.gate_up_proj.weight",
                         "model.layers.0.mlp.down_proj.weight", "model.norm.weight",
                         "lm_head.weight"));
}

TEST(FusedExport, ConcatenatesValuesAndCodesAndRefusesPartialGroups) {
  const LlamaConfig c = Phi3();
  Tensor q = Rows(8, 0), k = Rows(4, 100), v = Rows(4, 200), o = Rows(8, 300);
  const std::string p = "model.layers.0.self_attn.";
  // Out of order on purpose: the stored rows follow q, k, v.
  std::vector<NamedTensor> tensors = {
      {p + "v_proj.weight", &v}, {p + "q_proj.weight", &q}, {p + "k_proj.weight", &k},
      {p + "o_proj.weight", &o}};
  QuantizedTensor qq = Codes(8, 1), qk = Codes(4, 2), qv = Codes(4, 3);
  std::map<std::string, const QuantizedTensor*> quantized = {
      {p + "q_proj.weight", &qq}, {p + "k_proj.weight", &qk}, {p + "v_proj.weight", &qv}};
  auto stored = FuseForExport(c, tensors, quantized);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->tensors.size(), 2u);
  const NamedTensor& qkv = stored->tensors[0];
  EXPECT_EQ(qkv.name, p + "qkv_proj.weight");
  ASSERT_EQ(qkv.tensor->shape, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(qkv.tensor->data[0], 0.0f);
  EXPECT_EQ(qkv.tensor->data[8 * 8], 100.0f);        // k's first row
  EXPECT_EQ(qkv.tensor->data[12 * 8 + 3], 200.0f);   // v's first row
  EXPECT_EQ(stored->tensors[1].tensor, &o);          // passes through, no copy
  const QuantizedTensor& fq = *stored->quantized.at(p + "qkv_proj.weight");
  EXPECT_EQ(fq.rows, 16);
  EXPECT_EQ(fq.codes[0], 1);
  EXPECT_EQ(fq.codes[8 * 8], 2);
  EXPECT_EQ(fq.codes[12 * 8], 3);
  EXPECT_EQ(fq.scales.size(), 32u);
  EXPECT_EQ(stored->quantized.count(p + "o_proj.weight"), 0u);

  // k dense while q and v are quantized: one stored tensor cannot be both.
  auto partly = quantized;
  partly.erase(p + "k_proj.weight");
  absl::Status s = FuseForExport(c, tensors, partly).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("k_proj.weight is not quantized but other parts are"));
  // Other act-order groups in v.
  QuantizedTensor reordered = qv;
  reordered.group_index = {1, 1, 1, 1, 0, 0, 0, 0};
  partly = quantized;
  partly[p + "v_proj.weight"] = &reordered;
  s = FuseForExport(c, tensors, partly).status();
  EXPECT_THAT(s.message(), HasSubstr("other act-order groups"));
  // A part missing altogether.
  tensors.erase(tensors.begin() + 2);
  s = FuseForExport(c, tensors, {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("a part is missing"));
}

}  // namespace
}  // namespace compressd::engine

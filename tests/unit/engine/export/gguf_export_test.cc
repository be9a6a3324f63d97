// WriteGgufLlama on tiny synthetic llamas (tests/unit/engine/model/tiny_llama_gguf.h):
// F32 round trips are byte- and float-exact (including llama.cpp's Q/K row
// order), quantized ones are close, grids are encoded exactly, metadata is
// generated and copied, and failures leave no file behind.
#include "workers/engine/export/gguf_export.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

using engine::GgmlType;
using engine::GgufFile;
using engine::LlamaModel;
using engine::QuantizedTensor;
using engine::Tensor;
using engine::testing::BuildTinyLlama;
using engine::testing::TinyLlamaSpec;
using ::testing::HasSubstr;
using QuantizedMap = std::map<std::string, const QuantizedTensor*>;
using testing_export::ByName;
using testing_export::FromSpec;
using testing_export::QuantizeInModel;
using testing_export::Source;

std::set<std::string> Matrices(LlamaModel* m) {
  std::set<std::string> out;
  for (const auto& [name, t] : ByName(m)) {
    if (t->shape.size() == 2 && name != "model.embed_tokens.weight" && name != "lm_head.weight")
      out.insert(name);
  }
  return out;
}

// Largest |a - b| over every tensor (and a failure for differing names/shapes).
float MaxDiff(LlamaModel* a, LlamaModel* b) {
  std::map<std::string, Tensor*> x = ByName(a), y = ByName(b);
  EXPECT_EQ(x.size(), y.size());
  float worst = 0.0f;
  for (const auto& [name, t] : x) {
    auto it = y.find(name);
    if (it == y.end() || it->second->shape != t->shape) {
      ADD_FAILURE() << name << " missing or reshaped";
      continue;
    }
    for (int64_t i = 0; i < t->numel(); ++i) {
      worst = std::max(worst, std::fabs(t->data[i] - it->second->data[i]));
    }
  }
  return worst;
}

absl::StatusOr<LlamaModel> Reload(const std::string& path) { return engine::LoadGgufModel(path); }

GgufExportOptions AllF32(LlamaModel* m) {
  GgufExportOptions o;
  o.target_type = GgmlType::kF32;
  o.other_type = GgmlType::kF32;
  o.targets = Matrices(m);
  return o;
}

class F32RoundTripTest : public ::testing::TestWithParam<std::pair<bool, bool>> {};

TEST_P(F32RoundTripTest, IsByteAndFloatExact) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  std::tie(spec.tied, spec.attention_bias) = GetParam();
  Source src = FromSpec(spec);
  const std::string out = testing_export::UniqueTempPath(".gguf");
  absl::StatusOr<GgufExportReport> report =
      WriteGgufLlama(src.model, src.file.get(), {}, AllF32(&src.model), out);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->file_size, std::filesystem::file_size(out));
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(out);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), src.file->tensors().size());
  EXPECT_EQ((*f)->FindTensor("output.weight") != nullptr, !spec.tied);
  for (const engine::GgufTensorInfo& t : src.file->tensors()) {  // Q/K rows in llama.cpp order
    const engine::GgufTensorInfo* w = (*f)->FindTensor(t.name);
    ASSERT_NE(w, nullptr) << t.name;
    EXPECT_EQ(w->ne, t.ne) << t.name;
    ASSERT_EQ(w->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp((*f)->TensorData(*w), src.file->TensorData(t), t.nbytes), 0) << t.name;
  }
  absl::StatusOr<LlamaModel> back = Reload(out);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(MaxDiff(&src.model, &*back), 0.0f);
  EXPECT_EQ(back->config.tie_word_embeddings, spec.tied);
  EXPECT_EQ(back->config.attention_bias, spec.attention_bias);
  std::filesystem::remove(out);
}

INSTANTIATE_TEST_SUITE_P(TiedAndBiases, F32RoundTripTest,
                         ::testing::Values(std::pair{true, false}, std::pair{false, false},
                                           std::pair{true, true}));

// Qwen2 and Qwen3 are llama.cpp's qwen2 / qwen3 architectures: their keys
// under that prefix, Q/K rows (and biases) in HF order, Qwen3's per-head q/k
// norms as attn_q_norm / attn_k_norm; read back as the same family, exactly.
TEST(GgufExportTest, QwenFamiliesAreTheirOwnArchitecturesWithHfRowOrder) {
  for (const std::string family : {"qwen2", "qwen3"}) {
    TinyLlamaSpec spec;
    spec.quantize = false;
    spec.attention_bias = family == "qwen2";
    Source src = FromSpec(spec);
    src.model.config.model_type = family;
    if (family == "qwen3") {
      src.model.config.qk_norm = true;
      const int64_t hd = src.model.config.head_dim;
      for (engine::BlockWeights& b : src.model.blocks) {
        std::vector<float> q(hd), k(hd);
        for (int64_t i = 0; i < hd; ++i) q[i] = 0.5f + 0.25f * i, k[i] = 2.0f - 0.125f * i;
        b.q_norm = Tensor::Owned({hd}, q);
        b.k_norm = Tensor::Owned({hd}, k);
      }
    }
    const std::string out = testing_export::UniqueTempPath(".gguf");
    absl::StatusOr<GgufExportReport> report =
        WriteGgufLlama(src.model, src.file.get(), {}, AllF32(&src.model), out);
    ASSERT_TRUE(report.ok()) << family << ": " << report.status();
    absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(out);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(*(*f)->GetString("general.architecture"), family);
    EXPECT_TRUE((*f)->GetU32(family + ".block_count").ok()) << family;
    EXPECT_FALSE((*f)->GetU32("llama.block_count").ok()) << family;
    const engine::GgufTensorInfo* q = (*f)->FindTensor("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    const Tensor& hf_q = src.model.blocks[0].q_proj;  // HF order, unpermuted
    EXPECT_EQ(std::memcmp((*f)->TensorData(*q), hf_q.data, hf_q.numel() * sizeof(float)), 0)
        << family;
    EXPECT_EQ((*f)->FindTensor("blk.1.attn_q_norm.weight") != nullptr, family == "qwen3");
    absl::StatusOr<LlamaModel> back = Reload(out);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->config.model_type, family);
    EXPECT_EQ(back->config.qk_norm, family == "qwen3");
    EXPECT_EQ(MaxDiff(&src.model, &*back), 0.0f) << family;
    std::filesystem::remove(out);
  }
}

TEST(GgufExportTest, WritesHyperparametersAndKeepsSourceKeys) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  Source src = FromSpec(spec);
  const std::string out = testing_export::UniqueTempPath(".gguf");
  GgufExportOptions o = AllF32(&src.model);
  o.name = "tiny-compressed";
  ASSERT_TRUE(WriteGgufLlama(src.model, src.file.get(), {}, o, out).ok());
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(out);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetString("general.name"), "tiny-compressed");
  EXPECT_EQ(*g.GetU32("general.quantization_version"), 2u);
  EXPECT_EQ(*g.GetU32("general.file_type"), 0u);  // all F32
  EXPECT_EQ(*g.GetU32("llama.block_count"), 2u);
  EXPECT_EQ(*g.GetU32("llama.embedding_length"), 64u);
  EXPECT_EQ(*g.GetU32("llama.feed_forward_length"), 96u);
  EXPECT_EQ(*g.GetU32("llama.attention.head_count"), 4u);
  EXPECT_EQ(*g.GetU32("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(*g.GetU32("llama.rope.dimension_count"), 16u);
  EXPECT_EQ(*g.GetU32("llama.vocab_size"), 40u);
  EXPECT_EQ(*g.GetU32("llama.context_length"), 256u);
  EXPECT_EQ(*g.GetF32("llama.attention.layer_norm_rms_epsilon"), 1e-6f);
  EXPECT_EQ(*g.GetF32("llama.rope.freq_base"), 10000.0f);
  EXPECT_EQ(*g.GetU32("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(*g.GetU32("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_FALSE(g.HasKey("llama.attention.key_length"));  // head_dim = hidden / heads
  std::filesystem::remove(out);
}

// A metadata source other than the model's file: tokenizer keys of every
// kind, harmless general.* keys, and keys that are not copied.
std::unique_ptr<GgufFile> TokenizerSource(int n_tokens) {
  engine::testing::GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddString("general.name", "source-model");
  w.AddString("general.license", "apache-2.0");
  w.AddF64("general.some_f64", 1.5);  // no lossless accessor: dropped
  w.AddU32("llama.block_count", 99);  // regenerated from the config
  w.AddString("quantize.imatrix.file", "imatrix.dat");
  w.AddString("tokenizer.ggml.model", "gpt2");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;
  for (int i = 0; i < n_tokens; ++i) {
    tokens.push_back("tok" + std::to_string(i));
    types.push_back(i < 3 ? 3 : 1);
    scores.push_back(-0.5f * i);
  }
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddI32Array("tokenizer.ggml.token_type", types);
  w.AddF32Array("tokenizer.ggml.scores", scores);
  w.AddStringArray("tokenizer.ggml.merges", {"t o", "to k"});
  w.AddU32("tokenizer.ggml.bos_token_id", 1);
  w.AddI32("tokenizer.ggml.padding_token_id", -1);
  w.AddBool("tokenizer.ggml.add_bos_token", false);
  w.AddString("tokenizer.chat_template", "{% for m in messages %}{{ m }}{% endfor %}");
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::FromBytes("source.gguf", w.Build());
  EXPECT_TRUE(f.ok()) << f.status();
  return std::move(*f);
}

TEST(GgufExportTest, CopiesTokenizerKeysWithTheirTypes) {
  Source src = FromSpec(TinyLlamaSpec{});
  const std::unique_ptr<GgufFile> meta = TokenizerSource(40);
  const std::string out = testing_export::UniqueTempPath(".gguf");
  absl::StatusOr<GgufExportReport> r =
      WriteGgufLlama(src.model, meta.get(), {}, GgufExportOptions(), out);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->dropped_keys, ::testing::ElementsAre("general.some_f64", "quantize.imatrix.file"));
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(out);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(*g.GetString("general.name"), "source-model");
  EXPECT_EQ(*g.GetString("general.license"), "apache-2.0");
  EXPECT_EQ(*g.GetU32("llama.block_count"), 2u);
  for (const engine::GgufKv& kv : meta->metadata()) {
    if (kv.key.rfind("tokenizer.", 0) != 0) continue;
    const engine::GgufKv* got = g.FindKv(kv.key);
    ASSERT_NE(got, nullptr) << kv.key;
    EXPECT_EQ(got->type, kv.type) << kv.key;
    EXPECT_EQ(got->elem_type, kv.elem_type) << kv.key;
    EXPECT_EQ(got->count, kv.count) << kv.key;
  }
  EXPECT_EQ(*g.GetStringArray("tokenizer.ggml.tokens"),
            *meta->GetStringArray("tokenizer.ggml.tokens"));
  EXPECT_EQ(*g.GetIntArray("tokenizer.ggml.token_type"),
            *meta->GetIntArray("tokenizer.ggml.token_type"));
  EXPECT_EQ(*g.GetF32Array("tokenizer.ggml.scores"), *meta->GetF32Array("tokenizer.ggml.scores"));
  EXPECT_EQ(*g.GetStringArray("tokenizer.ggml.merges"),
            *meta->GetStringArray("tokenizer.ggml.merges"));
  EXPECT_EQ(*g.GetI32("tokenizer.ggml.padding_token_id"), -1);
  EXPECT_EQ(*g.GetBool("tokenizer.ggml.add_bos_token"), false);
  EXPECT_EQ(*g.GetString("tokenizer.chat_template"), *meta->GetString("tokenizer.chat_template"));
  std::filesystem::remove(out);
  // A tokenizer for another vocabulary is refused.
  const std::unique_ptr<GgufFile> other = TokenizerSource(39);
  r = WriteGgufLlama(src.model, other.get(), {}, GgufExportOptions(), out);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("39 tokens but the model's vocabulary is 40"));
}

TEST(GgufExportTest, WritesLlama3RopeFactors) {
  Source src = FromSpec(testing_export::Llama3RopeSpec());
  ASSERT_EQ(src.model.config.rope_scaling.type, "llama3");
  const std::string out = testing_export::UniqueTempPath(".gguf");
  ASSERT_TRUE(WriteGgufLlama(src.model, src.file.get(), {}, AllF32(&src.model), out).ok());
  absl::StatusOr<LlamaModel> back = Reload(out);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config.rope_scaling.type, "llama3");
  EXPECT_EQ(back->config.rope_scaling.factor, 8.0f);
  std::filesystem::remove(out);
}

TEST(GgufExportTest, Q8_0RoundTripIsClose) {
  Source src = FromSpec(TinyLlamaSpec{});  // Q8_0 matrices with d = 2^-6
  const std::string out = testing_export::UniqueTempPath(".gguf");
  GgufExportOptions o;
  o.target_type = GgmlType::kQ8_0;
  o.targets = Matrices(&src.model);
  absl::StatusOr<GgufExportReport> report = WriteGgufLlama(src.model, src.file.get(), {}, o, out);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->file_type, 7u);
  for (const GgufTensorReport& t : report->tensors) {
    const bool matrix = t.gguf_name.find("norm") == std::string::npos;
    EXPECT_EQ(t.type, matrix ? GgmlType::kQ8_0 : GgmlType::kF32) << t.gguf_name;
    EXPECT_FALSE(t.exact_from_grid);
  }
  absl::StatusOr<LlamaModel> back = Reload(out);
  ASSERT_TRUE(back.ok()) << back.status();
  // Values are q / 64 with |q| <= 127: at most half a step of max / 127 off.
  EXPECT_LE(MaxDiff(&src.model, &*back), 0.5f * (127.0f / 64.0f) / 127.0f * 1.01f);
  std::filesystem::remove(out);
}

TEST(GgufExportTest, EncodesGridsExactlyAndPicksTypesByBits) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  Source src = FromSpec(spec);
  LlamaModel& m = src.model;
  const std::string p = "model.layers.1.";
  std::map<std::string, QuantizedTensor> grids;
  grids[p + "self_attn.q_proj.weight"] =
      QuantizeInModel(&m, p + "self_attn.q_proj.weight", 4, true, 32);
  grids[p + "self_attn.k_proj.weight"] =
      QuantizeInModel(&m, p + "self_attn.k_proj.weight", 4, false, 32);
  grids[p + "mlp.up_proj.weight"] = QuantizeInModel(&m, p + "mlp.up_proj.weight", 8, true, -1);
  QuantizedTensor act = QuantizeInModel(&m, p + "mlp.gate_proj.weight", 4, true, 32);
  std::swap(act.group_index[0], act.group_index[40]);  // act-order: no exact type
  std::vector<float> w(act.rows * act.cols);
  act.DequantizeTo(w.data());
  *ByName(&m).at(p + "mlp.gate_proj.weight") = Tensor::Owned({act.rows, act.cols}, w);
  grids[p + "mlp.gate_proj.weight"] = act;
  QuantizedMap quantized;
  for (const auto& [name, q] : grids) quantized[name] = &q;
  GgufExportOptions o;
  o.targets = {p + "self_attn.v_proj.weight"};  // a target without a grid: F16
  const std::string out = testing_export::UniqueTempPath(".gguf");
  absl::StatusOr<GgufExportReport> report = WriteGgufLlama(m, src.file.get(), quantized, o, out);
  ASSERT_TRUE(report.ok()) << report.status();
  std::map<std::string, GgufTensorReport> by_name;
  for (const GgufTensorReport& t : report->tensors) by_name[t.hf_name] = t;
  EXPECT_EQ(by_name[p + "self_attn.q_proj.weight"].type, GgmlType::kQ4_0);
  EXPECT_TRUE(by_name[p + "self_attn.q_proj.weight"].exact_from_grid);
  EXPECT_EQ(by_name[p + "self_attn.k_proj.weight"].type, GgmlType::kQ4_1);
  EXPECT_EQ(by_name[p + "mlp.up_proj.weight"].type, GgmlType::kQ8_0);
  EXPECT_TRUE(by_name[p + "mlp.up_proj.weight"].exact_from_grid);
  const GgufTensorReport& gate = by_name[p + "mlp.gate_proj.weight"];
  EXPECT_FALSE(gate.exact_from_grid);
  EXPECT_EQ(gate.requested, GgmlType::kQ4_K);  // 4 bits, re-quantized
  EXPECT_EQ(gate.type, GgmlType::kQ5_0);       // 256 does not divide 64
  EXPECT_THAT(gate.note, HasSubstr("do not divide rows of 64"));
  EXPECT_EQ(by_name[p + "self_attn.v_proj.weight"].type, GgmlType::kF16);
  EXPECT_EQ(by_name["model.layers.0.self_attn.v_proj.weight"].type, GgmlType::kQ8_0);  // other
  EXPECT_EQ(by_name["model.embed_tokens.weight"].type, GgmlType::kQ8_0);
  absl::StatusOr<LlamaModel> back = Reload(out);
  ASSERT_TRUE(back.ok()) << back.status();
  const float h = std::ldexp(1.0f, -11);
  for (const auto& [name, q] : grids) {
    if (name == p + "mlp.gate_proj.weight") continue;
    const Tensor* mine = ByName(&m).at(name);
    const Tensor* read = ByName(&*back).at(name);
    for (int64_t i = 0; i < mine->numel(); ++i) {
      const int64_t g = (i / q.cols) * q.groups + q.group_index[i % q.cols];
      const float bound = h * q.scales[g] * (q.codes[i] + 2.0f * q.zeros[g] + 1.0f);
      ASSERT_LE(std::fabs(read->data[i] - mine->data[i]), bound) << name << " " << i;
      if (q.grid.symmetric && mine->data[i] == 0.0f) {
        ASSERT_EQ(read->data[i], 0.0f);
      }
    }
  }
  std::filesystem::remove(out);
}

TEST(GgufExportTest, RejectsGridsThatAreNotTheWeights) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  Source src = FromSpec(spec);
  const std::string name = "model.layers.0.mlp.down_proj.weight";
  QuantizedTensor q = QuantizeInModel(&src.model, name, 4, true, 32);
  q.codes[5] ^= 1;  // the model's weights no longer follow the codes
  const std::string out = testing_export::UniqueTempPath(".gguf");
  absl::StatusOr<GgufExportReport> r =
      WriteGgufLlama(src.model, src.file.get(), {{name, &q}}, GgufExportOptions(), out);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(name + ": weight (0, 5)"));
  q.codes[5] ^= 1;
  q.rows -= 1;
  r = WriteGgufLlama(src.model, src.file.get(), {{name, &q}}, GgufExportOptions(), out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(GgufExportTest, RejectsBadArguments) {
  Source src = FromSpec(TinyLlamaSpec{});
  const std::string out = testing_export::UniqueTempPath(".gguf");
  GgufExportOptions o;
  EXPECT_EQ(WriteGgufLlama(src.model, nullptr, {}, o, out).status().code(),
            absl::StatusCode::kUnimplemented);
  o.targets = {"model.layers.9.mlp.up_proj.weight"};
  absl::StatusOr<GgufExportReport> r = WriteGgufLlama(src.model, src.file.get(), {}, o, out);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers.9.mlp.up_proj.weight"));
  o.targets = {"model.norm.weight"};  // 1-D: not a linear weight
  EXPECT_EQ(WriteGgufLlama(src.model, src.file.get(), {}, o, out).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.targets.clear();
  // A destination whose parent is a regular file (missing parents are created).
  const std::string not_a_dir = testing_export::UniqueTempPath("_file");
  { std::ofstream(not_a_dir) << "x"; }
  r = WriteGgufLlama(src.model, src.file.get(), {}, o, not_a_dir + "/model.gguf");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr(not_a_dir));
  std::filesystem::remove(not_a_dir);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(GgufExportTest, AFailureMidFileLeavesNoFile) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  Source src = FromSpec(spec);
  Tensor* down = ByName(&src.model).at("model.layers.1.mlp.down_proj.weight");
  std::vector<float> w(down->data, down->data + down->numel());
  w[77] = NAN;
  *down = Tensor::Owned(down->shape, w);
  const std::string dir = testing_export::UniqueTempPath("_dir");
  std::filesystem::create_directories(dir);
  absl::StatusOr<GgufExportReport> r =
      WriteGgufLlama(src.model, src.file.get(), {}, GgufExportOptions(), dir + "/m.gguf");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("blk.1.ffn_down.weight"));
  EXPECT_THAT(r.status().message(), HasSubstr("not finite"));
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // the temporary file is gone
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace compressd::engine

// The GPTQ checkpoint writer (workers/engine/export/gptq_export.h): packing
// checked against independent bit-by-bit and AutoGPTQ-style unpacking, the
// written safetensors and config.json read back, and the error cases.
#include "workers/engine/export/gptq_export.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/export/packed_testing.h"
#include "tests/unit/engine/export/quantize_testing.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/gguf/gptq_stream.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/safetensors.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using engine::QuantGrid;
using engine::QuantizedTensor;
using ::testing::HasSubstr;
using testing::Pointers;
using testing::TempDir;
using testing::RandomQuantized;
using testing::ReadJson;
using testing::StreamField;
using testing::TinyModel;

// AutoGPTQ's 3-bit layout spelled out: 32 inputs in 3 words, 10 codes, one
// split 2+1, 10 codes, one split 1+2, 10 codes.
std::vector<uint32_t> UnpackThreeBitColumn(const int32_t* words, int64_t stride, int64_t n) {
  std::vector<uint32_t> out;
  for (int64_t w = 0; out.size() < static_cast<size_t>(n); w += 3) {
    const auto a = static_cast<uint32_t>(words[w * stride]);
    const auto b = static_cast<uint32_t>(words[(w + 1) * stride]);
    const auto c = static_cast<uint32_t>(words[(w + 2) * stride]);
    for (int j = 0; j < 10; ++j) out.push_back((a >> (3 * j)) & 7u);
    out.push_back((a >> 30) | ((b & 1u) << 2));
    for (int j = 0; j < 10; ++j) out.push_back((b >> (3 * j + 1)) & 7u);
    out.push_back((b >> 31) | ((c & 3u) << 1));
    for (int j = 0; j < 10; ++j) out.push_back((c >> (3 * j + 2)) & 7u);
  }
  return out;
}

void ExpectRoundTrip(const QuantizedTensor& q, const GptqPackedTensor& p,
                     GptqCheckpointFormat format) {
  const int bits = q.grid.bits;
  ASSERT_EQ(p.qweight.size(), static_cast<size_t>(q.cols * bits / 32 * q.rows));
  ASSERT_EQ(p.qzeros.size(), static_cast<size_t>(q.groups * q.rows * bits / 32));
  ASSERT_EQ(p.scales.size(), static_cast<size_t>(q.groups * q.rows));
  const int64_t zero_words = q.rows * bits / 32;
  const uint32_t offset = format == GptqCheckpointFormat::kGptq ? 1 : 0;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      ASSERT_EQ(StreamField(p.qweight.data() + r, q.rows, c, bits), q.codes[r * q.cols + c])
          << "code [" << r << ", " << c << "], " << bits << " bits";
    }
    for (int64_t g = 0; g < q.groups; ++g) {
      ASSERT_EQ(StreamField(p.qzeros.data() + g * zero_words, 1, r, bits) + offset,
                static_cast<uint32_t>(q.zeros[r * q.groups + g]));
      ASSERT_EQ(p.scales[g * q.rows + r], FloatToHalfRef(q.scales[r * q.groups + g]));
    }
  }
  EXPECT_EQ(p.g_idx, q.group_index);
}

TEST(GptqPackTest, RoundTripsEveryBitWidthAndFormat) {
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {true, false}) {
      for (auto format : {GptqCheckpointFormat::kGptq, GptqCheckpointFormat::kGptqV2}) {
        SCOPED_TRACE(::testing::Message() << bits << " bits, sym " << sym);
        const QuantizedTensor q = RandomQuantized(64, 96, {bits, 32, sym}, false, bits * 7 + sym);
        auto p = PackGptqTensor(q, format, "t");
        ASSERT_TRUE(p.ok()) << p.status();
        ExpectRoundTrip(q, *p, format);
        EXPECT_FALSE(p->act_order);
      }
    }
  }
}

TEST(GptqPackTest, FourBitWordsHoldEightCodesLowestFirst) {
  QuantizedTensor q = RandomQuantized(8, 8, {4, -1, true}, false, 3);
  for (int64_t c = 0; c < 8; ++c) q.codes[c] = static_cast<uint8_t>(c);  // row 0: 0..7
  auto p = PackGptqTensor(q, GptqCheckpointFormat::kGptq, "t");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(static_cast<uint32_t>(p->qweight[0]), 0x76543210u);
  // Symmetric zero 8 stored as 7 (v1) in every nibble.
  EXPECT_EQ(static_cast<uint32_t>(p->qzeros[0]), 0x77777777u);
}

TEST(GptqPackTest, ThreeBitMatchesAutoGptqWordSplits) {
  const QuantizedTensor q = RandomQuantized(32, 64, {3, 16, false}, false, 11);
  auto p = PackGptqTensor(q, GptqCheckpointFormat::kGptq, "t");
  ASSERT_TRUE(p.ok()) << p.status();
  for (int64_t r = 0; r < q.rows; ++r) {
    const std::vector<uint32_t> codes = UnpackThreeBitColumn(p->qweight.data() + r, q.rows, q.cols);
    for (int64_t c = 0; c < q.cols; ++c) ASSERT_EQ(codes[c], q.codes[r * q.cols + c]);
  }
  for (int64_t g = 0; g < q.groups; ++g) {
    const std::vector<uint32_t> zeros = UnpackThreeBitColumn(p->qzeros.data() + g * 3, 1, q.rows);
    for (int64_t r = 0; r < q.rows; ++r) {
      ASSERT_EQ(zeros[r] + 1, static_cast<uint32_t>(q.zeros[r * q.groups + g]));
    }
  }
}

TEST(GptqPackTest, ActOrderAndPerChannelGroupIndex) {
  const QuantizedTensor perm = RandomQuantized(32, 64, {4, 16, true}, true, 5);
  auto p = PackGptqTensor(perm, GptqCheckpointFormat::kGptq, "t");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->act_order);
  ExpectRoundTrip(perm, *p, GptqCheckpointFormat::kGptq);
  const QuantizedTensor channel = RandomQuantized(32, 64, {4, -1, true}, false, 6);
  auto c = PackGptqTensor(channel, GptqCheckpointFormat::kGptq, "t");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->groups, 1);
  EXPECT_EQ(c->g_idx, std::vector<int32_t>(64, 0));
  EXPECT_FALSE(c->act_order);
}

TEST(GptqPackTest, RejectsWhatTheFormatCannotHold) {
  const auto expect_error = [](const QuantizedTensor& q, GptqCheckpointFormat f,
                               const std::string& what) {
    auto p = PackGptqTensor(q, f, "model.layers.0.mlp.up_proj.weight");
    ASSERT_FALSE(p.ok()) << what;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(p.status().message(), HasSubstr("model.layers.0.mlp.up_proj.weight"));
    EXPECT_THAT(p.status().message(), HasSubstr(what));
  };
  const auto v1 = GptqCheckpointFormat::kGptq;
  expect_error(RandomQuantized(32, 64, {5, 32, true}, false, 1), v1,
               "gptq output supports bits 2, 3, 4, 8");
  expect_error(RandomQuantized(32, 48, {3, 16, true}, false, 1), v1, "multiples of 32");
  expect_error(RandomQuantized(32, 96, {4, 64, true}, false, 1), v1,
               "in_features 96 is not a multiple of group_size 64");
  QuantizedTensor zero0 = RandomQuantized(32, 64, {4, 32, false}, false, 2);
  zero0.zeros[3] = 0.0f;
  expect_error(zero0, v1, "use gptq_v2");
  EXPECT_TRUE(PackGptqTensor(zero0, GptqCheckpointFormat::kGptqV2, "t").ok());
  QuantizedTensor sym = RandomQuantized(32, 64, {4, 32, true}, false, 2);
  sym.zeros[1] = 7.0f;
  expect_error(sym, v1, "symmetric grid");
  QuantizedTensor big = RandomQuantized(32, 64, {4, 32, true}, false, 2);
  big.scales[0] = 1e6f;
  expect_error(big, v1, "float16");
  QuantizedTensor code = RandomQuantized(32, 64, {2, 32, true}, false, 2);
  code.codes[5] = 4;
  expect_error(code, v1, "exceeds 3");
  QuantizedTensor gidx = RandomQuantized(32, 64, {4, 32, true}, false, 2);
  gidx.group_index[9] = 2;
  expect_error(gidx, v1, "group_index[9]");
}

TEST(GptqExportTest, WritesTensorsAndConfigThatReadBack) {
  engine::LlamaModel model = TinyModel(/*tied=*/false);
  const auto quantized = testing::QuantizeProjections(&model, {4, 32, true});
  const std::string dir = TempDir("basic");
  auto stats = WriteGptqLlama(model, Pointers(quantized), dir);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->quantized_tensors, 14);
  EXPECT_EQ(stats->dense_tensors, 1 + 2 * 2 + 1 + 1);  // embed, norms, final norm, lm_head
  EXPECT_FALSE(stats->desc_act);
  // Only the float16 rounding of the scales: |w| <= 0.3, so well under 1e-3.
  EXPECT_GT(stats->max_abs_diff, 0.0);
  EXPECT_LT(stats->max_abs_diff, 1e-3);

  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& f = **file;
  EXPECT_EQ(f.Find("model.layers.0.mlp.up_proj.weight"), nullptr);
  const TensorInfo* qw = f.Find("model.layers.1.mlp.down_proj.qweight");
  ASSERT_NE(qw, nullptr);
  EXPECT_EQ(qw->dtype, DType::kI32);
  EXPECT_EQ(qw->shape, (std::vector<int64_t>{128 * 4 / 32, 64}));
  const TensorInfo* qz = f.Find("model.layers.1.mlp.down_proj.qzeros");
  ASSERT_NE(qz, nullptr);
  EXPECT_EQ(qz->dtype, DType::kI32);
  EXPECT_EQ(qz->shape, (std::vector<int64_t>{4, 64 * 4 / 32}));
  const TensorInfo* sc = f.Find("model.layers.1.mlp.down_proj.scales");
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(sc->dtype, DType::kF16);
  EXPECT_EQ(sc->shape, (std::vector<int64_t>{4, 64}));
  const TensorInfo* gi = f.Find("model.layers.1.mlp.down_proj.g_idx");
  ASSERT_NE(gi, nullptr);
  EXPECT_EQ(gi->shape, (std::vector<int64_t>{128}));
  for (const char* dense : {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                            "model.layers.0.input_layernorm.weight"}) {
    const TensorInfo* t = f.Find(dense);
    ASSERT_NE(t, nullptr) << dense;
    EXPECT_EQ(t->dtype, DType::kF16) << dense;
  }
  // The codes in the file are the quantizer's codes.
  const QuantizedTensor& q = quantized.at("model.layers.1.mlp.down_proj.weight");
  const auto* words = reinterpret_cast<const int32_t*>(f.Bytes(*qw).data());
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      ASSERT_EQ(StreamField(words + r, q.rows, c, 4), q.codes[r * q.cols + c]);
    }
  }

  const nlohmann::json config = ReadJson(dir + "/config.json");
  EXPECT_EQ(config["torch_dtype"], "float16");
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(config["tie_word_embeddings"], false);
  const nlohmann::json& qc = config["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_EQ(qc["sym"], true);
  EXPECT_EQ(qc["desc_act"], false);
  EXPECT_EQ(qc["checkpoint_format"], "gptq");
  EXPECT_EQ(qc["format"], "gptq");
  EXPECT_EQ(qc["modules_in_block_to_quantize"],
            nlohmann::json::parse(R"([["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"],
                                      ["self_attn.o_proj"], ["mlp.up_proj", "mlp.gate_proj"],
                                      ["mlp.down_proj"]])"));
  fs::remove_all(dir);
}

// The worker's own GPTQ reader (GptqStream, the reload check's) dequantizes
// what the writer packed: 3-bit act-order asymmetric (gptq_v2, codes across
// word boundaries) and 4-bit symmetric (v1, zero points stored minus one).
TEST(GptqExportTest, GptqStreamReadsBackWhatWasWritten) {
  for (const QuantGrid grid : {QuantGrid{3, 32, false}, QuantGrid{4, 32, true}}) {
    engine::LlamaModel model = TinyModel(/*tied=*/true);
    const auto quantized = grid.bits == 3 ? testing::QuantizeProjectionsActOrder(&model, grid)
                                          : testing::QuantizeProjections(&model, grid);
    const std::string dir = TempDir("reader");
    GptqExportOptions options;
    if (!grid.symmetric) options.format = GptqCheckpointFormat::kGptqV2;
    auto stats = WriteGptqLlama(model, Pointers(quantized), dir, options);
    ASSERT_TRUE(stats.ok()) << stats.status();
    auto stream = GptqStream::Open(dir);
    ASSERT_TRUE(stream.ok()) << stream.status();
    for (int b = 0; b < 2; ++b) {
      auto block = (*stream)->LoadBlock(b);
      ASSERT_TRUE(block.ok()) << block.status();
      for (const engine::NamedTensor& t : engine::BlockTensors((*stream)->config(), b, &*block)) {
        auto q = quantized.find(t.name);
        if (q == quantized.end()) continue;
        std::vector<float> want(static_cast<size_t>(q->second.rows * q->second.cols));
        q->second.DequantizeTo(want.data());
        for (size_t i = 0; i < want.size(); ++i) {  // float16 scales: the writer's own bound
          ASSERT_LE(std::fabs(t.tensor->data[i] - want[i]), stats->max_abs_diff + 1e-7)
              << t.name << " bits " << grid.bits << " element " << i;
        }
      }
    }
    fs::remove_all(dir);
  }
  // A checkpoint missing a tensor is refused when opened, naming it.
  engine::LlamaModel model = TinyModel(/*tied=*/false);
  const auto quantized = testing::QuantizeProjections(&model, {4, 32, true});
  const std::string dir = TempDir("reader_missing");
  ASSERT_TRUE(WriteGptqLlama(model, Pointers(quantized), dir).ok());
  auto broken = ReadJson(dir + "/config.json");
  broken["tie_word_embeddings"] = false;
  broken["num_hidden_layers"] = 3;  // a block the file does not have
  std::ofstream(dir + "/config.json") << broken.dump();
  auto s = GptqStream::Open(dir).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("model.layers.2."));
  fs::remove_all(dir);
}

TEST(GptqExportTest, DenseProjectionsStayDenseAndAreNotListed) {
  engine::LlamaModel model = TinyModel(/*tied=*/true);
  const auto quantized = testing::QuantizeProjections(&model, {8, -1, false}, {"down_proj"});
  const std::string dir = TempDir("dense");
  GptqExportOptions options;
  options.format = GptqCheckpointFormat::kGptqV2;
  auto stats = WriteGptqLlama(model, Pointers(quantized), dir, options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorInfo* down = (*file)->Find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dtype, DType::kF16);
  EXPECT_EQ((*file)->Find("model.layers.0.mlp.down_proj.qweight"), nullptr);
  EXPECT_EQ((*file)->Find("lm_head.weight"), nullptr);  // tied
  const TensorInfo* sc = (*file)->Find("model.layers.0.self_attn.q_proj.scales");
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(sc->shape, (std::vector<int64_t>{1, 64}));  // per-channel: one group
  const nlohmann::json config = ReadJson(dir + "/config.json");
  const nlohmann::json& qc = config["quantization_config"];
  EXPECT_EQ(qc["group_size"], -1);
  EXPECT_EQ(qc["sym"], false);
  EXPECT_EQ(qc["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(qc["modules_in_block_to_quantize"].dump(),
            R"([["self_attn.k_proj","self_attn.v_proj","self_attn.q_proj"],["self_attn.o_proj"],)"
            R"(["mlp.up_proj","mlp.gate_proj"]])");
  EXPECT_EQ(config["tie_word_embeddings"], true);
  fs::remove_all(dir);
}

TEST(GptqExportTest, ActOrderSetsDescActAndKeepsGroupIndex) {
  engine::LlamaModel model = TinyModel(/*tied=*/true);
  const auto quantized = testing::QuantizeProjectionsActOrder(&model, {3, 32, false});
  const std::string dir = TempDir("act");
  auto stats = WriteGptqLlama(model, Pointers(quantized), dir);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->desc_act);
  EXPECT_LT(stats->max_abs_diff, 1e-3);
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorInfo* gi = (*file)->Find("model.layers.1.mlp.down_proj.g_idx");
  ASSERT_NE(gi, nullptr);
  const auto* g = reinterpret_cast<const int32_t*>((*file)->Bytes(*gi).data());
  EXPECT_EQ(std::vector<int32_t>(g, g + 128),
            quantized.at("model.layers.1.mlp.down_proj.weight").group_index);
  const TensorInfo* qw = (*file)->Find("model.layers.1.mlp.down_proj.qweight");
  ASSERT_NE(qw, nullptr);
  EXPECT_EQ(qw->shape, (std::vector<int64_t>{128 * 3 / 32, 64}));
  const nlohmann::json config = ReadJson(dir + "/config.json");
  EXPECT_EQ(config["quantization_config"]["desc_act"], true);
  EXPECT_EQ(config["quantization_config"]["bits"], 3);
  fs::remove_all(dir);
}

absl::Status WriteError(engine::LlamaModel& model,
                        const std::map<std::string, const QuantizedTensor*>& q) {
  const std::string dir = TempDir("error");
  auto stats = WriteGptqLlama(model, q, dir);
  fs::remove_all(dir);
  return stats.status();
}

TEST(GptqExportTest, RejectsMixedGridsNamingTheFirstThatDiffers) {
  engine::LlamaModel model = TinyModel(false);
  auto quantized = testing::QuantizeProjections(&model, {4, 32, true});
  // Model order: layer 0 q, k, v, o, gate, up, down, then layer 1.
  std::vector<float> w(64 * 64, 0.01f);
  auto other = engine::QuantizeRtn(w.data(), 64, 64, {4, 64, true}, "x");
  ASSERT_TRUE(other.ok());
  quantized["model.layers.1.self_attn.o_proj.weight"] = *other;
  const absl::Status st = WriteError(model, Pointers(quantized));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("model.layers.1.self_attn.o_proj.weight: grid (bits 4, "
                                      "group_size 64"));
  EXPECT_THAT(st.message(), HasSubstr("model.layers.0.self_attn.q_proj.weight"));
}

TEST(GptqExportTest, RejectsBadTargets) {
  engine::LlamaModel model = TinyModel(false);
  auto quantized = testing::QuantizeProjections(&model, {4, 32, true});
  auto pointers = Pointers(quantized);

  auto uneven = pointers;
  uneven.erase("model.layers.1.mlp.gate_proj.weight");
  absl::Status st = WriteError(model, uneven);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("model.layers.1.mlp.gate_proj is not quantized"));

  auto head = pointers;
  head["lm_head.weight"] = pointers.begin()->second;
  st = WriteError(model, head);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("lm_head.weight: gptq output quantizes only"));

  auto unknown = pointers;
  unknown["model.layers.7.mlp.up_proj.weight"] = pointers.begin()->second;
  st = WriteError(model, unknown);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("model.layers.7.mlp.up_proj.weight: not a weight"));

  auto shape = pointers;
  shape["model.layers.0.self_attn.k_proj.weight"] =
      pointers.at("model.layers.0.self_attn.q_proj.weight");
  st = WriteError(model, shape);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("differs from the model's [32, 64]"));

  st = WriteError(model, {});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);

  engine::LlamaModel five = TinyModel(false);
  auto q5 = testing::QuantizeProjections(&five, {5, 32, true});
  st = WriteError(five, Pointers(q5));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("model.layers.0.self_attn.q_proj.weight: gptq output "
                                      "supports bits 2, 3, 4, 8, got 5"));
}

}  // namespace
}  // namespace compressd::engine

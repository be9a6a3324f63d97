// The compressed-tensors pack-quantized writer
// (workers/engine/export/compressed_tensors_export.h, through WriteGptqLlama
// and GptqStreamWriter with PackedLayout::kCompressedTensors): the packing
// read bit by bit, the checkpoint read back by GptqStream, the config, and
// what it refuses. tests/integration/compressed_tensors_e2e.sh checks the
// files with compressed-tensors and transformers themselves.
#include "workers/engine/export/compressed_tensors_export.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/packed_testing.h"
#include "tests/unit/engine/export/quantize_testing.h"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/gptq_stream_writer.h"
#include "workers/engine/export/packed_layer.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/gguf/gptq_stream.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::Pointers;
using testing::RandomQuantized;
using testing::ReadJson;
using testing::StreamField;
using testing::TempDir;
using testing::TinyModel;

GptqExportOptions CtOptions() {
  GptqExportOptions o;
  o.layout = PackedLayout::kCompressedTensors;
  return o;
}

// Block 1 of the checkpoint in `dir`, read back by GptqStream: every tensor of
// `quantized` dequantizes to its codes within `tol` (the float16 scales).
BlockWeights ExpectBlockReadsBack(const std::string& dir,
                                  const std::map<std::string, QuantizedTensor>& quantized,
                                  double tol) {
  absl::StatusOr<std::unique_ptr<GptqStream>> stream = GptqStream::Open(dir);
  EXPECT_TRUE(stream.ok()) << stream.status();
  if (!stream.ok()) return BlockWeights();
  absl::StatusOr<BlockWeights> block = (*stream)->LoadBlock(1);
  EXPECT_TRUE(block.ok()) << block.status();
  if (!block.ok()) return BlockWeights();
  for (const NamedTensor& t : BlockTensors((*stream)->config(), 1, &*block)) {
    auto it = quantized.find(t.name);
    if (it == quantized.end()) continue;
    std::vector<float> want(static_cast<size_t>(it->second.rows * it->second.cols));
    it->second.DequantizeTo(want.data());
    for (size_t i = 0; i < want.size(); ++i) {
      const float d = std::fabs(t.tensor->data[i] - want[i]);
      EXPECT_LE(d, tol + 1e-7) << t.name << " element " << i;
      if (d > tol + 1e-7) break;
    }
  }
  return *std::move(block);
}

// Every bit width: row o of weight_packed is the stream of row o's codes
// along the inputs (a field may straddle words, the last word zero-padded);
// zero points are streams along the outputs, column by column; scales are
// float16 in [out, groups].
TEST(CompressedTensorsPackTest, RowStreamsAlongInputsZerosAlongOutputs) {
  for (int bits = 2; bits <= 8; ++bits) {
    for (const bool sym : {true, false}) {
      const QuantizedTensor q = RandomQuantized(37, 96, {bits, 32, sym}, false, 7 + bits);
      absl::StatusOr<CtPackedTensor> p = PackCompressedTensor(q, "w");
      ASSERT_TRUE(p.ok()) << p.status();
      const int64_t row_words = (96 * bits + 31) / 32;
      ASSERT_EQ(p->weight_packed.size(), static_cast<size_t>(37 * row_words));
      for (int64_t r = 0; r < 37; ++r) {
        for (int64_t c = 0; c < 96; ++c) {
          ASSERT_EQ(StreamField(&p->weight_packed[r * row_words], 1, c, bits),
                    q.codes[r * 96 + c])
              << "bits " << bits << " [" << r << ", " << c << "]";
        }
        // The padding after the last field stays zero.
        for (int64_t c = 96; c < row_words * 32 / bits; ++c) {
          ASSERT_EQ(StreamField(&p->weight_packed[r * row_words], 1, c, bits), 0u);
        }
      }
      EXPECT_EQ(p->shape, (std::vector<int64_t>{37, 96}));
      for (int64_t r = 0; r < 37; ++r) {
        for (int64_t g = 0; g < 3; ++g) {
          EXPECT_EQ(p->scale[r * 3 + g], FloatToHalfRef(q.scales[r * 3 + g]));
          if (!sym) {
            EXPECT_EQ(StreamField(p->zero_point.data() + g, 3, r, bits),
                      static_cast<uint32_t>(q.zeros[r * 3 + g]));
          }
        }
      }
      EXPECT_EQ(p->zero_point.size(), sym ? 0u : static_cast<size_t>((37 * bits + 31) / 32 * 3));
      const std::vector<TensorToWrite> parts = CompressedTensors("m", *p);
      ASSERT_EQ(parts.size(), sym ? 3u : 4u);
      EXPECT_EQ(parts[0].name, "m.weight_packed");
      EXPECT_EQ(parts[0].shape, (std::vector<int64_t>{37, row_words}));
      EXPECT_EQ(parts.back().name, "m.weight_shape");
      EXPECT_EQ(parts.back().dtype, DType::kI64);
    }
  }
}

TEST(CompressedTensorsPackTest, RefusesWhatTheFormatCannotHold) {
  const auto error = [](const QuantizedTensor& q, const std::string& needle) {
    absl::Status s = PackCompressedTensor(q, "model.layers.0.mlp.up_proj.weight").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << needle;
    EXPECT_THAT(std::string(s.message()), HasSubstr(needle));
    EXPECT_THAT(std::string(s.message()), HasSubstr("model.layers.0.mlp.up_proj.weight"));
  };
  // Act-order groups in sweep order: the format would need g_idx.
  error(RandomQuantized(8, 64, {4, 32, true}, true, 1), "static_groups: true");
  QuantizedTensor partial = RandomQuantized(8, 64, {4, 32, true}, false, 2);
  partial.grid.group_size = 48;
  partial.groups = GroupCount(partial.grid, 64);
  partial.scales.resize(8 * partial.groups, 0.01f);
  partial.zeros.resize(8 * partial.groups, 8.0f);
  error(partial, "not a multiple of group_size 48");
  QuantizedTensor zero = RandomQuantized(8, 64, {4, 32, true}, false, 3);
  zero.zeros[5] = 7.0f;
  error(zero, "symmetric grid has zero 8");
  QuantizedTensor scale = RandomQuantized(8, 64, {4, 32, false}, false, 4);
  scale.scales[3] = 1e6f;
  error(scale, "float16");
}

TEST(CompressedTensorsExportTest, WritesConfigAndReadsBack) {
  for (const QuantGrid grid : {QuantGrid{4, 32, true}, QuantGrid{3, -1, false}}) {
    LlamaModel model = TinyModel(/*tied=*/false);
    // Everything but down_proj: it must be listed in `ignore`, with lm_head.
    const auto quantized = testing::QuantizeProjections(&model, grid, {"mlp.down_proj"});
    const std::string dir = TempDir("ct");
    absl::StatusOr<GptqExportStats> stats =
        WriteGptqLlama(model, Pointers(quantized), dir, CtOptions());
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->quantized_tensors, 12);
    const nlohmann::json q = ReadJson(dir + "/config.json")["quantization_config"];
    EXPECT_EQ(q["quant_method"], "compressed-tensors");
    EXPECT_EQ(q["format"], "pack-quantized");
    const nlohmann::json& w = q["config_groups"]["group_0"]["weights"];
    EXPECT_EQ(w["num_bits"], grid.bits);
    EXPECT_EQ(w["symmetric"], grid.symmetric);
    EXPECT_EQ(w["strategy"], grid.group_size > 0 ? "group" : "channel");
    EXPECT_EQ(q["ignore"], (nlohmann::json{"lm_head", "re:.*\\.mlp\\.down_proj$"}));

    ExpectBlockReadsBack(dir, quantized, stats->max_abs_diff);
    fs::remove_all(dir);
  }
}

// W8A8: int-quantized layers (int8 codes - 128, float16 scales [out, 1]),
// input_activations per token in the config; read back, every quantized
// linear dequantizes exactly and is marked to quantize its input, the ignored
// one (down_proj) is not.
TEST(CompressedTensorsExportTest, W8A8IsIntQuantizedAndReadsBackWithActivationQuantization) {
  LlamaModel model = TinyModel(/*tied=*/false);
  const auto quantized = testing::QuantizeProjections(&model, {8, -1, true}, {"mlp.down_proj"});
  const std::string dir = TempDir("ct_w8a8");
  GptqExportOptions options = CtOptions();
  options.activation_bits = 8;
  absl::StatusOr<GptqExportStats> stats = WriteGptqLlama(model, Pointers(quantized), dir, options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  const nlohmann::json q = ReadJson(dir + "/config.json")["quantization_config"];
  EXPECT_EQ(q["format"], "int-quantized");
  const nlohmann::json& g = q["config_groups"]["group_0"];
  EXPECT_EQ(g["format"], "int-quantized");
  EXPECT_EQ(g["weights"]["strategy"], "channel");
  EXPECT_EQ(g["input_activations"]["num_bits"], 8);
  EXPECT_EQ(g["input_activations"]["strategy"], "token");
  EXPECT_EQ(g["input_activations"]["dynamic"], true);

  const QuantizedTensor& qp = quantized.at("model.layers.0.self_attn.q_proj.weight");
  absl::StatusOr<CtPackedTensor> p = PackCompressedTensor(qp, "q", /*int_quantized=*/true);
  ASSERT_TRUE(p.ok()) << p.status();
  for (size_t i = 0; i < qp.codes.size(); ++i) {
    ASSERT_EQ(int{p->weight[i]}, int{qp.codes[i]} - 128) << i;
  }
  const std::vector<TensorToWrite> parts = CompressedTensors("m", *p);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].dtype, DType::kI8);
  EXPECT_EQ(parts[1].shape, (std::vector<int64_t>{qp.rows, 1}));
  absl::Status refused =
      PackCompressedTensor(RandomQuantized(8, 64, {4, 32, true}, false, 5), "w", true).status();
  EXPECT_THAT(std::string(refused.message()), HasSubstr("W8A8 (int-quantized) needs int8"));

  const BlockWeights block = ExpectBlockReadsBack(dir, quantized, stats->max_abs_diff);
  EXPECT_EQ(block.act_quant,
            kActQProj | kActKProj | kActVProj | kActOProj | kActGateProj | kActUpProj);
  fs::remove_all(dir);
}

// FP8: float-quantized layers (E4M3 bytes, float16 scales [out, 1]; exact:
// the grid's scales are float16 already), with input_activations type float
// per token for fp8 W8A8 and none weight-only; read back exactly, marked to
// quantize their inputs to E4M3 only with activations.
TEST(CompressedTensorsExportTest, Fp8IsFloatQuantizedAndReadsBackExactly) {
  for (const int activation_bits : {8, 0}) {
    LlamaModel model = TinyModel(/*tied=*/false);
    QuantGrid grid{8, -1, true};
    grid.fp8 = true;
    const auto quantized = testing::QuantizeProjections(&model, grid, {"mlp.down_proj"});
    const std::string dir = TempDir("ct_fp8");
    GptqExportOptions options = CtOptions();
    options.activation_bits = activation_bits;
    absl::StatusOr<GptqExportStats> stats =
        WriteGptqLlama(model, Pointers(quantized), dir, options);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->max_abs_diff, 0.0);
    const nlohmann::json q = ReadJson(dir + "/config.json")["quantization_config"];
    EXPECT_EQ(q["format"], "float-quantized");
    const nlohmann::json& g = q["config_groups"]["group_0"];
    EXPECT_EQ(g["weights"]["type"], "float");
    EXPECT_EQ(g["weights"]["num_bits"], 8);
    EXPECT_EQ(g["weights"]["strategy"], "channel");
    if (activation_bits > 0) {
      EXPECT_EQ(g["input_activations"]["type"], "float");
      EXPECT_EQ(g["input_activations"]["strategy"], "token");
      EXPECT_EQ(g["input_activations"]["dynamic"], true);
    } else {
      EXPECT_TRUE(g["input_activations"].is_null());
    }
    const QuantizedTensor& qp = quantized.at("model.layers.0.self_attn.q_proj.weight");
    absl::StatusOr<CtPackedTensor> p = PackCompressedTensor(qp, "q");
    ASSERT_TRUE(p.ok()) << p.status();
    for (size_t i = 0; i < qp.codes.size(); ++i) {
      ASSERT_EQ(static_cast<uint8_t>(p->weight[i]), qp.codes[i]) << i;
    }
    const std::vector<TensorToWrite> parts = CompressedTensors("m", *p);
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[0].dtype, DType::kF8E4M3);
    EXPECT_EQ(parts[1].dtype, DType::kF16);
    EXPECT_EQ(parts[1].shape, (std::vector<int64_t>{qp.rows, 1}));

    const BlockWeights block = ExpectBlockReadsBack(dir, quantized, 0.0);
    EXPECT_EQ(block.act_quant, activation_bits > 0 ? kActQProj | kActKProj | kActVProj | kActOProj |
                                                         kActGateProj | kActUpProj
                                                   : 0u);
    EXPECT_TRUE(block.act_fp8);
    GptqExportOptions gptq;
    EXPECT_THAT(std::string(WriteGptqLlama(model, Pointers(quantized), TempDir("gptq_fp8"), gptq)
                                .status()
                                .message()),
                HasSubstr("an fp8 (E4M3) grid has no GPTQ layout"));
    fs::remove_all(dir);
  }
}

// The block-at-a-time writer gives the same files as the whole-model one.
TEST(CompressedTensorsExportTest, StreamWriterWritesTheSameFiles) {
  LlamaModel model = TinyModel(/*tied=*/true);
  const auto quantized = testing::QuantizeProjections(&model, {4, 32, false});
  const std::string whole = TempDir("ct_whole"), streamed = TempDir("ct_stream");
  ASSERT_TRUE(WriteGptqLlama(model, Pointers(quantized), whole, CtOptions()).ok());
  GptqStreamWriter writer(model.config, streamed, CtOptions());
  for (int b = 0; b < 2; ++b) {
    ASSERT_TRUE(writer.WriteBlock(b, BlockTensors(model.config, b, &model.blocks[b]),
                                  Pointers(quantized)).ok());
  }
  for (const NamedTensor& t : NamedTensors(&model)) {
    if (t.name.rfind("model.layers.", 0) == 0) continue;
    ASSERT_TRUE(writer.WriteDense(t.name, 0, t.tensor->data, t.tensor->numel()).ok()) << t.name;
  }
  ASSERT_TRUE(writer.Finish().ok());
  for (const std::string f : {"/config.json", "/model.safetensors"}) {
    std::ifstream a(whole + f, std::ios::binary), b(streamed + f, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}),
              std::string(std::istreambuf_iterator<char>(b), {}))
        << f;
  }
  fs::remove_all(whole);
  fs::remove_all(streamed);
}

// transformers reads per-expert pack-quantized weights without zero points:
// a mixture of experts must be on a symmetric grid (family_e2e writes and
// loads the symmetric ones).
TEST(CompressedTensorsExportTest, RefusesAsymmetricExperts) {
  LlamaConfig config = TinyModel(/*tied=*/true).config;
  config.n_experts = 4;
  using gptq_export_internal::CheckPackable;
  EXPECT_TRUE(CheckPackable(config, PackedLayout::kCompressedTensors, true).ok());
  EXPECT_TRUE(CheckPackable(config, PackedLayout::kGptq, false).ok());
  absl::Status s = CheckPackable(config, PackedLayout::kCompressedTensors, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("needs a symmetric grid"));
}

}  // namespace
}  // namespace compressd::engine

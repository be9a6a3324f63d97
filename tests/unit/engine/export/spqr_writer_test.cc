// The spqr output (export/spqr_writer.h, model/spqr_format.h) read back by
// SpqrStream (model/gguf/spqr_stream.h): SpQR modules decode bit-exactly to
// the solver's weights, the rest to float16; the stored bits are what
// SpqrStoredBits counts; a damaged file is refused naming the tensor.
// tests/python/check_spqr.py decodes the same files independently
// (tests/integration/real_model_spqr_e2e.sh).
#include "workers/engine/export/spqr_writer.h"

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/algorithms/solver_testing.h"
#include "tests/unit/engine/export/packed_testing.h"
#include "tests/unit/engine/export/quantize_testing.h"
#include "workers/engine/algorithms/spqr.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/gguf/spqr_stream.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/spqr_format.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
namespace et = compressd::testing;  // the export tests' helpers
using ::testing::HasSubstr;

float Half(float x) { return HalfToFloatRef(FloatToHalfRef(x)); }

// The tiny model with every projection of every block SpQR-quantized but
// block 1's down_proj (left dense, as an override's skip leaves it). `fused`:
// as Phi-3, whose checkpoint fuses q/k/v and gate/up; the linears of a block
// that read the same inputs share their Hessian, as in a real job.
struct Quantized {
  LlamaModel model = et::TinyModel(/*tied=*/true);
  std::map<std::string, QuantizedTensor> q;
};

Quantized QuantizeAll(bool fused = false) {
  Quantized out;
  if (fused) {
    out.model.config.model_type = "phi3";
    out.model.config.fused_projections = true;
  }
  for (int i = 0; i < out.model.config.n_layers; ++i) {
    std::map<int64_t, testing::Layer> inputs;  // fused: one Hessian per input width
    for (const NamedTensor& t : BlockTensors(out.model.config, i, &out.model.blocks[i])) {
      if (t.tensor->shape.size() != 2 || t.name == "model.layers.1.mlp.down_proj.weight") continue;
      const int64_t rows = t.tensor->shape[0], cols = t.tensor->shape[1];
      const testing::Layer l =
          fused
              ? inputs.try_emplace(cols, testing::RandomLayer(8, cols, 256, cols + i)).first->second
              : testing::RandomLayer(rows, cols, 256, static_cast<uint32_t>(rows + i));
      SpqrOptions o;
      o.stat_group = 8;
      std::vector<float> w(t.tensor->data, t.tensor->data + rows * cols);
      auto r = Spqr(w.data(), rows, cols, l.h.data(), o, t.name);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) continue;
      *t.tensor = Tensor::Owned(t.tensor->shape, std::move(w));
      out.q[t.name] = std::move(*r->quantized);
    }
  }
  return out;
}

// The bits a fused module's later part does not store again: its sweep order
// and the last entry of its outlier row pointers.
uint64_t SharedBits(const QuantizedTensor& q) {
  return static_cast<uint64_t>(q.cols) * (SpqrNarrowIndex(q.cols) ? 16 : 32) + 32;
}

std::string Write(Quantized& m, const std::string& tag) {
  const std::string dir = et::TempDir(tag);
  fs::remove_all(dir);
  auto writer = SpqrWriter::Create(m.model.config, dir);
  EXPECT_TRUE(writer.ok()) << writer.status();
  for (int i = 0; i < m.model.config.n_layers; ++i) {
    EXPECT_TRUE(
        (*writer)
            ->WriteBlock(i, BlockTensors(m.model.config, i, &m.model.blocks[i]), et::Pointers(m.q))
            .ok());
  }
  for (const NamedTensor& t : NamedTensors(&m.model)) {
    if (t.name.rfind("model.layers.", 0) == 0) continue;
    EXPECT_TRUE((*writer)->WriteDense(t.name, 0, t.tensor->data, t.tensor->numel()).ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  // A fused module stores its parts' bits but one sweep order for all, and
  // one outlier row pointer array (rows + 1 entries) instead of one per part.
  uint64_t bits = 0;
  std::map<std::string, int> parts;  // by stored module
  for (const auto& [name, q] : m.q) {
    bits += SpqrStoredBits(q);
    if (++parts[StoredPlaceOf(m.model.config, name, {q.rows, q.cols}).name] > 1) {
      bits -= SharedBits(q);
    }
  }
  EXPECT_EQ((*writer)->stats().spqr_bits, bits);
  EXPECT_EQ((*writer)->stats().spqr_tensors, static_cast<int64_t>(parts.size()));
  return dir;
}

// Unfused, and fused as Phi-3 stores q/k/v and gate/up (one module each).
class SpqrRoundTrip : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Fused, SpqrRoundTrip, ::testing::Bool());

TEST_P(SpqrRoundTrip, ReadsBackExactlyThroughSpqrStream) {
  Quantized m = QuantizeAll(/*fused=*/GetParam());
  ASSERT_EQ(m.q.size(), 13u);
  const std::string dir = Write(m, GetParam() ? "spqr_roundtrip_fused" : "spqr_roundtrip");
  auto stream = SpqrStream::Open(dir);
  ASSERT_TRUE(stream.ok()) << stream.status();
  for (int i = 0; i < m.model.config.n_layers; ++i) {
    auto block = (*stream)->LoadBlock(i);
    ASSERT_TRUE(block.ok()) << block.status();
    const std::vector<NamedTensor> want = BlockTensors(m.model.config, i, &m.model.blocks[i]);
    const std::vector<NamedTensor> got = BlockTensors((*stream)->config(), i, &*block);
    ASSERT_EQ(want.size(), got.size());
    for (size_t k = 0; k < want.size(); ++k) {
      const bool spqr = m.q.count(want[k].name) > 0;
      for (int64_t j = 0; j < want[k].tensor->numel(); ++j) {
        const float w = want[k].tensor->data[j];
        ASSERT_EQ(got[k].tensor->data[j], spqr ? w : Half(w)) << want[k].name << " " << j;
      }
    }
  }
  auto embed = (*stream)->LoadTensor("model.embed_tokens.weight");
  ASSERT_TRUE(embed.ok()) << embed.status();
  EXPECT_EQ(embed->data[5], Half(m.model.embed_tokens.data[5]));
  // The parts on disk are the bits counted.
  auto file = SafetensorsFile::Open(dir + "/" + SpqrBlockFile(0));
  ASSERT_TRUE(file.ok());
  const std::string module =
      GetParam() ? "model.layers.0.self_attn.qkv_proj" : "model.layers.0.self_attn.q_proj";
  uint64_t bytes = 0;
  for (const TensorInfo& t : (*file)->tensors()) {
    if (t.name.rfind(module + ".spqr.", 0) == 0) bytes += t.nbytes();
  }
  const QuantizedTensor& q = m.q.at("model.layers.0.self_attn.q_proj.weight");
  uint64_t want = SpqrStoredBits(q);
  if (GetParam()) {  // and k's and v's, less what they share with q
    for (const char* part : {"k_proj", "v_proj"}) {
      want += SpqrStoredBits(m.q.at(absl::StrCat("model.layers.0.self_attn.", part, ".weight"))) -
              SharedBits(q);
    }
  }
  EXPECT_EQ(bytes * 8, want);
  EXPECT_EQ((*file)->metadata().count("model.layers.0.self_attn.q_proj"), GetParam() ? 0u : 1u);
  fs::remove_all(dir);
}

// Rewrites block 0's file with `edit` applied to its tensors.
void EditBlock0(const std::string& dir,
                const std::function<void(std::map<std::string, std::string>*)>& edit) {
  const std::string path = dir + "/" + SpqrBlockFile(0);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  std::map<std::string, std::string> bytes;
  std::map<std::string, const TensorInfo*> info;
  for (const TensorInfo& t : (*file)->tensors()) {
    bytes[t.name] = std::string((*file)->Bytes(t));
    info[t.name] = &t;
  }
  edit(&bytes);
  std::vector<TensorToWrite> out;
  for (const auto& [name, b] : bytes) {
    out.push_back({name, info.at(name)->dtype, info.at(name)->shape, b});
  }
  const std::map<std::string, std::string> metadata = (*file)->metadata();
  file->reset();
  ASSERT_TRUE(WriteSafetensors(path, std::move(out), metadata).ok());
}

TEST(SpqrWriterTest, DamagedFilesAreRefusedNamingTheTensor) {
  Quantized m = QuantizeAll();
  const std::string dir = Write(m, "spqr_damaged");
  const std::string part = "model.layers.0.mlp.up_proj.spqr.outlier_values";
  EditBlock0(dir, [&](std::map<std::string, std::string>* b) { b->erase(part); });
  auto missing = SpqrStream::Open(dir);
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr(part + "\" is missing"));

  fs::remove_all(dir);
  const std::string dir2 = Write(m, "spqr_damaged_perm");
  const std::string perm = "model.layers.0.self_attn.k_proj.spqr.perm";
  EditBlock0(dir2, [&](std::map<std::string, std::string>* b) { (*b)[perm][2] = (*b)[perm][0]; });
  auto stream = SpqrStream::Open(dir2);
  ASSERT_TRUE(stream.ok()) << stream.status();
  auto block = (*stream)->LoadBlock(0);
  ASSERT_EQ(block.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(block.status().message(), HasSubstr(perm + "\": entry 1"));
  fs::remove_all(dir2);
}

// A fused module's parts must share their sweep order and have whole
// statistics groups; a recipe whose stat_group splits a part is refused
// before the job runs.
TEST(SpqrWriterTest, FusedPartsThatCannotShareOneModuleAreRefused) {
  Quantized m = QuantizeAll(/*fused=*/true);
  const std::string k = "model.layers.0.self_attn.k_proj.weight";
  std::swap(m.q.at(k).spqr->perm[0], m.q.at(k).spqr->perm[1]);
  auto writer = SpqrWriter::Create(m.model.config, et::TempDir("spqr_fused_bad"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  const absl::Status s = (*writer)->WriteBlock(
      0, BlockTensors(m.model.config, 0, &m.model.blocks[0]), et::Pointers(m.q));
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("model.layers.0.self_attn.qkv_proj.weight (stored fused): " +
                                     k + " has another sweep order than"));

  const int64_t k_rows = m.model.blocks[0].k_proj.shape[0];
  EXPECT_TRUE(CheckSpqrExportable(m.model.config, {16, k_rows}).ok());
  const absl::Status odd = CheckSpqrExportable(m.model.config, {k_rows + 1});
  ASSERT_EQ(odd.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(odd.message(), HasSubstr("not a multiple of spqr.stat_group"));
}

TEST(SpqrFormatTest, PackBitsRoundTripsAnyWidth) {
  std::vector<uint8_t> v(37);
  for (int bits = 2; bits <= 8; ++bits) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>((i * 7 + bits) % (1 << bits));
    const std::string packed = PackBits(v.data(), 37, bits);
    EXPECT_EQ(packed.size(), static_cast<size_t>((37 * bits + 7) / 8));
    std::vector<uint8_t> back(37);
    UnpackBits(packed.data(), 37, bits, back.data());
    EXPECT_EQ(back, v) << bits;
  }
  const uint8_t three[] = {5, 3};  // 101, 011 lowest bit first: 0b011101
  EXPECT_EQ(PackBits(three, 2, 3), std::string(1, static_cast<char>(0x1d)));
}

}  // namespace
}  // namespace compressd::engine

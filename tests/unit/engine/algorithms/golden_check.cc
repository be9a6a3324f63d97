// The solvers against tests/golden/algo_reference.py (independent PyTorch
// GPTQ / SparseGPT / RTN / Wanda) on real SmolLM2-135M layers: W and
// H = 2 X X^T / n captured on calib-sotu (tests/golden/algo_capture.py),
// outputs by tests/golden/algo_fixtures.py.
//
// Tolerances (float32 on both sides; BLAS and summation order differ, so a
// rounding tie can flip a code or a mask entry and the error propagation then
// moves later weights by a rounding-sized amount):
//   masks and codes: >= 99.9% of entries identical; Wanda (no update) and RTN:
//     100% (the real weights hold exact zeros, so a mask is compared as such,
//     not read back from the pruned weights);
//   relative reconstruction error: within 1% of the reference's;
//   float weights (SparseGPT without quantization): >= 99.9% of entries within
//     1e-3 * max|W| of the reference.
#include "tests/unit/engine/algorithms/golden_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/algorithms/sparsegpt.h"
#include "workers/engine/algorithms/wanda.h"

namespace compressd::engine::testing {
namespace {

using nlohmann::json;

constexpr double kAgreement = 0.999;
constexpr double kErrorRel = 0.01;

// What our solver produced for one configuration.
struct Output {
  std::vector<float> w;
  std::vector<uint8_t> mask;  // 1 = pruned
  std::optional<QuantizedTensor> q;
};

QuantGrid Grid(const json& c) {
  return {c.at("bits").get<int>(), c.at("group").get<int64_t>(), c.at("sym").get<bool>(),
          c.value("scale_bits", 0), c.value("fp8", false)};
}

absl::StatusOr<Output> RunSparseGpt(const GoldenLayer& g, const json& c, std::vector<float> w,
                                    SolverBackend* solver) {
  SparseGptOptions o;
  o.sparsity = c.at("sparsity").get<double>();
  o.nm_n = c.at("n").get<int>();
  o.nm_m = c.at("m").get<int>();
  o.mask_scope = c.at("scope") == "row" ? MaskScope::kRow : MaskScope::kBlock;
  if (c.contains("quant")) o.grid = Grid(c.at("quant"));
  o.threads = 2;
  o.solver = solver;
  const auto& l = g.layer;
  auto r = SparseGpt(w.data(), l.rows, l.cols, l.h.data(), o, g.name);
  if (!r.ok()) return r.status();
  return Output{std::move(w), std::move(r->pruned), std::move(r->quantized)};
}

absl::StatusOr<Output> Run(const GoldenLayer& g, const json& c, SolverBackend* backend) {
  const auto& l = g.layer;
  const std::string solver = c.at("solver");
  std::vector<float> w = l.w;
  if (solver == "sparsegpt") return RunSparseGpt(g, c, std::move(w), backend);
  if (solver == "wanda") {
    const std::vector<float> norms = InputNormsFromHessian(l.h.data(), l.cols);
    WandaOptions o{c.at("sparsity").get<double>(), c.at("n").get<int>(), c.at("m").get<int>()};
    const absl::Status s = PruneWanda(w.data(), l.rows, l.cols, norms.data(), o, g.name);
    if (!s.ok()) return s;
    return Output{std::move(w), {}, std::nullopt};
  }
  if (solver == "rtn") {
    auto q = QuantizeRtn(w.data(), l.rows, l.cols, Grid(c), g.name);
    if (!q.ok()) return q.status();
    return Output{std::move(w), {}, std::move(*q)};
  }
  Output out;
  if (solver == "sparsegpt+gptq") {
    auto pruned = RunSparseGpt(g, c, std::move(w), backend);
    if (!pruned.ok()) return pruned.status();
    w = std::move(pruned->w);
    out.mask = std::move(pruned->mask);
  }
  std::vector<float> h = l.h;
  for (const auto& j : c.value("dead", json::array())) {
    for (int64_t i = 0; i < l.cols; ++i) h[j.get<int64_t>() * l.cols + i] = 0.0f;
    for (int64_t i = 0; i < l.cols; ++i) h[i * l.cols + j.get<int64_t>()] = 0.0f;
  }
  GptqOptions o;
  o.grid = Grid(c);
  o.act_order = c.value("act_order", false);
  o.static_groups = c.value("static_groups", false);
  o.threads = 2;
  o.solver = backend;
  auto r = Gptq(w.data(), l.rows, l.cols, h.data(), o, g.name);
  if (!r.ok()) return r.status();
  out.w = std::move(w);
  out.q = std::move(r->quantized);
  return out;
}

void CheckQuantized(const GoldenLayer& g, const json& c, const QuantizedTensor& q) {
  auto codes = GoldenArray<uint8_t>(g, c, "codes");
  auto scales = GoldenArray<float>(g, c, "scales");
  ASSERT_TRUE(codes.ok() && scales.ok());
  const double need = c.at("solver") == "rtn" ? 1.0 : kAgreement;
  EXPECT_GE(Agreement(q.codes, *codes), need);
  ASSERT_EQ(q.scales.size(), scales->size());
  int64_t close = 0;
  for (size_t i = 0; i < scales->size(); ++i) {
    close += std::fabs(q.scales[i] - (*scales)[i]) <= 1e-4f * std::fabs((*scales)[i]);
  }
  EXPECT_GE(static_cast<double>(close) / scales->size(), 0.99) << "scales";
  if (c.at("arrays").contains("zeros")) {  // fractional on an asymmetric lattice
    auto zeros = GoldenArray<float>(g, c, "zeros");
    ASSERT_TRUE(zeros.ok() && zeros->size() == q.zeros.size());
    close = 0;
    for (size_t i = 0; i < zeros->size(); ++i) {
      close += std::fabs(q.zeros[i] - (*zeros)[i]) <= 1e-4f * (1.0f + std::fabs((*zeros)[i]));
    }
    EXPECT_GE(static_cast<double>(close) / zeros->size(), 0.99) << "zeros";
  }
  if (c.at("arrays").contains("gidx")) {
    auto gidx = GoldenArray<int32_t>(g, c, "gidx");
    ASSERT_TRUE(gidx.ok());
    EXPECT_EQ(q.group_index, *gidx);
  }
}

}  // namespace

void CheckGoldenConfig(const GoldenLayer& g, const json& c, SolverBackend* solver) {
  SCOPED_TRACE(g.name + " " + c.at("name").get<std::string>() + " on " +
               (solver != nullptr ? solver->name() : std::string("cpu")));
  if (solver != nullptr && c.value("scale_bits", 0) > 0 &&
      (!c.value("static_groups", false) || !c.at("sym").get<bool>())) {
    std::printf("%-14s %-26s not on %s: scale_bits during the sweep or asymmetric is CPU-only\n",
                g.name.c_str(), c.at("name").get<std::string>().c_str(), solver->name().c_str());
    return;
  }
  if (solver != nullptr && c.value("fp8", false)) {
    std::printf("%-14s %-26s not on %s: fp8 grids are CPU-only\n", g.name.c_str(),
                c.at("name").get<std::string>().c_str(), solver->name().c_str());
    return;
  }
  auto out = Run(g, c, solver);
  ASSERT_TRUE(out.ok()) << out.status();
  const auto& l = g.layer;
  const double err =
      RelativeReconstructionError(l.w.data(), out->w.data(), l.h.data(), l.rows, l.cols);
  const double ref_err = c.at("rel_error").get<double>();
  EXPECT_NEAR(err, ref_err, kErrorRel * ref_err) << "relative reconstruction error";
  std::string line = absl::StrFormat("%-14s %-26s err %.6f ref %.6f (%+.3f%%)", g.name,
                                     c.at("name").get<std::string>(), err, ref_err,
                                     100.0 * (err - ref_err) / ref_err);
  const json& arrays = c.at("arrays");
  if (c.at("solver") == "wanda") {  // no update: exactly W with the mask applied
    auto mask = GoldenArray<uint8_t>(g, c, "mask");
    ASSERT_TRUE(mask.ok()) << mask.status();
    std::vector<float> expect = l.w;
    for (size_t i = 0; i < expect.size(); ++i) expect[i] = (*mask)[i] ? 0.0f : expect[i];
    EXPECT_EQ(Agreement(out->w, expect), 1.0);
  } else if (arrays.contains("mask")) {
    auto mask = GoldenArray<uint8_t>(g, c, "mask");
    ASSERT_TRUE(mask.ok()) << mask.status();
    EXPECT_GE(Agreement(out->mask, *mask), kAgreement);
    absl::StrAppendFormat(&line, " mask %.5f", Agreement(out->mask, *mask));
    if (c.at("solver") == "sparsegpt+gptq") {  // the GPTQ stage keeps the mask exactly
      for (size_t i = 0; i < out->w.size(); ++i) {
        if (out->mask[i]) {
          ASSERT_EQ(out->w[i], 0.0f) << i;
        }
      }
    }
  }
  if (arrays.contains("codes")) {
    ASSERT_TRUE(out->q.has_value());
    CheckQuantized(g, c, *out->q);
    auto codes = GoldenArray<uint8_t>(g, c, "codes");
    if (codes.ok()) absl::StrAppendFormat(&line, " codes %.5f", Agreement(out->q->codes, *codes));
  }
  std::printf("%s\n", line.c_str());
  if (arrays.contains("values")) {
    auto values = GoldenArray<float>(g, c, "values");
    ASSERT_TRUE(values.ok());
    float wmax = 0.0f;
    for (float v : l.w) wmax = std::max(wmax, std::fabs(v));
    int64_t close = 0;
    for (size_t i = 0; i < values->size(); ++i) {
      close += std::fabs(out->w[i] - (*values)[i]) <= 1e-3f * wmax;
    }
    EXPECT_GE(static_cast<double>(close) / values->size(), kAgreement) << "weights";
  }
}

}  // namespace compressd::engine::testing

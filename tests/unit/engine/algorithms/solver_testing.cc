#include "tests/unit/engine/algorithms/solver_testing.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "workers/engine/algorithms/hessian.h"

namespace compressd::engine::testing {

Layer RandomLayer(int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Layer l;
  l.rows = rows;
  l.cols = cols;
  l.w.resize(rows * cols);
  for (float& v : l.w) v = normal(rng);
  std::vector<float> a(cols * cols);
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j)
      a[i * cols + j] = (i == j ? 1.0f : 0.0f) + 0.1f * normal(rng);
  }
  std::vector<float> x(tokens * cols, 0.0f);
  std::vector<float> z(cols);
  for (int64_t t = 0; t < tokens; ++t) {
    for (float& v : z) v = normal(rng);
    for (int64_t k = 0; k < cols; ++k) {
      for (int64_t j = 0; j < cols; ++j) x[t * cols + j] += z[k] * a[k * cols + j];
    }
    for (int64_t j = 0; j < cols; j += 7) x[t * cols + j] *= 5.0f;  // outlier inputs
  }
  l.h = HessianRef(x.data(), tokens, cols);
  return l;
}

namespace {

float Saliency(float w, float d) { return (w * w) / (d * d); }

// Indices of [0, n) by (score, index): the k lowest.
std::vector<int64_t> LowestStable(const std::vector<float>& score, int64_t k) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return score[a] < score[b]; });
  order.resize(k);
  return order;
}

int64_t Count(int64_t n, double sparsity) {
  return std::min<int64_t>(n, static_cast<int64_t>(std::floor(sparsity * n + 0.5)));
}

}  // namespace

void ObsSweepRef(const SweepOptions& o, SweepState* s) {
  const int64_t rows = s->rows, cols = s->cols;
  int64_t block = o.block_size;
  const SweepPruning& pr = o.pruning;
  if (pr.kind == SweepPruning::Kind::kNM) block -= block % pr.m;
  if (s->pruned.empty()) s->pruned.assign(rows * cols, 0);
  const int64_t groups = o.grid ? GroupCount(*o.grid, cols) : 0;
  const int64_t g = o.grid ? o.grid->group_size : 0;
  if (o.grid) {
    s->codes.assign(rows * cols, 0);
    if (!o.static_grids) {
      s->scales.assign(rows * groups, 0.0f);
      s->zeros.assign(rows * groups, 0.0f);
      s->group_of.resize(cols);
      for (int64_t p = 0; p < cols; ++p) s->group_of[p] = g > 0 ? static_cast<int32_t>(p / g) : 0;
    }
  }
  auto W = [&](int64_t r, int64_t c) -> float& { return s->w[r * cols + c]; };
  auto U = [&](int64_t i, int64_t j) { return s->u[i * cols + j]; };
  const int64_t dyn = o.grid && !o.static_grids ? std::max<int64_t>(g, 0) : 0;
  for (const auto& [i1, i2] : SweepBlocks(cols, block, dyn)) {
    const int64_t count = i2 - i1;
    if (pr.kind == SweepPruning::Kind::kBlock || pr.kind == SweepPruning::Kind::kRow) {
      const bool per_row = pr.kind == SweepPruning::Kind::kRow;
      for (int64_t r0 = 0; r0 < rows; r0 += per_row ? 1 : rows) {
        const int64_t nr = per_row ? 1 : rows;
        std::vector<float> score;
        for (int64_t r = r0; r < r0 + nr; ++r) {
          for (int64_t c = i1; c < i2; ++c) score.push_back(Saliency(W(r, c), U(c, c)));
        }
        for (int64_t idx : LowestStable(score, Count(nr * count, pr.sparsity))) {
          s->pruned[(r0 + idx / count) * cols + i1 + idx % count] = 1;
        }
      }
    }
    for (int64_t p = i1; p < i2; ++p) {
      for (int64_t r = 0; r < rows; ++r) {
        if (pr.kind == SweepPruning::Kind::kNM && p % pr.m == 0) {
          std::vector<float> score;
          for (int j = 0; j < pr.m; ++j) score.push_back(Saliency(W(r, p + j), U(p + j, p + j)));
          for (int64_t j : LowestStable(score, pr.m - pr.n)) s->pruned[r * cols + p + j] = 1;
        }
        const bool pruned = s->pruned[r * cols + p];
        float q = pruned ? 0.0f : W(r, p);
        if (o.grid) {
          const int64_t k = r * groups + s->group_of[p];
          if (!o.static_grids && (g > 0 ? p % g == 0 : p == 0)) {
            const int64_t span = g > 0 ? std::min(g, cols - p) : cols;
            const GridParam gp = FindGridParam(&W(r, p), span, &s->pruned[r * cols + p],
                                               o.grid->bits, o.grid->symmetric);
            s->scales[k] = gp.scale;
            s->zeros[k] = gp.zero;
          }
          const GridParam gp{s->scales[k], s->zeros[k]};
          const float code = QuantizeCode(q, gp, MaxQ(o.grid->bits));
          s->codes[r * cols + p] = static_cast<uint8_t>(code);
          q = Dequantize(code, gp);
        }
        const float e = (W(r, p) - q) / U(p, p);
        for (int64_t j = p + 1; j < cols; ++j) W(r, j) -= e * U(p, j);
        W(r, p) = q;
      }
    }
  }
}

std::string SourceDir() {
  const char* src = std::getenv("COMPRESSD_SOURCE_DIR");
  return src != nullptr ? src : ".";
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<GoldenLayer> LoadGoldenLayer(const std::string& name) {
  const std::string stem = SourceDir() + "/tests/golden/fixtures/algo_" + name;
  GoldenLayer g;
  g.name = name;
  auto meta_text = ReadFile(stem + ".json");
  auto bin = ReadFile(stem + ".bin");
  auto exp_text = ReadFile(stem + "_expected.json");
  auto exp_bin = ReadFile(stem + "_expected.bin");
  for (const auto* s : {&meta_text, &bin, &exp_text, &exp_bin}) {
    if (!s->ok()) return s->status();
  }
  const nlohmann::json meta = nlohmann::json::parse(*meta_text, nullptr, false);
  const nlohmann::json exp = nlohmann::json::parse(*exp_text, nullptr, false);
  if (meta.is_discarded() || exp.is_discarded() || !exp.contains("configs")) {
    return absl::InvalidArgumentError(absl::StrCat(stem, ": bad fixture JSON"));
  }
  g.layer.rows = meta.at("rows").get<int64_t>();
  g.layer.cols = meta.at("cols").get<int64_t>();
  const int64_t nw = g.layer.rows * g.layer.cols, nh = g.layer.cols * g.layer.cols;
  if (static_cast<int64_t>(bin->size()) != 4 * (nw + nh)) {
    return absl::InvalidArgumentError(
        absl::StrCat(stem, ".bin: size ", bin->size(), " does not match the JSON shapes"));
  }
  g.layer.w.resize(nw);
  g.layer.h.resize(nh);
  std::memcpy(g.layer.w.data(), bin->data(), 4 * nw);
  std::memcpy(g.layer.h.data(), bin->data() + 4 * nw, 4 * nh);
  g.configs = exp.at("configs");
  g.blob = std::move(*exp_bin);
  return g;
}

template <typename T>
absl::StatusOr<std::vector<T>> GoldenArray(const GoldenLayer& g, const nlohmann::json& config,
                                           const std::string& what) {
  if (!config.contains("arrays") || !config["arrays"].contains(what)) {
    return absl::NotFoundError(absl::StrCat(g.name, ": config has no array ", what));
  }
  const nlohmann::json& a = config["arrays"][what];
  const std::string dtype = a.at("dtype").get<std::string>();
  const size_t offset = a.at("offset").get<size_t>();
  size_t n = 1;
  for (const auto& d : a.at("shape")) n *= d.get<size_t>();
  const size_t width = dtype == "bits" ? 0 : dtype == "u1" ? 1 : 4;
  const size_t bytes = dtype == "bits" ? (n + 7) / 8 : n * width;
  if (offset + bytes > g.blob.size()) {
    return absl::InvalidArgumentError(absl::StrCat(g.name, ": array ", what, " out of range"));
  }
  const char* p = g.blob.data() + offset;
  std::vector<T> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == "bits") {
      out[i] = static_cast<T>((static_cast<uint8_t>(p[i / 8]) >> (7 - i % 8)) & 1);
    } else if (dtype == "u1") {
      out[i] = static_cast<T>(static_cast<uint8_t>(p[i]));
    } else if (dtype == "f4") {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = static_cast<T>(v);
    } else if (dtype == "i4") {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = static_cast<T>(v);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(g.name, ": unknown dtype ", dtype));
    }
  }
  return out;
}

template absl::StatusOr<std::vector<float>> GoldenArray<float>(const GoldenLayer&,
                                                               const nlohmann::json&,
                                                               const std::string&);
template absl::StatusOr<std::vector<uint8_t>> GoldenArray<uint8_t>(const GoldenLayer&,
                                                                   const nlohmann::json&,
                                                                   const std::string&);
template absl::StatusOr<std::vector<int32_t>> GoldenArray<int32_t>(const GoldenLayer&,
                                                                   const nlohmann::json&,
                                                                   const std::string&);

}  // namespace compressd::engine::testing

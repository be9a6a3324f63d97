// Times SparseGPT and GPTQ on whole layers written by
// tests/golden/algo_capture.py --full-dir DIR (DIR/<name>.{json,bin}: W then
// H, float32). Prints one "RESULT <layer> <config> <seconds> <rel_error>" line
// per (layer, configuration): the median of --repeats solves, each from a fresh
// copy of W, timing what the PyTorch reference times (factor + sweep; the
// relative error is computed after the clock stops, and its cost printed on a
// separate "ERROR_COST" line; "FACTOR" lines time the inverse-Hessian factor
// alone). Run through bench/solvers/run.sh.
//
// --device cuda:N runs the solves on a GPU (workers/cuda/, through the CUDA
// plugin beside compress-worker: set COMPRESSD_CUDA_PLUGIN to its path), and
// --shapes 4096x4096,14336x4096 solves synthetic layers of those [rows x
// cols] shapes (W ~ N(0, 0.02^2), H from 2 cols random correlated tokens,
// summed on the device) instead of the captured ones: scripts/gpu-check.sh
// uses both for the GPU-vs-CPU solve table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "workers/cuda/devices.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/sparsegpt.h"

extern "C" {
void openblas_set_num_threads(int num_threads) __attribute__((weak));
char* openblas_get_corename(void) __attribute__((weak));
}

namespace compressd::engine {
namespace {

struct Layer {
  int64_t rows = 0, cols = 0;
  std::vector<float> w, h;
};

bool ReadLayer(const std::string& stem, Layer* l) {
  std::ifstream meta_in(stem + ".json");
  std::stringstream ss;
  ss << meta_in.rdbuf();
  const nlohmann::json meta = nlohmann::json::parse(ss.str(), nullptr, false);
  if (meta.is_discarded()) return false;
  l->rows = meta.value("rows", int64_t{0});
  l->cols = meta.value("cols", int64_t{0});
  l->w.resize(l->rows * l->cols);
  l->h.resize(l->cols * l->cols);
  std::ifstream in(stem + ".bin", std::ios::binary);
  in.read(reinterpret_cast<char*>(l->w.data()), 4 * l->w.size());
  in.read(reinterpret_cast<char*>(l->h.data()), 4 * l->h.size());
  return static_cast<bool>(in);
}

// A synthetic [rows, cols] layer: H summed on `solver` from 2 cols tokens
// (chunks of 2048), with a few inputs 10x larger as real activations have.
bool SyntheticLayer(int64_t rows, int64_t cols, SolverBackend& solver, Layer* l) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 1.0f);
  l->rows = rows;
  l->cols = cols;
  l->w.resize(rows * cols);
  for (float& v : l->w) v = 0.02f * n(rng);
  std::unique_ptr<HessianSum> sum = solver.NewHessian(cols, 1);
  std::vector<float> x(2048 * cols);
  for (int64_t t0 = 0; t0 < 2 * cols; t0 += 2048) {
    for (int64_t i = 0; i < static_cast<int64_t>(x.size()); ++i) {
      x[i] = n(rng) * (i % cols < 8 ? 10.0f : 1.0f);
    }
    if (!sum->Add(x.data(), 2048).ok()) return false;
  }
  absl::StatusOr<std::vector<float>> h = sum->Hessian();
  if (!h.ok()) return false;
  l->h = std::move(*h);
  return true;
}

double Seconds(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Config {
  std::string name;
  bool gptq;
  SparseGptOptions sparse;
  GptqOptions quant;
};

std::vector<Config> Configs(int threads, SolverBackend* solver) {
  std::vector<Config> out;
  SparseGptOptions s;
  s.threads = threads;
  s.solver = solver;
  s.report_error = false;
  out.push_back({"sparsegpt_50", false, s, {}});
  s.nm_n = 2;
  s.nm_m = 4;
  out.push_back({"sparsegpt_2:4", false, s, {}});
  GptqOptions g;
  g.threads = threads;
  g.solver = solver;
  g.report_error = false;
  g.grid = {4, 128, true};
  out.push_back({"gptq_w4_g128", true, {}, g});
  g.act_order = true;
  out.push_back({"gptq_w4_g128_act", true, {}, g});
  return out;
}

// The solver of --device (cpu, cuda, cuda:N); null after saying why.
std::unique_ptr<SolverBackend> OpenSolver(const std::string& device) {
  absl::StatusOr<DeviceSpec> spec = ParseDeviceSpec(device);
  std::string why;
  if (spec.ok() && spec->kind != DeviceSpec::Kind::kCpu) {
    spec = ResolveDevice(*spec, cuda::ListGpus(&why), why);
  }
  absl::StatusOr<std::unique_ptr<SolverBackend>> solver =
      spec.ok() ? cuda::CreateSolver(*spec)
                : absl::StatusOr<std::unique_ptr<SolverBackend>>(spec.status());
  if (!solver.ok()) {
    std::fprintf(stderr, "--device: %s\n", solver.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*solver);
}

int Main(int argc, char** argv) {
  std::string dir = "/tmp/algo_bench_layers";
  std::string names = "l0_q_proj,l5_down_proj,l29_gate_proj";
  int repeats = 5, threads = 2;
  std::string device = "cpu", shapes;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--device") device = value;
    if (flag == "--shapes") shapes = value;
    if (flag == "--layers") dir = value;
    if (flag == "--names") names = value;
    if (flag == "--repeats") repeats = std::max(1, std::atoi(value.c_str()));
    if (flag == "--threads") threads = std::max(1, std::atoi(value.c_str()));
  }
  // As in the worker: OpenBLAS at one thread, the solvers split their own
  // work over `threads` (and borrow OpenBLAS's threads for wide factors).
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
  std::printf("# threads %d, OpenBLAS core %s\n", threads,
              openblas_get_corename != nullptr ? openblas_get_corename() : "(not OpenBLAS)");
  std::unique_ptr<SolverBackend> solver = OpenSolver(device);
  if (solver == nullptr) return 2;
  std::printf("# solver %s\n", solver->name().c_str());
  if (!shapes.empty()) names = shapes;
  for (const std::string& name : std::vector<std::string>(absl::StrSplit(names, ','))) {
    Layer l;
    int64_t rows = 0, cols = 0;
    const std::vector<std::string> rc = absl::StrSplit(name, 'x');
    if (!shapes.empty() && !(rc.size() == 2 && absl::SimpleAtoi(rc[0], &rows) &&
                             absl::SimpleAtoi(rc[1], &cols) && rows > 0 && cols > 0 &&
                             SyntheticLayer(rows, cols, *solver, &l))) {
      std::fprintf(stderr, "--shapes: cannot make a layer of shape \"%s\"\n", name.c_str());
      return 1;
    }
    if (shapes.empty() && !ReadLayer(dir + "/" + name, &l)) {
      std::fprintf(stderr,
                   "cannot read %s/%s.{json,bin}: run tests/golden/algo_capture.py "
                   "--full-dir %s\n",
                   dir.c_str(), name.c_str(), dir.c_str());
      return 1;
    }
    if (solver->name() == "cpu") {  // The inverse-Hessian factor alone (part of every solve below).
      std::vector<double> times;
      for (int r = 0; r < repeats; ++r) {
        times.push_back(Seconds(
            [&] { (void)InverseHessianUpper(l.h.data(), l.cols, nullptr, 0.01, name, threads); }));
      }
      std::sort(times.begin(), times.end());
      std::printf("FACTOR %s %.6f\n", name.c_str(), times[times.size() / 2]);
    }
    for (const Config& c : Configs(threads, solver.get())) {
      std::vector<double> times;
      std::vector<float> w;
      bool ok = true;
      for (int r = 0; r < repeats && ok; ++r) {
        w = l.w;
        times.push_back(Seconds([&] {
          ok = c.gptq ? Gptq(w.data(), l.rows, l.cols, l.h.data(), c.quant, name).ok()
                      : SparseGpt(w.data(), l.rows, l.cols, l.h.data(), c.sparse, name).ok();
        }));
      }
      if (!ok) {
        std::fprintf(stderr, "%s %s failed\n", name.c_str(), c.name.c_str());
        return 1;
      }
      std::sort(times.begin(), times.end());
      double err = 0.0;
      const double err_s = Seconds([&] {
        err = solver->RelativeError(l.w.data(), w.data(), l.h.data(), l.rows, l.cols, threads)
                  .value_or(-1);
      });
      std::printf("RESULT %s %s %.6f %.6f\n", name.c_str(), c.name.c_str(), times[times.size() / 2],
                  err);
      std::printf("ERROR_COST %s %s %.6f\n", name.c_str(), c.name.c_str(), err_s);
    }
  }
  return 0;
}

}  // namespace
}  // namespace compressd::engine

int main(int argc, char** argv) { return compressd::engine::Main(argc, argv); }

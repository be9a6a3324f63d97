// BF16 GEMMs through oneDNN; see bf16_gemm.h.
#include "workers/engine/nn/bf16_gemm.h"

#include <string>

#include "workers/engine/model/dtype.h"

#if defined(COMPRESSD_HAVE_ONEDNN)
#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"
#endif

namespace compressd::engine {

void Bf16GemmRef(const uint16_t* x, int64_t t, int64_t in, const uint16_t* w, int64_t out, float* y,
                 int64_t ldy) {
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double s = 0.0;
      for (int64_t i = 0; i < in; ++i) {
        s += double{BFloat16ToFloatRef(x[r * in + i])} * BFloat16ToFloatRef(w[o * in + i]);
      }
      y[r * ldy + o] = static_cast<float>(s);
    }
  }
}

#if defined(COMPRESSD_HAVE_ONEDNN)

namespace {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine* const engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// The primitive of one shape; oneDNN's primitive cache makes a repeated
// shape cheap.
dnnl::matmul::primitive_desc Describe(int64_t t, int64_t in, int64_t out, int64_t ldy) {
  using dt = dnnl::memory::data_type;
  const dnnl::memory::desc src({t, in}, dt::bf16, dnnl::memory::dims{in, 1});
  const dnnl::memory::desc wei({in, out}, dt::bf16, dnnl::memory::dims{1, in});  // w^T
  const dnnl::memory::desc dst({t, out}, dt::f32, dnnl::memory::dims{ldy, 1});
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), CpuEngine());
}

}  // namespace

absl::Status Bf16GemmAvailable() { return absl::OkStatus(); }

const char* Bf16GemmImplementation() {
  static const std::string* const name = new std::string(Describe(64, 64, 64, 64).impl_info_str());
  return name->c_str();
}

void Bf16Gemm(const uint16_t* x, int64_t t, int64_t in, const uint16_t* w, int64_t out, float* y,
              int64_t ldy) {
  if (t <= 0 || out <= 0) return;
  omp_set_num_threads(1);  // this thread's team: the caller's pool owns the parallelism
  const dnnl::matmul::primitive_desc pd = Describe(t, in, out, ldy);
  const dnnl::engine& engine = CpuEngine();
  dnnl::memory src(pd.src_desc(), engine, const_cast<uint16_t*>(x));
  dnnl::memory wei(pd.weights_desc(), engine, const_cast<uint16_t*>(w));
  dnnl::memory dst(pd.dst_desc(), engine, y);
  dnnl::stream stream(engine);
  dnnl::matmul(pd).execute(stream,
                           {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
  stream.wait();
}

#else

absl::Status Bf16GemmAvailable() {
  return absl::FailedPreconditionError(
      "compute: bf16 needs a worker built with oneDNN (libdnnl-dev; COMPRESSD_ONEDNN)");
}

const char* Bf16GemmImplementation() { return "none"; }

void Bf16Gemm(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, float*, int64_t) {}

#endif

}  // namespace compressd::engine
